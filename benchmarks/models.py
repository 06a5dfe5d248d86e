"""``make models``: real networks through the user's path (export -> ``densehw compile`` ->
``densehw run --inputs``), measured.

1. The digits ResNet (``sw.zoo.DigitsResNet``: residual blocks, a strided conv, global average
   pooling) trained on the 8x8 digits: accuracy of PyTorch and of the program on the golden
   model (all test images), agreement, and the RTL (Verilator) on the first ``--rtl-images``
   test images: bit mismatches against golden per array step.
2. torchvision's ``resnet18`` and ``mobilenet_v2`` (``weights=None``, 3-bit DenseShift, BN
   calibrated on synthetic inputs; ``sw.zoo.torchvision_model``) at 32x32 and 224x224 on the
   ``deep_4x4`` configuration: golden vs PyTorch (argmax agreement, relative L2 error of the
   outputs) on random inputs, time and peak memory of ``densehw run``, MACs and cycles, the
   projections on the default boards; at 32x32, sampled output tiles of one array layer of each
   kind (3x3 conv, strided conv, 1x1 conv, depthwise conv, linear) on Verilator against golden.
3. What fp16 activations cost, per torchvision run: golden against PyTorch fp32 and against
   PyTorch fp16 (the same graph with PyTorch's half-precision CPU operators: weights, activations
   and every operator's result in fp16), PyTorch fp16 against fp32, the float32 reference's
   decision margins (largest minus second logit) in units of the golden logit error's rms with
   the disagreements per margin bin, and the network's own sensitivity: the relative change of
   its float64 outputs per relative change of the inputs by at most one fp16 rounding. For
   MobileNetV2 at 32x32 also per layer (``--layer-images`` inputs): activation rms and the
   relative errors of golden, PyTorch fp16 and the perturbed float64 run, and the program
   compiled for fp32 activations against PyTorch fp32. Exits 1 on an RTL mismatch or on a
   failure of :func:`fp16_failures`.

Writes ``<out>/models.json`` and ``<out>/models.md``. Heavy (about 20 minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = "deep_4x4"


def densehw(*args) -> float:
    """Run ``densehw`` in a subprocess (its own peak memory); returns the wall seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "densehw", *map(str, args)], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def layer_kind(step) -> str:
    if step["op"] == "linear":
        return "linear"
    kernel, stride, groups = step["kernel"], step["stride"], step.get("groups", 1)
    if groups > 1 and step["k"] == int(np.prod(kernel)):
        return "depthwise conv"
    if any(s > 1 for s in stride):
        return "strided conv"
    if all(k == 1 for k in kernel):
        return "1x1 conv"
    if all(k == 3 for k in kernel):
        return "3x3 conv"
    return "other conv"


def rtl_tiles(program, x, kinds_done: set, *, rows: int, channels: int) -> list:
    """Sampled tiles of the first array step of each kind not yet in ``kinds_done``."""
    from sw import runtime

    res = runtime.run_program(program, x[:1], keep_values=True)
    fn = runtime.get_backend("verilator")(program.config)
    out = []
    for step in program.array_steps():
        kind = layer_kind(step)
        if kind in kinds_done:
            continue
        kinds_done.add(kind)
        t0 = time.perf_counter()
        r = runtime.sample_array_step(program, step, res.values[step["inputs"][0]], fn,
                                      rows=rows, channels=channels)
        out.append({"kind": kind, "layer": step["name"], "k": step["k"], "m": step["m"],
                    "groups": step.get("groups", 1), "kernel": step.get("kernel"),
                    "stride": step.get("stride"), "compared": r["compared"],
                    "mismatches": r["mismatches"], "first_mismatch": r["first_mismatch"],
                    "seconds": round(time.perf_counter() - t0, 1)})
        print(f"  verilator {kind:15s} {step['name']:28s} {r['compared']:5d} outputs, "
              f"{r['mismatches']} mismatches", flush=True)
    return out


# -- fp16 activations against PyTorch ----------------------------------------------------------

MARGIN_BINS = (0.0, 1.0, 2.0, 3.0, 5.0, float("inf"))
PERTURBATION = 2.0 ** -11                 # fp16's unit roundoff


def compare(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Argmax agreement of ``a`` with ``b`` (ties to the lowest index) and the relative L2 error
    ``|a - b| / |b|`` of the outputs."""
    a, b = a.double().reshape(len(a), -1), b.double().reshape(len(b), -1)
    return {"agreement": float((a.argmax(1) == b.argmax(1)).double().mean()),
            "rel_l2_error": float((a - b).norm() / b.norm())}


@torch.no_grad()
def torch_outputs(graph, x: torch.Tensor, dtype, chunk: int = 10) -> torch.Tensor:
    """The model's outputs computed by PyTorch's operators in ``dtype`` (``torch.float16``:
    weights, activations and every operator's result in half precision), in chunks."""
    from sw.graph import reference

    return torch.cat([reference(graph, x[i:i + chunk], dtype=dtype).double()
                      for i in range(0, len(x), chunk)])


def perturbed(x: torch.Tensor, seed: int) -> torch.Tensor:
    """``x * (1 + PERTURBATION * u)`` in float64, ``u`` uniform in [-1, 1): a relative change of
    each input of at most one fp16 rounding."""
    g = torch.Generator().manual_seed(seed)
    u = 2 * torch.rand(x.shape, generator=g, dtype=torch.float64) - 1
    return x.double() * (1 + PERTURBATION * u)


def margin_study(ref32: torch.Tensor, golden: torch.Tensor, torch16: torch.Tensor) -> dict:
    """The decision margins of the float32 reference (largest minus second largest logit) in
    units of sigma, the rms of the golden model's logit error against that reference; per margin
    bin the inputs and the argmax disagreements of golden and of PyTorch fp16 with PyTorch fp32."""
    ref32, golden, torch16 = ref32.double(), golden.double(), torch16.double()
    sigma = float((golden - ref32).pow(2).mean().sqrt())
    top2 = ref32.topk(2, dim=1).values
    margin = (top2[:, 0] - top2[:, 1]) / sigma
    dis = golden.argmax(1) != ref32.argmax(1)
    dis16 = torch16.argmax(1) != ref32.argmax(1)
    bins = []
    for lo, hi in zip(MARGIN_BINS[:-1], MARGIN_BINS[1:], strict=True):
        sel = (margin >= lo) & (margin < hi)
        bins.append({"margin_sigma": [lo, None if math.isinf(hi) else hi],
                     "inputs": int(sel.sum()), "golden_disagreements": int((sel & dis).sum()),
                     "torch_fp16_disagreements": int((sel & dis16).sum())})
    wide = margin >= 3
    return {"logit_rms": float(ref32.pow(2).mean().sqrt()), "sigma": sigma,
            "torch_fp16_sigma": float((torch16 - ref32).pow(2).mean().sqrt()),
            "median_margin": float(margin.median() * sigma),
            "distinct_top1": len(set(ref32.argmax(1).tolist())),
            "disagreements": [{"input": int(i), "margin_sigma": round(float(margin[i]), 3)}
                              for i in dis.nonzero().flatten().tolist()],
            "largest_disagreeing_margin_sigma": (round(float(margin[dis].max()), 3)
                                                 if dis.any() else None),
            "bins": bins,
            "margin_ge_3_sigma": {"inputs": int(wide.sum()),
                                  "golden_agreement": float((~dis[wide]).double().mean())
                                  if wide.any() else None,
                                  "torch_fp16_agreement": float((~dis16[wide]).double().mean())
                                  if wide.any() else None}}


def fp16_study(program, x: torch.Tensor, golden: torch.Tensor, *, gain_images: int,
               seed: int) -> dict:
    """Golden (fp16 activations) against PyTorch fp32 and PyTorch fp16 on the same inputs, the
    margin study, and the network's own sensitivity: the relative change of the float64 outputs
    when the first ``gain_images`` inputs change by at most one fp16 rounding (``perturbed``)."""
    from sw.reference import reference_of

    ref = reference_of(program)
    t0 = time.perf_counter()
    r32 = ref.outputs(x).double()
    r16 = torch_outputs(ref.graph, x, torch.float16)
    t16 = time.perf_counter() - t0
    xs = x[:gain_images]
    xp = perturbed(xs, seed)
    o64 = torch_outputs(ref.graph, xs, torch.float64)
    p64 = torch_outputs(ref.graph, xp, torch.float64)
    rel_in = float((xp - xs.double()).norm() / xs.double().norm())
    rel_out = float((p64 - o64).norm() / o64.norm())
    return {"golden_vs_torch_fp32": compare(golden, r32),
            "golden_vs_torch_fp16": compare(golden, r16),
            "torch_fp16_vs_torch_fp32": compare(r16, r32),
            "margins": margin_study(r32, golden, r16),
            "input_perturbation": {"images": len(xs), "input_rel_l2": rel_in,
                                   "output_rel_l2": rel_out, "gain": rel_out / rel_in},
            "seconds_torch_references": round(t16, 1)}


WIDE_MARGIN = 5.0                         # sigma: decisions outside the fp16 noise


def fp16_failures(runs: list) -> list:
    """What the torchvision runs must show with fp16 activations, as messages for each failure:
    argmax agreement with PyTorch fp32 on every input whose margin is at least ``WIDE_MARGIN``
    sigma, a logit error against PyTorch fp32 no larger than PyTorch fp16's own, and 100 %
    agreement of the fp32-activation program."""
    out = []
    for r in runs:
        tag = f"{r['model']} {r['image_size']}x{r['image_size']}"
        f = r.get("fp16")
        if f is not None:
            wide = [d for d in f["margins"]["disagreements"]
                    if d["margin_sigma"] >= WIDE_MARGIN]
            if wide:
                out.append(f"{tag}: disagrees with PyTorch fp32 at a margin of "
                           f">= {WIDE_MARGIN:g} sigma: {wide}")
            g, t = (f["golden_vs_torch_fp32"]["rel_l2_error"],
                    f["torch_fp16_vs_torch_fp32"]["rel_l2_error"])
            if g > t:
                out.append(f"{tag}: rel. L2 error against PyTorch fp32 {g:.3e} is larger than "
                           f"PyTorch fp16's {t:.3e}")
        p32 = r.get("fp32_activations")
        if p32 is not None and p32["agreement_with_torch"] < 1:
            out.append(f"{tag}: the fp32-activation program agrees on "
                       f"{100 * p32['agreement_with_torch']:.1f} % only")
    return out


def _block(step) -> str:
    mod = (step.get("torch") or [""])[0]
    return ".".join(mod.split(".")[:2])


@torch.no_grad()
def layer_study(program, x: torch.Tensor, *, seed: int) -> list:
    """Per step with a graph node of its own: the rms of the float64 reference activation, and
    the relative L2 error against it of golden, of PyTorch fp16 and of the float64 network on
    inputs perturbed by at most one fp16 rounding; ``block`` names the module block
    (``features.3``), residual adds counted in the block they close."""
    from sw.graph import reference
    from sw.reference import reference_of
    from sw.runtime import decode, run_program

    ref = reference_of(program)
    got = run_program(program, x, batch_size=len(x), keep_values=True)
    _, a64 = reference(ref.graph, x, record=True, dtype=torch.float64)
    _, a16 = reference(ref.graph, x, record=True, dtype=torch.float16)
    _, ap = reference(ref.graph, perturbed(x, seed), record=True, dtype=torch.float64)

    def rel(a, b):
        return float((a.double() - b).norm() / b.norm())

    rows, block = [], ""
    for s in program.steps:
        node = s.get("torch_node")
        if node is None or node not in a64:
            continue
        if s["op"] != "add":
            block = _block(s)
        r = a64[node]
        v = decode(got.values[s["output"]], program.fmt(s["output"])).reshape(r.shape)
        rows.append({"step": s["id"], "op": s["op"], "node": node, "block": block,
                     "rms": float(r.pow(2).mean().sqrt()), "golden": rel(v, r),
                     "torch_fp16": rel(a16[node], r), "input_perturbed": rel(ap[node], r)})
    return rows


def block_outputs(rows: list) -> list:
    """The last row of each block of :func:`layer_study`."""
    last = {}
    for r in rows:
        last[r["block"]] = r
    return list(last.values())


def digits_part(out: Path, args) -> dict:
    from sw.data import digits
    from sw.export import export_model
    from sw.train import TrainConfig, evaluate, set_seed, train
    from sw.zoo import digits_resnet

    d = digits()
    set_seed(args.seed)
    model = digits_resnet(width=8)
    t0 = time.perf_counter()
    train(model, d, TrainConfig(epochs=args.digits_epochs, lr=5e-3, seed=args.seed,
                                progress=False))
    t_train = time.perf_counter() - t0
    model.eval()
    export_model(model, out / "digits_resnet.dshw", example_input=d.x_test[:2],
                 meta={"test_acc": evaluate(model, d.x_test, d.y_test)})
    densehw("compile", out / "digits_resnet.dshw", "-o", out / "digits_resnet.prog",
            "--config", "default", "-q")
    densehw("run", out / "digits_resnet.prog", "--data", "digits", "--report",
            out / "digits_resnet-golden.json", "--progress", "off")
    gold = json.loads((out / "digits_resnet-golden.json").read_text())
    res = {"epochs": args.digits_epochs, "train_seconds": round(t_train, 1),
           "samples": gold["samples"], "accuracy": gold["accuracy"],
           "torch_accuracy": gold["torch_accuracy"],
           "agreement_with_torch": gold["agreement_with_torch"],
           "rel_l2_error": gold["outputs_vs_torch"]["rel_l2_error"],
           "array_steps": len(gold["cycles"]["per_layer"]),
           "cycles_per_sample": gold["cycles"]["total_per_sample"]}
    if args.rtl:
        rep = out / "digits_resnet-verilator.json"
        n = args.rtl_images
        secs = densehw("run", out / "digits_resnet.prog", "--data", "digits", "--backend",
                       "verilator", "--limit", n, "--batch-size", n, "--report", rep,
                       "--progress", "off")
        r = json.loads(rep.read_text())
        res["rtl"] = {"backend": "verilator", "samples": r["samples"],
                      "accuracy": r["accuracy"], "mismatches": r["mismatches"],
                      "compared": sum(o.get("compared_outputs", 0) for o in r["ops"]),
                      "measured_cycles_per_sample": r["cycles"].get(
                          "measured_total_per_sample"),
                      "seconds": round(secs, 1)}
    return res


def torchvision_part(out: Path, name: str, size: int, n: int, args, kinds_done) -> dict:
    from contract.array import ArrayConfig
    from sw.compile import compile_model
    from sw.export import export_model
    from sw.reference import reference_of
    from sw.runtime import run_program
    from sw.zoo import torchvision_model

    tag = f"{name}_{size}"
    t0 = time.perf_counter()
    model = torchvision_model(name, image_size=size, seed=args.seed,
                              quantize_classifier=name == "mobilenet_v2",
                              calib_batches=8 if size <= 64 else 4,
                              calib_batch_size=16 if size <= 64 else 8)
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(args.seed + 1))
    np.save(out / f"{tag}-x.npy", x.numpy())
    export_model(model, out / f"{tag}.dshw", example_input=x[:2])
    t_build = time.perf_counter() - t0
    t_compile = densehw("compile", out / f"{tag}.dshw", "-o", out / f"{tag}.prog", "--config",
                        CONFIG, "-q")
    batch = 8 if size > 64 else n
    t_run = densehw("run", out / f"{tag}.prog", "--inputs", out / f"{tag}-x.npy", "--out",
                    out / f"{tag}-y.npy", "--batch-size", batch, "--report",
                    out / f"{tag}-golden.json", "--progress", "off")
    r = json.loads((out / f"{tag}-golden.json").read_text())
    res = {"model": name, "image_size": size, "samples": n, "batch_size": batch,
           "agreement_with_torch": r["agreement_with_torch"],
           "rel_l2_error": r["outputs_vs_torch"]["rel_l2_error"],
           "max_abs_diff": r["outputs_vs_torch"]["max_abs_diff"],
           "array_macs_per_sample": r["cycles"]["macs_per_sample"],
           "host_macs_per_sample": r["cycles"]["host_macs_per_sample"],
           "array_steps": len(r["cycles"]["per_layer"]),
           "host_steps": sum(1 for o in r["ops"] if o["where"] == "host"),
           "cycles_per_sample": r["cycles"]["total_per_sample"],
           "mac_utilization": r["cycles"]["mac_utilization"],
           "boards": [{k: b[k] for k in ("label", "array", "cycles_per_sample",
                                         "images_per_s_per_mhz", "images_per_s")}
                      for b in r["boards"]],
           "seconds": {"build_and_export": round(t_build, 1), "compile": round(t_compile, 1),
                       "run_wall": round(t_run, 1), "golden_run": r["seconds"]["run"],
                       "torch_reference": r["seconds"]["torch_reference"]},
           "peak_rss_mb": r["peak_rss_mb"]}
    print(f"{tag}: agreement {100 * res['agreement_with_torch']:.1f} %, rel L2 "
          f"{res['rel_l2_error']:.2e}, golden {res['seconds']['golden_run']} s for {n}, peak "
          f"{res['peak_rss_mb']} MB", flush=True)
    from sw.program import load

    prog = load(out / f"{tag}.prog")
    golden = torch.from_numpy(np.load(out / f"{tag}-y.npy"))
    res["fp16"] = fp16_study(prog, x, golden, gain_images=min(n, args.gain_images),
                             seed=args.seed + 2)
    f = res["fp16"]
    print(f"{tag}: golden vs PyTorch fp16 {100 * f['golden_vs_torch_fp16']['agreement']:.1f} %"
          f" ({f['golden_vs_torch_fp16']['rel_l2_error']:.2e}), PyTorch fp16 vs fp32 "
          f"{100 * f['torch_fp16_vs_torch_fp32']['agreement']:.1f} % "
          f"({f['torch_fp16_vs_torch_fp32']['rel_l2_error']:.2e}), margin bins "
          f"{[(b['inputs'], b['golden_disagreements']) for b in f['margins']['bins']]}, "
          f"perturbation gain {f['input_perturbation']['gain']:.1f}", flush=True)
    if size <= 64 and name == "mobilenet_v2":
        res["layers"] = layer_study(prog, x[:args.layer_images], seed=args.seed + 2)
        # the same network with fp32 activations: what fp16 rounding alone costs
        cfg32 = ArrayConfig(in_fmt="fp32", out_fmt="fp32", depth=prog.config.depth,
                            e0_min=-16, e0_max=15)
        p32 = compile_model(out / f"{tag}.dshw", cfg32)
        got = run_program(p32, x, batch_size=n)
        ref = reference_of(p32).outputs(x).double()
        res["fp32_activations"] = {
            "config": cfg32.name,
            "agreement_with_torch": float((got.predictions == ref.argmax(1)).float().mean()),
            "rel_l2_error": float((got.logits - ref).norm() / ref.norm())}
    if args.rtl and size <= 64:
        res["rtl_tiles"] = rtl_tiles(load(out / f"{tag}.prog"), x, kinds_done,
                                     rows=args.tile_rows, channels=args.tile_channels)
    return res


def _pct(c: dict) -> str:
    return f"{100 * c['agreement']:.1f} % / {c['rel_l2_error']:.1e}"


def fp16_markdown(runs: list) -> list:
    """The fp16 tables: agreement and relative L2 error against PyTorch fp32 and fp16, the
    input-perturbation gain, the margin bins, MobileNetV2's per-block errors."""
    runs = [r for r in runs if "fp16" in r]
    if not runs:
        return []
    lines = ["", "| model | input | golden vs PyTorch fp32 | golden vs PyTorch fp16 | "
             "PyTorch fp16 vs fp32 | fp32-activation program vs PyTorch fp32 | "
             "input-perturbation gain | median margin, sigma |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        f = r["fp16"]
        m = f["margins"]
        p32 = r.get("fp32_activations")
        p32 = (f"{100 * p32['agreement_with_torch']:.1f} % / {p32['rel_l2_error']:.1e}"
               if p32 else "")
        lines.append(f"| {r['model']} | {r['image_size']}x{r['image_size']} | "
                     f"{_pct(f['golden_vs_torch_fp32'])} | {_pct(f['golden_vs_torch_fp16'])} | "
                     f"{_pct(f['torch_fp16_vs_torch_fp32'])} | {p32} | "
                     f"{f['input_perturbation']['gain']:.1f} | "
                     f"{m['median_margin']:.3f}, {m['sigma']:.1e} |")
    heads = [f"{r['model']} {r['image_size']}" for r in runs]
    lines += ["", "| margin / sigma | " + " | ".join(heads) + " |",
              "|---|" + "---|" * len(runs)]
    for i, b in enumerate(runs[0]["fp16"]["margins"]["bins"]):
        lo, hi = b["margin_sigma"]
        label = f"[{lo:g}, {hi:g})" if hi is not None else f">= {lo:g}"
        cells = []
        for r in runs:
            c = r["fp16"]["margins"]["bins"][i]
            cells.append(f"{c['inputs']} ({c['golden_disagreements']} / "
                         f"{c['torch_fp16_disagreements']})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for r in runs:
        if "layers" not in r:
            continue
        lines += ["", f"{r['model']} {r['image_size']}x{r['image_size']}, block outputs "
                  f"(relative L2 error against float64):", "",
                  "| block | node | rms | golden | PyTorch fp16 | float64, perturbed input |",
                  "|---|---|---|---|---|---|"]
        for b in block_outputs(r["layers"]):
            lines.append(f"| {b['block']} | {b['node']} | {b['rms']:.2f} | {b['golden']:.1e} | "
                         f"{b['torch_fp16']:.1e} | {b['input_perturbed']:.1e} |")
    return lines


def markdown(results: dict) -> str:
    lines = [f"commit {results['commit']}, {results['date']}", ""]
    d = results.get("digits_resnet")
    if d:
        lines += ["| digits ResNet | samples | accuracy | PyTorch | agreement | rel L2 |",
                  "|---|---|---|---|---|---|",
                  f"| golden | {d['samples']} | {d['accuracy']:.2f} % | "
                  f"{d['torch_accuracy']:.2f} % | {100 * d['agreement_with_torch']:.2f} % | "
                  f"{d['rel_l2_error']:.2e} |"]
        if "rtl" in d:
            r = d["rtl"]
            lines.append(f"| verilator | {r['samples']} | {r['accuracy']:.2f} % | | "
                         f"{r['mismatches']} mismatches / {r['compared']} outputs | |")
        lines.append("")
    lines += ["| model | input | samples | agreement | rel L2 | array MACs | host MACs | "
              "cycles (4x4) | golden s | peak MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["torchvision"]:
        lines.append(f"| {r['model']} | {r['image_size']}x{r['image_size']} | {r['samples']} | "
                     f"{100 * r['agreement_with_torch']:.1f} % | {r['rel_l2_error']:.2e} | "
                     f"{r['array_macs_per_sample']:,} | {r['host_macs_per_sample']:,} | "
                     f"{r['cycles_per_sample']:,} | {r['seconds']['golden_run']} | "
                     f"{r['peak_rss_mb']} |")
    lines += fp16_markdown(results["torchvision"])
    tiles = [t for r in results["torchvision"] for t in r.get("rtl_tiles", [])]
    if tiles:
        lines += ["", "| layer kind | layer | K | M | groups | outputs compared | mismatches |",
                  "|---|---|---|---|---|---|---|"]
        for t in tiles:
            lines.append(f"| {t['kind']} | {t['layer']} | {t['k']} | {t['m']} | "
                         f"{t['groups']} | {t['compared']} | {t['mismatches']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--digits-epochs", type=int, default=30)
    p.add_argument("--images-32", type=int, default=100)
    p.add_argument("--images-224", type=int, default=100)
    p.add_argument("--sizes", default="32,224")
    p.add_argument("--gain-images", type=int, default=20,
                   help="inputs of the float64 input-perturbation measurement")
    p.add_argument("--layer-images", type=int, default=20,
                   help="inputs of MobileNetV2's per-layer study at 32x32")
    p.add_argument("--rtl-images", type=int, default=50)
    p.add_argument("--tile-rows", type=int, default=16)
    p.add_argument("--tile-channels", type=int, default=8)
    p.add_argument("--no-rtl", dest="rtl", action="store_false")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    venv_bin = str(Path(sys.executable).parent)
    if args.rtl and shutil.which("verilator") is None and shutil.which(
            "verilator", path=venv_bin) is None:
        print("models: verilator not found; the RTL parts are skipped", file=sys.stderr)
        args.rtl = False
    if args.rtl:
        from sim import backends

        backends.register()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    results = {"commit": commit, "date": time.strftime("%Y-%m-%d"), "config": CONFIG}
    t0 = time.perf_counter()
    results["digits_resnet"] = digits_part(out, args)
    print(f"digits ResNet: {results['digits_resnet']}", flush=True)
    results["torchvision"] = []
    kinds = set()
    for size in [int(s) for s in args.sizes.split(",")]:
        for name in ("resnet18", "mobilenet_v2"):
            n = args.images_32 if size <= 64 else args.images_224
            results["torchvision"].append(torchvision_part(out, name, size, n, args, kinds))
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["fp16_failures"] = fp16_failures(results["torchvision"])
    (out / "models.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (out / "models.md").write_text(text)
    print(text)
    for msg in results["fp16_failures"]:
        print(f"models: {msg}", file=sys.stderr)
    bad = results["digits_resnet"].get("rtl", {}).get("mismatches", 0) + sum(
        t["mismatches"] for r in results["torchvision"] for t in r.get("rtl_tiles", []))
    return 1 if bad or results["fp16_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
