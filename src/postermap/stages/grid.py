"""Grid: snap the 2-D layout onto a gapless grid (see :mod:`postermap.grid`)."""

from __future__ import annotations

from postermap.config import StageSettings
from postermap.grid import assign_to_grid, grid_cost, grid_shape, layout_aspect, rows_down
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Grid, Workspace


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    layout = ws.read_layout()
    xy = rows_down(layout.xy)
    rows, cols = grid_shape(len(xy), layout_aspect(xy))
    cells = assign_to_grid(
        xy,
        rows,
        cols,
        exact_max=settings.grid_exact_max,
        seed=settings.seed,
        workers=settings.workers,
    )
    ws.write_grid(Grid(layout.ids, cells, rows, cols))
    cost = grid_cost(xy, cells, rows, cols)
    return StageOutcome(
        counts={"in": len(xy), "rows": rows, "cols": cols}, items=len(xy), extra={"cost": cost}
    )


STAGE = Stage(
    name="grid",
    depends=("reduce",),
    run=run,
    version=3,  # the grid shape moved from the marker into grid.json
    doc="Snap the 2-D layout onto a gapless grid.",
)
