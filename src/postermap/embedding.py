"""Running an embedder over many thumbnails: the batch loops of the embed stage and of add.

:func:`embed_shards` hands the work to a runner: local processes or Ray tasks, each
decoding its thumbnails and running the model on one thread (:func:`embed_shard`, the
model loaded once per worker process), and saves each shard's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from postermap.embedders import Embedder, get_embedder
from postermap.errors import internal_reason
from postermap.images import THUMB_VERSION, ImageLoadError, load_image
from postermap.runner import Runner
from postermap.workspace import atomic_save_npy, atomic_write_json

log = logging.getLogger(__name__)

#: part of every shard's name: bump when the features of a shard change
SHARD_VERSION = 2


#: Per shard: position in the shard -> why that image has no features (zeros stand in).
Failures = dict[int, str]
#: Per shard: extra pooling name -> (n, *shape) float16 rows (see ``Embedder.extras``).
Extras = dict[str, np.ndarray]
#: dtype of the extra poolings: they are only clustered on (after a PCA), so half
#: precision halves their disk and memory-map footprint at no measurable cost
EXTRA_DTYPE = np.float16


def prepare(
    path: Path, preprocess: Callable[[Image.Image], np.ndarray]
) -> tuple[np.ndarray | None, str | None]:
    """The model input of one thumbnail, or why there is none."""
    try:
        return preprocess(load_image(path)), None
    except ImageLoadError as err:
        return None, f"thumbnail unreadable: {err}"
    except Exception as err:  # noqa: BLE001 -- isolation: the row records the bug
        return None, internal_reason(err)


#: images per task of a local run: small enough that every process has work until the
#: last shard, large enough that pickling a task's results costs nothing next to it
LOCAL_PIECE = 256


def shard_key(model: str, thumb_size: int, precision: str) -> str:
    """What a shard's features depend on besides its ids (part of its file name): the
    model, the thumbnails (their size and version: shards of stale thumbnails are not
    reused) and the precision (fp32 shards keep their old names: nothing re-embedded)."""
    key = f"{model}:{thumb_size}:t{THUMB_VERSION}:v{SHARD_VERSION}"
    return key if precision == "fp32" else f"{key}:{precision}"


#: One embedder per worker process, kept between its tasks.
_WORKER_EMBEDDERS: dict[str, Embedder] = {}


def embed_shards(
    shards: list[tuple[list[Path], Path]],
    model: str,
    precision: str,
    batch_size: int,
    runner: Runner,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Compute every (thumbnails, shard file) of ``shards`` on ``runner`` and save each shard
    as soon as its features are complete (a killed run keeps the shards it finished).

    Every task runs :func:`embed_shard`: it decodes its thumbnails and runs the model on one
    thread, in its own process. On this 2-core machine two such processes embed 1.15x
    (fp32) and 1.36x (int8) as fast as one process running the model on two threads
    beside a decode worker, with identical features (``benchmarks/embed_workers.py``;
    README, Performance): at a batch of 8 the model's small depthwise convolutions keep
    a second thread waiting more than working. A local run cuts shards into
    ``LOCAL_PIECE`` images per task; on Ray a task is a whole shard.
    """
    pieces: list[tuple[int, int, list[Path]]] = []  # (shard, first position, thumbnails)
    for k, (paths, _) in enumerate(shards):
        width = max(1, len(paths) if runner.distributed else LOCAL_PIECE)
        pieces += [
            (k, start, paths[start : start + width]) for start in range(0, len(paths), width)
        ]
    n = len(pieces)
    results = runner.map(
        embed_shard, [model] * n, [p for _, _, p in pieces], [batch_size] * n, [precision] * n
    )
    done: list[tuple[np.ndarray, Extras, Failures]] = []
    try:
        for (k, start, piece), (features, pooled, failures) in zip(pieces, results, strict=True):
            done.append((features, pooled, {start + i: r for i, r in failures.items()}))
            if advance is not None:
                advance(len(piece))
            if start + len(piece) == len(shards[k][0]):
                save_shard(
                    shards[k][1],
                    np.concatenate([f for f, _, _ in done]),
                    {name: np.concatenate([e[name] for _, e, _ in done]) for name in pooled},
                    {i: r for _, _, fails in done for i, r in fails.items()},
                )
                done = []
    finally:
        # a one-process runner ran the tasks here: its model must not outlive the call,
        # nor be inherited by the worker processes of a later run (which would then
        # never look for the model's files themselves)
        _WORKER_EMBEDDERS.clear()


def embed_shard(
    model: str, paths: list[Path], batch_size: int, precision: str = "fp32"
) -> tuple[np.ndarray, Extras, Failures]:
    """Features of ``paths``, decoding in this process: the unit of work of a local
    process or a Ray task (see :func:`embed_shards`).

    The model is loaded once per worker process and reused; it runs on one thread (the
    CPU a Ray task is given), so more work is done by more processes, not more threads.
    """
    embedder = _WORKER_EMBEDDERS.get(f"{model}:{precision}")
    if embedder is None:
        embedder = get_embedder(model, threads=1, precision=precision)
        _WORKER_EMBEDDERS[f"{model}:{precision}"] = embedder
    out, extras = _allocate(embedder, len(paths))
    failures: Failures = {}
    for start in range(0, len(paths), batch_size):
        batch = [prepare(p, embedder.preprocess) for p in paths[start : start + batch_size]]
        _embed_batch(embedder, batch, start, out, extras, failures)
    return out, extras, failures


def _allocate(embedder: Embedder, n: int) -> tuple[np.ndarray, Extras]:
    out = np.zeros((n, embedder.dim), dtype=np.float32)
    extras = embedder.extras
    return out, {name: np.zeros((n, *shape), EXTRA_DTYPE) for name, shape in extras.items()}


def _embed_batch(
    embedder: Embedder,
    batch: list[tuple[np.ndarray | None, str | None]],
    offset: int,
    out: np.ndarray,
    extras: Extras,
    failures: Failures,
) -> None:
    good = [i for i, (array, _) in enumerate(batch) if array is not None]
    for i, (_, reason) in enumerate(batch):
        if reason is not None:
            failures[offset + i] = reason
    if good:
        stacked = np.stack([batch[i][0] for i in good])
        where = [offset + i for i in good]
        if extras:
            features, pooled = embedder.embed_with_extras(stacked)
            for name, rows in extras.items():
                rows[where] = pooled[name]
        else:
            features = embedder.embed(stacked)
        out[where] = features


# -- shard files: a shard's features, its extra poolings and its failures ---------------
def save_shard(
    path: Path, features: np.ndarray, extras: dict[str, np.ndarray], failures: dict[int, str]
) -> None:
    """The shard's failures and extra poolings first, its features last: the ``.npy``
    marks it finished (together with the extras it should have, see ``run``)."""
    failed = failures_path(path)
    if failures:
        atomic_write_json(failed, {str(k): v for k, v in failures.items()})
    else:
        failed.unlink(missing_ok=True)
    for name, rows in extras.items():
        atomic_save_npy(extra_path(path, name), rows)
    atomic_save_npy(path, features)


def shard_done(shard: Path, extras: Iterable[str]) -> bool:
    """Whether ``shard`` was finished: its features and every extra pooling it should have
    (the ``.npy`` alone is written last, but a model with new poolings must redo it)."""
    return shard.exists() and all(extra_path(shard, name).exists() for name in extras)


def extra_path(shard: Path, name: str) -> Path:
    return shard.with_name(f"{shard.stem}.{name}.npy")


def failures_path(shard: Path) -> Path:
    return shard.with_name(shard.stem + ".failures.json")


def read_failures(shard: Path) -> dict[int, str]:
    path = failures_path(shard)
    if not path.exists():
        return {}
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def shard_digest(key: str, ids: list[str]) -> str:
    digest = hashlib.sha256(key.encode())
    for image_id in ids:
        digest.update(image_id.encode())
    return digest.hexdigest()[:16]
