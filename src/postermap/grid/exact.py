"""Exact assignment of points to a given set of cells (dense; for a few thousand at most)."""

from __future__ import annotations

import numpy as np


def assign_exact(points: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Optimal one-to-one assignment of ``points`` (normalised) to ``cells`` (flat indices).

    There may be more cells than points: the spare cells stay empty wherever that costs
    least (a rectangular assignment). Memory is O(N x M): callers keep both small.
    Returns the cell of each point.
    """
    from scipy.optimize import linear_sum_assignment  # 0.2 s to import: only when solving

    cells = np.asarray(cells, dtype=np.int64)
    if len(cells) < len(points):
        raise ValueError(f"{len(points)} points for {len(cells)} cells")
    if len(points) == 0:
        return np.empty(0, dtype=np.int64)
    centres = np.stack([(cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows], axis=1)
    cost = _sq_distances(points, centres)
    row_ind, col_ind = linear_sum_assignment(cost)
    out = np.empty(len(points), dtype=np.int64)
    out[row_ind] = cells[col_ind]
    return out


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, exact (no a^2 + b^2 - 2ab cancellation)."""
    dx = a[:, 0:1] - b[None, :, 0]
    dy = a[:, 1:2] - b[None, :, 1]
    return dx * dx + dy * dy
