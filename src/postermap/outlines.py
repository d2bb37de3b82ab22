"""Outlines of cluster regions on the grid, as polygons the viewer draws.

A cluster's cells form one or more regions; their boundary is the set of cell edges with a
non-member on the other side. Edges are oriented clockwise (in row/col space) and chained
into closed rings; collinear corners are dropped so a 40-cell straight edge is one segment.
Corner coordinates are ``[row, col]`` of cell corners (0..rows, 0..cols).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

Point = tuple[int, int]


def cluster_outlines(labels: np.ndarray) -> dict[int, list[list[Point]]]:
    """Rings per cluster label (>= 0) of a ``rows x cols`` label grid (-1 = none).

    Each cluster is traced inside its own bounding box, so the work is proportional to
    the clusters' areas rather than (clusters x grid size).
    """
    from postermap.clustering import cluster_members

    cols = labels.shape[1]
    out: dict[int, list[list[Point]]] = {}
    for label, cells in cluster_members(labels.ravel()):
        rows_of, cols_of = cells // cols, cells % cols
        r0, c0 = int(rows_of.min()), int(cols_of.min())
        box = labels[r0 : int(rows_of.max()) + 1, c0 : int(cols_of.max()) + 1]
        out[label] = [[(r + r0, c + c0) for r, c in ring] for ring in region_rings(box == label)]
    return out


def region_rings(mask: np.ndarray) -> list[list[Point]]:
    """Closed boundary rings of the True cells of ``mask``."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[1:-1, 1:-1]
    nexts: dict[Point, list[Point]] = defaultdict(list)
    # For each side of each member cell whose neighbour is not a member, one directed edge.
    sides = [
        (padded[:-2, 1:-1], (0, 0), (0, 1)),  # top: neighbour above missing
        (padded[1:-1, 2:], (0, 1), (1, 1)),  # right
        (padded[2:, 1:-1], (1, 1), (1, 0)),  # bottom
        (padded[1:-1, :-2], (1, 0), (0, 0)),  # left
    ]
    for neighbour, start, end in sides:
        rs, cs = np.nonzero(inner & ~neighbour)
        for r, c in zip(rs.tolist(), cs.tolist(), strict=True):
            nexts[(r + start[0], c + start[1])].append((r + end[0], c + end[1]))
    rings = []
    while nexts:
        origin = next(iter(nexts))
        ring = [origin]
        point = origin
        while True:
            targets = nexts[point]
            target = targets.pop()
            if not targets:
                del nexts[point]
            if target == origin:
                break
            ring.append(target)
            point = target
        rings.append(_drop_collinear(ring))
    return rings


def _drop_collinear(ring: list[Point]) -> list[Point]:
    kept = []
    n = len(ring)
    for i, p in enumerate(ring):
        a, b = ring[i - 1], ring[(i + 1) % n]
        if (p[0] - a[0]) * (b[1] - p[1]) != (p[1] - a[1]) * (b[0] - p[0]):
            kept.append(p)
    return kept
