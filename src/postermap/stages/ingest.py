"""Ingest: hash, verify and thumbnail each input image once (see :mod:`postermap.inspection`).

The source is a folder of images or a manifest of URLs (downloaded first; see
:mod:`postermap.sources`). Every input gets a row, usable or not. Files are inspected in
parts of ``PART_SIZE``, each written atomically as ``ingest/part-*.parquet``; a killed
ingest resumes at the first missing part. The input is only ever read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from postermap.config import StageSettings
from postermap.download import DownloadOptions
from postermap.errors import SourceError
from postermap.images import STATS_VERSION, THUMB_VERSION
from postermap.inspection import build_table, confirm_pixel_hashes, inspect_file, record_schema
from postermap.progress import track
from postermap.runner import Runner, make_runner
from postermap.sources import SourceItem, SourceSpec, collect_items, source_fingerprint
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Workspace, atomic_write_table

log = logging.getLogger(__name__)

PART_SIZE = 512


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    options = DownloadOptions(
        concurrency=settings.concurrency,
        per_host=settings.per_host,
        retries=settings.retries,
        read_timeout=settings.timeout,
        max_bytes=settings.max_bytes,
        retry_failed=settings.retry_failed,
    )
    items, counts = collect_items(source_spec(settings), ws.downloads_dir, options)
    for number, spec in enumerate(added_specs(ws), start=1):
        more, more_counts = collect_items(spec, ws.downloads_dir, options)
        items += [replace(item, path=added_path(number, item.path)) for item in more]
        for key, value in more_counts.items():
            counts[key] = counts.get(key, 0) + value
    parts = []  # cut per source, so adding a source leaves the earlier parts as they were
    for group in _by_source(items):
        local = [item for item in group if item.local is not None]
        parts += [local[i : i + PART_SIZE] for i in range(0, len(local), PART_SIZE)]
    part_paths = [_part_path(ws.ingest_parts_dir, part, settings) for part in parts]
    todo = [(part, path) for part, path in zip(parts, part_paths, strict=True) if not path.exists()]
    if len(todo) < len(parts):
        log.info(
            "ingest: resuming, %d of %d parts already done", len(parts) - len(todo), len(parts)
        )
    n_todo = sum(len(part) for part, _ in todo)
    with make_runner(settings.ray, settings.workers) as runner:
        records: Iterator[dict] = iter(())
        if todo:
            pending = [item for part, _ in todo for item in part]
            records = _inspect_all(runner, pending, ws, settings)
        progress = track(records, n_todo, "ingest")
        for part, part_path in todo:
            rows = [next(progress) for _ in part]
            atomic_write_table(part_path, pa.Table.from_pylist(rows, schema=record_schema()))
        for _ in progress:  # drain so the bar closes
            pass
    inspected = {}
    for part_path in part_paths:
        for record in pq.read_table(part_path).to_pylist():
            inspected[record["path"]] = record
    counts["pixel_hashes_confirmed"] = confirm_pixel_hashes(
        list(inspected.values()), settings.max_pixels
    )
    table, shown = build_table(items, inspected)
    ws.write_table("ingest", table, shown_columns=shown)
    statuses = table["status"].to_pylist()
    for status in ("ok", "corrupt", "failed", "error"):
        counts[status] = statuses.count(status)
    for row in table.filter(pc.equal(table["status"], "corrupt")).to_pylist():
        log.warning("corrupt image %s: %s", row["source"], row["reason"])
    for row in table.filter(pc.equal(table["status"], "error")).to_pylist():
        log.error("internal error on %s (kept as status error): %s", row["source"], row["reason"])
    return StageOutcome(counts=counts, items=n_todo)


def source_spec(settings: StageSettings) -> SourceSpec:
    if settings.source is None:
        raise SourceError("no source given: pass a folder of images or a manifest file")
    return SourceSpec(
        source=Path(settings.source),
        metadata=Path(settings.metadata) if settings.metadata else None,
        url_column=settings.url_column,
        title_column=settings.title_column,
        id_column=settings.id_column,
    )


def added_specs(ws: Workspace) -> list[SourceSpec]:
    """The sources ``postermap add`` grew the map with (folders or manifests, each with
    its own metadata file if it had one), after the map's own source."""
    return [
        SourceSpec(
            source=Path(entry["source"]),
            metadata=Path(entry["metadata"]) if entry.get("metadata") else None,
        )
        for entry in ws.read_added_sources()
    ]


def _by_source(items: list[SourceItem]) -> list[list[SourceItem]]:
    """The items of the map's own source, then those of each added one."""
    groups: dict[str, list[SourceItem]] = {}
    for item in items:
        key = item.path.split("/", 1)[0] if item.path.startswith("~add") else ""
        groups.setdefault(key, []).append(item)
    return [groups[key] for key in sorted(groups)]


def added_path(number: int, path: str) -> str:
    """An added source's item path, prefixed so it never collides with the map's own
    (two folders may both hold ``a.png``) and sorts after them."""
    return f"~add{number:03d}/{path}"


def _source_fingerprint(ws: Workspace, settings: StageSettings) -> str:
    own = source_fingerprint(source_spec(settings))
    added = [source_fingerprint(spec) for spec in added_specs(ws)]
    return own if not added else hashlib.sha256(" ".join([own, *added]).encode()).hexdigest()[:24]


def _inspect_all(
    runner: Runner, items: list[SourceItem], ws: Workspace, settings: StageSettings
) -> Iterator[dict]:
    n = len(items)
    chunk = 64 if runner.distributed else max(1, min(64, n // (4 * settings.workers) or 1))
    return runner.map(
        inspect_file,
        [i.local for i in items],
        [i.path for i in items],
        [ws.thumbs_dir] * n,
        [settings.max_pixels] * n,
        [settings.thumb_size] * n,
        chunksize=chunk,
    )


def _part_path(parts_dir: Path, part: list[SourceItem], settings: StageSettings) -> Path:
    digest = hashlib.sha256()
    digest.update(
        f"{settings.max_pixels}:{settings.thumb_size}:{STATS_VERSION}:{THUMB_VERSION}\n".encode()
    )
    for item in part:
        assert item.local is not None
        stat = item.local.stat()
        digest.update(f"{item.path}\0{item.local}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return parts_dir / f"part-{digest.hexdigest()[:20]}.parquet"


STAGE = Stage(
    name="ingest",
    depends=(),
    run=run,
    input_fingerprint=_source_fingerprint,
    # the measurements' version (new ones must re-inspect) and the stage's own
    version=f"{STATS_VERSION}.{THUMB_VERSION}.2",
    doc="Ingest SOURCE (a folder of images, or a manifest of URLs to download).",
)
