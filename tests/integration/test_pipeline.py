"""The whole pipeline on real images: statuses, grid, similarity, tiles, re-runs."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from postermap.catalog import STATUSES
from postermap.cli import main
from postermap.workspace import Workspace
from tests.conftest import grid_neighbour_agreement

pytestmark = pytest.mark.integration


def _catalog(run) -> list[dict]:
    return pq.read_table(Workspace(run["workspace"]).catalog_path).to_pylist()


def test_catalog_contract(emoji_run):
    rows = _catalog(emoji_run)
    for column in (
        "id",
        "source",
        "status",
        "reason",
        "duplicate_of",
        "title",
        "x",
        "y",
        "row",
        "col",
        "cluster",
        "category",
    ):
        assert column in rows[0], column
    assert {r["status"] for r in rows} <= set(STATUSES)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["x"] is not None and r["row"] is not None for r in ok)
    assert all(r["row"] is None for r in rows if r["status"] != "ok")


def test_planted_duplicates_are_flagged(emoji_run):
    by_path = {r["path"]: r for r in _catalog(emoji_run)}
    for copy, original in emoji_run["planted"].items():
        assert by_path[copy]["status"] == "duplicate", copy
        assert by_path[copy]["duplicate_of"] == by_path[original]["id"]
    assert by_path["zz-same-pixels.webp"]["reason"] == "same_pixels"
    assert by_path["zz-copy-of-first.png"]["reason"] == "same_bytes"


def test_grid_gives_every_image_its_own_cell_of_a_screen_shaped_map(emoji_run):
    ws = Workspace(emoji_run["workspace"])
    grid = ws.read_grid()
    ok = [r for r in _catalog(emoji_run) if r["status"] == "ok"]
    cells = sorted(r["row"] * grid.cols + r["col"] for r in ok)
    assert len(set(cells)) == len(ok) and cells[-1] < grid.rows * grid.cols
    assert grid.rows * grid.cols - len(ok) < grid.cols  # at most a row's worth of holes
    assert sorted(grid.cells.tolist()) == cells and set(grid.ids.tolist()) == {r["id"] for r in ok}
    assert grid.cell == (1, 1)  # emoji are square
    assert 1.3 < grid.cols / grid.rows < 2.0  # about 16:10


def test_grid_neighbours_share_categories_far_more_than_random(emoji_run):
    ok = [r for r in _catalog(emoji_run) if r["status"] == "ok"]
    rows = np.array([r["row"] for r in ok])
    cols = np.array([r["col"] for r in ok])
    labels = [r["category"] for r in ok]
    observed = grid_neighbour_agreement(rows, cols, labels)
    shuffled = labels[:]
    random.Random(0).shuffle(shuffled)
    chance = grid_neighbour_agreement(rows, cols, shuffled)
    # Measured on this sample: ~0.45 vs ~0.12 by chance.
    assert observed > chance + 0.15, (observed, chance)


def test_tiles_decode_and_cover_the_mosaic(emoji_run):
    site = Workspace(emoji_run["workspace"]).site_dir
    manifest = json.loads((site / "data" / "manifest.json").read_text())
    top = site / "tiles" / str(manifest["maxZoom"])
    tiles = sorted(top.glob("*/*.jpg"))
    assert len(tiles) >= (manifest["width"] // 256) * (manifest["height"] // 256)
    for tile in tiles[:5] + [site / "tiles" / "0" / "0" / "0.jpg"]:
        with Image.open(tile) as image:
            image.load()
            assert image.size == (256, 256)
    # items are in row-major cell order; the occupancy bits say which cells hold one
    items = json.loads((site / "data" / "items" / "00000.json").read_text())
    cells = [it["row"] * manifest["cols"] + it["col"] for it in items]
    assert cells == sorted(set(cells)) and len(items) == manifest["count"]
    total = manifest["rows"] * manifest["cols"]
    assert manifest["holes"] == total - manifest["count"]
    if manifest["holes"]:
        bits = np.unpackbits(
            np.frombuffer((site / "data" / "cells.bin").read_bytes(), np.uint8), bitorder="little"
        )[:total]
        assert np.nonzero(bits)[0].tolist() == cells
    assert manifest["width"] == manifest["cols"] * manifest["cellWidth"]
    outlines = json.loads((site / "data" / "outlines.json").read_text())
    for cluster in manifest["clusters"]:
        r0, c0, r1, c1 = cluster["box"]
        corners = [p for ring in outlines[str(cluster["id"])] for p in ring]
        assert all(r0 <= r <= r1 and c0 <= c <= c1 for r, c in corners)


def test_rerun_does_no_work(emoji_run):
    result = CliRunner().invoke(main, emoji_run["args"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "stages run: none (all up to date)" in result.output


def test_changed_parameter_reruns_only_dependents(emoji_run, tmp_path):
    ws = Workspace(emoji_run["workspace"])
    before = {s: ws.read_marker(s)["fingerprint"] for s in ("embed", "grid", "cluster")}
    args = emoji_run["args"] + ["--dbscan-eps", "1.5"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert "stages run: cluster, tiles" in result.output
    assert ws.read_marker("embed")["fingerprint"] == before["embed"]
    assert ws.read_marker("cluster")["fingerprint"] != before["cluster"]
    # put it back so other tests see the original run
    CliRunner().invoke(main, emoji_run["args"], catch_exceptions=False)


def test_changed_thumbnail_size_rewrites_the_thumbnails(emoji_images, tmp_path):
    """Thumbnails are stored once per content hash; when what they are made of changes
    (here thumb_size; a new THUMB_VERSION works the same way), ingest rewrites them and
    embed does not reuse the shards of the old ones."""
    from tests.conftest import emoji_subset

    source = emoji_subset(emoji_images, tmp_path / "images", per_category=2)
    ws = Workspace(tmp_path / "ws")
    args = ["run", str(source), "-o", str(ws.root), "--until", "embed", "--workers", "1"]
    for size in (64, 40):
        result = CliRunner().invoke(main, [*args, "--thumb-size", str(size)])
        assert result.exit_code == 0, result.output
        thumbs = list(ws.thumbs_dir.rglob("*.jpg"))
        assert thumbs
        assert all(max(Image.open(p).size) <= size for p in thumbs), size
        assert max(max(Image.open(p).size) for p in thumbs) == size
    assert ws.read_marker("embed")["counts"]["reused_from_shards"] == 0
