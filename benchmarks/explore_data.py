"""Workspaces and sites with poster metadata, for the viewer's explore benchmarks.

    python -m benchmarks.explore_data posters --n 169000     # generated posters + metadata.csv
    python -m benchmarks.explore_data site --n 1000000       # a viewer site, no pipeline

``posters`` makes a workspace like ``benchmarks.scale --features-only`` (2,000 generated
posters' thumbnails and ingest rows repeated under fresh ids, random clustered features)
with metadata columns (title, year, genre, country; year and genre follow the poster's
theme) and runs the stages from clean to neighbours into
``benchmarks/.cache/explore-N/ws``; ``postermap tiles WS --arrange year`` then builds the
site that ``python -m benchmarks.viewer WS --explore`` measures.

``site`` skips the pipeline: it writes the viewer's data for N synthetic images on a
gapless grid of 32x48 px cells (the same metadata, clusters of 60 neighbouring cells,
random picture classes, a wall by year) with :func:`postermap.site.write_site_data`, and
the top four zoom levels of the pyramid as one grey tile hard-linked everywhere (deeper
tiles are missing), so the page's data paths (facets, link state, selections, search by
picture) can be measured at sizes the full pipeline takes hours to reach here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE

GENRES = ["Drama", "Comedy", "Action", "Horror", "Romance", "Western", "Sci-Fi", "Documentary"]
COUNTRIES = ["US", "FR", "IT", "JP", "UK", "DE", "IN", "MX", "SE", "KR"]


def poster_metadata(i: int) -> dict[str, str]:
    """Deterministic metadata of generated poster ``i`` (theme = i % 97, as the images)."""
    theme = i % 97
    rng = np.random.default_rng(i)
    trng = np.random.default_rng(1000 + theme)
    year = int(np.clip(trng.integers(1925, 2020) + rng.normal(0, 4), 1920, 2024))
    genres = [GENRES[int(trng.integers(len(GENRES)))]]
    if rng.random() < 0.4:
        genres.append(GENRES[int(rng.integers(len(GENRES)))])
    return {
        "title": f"Poster {i} {'ABCDEFGHIJ'[i % 10]}",
        "year": str(year),
        "genre": "|".join(dict.fromkeys(genres)),
        "country": COUNTRIES[int(trng.integers(len(COUNTRIES)))],
    }


def posters(n: int) -> Path:
    """A workspace of ``n`` poster images with metadata, built up to the neighbours stage.

    Made like ``benchmarks.scale --features-only`` (2,000 generated posters' thumbnails and
    ingest rows repeated under fresh ids, random clustered features), plus the metadata
    columns of :func:`poster_metadata` in the ingest table, shown in the viewer.
    """
    import pyarrow as pa

    from benchmarks.scale import features_workspace
    from postermap.workspace import Workspace

    root = CACHE / f"explore-{n}"
    shutil.rmtree(root / "ws", ignore_errors=True)
    ws = Workspace(features_workspace(n, root))
    table = ws.read_table("ingest")
    shown = ws.shown_columns()
    rows = [poster_metadata(i) for i in range(n)]
    for column in ("year", "genre", "country"):
        table = table.append_column(column, pa.array([r[column] for r in rows], pa.string()))
    title = table.column_names.index("title")
    table = table.set_column(title, "title", pa.array([r["title"] for r in rows], pa.string()))
    ws.write_table("ingest", table, shown_columns=[*shown, "year", "genre", "country"])
    start = time.perf_counter()
    for stage in ("clean", "reduce", "grid", "cluster", "neighbours"):
        command = [sys.executable, "-m", "postermap", stage, str(ws.root)]
        if stage == "clean":
            command.append("--keep-near-duplicates")
        subprocess.run(command, check=True)
        print(f"posters: {stage} done at {time.perf_counter() - start:.0f} s", flush=True)
    return ws.root


def synthetic_site(n: int, out: Path, seed: int = 0) -> Path:
    """A viewer site of ``n`` synthetic images without the pipeline (see the docstring)."""
    from postermap import site as site_module
    from postermap.arrangements import arrange_items
    from postermap.mosaic import TILE_SIZE
    from postermap.workspace import Grid

    rng = np.random.default_rng(seed)
    cell = (32, 48)
    rows = max(1, int(round(np.sqrt(n / 1.6 * cell[0] / cell[1]))))
    cols = int(np.ceil(n / rows))
    rows = int(np.ceil(n / cols))
    grid = Grid(np.arange(n).astype(str), np.arange(n), rows, cols, cell)
    n_clusters = max(1, n // 60)
    labels = np.minimum(np.arange(n) * n_clusters // n, n_clusters - 1)
    items = []
    for i in range(n):
        meta = poster_metadata(i)
        items.append(
            {
                "id": f"{i:032x}",
                "content_hash": f"{i:032x}",
                "title": meta["title"],
                "path": f"synthetic/{i:07d}.jpg",
                "source": f"/synthetic/{i:07d}.jpg",
                "row": i // cols,
                "col": i % cols,
                "cluster": int(labels[i]),
                "cluster_name": f"cluster {labels[i]}",
                "width": 300,
                "height": 450,
                "x": float(i % cols),
                "y": float(i // cols),
                **meta,
            }
        )
    clusters = [
        {
            "id": k,
            "name": f"cluster {k}",
            "provenance": "title keywords",
            "size": int((labels == k).sum()),
            "score": float(n_clusters - k),
            "imagenet": [],
            "keywords": [],
        }
        for k in range(n_clusters)
    ]
    out.mkdir(parents=True, exist_ok=True)
    site_module.copy_viewer(out)
    # five neighbours for the first image, none for the rest
    neighbour_items = np.full((n, 5), -1, dtype=np.int32)
    neighbour_items[0] = rng.integers(0, n, 5)
    similar = site_module.Similar(neighbour_items, np.full((n, 5), 0.9, np.float32))
    classes = rng.integers(0, 1000, size=(n, 5)).astype(np.int16)
    probs = np.sort(rng.random((n, 5)).astype(np.float32), axis=1)[:, ::-1]
    width, height = cols * cell[0], rows * cell[1]
    levels = int(np.ceil(np.log2(max(width, height) / TILE_SIZE))) + 1
    xy = np.column_stack([np.arange(n) % cols, np.arange(n) // cols]).astype(np.float64)
    wall = arrange_items(items, "year", xy, cell, width / height)
    wall_levels = int(np.ceil(np.log2(max(wall.cols * cell[0], wall.rows * cell[1]) / 256))) + 1
    site_module.write_site_data(
        out / "data",
        items,
        ["year", "genre", "country"],
        grid,
        levels,
        clusters,
        similar,
        cell,
        "#202124",
        top_classes=(classes, probs),
        arrangements=[(wall, wall_levels)],
    )
    # one grey tile hard-linked at every position of the top level only; deeper levels
    # 404 (the benchmark measures data paths, not tiles)
    tile = out / "tiles" / "blank.jpg"
    tile.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (TILE_SIZE, TILE_SIZE), (80, 80, 80)).save(tile)
    for z in range(min(levels, 4)):
        scale = 2 ** (levels - 1 - z)
        for y in range(int(np.ceil(height / scale / TILE_SIZE))):
            for x in range(int(np.ceil(width / scale / TILE_SIZE))):
                target = out / "tiles" / str(z) / str(y) / f"{x}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.link(tile, target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["posters", "site"])
    parser.add_argument("--n", type=int, default=169_000)
    args = parser.parse_args()
    if args.what == "posters":
        print(posters(args.n))
    else:
        start = time.perf_counter()
        out = synthetic_site(args.n, CACHE / f"explore-site-{args.n}")
        print(f"site: {out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
