# End to end: a trained DenseShift model compiled for the PE array and run on the golden model
# and on the RTL simulation (docs/deployment.md).
E2E_DIR       ?= build/e2e
E2E_CONFIG    ?= default
E2E_EPOCHS    ?= 40
E2E_SEED      ?= 0
E2E_LIMIT     ?=
E2E_RTL       ?= verilator
E2E_RTL_LIMIT ?= 100
DENSEHW       := $(PY) -m densehw

.PHONY: e2e e2e-ci e2e-speech help-e2e

help-e2e:
	@echo "make e2e         train (cached in $(E2E_DIR)) or load a digits model, compile, run all test images on golden"
	@echo "                 and the first $(E2E_RTL_LIMIT) on $(E2E_RTL) (sim/backends.py; skipped, with a message, when the"
	@echo "                 simulator is not installed); E2E_RTL_LIMIT=360 runs every test image on the RTL (~1 min)"
	@echo "make e2e-ci      the same, small (5 epochs, 100 golden / 10 RTL images) in build/e2e-ci"
	@echo "make e2e-speech  the spoken-command ResNet (trained once, ~1-2 min) on golden, 20 test utterances on RTL"
	@echo "make e2e-lstm    the DenseShift MPS-LSTM on spoken intents (trained once) on golden, 10 on RTL"

$(E2E_DIR)/digits.dshw: | setup
	@mkdir -p $(E2E_DIR)
	$(DENSEHW) train digits --method denseshift --wbits 3 --seed $(E2E_SEED) \
	  --epochs $(E2E_EPOCHS) --export $@ --no-progress

# Exit code 3 from `densehw run` means "backend not available" (sim/backends.py: `verilator` or
# `icarus` without its simulator installed): reported, not a failure.
# Any other failure of the RTL run (bit mismatches included) fails the target.
# All samples go through each array layer in one simulator launch (--batch-size = the limit).
define e2e_rtl
	@rm -f $(2); \
	$(DENSEHW) run $(1) --data $(3) --backend $(E2E_RTL) --limit $(4) --batch-size $(4) \
	  --report $(2); rc=$$?; \
	if [ $$rc = 3 ]; then \
	  echo "e2e: RTL part SKIPPED: the '$(E2E_RTL)' backend is not available here (see the line above); only the golden model ran"; \
	elif [ $$rc != 0 ]; then \
	  echo "e2e: RTL run on $(E2E_RTL) FAILED (exit $$rc)" >&2; exit $$rc; \
	fi
endef

# Cycles the RTL's counters measured (CYCLES_BUSY, weight loading, fill and drain included).
define e2e_measured
	@$(PY) -c "import json, os; p = '$(1)'; \
	  r = json.load(open(p)) if os.path.isfile(p) else None; \
	  c = r and r['cycles']; m = c and c.get('measured_total_per_sample'); \
	  u = c and c.get('measured_mac_utilization'); \
	  m and print(f\"  {r['backend']} measured: {m:.1f} cycles/sample\", \
	    f\"(batch of {r['samples']}), MAC utilization {u:.3f}; ideal {c['total_per_sample']}\")"
endef

e2e: setup $(E2E_DIR)/digits.dshw
	$(DENSEHW) compile $(E2E_DIR)/digits.dshw -o $(E2E_DIR)/digits.prog --config $(E2E_CONFIG)
	$(DENSEHW) run $(E2E_DIR)/digits.prog --data digits --backend golden \
	  $(if $(E2E_LIMIT),--limit $(E2E_LIMIT)) --report $(E2E_DIR)/report-golden.json
	$(call e2e_rtl,$(E2E_DIR)/digits.prog,$(E2E_DIR)/report-$(E2E_RTL).json,digits,$(E2E_RTL_LIMIT))
	@$(PY) -c "import sys; from densehw.cmd_run import summarize; \
	  sys.exit(summarize(['$(E2E_DIR)/report-golden.json', '$(E2E_DIR)/report-$(E2E_RTL).json']))"
	$(call e2e_measured,$(E2E_DIR)/report-$(E2E_RTL).json)

e2e-ci:
	$(MAKE) e2e E2E_DIR=build/e2e-ci E2E_EPOCHS=5 E2E_LIMIT=100 E2E_RTL_LIMIT=10

$(E2E_DIR)/speech.dshw: | setup
	@mkdir -p $(E2E_DIR)
	$(PY) -c "import torch; torch.set_num_threads(1); \
	  from sw.data import SpeechSpec, speech_commands; from sw.models import SpeechResNet; \
	  from sw.train import TrainConfig, train, set_seed, evaluate; from sw.export import export_model; \
	  d = speech_commands(spec=SpeechSpec(), progress=True); set_seed($(E2E_SEED)); \
	  m = SpeechResNet(method='denseshift', wbits=3, width=24, n_mels=d.x_train.shape[1], num_classes=d.num_classes); \
	  h = train(m, d, TrainConfig(epochs=20, lr=5e-3, seed=$(E2E_SEED), progress=False)); \
	  export_model(m, '$@', meta={'seed': $(E2E_SEED), 'val_acc': h['val_acc'], 'test_acc': evaluate(m, d.x_test, d.y_test)})"

e2e-speech: setup $(E2E_DIR)/speech.dshw
	$(DENSEHW) compile $(E2E_DIR)/speech.dshw -o $(E2E_DIR)/speech.prog --config $(E2E_CONFIG)
	$(DENSEHW) run $(E2E_DIR)/speech.prog --data speech --backend golden \
	  --report $(E2E_DIR)/report-speech-golden.json
	$(call e2e_rtl,$(E2E_DIR)/speech.prog,$(E2E_DIR)/report-speech-$(E2E_RTL).json,speech,20)
	@$(PY) -c "import sys; from densehw.cmd_run import summarize; \
	  sys.exit(summarize(['$(E2E_DIR)/report-speech-golden.json', '$(E2E_DIR)/report-speech-$(E2E_RTL).json'], title='e2e-speech'))"
	$(call e2e_measured,$(E2E_DIR)/report-speech-$(E2E_RTL).json)
