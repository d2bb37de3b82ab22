"""Near duplicates: the same picture resized, recompressed, cropped, bordered, letterboxed,
framed, colour-graded, retitled, watermarked or mirrored, never another picture with the
same motif.

1. **Candidates**: each image's ``neighbours`` nearest images by CNN cosine (hnswlib on a
   PCA-128 projection), plus pairs whose perceptual hashes share a 16-bit quarter and
   differ in at most ``phash_bits``.
2. **Floor**: pairs below ``near_cosine`` CNN cosine similarity are not compared.
3. **Layout** (:mod:`postermap.cleaning.layout`): the pair must be the same picture region
   by region. *Pictures* (photographs, paintings, posters with texture) may differ by one
   colour grade within ``picture_grade`` and in a minority of regions (a new title, a
   watermark): ``near_layout`` of the regions must match, and ``near_layout - 0.1`` of
   the structure-weighted regions. A mirrored copy is compared with B mirrored.
   *Graphics* (pairs whose flat share plus palette share, averaged, is at least
   ``graphic_score``: mostly flat fills in a few colours, as icons, emoji, logos and flat
   designs are) carry their meaning in every stroke, colour and orientation: two keycaps,
   two flags or a left and a right arrow differ in one region, one colour or a mirror.
   They must match in ``graphic_layout`` of the regions, up to the slight changes of
   contrast that resampling and compression bring (``graphic_grade``: no recolouring),
   not mirrored, with the drawing at the same size and place in its canvas, and then
   pixel for pixel on their thumbnails
   (:func:`postermap.cleaning.layout.same_graphic_pixels`) when they can be read.
4. **Groups**: stars, not chains (see :func:`star_groups`).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image

from postermap.cleaning.layout import Layouts, PairMeasures, compare, same_graphic_pixels
from postermap.cleaning.records import Verdict, keep_order
from postermap.knn import SHARDS, ShardedIndex
from postermap.vectors import Projection, normalise

log = logging.getLogger(__name__)

#: content hash -> thumbnail (RGB) or None when it cannot be read
ThumbnailReader = Callable[[str], Image.Image | None]


class Confirmed(NamedTuple):
    """The confirmed pairs (row indices, i < j) with their CNN cosine, the share of the
    layout that matched and whether the copy is mirrored."""

    pairs: np.ndarray
    cosine: np.ndarray
    layout: np.ndarray
    mirrored: np.ndarray


#: hash buckets larger than this are chance (a shared plain band), not near copies
MAX_BUCKET = 64

#: pairs whose two sides are gathered at once (two chunks of features, 42 MB at 1,280-d)
PAIR_CHUNK = 8192


def candidate_pairs(
    rows: list[dict], features: np.ndarray, live: list[int], k: int, phash_bits: int
) -> np.ndarray:
    """(m, 2) row indices (i < j) of pairs worth comparing: embedding neighbours and
    perceptual-hash buckets (hashes within ``phash_bits``)."""
    both = np.vstack(
        [
            embedding_candidates(features, np.asarray(live), k),
            phash_candidates([rows[i]["phash"] for i in live], phash_bits),
        ]
    )
    local = unique_pairs(both[:, 0], both[:, 1])
    return np.asarray(live, np.int64)[local].reshape(-1, 2)


def unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, 2) int64 pairs (i < j) of positions ``a[t]``, ``b[t]``, each once, sorted, none
    of a position with itself. Arrays, not a set of tuples: at a million images the
    candidates are tens of millions of pairs, gigabytes as Python objects."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    keep = a != b
    low, high = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    if not len(low):
        return np.zeros((0, 2), np.int64)
    width = int(high.max()) + 1
    codes = np.unique(low * width + high)
    return np.column_stack([codes // width, codes % width])


def confirm(
    rows: list[dict],
    features: np.ndarray,
    layouts: Layouts,
    pairs: np.ndarray,
    params,
    thumbnail: ThumbnailReader | None = None,
    workers: int = 1,
) -> Confirmed:
    """The candidate ``pairs`` confirmed as near duplicates.

    ``params`` is a :class:`postermap.cleaning.CleanParams`; ``workers`` processes may
    share the layout comparison.
    """
    if len(pairs) == 0:
        empty = np.zeros(0, np.float32)
        return Confirmed(pairs, empty, empty, empty.astype(bool))
    a, b = pairs[:, 0], pairs[:, 1]
    cosine = pair_cosines(features, a, b)
    keep = (cosine >= params.near_cosine) & layouts.present[a] & layouts.present[b]
    pairs, cosine = pairs[keep], cosine[keep]
    measures = compare(
        layouts,
        pairs[:, 0],
        pairs[:, 1],
        grey_tolerance=params.grey_tolerance,
        grey_floor=params.grey_floor,
        chroma_tolerance=params.chroma_tolerance,
        workers=workers,
    )
    accepted, graphic = layout_accepts(measures, params)
    if thumbnail is not None:
        for n in np.flatnonzero(accepted & graphic):
            i, j = pairs[n]
            accepted[n] = _same_thumbnails(rows[i], rows[j], layouts, i, j, measures, n, thumbnail)
    log.debug(
        "near duplicates: %d candidate pairs above cosine %.2f, %d confirmed (%d graphics)",
        len(pairs),
        params.near_cosine,
        int(accepted.sum()),
        int((accepted & graphic).sum()),
    )
    layout = np.where(graphic, measures.area_exact, measures.area)
    return Confirmed(pairs[accepted], cosine[accepted], layout[accepted], measures.flip[accepted])


def pair_cosines(features: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each pair of (unit) feature rows, in chunks: gathering both sides of a
    million pairs at once would copy gigabytes."""
    out = np.empty(len(a), np.float32)
    step = PAIR_CHUNK
    for start in range(0, len(a), step):
        ia, ib = a[start : start + step], b[start : start + step]
        out[start : start + step] = np.einsum("ij,ij->i", features[ia], features[ib])
    return out


def layout_accepts(m: PairMeasures, params) -> tuple[np.ndarray, np.ndarray]:
    """(same picture, compared as graphics) per pair, from the layout measures alone."""
    graphic = m.graphic >= params.graphic_score
    picture = (
        ~graphic
        & _within_grade(m, params.picture_grade)
        & (m.area >= params.near_layout)
        & (m.detail >= params.near_layout - 0.1)
    )
    drawing = (
        graphic
        & ~m.flip
        & (m.aspect <= params.near_aspect)
        & (m.size <= params.graphic_placement[0])
        & (m.centre <= params.graphic_placement[1])
        & _within_grade(m, params.graphic_grade)
        & (m.area >= params.graphic_layout)
        & (m.detail >= params.graphic_layout)
    )
    return picture | drawing, graphic


def _within_grade(m: PairMeasures, grade: tuple) -> np.ndarray:
    """Pairs whose colour difference a grade allows: (gain low, gain high, grey shift,
    saturation low, saturation high, largest shift, largest cast)."""
    lo, hi, grey_shift, sat_lo, sat_hi, max_shift, max_cast = grade
    return (
        (m.gain >= lo)
        & (m.gain <= hi)
        & (np.abs(m.grey_offset) <= grey_shift)
        & (m.saturation >= sat_lo)
        & (m.saturation <= sat_hi)
        & (m.shift <= max_shift)
        & (m.cast <= max_cast)
    )


def _same_thumbnails(
    row_a: dict,
    row_b: dict,
    layouts: Layouts,
    i: int,
    j: int,
    m: PairMeasures,
    n: int,
    thumbnail: ThumbnailReader,
) -> bool:
    """The pixel check of a graphic pair on its thumbnails, aligned by the registration."""
    ta, tb = thumbnail(row_a["content_hash"]), thumbnail(row_b["content_hash"])
    if ta is None or tb is None:
        return True  # the layout said so; nothing more to look at
    crop_a = _crop(ta, layouts.box[i])
    crop_b = _crop(tb, layouts.box[j])
    width = min(crop_a.width, crop_b.width, 128)
    height = min(crop_a.height, crop_b.height, 128)
    if min(width, height) < 4:
        return True
    # A's normalised x maps to B's scale * x + offset (see layout.compare)
    wb, hb = crop_b.size
    region = (
        max(0.0, float(m.offset_x[n]) * wb),
        max(0.0, float(m.offset_y[n]) * hb),
        min(float(wb), float(m.offset_x[n] + m.scale_x[n]) * wb),
        min(float(hb), float(m.offset_y[n] + m.scale_y[n]) * hb),
    )
    size = (width, height)
    a = np.asarray(crop_a.resize(size, Image.Resampling.BOX))
    b = np.asarray(crop_b.resize(size, Image.Resampling.BOX, box=region))
    return same_graphic_pixels(a, b)


def _crop(image: Image.Image, box: np.ndarray) -> Image.Image:
    w, h = image.size
    left, top = int(round(box[0] * w)), int(round(box[1] * h))
    right, bottom = max(left + 1, int(round(box[2] * w))), max(top + 1, int(round(box[3] * h)))
    return image.convert("RGB").crop((left, top, right, bottom))


def star_groups(
    rows: list[dict], pairs: np.ndarray, first: Callable[[int], tuple] | None = None
) -> list[list[int]]:
    """Groups (row indices, representative first, size >= 2) of confirmed pairs.

    Groups are stars, not chains: images are visited largest first (then larger file, then
    path); an unassigned image becomes a representative and takes every unassigned image
    *directly* confirmed with it. So A~B and B~C never put A and C together unless A~C
    holds too (transitive closure would merge, say, all flags with stripes). ``first``
    (row index -> sort key) replaces that order (``add`` visits the map's images first).
    """
    confirmed: dict[int, set[int]] = defaultdict(set)
    for i, j in pairs.tolist():
        confirmed[i].add(j)
        confirmed[j].add(i)
    assigned: set[int] = set()
    groups = []
    for rep in sorted(confirmed, key=first or (lambda i: keep_order(rows[i]))):
        if rep in assigned:
            continue
        members = sorted(j for j in confirmed[rep] if j not in assigned)
        if not members:
            continue
        assigned.add(rep)
        assigned.update(members)
        groups.append([rep, *members])
    return groups


def group_verdicts(
    rows: list[dict],
    features: np.ndarray,
    found: Confirmed,
    keep_near_duplicates: bool,
    first: Callable[[int], tuple] | None = None,
    judged: Callable[[int], bool] | None = None,
) -> dict[str, Verdict]:
    """The verdict of every member of the :func:`star_groups` of ``found`` but their
    representatives (only of members ``judged`` accepts, if given): ``near_duplicate`` of
    its representative (``ok`` with ``keep_near_duplicates``), with the cosine and the share
    of regions that matched in the reason."""
    share = {
        (int(i), int(j)): (float(s), bool(f))
        for (i, j), s, f in zip(found.pairs, found.layout, found.mirrored, strict=True)
    }
    status = "ok" if keep_near_duplicates else "near_duplicate"
    verdicts: dict[str, Verdict] = {}
    judged_pairs = [
        (i, rep)
        for rep, *members in star_groups(rows, found.pairs, first=first)
        for i in members
        if judged is None or judged(i)
    ]
    # both sides gathered in chunks (the features may be read from disk on demand)
    step = PAIR_CHUNK
    for start in range(0, len(judged_pairs), step):
        chunk = np.array(judged_pairs[start : start + step], np.int64)
        left, right = features[chunk[:, 0]], features[chunk[:, 1]]
        for k, (i, rep) in enumerate(judged_pairs[start : start + step]):
            sim = float(left[k] @ right[k])
            layout, mirrored = share.get((min(i, rep), max(i, rep)), (1.0, False))
            verdicts[rows[i]["id"]] = Verdict(
                status,
                f"near_duplicate: cosine {sim:.3f}, layout {layout:.2f}"
                + (", mirrored" if mirrored else ""),
                rows[rep]["id"],
                round(sim, 4),
            )
    return verdicts


def embedding_candidates(
    features: np.ndarray, rows: np.ndarray, k: int, dims: int = 128, shards: int = SHARDS
) -> np.ndarray:
    """(m, 2) pairs (i < j) of positions in ``rows`` where j is among i's k nearest
    neighbours by cosine (hnswlib) of ``features[rows]`` (:func:`unique_pairs`).

    Vectors are first projected to ``dims`` principal components (and re-normalised):
    candidates only need the neighbourhood right, the confirmation uses the full vectors,
    and a 128-d index builds ~10x faster than a 1280-d one at 169k images. The projection
    is fitted on a sample and applied in chunks, so no copy of the rows is made. The index
    is ``shards`` graphs built at once (:mod:`postermap.knn`): the same pairs on every run.
    """
    if len(rows) < 2:
        return np.zeros((0, 2), np.int64)
    if features.shape[1] > dims and len(rows) > dims:
        vectors = Projection.fit(features, rows, dims, seed=0).transform(features, rows)
    else:
        vectors = normalise(features[rows])
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = min(k + 1, n)
    index = ShardedIndex.build(
        vectors, space="ip", links=16, ef_construction=200, ef=max(50, 2 * k), shards=shards
    )
    labels, _ = index.query(vectors, k)
    return unique_pairs(np.repeat(np.arange(n), labels.shape[1]), labels.ravel())


def phash_candidates(
    hashes: list[str | None], max_bits: int = 64, involving: set[int] | None = None
) -> np.ndarray:
    """(m, 2) pairs (i < j, sorted) whose 64-bit hashes (16 hex digits; None or anything
    else is no hash) share a whole 16-bit quarter (multi-index hashing) and differ in at
    most ``max_bits`` bits, with buckets of more than :data:`MAX_BUCKET` skipped so a
    flood of identical quarters cannot make this quadratic; with ``involving``, only
    pairs with at least one of those positions.

    The quarters find every pair within 3 bits and most pairs a little further; a shared
    quarter between hashes that differ in many more bits is chance, common where many
    pictures share a plain band or a background (on the synthetic 169k set, two in three
    of the pairs only the quarters found differ in more than 16 bits), and each costs a
    layout comparison. Every bucket of one size is paired at once: bucket by bucket in
    Python, as sets of tuples, this was slow and gigabytes at a million images.
    """
    at = [i for i, h in enumerate(hashes) if isinstance(h, str) and _is_hash(h)]
    values = np.array([int(hashes[i], 16) for i in at], dtype=np.uint64)
    at = np.asarray(at, np.int64)
    firsts, seconds = [], []
    for quarter in range(4):
        key = (values >> np.uint64(48 - 16 * quarter)) & np.uint64(0xFFFF)
        order = np.argsort(key, kind="stable")  # a bucket's members in position order
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, len(key)])
        for size in np.unique(sizes[(sizes >= 2) & (sizes <= MAX_BUCKET)]).tolist():
            x, y = np.triu_indices(size, 1)
            first = starts[sizes == size][:, None]
            firsts.append(order[first + x].ravel())
            seconds.append(order[first + y].ravel())
    if not firsts:
        return np.zeros((0, 2), np.int64)
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    close = np.bitwise_count(values[a] ^ values[b]) <= max_bits
    a, b = at[a[close]], at[b[close]]
    if involving is not None:
        wanted = np.fromiter(involving, np.int64, len(involving))
        keep = np.isin(a, wanted) | np.isin(b, wanted)
        a, b = a[keep], b[keep]
    return unique_pairs(a, b)


#: 16 hex digits, as the ingest stage writes a perceptual hash
_is_hash = re.compile(r"[0-9a-fA-F]{16}").fullmatch
