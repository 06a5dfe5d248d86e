# The soak: random layers back to back on the PE array under stalls and resets (sim/soak.py).
SOAK_LAYERS ?= 10000
SOAK_SEED   ?=
SOAK_CHUNK  ?= 200

.PHONY: soak

help-soak:
	@echo "make soak [SOAK_LAYERS=10000] [SOAK_SEED=n]  random layers on Verilator with stalls, resets, protocol monitors -> build/soak/report.json"

soak: setup
	$(PY) -m sim.soak --layers $(SOAK_LAYERS) --chunk $(SOAK_CHUNK) $(if $(SOAK_SEED),--seed $(SOAK_SEED),)
