"""--features: your own vectors instead of the model's, on real images of the default set.

The vectors here are colour histograms (48 numbers per image) computed by the test, so
the model must never be loaded: ``get_embedder`` is made to fail for the whole run.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

import postermap
import postermap.embedders
import postermap.stages.embed
from postermap.cli import main
from postermap.errors import FeaturesError
from postermap.pipeline import fingerprint, load_settings, stage_by_name
from postermap.workspace import Workspace
from tests.conftest import emoji_subset

pytestmark = pytest.mark.integration

BINS = 16
#: images the vectors file leaves out (their rows must say so)
LEFT_OUT = 2


def colour_histogram(path: Path) -> np.ndarray:
    """48 numbers: a 16-bin histogram of each RGB channel of the visible pixels."""
    with Image.open(path) as image:
        rgba = np.asarray(image.convert("RGBA").resize((64, 64)), dtype=np.float32)
    seen = rgba[..., 3] > 0
    pixels = rgba[..., :3][seen] if seen.any() else rgba[..., :3].reshape(-1, 3)
    parts = [np.histogram(pixels[:, c], BINS, (0, 256))[0] for c in range(3)]
    return np.concatenate(parts).astype(np.float32) / max(len(pixels), 1)


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded although --features was given")


@pytest.fixture(scope="module")
def own_vectors(emoji_images: Path, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("features")
    source = emoji_subset(emoji_images, base / "images", per_category=5, seed=4)
    files = sorted(p.name for p in source.glob("*.png"))
    shutil.copy(source / files[0], source / "zz-byte-copy.png")
    Image.new("RGB", (160, 160), (200, 30, 30)).save(source / "zz-solid.png")
    left_out = files[-LEFT_OUT:]
    given = [*files[:-LEFT_OUT], "zz-solid.png"]
    vectors = np.stack([colour_histogram(source / name) for name in given])
    parquet = base / "vectors.parquet"
    pq.write_table(
        pa.table(
            {
                "filename": [*given, "not-in-the-folder.png"],
                "embedding": pa.array(
                    [*vectors.tolist(), [0.0] * vectors.shape[1]], pa.list_(pa.float32())
                ),
            }
        ),
        parquet,
    )
    npy = base / "vectors.npy"
    np.save(npy, vectors)
    (base / "vectors.ids.txt").write_text("\n".join(given) + "\n")
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("postermap")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postermap.embedders, "get_embedder", _no_model)
        patch.setattr(postermap.embedding, "get_embedder", _no_model)
        try:
            built = postermap.build(
                source, base / "ws", features=parquet, cell_size=32, workers=1, min_cluster_size=4
            )
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        result = CliRunner().invoke(
            main,
            ["run", str(source), "-o", str(base / "ws-npy"), "--features", str(npy)]
            + ["--cell-size", "32", "--workers", "1", "--min-cluster-size", "4"],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    return {
        "log": messages,
        "base": base,
        "source": source,
        "map": built,
        "npy_ws": Workspace(base / "ws-npy"),
        "parquet": parquet,
        "left_out": left_out,
        "given": given,
        "dim": vectors.shape[1],
    }


def test_the_map_is_built_from_the_file(own_vectors):
    built = own_vectors["map"]
    catalog = {r["path"]: r for r in built.catalog.to_pylist()}
    on_map = [r for r in catalog.values() if r["status"] == "ok"]
    assert len(on_map) == len(own_vectors["given"]) - 1  # all but the solid one
    assert all(r["row"] is not None and r["cluster"] is not None for r in on_map)
    assert built.embeddings.vectors.shape[1] == own_vectors["dim"]
    assert (built.workspace.site_dir / "index.html").exists()
    assert built.workspace.read_extra_features("rmac") is None
    marker = built.workspace.read_marker("embed")
    assert marker["counts"]["from_features_file"] == len(own_vectors["given"])
    assert marker["counts"]["unknown_vectors"] == 1
    assert marker["features"]["file"] == str(own_vectors["parquet"])
    # byte copies and boring images are still found without the model
    assert catalog["zz-byte-copy.png"]["status"] == "duplicate"
    assert catalog["zz-solid.png"]["status"] == "boring"
    assert catalog["zz-solid.png"]["reason"].startswith("solid")
    hits = built.similar(on_map[0]["id"], k=3)
    assert len(hits) == 3 and on_map[0]["id"] not in dict(hits)


def test_images_without_a_vector_keep_a_row_with_the_reason(own_vectors):
    catalog = {r["path"]: r for r in own_vectors["map"].catalog.to_pylist()}
    for name in own_vectors["left_out"]:
        assert catalog[name]["status"] == "error"
        assert catalog[name]["reason"] == "no vector for this image in vectors.parquet"
        assert catalog[name]["row"] is None


def test_clusters_are_named_without_imagenet(own_vectors):
    clusters = own_vectors["map"].clusters
    assert clusters
    assert all(c["imagenet"] == [] for c in clusters)
    assert {c["provenance"] for c in clusters} <= {"titles", "number"}
    manifest = json.loads(
        (own_vectors["map"].workspace.site_dir / "data/manifest.json").read_text()
    )
    assert manifest["concepts"] is None
    assert manifest["vectors"] == "features file vectors.parquet"


def test_what_needs_the_model_says_so_once(own_vectors):
    log = own_vectors["log"]

    def count(text: str) -> int:
        return sum(text in line for line in log)

    assert count("not the model: no ImageNet classes") == 1  # embed, the summary
    assert count("stores no rmac pooling; clustering its features") == 1
    assert count("stores no salient cells") == 1
    assert count("clusters are named from title keywords") == 1
    assert count("no search by what is pictured") == 2  # embed's summary and tiles
    assert count("1 vectors in") == 1 and count("2 of") == 1


def test_npy_with_ids_gives_the_same_map(own_vectors):
    ws, npy_ws = own_vectors["map"].workspace, own_vectors["npy_ws"]
    np.testing.assert_array_equal(ws.read_layout().ids, npy_ws.read_layout().ids)
    np.testing.assert_allclose(ws.read_layout().xy, npy_ws.read_layout().xy)
    assert npy_ws.read_marker("embed")["counts"]["unknown_vectors"] == 0


def test_an_unchanged_file_re_runs_nothing_and_a_changed_one_embed(own_vectors, tmp_path):
    built = own_vectors["map"]
    ws = built.workspace
    before = ws.read_marker("embed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postermap.embedders, "get_embedder", _no_model)
        postermap.build(own_vectors["source"], ws.root)  # the workspace keeps --features
    assert ws.read_marker("embed") == before
    settings = load_settings(ws)
    assert settings.features == str(own_vectors["parquet"])
    embed = stage_by_name("embed")
    assert fingerprint(ws, settings, embed) == before["fingerprint"]
    original = own_vectors["parquet"].read_bytes()
    try:
        table = pq.read_table(own_vectors["parquet"])
        pq.write_table(table.slice(1), own_vectors["parquet"])  # same path, new content
        assert fingerprint(ws, settings, embed) != before["fingerprint"]
    finally:
        own_vectors["parquet"].write_bytes(original)
    assert fingerprint(ws, settings, embed) == before["fingerprint"]


def test_a_bad_file_stops_the_run_with_one_clear_message(own_vectors, tmp_path):
    bad = tmp_path / "bad.parquet"
    rows = [[0.1] * 8 for _ in own_vectors["given"]]
    rows[3][5] = float("nan")
    pq.write_table(pa.table({"filename": own_vectors["given"], "vector": rows}), bad)
    with pytest.raises(FeaturesError, match="row 3"):
        postermap.build(own_vectors["source"], tmp_path / "ws", features=bad, workers=1)
    result = CliRunner().invoke(
        main,
        ["run", str(own_vectors["source"]), "-o", str(tmp_path / "ws2"), "--features", str(bad)],
    )
    assert result.exit_code == 1
    assert "bad.parquet: row 3 holds a value that is not a finite number" in result.output


def test_an_export_with_embeddings_is_a_features_file(own_vectors, tmp_path):
    from postermap.export import export_table, write_export

    ws = own_vectors["map"].workspace
    exported = write_export(export_table(ws, embeddings=True), tmp_path / "map.parquet", "parquet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postermap.embedders, "get_embedder", _no_model)
        again = postermap.build(
            own_vectors["source"],
            tmp_path / "ws",
            features=exported,
            cell_size=32,
            workers=1,
            min_cluster_size=4,
        )
    np.testing.assert_array_equal(again.workspace.read_layout().ids, ws.read_layout().ids)
    np.testing.assert_allclose(again.workspace.read_layout().xy, ws.read_layout().xy, atol=1e-6)
