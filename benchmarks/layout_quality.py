"""How well a finished workspace's layout and grid keep its images' neighbourhoods.

    python -m benchmarks.layout_quality WS [WS ...] [--out NAME.json]

For each workspace, on the images of its layout (what the reduce stage placed):

* **trustworthiness** of the 2-D layout (:func:`postermap.layout.trustworthiness`, k = 10,
  a seeded sample of 5,000 images);
* **kNN kept** by the layout and by the grid: for 5,000 sampled images, the share of
  their 10 most similar images (exact cosine over the full features, among all images on
  the layout) that are among their 10 nearest on the layout, and among their 10 nearest
  cells on the grid (:func:`postermap.layout.knn_preservation` with ``sample``);
* the **grid cost** the grid stage recorded (squared distances from each normalised point
  to its cell's centre, :func:`postermap.grid.grid_cost`).

The same sample (seed 0) is used for every workspace, so two workspaces of the same
images (two commits' runs) compare directly. Writes ``benchmarks/results/NAME.json``
(default ``layout-quality.json``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from postermap.grid import cell_centres
from postermap.layout import knn_preservation, trustworthiness
from postermap.vectors import normalise
from postermap.workspace import Workspace

log = logging.getLogger(__name__)
SAMPLE = 5000
K = 10


def quality(root: Path) -> dict:
    """The figures above for one workspace."""
    ws = Workspace(root)
    layout = ws.read_layout()
    features, rows = ws.embedding_rows(layout.ids)
    unit = normalise(np.asarray(features[rows], dtype=np.float32))
    grid = ws.read_grid()
    position = {image_id: i for i, image_id in enumerate(grid.ids.tolist())}
    cells = grid.cells[[position[i] for i in layout.ids.tolist()]]
    # cell centres in cell units, so a step across a cell is as long as one down it
    centres = cell_centres(cells, grid.rows, grid.cols) * [grid.cols, grid.rows]
    marker = ws.read_marker("grid") or {}
    return {
        "workspace": str(root),
        "images": len(rows),
        "trustworthiness": trustworthiness(unit, layout.xy, k=K, sample=SAMPLE),
        "knn_kept_layout": knn_preservation(unit, layout.xy, K, sample=SAMPLE),
        "knn_kept_grid": knn_preservation(unit, centres, K, sample=SAMPLE),
        "grid": f"{grid.rows} x {grid.cols}",
        "grid_cost": marker.get("cost"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspaces", nargs="+", type=Path)
    parser.add_argument("--out", default="layout-quality.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = []
    for root in args.workspaces:
        results.append(quality(root))
        r = results[-1]
        log.info(
            "%s: %d images, trustworthiness %.4f, kNN kept layout %.4f grid %.4f, grid %s cost %s",
            root,
            r["images"],
            r["trustworthiness"],
            r["knn_kept_layout"],
            r["knn_kept_grid"],
            r["grid"],
            r["grid_cost"],
        )
    write_result(args.out, {"results": results})


if __name__ == "__main__":
    main()
