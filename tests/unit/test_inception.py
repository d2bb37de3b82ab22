"""InceptionV3 backend: torchvision's checkpoint layout, weight lookup, features.

The real ImageNet checkpoint cannot be fetched on this machine, so these tests use
randomly initialised weights saved in torchvision's layout; what they check is the
loading code, the architecture's shape and the pipeline wiring.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from postermap.config import Settings
from postermap.embedders import get_embedder
from postermap.embedders.inception_v3 import (
    CHECKPOINT,
    WeightsNotFoundError,
    build_network,
    find_weights,
)
from postermap.pipeline import run_pipeline
from postermap.workspace import Workspace
from tests.conftest import draw_image

#: torchvision's Inception3 has 27,161,264 parameters; its training-only AuxLogits head
#: (conv 768->128 1x1 + BN, conv 128->768 5x5 + BN, fc 768->1000) has 3,326,696.
TORCHVISION_PARAMS, AUX_PARAMS = 27_161_264, 3_326_696


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random weights in torchvision's layout, AuxLogits keys included."""
    torch.manual_seed(0)
    state = build_network().state_dict()
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    state["AuxLogits.fc.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("weights") / CHECKPOINT
    torch.save(state, path)
    return path


def test_architecture_has_torchvisions_parameter_count():
    network = build_network()
    assert sum(p.numel() for p in network.parameters()) == TORCHVISION_PARAMS - AUX_PARAMS


def test_weights_are_found_in_the_env_path_then_the_torch_hub_cache(
    tmp_path, monkeypatch, checkpoint
):
    monkeypatch.delenv("POSTERMAP_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotFoundError, match="POSTERMAP_INCEPTION_WEIGHTS"):
        find_weights()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / CHECKPOINT
    cached.parent.mkdir(parents=True)
    cached.write_bytes(checkpoint.read_bytes())
    assert find_weights() == cached
    monkeypatch.setenv("POSTERMAP_INCEPTION_WEIGHTS", str(checkpoint))
    assert find_weights() == checkpoint


def test_a_checkpoint_of_another_layout_is_refused(tmp_path, monkeypatch):
    state = build_network().state_dict()
    state.pop("Mixed_7c.branch_pool.conv.weight")
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    monkeypatch.setenv("POSTERMAP_INCEPTION_WEIGHTS", str(bad))
    with pytest.raises(ValueError, match="missing.*Mixed_7c.branch_pool"):
        get_embedder("inception-v3", threads=1)


def test_features_are_2048_d_and_deterministic(checkpoint, monkeypatch):
    monkeypatch.setenv("POSTERMAP_INCEPTION_WEIGHTS", str(checkpoint))
    model = get_embedder("inception-v3", threads=1)
    from PIL import Image

    images = [Image.new("RGB", (120, 180), colour) for colour in ("red", "navy")]
    batch = np.stack([model.preprocess(im) for im in images])
    assert batch.shape == (2, 299, 299, 3) and batch.dtype == np.uint8
    first, again = model.embed(batch), model.embed(batch)
    assert first.shape == (2, 2048) and np.array_equal(first, again)
    assert not np.allclose(first[0], first[1])
    probs = model.class_probabilities(first)
    assert probs.shape == (2, 1000) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_pipeline_embeds_with_inception(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setenv("POSTERMAP_INCEPTION_WEIGHTS", str(checkpoint))
    for i in range(5):
        draw_image(tmp_path / "images" / f"{i}.png", seed=i)
    ws = Workspace(tmp_path / "ws")
    run_pipeline(
        ws,
        Settings(source=str(tmp_path / "images"), model="inception-v3", workers=1),
        until="embed",
    )
    assert np.load(ws.embed_dir / "embeddings.npy").shape == (5, 2048)


def test_missing_weights_are_a_one_line_cli_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from postermap.cli import main

    monkeypatch.delenv("POSTERMAP_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    draw_image(tmp_path / "images" / "a.png", seed=1)
    result = CliRunner().invoke(
        main,
        ["run", str(tmp_path / "images"), "-o", str(tmp_path / "ws"), "--model", "inception-v3"],
    )
    assert result.exit_code == 1
    assert "InceptionV3 weights not found" in result.output
    assert "Traceback" not in result.output
