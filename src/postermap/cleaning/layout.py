"""Layout comparison: is this the same picture, region by region?

A global CNN cosine and a global hash say "these look alike"; posters that share one
large motif look alike too. The same picture is more: after undoing the framing (the
content box strips paired margins, :func:`postermap.images.content_box`) and a small
crop or shift (registration), nearly every part of one is the corresponding part of the
other, up to one colour grade applied to the whole picture. This module measures that on
the layout signatures taken at ingest (:func:`postermap.images.layout_signature`: a
32x32 grey and a 16x16 chroma picture of the content box), for candidate pairs only, in
batches:

1. **Registration**, per axis: the scale (0.86..1.16) and offset that best align B's grey
   profile (the mean of each column, or row) with A's, mirrored or not; the outer 6% of
   A is left out (frames). A grid of maps shared by all pairs is scored in one matrix
   product, on 16-point profiles first and then 32-point ones, and pairs whose profiles
   line up under no map (``ALIGNED_FLOOR``) stop there: most candidate pairs are not
   copies, and this keeps the stage fast. The rest are refined to a quarter of a grid
   step. A small prior favours identity (``MAP_PRIOR``), and where the map moved and the
   pair fell short, identity is tried too: a changed band (a new title) can pull the
   profiles.
2. **Grade**: one affine grey map (gain, offset) and one chroma map (a saturation scale,
   a shift with luminance, a cast) fitted robustly (Tukey weights, median scale: the
   regions a retitle or a watermark changed do not pull the fit).
3. **Regions**: on an 8x8 grid of the aligned pictures (outer ring left out), a region
   matches when its grey residual is within ``grey_tolerance`` of its own structure (the
   larger local spread of the two; at least ``grey_floor`` levels) and its chroma
   residual within ``chroma_tolerance``. Not blurred: a blur forgives misalignment but
   makes two textures of one grain alike. ``area`` is the matching share of the regions,
   ``detail`` the share weighted by structure (a plain field matches any plain field and
   is weak evidence); ``area_exact`` / ``detail_exact`` the same without the grade.

:class:`PairMeasures` carries everything per pair; :mod:`postermap.cleaning.near`
decides with it. Graphics (icons, emoji, flat designs: mostly flat fills in a few
colours) are held to a stricter standard there, and confirmed on their thumbnails with
:func:`same_graphic_pixels`.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from postermap.images import CHROMA_SIDE, SIGNATURE_BYTES, SIGNATURE_SIDE

log = logging.getLogger(__name__)

N = SIGNATURE_SIDE
C = CHROMA_SIDE
#: regions per side of the comparison grid
GRID = 8
#: share of each side left out of the comparison (frames, inner lines)
RING = 0.06
#: ... and of the registration: a retitle's band or a frame at an edge must not decide
#: where the rest of the picture lies
REGISTER_RING = 0.06
#: registration search: scales of B's axis relative to A's, offsets of the centre
SCALES = (0.86, 1.16)
OFFSETS = 0.09
COARSE_SCALES = np.array([0.86, 0.905, 0.95, 1.0, 1.05, 1.1, 1.16])
#: profile correlation (the worse axis) below which a pair is not compared further, for
#: profiles of 16 points (a first, cheap look) and of 32
ALIGNED_FLOOR = {16: 0.6, 32: 0.5}
#: correlation a map gives up per unit of scale change or centre shift: most copies are
#: not cropped, and a changed band (a new title) must not pull the map away from identity
MAP_PRIOR = 0.25
#: rows per batch of pairs (memory: ~60 KB per pair in flight)
BATCH = 1024


@dataclass
class Layouts:
    """Per-row layout data, aligned with the rows of a collection."""

    grey: np.ndarray  # (n, N, N) uint8
    chroma: np.ndarray  # (n, C, C, 2) int8, half the chroma difference
    box: np.ndarray  # (n, 4) float32: content box as fractions of the picture
    background: np.ndarray  # (n, 3) float32
    graphic: np.ndarray  # (n,) float32: flat share + palette share (0..2)
    aspect: np.ndarray  # (n,) float32, log(width / height) of the content box in pixels
    present: np.ndarray  # (n,) bool: the row has a signature

    @classmethod
    def from_rows(cls, rows: Sequence[dict]) -> Layouts:
        """From ingest rows (``signature``, ``flat``, ``palette``, ``width``, ``height``);
        rows without a signature (unreadable images, old workspaces) get zeros and
        ``present`` False."""
        n = len(rows)
        raw = np.zeros((n, SIGNATURE_BYTES), np.uint8)
        present = np.zeros(n, bool)
        for i, row in enumerate(rows):
            data = row.get("signature")
            if data is not None and len(data) == SIGNATURE_BYTES:
                raw[i] = np.frombuffer(data, np.uint8)
                present[i] = True
        g, c = N * N, C * C
        grey = raw[:, :g].reshape(n, N, N)
        chroma = np.ascontiguousarray(
            raw[:, g : g + 2 * c].view(np.int8).reshape(n, 2, C, C).transpose(0, 2, 3, 1)
        )
        box = raw[:, g + 2 * c : g + 2 * c + 4].astype(np.float32) / 255
        background = raw[:, g + 2 * c + 4 :].astype(np.float32)
        width = np.array([r.get("width") or 1 for r in rows], np.float32)
        height = np.array([r.get("height") or 1 for r in rows], np.float32)
        box_w = np.maximum(box[:, 2] - box[:, 0], 1 / 255) * width
        box_h = np.maximum(box[:, 3] - box[:, 1], 1 / 255) * height
        graphic = np.array(
            [(r.get("flat") or 0.0) + (r.get("palette") or 0.0) for r in rows], np.float32
        )
        aspect = np.log(box_w / box_h)
        return cls(np.ascontiguousarray(grey), chroma, box, background, graphic, aspect, present)


@dataclass
class PairMeasures:
    """What :func:`compare` measured for each pair (arrays of one length)."""

    flip: np.ndarray  # B was mirrored to match
    scale_x: np.ndarray
    offset_x: np.ndarray
    scale_y: np.ndarray
    offset_y: np.ndarray
    gain: np.ndarray  # grey map B ~ offset + gain * A
    grey_offset: np.ndarray  # ... its offset at mid grey
    saturation: np.ndarray  # chroma map: B ~ saturation * A + shift * luminance + cast
    shift: np.ndarray  # |shift| (both chroma planes, summed)
    cast: np.ndarray  # |cast|
    area: np.ndarray  # share of regions matching under the fitted grade
    detail: np.ndarray  # the same, weighted by structure
    area_exact: np.ndarray  # share of regions matching without any grade
    detail_exact: np.ndarray
    worst: np.ndarray  # largest grey residual of a region without any grade (0..255)
    aspect: np.ndarray  # |log| ratio of the content boxes' aspect ratios
    size: np.ndarray  # |log| ratio of the boxes' sizes within their pictures (larger axis)
    centre: np.ndarray  # distance of the boxes' centres within their pictures (larger axis)
    graphic: np.ndarray  # the mean graphic score (flat + palette share) of the two
    aligned: np.ndarray  # the worse of the two axes' profile correlations after registration


def compare(
    layouts: Layouts,
    a: np.ndarray,
    b: np.ndarray,
    *,
    mirror: bool = True,
    grey_tolerance: float = 0.8,
    grey_floor: float = 6.0,
    chroma_tolerance: float = 12.0,
    structure_floor: float = 2.0,
    workers: int = 1,
) -> PairMeasures:
    """Measures of every pair (a[i], b[i]) of row indices, computed in batches.

    The matrix products are small: a BLAS that splits them over threads spends more time
    waking them than computing (4x slower on two cores once scikit-learn or hnswlib has
    started its pool), so BLAS runs on one thread here (threadpoolctl ships with
    scikit-learn), and the batches are shared out over ``workers`` forked processes
    instead where there are many (on posters that share themes, hundreds of thousands of
    candidate pairs: most of the clean stage's time). Each batch's measures do not depend
    on the others, so the result is the same for any number of workers.
    """
    from threadpoolctl import threadpool_limits

    options = (mirror, grey_tolerance, grey_floor, chroma_tolerance, structure_floor)
    with threadpool_limits(1):
        if workers > 1 and len(a) >= PARALLEL_PAIRS and _can_fork():
            return _compare_forked(layouts, a, b, options, workers)
        return _compare(layouts, a, b, *options)


#: candidate pairs from which comparing them in several processes pays for starting them
PARALLEL_PAIRS = 8 * 1024
#: what forked comparison workers read (set before the fork, so nothing is pickled)
_FORKED: list[Any] = []


def _can_fork() -> bool:
    """Whether the comparison may fork workers: where the platform forks, and not in a
    process that hosts Ray. Ray leaves a dozen native threads behind (even after
    ``ray.shutdown``), and a forked child gets a copy of any lock they hold, held by no
    one: the child can wait on it for ever (a test run hung so). There the comparison
    runs in this process; the Ray tasks have the cluster's cores."""
    return "fork" in multiprocessing.get_all_start_methods() and "ray" not in sys.modules


def _compare_forked(
    layouts: Layouts, a: np.ndarray, b: np.ndarray, options: tuple, workers: int
) -> PairMeasures:
    """The batches on ``workers`` forked processes; in this process if one of them dies.

    ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: a pool whose worker is
    killed (out of memory, say) waits for its result for ever, the executor says so."""
    from postermap.runner import die_with_parent

    _FORKED[:] = [layouts, a, b, options]
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, context, initializer=die_with_parent) as pool:
            parts = list(pool.map(_forked_batch, range(0, len(a), BATCH), chunksize=4))
    except BrokenProcessPool as err:
        log.warning("layout comparison: a worker process died (%s); comparing here", err)
        return _compare(layouts, a, b, *options)
    finally:
        _FORKED.clear()
    return _joined(parts)


def _forked_batch(start: int) -> PairMeasures:
    layouts, a, b, options = _FORKED
    return _compare_batch(layouts, a[start : start + BATCH], b[start : start + BATCH], *options)


def _joined(parts: list[PairMeasures]) -> PairMeasures:
    if not parts:
        empty = np.zeros(0, np.float32)
        return PairMeasures(**{name: empty for name in PairMeasures.__dataclass_fields__})
    return PairMeasures(**{k: np.concatenate([vars(p)[k] for p in parts]) for k in vars(parts[0])})


def _compare(
    layouts: Layouts,
    a: np.ndarray,
    b: np.ndarray,
    mirror: bool,
    grey_tolerance: float,
    grey_floor: float,
    chroma_tolerance: float,
    structure_floor: float,
) -> PairMeasures:
    parts = [
        _compare_batch(
            layouts,
            a[s : s + BATCH],
            b[s : s + BATCH],
            mirror,
            grey_tolerance,
            grey_floor,
            chroma_tolerance,
            structure_floor,
        )
        for s in range(0, len(a), BATCH)
    ]
    return _joined(parts)


def _compare_batch(
    layouts: Layouts,
    a: np.ndarray,
    b: np.ndarray,
    mirror: bool,
    grey_tolerance: float,
    grey_floor: float,
    chroma_tolerance: float,
    structure_floor: float,
) -> PairMeasures:
    ga = layouts.grey[a].astype(np.float32)
    gb = layouts.grey[b].astype(np.float32)
    # registration, in stages that each drop the pairs whose profiles (rows, columns,
    # columns mirrored) do not line up under any map: coarse profiles of 16, then 32
    # points, then sub-pixel refinement for the pairs left
    rows_a, rows_b = ga.mean(axis=2), gb.mean(axis=2)
    cols_a, cols_b = ga.mean(axis=1), gb.mean(axis=1)
    p = len(a)
    flip = np.zeros(p, bool)
    sx = sy = np.ones(p, np.float32)
    ox = oy = np.zeros(p, np.float32)
    aligned = np.full(p, -1.0, np.float32)
    keep = np.arange(p)
    for n_points in (16, N):
        pool = N // n_points

        def profile(x: np.ndarray) -> np.ndarray:
            return x.reshape(len(x), n_points, pool).mean(-1)  # noqa: B023 -- this stage

        ry, oy_, score_y = _coarse(profile(rows_a[keep]), profile(rows_b[keep]))
        rx, ox_, score_x = _coarse(profile(cols_a[keep]), profile(cols_b[keep]))
        if mirror:
            fx, fox, fscore = _coarse(profile(cols_a[keep]), profile(cols_b[keep])[:, ::-1])
            mirrored = fscore > score_x + 1e-6
            rx, ox_ = np.where(mirrored, fx, rx), np.where(mirrored, fox, ox_)
            score_x = np.maximum(score_x, fscore)
            flip = flip.copy()
            flip[keep] = mirrored
        sy, oy, sx, ox = sy.copy(), oy.copy(), sx.copy(), ox.copy()
        sy[keep], oy[keep], sx[keep], ox[keep] = ry, oy_, rx, ox_
        aligned = aligned.copy()
        aligned[keep] = np.minimum(score_x, score_y)
        keep = keep[aligned[keep] >= ALIGNED_FLOOR[n_points]]
        if len(keep) == 0:
            break
    out = _no_match(p, flip, sx, ox, sy, oy, aligned, layouts, a, b)
    if len(keep) == 0:
        return out
    a, b, flip = a[keep], b[keep], flip[keep]
    ga, gb = ga[keep], gb[keep]
    cols_b = np.where(flip[:, None], cols_b[keep][:, ::-1], cols_b[keep])
    sy, oy, score_y = _refine(rows_a[keep], rows_b[keep], sy[keep], oy[keep])
    sx, ox, score_x = _refine(cols_a[keep], cols_b, sx[keep], ox[keep])
    aligned_kept = np.minimum(score_x, score_y)
    ca = layouts.chroma[a].astype(np.float32) * 2
    cb = layouts.chroma[b].astype(np.float32) * 2
    gb = np.where(flip[:, None, None], gb[:, :, ::-1], gb)
    cb = np.where(flip[:, None, None, None], cb[:, :, ::-1], cb)
    tolerances = (grey_tolerance, grey_floor, chroma_tolerance, structure_floor)
    measured = _measure(ga, gb, ca, cb, (sx, ox, sy, oy), *tolerances)
    # a second look at identity where the registered map moved and fell short: a band
    # that changed (a new title, a watermark) can pull the profiles' best map off
    moved = (_prior(sx, ox) + _prior(sy, oy)) > 1e-3 * MAP_PRIOR
    again = np.flatnonzero(moved & (measured["area"] < 1.0))
    if len(again):
        identity = _measure(ga[again], gb[again], ca[again], cb[again], None, *tolerances)
        better = (
            identity["area"] + identity["detail"]
            > measured["area"][again] + measured["detail"][again]
        )
        chosen = again[better]
        for name, values in identity.items():
            measured[name][chosen] = values[better]
        sx, ox, sy, oy = sx.copy(), ox.copy(), sy.copy(), oy.copy()
        sx[chosen], sy[chosen], ox[chosen], oy[chosen] = 1, 1, 0, 0
    full = PairMeasures(
        flip=flip,
        scale_x=sx,
        offset_x=ox,
        scale_y=sy,
        offset_y=oy,
        **measured,
        **_placement(layouts, a, b, flip),
        aligned=aligned_kept,
    )
    for name, values in vars(full).items():
        getattr(out, name)[keep] = values
    return out


def _measure(
    ga: np.ndarray,
    gb: np.ndarray,
    ca: np.ndarray,
    cb: np.ndarray,
    maps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    grey_tolerance: float,
    grey_floor: float,
    chroma_tolerance: float,
    structure_floor: float,
) -> dict[str, np.ndarray]:
    """The grade and region measures of pairs (A, B already mirrored where it matched so)
    with B warped into A's frame by ``maps`` (scale_x, offset_x, scale_y, offset_y; None:
    identity, where the warp would only copy B)."""
    if maps is None:
        gbw, cbw = gb, cb
        valid = np.broadcast_to(_interior(N), gb.shape)
        cvalid = np.broadcast_to(_interior(C), cb.shape[:3])
    else:
        gbw, valid = _warp(gb, *maps)
        cbw, cvalid = _warp(cb, *maps)
        valid &= _interior(N)
        cvalid &= _interior(C)
    # not blurred: a blur forgives misalignment but makes two textures of one grain alike
    # grey grade, robust, fitted on 2x2-pooled pictures (a global map needs no detail)
    lum = _pool(ga)
    gain, offset = _fit_grey(lum, _pool(gbw), _pool(valid.astype(np.float32)) > 0.99)
    residual = np.where(valid, gbw - (offset[:, None, None] + gain[:, None, None] * ga), 0)
    raw = np.where(valid, gbw - ga, 0)
    count = _regions(valid.astype(np.float32), N)
    err = np.sqrt(_regions(residual**2, N) / np.maximum(count, 1e-6))
    err_raw = np.sqrt(_regions(raw**2, N) / np.maximum(count, 1e-6))
    structure = np.maximum(
        _region_std(ga, valid, count) * np.abs(gain)[:, None], _region_std(gbw, valid, count)
    )
    # chroma grade, robust: B ~ s * A + shift * L(A) + cast
    ca_s, cb_s = _blur(ca), _blur(cbw)
    coef = _fit_chroma(ca_s, lum, cb_s, cvalid)
    predicted = (
        coef[:, 0, None, None, None] * ca_s
        + np.stack([coef[:, 1], coef[:, 2]], -1)[:, None, None, :] * lum[..., None]
        + np.stack([coef[:, 3], coef[:, 4]], -1)[:, None, None, :]
    )
    chroma_err = np.where(cvalid, np.linalg.norm(cb_s - predicted, axis=-1), 0)
    chroma_raw = np.where(cvalid, np.linalg.norm(cb_s - ca_s, axis=-1), 0)
    ccount = _regions(cvalid.astype(np.float32), C)
    cerr = _regions(chroma_err, C) / np.maximum(ccount, 1e-6)
    cerr_raw = _regions(chroma_raw, C) / np.maximum(ccount, 1e-6)
    covered = (count > 0.5 * (N // GRID) ** 2) & (ccount > 0.5 * (C // GRID) ** 2)
    weight = (structure + structure_floor) * covered

    def shares(match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        area = (match & covered).sum(1) / np.maximum(covered.sum(1), 1)
        detail = (weight * match).sum(1) / np.maximum(weight.sum(1), 1e-6)
        return area.astype(np.float32), detail.astype(np.float32)

    # a region's residual is judged against its own structure: a textured region of a
    # copy differs by a fraction of its texture (misalignment, compression), another
    # texture by more than all of it; a plain region against a few grey levels
    tolerance = np.maximum(grey_floor, grey_tolerance * structure)
    area, detail = shares((err <= tolerance) & (cerr <= chroma_tolerance))
    area_exact, detail_exact = shares((err_raw <= tolerance) & (cerr_raw <= chroma_tolerance))
    return {
        "gain": gain,
        "grey_offset": (offset + (gain - 1) * 128).astype(np.float32),
        "saturation": coef[:, 0].copy(),
        "shift": (np.abs(coef[:, 1]) + np.abs(coef[:, 2])).astype(np.float32),
        "cast": np.hypot(coef[:, 3], coef[:, 4]).astype(np.float32),
        "area": area,
        "detail": detail,
        "area_exact": area_exact,
        "detail_exact": detail_exact,
        "worst": np.where(covered, err_raw, 0).max(axis=1).astype(np.float32),
    }


def _placement(layouts: Layouts, a: np.ndarray, b: np.ndarray, flip: np.ndarray) -> dict:
    """How the two content boxes sit in their pictures: aspect, size and centre
    differences, and the pair's graphic score."""
    box_a, box_b = layouts.box[a], layouts.box[b]
    size_a = np.stack([box_a[:, 2] - box_a[:, 0], box_a[:, 3] - box_a[:, 1]], 1)
    size_b = np.stack([box_b[:, 2] - box_b[:, 0], box_b[:, 3] - box_b[:, 1]], 1)
    centre_a = np.stack([box_a[:, 0] + box_a[:, 2], box_a[:, 1] + box_a[:, 3]], 1) / 2
    centre_b = np.stack([box_b[:, 0] + box_b[:, 2], box_b[:, 1] + box_b[:, 3]], 1) / 2
    centre_b[:, 0] = np.where(flip, 1 - centre_b[:, 0], centre_b[:, 0])
    return {
        "aspect": np.abs(layouts.aspect[a] - layouts.aspect[b]),
        "size": np.abs(np.log(np.maximum(size_a, 1e-3) / np.maximum(size_b, 1e-3))).max(1),
        "centre": np.abs(centre_a - centre_b).max(1),
        "graphic": (layouts.graphic[a] + layouts.graphic[b]) / 2,
    }


def _no_match(
    p: int,
    flip: np.ndarray,
    sx: np.ndarray,
    ox: np.ndarray,
    sy: np.ndarray,
    oy: np.ndarray,
    aligned: np.ndarray,
    layouts: Layouts,
    a: np.ndarray,
    b: np.ndarray,
) -> PairMeasures:
    """Measures of pairs that failed registration: nothing matches."""
    zero = np.zeros(p, np.float32)
    return PairMeasures(
        flip=flip.copy(),
        scale_x=sx.copy(),
        offset_x=ox.copy(),
        scale_y=sy.copy(),
        offset_y=oy.copy(),
        gain=np.ones(p, np.float32),
        grey_offset=zero.copy(),
        saturation=np.ones(p, np.float32),
        shift=zero.copy(),
        cast=zero.copy(),
        area=zero.copy(),
        detail=zero.copy(),
        area_exact=zero.copy(),
        detail_exact=zero.copy(),
        worst=np.full(p, 255.0, np.float32),
        **{k: v.astype(np.float32) for k, v in _placement(layouts, a, b, flip).items()},
        aligned=aligned.copy(),
    )


# ------------------------------------------------------------------------- registration


def _grid(scales: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (scale, offset) pair, offsets measured from the centred map."""
    s, o = np.meshgrid(scales, offsets, indexing="ij")
    return s.ravel(), (o - (s - 1) / 2).ravel()


def _positions(scale: np.ndarray, offset: np.ndarray, n: int) -> np.ndarray:
    """Where (in B's pixels) A's pixel centres land under x_b = scale * x_a + offset
    (normalised coordinates); any leading shape."""
    x = (np.arange(n, dtype=np.float32) + 0.5) / n
    return (scale[..., None] * x + offset[..., None]) * n - 0.5


def _inside(pos: np.ndarray, n: int) -> np.ndarray:
    """Which positions fall inside a profile of ``n`` pixels, A's outer ring left out."""
    ring = max(1, round(REGISTER_RING * n))
    valid = (pos >= -0.5) & (pos <= n - 0.5)
    valid[..., :ring] = False
    valid[..., -ring:] = False
    return valid


def _coarse_bank(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The coarse maps (scales, offsets) shared by every pair; their interpolation
    matrices laid out for one product, ``profile @ flat`` -> (P, K * n); their validity
    (K, n); and the matrices summed over the valid rows (n, K), so the weighted sum of a
    sampled profile is one product too."""
    # identity is on the grid: most copies need none
    scales, offsets = _grid(COARSE_SCALES, np.linspace(-OFFSETS, OFFSETS, 7))
    pos = _positions(scales, offsets, n)
    valid = _inside(pos, n)
    matrices = _interpolation(pos, n)
    flat = np.ascontiguousarray(matrices.transpose(2, 0, 1).reshape(n, -1))
    folded = np.einsum("ki,kij->jk", valid.astype(np.float32), matrices)
    return scales.astype(np.float32), offsets.astype(np.float32), flat, valid, folded


_BANKS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


def _correlations(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted correlation of x (P, 1 | K, n) with y (P, K, n) under weights w, per (P, K);
    -1 where less than 70% of the profile overlaps."""
    count = np.maximum(w.sum(-1), 1)
    mx = (x * w).sum(-1) / count
    my = (y * w).sum(-1) / count
    sxy = (x * y * w).sum(-1) - count * mx * my
    sxx = (x * x * w).sum(-1) - count * mx * mx
    syy = (y * y * w).sum(-1) - count * my * my
    score = sxy / np.sqrt(np.maximum(sxx, 0) * np.maximum(syy, 0) + 1e-6)
    return np.where(w.mean(-1) >= 0.7, score, -1.0)


def _prior(scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """What a map's distance from identity costs (see :data:`MAP_PRIOR`)."""
    return MAP_PRIOR * (np.abs(scale - 1) + np.abs(offset + (scale - 1) / 2))


def _coarse(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair, the axis map (scale, offset) that aligns profile ``pb`` with ``pa`` best,
    and its correlation: a grid of maps shared by all pairs, scored in one matrix
    product, refined between grid points by a parabola through the best point and its
    neighbours (in scale, and in offset)."""
    p, n = pa.shape
    if n not in _BANKS:
        _BANKS[n] = _coarse_bank(n)
    cs, co, flat, valid, folded = _BANKS[n]
    k = len(cs)
    w = valid.astype(np.float32)  # (K, n), shared by every pair
    sampled = (pb @ flat).reshape(p, k, n)  # B's profile under every map
    count = np.maximum(w.sum(-1), 1)[None]
    sx, sxx = pa @ w.T, (pa * pa) @ w.T  # (P, K)
    sy = pb @ folded
    syy = np.einsum("pki,pki,ki->pk", sampled, sampled, w, optimize=True)
    sxy = np.einsum("pki,pi,ki->pk", sampled, pa, w, optimize=True)
    cov = sxy - sx * sy / count
    var_x = np.maximum(sxx - sx * sx / count, 0)
    var_y = np.maximum(syy - sy * sy / count, 0)
    score = cov / np.sqrt(var_x * var_y + 1e-6)
    score = np.where((w.mean(-1) >= 0.7)[None], score, -1.0)
    ns, no = len(COARSE_SCALES), len(cs) // len(COARSE_SCALES)
    penalised = (score - _prior(cs, co)[None]).reshape(p, ns, no)
    best = np.argmax(penalised.reshape(p, -1), axis=1)
    i, j = best // no, best % no
    rows = np.arange(p)

    def vertex(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Offset (in grid steps, -0.5..0.5) of the top of the parabola through three
        points; 0 at the edge of the grid (lo or hi missing)."""
        curve = lo - 2 * mid + hi
        step = np.where(curve < -1e-6, (lo - hi) / (2 * np.where(curve < -1e-6, curve, -1)), 0)
        return np.clip(step, -0.5, 0.5)

    at = penalised[rows, i, j]
    di = vertex(
        np.where(i > 0, penalised[rows, np.maximum(i - 1, 0), j], at),
        at,
        np.where(i < ns - 1, penalised[rows, np.minimum(i + 1, ns - 1), j], at),
    )
    dj = vertex(
        np.where(j > 0, penalised[rows, i, np.maximum(j - 1, 0)], at),
        at,
        np.where(j < no - 1, penalised[rows, i, np.minimum(j + 1, no - 1)], at),
    )
    scales = COARSE_SCALES.astype(np.float32)
    scale = np.interp(i + di, np.arange(ns), scales).astype(np.float32)
    centred = (co + (cs - 1) / 2).reshape(ns, no)[0]  # the offsets of the centre
    shift = np.interp(j + dj, np.arange(no), centred).astype(np.float32)
    return scale, (shift - (scale - 1) / 2).astype(np.float32), score[rows, best]


def _refine(
    pa: np.ndarray, pb: np.ndarray, scale: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best of a 5x5 grid of maps around each pair's (``scale``, ``offset``), a
    quarter of a coarse step apart: sub-pixel alignment, since the comparison is not
    blurred."""
    p, n = pa.shape
    steps = np.array([-2, -1, 0, 1, 2], np.float32) / 4
    fs, fo = np.meshgrid(steps * 0.05, steps * (2 * OFFSETS / 6))
    grid_scale = np.clip(scale[:, None] + fs.ravel()[None], SCALES[0], SCALES[1])
    centred = offset + (scale - 1) / 2
    grid_offset = centred[:, None] + fo.ravel()[None] - (grid_scale - 1) / 2
    pos = _positions(grid_scale, grid_offset, n)  # (P, F, n)
    valid = _inside(pos, n)
    clipped = np.clip(pos, 0, n - 1)
    lo = np.floor(clipped).astype(np.int64)
    frac = (clipped - lo).astype(np.float32)
    flat = pb.ravel()
    base = (np.arange(p) * n)[:, None, None]
    sampled = flat[base + lo] * (1 - frac) + flat[base + np.minimum(lo + 1, n - 1)] * frac
    score = _correlations(pa[:, None, :], sampled, valid.astype(np.float32))
    best = np.argmax(score - _prior(grid_scale, grid_offset), axis=1)
    rows = np.arange(p)
    return (
        grid_scale[rows, best].astype(np.float32),
        grid_offset[rows, best].astype(np.float32),
        score[rows, best].astype(np.float32),
    )


def _warp(
    image: np.ndarray, sx: np.ndarray, ox: np.ndarray, sy: np.ndarray, oy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """B (P, n, n[, c]) resampled into A's frame by the per-pair axis maps; the mask of
    A's pixels that land inside B. Bilinear, as two interpolation matrices per pair
    (``Wy @ B @ Wx.T``): batched products are faster than gathering every pixel."""
    n = image.shape[1]
    ypos, xpos = _positions(sy, oy, n), _positions(sx, ox, n)  # (P, n)
    wy, wx_t = _interpolation(ypos, n), np.swapaxes(_interpolation(xpos, n), 1, 2)
    if image.ndim == 4:  # a trailing channel axis
        planes = np.moveaxis(image, -1, 1)
        out = np.moveaxis(wy[:, None] @ planes @ wx_t[:, None], 1, -1)
    else:
        out = wy @ image @ wx_t
    inside = lambda q: (q >= -0.5) & (q <= n - 0.5)  # noqa: E731
    valid = inside(ypos)[:, :, None] & inside(xpos)[:, None, :]
    return out, valid


def _interpolation(pos: np.ndarray, n: int) -> np.ndarray:
    """(P, n, n) linear-interpolation matrices: row i samples a profile of ``n`` pixels at
    ``pos[:, i]`` (edges repeated)."""
    p = len(pos)
    clipped = np.clip(pos, 0, n - 1)
    lo = np.floor(clipped).astype(np.int64)
    frac = (clipped - lo).astype(np.float32)
    matrices = np.zeros((p, n, n), np.float32)
    rows, at = np.arange(p)[:, None], np.arange(n)[None, :]
    matrices[rows, at, lo] = 1 - frac
    matrices[rows, at, np.minimum(lo + 1, n - 1)] += frac
    return matrices


def _interior(n: int) -> np.ndarray:
    ring = max(1, round(RING * n))
    mask = np.zeros((n, n), bool)
    mask[ring:-ring, ring:-ring] = True
    return mask


# ------------------------------------------------------------------------------ fitting


def _blur(a: np.ndarray) -> np.ndarray:
    """3x3 box blur over axes 1 and 2 (edges repeated): forgives sub-pixel misalignment.
    Separable: three rows, then three columns of those sums."""
    pad = [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 3)
    p = np.pad(a, pad, mode="edge")
    n, m = a.shape[1], a.shape[2]
    across = p[:, :, :m] + p[:, :, 1 : m + 1] + p[:, :, 2 : m + 2]
    return (across[:, :n] + across[:, 1 : n + 1] + across[:, 2 : n + 2]) / 9


def _pool(x: np.ndarray) -> np.ndarray:
    """2x2 means over axes 1 and 2 of (P, n, n) (strided sums: several times faster than
    a mean over reshaped axes)."""
    return (x[:, ::2, ::2] + x[:, 1::2, ::2] + x[:, ::2, 1::2] + x[:, 1::2, 1::2]) * 0.25


def _masked_var(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    w = valid.reshape(len(x), -1).astype(np.float32)
    v = x.reshape(len(x), -1)
    count = np.maximum(w.sum(1), 1)
    mean = (v * w).sum(1) / count
    return ((v - mean[:, None]) ** 2 * w).sum(1) / count


def _tukey(residual: np.ndarray, weight: np.ndarray, floor: float) -> np.ndarray:
    """Tukey biweights of residuals (P, k) among the pixels with ``weight`` > 0: the cut
    is 4.685 robust sigmas, sigma from the median absolute residual (x1.4826), so the
    regions a new title or a watermark changed (a minority) do not widen it."""
    valid = weight > 0
    magnitude = np.where(valid, np.abs(residual), np.inf)
    ordered = np.sort(magnitude, axis=1)
    count = valid.sum(1)
    median = np.take_along_axis(ordered, np.maximum(count // 2, 0)[:, None], axis=1)[:, 0]
    sigma = 1.4826 * np.where(count > 0, median, 0)
    cut = np.maximum(4.685 * sigma, floor)[:, None]
    weight = residual / cut
    weight *= weight
    np.subtract(1, weight, out=weight)
    np.maximum(weight, 0, out=weight)
    weight *= weight
    return np.where(valid, weight, 0).astype(np.float32, copy=False)


def _fit_grey(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, gain and offset of b ~ offset + gain * a, reweighted ``rounds`` times."""
    x, y = a.reshape(len(a), -1), b.reshape(len(b), -1)
    v = valid.reshape(len(a), -1)
    w = v.astype(np.float32)
    gain = np.ones(len(a), np.float32)
    offset = np.zeros(len(a), np.float32)
    for _ in range(rounds + 1):
        sw = np.maximum(w.sum(1), 1e-6)
        mx, my = (w * x).sum(1) / sw, (w * y).sum(1) / sw
        vx = (w * (x - mx[:, None]) ** 2).sum(1)
        cov = (w * (x - mx[:, None]) * (y - my[:, None])).sum(1)
        gain = np.where(vx > 1e-3, cov / np.maximum(vx, 1e-3), 1.0).astype(np.float32)
        offset = (my - gain * mx).astype(np.float32)
        previous = np.where(v, np.maximum(w, 1e-3), 0)
        w = _tukey(y - (offset[:, None] + gain[:, None] * x), previous, 4.0)
    return gain, offset


def _fit_chroma(
    ca: np.ndarray, lum: np.ndarray, cb: np.ndarray, valid: np.ndarray, rounds: int = 3
) -> np.ndarray:
    """Per pair, (saturation, shift_rg, shift_yb, cast_rg, cast_yb) of
    cb ~ saturation * ca + shift * lum + cast, reweighted ``rounds`` times (the normal
    equations written out: the design is sparse)."""
    p = len(ca)
    a0, a1 = ca[..., 0].reshape(p, -1), ca[..., 1].reshape(p, -1)
    b0, b1 = cb[..., 0].reshape(p, -1), cb[..., 1].reshape(p, -1)
    lum = lum.reshape(p, -1)
    v = valid.reshape(p, -1)
    w = v.astype(np.float32)
    coef = np.zeros((p, 5), np.float32)
    ridge = np.array([1e-3, 1e-1, 1e-1, 1e-3, 1e-3], np.float32)
    # a picture with almost no colour says nothing about the saturation of its copy's:
    # pull it towards 1 as if A had a little chroma (~6 levels) everywhere
    pull = 36.0 * v.sum(1).astype(np.float32)
    # the products the normal equations sum do not change between rounds, only the
    # weights: one (P, k, pixels) stack, and each round's sums are one batched product
    products = np.stack(
        [
            np.ones_like(lum),
            lum,
            lum * lum,
            a0 * a0 + a1 * a1,
            a0 * lum,
            a1 * lum,
            a0,
            a1,
            a0 * b0 + a1 * b1,
            lum * b0,
            lum * b1,
            b0,
            b1,
        ],
        axis=1,
    )
    for _ in range(rounds + 1):
        sums = np.matmul(products, w[:, :, None])[..., 0]
        sw, sl, sll, saa, sa0l, sa1l, sa0, sa1, sab, slb0, slb1, sb0, sb1 = sums.T
        m = np.zeros((p, 5, 5), np.float32)
        m[:, 0, 0] = saa
        m[:, 0, 1] = m[:, 1, 0] = sa0l
        m[:, 0, 2] = m[:, 2, 0] = sa1l
        m[:, 0, 3] = m[:, 3, 0] = sa0
        m[:, 0, 4] = m[:, 4, 0] = sa1
        m[:, 1, 1] = m[:, 2, 2] = sll
        m[:, 1, 3] = m[:, 3, 1] = m[:, 2, 4] = m[:, 4, 2] = sl
        m[:, 3, 3] = m[:, 4, 4] = sw
        m[:, range(5), range(5)] += ridge
        m[:, 0, 0] += pull
        rhs = np.stack([sab + pull, slb0, slb1, sb0, sb1], -1)
        coef = np.linalg.solve(m, rhs[..., None])[..., 0].astype(np.float32)
        r0 = b0 - (coef[:, :1] * a0 + coef[:, 1:2] * lum + coef[:, 3:4])
        r1 = b1 - (coef[:, :1] * a1 + coef[:, 2:3] * lum + coef[:, 4:5])
        previous = np.where(v, np.maximum(w, 1e-3), 0)
        w = _tukey(np.hypot(r0, r1), previous, 6.0)
    return coef


def _regions(x: np.ndarray, n: int) -> np.ndarray:
    """Sums over the GRID x GRID regions of (P, n, n): (P, GRID * GRID). Two small
    matrix products (``S @ x @ S.T`` with S summing each region's rows): ~10x faster
    than summing over reshaped axes, which numpy does with strided loops."""
    if n not in _REGION_SUMS:
        rows_of_region = np.ones((1, n // GRID), np.float32)
        _REGION_SUMS[n] = np.kron(np.eye(GRID, dtype=np.float32), rows_of_region)
    s = _REGION_SUMS[n]
    return (s @ x.astype(np.float32, copy=False) @ s.T).reshape(len(x), -1)


_REGION_SUMS: dict[int, np.ndarray] = {}


def _region_std(x: np.ndarray, valid: np.ndarray, count: np.ndarray) -> np.ndarray:
    w = valid.astype(np.float32)
    mean = _regions(x * w, N) / np.maximum(count, 1e-6)
    square = _regions(x * x * w, N) / np.maximum(count, 1e-6)
    return np.sqrt(np.maximum(square - mean * mean, 0))


# ----------------------------------------------------------------------------- graphics


def same_graphic_pixels(
    a: np.ndarray,
    b: np.ndarray,
    *,
    tolerance: float = 56.0,
    max_share: float = 0.002,
    max_block: int = 6,
) -> bool:
    """Whether two graphics' content boxes (RGB arrays, already aligned and of one size)
    are the same drawing pixel for pixel, up to resampling and compression.

    A pixel of one differs when no pixel within one of its place in the other comes
    within ``tolerance`` (of 255, any channel): resampling and JPEG ringing move edges by
    less than a pixel, a different mouth, letter, strand of hair or flag stripe is
    missing altogether. Same drawing when at most ``max_share`` of the pixels differ and
    no 8x8 block holds more than ``max_block`` of them.
    """
    diff = np.minimum(_tolerant_diff(a, b), _tolerant_diff(b, a)) > tolerance
    height, width = diff.shape
    if diff.sum() > max(max_share * height * width, max_block):
        return False
    hb, wb = -(-height // 8) * 8, -(-width // 8) * 8
    padded = np.zeros((hb, wb), bool)
    padded[:height, :width] = diff
    blocks = padded.reshape(hb // 8, 8, wb // 8, 8).sum(axis=(1, 3))
    return bool(blocks.max(initial=0) <= max_block)


def _tolerant_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel of ``a``, the smallest max-channel difference to a pixel of ``b`` in
    its 3x3 neighbourhood."""
    a16, b16 = a.astype(np.int16), np.pad(b.astype(np.int16), ((1, 1), (1, 1), (0, 0)), "edge")
    h, w = a.shape[:2]
    best = np.full((h, w), 255, np.int16)
    for dy in range(3):
        for dx in range(3):
            d = np.abs(a16 - b16[dy : dy + h, dx : dx + w]).max(axis=2)
            np.minimum(best, d, out=best)
    return best
