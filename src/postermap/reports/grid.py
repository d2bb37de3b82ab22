"""``postermap grid --report``: where the grid distorts the map."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from postermap.grid import rotate, rows_down
from postermap.grid.quality import cell_displacement, seam_map
from postermap.workspace import Workspace, atomic_write_bytes

log = logging.getLogger(__name__)


def write_seam_report(ws: Workspace, scale: int = 4) -> Path:
    """``report/grid-seams.png``: each cell coloured by how far its image was moved."""
    layout, grid = ws.read_layout(), ws.read_grid()
    xy = rotate(rows_down(layout.xy), grid.angle)  # as the grid stage saw it
    cell_of = dict(zip(grid.ids.tolist(), grid.cells.tolist(), strict=True))
    cells = np.array([cell_of[i] for i in layout.ids.tolist()], dtype=np.int64)
    image = seam_map(xy, cells, grid.rows, grid.cols)
    image = image.resize((grid.cols * scale, grid.rows * scale), resample=0)
    path = ws.report_dir / "grid-seams.png"
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    atomic_write_bytes(path, buffer.getvalue())
    moved = cell_displacement(xy, cells, grid.rows, grid.cols)
    log.info(
        "grid: median displacement %.2f cells, 99th percentile %.2f",
        np.median(moved),
        np.percentile(moved, 99),
    )
    return path
