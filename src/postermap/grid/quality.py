"""How well a grid arrangement keeps neighbours together.

* :func:`distance_preservation_quality` — DPQ_p of Barthel et al. ("Improved Evaluation and
  Generation of Grid Layouts using Distance Preservation Quality and Linear Assignment
  Sorting", 2023), the metric LAS/FLAS report: for every image, the mean feature distance
  to its k grid-nearest images, compared with the same for its k feature-nearest images,
  over all k, combined by a p-norm. 1 is perfect; a random arrangement is near 0. It needs
  an N x N distance matrix, so callers pass a window of a large grid (a few thousand cells).
* :func:`seam_map` — a picture of the distortion: each cell coloured by how far (in cells)
  its image was moved from its layout position.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from postermap.grid import cell_centres, normalise_points


def distance_preservation_quality(
    features: np.ndarray, cells: np.ndarray, cols: int, p: int = 16
) -> float:
    """DPQ_p of an arrangement.

    Args:
        features: (N, D) the vectors whose similarity the grid should show.
        cells: (N,) flat cell index ``r * cols + c`` of each vector (distinct).
        cols: grid width.
        p: the norm combining the gains over k (16 in the paper: weights small k most).

    Returns:
        DPQ_p in [0, 1] (1 = grid neighbourhoods as good as feature neighbourhoods).
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n < 3:
        raise ValueError("DPQ needs at least 3 items")
    sq = np.einsum("ij,ij->i", x, x)
    hd = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))
    mean_hd = hd.sum() / (n * (n - 1))
    r, c = np.divmod(np.asarray(cells), cols)
    grid_sq = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
    # Order each row by grid distance; among cells at equal grid distance, nearer features
    # first (the arrangement gets the benefit of the doubt on ties, as in the paper).
    scale = hd.max() * 1.0001 or 1.0
    by_grid = np.fmod(np.sort(grid_sq + hd / scale, axis=1), 1.0) * scale
    by_feature = np.sort(hd, axis=1)
    gain_grid = _preservation_gain(by_grid, mean_hd)
    gain_feature = _preservation_gain(by_feature, mean_hd)
    return float(np.linalg.norm(gain_grid, ord=p) / np.linalg.norm(gain_feature, ord=p))


def _preservation_gain(sorted_rows: np.ndarray, mean_distance: float) -> np.ndarray:
    """For k = 1..N-1: how much closer the first k neighbours are than an average item."""
    neighbours = sorted_rows[:, 1:]  # drop self (distance 0, first in both orders)
    k = np.arange(1, neighbours.shape[1] + 1)
    mean_of_first_k = (np.cumsum(neighbours, axis=1) / k).mean(axis=0)
    return np.clip((mean_distance - mean_of_first_k) / mean_distance, 0.0, None)


def cell_displacement(xy: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Distance, in cell widths, between each point's normalised position and its cell."""
    points = normalise_points(xy) * np.array([cols, rows])
    centres = cell_centres(cells, rows, cols) * np.array([cols, rows])
    return np.linalg.norm(points - centres, axis=1)


def seam_map(
    xy: np.ndarray, cells: np.ndarray, rows: int, cols: int, max_cells: float | None = None
) -> Image.Image:
    """RGB image, one pixel per cell: dark blue = image sits where the layout put it,
    yellow = moved ``max_cells`` or more (default: the 99th percentile). Holes are black."""
    moved = cell_displacement(xy, cells, rows, cols)
    top = max_cells if max_cells is not None else max(float(np.percentile(moved, 99)), 1.0)
    t = np.clip(moved / top, 0.0, 1.0)
    ramp = np.array([[20, 30, 90], [30, 120, 140], [110, 190, 90], [250, 230, 40]], float)
    pos = t * (len(ramp) - 1)
    lo = np.minimum(pos.astype(int), len(ramp) - 2)
    frac = (pos - lo)[:, None]
    colours = ramp[lo] * (1 - frac) + ramp[lo + 1] * frac
    canvas = np.zeros((rows * cols, 3), dtype=np.uint8)
    canvas[cells] = colours.astype(np.uint8)
    return Image.fromarray(canvas.reshape(rows, cols, 3), "RGB")
