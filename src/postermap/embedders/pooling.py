"""Poolings of a CNN's last feature map beyond the global average.

The average pool (the embeddings every stage reads) describes the whole picture: on a
poster the background, the palette and the title weigh as much as the motif. Clustering
looks for *tropes*, the same motif on posters that differ in everything else, so it reads
a pooling that keeps the strongest local evidence of each channel instead:

* :func:`rmac` — regional maximum activations (Tolias et al., "Particular object retrieval
  with integral max-pooling of CNN activations", 2016): the maximum of every channel over
  square regions at three scales (the whole map, 2x2 and 3x3 overlapping windows), each
  region's vector scaled to unit length, summed. A motif that fills one region counts
  as much as the background that fills another, wherever it sits.
* :func:`salient_cells` — the few cells of a mid-level map (14 x 14, 16 px cells) with
  the strongest activation, kept as they are. A small motif (an eyeball a tenth of the
  poster wide) fills one or two such cells and is among the strongest; pooled with the
  rest of the picture it is lost. The cluster stage matches images by their best pair of
  salient cells.
* :func:`gem` and :func:`max_pool` — generalised-mean and maximum pooling of the whole map,
  measured against R-MAC in ``benchmarks/clusters.py``.

All take the map as (N, C, H, W) float32 and return (N, C) float32 (``salient_cells``:
(N, m, C)). They are computed
from the same forward pass as the average pool (the model exports both outputs).
"""

from __future__ import annotations

import math

import numpy as np

#: region grid scales of :func:`rmac`: 1 = the whole map, 2 = 2x2 windows, 3 = 3x3 windows
RMAC_LEVELS = (1, 2, 3)


def region_boxes(side: int, levels: tuple[int, ...] = RMAC_LEVELS) -> list[tuple[int, int, int]]:
    """(top, left, width) of the square R-MAC regions of a ``side`` x ``side`` map: at level
    ``l``, ``l`` x ``l`` windows of width ``ceil(2 * side / (l + 1))`` spread evenly (so
    neighbouring windows overlap by about half)."""
    boxes = []
    for level in levels:
        width = side if level == 1 else min(side, math.ceil(2 * side / (level + 1)))
        starts = np.linspace(0, side - width, level).round().astype(int).tolist()
        boxes += [(top, left, width) for top in starts for left in starts]
    return boxes


def rmac(maps: np.ndarray) -> np.ndarray:
    """R-MAC vectors (N, C) of feature maps (N, C, H, W) (square maps; see module doc)."""
    maps = np.asarray(maps, dtype=np.float32)
    # channels last: each window's maximum is then a reduction over whole rows of
    # channels, 15x faster than over the two small trailing axes (it runs per batch)
    cells = np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
    out = np.zeros(maps.shape[:2], dtype=np.float32)
    for top, left, width in region_boxes(min(maps.shape[2:])):
        region = cells[:, top : top + width, left : left + width].max(axis=(1, 2))
        out += region / np.maximum(np.linalg.norm(region, axis=1, keepdims=True), 1e-12)
    return out


def gem(maps: np.ndarray, p: float = 3.0) -> np.ndarray:
    """Generalised-mean pooling: ``mean(x ** p) ** (1 / p)`` per channel (p=1: average,
    p -> infinity: maximum)."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 1e-6)
    return np.power(np.power(maps, p).mean(axis=(2, 3)), 1.0 / p)


def max_pool(maps: np.ndarray) -> np.ndarray:
    """Maximum of every channel over the whole map."""
    return np.asarray(maps, dtype=np.float32).max(axis=(2, 3))


def salient_cells(maps: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` cells of each map with the largest L2 norm over channels, strongest first:
    (N, C, H, W) -> (N, m, C) float32."""
    maps = np.asarray(maps, dtype=np.float32)
    n, c = maps.shape[:2]
    cells = maps.reshape(n, c, -1).transpose(0, 2, 1)  # N, cells, C
    m = min(m, cells.shape[1])
    norms = np.linalg.norm(cells, axis=2)
    top = np.argsort(-norms, axis=1, kind="stable")[:, :m]
    return np.take_along_axis(cells, top[:, :, None], axis=1)
