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
from PIL import Image

from postermap.errors import PostermapError, internal_reason
from postermap.images import (
    ImageLoadError,
    content_hash,
    decode_with_alpha,
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
    "edge_sharp",
    "block",
    "flat",
    "palette",
    "signature",
    "colour_hist",
)
#: inspection results worth showing a person (the rest are hashes and measurements)
SHOWN_FIELDS = ("width", "height", "format")
FLOAT_FIELDS = (
    "gray_std",
    "detail",
    "edge_p99",
    "colours",
    "row_repeat",
    "edge_sharp",
    "block",
    "flat",
    "palette",
)


def inspect_file(path: Path, rel: str, thumbs_dir: Path, max_pixels: int, thumb_size: int) -> dict:
    """Read, hash, verify and thumbnail one file. Runs in a worker process.

    Total: whatever the file holds, the result is a record. A file the decoder refuses is
    ``corrupt`` with the decoder's message; any other exception is a bug of ours on this
    one file and becomes status ``error`` (reason ``internal: <type>: <message>``), so one
    odd file never stops a run. Only a workspace that cannot be written
    (:class:`~postermap.errors.WorkspaceWriteError`) stops it: that is not about the file.
    """
    record: dict = dict.fromkeys(RECORD_FIELDS)
    record.update(source=str(path), path=rel, file=str(path), status="ok")
    try:
        data = path.read_bytes()
    except OSError as err:
        record.update(status="corrupt", reason=f"unreadable: {err}")
        return record
    record["bytes"] = len(data)
    record["content_hash"] = content_hash(data)
    try:
        return _inspect_bytes(data, record, thumbs_dir, max_pixels, thumb_size)
    except PostermapError:
        raise
    except Exception as err:  # noqa: BLE001 -- isolation: the row records the bug
        failed = dict.fromkeys(RECORD_FIELDS)
        failed.update(
            {key: record[key] for key in ("source", "path", "file", "bytes", "content_hash")}
        )
        failed.update(status="error", reason=internal_reason(err))
        return failed


def _inspect_bytes(
    data: bytes, record: dict, thumbs_dir: Path, max_pixels: int, thumb_size: int
) -> dict:
    path, chash = Path(record["file"]), record["content_hash"]
    if not data:
        record.update(status="corrupt", reason="empty: file has zero bytes")
        return record
    try:
        image, (width, height), alpha = decode_with_alpha(
            data, max_pixels=max_pixels, at_least=thumb_size
        )
    except ImageLoadError as err:
        record.update(status="corrupt", reason=str(err))
        return record
    small = shrink(image, thumb_size)
    # the opacity at the thumbnail's size, so a light shape on transparency is seen on black
    small_alpha = alpha.resize(small.size, Image.Resampling.BILINEAR) if alpha is not None else None
    # A JPEG decoded at reduced scale gets a provisional pixel hash; run() confirms the
    # rare collisions at full resolution.
    reduced = image.size != (width, height)
    record.update(
        width=width,
        height=height,
        format=path.suffix.lower().lstrip("."),
        pixel_hash=PROVISIONAL + pixel_hash(image) if reduced else pixel_hash(image),
        **image_stats(small, full=image, alpha=small_alpha),
    )
    # always (re)written: a file is inspected again only when its part's digest changed
    # (thumb_size, THUMB_VERSION), and then a thumbnail already there is a stale one
    atomic_write_bytes(thumb_location(thumbs_dir, chash), encode_jpeg(small))
    return record


def confirm_pixel_hashes(records: list[dict], max_pixels: int) -> int:
    """Replace provisional pixel hashes by full-resolution ones where an exact duplicate
    could hide behind them; returns how many files were decoded again.

    A large JPEG is decoded at reduced DCT scale, so its pixel hash (``~``-prefixed) is
    comparable only with another reduced decode. Two cases need the full pixels:

    * a provisional hash shared by different bytes (equal pixels decode to equal pixels
      at any scale, so true twins always share it; the converse need not hold);
    * a provisional hash whose image has the same size and nearly the same perceptual
      hash as an image with a full hash (a PNG holding exactly the JPEG's decoded
      pixels): its full hash may equal that one.

    Everything else is unique and cannot mark a false duplicate. A file that no longer
    decodes in full keeps its provisional hash (and a warning).
    """
    from postermap.cleaning import phash_candidates

    live = [r for r in records if r["status"] == "ok" and r["pixel_hash"]]
    todo: dict[int, dict] = {}
    by_hash: dict[str, list[dict]] = {}
    for record in live:
        if record["pixel_hash"].startswith(PROVISIONAL):
            by_hash.setdefault(record["pixel_hash"], []).append(record)
    for members in by_hash.values():
        if len({m["content_hash"] for m in members}) > 1:
            todo.update((id(m), m) for m in members)
    by_size: dict[tuple[int, int], list[dict]] = {}
    for record in live:
        by_size.setdefault((record["width"], record["height"]), []).append(record)
    for group in by_size.values():
        provisional = [r for r in group if r["pixel_hash"].startswith(PROVISIONAL)]
        if not provisional or len(provisional) == len(group):
            continue
        for a, b in phash_candidates([r["phash"] for r in group], NEAR_PHASH_BITS).tolist():
            first, second = group[a], group[b]
            if first["content_hash"] == second["content_hash"]:
                continue
            kinds = [m["pixel_hash"].startswith(PROVISIONAL) for m in (first, second)]
            if kinds[0] == kinds[1]:  # two provisional twins already share their hash
                continue
            member = first if kinds[0] else second
            todo[id(member)] = member
    for member in todo.values():
        try:
            member["pixel_hash"] = pixel_hash(load_image(Path(member["file"]), max_pixels))
        except ImageLoadError as err:
            log.warning(
                "%s decodes at reduced scale but not in full (%s); its pixel hash "
                "stays provisional",
                member["source"],
                err,
            )
    if todo:
        log.info("ingest: %d reduced-scale pixel hashes confirmed at full size", len(todo))
    return len(todo)


#: perceptual-hash bits two decodes of the same pixels may differ by (draft vs full decode)
NEAR_PHASH_BITS = 6


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
        "signature": pa.binary(),
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
