"""Registry of image embedders: name -> class with ``dim``, ``preprocess`` and ``embed``.

The embed stage only knows the protocol (:class:`~postermap.embedders.base.Embedder`).
Importing this package does not import torch, nor does the default model; InceptionV3
and the PyTorch backend do, on first use (the ``torch`` extra).
"""

from __future__ import annotations

from collections.abc import Callable

from postermap.embedders.base import Embedder
from postermap.errors import SettingsError

__all__ = ["Embedder", "available", "extras_of", "get_embedder"]


def available() -> list[str]:
    return sorted(_factories())


def extras_of(name: str) -> dict[str, tuple[int, ...]]:
    """The extra poolings (name -> shape per image) model ``name`` stores beside its
    features, without loading it."""
    factories = _factories()
    if name not in factories:
        raise SettingsError(f"unknown model {name!r}; available: {', '.join(sorted(factories))}")
    return dict(getattr(factories[name], "extras", {}))


def get_embedder(name: str, threads: int | None = None, precision: str = "fp32") -> Embedder:
    """A ready model; ``threads`` caps its intra-op threads (default: all cores);
    ``precision`` other than ``fp32`` only for the models that offer it."""
    factories = _factories()
    if name not in factories:
        raise SettingsError(f"unknown model {name!r}; available: {', '.join(sorted(factories))}")
    if precision == "fp32":
        return factories[name](threads=threads)
    if precision not in getattr(factories[name], "precisions", ("fp32",)):
        raise SettingsError(f"--precision {precision} is not available for model {name!r}")
    return factories[name](threads=threads, precision=precision)


def _factories() -> dict[str, Callable[..., Embedder]]:
    # the backends import torch only when a model is built
    from postermap.embedders.efficientnet_lite import EfficientNetLite0
    from postermap.embedders.inception_v3 import InceptionV3

    return {EfficientNetLite0.name: EfficientNetLite0, InceptionV3.name: InceptionV3}
