"""Tiles: the grid mosaic as a deep-zoom pyramid, plus the static viewer site.

See :mod:`postermap.mosaic` for the pyramid and :mod:`postermap.site` for the site's
layout. The site is built beside the old one and swapped in whole. With ``--arrange
COLUMN`` a second pyramid shows the same images as a wall by that column
(:mod:`postermap.arrangements`); the images' top ImageNet classes for the search by
picture come from the stored features (:mod:`postermap.concepts`).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from postermap.arrangements import arrange_map, wall_cells
from postermap.catalog import write_catalog
from postermap.concepts import picture_classes
from postermap.config import StageSettings
from postermap.errors import SettingsError
from postermap.mosaic import (
    cell_pixels,
    changed_cells,
    render_pyramid,
    update_pyramid,
    write_drawn,
)
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
from postermap.workspace import Workspace, thumb_name

log = logging.getLogger(__name__)


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    catalog = write_catalog(ws)
    grid = ws.read_grid()
    cell = cell_pixels(grid.cell, settings.cell_size)
    fields = ws.shown_columns()
    items = _map_items(catalog, fields, settings.arrange)
    tmp = ws.site_build_dir
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    copy_viewer(tmp)
    thumbs_dir = str(ws.thumbs_dir)
    thumbs = [f"{thumbs_dir}/{thumb_name(r['content_hash'])}" for r in items]
    by_cell = {
        r["row"] * grid.cols + r["col"]: thumb for r, thumb in zip(items, thumbs, strict=True)
    }
    cells = [
        [by_cell.get(row * grid.cols + col) for col in range(grid.cols)] for row in range(grid.rows)
    ]
    walls = []
    if settings.arrange:
        try:
            walls = arrange_map(items, settings.arrange, ws.read_layout(), grid, cell)
        except ValueError as err:
            raise SettingsError(f"--arrange: {err}") from err
    arranged = []
    # a cell is the same when it shows the same thumbnail file, unchanged since
    shown = [[_thumb_key(thumb) if thumb else None for thumb in line] for line in cells]
    drawn_with = {
        "cell": list(cell),
        "background": settings.background,
        "quality": settings.tile_quality,
    }
    changed = changed_cells(ws.site_dir / "tiles", shown, drawn_with)
    with make_runner(settings.ray, settings.workers, mp_context="spawn") as runner:
        partial = None
        if changed is not None:
            partial = update_pyramid(
                cells,
                cell,
                settings.background,
                settings.tile_quality,
                tmp / "tiles",
                ws.site_dir / "tiles",
                changed,
                runner,
            )
        if partial is not None:
            levels, not_drawn, redrawn = partial
            not_drawn.update(_earlier_failures(ws, grid, changed or set()))
            log.info("tiles: %d cells changed, %d tiles drawn again", len(changed or ()), redrawn)
        else:
            if (tmp / "tiles").exists():
                shutil.rmtree(tmp / "tiles")
            levels, not_drawn = render_pyramid(
                cells,
                cell,
                settings.background,
                settings.tile_quality,
                tmp / "tiles",
                runner,
            )
            redrawn = sum(1 for p in (tmp / "tiles").rglob("*.jpg"))
        write_drawn(tmp / "tiles", shown, drawn_with)
        for wall in walls:
            wall_levels, _ = render_pyramid(
                wall_cells(wall, thumbs),
                cell,
                settings.background,
                settings.tile_quality,
                tmp / "arrangements" / wall.slug / "tiles",
                runner,
            )
            arranged.append((wall, wall_levels))
    missing = link_images(ws, tmp / "images", items)
    for source in missing:
        log.warning("tiles: original %s is gone; the site shows its thumbnail", source)
    similar = similar_items(
        ws.read_layout().ids, ws.read_neighbours(), [item["id"] for item in items]
    )
    write_site_data(
        tmp / "data",
        items,
        fields,
        grid,
        levels,
        ws.read_clusters(),
        similar,
        cell,
        settings.background,
        top_classes=_picture_classes(ws, settings, items),
        arrangements=arranged,
        vectors=f"features file {Path(settings.features).name}"
        if settings.features
        else f"model {settings.model}",
    )
    link_thumbs(ws, tmp / "thumbs", items)
    at_cell = {(r["row"], r["col"]): r for r in items} if not_drawn else {}
    errors = {}
    for at, reason in not_drawn.items():
        item = at_cell[at]
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
            "arrangements": len(arranged),
            "render_errors": len(errors),
            "tiles_drawn": redrawn,
            "tiles_reused": sum(1 for _ in (ws.site_dir / "tiles").rglob("*.jpg")) - redrawn
            if partial is not None
            else 0,
            "originals_missing": len(missing),
        },
        items=len(items),
    )


#: the catalog columns the site is made of, besides those the detail panel shows
SITE_COLUMNS = (
    "id",
    "title",
    "path",
    "source",
    "file",
    "content_hash",
    "width",
    "height",
    "row",
    "col",
    "cluster",
    "cluster_name",
)


def _map_items(catalog: pa.Table, fields: list[str], arrange: str | None) -> list[dict]:
    """The catalog rows of the images on the map in row-major cell order, with only the
    columns the site uses: every column of a million rows as Python objects (colour
    histograms, hashes, every stage's bookkeeping) was gigabytes of the stage's memory."""
    wanted = [*SITE_COLUMNS, *fields, *(c.strip() for c in (arrange or "").split(","))]
    columns = [c for c in dict.fromkeys(wanted) if c in catalog.column_names]
    placed = catalog.select(columns).filter(pc.invert(pc.is_null(catalog["row"])))
    return placed.sort_by([("row", "ascending"), ("col", "ascending")]).to_pylist()


def _picture_classes(ws: Workspace, settings: StageSettings, items: list[dict]):
    """The items' top ImageNet classes, or None when the vectors came from a file (the
    model's classifier head cannot read them)."""
    if settings.features:
        log.info(
            "tiles: vectors from %s, not the ImageNet model: no search by what is pictured",
            settings.features,
        )
        return None
    return picture_classes(ws, [r["content_hash"] for r in items], settings.model)


def _thumb_key(thumb: str) -> str:
    """What a cell shows: its thumbnail's name and modification time (a thumbnail made
    again, at another size say, is another picture)."""
    stem = thumb.rpartition("/")[2].rpartition(".")[0]
    try:
        return f"{stem}@{os.stat(thumb).st_mtime_ns}"
    except FileNotFoundError:
        return f"{stem}@missing"


def _earlier_failures(ws: Workspace, grid, changed: set[tuple[int, int]]) -> dict:
    """Cells the last render could not draw and this one did not draw again."""
    if not ws.has_table("tiles"):
        return {}
    earlier = ws.read_table("tiles").to_pydict()
    cell_of = {i: int(c) for i, c in zip(grid.ids.tolist(), grid.cells.tolist(), strict=True)}
    out = {}
    for image_id, reason in zip(earlier["id"], earlier["render_error"], strict=True):
        if image_id in cell_of:
            at = divmod(cell_of[image_id], grid.cols)
            if at not in changed:
                out[at] = reason
    return out


STAGE = Stage(
    name="tiles",
    depends=("grid", "cluster", "neighbours"),
    run=run,
    version=7,  # facets, picture classes, other arrangements, item paths, export rows
    doc="Render the tile pyramid and write the viewer site.",
)
