"""Large grids (above ``blocks_max`` points): two quick starts, pair swaps, keep the better.

Measured at 169k points (``benchmarks/grid.py``), neither start wins everywhere: FLAS
(vc-flas, from a strip layout) suits t-SNE layouts (clusters with gaps between them),
where a balanced bisection leaves seams that swaps repair slowly; a bisection suits blobs
of uneven density and near-uniform layouts, where FLAS's arrangement is far from ours
and the swaps would need a thousand sweeps to catch up. So both are made (FLAS with a
faster radius decay, 0.85 instead of its 0.93: half the time, and after the swaps within
1 % of the full run), each gets ``BRANCH_SWEEPS`` swap sweeps, and the cheaper one gets
up to ``FINAL_SWEEPS`` more. Deterministic for a seed.
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.grid.blocks import assign_blocks
from postermap.grid.flas import flas_arrangement
from postermap.grid.swaps import refine_swaps

log = logging.getLogger(__name__)

BRANCH_SWEEPS = 12
FINAL_SWEEPS = 30
#: FLAS's radius decay per iteration for the quick start (its default is 0.93)
QUICK_DECAY = 0.85
#: bisection leaves solved exactly (small: the swaps do the rest)
LEAF = 64


def assign_large(
    points: np.ndarray,
    rows: int,
    cols: int,
    *,
    seed: int = 0,
    swap_radius: int = 4,
    holes_anywhere: bool = True,
) -> np.ndarray:
    """Cells for normalised ``points`` (see the module docstring)."""
    starts = {
        "flas": flas_arrangement(points, rows, cols, seed=seed, radius_decay=QUICK_DECAY),
        "bisection": assign_blocks(
            points,
            rows,
            cols,
            block_size=LEAF,
            max_passes=0,
            seed=seed,
            holes_anywhere=holes_anywhere,
        ),
    }
    if swap_radius <= 0:
        return min(starts.values(), key=lambda c: _cost(points, c, rows, cols))
    refined = {
        name: refine_swaps(
            points,
            cells,
            rows,
            cols,
            radius=swap_radius,
            max_sweeps=BRANCH_SWEEPS,
            moves=holes_anywhere,
        )
        for name, cells in starts.items()
    }
    costs = {name: _cost(points, cells, rows, cols) for name, cells in refined.items()}
    best = min(costs, key=lambda name: (costs[name], name != "flas"))
    log.debug("grid: starts after %d sweeps %s; refining %s", BRANCH_SWEEPS, costs, best)
    return refine_swaps(
        points,
        refined[best],
        rows,
        cols,
        radius=swap_radius,
        max_sweeps=FINAL_SWEEPS,
        moves=holes_anywhere,
    )


def _cost(points: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> float:
    cx = (cells % cols + 0.5) / cols
    cy = (cells // cols + 0.5) / rows
    return float(((points[:, 0] - cx) ** 2 + (points[:, 1] - cy) ** 2).sum())
