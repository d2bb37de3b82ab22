"""Running an embedder over many thumbnails: the batch loops of the embed stage.

Locally, thumbnails are decoded and resized in a ``torch.utils.data.DataLoader`` worker
while the model runs in this process (:func:`embed_paths`); on Ray, each task embeds one
shard with a model loaded once per worker process (:func:`embed_shard`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from postermap.embedders import Embedder, get_embedder
from postermap.images import load_image
from postermap.runner import die_with_parent

log = logging.getLogger(__name__)


class ThumbnailDataset:
    """Map-style dataset over thumbnail files, returning uint8 arrays at the model's size."""

    def __init__(self, paths: list[Path], embedder: Embedder) -> None:
        self.paths = paths
        self.preprocess = embedder.preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.preprocess(load_image(self.paths[index]))


def _worker_init(_worker_id: int) -> None:
    die_with_parent()


def embed_paths(
    paths: list[Path], embedder: Embedder, batch_size: int, workers: int, on_batch=None
) -> np.ndarray:
    """Features for ``paths`` in order, decoding in ``workers - 1`` background processes."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(
        ThumbnailDataset(paths, embedder),
        batch_size=batch_size,
        num_workers=max(0, workers - 1),
        collate_fn=np.stack,
        worker_init_fn=_worker_init,
    )
    torch.set_num_threads(max(1, workers))
    out = np.empty((len(paths), embedder.dim), dtype=np.float32)
    done = 0
    for batch in loader:
        out[done : done + len(batch)] = embedder.embed(batch)
        done += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return out


#: One embedder per worker process of a distributed run, kept between shards.
_WORKER_EMBEDDERS: dict[str, Embedder] = {}


def embed_shard(model: str, paths: list[Path], batch_size: int) -> np.ndarray:
    """Features of one shard, decoding in this process: the unit of a Ray task.

    The model is loaded once per worker process and reused; it runs on the CPUs Ray gave
    the task (one), so a cluster scales by running more tasks, not more threads.
    """
    embedder = _WORKER_EMBEDDERS.get(model)
    if embedder is None:
        embedder = _WORKER_EMBEDDERS[model] = get_embedder(model, threads=1)
    out = np.empty((len(paths), embedder.dim), dtype=np.float32)
    for start in range(0, len(paths), batch_size):
        batch = np.stack(
            [embedder.preprocess(load_image(p)) for p in paths[start : start + batch_size]]
        )
        out[start : start + len(batch)] = embedder.embed(batch)
    return out
