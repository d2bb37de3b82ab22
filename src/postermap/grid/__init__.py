"""Snap a 2-D layout onto a regular, gapless grid so that neighbours stay neighbours.

This is a linear assignment problem: N points to N cells, minimising the sum of squared
distances between each point (min-max normalised per axis to [0, 1]) and its cell centre.
Cells are filled in row-major order, so when N < rows * cols the holes sit at the end of the
last row, at the edge of the map, never inside it.

* ``N <= exact_max``: solved exactly (``scipy.optimize.linear_sum_assignment``).
* larger N: :func:`postermap.grid.blocks.assign_blocks`: recursive balanced bisection into
  blocks solved exactly, then exact re-solves over shifted windows until the cost stops
  improving. Memory stays O(N).

x maps to the column, y to the row (row 0 holds the smallest y).
"""

from __future__ import annotations

import math

import numpy as np

from postermap.grid.blocks import assign_blocks
from postermap.grid.exact import assign_exact

__all__ = ["assign_to_grid", "grid_shape", "grid_cost", "normalise_points", "cell_centres"]


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


def assign_to_grid(xy: np.ndarray, rows: int, cols: int, *, exact_max: int = 5000,
                   block_size: int = 1024, window: int = 32, max_passes: int = 8,
                   tol: float = 1e-4, seed: int = 0) -> np.ndarray:
    """Assign every point to a distinct cell of a ``rows`` x ``cols`` grid.

    Args:
        xy: (N, 2) layout coordinates, any scale.
        rows, cols: grid shape; ``rows * cols >= N``.
        exact_max: solve exactly up to this many points.
        block_size: target points per exactly solved block (scalable path).
        window: side, in cells, of the refinement windows (scalable path).
        max_passes: refinement passes at most; stops earlier when the relative gain < tol.
        tol: relative cost improvement below which refinement stops.
        seed: breaks ties deterministically (results are identical for the same seed).

    Returns:
        int64 array of N distinct flat cell indices ``r * cols + c``, all < N's row-major
        prefix (holes only at the end of the last row).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("xy contains NaN or infinite values")
    n = len(xy)
    if rows * cols < n:
        raise ValueError(f"{rows}x{cols} grid has {rows * cols} cells for {n} points")
    points = normalise_points(xy)
    if n <= exact_max:
        return assign_exact(points, np.arange(n), rows, cols)
    return assign_blocks(points, rows, cols, block_size=block_size, window=window,
                         max_passes=max_passes, tol=tol, seed=seed)
