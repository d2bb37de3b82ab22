"""Scalable grid assignment: balanced bisection into exact blocks, then window refinement.

1. **Bisection.** The cell set is split in two along its longer side; the points are split
   at the same rank along the same axis, so each half gets exactly as many points as cells.
   Recursing until a block holds ``block_size`` cells gives a global arrangement that
   respects the layout's density, in O(N log N). Each block is then solved exactly.
2. **Refinement.** Square windows of ``window`` x ``window`` cells tile the grid; the points
   currently in a window are re-assigned exactly to the window's cells. A re-solve never
   increases the cost (the current assignment is one of its candidates). Windows are shifted
   by half their side between passes so block seams get repaired; a window none of whose
   cells changed since it was last solved is skipped; passes stop when the relative gain
   falls below ``tol``.

Blocks of one bisection, and windows of one pass, are disjoint, so they are solved in
parallel by ``workers`` processes. Only O(N) arrays plus one ``window^2`` cost matrix per
worker are held in memory.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from postermap.grid.exact import assign_exact

log = logging.getLogger(__name__)

#: Below this many points per batch, process start-up costs more than it saves.
PARALLEL_MIN_POINTS = 5_000


def assign_blocks(
    points: np.ndarray,
    rows: int,
    cols: int,
    *,
    block_size: int = 1024,
    window: int = 32,
    max_passes: int = 8,
    tol: float = 1e-4,
    seed: int = 0,
    workers: int = 1,
    start: np.ndarray | None = None,
    holes_anywhere: bool = True,
) -> np.ndarray:
    """Near-optimal assignment of normalised ``points`` to distinct cells.

    With ``holes_anywhere`` every cell of the grid may stay empty (the bisection hands each
    half as many points as fall on its side of the cut, so holes land where the layout
    is sparse, and windows re-solve their empty cells too); otherwise the points fill
    the first N row-major cells. ``start``, if given, replaces the bisection as the
    arrangement to refine.
    """
    n = len(points)
    rng = np.random.default_rng(seed)
    # A tiny seeded jitter makes ties (identical points) break the same way on every run
    # without depending on input order.
    keyed = points + rng.uniform(-1e-12, 1e-12, size=points.shape)
    pool = ProcessPoolExecutor(workers) if workers > 1 and n >= PARALLEL_MIN_POINTS else None
    try:
        if start is not None:
            assignment = np.array(start, dtype=np.int64)
        else:
            assignment = np.empty(n, dtype=np.int64)
            cells = np.arange(rows * cols if holes_anywhere else n, dtype=np.int64)
            leaves = _bisect(keyed, np.arange(n), cells, rows, cols, block_size)
            solved = _solve_all(points, leaves, rows, cols, pool)
            for (p_idx, _), cells in zip(leaves, solved, strict=True):
                assignment[p_idx] = cells
        cost = _cost(points, assignment, rows, cols)
        log.debug("grid: bisection cost %.6f", cost)
        offsets = [(0, 0), (window // 2, window // 2), (0, window // 2), (window // 2, 0)]
        changed_at = np.zeros(rows * cols, dtype=np.int64)  # pass that last changed a cell
        solved_at: dict[tuple[int, int], int] = {}
        for step in range(max_passes):
            dr, dc = offsets[step % len(offsets)]
            _refine_pass(
                points,
                assignment,
                rows,
                cols,
                window,
                dr,
                dc,
                step + 1,
                changed_at,
                solved_at,
                pool,
                holes_anywhere,
            )
            new_cost = _cost(points, assignment, rows, cols)
            gain = (cost - new_cost) / cost if cost > 0 else 0.0
            log.debug(
                "grid: pass %d offset (%d, %d) cost %.6f gain %.2e", step, dr, dc, new_cost, gain
            )
            cost = new_cost
            if gain < tol and step >= len(offsets) - 1:
                break
    finally:
        if pool is not None:
            pool.shutdown()
    return assignment


def _bisect(
    keyed: np.ndarray,
    point_idx: np.ndarray,
    cells: np.ndarray,
    rows: int,
    cols: int,
    block_size: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leaves (point indices, cells) of the bisection, each at most ``block_size`` cells.

    Cells are cut in half along the longer side; the points go to the side of the cut
    they lie on (in normalised coordinates), as far as each side has room. With as many
    points as cells that is the same rank on both, so every leaf is full.
    """
    leaves = []
    stack = [(point_idx, cells)]
    while stack:
        p_idx, c_idx = stack.pop()
        if len(c_idx) <= block_size:
            leaves.append((p_idx, c_idx))
            continue
        r, c = c_idx // cols, c_idx % cols
        wide = (c.max() - c.min() + 1) / cols >= (r.max() - r.min() + 1) / rows
        # Order cells and points along the longer side, then cut both at the same rank.
        cell_order = np.lexsort((r, c)) if wide else np.lexsort((c, r))
        axis = 0 if wide else 1
        point_order = np.argsort(keyed[p_idx, axis], kind="stable")
        half = len(c_idx) // 2
        first, second = c_idx[cell_order[:half]], c_idx[cell_order[half:]]
        lines = (first % cols, second % cols) if wide else (first // cols, second // cols)
        extent = cols if wide else rows
        cut = (lines[0].max() + 1 + lines[1].min()) / 2 / extent  # between the halves
        coords = keyed[p_idx[point_order], axis]
        take = int(np.searchsorted(coords, cut))
        take = min(max(take, len(p_idx) - len(second)), len(first))
        stack.append((p_idx[point_order[:take]], first))
        stack.append((p_idx[point_order[take:]], second))
    return leaves


def _solve_all(
    points: np.ndarray,
    problems: list[tuple[np.ndarray, np.ndarray]],
    rows: int,
    cols: int,
    pool: ProcessPoolExecutor | None,
) -> list[np.ndarray]:
    """Exact solutions of independent (point indices, cells) problems, in order."""
    args = (
        [points[p] for p, _ in problems],
        [c for _, c in problems],
        [rows] * len(problems),
        [cols] * len(problems),
    )
    if pool is None:
        return list(map(assign_exact, *args))
    return list(pool.map(assign_exact, *args, chunksize=4))


def _refine_pass(
    points: np.ndarray,
    assignment: np.ndarray,
    rows: int,
    cols: int,
    window: int,
    dr: int,
    dc: int,
    step: int,
    changed_at: np.ndarray,
    solved_at: dict[tuple[int, int], int],
    pool: ProcessPoolExecutor | None,
    holes_anywhere: bool = True,
) -> None:
    n = len(points)
    owner = np.full(rows * cols, -1, dtype=np.int64)
    owner[assignment] = np.arange(n)
    problems, keys = [], []
    for r0 in range(-dr, rows, window):
        for c0 in range(-dc, cols, window):
            rr = np.arange(max(r0, 0), min(r0 + window, rows))
            cc = np.arange(max(c0, 0), min(c0 + window, cols))
            if len(rr) == 0 or len(cc) == 0:
                continue
            win_cells = (rr[:, None] * cols + cc[None, :]).ravel()
            if not holes_anywhere:
                win_cells = win_cells[win_cells < n]
            members = owner[win_cells]
            members = members[members >= 0]
            if len(members) < 1 or len(win_cells) < 2:
                continue
            last = solved_at.get((r0, c0))
            if last is not None and changed_at[win_cells].max() <= last:
                continue  # nothing in it moved since it was solved: still optimal
            problems.append((members, win_cells))
            keys.append((r0, c0))
    for (members, _), key, new_cells in zip(
        problems, keys, _solve_all(points, problems, rows, cols, pool), strict=True
    ):
        moved = new_cells != assignment[members]
        changed_at[new_cells[moved]] = step
        changed_at[assignment[members][moved]] = step  # vacated cells changed too
        assignment[members] = new_cells
        solved_at[key] = step


def _cost(points: np.ndarray, assignment: np.ndarray, rows: int, cols: int) -> float:
    cx = (assignment % cols + 0.5) / cols
    cy = (assignment // cols + 0.5) / rows
    return float(((points[:, 0] - cx) ** 2 + (points[:, 1] - cy) ** 2).sum())
