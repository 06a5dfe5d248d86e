"""The generated array in a CPU system: a LiteX SoC (VexRiscv) with C firmware on the densehw
driver, simulated with Verilator (``make soc-sim``, :mod:`soc.sim`) or built for a board
(``make soc-bitstream``). Needs the packages of ``soc/requirements.txt`` (installed by those
targets)."""
