"""Registry of image embedders: name -> class with ``dim``, ``preprocess`` and ``embed``.

A backend registers itself with :func:`register`; the embed stage only knows the protocol.
Importing this package does not import torch; :func:`get_embedder` does, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PIL import Image


class Embedder(Protocol):
    """What the embed stage needs from a model."""

    name: str
    dim: int

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> float32 CHW array at the model's input size (runs in workers)."""

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW batch -> float32 (N, dim) penultimate-layer features."""


_FACTORIES: dict[str, Callable[..., Embedder]] = {}


def register(name: str, factory: Callable[..., Embedder]) -> None:
    _FACTORIES[name] = factory


def available() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def get_embedder(name: str, threads: int | None = None) -> Embedder:
    """A ready model; ``threads`` caps its intra-op threads (default: all cores)."""
    _load_builtin()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}")
    return _FACTORIES[name](threads=threads)


def softmax_classifier(features: np.ndarray, weight: np.ndarray, bias: np.ndarray
                       ) -> np.ndarray:
    """Class probabilities of a linear classifier head applied to stored features."""
    logits = np.asarray(features, dtype=np.float32) @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _load_builtin() -> None:
    # each registers itself; torch is imported only when a model is built
    from postermap.embedders import efficientnet_lite, inception_v3  # noqa: F401
