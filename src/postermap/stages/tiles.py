"""Tiles: the grid mosaic as a deep-zoom pyramid, plus the static viewer site.

See :mod:`postermap.mosaic` for the pyramid and :mod:`postermap.site` for the site's
layout. The site is built beside the old one and swapped in whole.
"""

from __future__ import annotations

import shutil

import pyarrow.compute as pc

from postermap.catalog import write_catalog
from postermap.config import StageSettings
from postermap.mosaic import render_pyramid
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


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    catalog = write_catalog(ws)
    grid = ws.read_grid()
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
        levels = render_pyramid(
            cells,
            settings.cell_size,
            settings.background,
            settings.tile_quality,
            tmp / "tiles",
            runner,
        )
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
        settings.cell_size,
        settings.background,
    )
    link_images(tmp / "images", items)
    link_thumbs(ws, tmp / "thumbs", items)
    swap_into_place(tmp, ws.site_dir)
    return StageOutcome(
        counts={"images": len(items), "rows": grid.rows, "cols": grid.cols, "zoom_levels": levels},
        items=len(items),
    )


STAGE = Stage(
    name="tiles",
    depends=("grid", "cluster", "neighbours"),
    run=run,
    version=5,  # detail fields now come from ingest's shown columns
    doc="Render the tile pyramid and write the viewer site.",
)
