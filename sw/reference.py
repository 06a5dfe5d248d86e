"""The floating-point reference of a compiled program: the model it was compiled from, run by
PyTorch, to compare the program's outputs and activations with.

* densehw export, version 1: the built-in model rebuilt from its config (:mod:`sw.models`);
* densehw export, version 2, and ``.pt2`` files: the recorded ``torch.export`` program
  (``ExportedProgram.module()``; no Python class needed);
* ONNX files: the imported graph run with PyTorch's operators (:func:`sw.graph.reference`).

Per-layer activations always come from :func:`sw.graph.reference` on the imported graph, whose
node names are the steps' ``torch_node``.
"""

from __future__ import annotations

import io

import torch

__all__ = ["Reference", "reference_of"]


class Reference:
    """``outputs(x)``: the model's float outputs on ``x`` (batch first); ``activations(x)``:
    ``{graph node: value}``."""

    def __init__(self, graph, *, module=None, batch=None, kind=""):
        self.graph, self.module, self.batch, self.kind = graph, module, batch, kind

    @torch.no_grad()
    def outputs(self, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        from .graph import reference

        if self.module is None:
            return torch.cat([reference(self.graph, x[i:i + chunk])
                              for i in range(0, len(x), chunk)])
        if self.batch is None:
            return torch.cat([self.module(x[i:i + chunk]) for i in range(0, len(x), chunk)])
        out = []                          # a program recorded for a fixed batch size
        for i in range(0, len(x), self.batch):
            part = x[i:i + self.batch]
            pad = self.batch - len(part)
            if pad:
                part = torch.cat([part, part[:1].expand(pad, *part.shape[1:])])
            out.append(self.module(part)[:self.batch - pad])
        return torch.cat(out)

    @torch.no_grad()
    def activations(self, x: torch.Tensor) -> dict:
        from .graph import reference

        return reference(self.graph, x, record=True)[1]


def _static_batch(ep):
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in ep.graph_signature.user_inputs:
            b = node.meta["val"].shape[0]
            return int(b) if isinstance(b, int) else None
    return None


def reference_of(program) -> Reference | None:
    """The reference of ``program`` (from its copy of the source file), or None when the
    program has no source file."""
    from .compile import load_graph_bytes

    kind = program.source.get("kind") or ("dshw" if program.source.get("file") else None)
    raw = program.source_bytes
    if kind is None or raw is None:
        return None
    graph, info = load_graph_bytes(raw, kind, input_shape=program.input["shape"])
    if kind == "onnx":
        return Reference(graph, kind=kind)
    if kind == "dshw":
        exported = info["exported"]
        if exported.graph is None or exported.input_shape != list(program.input["shape"]):
            from .models import build_model

            model = build_model(exported.model)
            exported.load_into(model)
            return Reference(graph, module=model.eval(), kind=kind)
        ep = exported.exported_program()
    else:
        ep = torch.export.load(io.BytesIO(raw))
    return Reference(graph, module=ep.module(), batch=_static_batch(ep), kind=kind)
