"""``precision = int8``: the int8 copy of the default model keeps the features (the
acceptance rule of benchmarks/quantise.py, on real images it was not calibrated on), both
the copy this CPU gets and the 7-bit one an x86 CPU without VNNI gets (on such a CPU the
two are the same file)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from postermap.embedders import get_embedder
from postermap.embedders.efficientnet_lite import CALIBRATION_IMAGES, EfficientNetLite0
from postermap.embedders.quantise import INT8_RECIPE, cpu_saturates_int8, int8_recipe
from postermap.errors import SettingsError
from postermap.images import load_image

pytestmark = pytest.mark.integration


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def neighbours(features: np.ndarray, k: int = 10) -> np.ndarray:
    sim = unit(features) @ unit(features).T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


@pytest.mark.parametrize("weights", ["this-cpu", "7-bit"])
def test_int8_features_close_to_fp32(emoji_images, weights):
    recipe = int8_recipe() if weights == "this-cpu" else replace(INT8_RECIPE, reduce_range=True)
    if weights == "7-bit" and cpu_saturates_int8():
        pytest.skip("this CPU saturates 8-bit weights: the this-cpu case is the 7-bit copy")
    paths = sorted(emoji_images.glob("*.png"))
    step = max(1, len(paths) // CALIBRATION_IMAGES)
    calibrated = set(paths[::step][:CALIBRATION_IMAGES])
    # images between the calibration ones: never seen by the calibration
    held = [p for p in paths[step // 2 :: step] if p not in calibrated][:300]
    assert len(held) == 300
    fp32 = EfficientNetLite0()
    chosen = None if weights == "this-cpu" else recipe
    int8 = EfficientNetLite0(precision="int8", int8_recipe=chosen)
    assert int8.int8_model().exists()
    assert int8.int8_model() == EfficientNetLite0(int8_recipe=recipe).int8_model()
    got, want = [], []
    for start in range(0, len(held), 50):
        batch = np.stack([fp32.preprocess(load_image(p)) for p in held[start : start + 50]])
        g, extras = int8.embed_with_extras(batch)
        assert set(extras) == {"rmac", "cells"}
        got.append(g)
        want.append(fp32.embed(batch))
    got, want = np.concatenate(got), np.concatenate(want)
    assert got.shape == want.shape == (300, 1280) and got.dtype == np.float32
    cosine = (unit(got) * unit(want)).sum(axis=1)
    assert cosine.mean() >= 0.98
    a, b = neighbours(got), neighbours(want)
    agreement = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert agreement >= 0.9
    # not the fp32 model under another name
    assert np.abs(got - want).max() > 1e-3


def test_int8_only_where_offered():
    with pytest.raises(SettingsError, match="precision"):
        get_embedder("inception-v3", precision="int8")
    with pytest.raises(SettingsError, match="precision"):
        EfficientNetLite0(precision="fp8")
