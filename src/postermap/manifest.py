"""Manifests: a table of image URLs plus metadata, as CSV, TSV, Parquet or JSON Lines.

Every row of the file becomes a :class:`ManifestRow`, including the ones that cannot be
used (no URL, malformed line): those carry an ``error`` so they reach the catalog as
``failed`` rows with a reason, instead of vanishing. Column roles (URL, title, id) are
given or auto-detected; all other columns travel along as metadata.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from postermap.errors import ManifestError

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = {".csv", ".tsv", ".parquet", ".jsonl", ".ndjson"}
URL_CANDIDATES = (
    "url",
    "image_url",
    "poster_url",
    "img_url",
    "image",
    "poster",
    "src",
    "link",
    "href",
)
TITLE_CANDIDATES = ("title", "name", "caption", "label")
ID_CANDIDATES = ("id", "key", "image_id", "imdb_id", "poster_id")


@dataclass
class ManifestRow:
    """One line of the manifest. ``line`` is the 1-based line (CSV/JSONL) or row number."""

    line: int
    url: str | None
    title: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Manifest:
    path: Path
    url_column: str
    title_column: str | None
    id_column: str | None
    rows: list[ManifestRow]


def is_manifest(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES


def read_manifest(
    path: Path,
    url_column: str | None = None,
    title_column: str | None = None,
    id_column: str | None = None,
) -> Manifest:
    """Read ``path`` and resolve the column roles (explicit names win over detection)."""
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"{path}: unknown manifest type {suffix!r}; use one of "
            f"{', '.join(sorted(MANIFEST_SUFFIXES))}"
        )
    if suffix in (".csv", ".tsv"):
        columns, records = _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        columns, records = _read_parquet(path)
    else:
        columns, records = _read_jsonl(path)
    url_col = _resolve(path, "URL", url_column, URL_CANDIDATES, columns, records, required=True)
    title_col = _resolve(path, "title", title_column, TITLE_CANDIDATES, columns, records)
    id_col = _resolve(path, "id", id_column, ID_CANDIDATES, columns, records)
    roles = {url_col, title_col}  # the id column stays in the metadata under its own name
    rows = []
    for line, record, error in records:
        url = (record.get(url_col) or "").strip() or None
        if error is None and url is None:
            error = f"no_url: line {line} has an empty '{url_col}'"
        rows.append(
            ManifestRow(
                line=line,
                url=url,
                title=(record.get(title_col) or None) if title_col else None,
                metadata={
                    k: v for k, v in record.items() if k not in roles and v not in (None, "")
                },
                error=error,
            )
        )
    bad = sum(1 for r in rows if r.error)
    if bad:
        log.warning(
            "%s: %d of %d rows cannot be fetched (see their reason in the catalog)",
            path,
            bad,
            len(rows),
        )
    return Manifest(path, url_col, title_col, id_col, rows)


Record = tuple[int, dict[str, str], str | None]


def _read_delimited(path: Path, delimiter: str) -> tuple[list[str], list[Record]]:
    records: list[Record] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(f"{path}: empty file, expected a header row") from None
        header = [h.strip() for h in header]
        try:
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue
                record = dict(zip(header, fields, strict=False))
                error = None
                if len(fields) != len(header):
                    error = (
                        f"malformed_row: line {line} has {len(fields)} fields, the header "
                        f"has {len(header)}"
                    )
                records.append((line, record, error))
        except csv.Error as err:
            raise ManifestError(f"{path} line {reader.line_num}: {err}") from err
    return header, records


def _read_parquet(path: Path) -> tuple[list[str], list[Record]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    records = [
        (i + 1, {k: None if v is None else str(v) for k, v in row.items()}, None)
        for i, row in enumerate(table.to_pylist())
    ]
    return table.column_names, records


def _read_jsonl(path: Path) -> tuple[list[str], list[Record]]:
    columns: dict[str, None] = {}
    records: list[Record] = []
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                records.append((line, {}, f"malformed_row: line {line} is not JSON ({err.msg})"))
                continue
            if not isinstance(obj, dict):
                records.append((line, {}, f"malformed_row: line {line} is not a JSON object"))
                continue
            record = {k: None if v is None else str(v) for k, v in obj.items()}
            columns.update(dict.fromkeys(record))
            records.append((line, record, None))
    return list(columns), records


def _resolve(
    path: Path,
    role: str,
    given: str | None,
    candidates: tuple[str, ...],
    columns: list[str],
    records: list[Record],
    required: bool = False,
) -> str | None:
    if given is not None:
        if given not in columns:
            raise ManifestError(
                f"{path}: no column named {given!r} for the {role}; columns: "
                f"{', '.join(columns) or 'none'}"
            )
        return given
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    if role == "URL":
        # Last resort: the column whose values look most like web addresses.
        sample = [r for _, r, _ in records[:200]]
        best, best_share = None, 0.0
        for column in columns:
            values = [str(r.get(column) or "") for r in sample]
            share = sum(v.startswith(("http://", "https://")) for v in values) / max(len(values), 1)
            if share > best_share:
                best, best_share = column, share
        if best is not None and best_share >= 0.5:
            return best
    if required:
        raise ManifestError(
            f"{path}: cannot tell which column holds the image URLs (columns: "
            f"{', '.join(columns) or 'none'}); pass --url-column"
        )
    return None
