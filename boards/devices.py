"""The devices the flows target: nextpnr arguments, packages and capacities per board family,
their default clocks, and how a netlist's cells count as resources on each."""

from __future__ import annotations

from .errors import FlowError

__all__ = ["DEVICES", "BOARDS", "DEFAULT_DEVICE", "DEFAULT_TARGET_MHZ", "BOARD_FAMILY",
           "NAND2_WEIGHTS", "ASIC_GATES", "check_device", "fpga_resources",
           "nand2_equivalents"]

#: Devices per board family: nextpnr arguments, package and resource capacity.
DEVICES = {
    "ice40": {
        "up5k": {"pnr": ["--up5k", "--package", "sg48"], "luts": 5280, "brams": 30, "dsps": 8,
                 "synth_opts": ["-dsp"], "name": "iCE40UP5K-SG48"},
        "hx8k": {"pnr": ["--hx8k", "--package", "ct256"], "luts": 7680, "brams": 32, "dsps": 0,
                 "synth_opts": [], "name": "iCE40HX8K-CT256"},
    },
    "ecp5": {
        "25f": {"pnr": ["--25k", "--package", "CABGA381"], "luts": 24288, "brams": 56,
                "dsps": 28, "synth_opts": [], "name": "LFE5U-25F-CABGA381"},
        "85f": {"pnr": ["--85k", "--package", "CABGA381"], "luts": 83640, "brams": 208,
                "dsps": 156, "synth_opts": [], "name": "LFE5U-85F-CABGA381"},
    },
    "asic": {
        "generic": {"pnr": None, "luts": None, "brams": None, "dsps": None, "synth_opts": [],
                    "name": "generic gates (Yosys abc -g)"},
    },
}
BOARDS = tuple(DEVICES)
DEFAULT_DEVICE = {"ice40": "up5k", "ecp5": "25f", "asic": "generic"}
#: The clock each board's builds are placed and routed against, and must meet outside
#: ``--explore``. The default build must meet its clock on every seed: the ECP5-25F's default
#: 8x8 ranges over about 130-160 MHz from seed to seed (``docs/synthesis.md``), so the ECP5
#: clock is 125 MHz, 8.0 GMAC/s for the 8x8. nextpnr's placement does not depend on
#: ``--freq``: the target decides pass or fail, not the Fmax measured.
DEFAULT_TARGET_MHZ = {"ice40": 40.0, "ecp5": 125.0, "asic": None}

#: Area of each generic gate in NAND2 equivalents: ratios of the X1 cells of the NanGate 45 nm
#: Open Cell Library (NAND2_X1 = 0.798 um^2 = 1.0). ANDNOT/ORNOT are costed as AND2/OR2; a
#: flip-flop is a DFF_X1 (enables and resets are lowered to gates before mapping).
NAND2_WEIGHTS = {
    "$_NOT_": 0.667, "$_BUF_": 0.667, "$_NAND_": 1.0, "$_NOR_": 1.0, "$_AND_": 1.333,
    "$_OR_": 1.333, "$_ANDNOT_": 1.333, "$_ORNOT_": 1.333, "$_XOR_": 2.0, "$_XNOR_": 2.0,
    "$_MUX_": 2.333, "$_DFF_P_": 5.667, "$_DFF_N_": 5.667,
}
ASIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"


#: Vendor primitives the generated arrays use per board (``hw.wstore.FAMILIES``).
BOARD_FAMILY = {"ice40": None, "ecp5": "ecp5", "asic": None}


def check_device(board: str, device: str | None) -> str:
    """``device``, or the board's default; ``ValueError`` naming the value for an unknown board
    or device."""
    if board not in DEVICES:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
    device = device or DEFAULT_DEVICE[board]
    if device not in DEVICES[board]:
        raise ValueError(f"unknown {board} device {device!r}; expected one of "
                         f"{', '.join(DEVICES[board])}")
    return device


def fpga_resources(board: str, cells: dict[str, int]) -> dict:
    """``luts``, ``ffs``, ``carries``, ``brams``, ``dsps`` (and ``lutrams`` on the ECP5) of an
    FPGA netlist's cell counts."""
    def total(pred):
        return sum(v for k, v in cells.items() if pred(k))

    if board == "ice40":
        return {"luts": cells.get("SB_LUT4", 0), "ffs": total(lambda k: k.startswith("SB_DFF")),
                "carries": cells.get("SB_CARRY", 0),
                "brams": cells.get("SB_RAM40_4K", 0) + cells.get("SB_SPRAM256KA", 0),
                "dsps": cells.get("SB_MAC16", 0)}
    # ECP5: distributed RAM (TRELLIS_DPR16X4) occupies slice LUTs: two LUT4s per 16x4 RAM
    # plus its write logic; it is counted as LUTs for the area figures and also reported apart.
    lutram = cells.get("TRELLIS_DPR16X4", 0)
    return {"luts": cells.get("LUT4", 0) + 2 * lutram,
            "ffs": total(lambda k: k.startswith("TRELLIS_FF")),
            "carries": cells.get("CCU2C", 0), "brams": cells.get("DP16KD", 0),
            "dsps": total(lambda k: k.startswith("MULT18X18") or k.startswith("ALU54")),
            "lutrams": lutram}


def nand2_equivalents(cells: dict[str, int]) -> float:
    """Area of a generic gate netlist in NAND2 equivalents (:data:`NAND2_WEIGHTS`); unknown
    cell types raise :class:`FlowError`."""
    total = 0.0
    for name, count in cells.items():
        if name.startswith("$mem"):
            continue
        if name not in NAND2_WEIGHTS:
            raise FlowError(f"no NAND2 weight for generic cell {name!r}")
        total += NAND2_WEIGHTS[name] * count
    return round(total, 1)
