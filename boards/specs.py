"""Design specs: small picklable dicts that describe a design (the shift array of a
configuration, the dot-product unit, a baseline MAC array, a Verilog file), the board defaults
of ``configs/``, and :func:`make_design`, which builds a spec's :class:`boards.design.Design`
(inside the worker that runs the flow, so that one job function serves every executor)."""

from __future__ import annotations

import hashlib
import json
import pathlib

from .baselines import BASELINES, baseline_design
from .design import Design, design_from_verilog
from .devices import BOARD_FAMILY, check_device

__all__ = ["CONFIGS", "default_array", "default_spec", "load_spec", "spec_hash",
           "make_design"]


#: Folder of the board-default array configurations, ``<board>_<device>.toml`` (the largest
#: measured, or where the file says so extrapolated, to fit each device).
CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def default_array(board: str, device: str) -> dict:
    """The array configuration keys of ``configs/<board>_<device>.toml``."""
    from contract.array import read_config_file

    return read_config_file(CONFIGS / f"{board}_{device}.toml")


def default_spec(board: str, device: str | None = None) -> dict:
    """The default design of a device: the shift array of ``configs/<board>_<device>.toml``."""
    device = check_device(board, device)
    return {"kind": "array", "config": default_array(board, device)}


def load_spec(path) -> dict:
    """A design spec from a TOML or JSON file (:func:`contract.array.read_config_file`): a table
    with ``kind`` is a spec, any other table holds array configuration keys (``{"kind":
    "array", "config": table}``)."""
    from contract.array import read_config_file

    data = read_config_file(path)
    if "kind" in data:
        return data
    from contract.branch_array import is_branch_config

    return {"kind": "branch-array" if is_branch_config(data) else "array", "config": data}


def spec_hash(spec: dict) -> str:
    """Stable short hash of a design spec (the cache key of the sweep)."""
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def make_design(spec: dict, *, board: str | None = None) -> Design:
    """Build the design a spec describes, for ``board`` (its vendor primitives; ``None``:
    portable Verilog). Kinds:

    * ``{"kind": "array", "config": ArrayConfig dict}``: the shift PE array (``densehw_array``);
    * ``{"kind": "branch-array", "config": BranchArrayConfig dict}``: the multi-branch array
      (``densehw_branch_array``; one MAC is one ``wbits`` x ``abits`` product, ``lanes`` per PE
      per clock);
    * ``{"kind": "dot", "config": DotConfig dict}``: the single dot-product unit;
    * ``{"kind": "shift-pe", "config": ArrayConfig dict}``: one PE of that array alone
      (``densehw_pe``: its accumulator and flags, fed by an aligned row term and a code; the
      row aligner, drain and finalizer it shares are not in it);
    * ``{"kind": <a kind of boards.baselines.BASELINES>, ...}``: a conventional MAC array;
    * ``{"kind": "verilog", "path", "top", "macs_per_cycle"}``.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"design spec must be a dict with a 'kind', not {spec!r}")
    kind = spec["kind"]
    if kind == "array":
        from contract.array import ArrayConfig
        from hw.array_top import TOP_NAME, generate_array_verilog

        cfg = ArrayConfig.from_dict(spec.get("config", {}))
        return Design(name=f"array_{cfg.name}", top=TOP_NAME,
                      verilog=generate_array_verilog(cfg, family=BOARD_FAMILY.get(board)),
                      config=cfg.to_dict(),
                      macs_per_cycle=cfg.rows * cfg.cols, kind="shift-array")
    if kind == "branch-array":
        from contract.branch_array import BranchArrayConfig
        from hw.branches.top import BRANCH_TOP_NAME, generate_branch_verilog

        cfg = BranchArrayConfig.from_dict(spec.get("config", {}))
        return Design(name=f"branch_{cfg.name}", top=BRANCH_TOP_NAME,
                      verilog=generate_branch_verilog(cfg, family=BOARD_FAMILY.get(board)),
                      config=cfg.to_dict(), macs_per_cycle=cfg.rows * cfg.cols * cfg.lanes,
                      kind="branch-array")
    if kind == "dot":
        from contract import DotConfig
        from hw.gen import generate_verilog

        cfg = DotConfig.from_dict(spec.get("config", {}))
        return Design(name=f"dot_{cfg.name}", top="densehw_dot", verilog=generate_verilog(cfg),
                      config=cfg.to_dict(), macs_per_cycle=cfg.lanes, kind="shift-dot")
    if kind == "shift-pe":
        from contract.array import ArrayConfig
        from hw.emit import to_verilog
        from hw.pe import ShiftPE

        cfg = ArrayConfig.from_dict(spec.get("config", {}))
        return Design(name=f"pe_{cfg.name}", top="densehw_pe",
                      verilog=to_verilog(ShiftPE(config=cfg), name="densehw_pe"),
                      config=cfg.to_dict(), macs_per_cycle=1, kind="shift-pe")
    if kind in BASELINES:
        return baseline_design(spec)
    if kind == "verilog":
        return design_from_verilog(spec["path"], top=spec["top"],
                                   macs_per_cycle=spec["macs_per_cycle"], name=spec.get("name"))
    kinds = ", ".join(["array", "branch-array", "dot", "shift-pe", *BASELINES, "verilog"])
    raise ValueError(f"unknown design kind {kind!r}; expected one of {kinds}")
