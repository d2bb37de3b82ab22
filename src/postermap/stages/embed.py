"""Embed: CNN features for every distinct readable image, in resumable shards.

Features are computed once per content hash (byte-identical copies share them) for every
image ingest could decode, before cleaning: the clean stage needs them to confirm near
duplicates and find placeholder templates. The hashes (sorted) are cut into shards of
``shard_size``; each shard's file name holds
a digest of the model name and its ids, so a finished shard is reused by any later run that
needs exactly those images, and a killed run resumes at the first missing shard. Thumbnails
are decoded and resized in a ``torch.utils.data.DataLoader`` worker while the model runs.
Output: ``embed/embeddings.npy`` (float32, N x dim, memory-mappable) and ``embed/ids.npy``
(the content hash of each row).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from postermap.catalog import read_table
from postermap.config import Settings
from postermap.embedders import Embedder, get_embedder
from postermap.images import load_image
from postermap.pipeline import NothingToMapError, Stage, StageOutcome
from postermap.progress import progress_bar
from postermap.runner import die_with_parent, make_runner
from postermap.workspace import Workspace, atomic_save_npy

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


def _embed_todo(
    ws: Workspace, settings: Settings, todo: list[tuple[list[str], Path]], advance
) -> None:
    """Compute and save the missing shards, on Ray tasks or here."""
    paths = [[ws.thumb_path(h) for h in shard_ids] for shard_ids, _ in todo]
    if settings.ray:
        with make_runner(settings.ray, settings.workers) as runner:
            results = runner.map(
                embed_shard, [settings.model] * len(todo), paths, [settings.batch_size] * len(todo)
            )
            for (_, path), features in zip(todo, results, strict=True):
                atomic_save_npy(path, features)
                advance(len(features))
        return
    embedder = get_embedder(settings.model) if todo else None
    for shard_paths, (_, path) in zip(paths, todo, strict=True):
        features = embed_paths(
            shard_paths, embedder, settings.batch_size, settings.workers, on_batch=advance
        )
        atomic_save_npy(path, features)


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ingest = read_table(ws, "ingest").select(["status", "content_hash"]).to_pylist()
    ids = sorted({row["content_hash"] for row in ingest if row["status"] == "ok"})
    if not ids:
        raise NothingToMapError(
            f"none of the {len(ingest)} input files is a readable image; "
            f"their reasons are in {ws.catalog_path}"
        )
    shard_dir = ws.embed_dir / "shards"
    shards = [ids[i : i + settings.shard_size] for i in range(0, len(ids), settings.shard_size)]
    key = f"{settings.model}:{settings.thumb_size}:v{STAGE.version}"
    shard_paths = [shard_dir / f"{n:05d}-{_digest(key, s)}.npy" for n, s in enumerate(shards)]
    todo = [(s, p) for s, p in zip(shards, shard_paths, strict=True) if not p.exists()]
    if len(todo) < len(shards):
        log.info(
            "embed: resuming, %d of %d shards already done", len(shards) - len(todo), len(shards)
        )
    computed = sum(len(s) for s, _ in todo)
    with progress_bar() as bar:
        task = bar.add_task(f"embed ({settings.model})", total=computed)
        _embed_todo(ws, settings, todo, lambda n: bar.advance(task, n))
    dim = np.load(shard_paths[0], mmap_mode="r").shape[1]
    merged = np.lib.format.open_memmap(
        ws.embed_dir / ".tmp-embeddings.npy", mode="w+", dtype=np.float32, shape=(len(ids), dim)
    )
    offset = 0
    for path in shard_paths:
        part = np.load(path, mmap_mode="r")
        merged[offset : offset + len(part)] = part
        offset += len(part)
    merged.flush()
    del merged
    (ws.embed_dir / ".tmp-embeddings.npy").replace(ws.embed_dir / "embeddings.npy")
    atomic_save_npy(ws.embed_dir / "ids.npy", np.array(ids))
    _remove_stale_shards(shard_dir, set(shard_paths))
    return StageOutcome(
        counts={
            "in": len(ids),
            "embedded_now": computed,
            "reused_from_shards": len(ids) - computed,
            "dim": dim,
        },
        items=computed,
    )


def load_embeddings(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(content hashes, memory-mapped embeddings) as the embed stage left them."""
    ids = np.load(ws.embed_dir / "ids.npy")
    return ids, np.load(ws.embed_dir / "embeddings.npy", mmap_mode="r")


def embedding_rows(ws: Workspace, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(memory-mapped embeddings, row of each of ``ids``): image id -> content hash ->
    row, without reading any features."""
    hashes, embeddings = load_embeddings(ws)
    row_of = {h: i for i, h in enumerate(hashes.tolist())}
    ingest = read_table(ws, "ingest").select(["id", "content_hash"]).to_pydict()
    hash_of = dict(zip(ingest["id"], ingest["content_hash"], strict=True))
    rows = np.fromiter((row_of[hash_of[i]] for i in ids.tolist()), dtype=np.int64, count=len(ids))
    return embeddings, rows


def _digest(key: str, ids: list[str]) -> str:
    digest = hashlib.sha256(key.encode())
    for image_id in ids:
        digest.update(image_id.encode())
    return digest.hexdigest()[:16]


def _remove_stale_shards(shard_dir: Path, keep: set[Path]) -> None:
    for path in shard_dir.glob("*.npy"):
        if path not in keep:
            path.unlink()


STAGE = Stage(name="embed", depends=("ingest",), params=("model",), run=run, version=2)
