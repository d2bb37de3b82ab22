"""Other arrangements of the map's images: a wall whose columns are bins of a column.

The similarity map answers "what looks like this"; a timeline answers "how did this look
in the 1970s". :func:`arrange_by_bins` lays the images out as a gapless wall of ``rows``
cells' height: each bin of the column (a year, a range of values) takes as many whole
columns as it needs, left to right in bin order, images without a value last. Inside a
bin the images keep their similarity neighbourhoods: they are split into its columns by
the 2-D layout's x and each column is ordered by the layout's y, so a bin reads like a
narrow strip of the similarity map. The only empty cells are at the foot of each bin's
last column.

The wall's height is chosen so the whole mosaic has the similarity map's shape
(``map_aspect``, width / height in pixels), so both arrangements fill the same screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from postermap.workspace import Grid, Layout


@dataclass
class Arrangement:
    """Item ``cell_item[r * cols + c]`` (-1 = empty) sits in row r, column c; ``bins``
    says which columns each bin took (label, first column, columns, images)."""

    name: str
    rows: int
    cols: int
    cell_item: np.ndarray
    bins: list[dict] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """The column's name as a folder name of the site."""
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.name).strip("-") or "column"


def arrange_by_bins(
    name: str,
    bins: np.ndarray,
    labels: list[str],
    xy: np.ndarray,
    cell: tuple[int, int],
    map_aspect: float = 1.6,
) -> Arrangement:
    """The wall of items whose bin is ``bins[i]`` (-1 = no value; ``labels[b]`` names bin
    b) with layout positions ``xy[i]``, in cells of ``cell`` = (width, height) pixels."""
    bins = np.asarray(bins, dtype=np.int64)
    n = len(bins)
    if n == 0:
        return Arrangement(name, 0, 0, np.zeros(0, np.int32))
    groups: list[tuple[str, np.ndarray]] = []
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    bounds = np.flatnonzero(np.diff(sorted_bins)) + 1
    none = None
    for part in np.split(order, bounds):
        b = int(bins[part[0]])
        if b < 0:
            none = part
        else:
            groups.append((labels[b], part))
    if none is not None:
        groups.append(("none", none))
    sizes = np.array([len(g) for _, g in groups])
    rows = wall_height(sizes, cell, map_aspect)
    widths = -(-sizes // rows)
    cols = int(widths.sum())
    cell_item = np.full(rows * cols, -1, dtype=np.int32)
    listed = []
    col = 0
    for (label, members), width in zip(groups, widths, strict=True):
        by_x = members[np.lexsort((xy[members, 1], xy[members, 0]))]
        for k in range(int(width)):
            column = by_x[k * rows : (k + 1) * rows]
            column = column[np.argsort(xy[column, 1], kind="stable")]
            cell_item[np.arange(len(column)) * cols + col + k] = column
        listed.append({"label": label, "col": col, "cols": int(width), "count": len(members)})
        col += int(width)
    return Arrangement(name, rows, cols, cell_item, listed)


def wall_height(sizes: np.ndarray, cell: tuple[int, int], map_aspect: float) -> int:
    """The number of rows that makes a wall of bins of ``sizes`` images closest to
    ``map_aspect`` (width / height in pixels)."""
    best, best_error = 1, float("inf")
    low, high = 1, int(sizes.max()) if len(sizes) else 1
    # the wall's aspect falls as it grows taller: bisect, then look around the crossing
    while low < high:
        mid = (low + high) // 2
        if _aspect(sizes, mid, cell) > map_aspect:
            low = mid + 1
        else:
            high = mid
    for rows in range(max(1, low - 2), low + 3):
        error = abs(np.log(_aspect(sizes, rows, cell) / map_aspect))
        if error < best_error:
            best, best_error = rows, error
    return best


def _aspect(sizes: np.ndarray, rows: int, cell: tuple[int, int]) -> float:
    cols = int((-(-sizes // rows)).sum())
    return cols * cell[0] / (rows * cell[1])


def arrange_items(
    items: list[dict],
    column: str,
    xy: np.ndarray,
    cell: tuple[int, int],
    map_aspect: float,
) -> Arrangement:
    """The wall of ``items`` (catalog rows in item order, layout positions ``xy``) by the
    bins of ``column`` (numeric, or a category: see :func:`facet_bins`; raises ValueError
    for any other column)."""
    from postermap.facets import facet_bins

    # a bin at least two columns wide on a wall of the similarity map's width
    cols = np.sqrt(len(items) * map_aspect * cell[1] / cell[0])
    bins, labels = facet_bins(items, column, max_bins=max(1, int(cols // 2)))
    return arrange_by_bins(column, bins, labels, xy, cell, map_aspect)


def wall_cells(arrangement: Arrangement, thumbs: list[str]) -> list[list[str | None]]:
    """Row by row, the thumbnail of each cell (None = empty), for the mosaic."""
    cells = arrangement.cell_item.reshape(arrangement.rows, arrangement.cols)
    return [[thumbs[i] if i >= 0 else None for i in row.tolist()] for row in cells]


def turned(xy: np.ndarray, angle: float) -> np.ndarray:
    """The layout turned by ``angle`` radians, as the grid turned it before placing the
    images, so "up" inside a bin is "up" on the similarity map."""
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([xy[:, 0] * c - xy[:, 1] * s, xy[:, 0] * s + xy[:, 1] * c])


def arrange_map(
    items: list[dict], columns: str, layout: Layout, grid: Grid, cell: tuple[int, int]
) -> list[Arrangement]:
    """One wall per comma-separated name in ``columns`` of the map's ``items`` (catalog rows
    in item order), in the similarity map's shape; raises ValueError naming a column that
    can be neither."""
    row_of = {image_id: i for i, image_id in enumerate(layout.ids.tolist())}
    xy = turned(layout.xy[[row_of[r["id"]] for r in items]], grid.angle)
    aspect = grid.cols * cell[0] / (grid.rows * cell[1])
    walls = []
    for column in dict.fromkeys(c.strip() for c in columns.split(",") if c.strip()):
        walls.append(arrange_items(items, column, xy, cell, aspect))
    return walls
