"""Placeholder templates: a site's stand-in cards, repeated with only the text changing.

A site with no poster for a title serves a card: its "no poster" placeholder (the same
card at several sizes and compressions) or a templated title card (one plain layout,
the title written into it). Neither shows anything of the film. Two plain cards are
*the same template* when, compared in the frame of the whole picture (no registration:
a template does not move), they match everywhere except in at most one horizontal band
(the text) covering at most half the height, and what matches includes a design of the
template's own (three or more regions with structure: a label, a rule, an icon), not
just a plain field (two drawings on white are not a template). Cards linked by such
pairs form a group; a group of ``template_min_size`` or more plain, low-colour images is
boring.

Only in a collection of pictures: where most images are themselves graphics (an emoji or
icon set), one frame with a changing letter is a set of symbols (the regional-indicator
letters, keycaps, the "squared" words), not placeholders, and nothing is flagged.
"""

from __future__ import annotations

import numpy as np

from postermap.cleaning.layout import GRID, Layouts, _positions, _regions
from postermap.cleaning.records import keep_order

N = 32
C = 16


def template_groups(
    rows: list[dict],
    layouts: Layouts,
    live: list[int],
    pairs: np.ndarray,
    params,
    graphic: float | None = None,
) -> list[list[int]]:
    """Groups (row indices, representative first) of plain cards sharing one template.

    ``pairs`` are the candidate pairs (row indices); ``params`` a
    :class:`postermap.cleaning.CleanParams`; ``graphic`` the collection's median graphic
    score when ``live`` is only part of it (default: the median over ``live``).
    """
    if len(live) < params.template_min_size or len(pairs) == 0:
        return []
    median = float(np.median(layouts.graphic[live])) if graphic is None else graphic
    if median >= params.graphic_score:
        return []  # a collection of graphics: templates are symbol sets
    card = np.zeros(len(rows), bool)
    for i in live:
        card[i] = (
            layouts.present[i]
            and layouts.graphic[i] >= params.graphic_score
            and (rows[i].get("colours") or 0) <= params.template_max_colours
        )
    pairs = pairs[card[pairs[:, 0]] & card[pairs[:, 1]]]
    if len(pairs) == 0:
        return []
    same = same_template(rows, layouts, pairs, params)
    groups = _components(rows, pairs[same])
    return [g for g in groups if len(g) >= params.template_min_size]


def _components(rows: list[dict], pairs: np.ndarray) -> list[list[int]]:
    """Connected groups of ``pairs`` (row indices), the image a group keeps first: every
    link of a chain shares the template's design, so chains do not drift to another
    template (unlike near duplicates, see :func:`postermap.cleaning.near.star_groups`)."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs.tolist():
        parent[find(i)] = find(j)
    members: dict[int, list[int]] = {}
    for i in parent:
        members.setdefault(find(i), []).append(i)
    return [sorted(m, key=lambda i: keep_order(rows[i])) for m in members.values()]


def same_template(rows: list[dict], layouts: Layouts, pairs: np.ndarray, params) -> np.ndarray:
    """Per pair, whether the two cards share a template (see the module docstring)."""
    a, b = pairs[:, 0], pairs[:, 1]
    aspect = np.array(
        [np.log((rows[i]["width"] or 1) / (rows[i]["height"] or 1)) for i in range(len(rows))]
    )
    grey_a, chroma_a = canvas(layouts, a)
    grey_b, chroma_b = canvas(layouts, b)
    k = N // GRID
    grey_err = np.sqrt(_regions((grey_a - grey_b) ** 2, N) / k**2)
    chroma_err = _regions(np.linalg.norm(chroma_a - chroma_b, axis=-1), C) / (C // GRID) ** 2
    mismatch = (grey_err > params.template_grey) | (chroma_err > params.chroma_tolerance)
    # the template's own design (a label, a rule, an icon) is shared, not just a plain field
    k = N // GRID
    shared = ((~mismatch) & (np.maximum(_spread(grey_a), _spread(grey_b)) > 8)).sum(1)
    mismatch = mismatch.reshape(len(pairs), GRID, GRID)
    rows_hit = mismatch.any(axis=2)
    out = np.zeros(len(pairs), bool)
    for n in range(len(pairs)):
        hit = np.flatnonzero(rows_hit[n])
        if abs(aspect[a[n]] - aspect[b[n]]) > 0.05 or shared[n] < 3:
            continue
        if len(hit) == 0:
            out[n] = True
            continue
        span = hit[-1] - hit[0] + 1
        out[n] = span <= GRID // 2 and span - len(hit) <= 1
    return out


def _spread(grey: np.ndarray) -> np.ndarray:
    """Standard deviation of each region of (P, N, N): (P, GRID * GRID)."""
    k = N // GRID
    regions = grey.reshape(len(grey), GRID, k, GRID, k).transpose(0, 1, 3, 2, 4)
    return regions.reshape(len(grey), GRID * GRID, k * k).std(-1)


def canvas(layouts: Layouts, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The whole picture, rebuilt from a signature: the content box's grey (N x N) and
    chroma (C x C x 2) pasted where the box sits, the picture's outer colour around it."""
    grey = layouts.grey[rows].astype(np.float32)
    chroma = layouts.chroma[rows].astype(np.float32) * 2
    box = layouts.box[rows]
    bg = layouts.background[rows]
    bg_grey = bg @ np.array([0.299, 0.587, 0.114], np.float32)
    bg_chroma = np.stack([bg[:, 0] - bg[:, 1], (bg[:, 0] + bg[:, 1]) / 2 - bg[:, 2]], -1)
    return (
        _paste(grey, box, bg_grey[:, None, None], N),
        _paste(chroma, box, bg_chroma[:, None, None, :], C),
    )


def _paste(content: np.ndarray, box: np.ndarray, fill: np.ndarray, n: int) -> np.ndarray:
    """``content`` (P, m, m[, c]) resampled into ``box`` of an n x n canvas of ``fill``."""
    m = content.shape[1]
    width = np.maximum(box[:, 2] - box[:, 0], 1e-3)
    height = np.maximum(box[:, 3] - box[:, 1], 1e-3)
    # canvas pixel u (normalised) lies at (u - left) / width of the content
    xs = _positions(1 / width, -box[:, 0] / width, n) * (m / n) + (m / n - 1) / 2
    ys = _positions(1 / height, -box[:, 1] / height, n) * (m / n) + (m / n - 1) / 2
    inside_x = (xs >= -0.5) & (xs <= m - 0.5)
    inside_y = (ys >= -0.5) & (ys <= m - 0.5)
    xi = np.clip(np.rint(xs), 0, m - 1).astype(np.int64)
    yi = np.clip(np.rint(ys), 0, m - 1).astype(np.int64)
    rows = np.arange(len(content))[:, None, None]
    sampled = content[rows, yi[:, :, None], xi[:, None, :]]
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    if content.ndim == 4:
        inside = inside[..., None]
    return np.where(inside, sampled, fill)
