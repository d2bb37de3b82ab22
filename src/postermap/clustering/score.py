"""Scoring clusters: per cluster size, CNN cohesion, colour cohesion, interestingness.

For each cluster, cohesion is the mean cosine similarity of members to their centroid, for
CNN features and for hue/saturation histograms, each rescaled so 0 is what a random set of
images of the collection scores and 1 is identical members. A group held together by
colour scores high on both; a semantic trope (the same motif in many palettes) scores high
on CNN cohesion only. ``score = (cnn - colour) * log(1 + size)``, so a big semantic trope
ranks first and a colour-only group last.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from postermap.vectors import group_sums, normalise

log = logging.getLogger(__name__)


@dataclass
class ClusterInfo:
    """What the viewer, the CLI table and clusters.csv show about one cluster."""

    id: int
    size: int
    cnn_cohesion: float
    colour_cohesion: float
    score: float
    name: str = ""
    provenance: str = ""
    imagenet: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


def describe_clusters(
    labels: np.ndarray,
    features: np.ndarray,
    colour: np.ndarray,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> list[ClusterInfo]:
    """Size, cohesions and interestingness of every cluster, ranked best first.

    ``features[rows]`` (all rows if None) are the members' CNN features; ``features`` may
    be a memmap. The mean cosine of members to their normalised centroid equals
    ``|sum of unit vectors| / n``, so cohesions come from per-cluster sums read chunk by
    chunk rather than from the features in memory.
    """
    labels = np.asarray(labels)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels[labels >= 0], minlength=n_groups)
    cnn_sum = group_sums(features, rows, labels, n_groups)
    c = normalise(np.sqrt(np.maximum(colour, 0)))  # Hellinger: cosine of sqrt histograms
    colour_sum = group_sums(c, None, labels, n_groups)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(labels), min(len(labels), 1000), replace=False))
    base_f = _random_cohesion(
        normalise(features[picked if rows is None else np.asarray(rows)[picked]]), seed
    )
    base_c = _random_cohesion(c, seed)
    out = []
    for label in np.nonzero(sizes)[0].tolist():
        size = int(sizes[label])
        cnn = _rescale(float(np.linalg.norm(cnn_sum[label])) / size, base_f)
        col = _rescale(float(np.linalg.norm(colour_sum[label])) / size, base_c)
        score = (cnn - col) * math.log1p(size)
        out.append(ClusterInfo(label, size, round(cnn, 4), round(col, 4), round(score, 4)))
    return sorted(out, key=lambda info: (-info.score, info.id))


def _cohesion(unit_rows: np.ndarray) -> float:
    """Mean cosine similarity of rows to their (normalised) centroid: |sum| / n."""
    return float(np.linalg.norm(unit_rows.sum(axis=0))) / max(len(unit_rows), 1)


def _random_cohesion(unit_rows: np.ndarray, seed: int, size: int = 50, draws: int = 20) -> float:
    rng = np.random.default_rng(seed)
    size = min(size, len(unit_rows))
    return float(
        np.mean(
            [
                _cohesion(unit_rows[rng.choice(len(unit_rows), size, replace=False)])
                for _ in range(draws)
            ]
        )
    )


def _rescale(value: float, baseline: float) -> float:
    return (value - baseline) / max(1.0 - baseline, 1e-6)
