"""Grid: snap the 2-D layout onto a gapless grid (see :mod:`postermap.grid`).

The grid's aspect ratio follows the layout's bounding box (clipped to 1:2..2:1), so the
assignment distorts the map as little as possible.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from postermap.config import Settings
from postermap.grid import assign_to_grid, grid_cost, grid_shape
from postermap.grid.quality import cell_displacement, seam_map
from postermap.pipeline import Stage, StageOutcome
from postermap.stages.reduce import load_layout
from postermap.workspace import Workspace, atomic_write_table

log = logging.getLogger(__name__)


def layout_aspect(xy: np.ndarray) -> float:
    span = xy.max(axis=0) - xy.min(axis=0)
    if span[1] <= 0:
        return 2.0
    return float(np.clip(span[0] / span[1], 0.5, 2.0))


def oriented_layout(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(ids, layout) with y flipped: image rows grow downwards while t-SNE's y grows
    upwards, so the map reads like the scatter plot."""
    ids, xy = load_layout(ws)
    return ids, xy * np.array([1.0, -1.0])


def write_seam_report(ws: Workspace, scale: int = 4) -> Path:
    """``report/grid-seams.png``: each cell coloured by how far its image was moved."""
    ids, xy = oriented_layout(ws)
    marker = ws.read_marker("grid")
    if marker is None:
        raise FileNotFoundError("run the grid stage first")
    rows, cols = marker["rows"], marker["cols"]
    table = pq.read_table(ws.table_path("grid")).to_pydict()
    cell_of = {
        i: r * cols + c for i, r, c in zip(table["id"], table["row"], table["col"], strict=True)
    }
    cells = np.array([cell_of[i] for i in ids.tolist()], dtype=np.int64)
    image = seam_map(xy, cells, rows, cols)
    image = image.resize((cols * scale, rows * scale), resample=0)
    path = ws.root / "report" / "grid-seams.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    moved = cell_displacement(xy, cells, rows, cols)
    log.info(
        "grid: median displacement %.2f cells, 99th percentile %.2f",
        np.median(moved),
        np.percentile(moved, 99),
    )
    return path


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids, xy = oriented_layout(ws)
    rows, cols = grid_shape(len(xy), layout_aspect(xy))
    cells = assign_to_grid(
        xy,
        rows,
        cols,
        exact_max=settings.grid_exact_max,
        seed=settings.seed,
        workers=settings.workers,
    )
    table = pa.table(
        {
            "id": pa.array(ids.tolist(), pa.string()),
            "row": pa.array(cells // cols, pa.int32()),
            "col": pa.array(cells % cols, pa.int32()),
        }
    )
    atomic_write_table(ws.table_path("grid"), table)
    cost = grid_cost(xy, cells, rows, cols)
    return StageOutcome(
        counts={"in": len(ids), "rows": rows, "cols": cols},
        items=len(ids),
        extra={"rows": rows, "cols": cols, "cost": cost},
    )


STAGE = Stage(
    name="grid", depends=("reduce",), params=("grid_exact_max", "seed"), run=run, version=2
)
