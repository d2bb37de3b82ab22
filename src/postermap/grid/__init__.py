"""Snap a 2-D layout onto a regular, gapless grid so that neighbours stay neighbours.

This is a linear assignment problem: N points to N of the rows x cols cells, minimising the
sum of squared distances between each point (min-max normalised per axis to [0, 1]) and its
cell centre. When N < rows * cols the empty cells go wherever they cost least (the exact
solver solves the rectangular problem; the bisection gives each block as many points as
fall on its side; window re-solves and pair-swap moves carry holes to sparse places).

``method="auto"`` picks by size:

* ``N <= exact_max`` — ``"exact"``: ``scipy.optimize.linear_sum_assignment``, O(N^2) memory.
* ``N <= blocks_max`` — ``"blocks"``: :func:`postermap.grid.blocks.assign_blocks`, recursive
  balanced bisection into blocks solved exactly, then exact re-solves over shifted 32x32
  windows until the cost stops improving (measured within 0.3% of exact at 10k).
* larger — ``"large"``: :mod:`postermap.grid.large`, two quick starts (FLAS with a fast
  radius decay, and a bisection into small exact blocks), pair swaps and moves into
  holes (:mod:`postermap.grid.swaps`, radius 4) on both, and more on the cheaper one.
  Exact window passes can follow (``max_passes``), at ~13 s per pass at 169k.

Memory stays O(N) for all but ``"exact"``.

x maps to the column, y to the row (row 0 holds the smallest y).
"""

from __future__ import annotations

import math

import numpy as np

from postermap.grid.blocks import assign_blocks
from postermap.grid.exact import assign_exact
from postermap.grid.large import assign_large

__all__ = [
    "assign_to_grid",
    "cell_ratio",
    "map_shape",
    "orient",
    "parse_ratio",
    "rotate",
    "grid_shape",
    "grid_cost",
    "layout_aspect",
    "normalise_points",
    "cell_centres",
    "rows_down",
]


def grid_shape(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, cols) with rows * cols >= n, cols / rows close to ``aspect``, at most one
    partially filled row."""
    if n <= 0:
        raise ValueError(f"need at least one point, got {n}")
    if aspect <= 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    cols = max(1, round(math.sqrt(n * aspect)))
    rows = math.ceil(n / cols)
    return rows, cols


def layout_aspect(xy: np.ndarray) -> float:
    """Width / height of the layout's bounding box, clipped to 1:2..2:1."""
    span = xy.max(axis=0) - xy.min(axis=0)
    if span[1] <= 0:
        return 2.0
    return float(np.clip(span[0] / span[1], 0.5, 2.0))


#: Cell shapes a collection's median aspect is rounded to (width, height)
SIMPLE_RATIOS = (
    (1, 1),
    (5, 4),
    (4, 3),
    (3, 2),
    (16, 9),
    (2, 1),
    (4, 5),
    (3, 4),
    (2, 3),
    (9, 16),
    (1, 2),
)


def cell_ratio(widths: np.ndarray, heights: np.ndarray) -> tuple[int, int]:
    """The cell shape for a collection: its median width/height rounded (in log space) to
    the nearest simple ratio, so 2:3 posters get 2:3 cells and square emoji square ones."""
    widths, heights = np.asarray(widths, float), np.asarray(heights, float)
    ok = (widths > 0) & (heights > 0)
    if not ok.any():
        return (1, 1)
    median = float(np.median(np.log(widths[ok] / heights[ok])))
    return min(SIMPLE_RATIOS, key=lambda r: abs(math.log(r[0] / r[1]) - median))


def parse_ratio(text: str) -> tuple[int, int]:
    """``"2:3"`` -> (2, 3); raises ValueError for anything else."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"a ratio looks like W:H with positive whole numbers, got {text!r}")
    return int(parts[0]), int(parts[1])


def map_shape(n: int, ratio: tuple[int, int], map_aspect: float) -> tuple[int, int]:
    """(rows, cols) whose mosaic of ``ratio``-shaped cells has about ``map_aspect``
    width/height in pixels (a screen: 16:10), with at most one partly filled row."""
    width, height = ratio
    return grid_shape(n, map_aspect * height / width)


def orient(xy: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, float]:
    """The layout turned to fit a ``rows`` x ``cols`` grid best, and the angle (radians).

    t-SNE's orientation is arbitrary, and the min-max normalisation stretches the layout
    onto the grid, so a layout whose long axis is diagonal would leave empty corners.
    Candidates: as it is, its principal axis along the rows, and along the columns; the
    one whose strip arrangement (a quick stand-in for the assignment) costs least wins.
    """
    from postermap.grid.flas import strip_layout

    xy = np.asarray(xy, dtype=np.float64)
    centred = xy - xy.mean(axis=0)
    if len(xy) < 3 or not np.isfinite(centred).all():
        return xy, 0.0
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    major = vectors[:, -1]
    along = -math.atan2(major[1], major[0])
    best, best_cost, best_angle = xy, math.inf, 0.0
    for angle in (0.0, along, along + math.pi / 2):
        turned = rotate(xy, angle)
        points = normalise_points(turned)
        cost = grid_cost(turned, strip_layout(points, rows, cols), rows, cols)
        if cost < best_cost - 1e-12:
            best, best_cost, best_angle = turned, cost, angle
    return best, best_angle


def rotate(xy: np.ndarray, angle: float) -> np.ndarray:
    """``xy`` turned by ``angle`` radians about the origin."""
    if angle == 0.0:
        return np.asarray(xy, dtype=np.float64)
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(xy, dtype=np.float64) @ np.array([[c, s], [-s, c]])


def rows_down(xy: np.ndarray) -> np.ndarray:
    """The layout with y flipped: grid rows grow downwards while t-SNE's y grows upwards,
    so the map reads like the scatter plot."""
    return np.asarray(xy, dtype=np.float64) * np.array([1.0, -1.0])


def normalise_points(xy: np.ndarray) -> np.ndarray:
    """Min-max normalise each axis to [0, 1] (a constant axis maps to 0.5)."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (xy - lo) / span
    out[:, hi == lo] = 0.5
    return out


def cell_centres(cells: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(x, y) centres in [0, 1] of flat cell indices ``r * cols + c``."""
    cells = np.asarray(cells)
    return np.stack([(cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows], axis=1)


def grid_cost(xy: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> float:
    """Sum of squared distances between normalised points and their assigned cell centres."""
    diff = normalise_points(xy) - cell_centres(cells, rows, cols)
    return float(np.einsum("ij,ij->", diff, diff))


METHODS = ("auto", "exact", "blocks", "large")


def assign_to_grid(
    xy: np.ndarray,
    rows: int,
    cols: int,
    *,
    method: str = "auto",
    exact_max: int = 2000,
    blocks_max: int = 10_000,
    block_size: int = 1024,
    window: int | None = None,
    max_passes: int | None = None,
    tol: float = 1e-4,
    swap_radius: int = 4,
    seed: int = 0,
    workers: int = 1,
    holes_anywhere: bool = True,
) -> np.ndarray:
    """Assign every point to a distinct cell of a ``rows`` x ``cols`` grid.

    Args:
        xy: (N, 2) layout coordinates, any scale.
        rows, cols: grid shape; ``rows * cols >= N``.
        method: ``auto``, ``exact``, ``blocks`` or ``large`` (see the module docstring).
        exact_max: with ``auto``, solve exactly up to this many points.
        blocks_max: with ``auto``, use ``blocks`` up to this many points, ``large`` above.
        block_size: points per exactly solved bisection block (``blocks``).
        window: side, in cells, of the exact refinement windows (32 for blocks, 16 for
            large).
        max_passes: exact window passes at most (8 for blocks, 0 for large); stops earlier
            when the relative gain < tol.
        tol: relative cost improvement below which window refinement stops.
        swap_radius: ``large`` only: pair swaps are tried up to this many cells apart
            (0 turns the swap refinement off).
        seed: breaks ties deterministically (results are identical for the same seed).
        workers: processes solving independent blocks/windows (results do not depend on it).
        holes_anywhere: when there are more cells than points, the empty cells go where
            they cost least (anywhere in the grid); False keeps them at the end of the
            last row (the cells are then exactly the first N in row-major order).

    Returns:
        int64 array of N distinct flat cell indices ``r * cols + c``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("xy contains NaN or infinite values")
    n = len(xy)
    if rows * cols < n:
        raise ValueError(f"{rows}x{cols} grid has {rows * cols} cells for {n} points")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        method = "exact" if n <= exact_max else "blocks" if n <= blocks_max else "large"
    points = normalise_points(xy)
    cells_for_exact = np.arange(rows * cols if holes_anywhere else n)
    if method == "exact" or n < 4:
        return assign_exact(points, cells_for_exact, rows, cols)
    if method == "blocks":
        return assign_blocks(
            points,
            rows,
            cols,
            block_size=block_size,
            window=window or 32,
            max_passes=max_passes or 8,
            tol=tol,
            seed=seed,
            workers=workers,
            holes_anywhere=holes_anywhere,
        )
    cells = assign_large(
        points, rows, cols, seed=seed, swap_radius=swap_radius, holes_anywhere=holes_anywhere
    )
    if max_passes:
        cells = assign_blocks(
            points,
            rows,
            cols,
            window=window or 16,
            max_passes=max_passes,
            tol=tol,
            seed=seed,
            workers=workers,
            start=cells,
            holes_anywhere=holes_anywhere,
        )
    return cells
