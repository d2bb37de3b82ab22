"""Cleaning: exact duplicates, near duplicates and boring images, each with a reason.

Nothing is deleted. Every image keeps its row; the verdicts are ``status`` + ``reason``
(+ ``duplicate_of`` and ``similarity`` for duplicates), and ``overrides.toml`` in the
workspace can keep or drop any id (see :mod:`postermap.overrides`). In order:

1. **Exact duplicates** — identical bytes (``same_bytes``) or identical decoded pixels under
   another encoding (``same_pixels``).
2. **Boring** — per-image measurements taken at ingest (:func:`postermap.images.image_stats`):
   ``solid`` (no contrast), ``gradient`` (contrast but no detail), ``tiny`` (smaller than
   ``boring_min_side`` pixels, or blown up from a tiny one in pixel blocks), ``low_detail``
   (no sharp edge anywhere: blurry upscales, fog). A minimalist poster survives: a single
   crisp motif or line of text is a sharp edge.
3. **Near duplicates** — candidate pairs from the embedding neighbours (hnswlib, cosine) and
   from equal perceptual-hash quarters; a pair is confirmed when the cosine similarity of
   the CNN features is at least ``near_cosine`` (0.88) and the perceptual hashes (of the
   border-trimmed images) differ in at most ``near_phash`` (26) bits, or the cosine alone
   reaches ``near_cosine_strong`` (0.95), or the hashes nearly agree (at most 8 bits) and
   the cosine is at least 0.70 (letterboxed and re-framed copies, which move the CNN
   features but not the trimmed hash). Each group is a representative and the images
   directly confirmed against it (no chaining through intermediaries).
4. **Placeholder templates** — a near-duplicate group of ``template_min_size`` or more
   images (representative included) with few colours is a site's "no poster" card with
   only the text changing: every member is ``boring`` / ``placeholder_template``.

Representative of a near-duplicate group (:func:`keep_order`): the most pixels, then the
least lossy format, then the larger file, then the first by path; of exact copies, the
first by path. Thresholds were chosen on the labelled set in ``tests/cleanset.py``
(``benchmarks/clean.py`` prints the precision and recall they give).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from postermap.errors import internal_reason
from postermap.vectors import Projection, normalise, row_chunks

log = logging.getLogger(__name__)

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
    "colours",
    "row_repeat",
)


@dataclass(frozen=True)
class CleanParams:
    """Thresholds of the clean stage (defaults measured on tests/cleanset.py)."""

    solid_std: float = 4.0
    sharp_edge: float = 15.0
    gradient_detail: float = 1.2
    boring_min_side: int = 32
    block_repeat: float = 0.85
    near_cosine: float = 0.88
    near_cosine_strong: float = 0.95
    near_phash: int = 26
    near_phash_tight: int = 8
    near_cosine_loose: float = 0.70
    neighbours: int = 10
    template_min_size: int = 6
    template_max_colours: float = 60.0
    keep_near_duplicates: bool = False


@dataclass
class Verdict:
    status: str
    reason: str
    duplicate_of: str | None = None
    similarity: float | None = None


def clean_collection(
    rows: list[dict], features: np.ndarray | None, params: CleanParams
) -> dict[str, Verdict]:
    """Verdicts for the rows that are not plain ``ok`` (ids missing from the result are ok).

    Args:
        rows: ingest rows (``id``, ``path``, ``status``, ``content_hash``, ``pixel_hash``,
            ``width``, ``height``, ``bytes`` and the :func:`image_stats` columns).
        features: L2-normalised embedding per row (aligned with ``rows``), or None to skip
            the embedding-based steps.
    """
    verdicts: dict[str, Verdict] = {}
    for dup, (rep, reason) in find_exact_duplicates(rows).items():
        verdicts[dup] = Verdict("duplicate", reason, rep, 1.0)
    live = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["id"] not in verdicts]
    for i in live:
        try:
            reason = boring_reason(rows[i], params)
        except Exception as err:  # noqa: BLE001 -- isolation: the row records the bug
            verdicts[rows[i]["id"]] = Verdict("error", internal_reason(err))
            continue
        if reason is not None:
            verdicts[rows[i]["id"]] = Verdict("boring", reason)
    live = [i for i in live if rows[i]["id"] not in verdicts]
    if features is None or len(live) < 2:
        return verdicts
    for members in near_duplicate_groups(rows, features, live, params):
        colours = float(np.median([rows[i]["colours"] for i in members]))
        if len(members) >= params.template_min_size and colours <= params.template_max_colours:
            for i in members:
                verdicts[rows[i]["id"]] = Verdict(
                    "boring",
                    f"placeholder_template: one of {len(members)} near-identical low-colour images",
                )
            continue
        rep = members[0]
        for i in members[1:]:
            sim = float(features[i] @ features[rep])
            status = "ok" if params.keep_near_duplicates else "near_duplicate"
            verdicts[rows[i]["id"]] = Verdict(
                status, f"near_duplicate: cosine {sim:.3f}", rows[rep]["id"], round(sim, 4)
            )
    return verdicts


def find_exact_duplicates(rows: list[dict]) -> dict[str, tuple[str, str]]:
    """Map id -> (representative id, ``same_bytes`` | ``same_pixels``) for exact copies;
    the representative is the first member by path."""
    readable = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["path"])
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


def boring_reason(row: dict, params: CleanParams) -> str | None:
    """Why an image is boring (``solid``, ``gradient``, ``tiny``, ``low_detail``, with the
    measured values), or None. See :func:`postermap.images.image_stats`."""
    if row.get("gray_std") is None:
        return None
    flat = row["edge_p99"] < params.sharp_edge
    if flat and row["gray_std"] < params.solid_std:
        return f"solid: contrast {row['gray_std']:.1f}, no edge (p99 {row['edge_p99']:.0f})"
    if min(row["width"], row["height"]) < params.boring_min_side:
        return f"tiny: {row['width']}x{row['height']} pixels"
    if flat and row["detail"] < params.gradient_detail:
        return f"gradient: detail {row['detail']:.2f}, no edge (p99 {row['edge_p99']:.0f})"
    if row["row_repeat"] >= params.block_repeat:
        return f"tiny: blown up from a tiny image ({row['row_repeat']:.0%} repeated rows)"
    if flat:
        return f"low_detail: no sharp edge anywhere (p99 {row['edge_p99']:.0f})"
    return None


def near_duplicate_groups(
    rows: list[dict], features: np.ndarray, live: list[int], params: CleanParams
) -> list[list[int]]:
    """Groups (row indices, representative first, size >= 2) of near duplicates.

    Groups are stars, not chains: images are visited largest first (then larger file, then
    path); an unassigned image becomes a representative and takes every unassigned image
    *directly* confirmed as its near duplicate. So A~B and B~C never put A and C together
    unless A~C holds too (transitive closure would merge, say, all flags with stripes).
    """
    candidates = embedding_candidates(features, np.asarray(live), params.neighbours)
    candidates |= phash_candidates([rows[i]["phash"] for i in live])
    confirmed: dict[int, set[int]] = defaultdict(set)
    for a, b in candidates:
        ia, ib = live[a], live[b]
        sim = float(features[ia] @ features[ib])
        bits = phash_distance(rows[ia]["phash"], rows[ib]["phash"])
        if (
            sim >= params.near_cosine_strong
            or (sim >= params.near_cosine and bits <= params.near_phash)
            or (sim >= params.near_cosine_loose and bits <= params.near_phash_tight)
        ):
            confirmed[ia].add(ib)
            confirmed[ib].add(ia)
    order = sorted(confirmed, key=lambda i: keep_order(rows[i]))
    assigned: set[int] = set()
    groups = []
    for rep in order:
        if rep in assigned:
            continue
        members = sorted(j for j in confirmed[rep] if j not in assigned)
        if not members:
            continue
        assigned.add(rep)
        assigned.update(members)
        groups.append([rep, *members])
    return groups


def embedding_candidates(
    features: np.ndarray, rows: np.ndarray, k: int, dims: int = 128
) -> set[tuple[int, int]]:
    """Pairs (i < j) of positions in ``rows`` where j is among i's k nearest neighbours
    by cosine (hnswlib) of ``features[rows]``.

    Vectors are first projected to ``dims`` principal components (and re-normalised):
    candidates only need the neighbourhood right, the confirmation uses the full vectors,
    and a 128-d index builds ~10x faster than a 1280-d one at 169k images. The projection
    is fitted on a sample and applied in chunks, so no copy of the rows is made.
    """
    import hnswlib

    if features.shape[1] > dims and len(rows) > dims:
        vectors = Projection.fit(features, rows, dims, seed=0).transform(features, rows)
    else:
        vectors = normalise(features[rows])
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    k = min(k + 1, n)
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=0)
    index.set_num_threads(1)  # deterministic graph
    index.add_items(vectors, np.arange(n))
    index.set_ef(max(50, 2 * k))
    labels, _ = index.knn_query(vectors, k=k)
    pairs = set()
    for i, row in enumerate(labels):
        for j in row:
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return pairs


def phash_candidates(hashes: list[str]) -> set[tuple[int, int]]:
    """Pairs whose 64-bit hashes share a whole 16-bit quarter (multi-index hashing), with
    buckets capped so a flood of identical quarters cannot make this quadratic."""
    pairs = set()
    for quarter in range(4):
        buckets: dict[str, list[int]] = defaultdict(list)
        for i, h in enumerate(hashes):
            buckets[h[quarter * 4 : (quarter + 1) * 4]].append(i)
        for members in buckets.values():
            if len(members) > 64:
                continue
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((members[x], members[y]))
    return pairs


def phash_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


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


def unit_features(rows: list[dict], ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """L2-normalised features aligned with ``rows`` (zeros where a row has none), read
    from the memory-mapped ``vectors`` (content hash ``ids[i]`` -> row i) chunk by chunk."""
    row_of = {h: i for i, h in enumerate(ids.tolist())}
    features = np.zeros((len(rows), vectors.shape[1]), dtype=np.float32)
    present = [
        (i, row_of[row["content_hash"]])
        for i, row in enumerate(rows)
        if row["status"] == "ok" and row["content_hash"] in row_of
    ]
    if present:
        at, source = (np.array(column) for column in zip(*present, strict=True))
        for start, unit in row_chunks(vectors, source):
            features[at[start : start + len(unit)]] = unit
    return features


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
