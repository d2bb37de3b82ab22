"""Tiles: the grid mosaic as a deep-zoom pyramid, plus the static viewer site.

The whole site is built in ``.tmp-site`` and swapped into ``site/`` at the end, so a
killed run leaves the previous site intact. Output (all relative, hostable anywhere)::

    site/index.html, app.js, style.css, vendor/    the viewer (package data)
    site/tiles/{z}/{y}/{x}.jpg                      pyvips dzsave, Google layout
    site/data/manifest.json                         grid shape, zoom levels, clusters
    site/data/outlines.json                         cluster outlines, loaded on first use
    site/data/items/NNNNN.json                      per-image details, SHARD_SIZE per file
    site/data/search.json                           titles + file names, loaded on demand
    site/data/clusters/<n>.json                     item indices of cluster n (gallery)
    site/images/<id>.<ext>                          originals (hard links where possible)
    site/thumbs/<content hash>.jpg                  256 px thumbnails (hard links)
"""

from __future__ import annotations

import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from postermap.catalog import write_catalog
from postermap.clustering import cluster_members
from postermap.config import Settings
from postermap.outlines import cluster_outlines
from postermap.pipeline import Stage, StageOutcome
from postermap.progress import track
from postermap.runner import make_runner
from postermap.stages.cluster import load_clusters
from postermap.stages.neighbours import load_neighbours
from postermap.stages.reduce import load_layout
from postermap.workspace import Workspace, atomic_write_json

log = logging.getLogger(__name__)

SHARD_SIZE = 1000
TILE_SIZE = 256
#: Catalog columns that are internal bookkeeping, not shown in the viewer's detail panel.
HIDDEN_COLUMNS = {
    "colour_hist",
    "phash",
    "gray_std",
    "detail",
    "edge_p99",
    "colours",
    "row_repeat",
    "similarity",
    "cluster_name",
    "id",
    "source",
    "path",
    "file",
    "content_hash",
    "pixel_hash",
    "status",
    "reason",
    "duplicate_of",
    "x",
    "y",
    "row",
    "col",
    "cluster",
    "title",
    "bytes",
}


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    catalog = write_catalog(ws)
    placed = catalog.filter(pc.invert(pc.is_null(catalog["row"])))
    grid_marker = ws.read_marker("grid") or {}
    rows, cols = int(grid_marker["rows"]), int(grid_marker["cols"])
    items = sorted(placed.to_pylist(), key=lambda r: (r["row"], r["col"]))
    tmp = ws.root / ".tmp-site"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _copy_viewer(tmp)
    levels = render_pyramid(ws, items, rows, cols, settings, tmp / "tiles")
    _write_data(ws, tmp / "data", items, catalog.column_names, rows, cols, levels, settings)
    _link_images(tmp / "images", items)
    _link_thumbs(ws, tmp / "thumbs", items)
    _swap_into_place(tmp, ws.site_dir)
    return StageOutcome(
        counts={"images": len(items), "rows": rows, "cols": cols, "zoom_levels": levels},
        items=len(items),
    )


def render_pyramid(
    ws: Workspace, items: list[dict], rows: int, cols: int, settings: Settings, out_dir: Path
) -> int:
    """Write a Google-layout tile pyramid of the grid mosaic with pyvips.

    The mosaic is built one grid row at a time: each row's thumbnails are joined and
    written to an uncompressed ``.v`` strip in a temporary folder by :func:`render_row`,
    rows in parallel on the run's runner (local processes or Ray tasks), so at most one
    row of thumbnails per worker is open at once (one lazy pyvips image per cell for the
    whole grid holds ~170 KB each: 3.4 GB at 20k images). The strips are then joined,
    memory-mapped, and ``dzsave`` streams the pyramid from them. Temporary disk: the raw mosaic
    (3 bytes per pixel; ~8 GB at 169k images of 128 px cells), removed afterwards.

    Returns the number of zoom levels (0 .. levels-1, the last at full resolution).
    """
    import pyvips

    cell = settings.cell_size
    bg = _hex_to_rgb(settings.background)
    by_cell = {r["row"] * cols + r["col"]: str(ws.thumb_path(r["content_hash"])) for r in items}
    strips_dir = out_dir.parent / ".tmp-strips"
    strips_dir.mkdir(parents=True, exist_ok=True)
    try:
        strips = [strips_dir / f"row-{row:05d}.v" for row in range(rows)]
        cells = [[by_cell.get(row * cols + col) for col in range(cols)] for row in range(rows)]
        with make_runner(settings.ray, settings.workers, mp_context="spawn") as runner:
            done = runner.map(
                render_row,
                cells,
                [cell] * rows,
                [bg] * rows,
                strips,
                chunksize=4 if runner.distributed else 1,
            )
            for _ in track(done, rows, "tiles: mosaic rows"):
                pass
        mosaic = pyvips.Image.arrayjoin(
            [pyvips.Image.new_from_file(str(p), access="sequential") for p in strips], across=1
        )
        log.info("tiles: mosaic %dx%d px, writing pyramid", mosaic.width, mosaic.height)
        mosaic.dzsave(
            str(out_dir),
            layout="google",
            suffix=f".jpg[Q={settings.tile_quality}]",
            tile_size=TILE_SIZE,
            overlap=0,
            background=bg,
        )
    finally:
        shutil.rmtree(strips_dir, ignore_errors=True)
    return len([p for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit()])


def render_row(thumbs: list[str | None], cell: int, bg: list[int], out: Path) -> Path:
    """Join one grid row's thumbnails, each fitted into a ``cell`` square on ``bg``, into
    an uncompressed vips strip at ``out`` (``None`` = empty cell). A unit of parallel work:
    it touches nothing but its own files."""
    import pyvips

    blank = (pyvips.Image.black(cell, cell, bands=3) + bg).cast("uchar")
    tiles = []
    for path in thumbs:
        if path is None:
            tiles.append(blank)
            continue
        thumb = pyvips.Image.thumbnail(path, cell, height=cell)
        if thumb.bands != 3:
            thumb = thumb.colourspace("srgb")[:3]
        tiles.append(thumb.gravity("centre", cell, cell, extend="background", background=bg))
    pyvips.Image.arrayjoin(tiles, across=len(thumbs)).write_to_file(str(out))
    return out


def _write_data(
    ws: Workspace,
    data_dir: Path,
    items: list[dict],
    columns: list[str],
    rows: int,
    cols: int,
    levels: int,
    settings: Settings,
) -> None:
    fields = [c for c in columns if c not in HIDDEN_COLUMNS]
    # Items are numbered in row-major cell order and the grid fills the first N cells, so
    # the item under cell (row, col) is simply row * cols + col: the viewer needs no
    # per-cell index (at 1M images that index alone would be a 7 MB download).
    cells = np.array([item["row"] * cols + item["col"] for item in items], dtype=np.int64)
    if not np.array_equal(cells, np.arange(len(items))):
        raise RuntimeError("grid cells are not the first N row-major cells; re-run `grid`")
    index_of = {item["id"]: index for index, item in enumerate(items)}
    similar = _similar_items(ws, index_of)
    details = []
    for item in items:
        details.append(
            {
                "id": item["id"],
                "title": item["title"],
                "file": _display_name(item),
                "image": f"images/{_image_name(item)}",
                "thumb": f"thumbs/{item['content_hash']}.jpg",
                "row": item["row"],
                "col": item["col"],
                "cluster": item["cluster"],
                "clusterName": item.get("cluster_name"),
                "similar": similar.get(item["id"], []),
                "meta": {f: item[f] for f in fields if item.get(f) not in (None, "")},
            }
        )
    for start in range(0, len(details), SHARD_SIZE):
        atomic_write_json(
            data_dir / "items" / f"{start // SHARD_SIZE:05d}.json",
            details[start : start + SHARD_SIZE],
        )
    atomic_write_json(data_dir / "search.json", [f"{d['title']}\t{d['file']}" for d in details])
    labels = np.array([item["cluster"] for item in items], dtype=np.int64)
    cluster_of_cell = np.full(rows * cols, -1, dtype=np.int64)
    cluster_of_cell[: len(items)] = labels  # item i sits in cell i (checked above)
    outlines = cluster_outlines(cluster_of_cell.reshape(rows, cols))
    members = {label: cells.tolist() for label, cells in cluster_members(labels)}
    clusters = []
    for rank, info in enumerate(load_clusters(ws)):
        label = info["id"]
        atomic_write_json(data_dir / "clusters" / f"{label}.json", members.get(label, []))
        clusters.append(
            {
                "id": label,
                "rank": rank + 1,
                "label": info["name"],
                "provenance": info["provenance"],
                "size": info["size"],
                "score": info["score"],
                "imagenet": info["imagenet"],
                "keywords": info["keywords"],
                "box": _ring_box(outlines.get(label)),
            }
        )
    atomic_write_json(data_dir / "outlines.json", {str(k): v for k, v in outlines.items()})
    side = settings.cell_size
    manifest = {
        "version": 1,
        "count": len(items),
        "rows": rows,
        "cols": cols,
        "cell": side,
        "width": cols * side,
        "height": rows * side,
        "tileSize": TILE_SIZE,
        "maxZoom": levels - 1,
        "shardSize": SHARD_SIZE,
        "background": settings.background,
        "fields": fields,
        "clusters": clusters,
    }
    atomic_write_json(data_dir / "manifest.json", manifest)


def _ring_box(rings: list | None) -> list[int] | None:
    """[row0, col0, row1, col1] corners around a cluster's rings (for "fit the view")."""
    if not rings:
        return None
    corners = np.array([p for ring in rings for p in ring])
    return [*corners.min(axis=0).tolist(), *corners.max(axis=0).tolist()]


def _similar_items(ws: Workspace, index_of: dict[str, int]) -> dict[str, list]:
    """Per image id: [[item index, cosine], ...] of its most similar images."""
    ids, _ = load_layout(ws)
    neighbours, scores = load_neighbours(ws)
    id_list = ids.tolist()
    out = {}
    for row, image_id in enumerate(id_list):
        out[image_id] = [
            [index_of[id_list[j]], round(float(sc), 3)]
            for j, sc in zip(neighbours[row], scores[row], strict=True)
            if j >= 0 and id_list[j] in index_of
        ]
    return out


def _link_thumbs(ws: Workspace, thumbs_dir: Path, items: list[dict]) -> None:
    """The gallery and "more like this" show the 256 px thumbnails (hard links)."""
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    for item in items:
        _link(ws.thumb_path(item["content_hash"]), thumbs_dir / f"{item['content_hash']}.jpg")


def _link(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _link_images(images_dir: Path, items: list[dict]) -> None:
    """Hard-link each original into the site (copy across file systems); never move it."""
    images_dir.mkdir(parents=True, exist_ok=True)
    for item in items:
        _link(Path(item["file"]), images_dir / _image_name(item))


def _display_name(item: dict) -> str:
    """The file name a user knows: the name in their folder, or the URL it came from."""
    if item["source"].startswith(("http://", "https://")):
        return item["source"]
    return Path(item["path"]).name


def _image_name(item: dict) -> str:
    return f"{item['id']}{Path(item['path']).suffix.lower()}"


def _copy_viewer(site: Path) -> None:
    viewer = resources.files("postermap") / "viewer"
    with resources.as_file(viewer) as source:
        shutil.copytree(
            source, site, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.py")
        )


def _swap_into_place(tmp: Path, site: Path) -> None:
    old = site.with_name(".old-site")
    if old.exists():
        shutil.rmtree(old)
    if site.exists():
        site.rename(old)
    tmp.rename(site)
    if old.exists():
        shutil.rmtree(old)


def _hex_to_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


STAGE = Stage(
    name="tiles",
    depends=("grid", "cluster", "neighbours"),
    version=4,
    params=("cell_size", "tile_quality", "background"),
    run=run,
)
