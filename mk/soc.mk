# The array under a CPU: a LiteX SoC (VexRiscv, main RAM, UART, timer) with the generated array,
# its DMA and interrupt, and C firmware on the densehw driver (docs/soc.md). The SoC packages
# (soc/requirements.txt: LiteX, pinned) and the RISC-V compiler are installed on first use.
SOC_CONFIG ?= $(if $(CONFIG),$(CONFIG),default)
SOC_IMAGES ?= 20
SOC_TIMEOUT ?= 1800
SOC_MODEL  ?= build/e2e-ci/digits.dshw

.PHONY: soc-setup soc-sim soc-bitstream help-soc
SOC_BOARD ?= $(if $(BOARD),$(BOARD),ulx3s-85f)

help-soc:
	@echo "make soc-sim [CONFIG=cfg.toml] [SOC_IMAGES=20]   LiteX SoC + array in Verilator: GEMM layers,"
	@echo "                 error cases and the digits model on SOC_IMAGES images, bit-exact -> build/soc/report.json"
	@echo "make soc-bitstream BOARD=ulx3s-85f|ulx3s-25f|icebreaker [CONFIG=cfg.toml]   the same SoC for a board"
	@echo "                 (YoWASP tools, nothing flashed) -> build/soc-bitstream/<board>/<config>/summary.{json,md}"

soc-setup: $(VENV)/.soc-setup-done

$(VENV)/.soc-setup-done: scripts/soc_setup.sh soc/requirements.txt | setup
	bash scripts/soc_setup.sh

# The model is make e2e-ci's digits model (5 epochs), trained here when missing.
soc-sim: setup soc-setup
	@[ -f $(SOC_MODEL) ] || [ "$(SOC_MODEL)" != build/e2e-ci/digits.dshw ] || \
	  $(MAKE) --no-print-directory build/e2e-ci/digits.dshw E2E_DIR=build/e2e-ci E2E_EPOCHS=5
	$(PY) -m soc.sim --config $(SOC_CONFIG) --images $(SOC_IMAGES) --model $(SOC_MODEL) \
	  --timeout $(SOC_TIMEOUT)

soc-bitstream: setup soc-setup
	$(PY) -m soc.board --board $(SOC_BOARD) --config $(SOC_CONFIG)
