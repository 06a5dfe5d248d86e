# densehw: see README.md. Every target bootstraps what it needs through `make setup`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

SIM   ?= verilator
WAVES ?= 0
JOBS  ?= 2

.PHONY: setup sim test test-slow lint bench synth clean help

help:
	@echo "make setup      create .venv, install pinned tools (idempotent)"
	@echo "make sim        main job: generate RTL, cocotb regression vs golden model (SIM=icarus|verilator, WAVES=1)"
	@echo "make test       the test suite (pytest, $(JOBS) workers)"
	@echo "make test-slow  long sweeps and exhaustive checks (pytest -m slow)"
	@echo "make bench      benchmarks: synthesis comparison, golden model vs float32 matmul, array simulation -> build/bench/"
	@echo "make formal     every formal proof"
	@echo "make help-synth | help-train | help-e2e | help-soc   targets of the synthesis, training, deployment and SoC areas"
	@echo "make soak       thousands of random layers on the array under stalls and resets (SOAK_LAYERS=N, SOAK_SEED=n) -> build/soak"
	@echo "make lint       ruff + Verilator lint of the generated RTL"
	@echo "make clean      remove build outputs (keeps .venv)"

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: scripts/setup.sh requirements.txt pyproject.toml
	bash scripts/setup.sh

sim: setup
	$(PY) -m sim.run --sim $(SIM) $(if $(filter 1,$(WAVES)),--waves,)

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
PYTEST = $(PY) -m pytest -n $(JOBS) -q $(PYTEST_ARGS)
define run_pytest
	$(PYTEST) $(1); rc=$$?; if [ $$rc = 5 ]; then echo "make: pytest collected no tests" >&2; exit 1; fi; exit $$rc
endef

test: setup
	@$(call run_pytest,)

test-slow: setup
	@$(call run_pytest,-m slow)

# bench-hw (mk/synth.mk) synthesises every design on every device: about an hour cold,
# cached per configuration afterwards.
bench: setup bench-hw
	$(PY) benchmarks/bench_golden.py --resnet18
	$(PY) benchmarks/bench_array_sim.py

lint: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:xdist tests/test_gen.py -k lint

clean:
	rm -rf build sim_build .pytest_cache

# Feature areas add their targets in mk/*.mk (training, synthesis, end-to-end ...).
-include mk/*.mk
