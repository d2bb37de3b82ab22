"""Tiles: the grid mosaic as a deep-zoom pyramid, plus the static viewer site.

See :mod:`postermap.mosaic` for the pyramid and :mod:`postermap.site` for the site's
layout. The site is built beside the old one and swapped in whole.
"""

from __future__ import annotations

import logging
import shutil

import pyarrow as pa
import pyarrow.compute as pc

from postermap.catalog import write_catalog
from postermap.config import StageSettings
from postermap.mosaic import cell_pixels, render_pyramid
from postermap.runner import make_runner
from postermap.site import (
    copy_viewer,
    link_images,
    link_thumbs,
    similar_items,
    swap_into_place,
    write_site_data,
)
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Workspace

log = logging.getLogger(__name__)


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    catalog = write_catalog(ws)
    grid = ws.read_grid()
    cell = cell_pixels(grid.cell, settings.cell_size)
    placed = catalog.filter(pc.invert(pc.is_null(catalog["row"])))
    items = sorted(placed.to_pylist(), key=lambda r: (r["row"], r["col"]))
    tmp = ws.site_build_dir
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    copy_viewer(tmp)
    by_cell = {
        r["row"] * grid.cols + r["col"]: str(ws.thumb_path(r["content_hash"])) for r in items
    }
    cells = [
        [by_cell.get(row * grid.cols + col) for col in range(grid.cols)] for row in range(grid.rows)
    ]
    with make_runner(settings.ray, settings.workers, mp_context="spawn") as runner:
        levels, not_drawn = render_pyramid(
            cells,
            cell,
            settings.background,
            settings.tile_quality,
            tmp / "tiles",
            runner,
        )
    missing = link_images(ws, tmp / "images", items)
    for source in missing:
        log.warning("tiles: original %s is gone; the site shows its thumbnail", source)
    index_of = {item["id"]: index for index, item in enumerate(items)}
    similar = similar_items(ws.read_layout().ids, ws.read_neighbours(), index_of)
    write_site_data(
        tmp / "data",
        items,
        ws.shown_columns(),
        grid,
        levels,
        ws.read_clusters(),
        similar,
        cell,
        settings.background,
    )
    link_thumbs(ws, tmp / "thumbs", items)
    at_cell = {r["row"] * grid.cols + r["col"]: r for r in items}
    errors = {}
    for (row, col), reason in not_drawn.items():
        item = at_cell[row * grid.cols + col]
        errors[item["id"]] = reason
        log.error("tiles: cell of %s left blank: %s", item["source"], reason)
    ws.write_table(
        "tiles",
        pa.table(
            {
                "id": pa.array(list(errors), pa.string()),
                "render_error": pa.array(list(errors.values()), pa.string()),
            }
        ),
    )
    swap_into_place(tmp, ws.site_dir)
    return StageOutcome(
        counts={
            "images": len(items),
            "rows": grid.rows,
            "cols": grid.cols,
            "zoom_levels": levels,
            "render_errors": len(errors),
            "originals_missing": len(missing),
        },
        items=len(items),
    )


STAGE = Stage(
    name="tiles",
    depends=("grid", "cluster", "neighbours"),
    run=run,
    version=5,  # detail fields from ingest's shown columns; cells that fail are listed
    doc="Render the tile pyramid and write the viewer site.",
)
