"""Where independent jobs run: in this process, in local worker processes, or on a Dask cluster.

:func:`open_executor` gives an :class:`Executor`: with a scheduler address
(``tcp://HOST:PORT``), a :class:`DaskExecutor` whose jobs run on the workers of that Dask
distributed scheduler; otherwise a :class:`LocalExecutor` (``workers`` local processes, or this
process when ``workers`` is 1). ``Executor.run(fn, items)`` yields ``(index, fn(item))`` as the
jobs finish; ``fn`` and the items must be picklable (a module-level function and plain data),
and results come back by value, so a Dask worker needs nothing but the project's environment
(the same densehw sources, see ``docs/synthesis.md``, "Running on a cluster").

``Executor.remote`` tells whether the jobs may run on another machine: a job that writes files
must then write them where its worker can (the sweep keeps its cache on the client, see
:func:`boards.sweep.run_jobs`).
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "SchedulerError", "open_executor",
           "check_scheduler_address", "CONNECT_TIMEOUT", "run_side_by_side"]

#: Seconds to wait for a scheduler to answer (when none is given).
CONNECT_TIMEOUT = 10.0

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ws|wss)://[^\s/:]+(:\d{1,5})?/?$")


class SchedulerError(ValueError):
    """The scheduler address is malformed or no scheduler answers there; one-line message."""


def check_scheduler_address(address) -> str:
    """``address`` (``tcp://HOST:PORT``) if well formed, else :class:`SchedulerError`."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise SchedulerError(f"scheduler address must look like tcp://HOST:PORT, not "
                             f"{address!r}")
    return address


class Executor:
    """Runs picklable jobs; a context manager (``close`` on exit)."""

    #: Whether jobs may run on another machine (no shared files with this one).
    remote = False
    #: Jobs that run at once (at least 1).
    width = 1

    def run(self, fn, items):
        """Yield ``(index, fn(items[index]))`` for every item, in the order they finish."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalExecutor(Executor):
    """``workers`` local processes (a pool kept until :meth:`close`); with one worker the jobs
    run in this process, one after the other."""

    def __init__(self, *, workers: int = 1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        self.width = workers
        self._pool = None
        self._lock = threading.Lock()             # run() may be called from several threads

    def run(self, fn, items):
        items = list(items)
        if self.width == 1:
            for i, item in enumerate(items):
                yield i, fn(item)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.width)
            futures = {self._pool.submit(fn, item): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

    def describe(self) -> str:
        return f"{self.width} local process{'es' if self.width > 1 else ''}"

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


class DaskExecutor(Executor):
    """The workers of the Dask distributed scheduler at ``address``; :class:`SchedulerError`
    when none answers within ``timeout`` seconds."""

    remote = True

    def __init__(self, address: str, *, timeout: float | None = None):
        check_scheduler_address(address)
        timeout = CONNECT_TIMEOUT if timeout is None else timeout
        try:
            from distributed import Client
        except ImportError:                       # pinned in requirements.txt
            raise SchedulerError("the Dask scheduler needs the `distributed` package "
                                 "(make setup installs it)") from None
        self.address = address
        try:
            self.client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SchedulerError(f"no Dask scheduler answers at {address} within "
                                 f"{timeout:g} s ({detail})") from None
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            self.client.close()
            raise SchedulerError(f"the Dask scheduler at {address} has no workers (none "
                                 f"joined within {timeout:g} s): start some with `dask worker "
                                 f"{address}`") from None
        self.width = max(1, sum(self.client.nthreads().values()))

    def run(self, fn, items):
        from distributed import as_completed as dask_completed

        items = list(items)
        if not items:
            return
        futures = self.client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in dask_completed(futures, loop=self.client.loop):
            yield index[fut.key], fut.result()

    def describe(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask scheduler {self.address} ({workers} workers, {self.width} threads)"

    def close(self) -> None:
        self.client.close()


def open_executor(*, scheduler: str | None = None, workers: int = 1,
                  timeout: float | None = None) -> Executor:
    """A :class:`DaskExecutor` on ``scheduler`` if given, else a :class:`LocalExecutor` of
    ``workers`` processes."""
    if scheduler:
        return DaskExecutor(scheduler, timeout=timeout)
    return LocalExecutor(workers=workers)


def run_side_by_side(tasks, width: int) -> list:
    """``[task() for task in tasks]``, up to ``width`` at once in threads (for callers that each
    submit their own jobs to one shared executor, e.g. one search per device and design)."""
    tasks = list(tasks)
    if width <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(width, len(tasks))) as threads:
        return list(threads.map(lambda task: task(), tasks))
