"""What the clean stage reads and writes per row: the input columns, verdicts, the
exact-duplicate pass, which copy a group keeps, the output table and its counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from postermap.vectors import CHUNK, row_chunks
from postermap.workspace import read_rows

#: what the clean stage writes per row
CLEAN_COLUMNS = ("id", "status", "reason", "duplicate_of", "similarity")
#: ingest columns the rules read: as Python dicts, every column costs ~1 GB per million
#: rows (the 48-bin colour histograms alone ~1.6 GB), so only these are loaded
INPUT_COLUMNS = (
    "id",
    "path",
    "status",
    "reason",
    "content_hash",
    "pixel_hash",
    "width",
    "height",
    "format",
    "bytes",
    "phash",
    "gray_std",
    "detail",
    "edge_p99",
    "edge_sharp",
    "colours",
    "block",
    "flat",
    "palette",
    "signature",
)


@dataclass
class Verdict:
    status: str
    reason: str
    duplicate_of: str | None = None
    similarity: float | None = None


def find_exact_duplicates(
    rows: list[dict], first: Callable[[dict], Any] | None = None
) -> dict[str, tuple[str, str]]:
    """Map id -> (representative id, ``same_bytes`` | ``same_pixels``) for exact copies;
    the representative is the first member by path (or by the sort key ``first``: an
    added image never displaces one already on the map)."""
    key = first or (lambda r: r["path"])
    readable = sorted((r for r in rows if r["status"] == "ok"), key=key)
    verdicts: dict[str, tuple[str, str]] = {}
    for key, reason in (("content_hash", "same_bytes"), ("pixel_hash", "same_pixels")):
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in readable:
            if row["id"] not in verdicts:
                groups[row[key]].append(row)
        for members in groups.values():
            for member in members[1:]:
                verdicts[member["id"]] = (members[0]["id"], reason)
    return verdicts


def keep_order(row: dict) -> tuple:
    """Sort key of the image a near-duplicate group keeps, best first: the most pixels,
    then the least lossy format (lossless, then palette/either, then lossy), then the
    larger file, then the earliest path. A copy is usually smaller, re-encoded lossily or
    both; the original is what a person would keep."""
    fmt = (row.get("format") or "").lower()
    lossiness = 0 if fmt in LOSSLESS_FORMATS else 2 if fmt in LOSSY_FORMATS else 1
    area = (row["width"] or 0) * (row["height"] or 0)
    return (-area, lossiness, -(row["bytes"] or 0), row["path"])


LOSSLESS_FORMATS = frozenset({"png", "bmp", "tif", "tiff", "ppm", "pgm", "pbm", "pnm", "ico"})
LOSSY_FORMATS = frozenset({"jpg", "jpeg", "jfif", "jpe", "avif", "heic", "heif"})


#: up to this size the unit features are held in memory after all (gathers from the
#: memory map cost ~30 s more at 169k posters, whose 4.9M candidate pairs are read twice)
EAGER_BYTES = 1 << 30


class UnitRows:
    """L2-normalised features aligned with the clean rows, read from the memory-mapped
    embeddings when indexed (zeros where a row has none).

    Clean only ever needs some rows at a time (a PCA sample, chunks to project, the two
    sides of candidate pairs), so it never holds the N x 1280 float32 copy it used to
    make: 5.1 GB at a million images (up to ``eager_bytes`` it does hold them, which is
    faster for the pair cosines). Every row's norm is computed once, so a gather is
    a read and a division (the same float operations as normalising the rows, so the
    same values). Indexing (an int, a slice, an index or boolean array) returns a fresh
    array, like a NumPy fancy index.
    """

    dtype = np.dtype(np.float32)

    def __init__(
        self, vectors: np.ndarray, source: np.ndarray, eager_bytes: int = EAGER_BYTES
    ) -> None:
        self.vectors = vectors
        #: row i's position in ``vectors``, -1 where it has no features
        self.source = np.asarray(source, np.int64)
        self.shape = (len(self.source), vectors.shape[1])
        self._eager: np.ndarray | None = None
        self._norms: np.ndarray | None = None
        if len(self.source) * self.shape[1] * 4 <= eager_bytes:
            # one pass over the rows that have features, as the stage always read them
            self._eager = np.zeros(self.shape, np.float32)
            have = np.flatnonzero(self.source >= 0)
            for start, unit in row_chunks(vectors, self.source[have]):
                self._eager[have[start : start + len(unit)]] = unit
        else:
            self._norms = np.ones(len(vectors), np.float32)
            for start, part in row_chunks(vectors, unit=False):
                self._norms[start : start + len(part)] = np.linalg.norm(part, axis=1)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if self._eager is not None:
            return self._eager[index]
        return self._gather(index)

    def _gather(self, index: np.ndarray) -> np.ndarray:
        assert self._norms is not None
        source = self.source[index]
        out = np.zeros((len(index), self.shape[1]), np.float32)
        have = np.flatnonzero(source >= 0)
        for start in range(0, len(have), CHUNK):
            at = have[start : start + CHUNK]
            rows = source[at]
            part = read_rows(self.vectors, rows)
            out[at] = part / np.maximum(self._norms[rows], 1e-12)[:, None]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def unit_rows(rows: list[dict], ids: np.ndarray, vectors: np.ndarray) -> UnitRows:
    """The unit features of ``rows`` (content hash ``ids[i]`` -> row i of the memory-mapped
    ``vectors``), for rows still ``ok``; read on demand (:class:`UnitRows`)."""
    row_of = {h: i for i, h in enumerate(ids.tolist())}
    source = np.array(
        [row_of.get(row["content_hash"], -1) if row["status"] == "ok" else -1 for row in rows],
        dtype=np.int64,
    )
    return UnitRows(vectors, source)


def unit_features(rows: list[dict], ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """:func:`unit_rows` as one array (for a few rows, or small collections)."""
    return unit_rows(rows, ids, vectors)[:]


def verdict_table(rows: list[dict], verdicts: dict[str, Verdict]) -> pa.Table:
    """The clean stage's table: every row's verdict (rows without one keep their ingest
    status and reason)."""
    out: dict[str, list] = {name: [] for name in CLEAN_COLUMNS}
    for row in rows:
        verdict = verdicts.get(row["id"]) or Verdict(row["status"], row["reason"])
        out["id"].append(row["id"])
        out["status"].append(verdict.status)
        out["reason"].append(verdict.reason)
        out["duplicate_of"].append(verdict.duplicate_of)
        out["similarity"].append(verdict.similarity)
    schema = pa.schema(
        [(c, pa.float32() if c == "similarity" else pa.string()) for c in CLEAN_COLUMNS]
    )
    return pa.table(out, schema=schema)


def verdict_counts(table: pa.Table) -> dict[str, int]:
    """Counts per status and per ``status:reason kind``, for the stage summary."""
    counts: dict[str, int] = {"in": table.num_rows}
    for status, reason in zip(
        table["status"].to_pylist(), table["reason"].to_pylist(), strict=True
    ):
        counts[status] = counts.get(status, 0) + 1
        if status in ("duplicate", "near_duplicate", "boring", "error") and reason:
            key = f"{status}:{reason.split(':')[0]}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def mark_failed(rows: list[dict], failures: dict[str, str]) -> None:
    """Rows whose image could not be embedded (``failures``: content hash -> reason) leave
    the map as status ``error``, in place."""
    for row in rows:
        if row["status"] == "ok" and row["content_hash"] in failures:
            row["status"], row["reason"] = "error", failures[row["content_hash"]]
