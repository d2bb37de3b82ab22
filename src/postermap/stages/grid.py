"""Grid: snap the 2-D layout onto a gapless grid shaped for a screen (:mod:`postermap.grid`).

The cells take the collection's shape (:func:`~postermap.grid.cell_ratio`, or
``cell_aspect``), the grid's rows and columns make the mosaic about ``map_aspect`` wide
in pixels, and the layout is turned to fit that shape before the assignment.
"""

from __future__ import annotations

import numpy as np

from postermap.config import StageSettings
from postermap.grid import (
    assign_to_grid,
    cell_ratio,
    grid_cost,
    map_shape,
    orient,
    parse_ratio,
    rows_down,
)
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Grid, Workspace


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    layout = ws.read_layout()
    if settings.cell_aspect == "auto":
        sizes = ws.read_table("ingest", ["id", "width", "height"]).to_pydict()
        position = {image_id: i for i, image_id in enumerate(sizes["id"])}
        order = [position[i] for i in layout.ids.tolist()]
        ratio = cell_ratio(
            np.array(sizes["width"], float)[order], np.array(sizes["height"], float)[order]
        )
    else:
        ratio = parse_ratio(settings.cell_aspect)
    rows, cols = map_shape(len(layout.ids), ratio, settings.map_aspect)
    xy, angle = orient(rows_down(layout.xy), rows, cols)
    cells = assign_to_grid(
        xy,
        rows,
        cols,
        exact_max=settings.grid_exact_max,
        seed=settings.seed,
        workers=settings.workers,
    )
    ws.write_grid(Grid(layout.ids, cells, rows, cols, ratio, angle))
    cost = grid_cost(xy, cells, rows, cols)
    return StageOutcome(
        counts={"in": len(xy), "rows": rows, "cols": cols, "holes": rows * cols - len(xy)},
        items=len(xy),
        extra={"cost": cost, "cell": f"{ratio[0]}:{ratio[1]}", "angle": round(angle, 4)},
    )


STAGE = Stage(
    name="grid",
    depends=("reduce",),
    run=run,
    version=4,  # cells shaped like the images, a screen-shaped map, holes anywhere
    doc="Snap the 2-D layout onto a gapless grid.",
)
