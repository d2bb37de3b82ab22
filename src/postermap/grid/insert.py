"""Insert new points into an existing grid, moving as few of the old ones as possible.

``postermap add`` keeps the map its users know: old images keep their cells unless making
room for a new one is worth moving them. Each new point is placed by the cheapest
*augmenting path*: the point takes some cell, that cell's occupant steps to a neighbouring
cell, whose occupant steps on, and so on until a step lands in an empty cell. A path's
cost is the change of the grid cost (squared distance of every point to its cell, in cell
units) plus ``move_penalty`` for every old point it moves; a shortest path (Dijkstra over
the cells, compiled with numba) is found per new point, cheapest first. Where the grid is
full it first grows by rows at the bottom and columns at the right, so no old point
changes its (row, col) for the growth itself.

All coordinates are in cell units of the grid (x along columns, y along rows).
"""

from __future__ import annotations

import logging

import numba
import numpy as np

log = logging.getLogger(__name__)

#: an old point moved one cell costs this much (cell units squared) on top of its cost change
MOVE_PENALTY = 2.0


def grown_shape(rows: int, cols: int, needed: int, aspect: float) -> tuple[int, int]:
    """The smallest (rows', cols') >= (rows, cols) with ``needed`` cells whose cols/rows
    stays close to ``aspect`` (grow the shorter side first)."""
    new_rows, new_cols = rows, cols
    while new_rows * new_cols < needed:
        if (new_cols + 1) / new_rows - aspect < aspect - new_cols / (new_rows + 1):
            new_cols += 1
        else:
            new_rows += 1
    return new_rows, new_cols


def insert_points(
    cells: np.ndarray,
    old_xy: np.ndarray,
    new_xy: np.ndarray,
    rows: int,
    cols: int,
    aspect: float | None = None,
    move_penalty: float = MOVE_PENALTY,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Cells for old and new points after inserting ``new_xy``.

    Args:
        cells: flat cells (``r * cols + c``) of the old points.
        old_xy: (N, 2) positions of the old points, in cell units of the old grid.
        new_xy: (M, 2) positions of the new points, same units (clipped to the grid).
        rows, cols: the old grid's shape.
        aspect: cols/rows to keep when the grid must grow (default: the current one).
        move_penalty: cost of moving one old point by one cell.

    Returns:
        (old points' cells, new points' cells, rows, cols), cells flat in the new shape.
    """
    n, m = len(old_xy), len(new_xy)
    aspect = cols / rows if aspect is None else aspect
    new_rows, new_cols = grown_shape(rows, cols, n + m, aspect)
    r, c = np.asarray(cells) // cols, np.asarray(cells) % cols
    owner = np.full(new_rows * new_cols, -1, dtype=np.int64)
    owner[r * new_cols + c] = np.arange(n)
    points = np.empty((n + m, 2), dtype=np.float64)
    points[:n] = old_xy
    points[n:, 0] = np.clip(new_xy[:, 0], 0.0, new_cols - 1e-9)
    points[n:, 1] = np.clip(new_xy[:, 1], 0.0, new_rows - 1e-9)
    # the densest places first: their paths are the longest, and later points route
    # around what earlier ones settled
    moved = np.zeros(n + m, dtype=np.bool_)
    size = new_rows * new_cols
    work = _Work(size)
    for index in range(n, n + m):
        if not _insert_one(
            owner,
            points,
            index,
            new_rows,
            new_cols,
            moved,
            n,
            move_penalty,
            work.dist,
            work.parent,
            work.done,
            work.heap_cost,
            work.heap_cell,
            work.touched,
        ):
            raise RuntimeError("no empty cell reachable: the grid did not grow enough")
    out = np.empty(n + m, dtype=np.int64)
    filled = owner >= 0
    out[owner[filled]] = np.nonzero(filled)[0]
    log.info(
        "grid: %d new points inserted into %dx%d (was %dx%d), %d old points moved",
        m,
        new_rows,
        new_cols,
        rows,
        cols,
        int(moved[:n].sum()),
    )
    return out[:n], out[n:], new_rows, new_cols


class _Work:
    """Scratch arrays for the path search, allocated once per insertion run (a search
    touches a small part of the grid; only what it touched is reset)."""

    def __init__(self, size: int) -> None:
        self.dist = np.full(size, np.inf)
        self.parent = np.full(size, -1, dtype=np.int64)
        self.done = np.zeros(size, dtype=np.bool_)
        self.heap_cost = np.empty(size * 5 + 32)
        self.heap_cell = np.empty(size * 5 + 32, dtype=np.int64)
        self.touched = np.empty(size, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _insert_one(
    owner: np.ndarray,
    points: np.ndarray,
    index: int,
    rows: int,
    cols: int,
    moved: np.ndarray,
    n_old: int,
    move_penalty: float,
    dist: np.ndarray,
    parent: np.ndarray,
    done: np.ndarray,
    heap_cost: np.ndarray,
    heap_cell: np.ndarray,
    touched: np.ndarray,
) -> bool:  # pragma: no cover - compiled
    """Place point ``index`` by the cheapest augmenting path; updates ``owner`` in place.
    The scratch arrays come in reset (inf, -1, False) and are left reset."""
    n_touched = 0
    heap_len = 0
    qx, qy = points[index, 0], points[index, 1]
    # the new point may go straight into any empty cell (moving nobody), or take a cell
    # near its position and push that cell's occupant on
    for cell in range(rows * cols):
        if owner[cell] < 0:
            n_touched, heap_len = _offer(
                cell, qx, qy, cols, dist, touched, n_touched, heap_cost, heap_cell, heap_len
            )
    cr, cc = int(qy), int(qx)
    radius = 2
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            rr, c2 = cr + dr, cc + dc
            if 0 <= rr < rows and 0 <= c2 < cols:
                n_touched, heap_len = _offer(
                    rr * cols + c2,
                    qx,
                    qy,
                    cols,
                    dist,
                    touched,
                    n_touched,
                    heap_cost,
                    heap_cell,
                    heap_len,
                )
    best_cell, best_cost = -1, np.inf
    while heap_len > 0:
        d, cell, heap_len = _pop(heap_cost, heap_cell, heap_len)
        if done[cell] or d > dist[cell]:
            continue
        if d >= best_cost:
            break
        done[cell] = True
        occupant = owner[cell]
        if occupant < 0:
            best_cell, best_cost = cell, d
            break
        # the occupant steps to a neighbour
        r0, c0 = cell // cols, cell % cols
        px, py = points[occupant, 0], points[occupant, 1]
        ax, ay = px - (c0 + 0.5), py - (r0 + 0.5)
        here = ax * ax + ay * ay
        for k in range(4):
            rr = r0 + (1 if k == 0 else -1 if k == 1 else 0)
            c2 = c0 + (1 if k == 2 else -1 if k == 3 else 0)
            if rr < 0 or rr >= rows or c2 < 0 or c2 >= cols:
                continue
            nxt = rr * cols + c2
            if done[nxt]:
                continue
            bx, by = px - (c2 + 0.5), py - (rr + 0.5)
            step = bx * bx + by * by - here + (move_penalty if occupant < n_old else 0.0)
            nd = d + step
            if nd < dist[nxt]:
                if dist[nxt] == np.inf:
                    touched[n_touched] = nxt
                    n_touched += 1
                dist[nxt] = nd
                parent[nxt] = cell
                if heap_len >= heap_cost.shape[0]:
                    break
                heap_len = _push(heap_cost, heap_cell, heap_len, nd, nxt)
    found = best_cell >= 0
    if found:
        # walk the path back: each occupant steps forward, the new point takes the first
        cell = best_cell
        while parent[cell] >= 0:
            prev = parent[cell]
            mover = owner[prev]
            owner[cell] = mover
            moved[mover] = True
            cell = prev
        owner[cell] = index
    for i in range(n_touched):
        cell = touched[i]
        dist[cell] = np.inf
        parent[cell] = -1
        done[cell] = False
    return found


@numba.njit(cache=True, nogil=True)
def _offer(
    cell, qx, qy, cols, dist, touched, n_touched, heap_cost, heap_cell, heap_len
):  # pragma: no cover - compiled
    """Offer ``cell`` to the new point at (qx, qy), at its squared distance as the path's
    first cost; returns the new (n_touched, heap_len)."""
    rr, c2 = cell // cols, cell % cols
    dx, dy = qx - (c2 + 0.5), qy - (rr + 0.5)
    d = dx * dx + dy * dy
    if d < dist[cell]:
        if dist[cell] == np.inf:
            touched[n_touched] = cell
            n_touched += 1
        dist[cell] = d
        heap_len = _push(heap_cost, heap_cell, heap_len, d, cell)
    return n_touched, heap_len


@numba.njit(cache=True, nogil=True)
def _push(costs, cells, length, cost, cell):  # pragma: no cover - compiled
    i = length
    costs[i], cells[i] = cost, cell
    while i > 0:
        parent = (i - 1) // 2
        if costs[parent] <= costs[i]:
            break
        costs[parent], costs[i] = costs[i], costs[parent]
        cells[parent], cells[i] = cells[i], cells[parent]
        i = parent
    return length + 1


@numba.njit(cache=True, nogil=True)
def _pop(costs, cells, length):  # pragma: no cover - compiled
    cost, cell = costs[0], cells[0]
    length -= 1
    costs[0], cells[0] = costs[length], cells[length]
    i = 0
    while True:
        left, right, smallest = 2 * i + 1, 2 * i + 2, i
        if left < length and costs[left] < costs[smallest]:
            smallest = left
        if right < length and costs[right] < costs[smallest]:
            smallest = right
        if smallest == i:
            break
        costs[smallest], costs[i] = costs[i], costs[smallest]
        cells[smallest], cells[i] = cells[i], cells[smallest]
        i = smallest
    return cost, cell, length


def cell_units(points01: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Normalised [0, 1] positions -> cell units of a rows x cols grid."""
    return np.asarray(points01, dtype=np.float64) * np.array([cols, rows], dtype=np.float64)


__all__ = ["MOVE_PENALTY", "cell_units", "grown_shape", "insert_points"]
