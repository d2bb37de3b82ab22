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


def _load_builtin() -> None:
    from postermap.embedders import efficientnet_lite  # noqa: F401  (registers itself)
