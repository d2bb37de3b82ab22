"""Grid: snap the 2-D layout onto a gapless grid (see :mod:`postermap.grid`).

The grid's aspect ratio follows the layout's bounding box (clipped to 1:2..2:1), so the
assignment distorts the map as little as possible.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from postermap.config import Settings
from postermap.grid import assign_to_grid, grid_cost, grid_shape
from postermap.pipeline import Stage, StageOutcome
from postermap.stages.reduce import load_layout
from postermap.workspace import Workspace, atomic_write_table


def layout_aspect(xy: np.ndarray) -> float:
    span = xy.max(axis=0) - xy.min(axis=0)
    if span[1] <= 0:
        return 2.0
    return float(np.clip(span[0] / span[1], 0.5, 2.0))


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids, xy = load_layout(ws)
    # Image rows grow downwards while t-SNE's y grows upwards: flip so the map reads like
    # the scatter plot.
    xy = xy * np.array([1.0, -1.0])
    rows, cols = grid_shape(len(xy), layout_aspect(xy))
    cells = assign_to_grid(xy, rows, cols, exact_max=settings.grid_exact_max,
                           seed=settings.seed)
    table = pa.table({"id": pa.array(ids.tolist(), pa.string()),
                      "row": pa.array(cells // cols, pa.int32()),
                      "col": pa.array(cells % cols, pa.int32())})
    atomic_write_table(ws.table_path("grid"), table)
    cost = grid_cost(xy, cells, rows, cols)
    return StageOutcome(counts={"in": len(ids), "rows": rows, "cols": cols},
                        items=len(ids), extra={"rows": rows, "cols": cols, "cost": cost})


STAGE = Stage(name="grid", depends=("reduce",), params=("grid_exact_max", "seed"), run=run)
