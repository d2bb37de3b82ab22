"""Scalable grid assignment: balanced bisection into exact blocks, then window refinement.

1. **Bisection.** The cell set is split in two along its longer side; the points are split
   at the same rank along the same axis, so each half gets exactly as many points as cells.
   Recursing until a block holds ``block_size`` cells gives a global arrangement that
   respects the layout's density, in O(N log N). Each block is then solved exactly.
2. **Refinement.** Square windows of ``window`` x ``window`` cells tile the grid; the points
   currently in a window are re-assigned exactly to the window's cells. A re-solve never
   increases the cost (the current assignment is one of its candidates). Windows are shifted
   by half their side between passes so block seams get repaired; passes stop when the
   relative gain falls below ``tol``.

Only O(N) arrays plus one ``window^2`` cost matrix at a time are held in memory.
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.grid.exact import assign_exact

log = logging.getLogger(__name__)


def assign_blocks(points: np.ndarray, rows: int, cols: int, *, block_size: int = 1024,
                  window: int = 32, max_passes: int = 8, tol: float = 1e-4,
                  seed: int = 0) -> np.ndarray:
    """Near-optimal assignment of normalised ``points`` to the first N row-major cells."""
    n = len(points)
    rng = np.random.default_rng(seed)
    # A tiny seeded jitter makes ties (identical points) break the same way on every run
    # without depending on input order.
    jitter = rng.uniform(-1e-12, 1e-12, size=points.shape)
    keyed = points + jitter
    assignment = np.empty(n, dtype=np.int64)
    cells = np.arange(n, dtype=np.int64)
    _bisect(keyed, np.arange(n), cells, rows, cols, block_size, assignment, points)
    cost = _cost(points, assignment, rows, cols)
    log.debug("grid: bisection cost %.6f", cost)
    offsets = [(0, 0), (window // 2, window // 2), (0, window // 2), (window // 2, 0)]
    # A window whose cells have not changed owner since it was last solved is still optimal:
    # skipping it makes later passes cost only what earlier passes changed.
    changed_at = np.zeros(rows * cols, dtype=np.int64)  # pass that last changed each cell
    solved_at: dict[tuple[int, int], int] = {}
    for step in range(max_passes):
        dr, dc = offsets[step % len(offsets)]
        _refine_pass(points, assignment, rows, cols, window, dr, dc, step + 1, changed_at,
                     solved_at)
        new_cost = _cost(points, assignment, rows, cols)
        gain = (cost - new_cost) / cost if cost > 0 else 0.0
        log.debug("grid: pass %d offset (%d, %d) cost %.6f gain %.2e", step, dr, dc,
                  new_cost, gain)
        cost = new_cost
        if gain < tol and step >= len(offsets) - 1:
            break
    return assignment


def _bisect(keyed: np.ndarray, point_idx: np.ndarray, cells: np.ndarray, rows: int,
            cols: int, block_size: int, out: np.ndarray, points: np.ndarray) -> None:
    stack = [(point_idx, cells)]
    while stack:
        p_idx, c_idx = stack.pop()
        if len(c_idx) <= block_size:
            out[p_idx] = assign_exact(points[p_idx], c_idx, rows, cols)
            continue
        r, c = c_idx // cols, c_idx % cols
        wide = (c.max() - c.min() + 1) / cols >= (r.max() - r.min() + 1) / rows
        # Order cells and points along the longer side, then cut both at the same rank.
        cell_order = np.lexsort((r, c)) if wide else np.lexsort((c, r))
        axis = 0 if wide else 1
        point_order = np.argsort(keyed[p_idx, axis], kind="stable")
        half = len(c_idx) // 2
        stack.append((p_idx[point_order[:half]], c_idx[cell_order[:half]]))
        stack.append((p_idx[point_order[half:]], c_idx[cell_order[half:]]))


def _refine_pass(points: np.ndarray, assignment: np.ndarray, rows: int, cols: int,
                 window: int, dr: int, dc: int, step: int, changed_at: np.ndarray,
                 solved_at: dict[tuple[int, int], int]) -> None:
    n = len(points)
    owner = np.full(rows * cols, -1, dtype=np.int64)
    owner[assignment] = np.arange(n)
    for r0 in range(-dr, rows, window):
        for c0 in range(-dc, cols, window):
            rr = np.arange(max(r0, 0), min(r0 + window, rows))
            cc = np.arange(max(c0, 0), min(c0 + window, cols))
            if len(rr) == 0 or len(cc) == 0:
                continue
            win_cells = (rr[:, None] * cols + cc[None, :]).ravel()
            win_cells = win_cells[win_cells < n]
            if len(win_cells) < 2:
                continue
            last = solved_at.get((r0, c0))
            if last is not None and changed_at[win_cells].max() <= last:
                continue
            members = owner[win_cells]
            new_cells = assign_exact(points[members], win_cells, rows, cols)
            moved = new_cells != assignment[members]
            changed_at[new_cells[moved]] = step
            assignment[members] = new_cells
            owner[new_cells] = members
            solved_at[(r0, c0)] = step


def _cost(points: np.ndarray, assignment: np.ndarray, rows: int, cols: int) -> float:
    cx = (assignment % cols + 0.5) / cols
    cy = (assignment // cols + 0.5) / rows
    return float(((points[:, 0] - cx) ** 2 + (points[:, 1] - cy) ** 2).sum())
