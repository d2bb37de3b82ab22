"""Layout quality measures: trustworthiness and kNN preservation, against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from postermap.layout import knn_preservation, trustworthiness


def _circle(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_the_identity_layout_keeps_everything():
    # unit vectors: their cosine neighbours are their 2-D neighbours
    points = _circle(np.random.default_rng(0).uniform(0, 2 * np.pi, 300))
    assert knn_preservation(points, points, k=10) == 1.0
    assert trustworthiness(points, points, k=10) == pytest.approx(1.0)


def test_knn_preservation_counts_shared_neighbours():
    features = _circle(np.array([0.0, 0.1, 0.3, 0.7]))  # nearest: 1, 0, 1, 2
    layout = np.array([[0.0, 0], [1, 0], [10, 0], [3, 0]])  # nearest: 1, 0, 3, 1
    assert knn_preservation(features, layout, k=1) == 0.5


def test_a_shuffled_layout_keeps_about_k_over_n():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(8, 30)) * 5
    features = centres[rng.integers(0, 8, 800)] + rng.normal(size=(800, 30))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    good = PCA(2, random_state=0).fit_transform(unit)  # a projection keeps the clusters
    shuffled = good[rng.permutation(800)]
    assert knn_preservation(features, shuffled, k=10) < 0.05
    assert knn_preservation(features, good, k=10) > 5 * knn_preservation(features, shuffled)
    assert trustworthiness(features, shuffled, k=10) < 0.6 < trustworthiness(features, good)


def test_trustworthiness_on_a_seeded_sample():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 5))
    layout = features[:, :2]
    first = trustworthiness(features, layout, k=10, sample=100, seed=3)
    assert first == trustworthiness(features, layout, k=10, sample=100, seed=3)
    assert 0.0 <= first <= 1.0


def test_a_sampled_knn_preservation_scores_the_sampled_rows_against_all():
    # the sampled measure (exact search for the sampled rows only, for a million points)
    # is the mean of the full measure's per-row shares over the rows it samples
    from sklearn.neighbors import NearestNeighbors

    from postermap.layout import _sample

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(10, 20)) * 4
    features = centres[rng.integers(0, 10, 1200)] + rng.normal(size=(1200, 20))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    layout = PCA(2, random_state=0).fit_transform(unit)
    high = NearestNeighbors(n_neighbors=10).fit(unit).kneighbors(return_distance=False)
    low = NearestNeighbors(n_neighbors=10).fit(layout).kneighbors(return_distance=False)
    per_row = np.array([len(set(a) & set(b)) / 10 for a, b in zip(high, low, strict=True)])
    picked = _sample(1200, 300, 5)
    assert knn_preservation(features, layout, k=10, sample=300, seed=5) == pytest.approx(
        per_row[picked].mean()
    )
    assert knn_preservation(features, layout, k=10) == pytest.approx(per_row.mean())
    assert knn_preservation(unit, unit, k=10, sample=200) == 1.0  # the features themselves


def test_sampled_lines_counts_each_function_once_per_sample(tmp_path):
    from benchmarks.scale import sampled_lines

    raw = tmp_path / "samples.txt"
    raw.write_text(
        'process 1:"python -m postermap tiles";thread 0x1;run (postermap/stages/tiles.py:9);'
        "draw (postermap/mosaic.py:3);draw (postermap/mosaic.py:5) 3\n"
        'process 1:"python -m postermap tiles";thread 0x1;run (postermap/stages/tiles.py:9) 1\n'
    )
    lines = sampled_lines(raw)
    assert lines[0].split() == ["100.0%", "25.0%", "run", "(postermap/stages/tiles.py)"]
    # on the stack in 3 of 4 samples (twice in one stack, counted once), on top in all 3
    assert lines[1].split() == ["75.0%", "75.0%", "draw", "(postermap/mosaic.py)"]
