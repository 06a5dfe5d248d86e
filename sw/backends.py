"""The backend registry: what computes an array GEMM, for ``densehw gemm``, ``densehw run`` and
:func:`sw.runtime.run_program`.

A backend is a *factory* registered by name::

    factory(array_config, **options) -> gemm
    gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config)
        -> (N, M) raw out_fmt patterns, or (patterns, stats dict)

``gemm`` has the signature and the results of :func:`sw.golden.gemm_golden`. ``array_config``
is the :class:`~contract.array.ArrayConfig` the caller needs (a compiled program's; ``config``
is then its ``dot_config``), or ``None``: any array that fits each GEMM (``densehw gemm``
without ``--array-config``; ``config`` is then ``None``), so a simulator picks one per GEMM and a
board uses the one it holds. ``stats`` holds measurements (``cycles`` and the array's other
counters, seconds); ``densehw gemm`` prints ``cycles_busy``, ``mac_utilization``, the stalls,
``array`` (what ran) and ``detail`` when present.

A backend declares its command-line options (:class:`Option`); ``densehw gemm`` and ``densehw
run`` offer every registered backend's options and pass the values of the chosen backend's as
keyword arguments to its factory (:func:`options_from`). ``missing`` returns why the backend
cannot run on this machine (its simulator is not installed...) or ``None``; such a backend stays
listed but :func:`get_backend` raises :class:`BackendUnavailable`.

``golden`` is built in. Higher layers register theirs when imported (``sim.backends``:
``icarus``, ``verilator``; ``boards.board_backend``: ``board``); the command line imports them
(:data:`densehw.cli.BACKEND_PROVIDERS`) through :func:`load_providers`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Option", "Backend", "BackendUnavailable", "register_backend", "get_backend",
           "available_backends", "registered_backends", "unregister_backend", "load_providers",
           "add_arguments", "options_from"]


class BackendUnavailable(LookupError):
    """The named backend is not registered, or cannot run here (see its message)."""


@dataclass(frozen=True)
class Option:
    """A command-line option of a backend: ``flag`` (``--port``), its ``help``, the ``type``
    that parses it, its ``default`` and ``metavar``. The factory receives it as keyword
    ``dest`` (the flag without dashes, ``-`` -> ``_``)."""

    flag: str
    help: str
    type: Callable = str
    default: object = None
    metavar: str | None = None

    def __post_init__(self):
        if not (isinstance(self.flag, str) and self.flag.startswith("--") and len(self.flag) > 2):
            raise ValueError(f"option flag must look like '--name', not {self.flag!r}")

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


@dataclass(frozen=True)
class Backend:
    """A registered backend (see the module docstring)."""

    name: str
    factory: Callable
    description: str = ""
    options: tuple[Option, ...] = ()
    missing: Callable[[], str | None] | None = None

    def unavailable_reason(self) -> str | None:
        return None if self.missing is None else self.missing()


_REGISTRY: dict[str, Backend] = {}


def register_backend(name: str, factory: Callable, *, description: str = "",
                     options=(), missing: Callable[[], str | None] | None = None,
                     replace: bool = False) -> None:
    """Register ``factory(array_config, **options) -> gemm`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"backend name must be a non-empty string, not {name!r}")
    if not callable(factory):
        raise TypeError(f"backend factory must be callable, not {factory!r}")
    options = tuple(options)
    for opt in options:
        if not isinstance(opt, Option):
            raise TypeError(f"backend options must be Option instances, not {opt!r}")
    if missing is not None and not callable(missing):
        raise TypeError(f"missing must be callable or None, not {missing!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"backend {name!r} is already registered")
    _REGISTRY[name] = Backend(name, factory, description, options, missing)


def unregister_backend(name: str) -> None:
    """Remove ``name`` from the registry (tests); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def registered_backends() -> dict[str, Backend]:
    """Every registered backend, available here or not, by name."""
    return dict(_REGISTRY)


def available_backends() -> dict[str, str]:
    """``{name: description}`` of the registered backends that can run here."""
    return {k: b.description for k, b in _REGISTRY.items() if b.unavailable_reason() is None}


def get_backend(name: str) -> Callable:
    """The factory registered under ``name``; raises :class:`BackendUnavailable` when it is not
    registered or cannot run here."""
    backend = _REGISTRY.get(name)
    if backend is None:
        raise BackendUnavailable(f"backend {name!r} is not registered (available: "
                                 f"{', '.join(available_backends())})")
    reason = backend.unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} is not available: {reason}")
    return backend.factory


def load_providers(modules) -> list[str]:
    """Import each module of ``modules`` (they register backends when imported); returns one
    note per module that could not be imported (absent, or its import failed)."""
    notes = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            absent = isinstance(exc, ModuleNotFoundError) and (
                exc.name == module or module.startswith(f"{exc.name}."))
            notes.append(f"{module} (not present)" if absent else
                         f"{module} (import failed: {exc})")
    return notes


def add_arguments(parser, *, only=None, exclude=()) -> None:
    """Add the options of every registered backend (or of those named in ``only``), each flag
    once with a help naming the backends that take it, to an ``argparse`` parser, in a group
    "backend options"; flags in ``exclude`` are left out."""
    users: dict[str, tuple[Option, list[str]]] = {}
    for backend in _REGISTRY.values():
        if only is not None and backend.name not in only:
            continue
        for opt in backend.options:
            if opt.flag not in exclude:
                users.setdefault(opt.flag, (opt, []))[1].append(backend.name)
    if not users:
        return
    group = parser.add_argument_group("backend options")
    for opt, names in users.values():
        group.add_argument(opt.flag, type=opt.type, default=opt.default, metavar=opt.metavar,
                           help=f"{opt.help} (--backend {'/'.join(names)})")


def options_from(name: str, args) -> dict:
    """The keyword arguments of backend ``name``'s factory: its options' values in ``args``
    (an ``argparse`` namespace; an option it lacks takes its default)."""
    backend = _REGISTRY.get(name)
    if backend is None:
        return {}
    return {opt.dest: getattr(args, opt.dest, opt.default) for opt in backend.options}


def _golden_factory(array_config=None):
    from .golden import gemm_golden

    return gemm_golden


register_backend("golden", _golden_factory,
                 description="sw.golden.gemm_golden, the bit-exact reference")
