# Training library and the DenseShift reproduction experiments (docs/training.md).
TRAIN_OUT ?= build/results
SEEDS     ?= 5

.PHONY: train train-smoke train-table train-freezing train-init train-speech train-branches speech-data help-train

help-train:
	@echo "make train        every experiment, $(SEEDS) seeds, $(JOBS) processes -> $(TRAIN_OUT) (TRAIN_OUT=docs/results to refresh the docs)"
	@echo "make train-smoke  every experiment in a tiny version (seconds) -> build/results-smoke"
	@echo "make train-table | train-freezing | train-init | train-speech   one experiment"
	@echo "make train-branches  multi-branch {-1,+1} table, digits and speech (BRANCH_SEEDS=3 seeds)"
	@echo "make speech-data  synthesise and cache the espeak-ng spoken-command set (build/data)"

train: setup
	$(PY) -m densehw train all --out $(TRAIN_OUT) --seeds $(SEEDS) --jobs $(JOBS)

train-smoke: setup
	$(PY) -m densehw train smoke --out build/results-smoke

train-table: setup
	$(PY) -m densehw train table --out $(TRAIN_OUT) --seeds $(SEEDS) --jobs $(JOBS)

train-freezing: setup
	$(PY) -m densehw train freezing --out $(TRAIN_OUT) --seeds $(SEEDS) --jobs $(JOBS)

train-init: setup
	$(PY) -m densehw train init --out $(TRAIN_OUT) --seeds $(SEEDS) --jobs $(JOBS)

train-speech: setup speech-data
	$(PY) -m densehw train speech --out $(TRAIN_OUT) --seeds $(SEEDS) --jobs $(JOBS)

BRANCH_SEEDS ?= 3
train-branches: setup speech-data
	$(PY) -m densehw train branches --out $(TRAIN_OUT) --seeds $(BRANCH_SEEDS) --jobs $(JOBS)

speech-data: setup
	$(PY) -m densehw train speech-data
