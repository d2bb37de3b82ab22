"""`postermap add` on real images: a built map grows, its images keep their places, the
new ones are cleaned against the whole collection exactly as a full run cleans them."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

import postermap
from postermap.cli import main
from postermap.workspace import Workspace
from tests.conftest import DATA

pytestmark = pytest.mark.integration

ARGS = ["--cell-size", "32", "--seed", "3"]


def _write_set(emoji_images: Path, dest: Path, chosen: list[dict], fields: list[str]) -> Path:
    dest.mkdir(parents=True)
    for row in chosen:
        shutil.copy(emoji_images / row["filename"], dest / row["filename"])
    with open(dest / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return dest


def _by_file(ws: Path) -> dict[str, dict]:
    rows = pq.read_table(Workspace(ws).catalog_path).to_pylist()
    return {Path(r["path"]).name: r for r in rows}


def _cells(ws: Path) -> dict[str, tuple[int, int]]:
    grid = pq.read_table(Workspace(ws).table_path("grid")).to_pylist()
    return {r["id"]: (r["row"], r["col"]) for r in grid}


def _labels(ws: Path) -> dict[str, int]:
    table = pq.read_table(Workspace(ws).table_path("cluster")).to_pylist()
    return {r["id"]: r["cluster"] for r in table}


@pytest.fixture(scope="module")
def grown(emoji_images, tmp_path_factory) -> dict:
    """A map of 90 emoji, the same map after `add` of 18 others plus planted copies of
    two of its images and a broken file, and a full run on all the files for reference."""
    base = tmp_path_factory.mktemp("add")
    with open(emoji_images / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if "skin tone" not in r["title"]]
    fields = list(rows[0])
    random.Random(7).shuffle(rows)
    old = _write_set(emoji_images, base / "old", rows[:90], fields)
    new = _write_set(emoji_images, base / "new", rows[90:108], fields)
    originals = [old / rows[0]["filename"], old / rows[1]["filename"]]
    shutil.copy(originals[0], new / "zz-copy.png")
    picture = Image.open(originals[1]).convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture)
    flat.convert("RGB").save(new / "zz-near.jpg", quality=95)
    shutil.copy(DATA / "truncated.jpg", new / "truncated.jpg")
    ws = base / "ws"
    result = CliRunner().invoke(main, ["run", str(old), "-o", str(ws), *ARGS])
    assert result.exit_code == 0, result.output
    before = {"cells": _cells(ws), "labels": _labels(ws), "rows": _by_file(ws)}
    pristine = base / "pristine"
    shutil.copytree(ws, pristine, symlinks=True)
    result = CliRunner().invoke(main, ["add", str(new), "-o", str(ws)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    both = base / "both"
    shutil.copytree(old, both)
    for path in new.iterdir():
        if path.name != "metadata.csv":
            shutil.copy(path, both / path.name)
    with open(both / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[:108])
    full = base / "full"
    done = CliRunner().invoke(main, ["run", str(both), "-o", str(full), *ARGS, "--until", "clean"])
    assert done.exit_code == 0, done.output
    return {
        "ws": ws,
        "pristine": pristine,
        "old": old,
        "new": new,
        "full": full,
        "before": before,
        "output": result.output,
        "originals": originals,
        "base": base,
    }


def test_statuses_equal_a_full_run_on_the_same_files(grown):
    added, full = _by_file(grown["ws"]), _by_file(grown["full"])
    assert set(added) == set(full)
    for name, row in full.items():
        assert added[name]["status"] == row["status"], (name, added[name]["reason"], row)
    assert added["truncated.jpg"]["status"] == "corrupt"


def test_planted_copies_are_flagged_and_the_old_image_kept(grown):
    rows = _by_file(grown["ws"])
    exact, near = rows["zz-copy.png"], rows["zz-near.jpg"]
    first, second = (rows[p.name] for p in grown["originals"])
    assert (exact["status"], exact["reason"]) == ("duplicate", "same_bytes")
    assert exact["duplicate_of"] == first["id"]
    assert near["status"] == "near_duplicate" and near["duplicate_of"] == second["id"]
    assert first["status"] == second["status"] == "ok"


def test_a_large_growth_suggests_a_rebuild(grown):
    # 21 new files on a map of 90: above the 10% at which a rebuild fits better
    assert "the map grew by 2" in grown["output"] and "full rebuild" in grown["output"]


def test_old_images_keep_their_cells_and_the_share_moved_is_reported(grown):
    before, after = grown["before"]["cells"], _cells(grown["ws"])
    moved = sum(after[i] != cell for i, cell in before.items())
    history = Workspace(grown["ws"]).read_added_sources()
    assert history[-1]["adds"][-1]["moved"] == moved
    assert f"{moved:,} image(s) already on it changed cell" in grown["output"]
    assert moved <= 0.05 * len(before)  # the default penalty keeps the map in place
    new_cells = [cell for i, cell in after.items() if i not in before]
    assert len(new_cells) == 18 and len(set(after.values())) == len(after)
    shape = json.loads((grown["ws"] / "grid.json").read_text())
    assert all(0 <= r < shape["rows"] and 0 <= c < shape["cols"] for r, c in after.values())


def test_old_cluster_ids_are_unchanged_and_sizes_follow(grown):
    before, after = grown["before"]["labels"], _labels(grown["ws"])
    assert {i: after[i] for i in before} == before
    assert len(after) == len(before) + 18
    sizes = {c["id"]: c["size"] for c in Workspace(grown["ws"]).read_clusters()}
    for k, size in sizes.items():
        assert size == sum(1 for label in after.values() if label == k)


def test_clusters_that_gained_images_are_scored_and_named_again(grown):
    from postermap.clustering import describe_clusters

    before = {c["id"]: c for c in Workspace(grown["pristine"]).read_clusters()}
    after = {c["id"]: c for c in Workspace(grown["ws"]).read_clusters()}
    grew = [k for k in after if k in before and after[k]["size"] > before[k]["size"]]
    assert grew, "no cluster took a new image: the fixture no longer tests this"
    ws = Workspace(grown["ws"])
    layout = ws.read_layout()
    labels = _labels(grown["ws"])
    embeddings, rows = ws.embedding_rows(layout.ids)
    colour = np.ones((len(layout.ids), 48), np.float32)  # only the CNN cohesion is compared
    fresh = {
        c.id: c
        for c in describe_clusters(
            np.array([labels[i] for i in layout.ids.tolist()]),
            embeddings,
            colour,
            seed=3,
            rows=rows,
        )
    }
    for k in grew:
        assert after[k]["cnn_cohesion"] == pytest.approx(fresh[k].cnn_cohesion, abs=1e-4)
        assert after[k]["cnn_cohesion"] != before[k]["cnn_cohesion"]
        assert after[k]["name"]


def test_new_images_have_their_neighbours(grown):
    ws = Workspace(grown["ws"])
    ids = ws.read_layout().ids.tolist()
    neighbours = ws.read_neighbours()
    assert len(neighbours.rows) == len(ids)
    old = set(grown["before"]["cells"])
    new_rows = [i for i, image_id in enumerate(ids) if image_id not in old]
    assert new_rows == list(range(len(old), len(ids)))  # old rows keep their numbers
    for i in new_rows:
        assert (neighbours.rows[i] >= 0).all() and i not in neighbours.rows[i]
        assert (np.diff(neighbours.scores[i]) <= 1e-6).all()
    # some old image now counts a new one among its most similar
    assert (neighbours.rows[: len(old)] >= len(old)).any()


def test_the_site_shows_the_new_images(grown):
    ws = Workspace(grown["ws"])
    data = ws.site_dir / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    shape = json.loads((grown["ws"] / "grid.json").read_text())
    assert (manifest["rows"], manifest["cols"]) == (shape["rows"], shape["cols"])
    items = [
        item
        for path in sorted((data / "items").glob("*.json"))
        for item in json.loads(path.read_text())
    ]
    assert manifest["count"] == len(items) == len(_cells(grown["ws"]))
    shown = {item["id"] for item in items}
    added = {r["id"] for r in _by_file(grown["ws"]).values() if r["path"].startswith("~add")}
    on_map = {i for i in added if i in _cells(grown["ws"])}
    assert len(on_map) == 18 and on_map <= shown
    assert not (ws.root / ".tmp-site").exists() and not ws.pending_add_dir.exists()
    # the tiles that show a changed cell (and their parents) were drawn again, the rest
    # reused (on a map this small the grown row and column touch every tile; see
    # test_growing for a partial update)
    counts = ws.read_marker("tiles")["counts"]
    tiles = len(list((ws.site_dir / "tiles").rglob("*.jpg")))
    assert counts["tiles_drawn"] + counts["tiles_reused"] == tiles and counts["tiles_drawn"] > 0


def test_a_later_run_keeps_the_grown_map(grown):
    result = CliRunner().invoke(
        main, ["run", str(grown["old"]), "-o", str(grown["ws"]), *ARGS], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "stages run: none" in result.output


def test_killed_add_resumes_and_ends_as_an_uninterrupted_add(grown):
    reference = grown["base"] / "api"
    shutil.copytree(grown["pristine"], reference, symlinks=True)
    report = postermap.open(reference).add(grown["new"])  # Map.add
    assert report["placed"] == 18 and report["new_rows"] == 21
    assert _cells(reference) == _cells(grown["ws"])
    killed = grown["base"] / "killed"
    shutil.copytree(grown["pristine"], killed, symlinks=True)
    args = ["-m", "postermap", "add", str(grown["new"]), "-o", str(killed)]
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
    marker = killed / "add" / "clean.done.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not marker.exists():
            assert proc.poll() is None, "the add finished before it could be killed"
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert marker.exists() or (killed / "add").exists()  # killed mid-way, not at the end
    result = CliRunner().invoke(main, ["add", str(grown["new"]), "-o", str(killed)])
    assert result.exit_code == 0, result.output
    assert _cells(killed) == _cells(reference)
    assert _labels(killed) == _labels(reference)
    statuses = {k: r["status"] for k, r in _by_file(killed).items()}
    assert statuses == {k: r["status"] for k, r in _by_file(reference).items()}
    assert len(Workspace(killed).read_embeddings().ids) == len(
        Workspace(reference).read_embeddings().ids
    )
    assert not list(killed.rglob(".tmp-*")) and not (killed / "add").exists()


def test_new_images_on_a_umap_map_go_where_its_fitted_reducer_puts_them(grown, tmp_path):
    """A UMAP map keeps its fitted reducer; `add` places the new images with it (its
    ``transform``) and the map's own points stay where they were."""
    pytest.importorskip("umap")
    ws = tmp_path / "umap"
    args = [*ARGS, "--reducer", "umap", "--umap-neighbors", "8"]
    built = CliRunner().invoke(main, ["run", str(grown["old"]), "-o", str(ws), *args])
    assert built.exit_code == 0, built.output
    workspace = Workspace(ws)
    before = workspace.read_layout()
    assert workspace.umap_model_path.exists()
    added = CliRunner().invoke(main, ["add", str(grown["new"]), "-o", str(ws)])
    assert added.exit_code == 0, added.output
    after = workspace.read_layout()
    n = len(before.ids)
    assert after.ids[:n].tolist() == before.ids.tolist() and len(after.ids) > n
    np.testing.assert_array_equal(after.xy[:n], before.xy)
    embeddings, rows = workspace.embedding_rows(after.ids[n:])
    expected = workspace.read_umap_model().place(embeddings, rows)
    np.testing.assert_allclose(after.xy[n:], expected, atol=1e-3)
    # the new points are not merely stacked on one spot: they spread like the map's
    assert np.ptp(after.xy[n:], axis=0).min() > 0.1 * np.ptp(before.xy, axis=0).min()
