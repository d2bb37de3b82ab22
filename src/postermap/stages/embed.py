"""Embed: CNN features for every distinct readable image, in resumable shards.

Features are computed once per content hash (byte-identical copies share them) for every
image ingest could decode, before cleaning: the clean stage needs them to confirm near
duplicates and find placeholder templates. The hashes (sorted) are cut into shards of
``shard_size``; each shard's file name holds a digest of the model name and its ids, so a
finished shard is reused by any later run that needs exactly those images, and a killed
run resumes at the first missing shard. Output: the workspace's embeddings (float32,
N x dim, memory-mappable) with the content hash of each row, and the model's extra
poolings of the same forward pass (``embed/rmac.npy``, ``embed/cells.npy``, float16, same
rows), which the cluster stage reads; each shard keeps them beside it
(``NNNNN-<digest>.rmac.npy``), and a shard counts as done only with all of them.

With ``--features FILE`` the model is not run: the file's vectors (any dimension, see
:mod:`postermap.features`) are written as the embeddings, the images it has no vector for
become embed failures (status ``error`` with that reason), and the stage's fingerprint
holds the file's content hash, so a changed file re-runs it and everything after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from postermap.config import StageSettings
from postermap.embedders import extras_of
from postermap.embedding import (
    embed_shards,
    extra_path,
    failures_path,
    read_failures,
    shard_digest,
    shard_done,
    shard_key,
)
from postermap.errors import NothingToMapError
from postermap.features import (
    features_fingerprint,
    match_features,
    missing_reason,
    read_features,
)
from postermap.progress import progress_bar
from postermap.runner import make_runner
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Workspace

log = logging.getLogger(__name__)


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    ingest = ws.read_table("ingest", ["id", "path", "status", "content_hash"]).to_pylist()
    ids = sorted({row["content_hash"] for row in ingest if row["status"] == "ok"})
    if not ids:
        raise NothingToMapError(
            f"none of the {len(ingest)} input files is a readable image; "
            f"their reasons are in {ws.catalog_path}"
        )
    if settings.features:
        return _vectors_from_file(ws, settings.features, ingest, ids)
    size = settings.shard_size
    shards = [ids[i : i + size] for i in range(0, len(ids), size)]
    key = shard_key(settings.model, settings.thumb_size, settings.precision)
    shard_paths = [
        ws.shards_dir / f"{n:05d}-{shard_digest(key, s)}.npy" for n, s in enumerate(shards)
    ]
    extras = extras_of(settings.model)
    todo = [(s, p) for s, p in zip(shards, shard_paths, strict=True) if not shard_done(p, extras)]
    if len(todo) < len(shards):
        log.info(
            "embed: resuming, %d of %d shards already done", len(shards) - len(todo), len(shards)
        )
    computed = sum(len(s) for s, _ in todo)
    with progress_bar() as bar:
        task = bar.add_task(f"embed ({settings.model})", total=computed)
        _embed_todo(ws, settings, todo, lambda n: bar.advance(task, n))
    dim = int(np.load(shard_paths[0], mmap_mode="r").shape[1])
    ws.write_embeddings(ids, shard_paths, dim)
    for name, shape in extras.items():
        parts = [extra_path(p, name) for p in shard_paths]
        ws.write_extra_features(name, parts, len(ids), shape)
    failures = {}
    for shard_ids, path in zip(shards, shard_paths, strict=True):
        for position, reason in read_failures(path).items():
            failures[shard_ids[position]] = reason
            log.error(
                "embed: no features for %s (kept as status error): %s",
                ws.thumb_path(shard_ids[position]),
                reason,
            )
    ws.write_embed_failures(failures)
    keep = set(shard_paths) | {extra_path(p, name) for p in shard_paths for name in extras}
    _remove_stale_shards(ws.shards_dir, keep)
    _remove_stale_extras(ws, extras)
    return StageOutcome(
        counts={
            "in": len(ids),
            "embedded_now": computed,
            "reused_from_shards": len(ids) - computed,
            "error": len(failures),
            "dim": dim,
        },
        items=computed,
    )


def _vectors_from_file(
    ws: Workspace, path: str, ingest: list[dict], ids: list[str]
) -> StageOutcome:
    """The embeddings from a ``--features`` file instead of the model."""
    features = read_features(path)
    match = match_features(features, ingest)
    if not match.row_of:
        example = next((r["path"] for r in ingest if r["status"] == "ok"), "")
        raise NothingToMapError(
            f"--features {path}: none of the {len(ids)} readable images has a vector: its "
            f"keys (e.g. {features.keys[0]!r}) match no catalog path (e.g. {example!r}, "
            f"relative to the source folder) nor id"
        )
    order = np.array([match.row_of.get(h, -1) for h in ids], dtype=np.int64)
    vectors = np.zeros((len(ids), features.dim), dtype=np.float32)
    have = order >= 0
    vectors[have] = features.vectors[order[have]]
    ws.write_embeddings(ids, [vectors], features.dim)
    _remove_stale_extras(ws, {})  # a model's poolings would be read as these vectors'
    reason = missing_reason(path)
    ws.write_embed_failures({h: reason for h in match.missing})
    log.warning(
        "embed: vectors from %s (dimension %d), not the model: no ImageNet classes to name "
        "clusters by (names come from titles, else numbers), no search by what is pictured, "
        "no regional poolings for clustering (it uses the vectors)",
        path,
        features.dim,
    )
    if match.missing:
        log.warning(
            "embed: %d of %d distinct images have no vector in %s (kept as status error, "
            "reason %r), e.g. %s",
            len(match.missing),
            len(ids),
            path,
            reason,
            next(r["path"] for r in ingest if r["content_hash"] == match.missing[0]),
        )
    if match.unknown:
        log.warning(
            "embed: %d vectors in %s name no input file and are ignored, e.g. %r",
            len(match.unknown),
            path,
            match.unknown[0],
        )
    return StageOutcome(
        counts={
            "in": len(ids),
            "from_features_file": int(have.sum()),
            "error": len(match.missing),
            "unknown_vectors": len(match.unknown),
            "dim": features.dim,
        },
        items=len(ids),
        extra={"features": {"file": str(path), "sha256": features_fingerprint(path)}},
    )


def _input_fingerprint(ws: Workspace, settings: StageSettings) -> str | None:
    """The ``--features`` file's content hash (None with the model)."""
    return features_fingerprint(settings.features) if settings.features else None


def _embed_todo(
    ws: Workspace,
    settings: StageSettings,
    todo: list[tuple[list[str], Path]],
    advance: Callable[[int], None],
) -> None:
    """Compute and save the missing shards, in local processes or on Ray tasks."""
    if not todo:
        return
    shards = [([ws.thumb_path(h) for h in ids], path) for ids, path in todo]
    with make_runner(settings.ray, settings.workers) as runner:
        embed_shards(
            shards, settings.model, settings.precision, settings.batch_size, runner, advance
        )


def _remove_stale_shards(shard_dir: Path, keep: set[Path]) -> None:
    for path in shard_dir.glob("*.npy"):
        if path not in keep:
            path.unlink()
            failures_path(path).unlink(missing_ok=True)


def _remove_stale_extras(ws: Workspace, extras: dict[str, tuple[int, ...]]) -> None:
    """Poolings another model left behind would be read as this model's."""
    own = {ws.embeddings_path, ws.embedding_ids_path}
    for path in ws.embed_dir.glob("*.npy"):
        if path not in own and path.stem not in extras:
            path.unlink()


STAGE = Stage(
    name="embed",
    depends=("ingest",),
    run=run,
    version=5,  # + the extra poolings of the model (embed/rmac.npy, embed/cells.npy)
    input_fingerprint=_input_fingerprint,
    doc="Compute CNN features for every distinct readable image (or read --features).",
)
