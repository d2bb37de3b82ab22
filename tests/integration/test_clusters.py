"""Clusters and "more like this" on the real run: CLI table, gallery, similar, curation."""

from __future__ import annotations

import csv
import json
import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.workspace import Workspace

pytestmark = pytest.mark.integration


def test_clusters_table_gallery_and_export(emoji_run):
    ws = Workspace(emoji_run["workspace"])
    # wide enough that the table does not wrap a three-class name
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["clusters", str(ws.root), "--gallery"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    clusters = json.loads((ws.root / "clusters.json").read_text())
    assert clusters, "no clusters found"
    assert [c["score"] for c in clusters] == sorted((c["score"] for c in clusters), reverse=True)
    assert clusters[0]["name"] in result.output
    assert all(c["provenance"] for c in clusters)
    # names say what sets a cluster apart: no class is in most clusters' names
    from collections import Counter

    named = Counter(w for c in clusters for w in c["imagenet"])
    assert not named or named.most_common(1)[0][1] <= max(2, len(clusters) // 3), named
    assert (ws.root / "report" / "clusters" / "index.html").exists()
    assert (ws.root / "report" / "clusters" / "001.png").stat().st_size > 0
    with open(ws.root / "clusters.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"id", "cluster", "name", "score"}
    on_map = [r for r in pq.read_table(ws.catalog_path).to_pylist() if r["status"] == "ok"]
    assert len(rows) == len(on_map)
    assert (ws.root / "clusters.toml").read_text().startswith("# postermap cluster curation")


def test_similar_by_id_and_by_file(emoji_run):
    ws = Workspace(emoji_run["workspace"])
    rows = [r for r in pq.read_table(ws.catalog_path).to_pylist() if r["status"] == "ok"]
    target = rows[0]
    by_id = CliRunner().invoke(
        main, ["similar", target["id"], str(ws.root), "-k", "5"], catch_exceptions=False
    )
    assert by_id.exit_code == 0, by_id.output
    lines = by_id.output.strip().splitlines()
    assert len(lines) == 5 and target["id"] not in by_id.output
    # an image file outside the collection: the same picture must find itself first
    by_file = CliRunner().invoke(
        main, ["similar", target["file"], str(ws.root), "-k", "3"], catch_exceptions=False
    )
    assert by_file.exit_code == 0, by_file.output
    first = by_file.output.splitlines()[0].split("\t")
    assert first[1] == target["id"] and float(first[0]) > 0.99
    bad = CliRunner().invoke(main, ["similar", "no-such-id", str(ws.root)])
    assert bad.exit_code == 1 and "neither an image file nor the id" in bad.output


def test_similar_neighbours_share_categories(emoji_run):
    """ "More like this" must beat chance: neighbours share the emoji category."""
    ws = Workspace(emoji_run["workspace"])
    import numpy as np

    ids = np.load(ws.root / "layout_ids.npy").tolist()
    neighbours = np.load(ws.root / "neighbours" / "neighbours.npy")
    category = {r["id"]: r["category"] for r in pq.read_table(ws.catalog_path).to_pylist()}
    same = np.mean(
        [category[ids[i]] == category[ids[j]] for i in range(len(ids)) for j in neighbours[i][:5]]
    )
    assert same > 0.4, same  # chance is ~0.13 with 9 categories


def test_curation_renames_and_drops(emoji_run, tmp_path):
    ws_path = tmp_path / "ws"
    shutil.copytree(emoji_run["workspace"], ws_path)
    ws = Workspace(ws_path)
    clusters = json.loads((ws_path / "clusters.json").read_text())
    if len(clusters) < 2:
        pytest.fail(f"need two clusters to curate, found {len(clusters)}")
    keep, gone = clusters[0]["id"], clusters[1]["id"]
    (ws_path / "clusters.toml").write_text(
        f'[clusters.{keep}]\nname = "My trope"\n[clusters.{gone}]\ndrop = true\n'
    )
    result = CliRunner().invoke(
        main, ["run", str(emoji_run["source"]), "-o", str(ws_path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "stages run: cluster, tiles" in result.output
    after = json.loads((ws_path / "clusters.json").read_text())
    names = {c["id"]: c["name"] for c in after}
    assert names[keep] == "My trope" and gone not in names
    manifest = json.loads((ws.site_dir / "data" / "manifest.json").read_text())
    assert "My trope" in [c["label"] for c in manifest["clusters"]]
