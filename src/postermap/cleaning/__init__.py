"""Cleaning: exact duplicates, boring images, placeholder templates and near duplicates,
each with a reason.

Nothing is deleted. Every image keeps its row; the verdicts are ``status`` + ``reason``
(+ ``duplicate_of`` and ``similarity`` for duplicates), and ``overrides.toml`` in the
workspace can keep or drop any id (see :mod:`postermap.overrides`). In order:

1. **Exact duplicates** — identical bytes (``same_bytes``) or identical decoded pixels under
   another encoding (``same_pixels``); the first copy by path is kept.
2. **Boring** (:mod:`.boring`) — from the per-image measurements taken at ingest:
   ``solid``, ``gradient``, ``low_detail`` (no sharp edge wherever there is anything) and
   ``tiny`` (fewer than ``boring_min_side`` effective pixels: pixel size over the side of
   the blocks a pixel-block upscale repeats).
3. **Placeholder templates** (:mod:`.templates`) — in a collection of pictures, groups of
   ``template_min_size`` or more plain low-colour cards that are one layout with only a
   line of text changing (templated title cards) or none (a "no poster" card at several
   sizes): every member is ``boring`` / ``placeholder_template``.
4. **Near duplicates** (:mod:`.near`, :mod:`.layout`) — candidates from CNN neighbours and
   perceptual-hash buckets, confirmed only when the layouts agree region by region (up to
   a crop, a frame, one colour grade, a mirror and, for pictures, a changed minority of
   regions such as a new title); graphics are held to every region, no mirror, and their
   thumbnails pixel by pixel. Each group is a representative and the images directly
   confirmed with it (no chaining).

Representative of a near-duplicate group (:func:`keep_order`): the most pixels, then the
least lossy format, then the larger file, then the first by path. The thresholds were
chosen on one labelled set, ``clipart-posters`` seed 0 (tests/heldout); every other set
is held out. ``python -m benchmarks.clean`` prints the figures and the trade-off curves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from postermap.cleaning.added import clean_additions
from postermap.cleaning.boring import boring_reason, boring_verdicts
from postermap.cleaning.layout import Layouts
from postermap.cleaning.near import (
    ThumbnailReader,
    candidate_pairs,
    confirm,
    embedding_candidates,
    group_verdicts,
    phash_candidates,
    star_groups,
)
from postermap.cleaning.records import (
    CLEAN_COLUMNS,
    INPUT_COLUMNS,
    LOSSLESS_FORMATS,
    LOSSY_FORMATS,
    Verdict,
    find_exact_duplicates,
    keep_order,
    mark_failed,
    unit_features,
    unit_rows,
    verdict_counts,
    verdict_table,
)
from postermap.cleaning.templates import template_groups

__all__ = [
    "CLEAN_COLUMNS",
    "INPUT_COLUMNS",
    "LOSSLESS_FORMATS",
    "LOSSY_FORMATS",
    "CleanParams",
    "ThumbnailReader",
    "Verdict",
    "boring_reason",
    "clean_additions",
    "clean_collection",
    "embedding_candidates",
    "find_exact_duplicates",
    "keep_order",
    "mark_failed",
    "near_duplicate_groups",
    "phash_candidates",
    "unit_features",
    "unit_rows",
    "verdict_counts",
    "verdict_table",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanParams:
    """Thresholds of the clean stage (chosen on clipart-posters seed 0; see README)."""

    # -- boring
    solid_std: float = 4.0
    sharp_edge: float = 15.0
    gradient_detail: float = 1.2
    boring_min_side: int = 32
    # -- near duplicates
    #: CNN cosine below which a candidate pair is not compared at all
    near_cosine: float = 0.5
    #: share of the regions of a picture that must match (and minus 0.1, of its detail)
    near_layout: float = 0.75
    #: |log| of the ratio of two graphics' content boxes' aspect ratios (a square is not a
    #: rectangle; for pictures the registration's range bounds it)
    near_aspect: float = 0.15
    #: a region matches when its grey residual is at most this share of its own structure
    #: (the larger local spread of the two), or ``grey_floor`` grey levels, and its chroma
    #: residual at most ``chroma_tolerance`` (of 255)
    grey_tolerance: float = 0.8
    grey_floor: float = 6.0
    chroma_tolerance: float = 12.0
    #: the colour grades a picture's copy may have: gain low, high, grey shift at mid grey,
    #: saturation low (down to none: sepia, black and white), high, chroma shift with
    #: luminance (teal-orange), chroma cast
    picture_grade: tuple[float, ...] = (0.6, 1.6, 30.0, -0.1, 1.6, 0.8, 150.0)
    #: flat share + palette share (averaged over the pair) from which a pair is compared
    #: as graphics
    graphic_score: float = 1.2
    #: share of a graphic's regions (and of its detail) that must match
    graphic_layout: float = 0.98
    #: ... up to what resampling and compression do to contrast, never a recolouring
    #: (same order as ``picture_grade``)
    graphic_grade: tuple[float, ...] = (0.85, 1.18, 15.0, 0.8, 1.25, 0.1, 10.0)
    #: a graphic's drawing at the same size (|log| ratio) and place (share of the canvas):
    #: icon sets draw their variants on one grid, so the same drawing moved or scaled in
    #: its canvas is another glyph
    graphic_placement: tuple[float, float] = (0.03, 0.02)
    neighbours: int = 10
    #: perceptual hashes that share a quarter are compared only within this many bits (of
    #: 64); the near duplicates only the hashes found differ by at most 10 on every
    #: labelled set, and this keeps a flood of chance pairs out (see ``phash_candidates``)
    phash_bits: int = 16
    # -- templates
    template_min_size: int = 3
    template_max_colours: float = 60.0
    #: grey difference (of 255) above which a region of two cards differs
    template_grey: float = 12.0
    keep_near_duplicates: bool = False


def clean_collection(
    rows: list[dict],
    features: np.ndarray | None,
    params: CleanParams,
    thumbnail: ThumbnailReader | None = None,
    workers: int = 1,
) -> dict[str, Verdict]:
    """Verdicts for the rows that are not plain ``ok`` (ids missing from the result are ok).

    Args:
        rows: ingest rows (``id``, ``path``, ``status``, ``content_hash``, ``pixel_hash``,
            ``width``, ``height``, ``bytes`` and the :func:`image_stats` columns).
        features: L2-normalised embedding per row (aligned with ``rows``), or None to skip
            the embedding-based steps.
        thumbnail: reads a thumbnail by content hash, for the pixel check of graphics
            (without it, graphics are judged by their layout signatures alone).
        workers: processes the candidate pairs' layout comparison may use (the verdicts
            are the same for any number).
    """
    verdicts: dict[str, Verdict] = {}
    for dup, (rep, reason) in find_exact_duplicates(rows).items():
        verdicts[dup] = Verdict("duplicate", reason, rep, 1.0)
    live = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["id"] not in verdicts]
    verdicts.update(boring_verdicts(rows, live, params))
    live = [i for i in live if rows[i]["id"] not in verdicts]
    if features is None or len(live) < 2:
        return verdicts
    layouts = Layouts.from_rows(rows)
    pairs = candidate_pairs(rows, features, live, params.neighbours, params.phash_bits)
    for members in template_groups(rows, layouts, live, pairs, params):
        for i in members:
            verdicts[rows[i]["id"]] = Verdict(
                "boring",
                f"placeholder_template: one of {len(members)} plain cards of one layout, "
                "only a line of text differs",
            )
    taken = np.array([rows[i]["id"] in verdicts for i in range(len(rows))], bool)
    pairs = pairs[~taken[pairs[:, 0]] & ~taken[pairs[:, 1]]] if len(pairs) else pairs
    found = confirm(rows, features, layouts, pairs, params, thumbnail, workers)
    verdicts.update(group_verdicts(rows, features, found, params.keep_near_duplicates))
    return verdicts


def near_duplicate_groups(
    rows: list[dict],
    features: np.ndarray,
    live: list[int],
    params: CleanParams,
    thumbnail: ThumbnailReader | None = None,
) -> list[list[int]]:
    """Near-duplicate groups (row indices, representative first) among ``live`` rows,
    without the template pass (for benchmarks and tests)."""
    layouts = Layouts.from_rows(rows)
    pairs = candidate_pairs(rows, features, live, params.neighbours, params.phash_bits)
    return star_groups(rows, confirm(rows, features, layouts, pairs, params, thumbnail).pairs)
