"""Running an embedder over many thumbnails: the batch loops of the embed stage.

Locally, thumbnails are decoded and resized in a pool of forked worker processes while the
model runs in this process (:func:`embed_paths`); on Ray, each task embeds one shard with
a model loaded once per worker process (:func:`embed_shard`).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from postermap.embedders import Embedder, get_embedder
from postermap.errors import internal_reason
from postermap.images import ImageLoadError, load_image
from postermap.runner import die_with_parent
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
#: batches each decode worker may have ready ahead of the model (as a PyTorch DataLoader's
#: ``prefetch_factor``): enough to hide decoding, few enough to bound memory
PREFETCH = 2


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


def embed_paths(
    paths: list[Path],
    embedder: Embedder,
    batch_size: int,
    workers: int,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, Extras, Failures]:
    """Features and extra poolings for ``paths`` in order, decoding in ``workers - 1``
    background processes; rows of images that could not be prepared are zero and listed in
    the failures."""
    out, extras = _allocate(embedder, len(paths))
    failures: Failures = {}
    done = 0
    for batch in prepared_batches(paths, embedder.preprocess, batch_size, workers - 1):
        _embed_batch(embedder, batch, done, out, extras, failures)
        done += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return out, extras, failures


def prepared_batches(
    paths: list[Path],
    preprocess: Callable[[Image.Image], np.ndarray],
    batch_size: int,
    decoders: int,
) -> Iterator[list[tuple[np.ndarray | None, str | None]]]:
    """``paths`` in batches of :func:`prepare` results, in order, decoded by ``decoders``
    forked processes (in this one if none, or where fork is unavailable), at most
    ``PREFETCH`` batches per process ahead of the consumer."""
    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    if decoders < 1 or len(chunks) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in chunks:
            yield [prepare(path, preprocess) for path in chunk]
        return
    # fork: the workers inherit ``preprocess`` (a model's bound method) without pickling it
    context = multiprocessing.get_context("fork")
    with context.Pool(decoders, initializer=_start_decoder, initargs=(preprocess,)) as pool:
        remaining = iter(chunks)
        pending = collections.deque(
            pool.apply_async(_prepare_chunk, (chunk,))
            for chunk in itertools.islice(remaining, PREFETCH * decoders)
        )
        while pending:
            batch = pending.popleft().get()
            following = next(remaining, None)
            if following is not None:
                pending.append(pool.apply_async(_prepare_chunk, (following,)))
            yield batch


#: the model's pre-processing in a decode worker (set when the worker starts)
_DECODER_PREPROCESS: list[Callable[[Image.Image], np.ndarray]] = []


def _start_decoder(preprocess: Callable[[Image.Image], np.ndarray]) -> None:
    die_with_parent()
    _DECODER_PREPROCESS[:] = [preprocess]


def _prepare_chunk(chunk: list[Path]) -> list[tuple[np.ndarray | None, str | None]]:
    return [prepare(path, _DECODER_PREPROCESS[0]) for path in chunk]


#: One embedder per worker process of a distributed run, kept between shards.
_WORKER_EMBEDDERS: dict[str, Embedder] = {}


def embed_shard(
    model: str, paths: list[Path], batch_size: int, precision: str = "fp32"
) -> tuple[np.ndarray, Extras, Failures]:
    """Features of one shard, decoding in this process: the unit of a Ray task.

    The model is loaded once per worker process and reused; it runs on the CPUs Ray gave
    the task (one), so a cluster scales by running more tasks, not more threads.
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
