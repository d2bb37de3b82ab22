"""What ingest reads: a folder of images, or a manifest of URLs that is downloaded first.

Both become a list of :class:`SourceItem`, one per input image file or manifest row, so
the ingest stage treats them the same. A manifest row that cannot be fetched is an item
with ``status="failed"`` and a reason; it still becomes a catalog row.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rich.table import Table

from postermap.download import Downloader, DownloadOptions, DownloadResult, summarise
from postermap.errors import SourceError
from postermap.images import IMAGE_EXTENSIONS, is_image_name
from postermap.manifest import is_manifest, read_manifest
from postermap.progress import console, progress_bar

log = logging.getLogger(__name__)


@dataclass
class SourceItem:
    """One input image: where it came from and which local file holds it (if any)."""

    source: str  #: path or URL, as the user knows it
    path: str  #: sortable name: relative path, or ``row<line>`` for manifest rows
    local: Path | None  #: the file to inspect; None when there is nothing to inspect
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    status: str | None = None  #: None = inspect it; "failed" = could not be fetched
    reason: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """What to read: a folder or manifest, its metadata file, and manifest column roles
    (None = auto-detect)."""

    source: Path
    metadata: Path | None = None
    url_column: str | None = None
    title_column: str | None = None
    id_column: str | None = None


def collect_items(
    spec: SourceSpec, downloads: Path, options: DownloadOptions
) -> tuple[list[SourceItem], dict[str, int]]:
    """Items of the source (a manifest's URLs downloaded into ``downloads`` first), and
    counts for the ingest summary."""
    if is_manifest(spec.source):
        return manifest_items(spec, downloads, options)
    if spec.source.is_dir():
        return folder_items(spec.source, spec.metadata)
    raise SourceError(
        f"source {spec.source} is neither a folder of images nor a manifest "
        f"(.csv, .tsv, .parquet, .jsonl)"
    )


def source_fingerprint(spec: SourceSpec) -> str:
    """Hash of what ingest reads: the file listing (path, size, mtime) or the manifest's
    bytes and column options, plus the metadata file's bytes."""
    digest = hashlib.sha256()
    if is_manifest(spec.source):
        digest.update(spec.source.read_bytes())
        digest.update(f"{spec.url_column}|{spec.title_column}|{spec.id_column}".encode())
    else:
        for path in list_images(spec.source)[0]:
            stat = path.stat()
            digest.update(
                f"{path.relative_to(spec.source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    if spec.metadata:
        if not spec.metadata.exists():
            raise SourceError(f"metadata file {spec.metadata} does not exist")
        digest.update(spec.metadata.read_bytes())
    return digest.hexdigest()[:24]


def list_images(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursive, sorted, hidden ones skipped) and the count of
    other files ignored."""
    if not root.is_dir():
        raise SourceError(f"source {root} is not a folder of images")
    images, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if is_image_name(path):
                images.append(path)
            else:
                ignored += 1
    return sorted(images), ignored


def folder_items(root: Path, metadata_csv: Path | None) -> tuple[list[SourceItem], dict[str, int]]:
    root = root.resolve()
    files, ignored = list_images(root)
    if not files:
        raise SourceError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {root}")
    metadata = read_metadata(metadata_csv) if metadata_csv else {}
    items, matched = [], set()
    for path in files:
        rel = str(path.relative_to(root))
        key = rel if rel in metadata else path.name if path.name in metadata else None
        row = dict(metadata.get(key, {})) if key else {}
        if key:
            matched.add(key)
        title = row.pop("title", None) or path.stem
        items.append(SourceItem(source=str(path), path=rel, local=path, title=title, metadata=row))
    unmatched = len(metadata) - len(matched)
    if unmatched:
        log.warning("metadata: %d row(s) name no image file under %s", unmatched, root)
    return items, {"files": len(files), "ignored_other_extensions": ignored}


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Rows of a metadata CSV keyed by its ``filename`` column (relative path or base name)."""
    if not path.exists():
        raise SourceError(f"metadata file {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "filename" not in columns:
            raise SourceError(
                f"{path}: needs a 'filename' column naming each image "
                f"(found columns: {', '.join(columns) or 'none'})"
            )
        rows: dict[str, dict[str, str]] = {}
        for line_no, row in enumerate(reader, start=2):
            name = (row.get("filename") or "").strip()
            if not name:
                log.warning("%s line %d: empty filename, row ignored", path, line_no)
                continue
            if None in row:
                log.warning(
                    "%s line %d: more fields than header columns; extras ignored", path, line_no
                )
                row.pop(None)
            rows[name] = {k: v for k, v in row.items() if k != "filename"}
    return rows


def manifest_items(
    spec: SourceSpec, store: Path, options: DownloadOptions
) -> tuple[list[SourceItem], dict[str, int]]:
    """Download every manifest URL (resumably) into ``store`` and describe each row's
    outcome."""
    manifest = read_manifest(spec.source, spec.url_column, spec.title_column, spec.id_column)
    urls = [row.url for row in manifest.rows if row.error is None and row.url]
    downloader = Downloader(store, options)
    with progress_bar() as bar:
        task = bar.add_task("download", total=len(set(urls)))
        results = downloader.run(urls, on_result=lambda _: bar.advance(task))
    print_download_summary(results.values())
    items = []
    for row in manifest.rows:
        result: DownloadResult | None = results.get(row.url) if row.error is None else None
        suffix = Path(result.file).suffix if result and result.file else ""
        item = SourceItem(
            source=row.url or f"{manifest.path}:{row.line}",
            path=f"row{row.line:08d}{suffix}",
            local=None,
            title=row.title or _title_from_url(row.url),
            metadata={**row.metadata, "manifest_line": str(row.line)},
        )
        if row.error is not None:
            item.status, item.reason = "failed", row.error
        elif result is None or result.status != "ok":
            item.status = "failed"
            item.reason = (
                f"{result.error}: {result.detail}"
                if result and result.detail
                else result.error
                if result
                else "not_fetched"
            )
        else:
            item.local = store / result.file
        items.append(item)
    counts = {
        "manifest_rows": len(manifest.rows),
        "downloaded": sum(1 for r in results.values() if r.status == "ok"),
        "download_failed": sum(1 for r in results.values() if r.status != "ok"),
    }
    return items, counts


def print_download_summary(results) -> None:
    by_status, by_host = summarise(results)
    table = Table(title="download", title_justify="left")
    table.add_column("status")
    table.add_column("urls", justify="right")
    for status, count in sorted(by_status.items(), key=lambda kv: -kv[1]):
        table.add_row(status, f"{count:,}")
    hosts = Table(title="download by host", title_justify="left")
    hosts.add_column("host")
    hosts.add_column("ok", justify="right")
    hosts.add_column("failed", justify="right")
    for host in sorted({h for h, _ in by_host}):
        hosts.add_row(host, f"{by_host[(host, 'ok')]:,}", f"{by_host[(host, 'failed')]:,}")
    console.print(table)
    console.print(hosts)


def _title_from_url(url: str | None) -> str | None:
    if not url:
        return None
    name = Path(unquote(urlsplit(url).path)).stem
    return name or None
