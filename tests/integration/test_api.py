"""The Python API, UMAP and the export, run on real images."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import postermap
from postermap.cli import main
from postermap.errors import NotOnMapError, StageOrderError
from tests.conftest import emoji_subset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(emoji_images: Path, tmp_path_factory) -> postermap.Map:
    base = tmp_path_factory.mktemp("api")
    source = emoji_subset(emoji_images, base / "images", per_category=5, seed=2)
    return postermap.build(source, base / "ws", cell_size=32, workers=1, min_cluster_size=4)


def test_build_returns_a_map_with_its_tables(built):
    catalog = built.catalog
    ok = [r for r in catalog.to_pylist() if r["status"] == "ok"]
    assert len(ok) >= 30 and {"x", "y", "row", "col", "cluster"} <= set(catalog.column_names)
    assert "category" in catalog.column_names  # metadata.csv was found and joined
    features = built.embeddings
    assert features.vectors.shape == (len(features.ids), 1280)
    assert isinstance(features.vectors, np.memmap)
    clusters = built.clusters
    assert clusters and {"id", "name", "size", "score", "members"} <= set(clusters[0])
    assert all(len(c["members"]) == c["size"] for c in clusters)
    assert len(built.to_pandas()) == catalog.num_rows


def test_similar_by_id_and_by_file(built):
    ok = [r for r in built.catalog.to_pylist() if r["status"] == "ok"]
    hits = built.similar(ok[0]["id"], k=5)
    assert len(hits) == 5 and ok[0]["id"] not in [h for h, _ in hits]
    assert all(-1.0 <= score <= 1.0 for _, score in hits)
    found, score = built.similar(ok[0]["file"], k=1)[0]
    assert found == ok[0]["id"] and score > 0.99
    with pytest.raises(NotOnMapError):
        built.similar("no-such-id")


def test_serve_and_the_inline_view(built):
    url = built.serve()
    try:
        with urllib.request.urlopen(url + "index.html", timeout=10) as response:
            assert b"postermap" in response.read()
        assert f'src="{url}"' in built._repr_html_()
    finally:
        built.stop()


def test_open_finds_the_same_map_and_refuses_an_empty_folder(built, tmp_path):
    again = postermap.open(built.workspace.root)
    assert again.catalog.num_rows == built.catalog.num_rows
    with pytest.raises(StageOrderError):
        postermap.open(tmp_path)


def test_umap_layout(built, emoji_images, tmp_path):
    source = Path(built.catalog.to_pylist()[0]["source"]).parent
    umap_map = postermap.build(
        source, tmp_path / "umap", cell_size=32, workers=1, reducer="umap", umap_neighbors=8
    )
    marker = umap_map.workspace.read_marker("reduce")
    assert marker["params"]["reducer"] == "umap" and marker["params"]["umap_neighbors"] == 8
    xy = umap_map.workspace.read_layout().xy
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    # a seeded UMAP gives the same layout twice
    again = postermap.build(
        source, tmp_path / "umap2", cell_size=32, workers=1, reducer="umap", umap_neighbors=8
    )
    assert np.allclose(again.workspace.read_layout().xy, xy)


def test_export_for_other_tools(built, tmp_path):
    ws = str(built.workspace.root)
    result = CliRunner().invoke(
        main, ["export", ws, "--embeddings", "-o", str(tmp_path / "map.parquet")]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "map.parquet")
    assert table.num_rows == built.catalog.num_rows
    assert {"id", "filepath", "title", "x", "y", "cluster", "category"} <= set(table.column_names)
    assert all(Path(p).is_file() for p in table["filepath"].to_pylist())
    vectors = table["embedding"]
    assert vectors.type.list_size == 1280 and vectors.null_count < table.num_rows
    csv = CliRunner().invoke(main, ["export", ws, "--to", "csv", "-o", str(tmp_path / "m.csv")])
    assert csv.exit_code == 0, csv.output
    assert pacsv.read_csv(tmp_path / "m.csv").num_rows == table.num_rows
    refused = CliRunner().invoke(main, ["export", ws, "--to", "csv", "--embeddings"])
    assert refused.exit_code == 1 and "parquet" in refused.output
