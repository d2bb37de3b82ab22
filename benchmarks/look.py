"""How the map looks: cell shape, map shape, background inside cells, first-view fill.

    python -m benchmarks.look            # default set, two poster sets, a mixed-aspect set
    python -m benchmarks.look --sets emoji

For each set, ``postermap run SET -o WS --cell-size 64`` (cached under benchmarks/.cache/
look/), then:

* the cell shape and the grid (rows x cols) the grid stage chose, and the mosaic's pixel
  aspect (width / height);
* the background share inside occupied cells, measured on the full-resolution tiles (a
  pixel within 8 levels of the background colour in every channel counts; dark image
  content that close to it counts too, so this is an upper bound), and the same share
  the previous design (square cells, every image fitted inside) would have had,
  computed from the images' shapes;
* the first-view viewport fill: the share of a 1600x1000 Chromium viewport the mosaic
  covers when the page opens, measured in the page; the previous design's (square
  cells, a grid shaped like the layout's bounding box, the view fitted beside a 330 px
  toolbar) computed for the same viewport;
* the grid cost (squared distances, min-max normalised layout, as everywhere) of this
  grid and of the previous design's grid on the same layout, and the mean distance in
  cells an image moved from its layout position, for both;
* a screenshot of the first view, written to docs/look-<set>.jpg.

Sets: ``emoji`` (the default set, square), ``clipart-posters`` and ``icon-posters``
(tests/heldout: 2:3 and 27:40 posters), ``mixed`` (OpenMoji's square emoji and the 2:3
clip-art posters together). Writes benchmarks/results/look.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import CACHE, write_result
from postermap.grid import (
    assign_to_grid,
    grid_cost,
    grid_shape,
    layout_aspect,
    normalise_points,
    rotate,
    rows_down,
)
from postermap.mosaic import content_share, hex_to_rgb
from postermap.serve import make_server
from postermap.workspace import Workspace
from tests.chromium import launch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
VIEWPORT = {"width": 1600, "height": 1000}


def source_for(name: str, seed: int = 0) -> Path:
    """The image folder of a set (built by tests.heldout where needed)."""
    from postermap.datasets import fetch_emoji
    from tests.heldout import SETS

    if name == "emoji":
        return fetch_emoji(REPO / "data" / "emoji")
    if name == "mixed":
        out = CACHE / "look" / "mixed-src"
        if not out.exists():
            parts = {
                "openmoji": source_for("openmoji", seed),
                "clipart-posters": source_for("clipart-posters", seed),
            }
            for prefix, folder in parts.items():
                for path in folder.iterdir():
                    if path.suffix.lower() in (".png", ".jpg", ".webp", ".bmp"):
                        target = out / f"{prefix}-{path.name}"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(path, target)
        return out
    out = CACHE / "heldout" / f"{name}-{seed}"
    if not (out / "labels.csv").exists():
        shutil.rmtree(out, ignore_errors=True)
        SETS[name](out, seed)
    return out


def run_map(name: str, source: Path) -> Workspace:
    ws = CACHE / "look" / f"{name}-ws"
    done = subprocess.run(
        [sys.executable, "-m", "postermap", "run", str(source), "-o", str(ws), "--cell-size", "64"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"postermap run {source} failed:\n{done.stderr[-3000:]}")
    return Workspace(ws)


def mosaic_pixels(ws: Workspace) -> np.ndarray:
    """The full-resolution mosaic reassembled from the top zoom level's tiles."""
    manifest = json.loads((ws.site_dir / "data" / "manifest.json").read_text())
    top = ws.site_dir / "tiles" / str(manifest["maxZoom"])
    size = manifest["tileSize"]
    canvas = np.zeros((manifest["height"], manifest["width"], 3), np.uint8)
    for tile in top.glob("*/*.jpg"):
        y, x = int(tile.parent.name), int(tile.stem)
        with Image.open(tile) as image:
            pixels = np.asarray(image.convert("RGB"))
        y0, x0 = y * size, x * size
        h = min(size, canvas.shape[0] - y0)
        w = min(size, canvas.shape[1] - x0)
        if h > 0 and w > 0:
            canvas[y0 : y0 + h, x0 : x0 + w] = pixels[:h, :w]
    return canvas


def background_share(ws: Workspace) -> float:
    manifest = json.loads((ws.site_dir / "data" / "manifest.json").read_text())
    canvas = mosaic_pixels(ws)
    bg = np.array(hex_to_rgb(manifest["background"]), np.int16)
    near = (np.abs(canvas.astype(np.int16) - bg) <= 8).all(axis=2)
    grid = ws.read_grid()
    w, h = manifest["cellWidth"], manifest["cellHeight"]
    counts = []
    for cell in grid.cells.tolist():
        r, c = divmod(cell, grid.cols)
        counts.append(near[r * h : (r + 1) * h, c * w : (c + 1) * w].mean())
    return float(np.mean(counts))


def viewport_fill(ws: Workspace, shot: Path) -> float:
    """Share of the viewport the mosaic covers at the first view, measured in Chromium."""
    from playwright.sync_api import sync_playwright

    server = make_server(ws.site_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_timeout(1500)
            fill = page.evaluate("""(() => { const m = postermap.state.manifest;
                const map = postermap.map, z = m.maxZoom;
                const a = map.latLngToContainerPoint(map.unproject([0, 0], z));
                const b = map.latLngToContainerPoint(map.unproject([m.width, m.height], z));
                const W = window.innerWidth, H = window.innerHeight;
                const w = Math.max(0, Math.min(b.x, W) - Math.max(a.x, 0));
                const h = Math.max(0, Math.min(b.y, H) - Math.max(a.y, 0));
                return w * h / (W * H); })()""")
            DOCS.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), type="jpeg", quality=82)
            browser.close()
    finally:
        server.shutdown()
    return float(fill)


def previous_fill(aspect: float) -> float:
    """The previous viewer fitted the map into the viewport minus a 330 px toolbar and
    20 px margins; the share of the viewport such a map covers."""
    width, height = VIEWPORT["width"] - 350, VIEWPORT["height"] - 40
    scale = min(width / aspect, height)
    return scale * aspect * scale / (VIEWPORT["width"] * VIEWPORT["height"])


def mean_move(xy: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> float:
    """Mean distance, in cells, between each point's layout position (scaled onto the
    grid) and its cell."""
    points = normalise_points(xy) * [cols, rows]
    centres = np.stack([cells % cols + 0.5, cells // cols + 0.5], axis=1)
    return float(np.linalg.norm(points - centres, axis=1).mean())


def measure(name: str, source: Path) -> dict:
    ws = run_map(name, source)
    grid, layout = ws.read_grid(), ws.read_layout()
    manifest = json.loads((ws.site_dir / "data" / "manifest.json").read_text())
    sizes = ws.read_table("ingest", ["id", "width", "height"]).to_pydict()
    at = {i: k for k, i in enumerate(sizes["id"])}
    dims = [(sizes["width"][at[i]], sizes["height"][at[i]]) for i in layout.ids.tolist()]
    # the previous design: square cells, grid like the layout's box, holes at the end
    xy_old = rows_down(layout.xy)
    old_rows, old_cols = grid_shape(len(xy_old), layout_aspect(xy_old))
    old = assign_to_grid(xy_old, old_rows, old_cols, workers=2, holes_anywhere=False)
    xy_new = rotate(rows_down(layout.xy), grid.angle)
    order = {i: k for k, i in enumerate(grid.ids.tolist())}
    new_cells = grid.cells[[order[i] for i in layout.ids.tolist()]]
    row = {
        "set": name,
        "images": len(layout.ids),
        "cell": f"{grid.cell[0]}:{grid.cell[1]}",
        "grid": f"{grid.rows}x{grid.cols}",
        "holes": grid.rows * grid.cols - len(layout.ids),
        "map_aspect": manifest["width"] / manifest["height"],
        "previous_map_aspect": old_cols / old_rows,
        "background_share": background_share(ws),
        "previous_background_share": float(
            np.mean([1 - content_share(w, h, 1, 1) for w, h in dims])
        ),
        "viewport_fill": viewport_fill(ws, DOCS / f"look-{name}.jpg"),
        "previous_viewport_fill": previous_fill(old_cols / old_rows),
        "grid_cost": grid_cost(xy_new, new_cells, grid.rows, grid.cols),
        "previous_grid_cost": grid_cost(xy_old, old, old_rows, old_cols),
        "mean_move_cells": mean_move(xy_new, new_cells, grid.rows, grid.cols),
        "previous_mean_move_cells": mean_move(xy_old, old, old_rows, old_cols),
    }
    print(
        " ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()),
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", nargs="*", default=["emoji", "clipart-posters", "icon-posters", "mixed"]
    )
    args = parser.parse_args()
    rows = [measure(name, source_for(name)) for name in args.sets]
    write_result("look.json", {"viewport": VIEWPORT, "sets": rows})


if __name__ == "__main__":
    main()
