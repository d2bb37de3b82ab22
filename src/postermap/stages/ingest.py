"""Ingest: hash, verify and thumbnail each input image once.

The source is a folder of images or a manifest of URLs (downloaded first; see
:mod:`postermap.sources`). Every input gets a row, usable or not: ``corrupt`` with the
decoder's message, ``failed`` with the download error. Later stages never touch the
originals again: they read the thumbnail stored per content hash in ``thumbs/``. Files are
inspected in parts of ``PART_SIZE``, each written atomically as ``ingest/part-*.parquet``;
a killed ingest resumes at the first missing part. The input is only ever read.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from postermap.config import Settings
from postermap.images import (
    STATS_VERSION,
    ImageLoadError,
    content_hash,
    decode_image,
    encode_jpeg,
    image_stats,
    load_image,
    pixel_hash,
    shrink,
)
from postermap.pipeline import Stage, StageOutcome
from postermap.progress import track
from postermap.runner import Runner, make_runner
from postermap.sources import IngestError, SourceItem, collect_items, source_fingerprint
from postermap.workspace import Workspace, atomic_path, atomic_write_bytes, atomic_write_table

log = logging.getLogger(__name__)

__all__ = ["IngestError", "STAGE", "inspect_file", "run"]

PART_SIZE = 512
#: Prefix of a pixel hash taken from a reduced-scale JPEG decode (see _confirm_pixel_hashes).
PROVISIONAL = "~"
RECORD_FIELDS = (
    "source",
    "path",
    "file",
    "content_hash",
    "pixel_hash",
    "width",
    "height",
    "format",
    "bytes",
    "status",
    "reason",
    "phash",
    "gray_std",
    "detail",
    "edge_p99",
    "colours",
    "row_repeat",
    "colour_hist",
)
FLOAT_FIELDS = ("gray_std", "detail", "edge_p99", "colours", "row_repeat")


def inspect_file(path: Path, rel: str, thumbs_dir: Path, max_pixels: int, thumb_size: int) -> dict:
    """Read, hash, verify and thumbnail one file. Runs in a worker process."""
    record: dict = dict.fromkeys(RECORD_FIELDS)
    record.update(source=str(path), path=rel, file=str(path), status="ok")
    try:
        data = path.read_bytes()
    except OSError as err:
        record.update(status="corrupt", reason=f"unreadable: {err}")
        return record
    record["bytes"] = len(data)
    record["content_hash"] = chash = content_hash(data)
    if not data:
        record.update(status="corrupt", reason="empty: file has zero bytes")
        return record
    try:
        image, (width, height) = decode_image(data, max_pixels=max_pixels, at_least=thumb_size)
    except ImageLoadError as err:
        record.update(status="corrupt", reason=str(err))
        return record
    small = shrink(image, thumb_size)
    # A JPEG decoded at reduced scale gets a provisional pixel hash; run() confirms the
    # rare collisions at full resolution.
    reduced = image.size != (width, height)
    record.update(
        width=width,
        height=height,
        format=path.suffix.lower().lstrip("."),
        pixel_hash=PROVISIONAL + pixel_hash(image) if reduced else pixel_hash(image),
        **image_stats(small, full=image),
    )
    thumb = thumbs_dir / chash[:2] / f"{chash}.jpg"
    if not thumb.exists():
        atomic_write_bytes(thumb, encode_jpeg(small))
    return record


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    items, counts = collect_items(ws, settings)
    local = [item for item in items if item.local is not None]
    parts_dir = ws.root / "ingest"
    parts = [local[i : i + PART_SIZE] for i in range(0, len(local), PART_SIZE)]
    part_paths = [_part_path(parts_dir, part, settings) for part in parts]
    todo = [(part, path) for part, path in zip(parts, part_paths, strict=True) if not path.exists()]
    if len(todo) < len(parts):
        log.info(
            "ingest: resuming, %d of %d parts already done", len(parts) - len(todo), len(parts)
        )
    n_todo = sum(len(part) for part, _ in todo)
    with make_runner(settings.ray, settings.workers) as runner:
        records = iter(())
        if todo:
            records = _inspect_all(
                runner, [item for part, _ in todo for item in part], ws, settings
            )
        progress = track(records, n_todo, "ingest")
        for part, part_path in todo:
            rows = [next(progress) for _ in part]
            table = pa.Table.from_pylist(rows, schema=_record_schema())
            with atomic_path(part_path) as tmp:
                pq.write_table(table, tmp)
        for _ in progress:  # drain so the bar closes
            pass
    inspected = {}
    for part_path in part_paths:
        for record in pq.read_table(part_path).to_pylist():
            inspected[record["path"]] = record
    counts["pixel_hashes_confirmed"] = _confirm_pixel_hashes(
        list(inspected.values()), settings.max_pixels
    )
    table = _build_table(items, inspected)
    atomic_write_table(ws.table_path("ingest"), table)
    statuses = table["status"].to_pylist()
    for status in ("ok", "corrupt", "failed"):
        counts[status] = statuses.count(status)
    for row in table.filter(pc.equal(table["status"], "corrupt")).to_pylist():
        log.warning("corrupt image %s: %s", row["source"], row["reason"])
    return StageOutcome(counts=counts, items=n_todo)


def _confirm_pixel_hashes(records: list[dict], max_pixels: int) -> int:
    """Replace provisional pixel hashes that collide with full-resolution ones.

    Equal pixels decode to equal pixels at any DCT scale, so two files with the same full
    pixels always share their provisional hash; the converse need not hold. Only files
    whose provisional hash is shared by different bytes are decoded again in full; every
    other provisional hash is unique and cannot mark a false duplicate. (A JPEG and a
    lossless re-encode of its decoded pixels in another format are not matched here; the
    clean stage still flags them as near duplicates.) Returns how many were decoded.
    """
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "ok" and (record["pixel_hash"] or "").startswith(PROVISIONAL):
            groups.setdefault(record["pixel_hash"], []).append(record)
    decoded = 0
    for members in groups.values():
        if len({m["content_hash"] for m in members}) < 2:
            continue
        for member in members:
            member["pixel_hash"] = pixel_hash(load_image(Path(member["file"]), max_pixels))
            decoded += 1
    if decoded:
        log.info("ingest: %d reduced-scale pixel hashes collided; confirmed at full size", decoded)
    return decoded


def _build_table(items: list[SourceItem], inspected: dict[str, dict]) -> pa.Table:
    """One row per item: inspection results, or the item's own failure, plus metadata."""
    rows = []
    for item in items:
        record = (
            dict(inspected[item.path])
            if item.local is not None
            else {name: None for name in RECORD_FIELDS}
        )
        record.update(source=item.source, path=item.path)
        if item.status is not None:
            record.update(status=item.status, reason=item.reason)
        rows.append(record)
    table = pa.Table.from_pylist(rows, schema=_record_schema())
    table = _assign_ids(table)
    table = table.append_column("title", pa.array([i.title for i in items], pa.string()))
    columns = sorted({k for item in items for k in item.metadata})
    for column in columns:
        if column in table.column_names:
            log.warning(
                "metadata column %r clashes with a catalog column; kept as %r",
                column,
                f"meta_{column}",
            )
        name = column if column not in table.column_names else f"meta_{column}"
        table = table.append_column(
            name, pa.array([i.metadata.get(column) for i in items], pa.string())
        )
    return table


def _inspect_all(runner: Runner, items: list[SourceItem], ws: Workspace, settings: Settings):
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


def _part_path(parts_dir: Path, part: list[SourceItem], settings: Settings) -> Path:
    digest = hashlib.sha256()
    digest.update(f"{settings.max_pixels}:{settings.thumb_size}:{STATS_VERSION}\n".encode())
    for item in part:
        stat = item.local.stat()
        digest.update(f"{item.path}\0{item.local}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return parts_dir / f"part-{digest.hexdigest()[:20]}.parquet"


def _record_schema() -> pa.Schema:
    types = {
        "width": pa.int32(),
        "height": pa.int32(),
        "bytes": pa.int64(),
        "colour_hist": pa.list_(pa.float32()),
        **dict.fromkeys(FLOAT_FIELDS, pa.float32()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in RECORD_FIELDS])


def _assign_ids(table: pa.Table) -> pa.Table:
    """``id`` = content hash; later byte-identical copies get ``<hash>-<hash of path>``.

    The first copy (by position: sorted path, or manifest order) keeps the bare content
    hash, so an id names the same bytes across runs; the suffix keeps every input its own
    row. Inputs with no bytes (failed downloads, empty files) get ``src-<hash of source>``.
    """
    seen: set[str] = set()
    ids = []
    for chash, path, source in zip(
        table["content_hash"].to_pylist(),
        table["path"].to_pylist(),
        table["source"].to_pylist(),
        strict=True,
    ):
        if chash is None:
            ids.append("src-" + hashlib.sha256(f"{source}\0{path}".encode()).hexdigest()[:24])
        elif chash in seen:
            ids.append(f"{chash}-{hashlib.sha256(path.encode()).hexdigest()[:8]}")
        else:
            seen.add(chash)
            ids.append(chash)
    return table.add_column(0, "id", pa.array(ids, pa.string()))


STAGE = Stage(
    name="ingest",
    depends=(),
    params=(
        "source",
        "metadata",
        "max_pixels",
        "thumb_size",
        "url_column",
        "title_column",
        "id_column",
        "max_bytes",
    ),
    run=run,
    input_fingerprint=source_fingerprint,
    version=STATS_VERSION,  # new measurements must re-inspect existing workspaces
)
