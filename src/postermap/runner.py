"""Where the per-image work of a stage runs: local processes, or a Ray cluster.

Stages hand their independent pieces of work (inspect one file, embed one shard, render one
mosaic row) to a :class:`Runner` and get the results back *in order*, so the output files
are byte-for-byte the same whichever runner did the work. The local runner is a
``ProcessPoolExecutor``; :class:`RayRunner` sends the same functions to Ray tasks. Ray is
imported only when a Ray runner is asked for, so the single-machine path never loads it.

On a cluster, every node must see the source images and the workspace at the same path
(a shared filesystem), and have postermap installed in the same environment: tasks read
originals and thumbnails and write thumbnails and mosaic strips themselves; only small
results (records, feature arrays) travel through Ray's object store.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any, Protocol

from postermap.errors import SettingsError

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Ask Linux to kill this worker process when its parent dies (``PR_SET_PDEATHSIG``).

    Used as the initializer of every worker process: a run killed with SIGKILL cannot
    clean up, and a decode worker blocked on a queue would otherwise live on as an orphan
    holding its memory (seen with PyTorch DataLoader workers). Linux only.

    A forked worker also inherits its parent's Python signal handlers; one that turns
    SIGTERM into ``SystemExit`` (Ray installs one) would make a terminated worker run
    Python's exit instead of stopping, so SIGTERM gets its default action back.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL) != 0:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    elif os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


class Runner(Protocol):
    """Ordered parallel map over independent work items."""

    #: True when work may run on other machines (stages then prefer coarse tasks).
    distributed: bool

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: int = 1
    ) -> Iterator[Any]:
        """``fn(*args)`` for each tuple of arguments, results in input order, lazily."""

    def close(self) -> None:
        """Release the workers."""


class LocalRunner:
    """``workers`` local processes (in-process when ``workers == 1``)."""

    distributed = False

    def __init__(self, workers: int, mp_context: str | None = None) -> None:
        self.workers = workers
        context = multiprocessing.get_context(mp_context) if mp_context else None
        self._pool = (
            ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent)
            if workers > 1
            else None
        )

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: int = 1
    ) -> Iterator[Any]:
        if self._pool is None:
            return map(fn, *iterables)
        return self._pool.map(fn, *iterables, chunksize=chunksize)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _apply_chunk(fn: Callable[..., Any], chunk: list[tuple]) -> list[Any]:
    """Runs inside a Ray worker: one task does ``chunksize`` calls to amortise overhead."""
    return [fn(*args) for args in chunk]


class RayRunner:
    """Ray tasks, one per chunk of work items, at most ``in_flight`` chunks queued.

    ``address`` is what ``ray.init`` takes: ``"auto"`` joins the cluster this machine
    belongs to (or ``RAY_ADDRESS``), ``"ray://host:10001"`` a remote one through Ray
    Client, ``"local"`` starts a private instance on this machine. If Ray is already
    initialised in this process (a notebook, a test), that instance is used as is.
    """

    distributed = True

    def __init__(self, address: str, cpus_per_task: float = 1.0) -> None:
        try:
            import ray
        except ImportError as err:
            raise SettingsError(
                "--ray needs the Ray package: pip install 'postermap[ray]'"
            ) from err
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=None if address == "local" else address,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except ConnectionError as err:
                raise SettingsError(
                    f"--ray {address}: no Ray cluster found there ({err}); start one with "
                    f"`ray start --head`, set RAY_ADDRESS, or use --ray local"
                ) from err
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.in_flight = max(2, 2 * cpus)
        self._remote = ray.remote(num_cpus=cpus_per_task, max_retries=2)(_apply_chunk)
        log.info("ray: %d CPUs in the cluster, up to %d tasks in flight", cpus, self.in_flight)

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: int = 1
    ) -> Iterator[Any]:
        fn_ref = self._ray.put(fn)
        calls = zip(*iterables, strict=False)
        pending: deque = deque()
        while True:
            while len(pending) < self.in_flight:
                chunk = list(islice(calls, chunksize))
                if not chunk:
                    break
                pending.append(self._remote.remote(fn_ref, chunk))
            if not pending:
                return
            yield from self._ray.get(pending.popleft())

    def close(self) -> None:
        """Leaves Ray running: a cluster outlives one postermap run."""

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_runner(
    ray_address: str | None, workers: int, mp_context: str | None = None
) -> LocalRunner | RayRunner:
    """The runner a run's settings ask for. ``mp_context`` ("spawn") is for work using
    libraries that must not be forked once initialised (libvips' thread pool)."""
    if ray_address:
        return RayRunner(ray_address)
    return LocalRunner(workers, mp_context)
