"""Inspection of input files: hash, verify, measure and thumbnail each one once.

:func:`inspect_file` is the per-file unit of work (it runs in worker processes or Ray
tasks); :func:`build_table` turns the records into the ingest table, one row per input,
usable or not. Later stages never touch the originals again: they read the thumbnail
stored per content hash.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pyarrow as pa

from postermap.images import (
    ImageLoadError,
    content_hash,
    decode_image,
    encode_jpeg,
    image_stats,
    load_image,
    pixel_hash,
    shrink,
)
from postermap.sources import SourceItem
from postermap.workspace import atomic_write_bytes, thumb_location

log = logging.getLogger(__name__)

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
#: inspection results worth showing a person (the rest are hashes and measurements)
SHOWN_FIELDS = ("width", "height", "format")
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
    thumb = thumb_location(thumbs_dir, chash)
    if not thumb.exists():
        atomic_write_bytes(thumb, encode_jpeg(small))
    return record


def confirm_pixel_hashes(records: list[dict], max_pixels: int) -> int:
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


def build_table(items: list[SourceItem], inspected: dict[str, dict]) -> tuple[pa.Table, list[str]]:
    """One row per item: inspection results, or the item's own failure, plus metadata.

    Returns the table and the columns a person should see for each image (its size and
    format, and every metadata column), for the viewer's detail panel.
    """
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
    table = pa.Table.from_pylist(rows, schema=record_schema())
    table = assign_ids(table)
    table = table.append_column("title", pa.array([i.title for i in items], pa.string()))
    columns = sorted({k for item in items for k in item.metadata})
    shown = list(SHOWN_FIELDS)
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
        shown.append(name)
    return table, shown


def record_schema() -> pa.Schema:
    types = {
        "width": pa.int32(),
        "height": pa.int32(),
        "bytes": pa.int64(),
        "colour_hist": pa.list_(pa.float32()),
        **dict.fromkeys(FLOAT_FIELDS, pa.float32()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in RECORD_FIELDS])


def assign_ids(table: pa.Table) -> pa.Table:
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
