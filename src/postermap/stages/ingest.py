"""Ingest: list a folder of images, hash, verify and thumbnail each file once.

Every file with an image extension gets a row, readable or not (``corrupt`` with the
decoder's message). Later stages never touch the originals again: they read the thumbnail
stored per content hash in ``thumbs/``. Work is done in parts of ``PART_SIZE`` files, each
written atomically as ``ingest/part-*.parquet``; a killed ingest resumes at the first
missing part. The input folder is only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from postermap.config import Settings
from postermap.images import (
    ImageLoadError,
    content_hash,
    is_image_name,
    load_image,
    make_thumbnail,
    pixel_hash,
)
from postermap.pipeline import Stage, StageOutcome
from postermap.progress import track
from postermap.workspace import Workspace, atomic_path, atomic_write_bytes, atomic_write_table

log = logging.getLogger(__name__)

PART_SIZE = 512
RECORD_FIELDS = ("source", "path", "content_hash", "pixel_hash", "width", "height",
                 "format", "bytes", "status", "reason")


class IngestError(ValueError):
    """The source or metadata cannot be used at all (as opposed to one bad image)."""


def list_images(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursive, sorted) and the count of other files ignored."""
    if not root.is_dir():
        raise IngestError(f"source {root} is not a folder of images")
    images, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            if is_image_name(path):
                images.append(path)
            else:
                ignored += 1
    return sorted(images), ignored


def source_fingerprint(settings: Settings) -> str:
    """Hash of the file listing (path, size, mtime) and the metadata file's bytes."""
    if settings.source is None:
        raise IngestError("no source given: pass a folder of images")
    root = Path(settings.source)
    files, _ = list_images(root)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    if settings.metadata:
        digest.update(Path(settings.metadata).read_bytes())
    return digest.hexdigest()[:24]


def inspect_file(path: Path, root: Path, thumbs_dir: Path, max_pixels: int,
                 thumb_size: int) -> dict:
    """Read, hash, verify and thumbnail one file. Runs in a worker process."""
    record = {"source": str(path), "path": str(path.relative_to(root)), "content_hash": None,
              "pixel_hash": None, "width": None, "height": None, "format": None,
              "bytes": None, "status": "ok", "reason": None}
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
        image = load_image(data, max_pixels=max_pixels)
    except ImageLoadError as err:
        record.update(status="corrupt", reason=str(err))
        return record
    record.update(width=image.width, height=image.height,
                  format=path.suffix.lower().lstrip("."), pixel_hash=pixel_hash(image))
    thumb = thumbs_dir / chash[:2] / f"{chash}.jpg"
    if not thumb.exists():
        atomic_write_bytes(thumb, make_thumbnail(image, thumb_size))
    return record


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    if settings.source is None:
        raise IngestError("no source given: pass a folder of images")
    root = Path(settings.source).resolve()
    files, ignored = list_images(root)
    if not files:
        raise IngestError(f"no image files ({', '.join(sorted({'.jpg', '.png', '.webp'}))}, "
                          f"...) found under {root}")
    metadata = read_metadata(Path(settings.metadata)) if settings.metadata else None
    parts_dir = ws.root / "ingest"
    parts = [files[i:i + PART_SIZE] for i in range(0, len(files), PART_SIZE)]
    part_paths = [_part_path(parts_dir, part, root, settings) for part in parts]
    todo = [(part, path) for part, path in zip(parts, part_paths, strict=True)
            if not path.exists()]
    if len(todo) < len(parts):
        log.info("ingest: resuming, %d of %d parts already done", len(parts) - len(todo),
                 len(parts))
    n_todo = sum(len(part) for part, _ in todo)
    with ProcessPoolExecutor(max_workers=settings.workers) as pool:
        records = iter(())
        if todo:
            records = _inspect_all(pool, [p for part, _ in todo for p in part], root, ws,
                                   settings)
        progress = track(records, n_todo, "ingest")
        for part, part_path in todo:
            rows = [next(progress) for _ in part]
            table = pa.Table.from_pylist(rows, schema=_record_schema())
            with atomic_path(part_path) as tmp:
                pq.write_table(table, tmp)
        for _ in progress:  # drain so the bar closes
            pass
    table = pa.concat_tables([pq.read_table(p) for p in part_paths])
    table = _assign_ids(table)
    table = _attach_metadata(table, metadata, root)
    atomic_write_table(ws.table_path("ingest"), table)
    counts = {"files": len(files), "ignored_other_extensions": ignored}
    for status in ("ok", "corrupt"):
        counts[status] = sum(1 for s in table["status"].to_pylist() if s == status)
    for row in table.filter(pc.equal(table["status"], "corrupt")).to_pylist():
        log.warning("corrupt image %s: %s", row["source"], row["reason"])
    return StageOutcome(counts=counts, items=n_todo)


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Rows of a metadata CSV keyed by its ``filename`` column (relative path or base name)."""
    if not path.exists():
        raise IngestError(f"metadata file {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "filename" not in columns:
            raise IngestError(f"{path}: needs a 'filename' column naming each image "
                              f"(found columns: {', '.join(columns) or 'none'})")
        rows: dict[str, dict[str, str]] = {}
        for line_no, row in enumerate(reader, start=2):
            name = (row.get("filename") or "").strip()
            if not name:
                log.warning("%s line %d: empty filename, row ignored", path, line_no)
                continue
            if None in row:
                log.warning("%s line %d: more fields than header columns; extras ignored",
                            path, line_no)
                row.pop(None)
            rows[name] = {k: v for k, v in row.items() if k != "filename"}
    return rows


def _inspect_all(pool: ProcessPoolExecutor, files: list[Path], root: Path, ws: Workspace,
                 settings: Settings):
    chunk = max(1, min(64, len(files) // (4 * settings.workers) or 1))
    return pool.map(inspect_file, files, [root] * len(files), [ws.thumbs_dir] * len(files),
                    [settings.max_pixels] * len(files), [settings.thumb_size] * len(files),
                    chunksize=chunk)


def _part_path(parts_dir: Path, part: list[Path], root: Path, settings: Settings) -> Path:
    digest = hashlib.sha256()
    digest.update(f"{settings.max_pixels}:{settings.thumb_size}\n".encode())
    for path in part:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return parts_dir / f"part-{digest.hexdigest()[:20]}.parquet"


def _record_schema() -> pa.Schema:
    types = {"width": pa.int32(), "height": pa.int32(), "bytes": pa.int64()}
    return pa.schema([(name, types.get(name, pa.string())) for name in RECORD_FIELDS])


def _assign_ids(table: pa.Table) -> pa.Table:
    """``id`` = content hash; later byte-identical copies get ``<hash>-<hash of path>``.

    The first copy (by relative path) keeps the bare content hash, so an id names the same
    bytes across runs; the suffix keeps every input file its own row. Unreadable files
    with no bytes are identified by their path.
    """
    seen: set[str] = set()
    ids = []
    for chash, path in zip(table["content_hash"].to_pylist(), table["path"].to_pylist(),
                           strict=True):
        path_hash = hashlib.sha256(path.encode()).hexdigest()[:8]
        if chash is None:
            ids.append(f"path-{path_hash}")
        elif chash in seen:
            ids.append(f"{chash}-{path_hash}")
        else:
            seen.add(chash)
            ids.append(chash)
    return table.add_column(0, "id", pa.array(ids, pa.string()))


def _attach_metadata(table: pa.Table, metadata: dict[str, dict[str, str]] | None,
                     root: Path) -> pa.Table:
    """Add ``title`` (metadata title, else the file stem) and every other metadata column."""
    paths = table["path"].to_pylist()
    rows = [None] * len(paths)
    if metadata:
        matched = 0
        for i, path in enumerate(paths):
            rows[i] = metadata.get(path) or metadata.get(Path(path).name)
            matched += rows[i] is not None
        unmatched = len(metadata) - matched
        if unmatched > 0:
            log.warning("metadata: %d row(s) name no image file under %s", unmatched, root)
    columns = sorted({k for row in rows if row for k in row})
    titles = []
    for path, row in zip(paths, rows, strict=True):
        title = (row or {}).get("title") or Path(path).stem
        titles.append(title)
    table = table.append_column("title", pa.array(titles, pa.string()))
    for column in columns:
        if column == "title" or column in table.column_names:
            continue
        table = table.append_column(column, pa.array([(r or {}).get(column) for r in rows],
                                                     pa.string()))
    return table


STAGE = Stage(
    name="ingest",
    depends=(),
    params=("source", "metadata", "max_pixels", "thumb_size"),
    run=run,
    input_fingerprint=source_fingerprint,
)
