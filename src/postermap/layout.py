"""The 2-D layout: L2-normalised features -> PCA -> openTSNE (default) or UMAP, seeded.

Features are L2-normalised first, so Euclidean distance in PCA space ranks neighbours like
cosine similarity does in the full space. PCA is fitted on a 50k sample and applied chunk
by chunk (:mod:`postermap.vectors`), so the full features are never held. PCA to
``pca_dims`` removes noise and makes the neighbour search cheap. openTSNE's defaults (PCA
initialisation, FFT gradients for large N) keep global structure and scale to 169k points;
UMAP (umap-learn, ``postermap[umap]``) is the layout most peers offer, here seeded (which
makes it single-threaded: the same layout on every run).
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.errors import NothingToMapError, SettingsError
from postermap.vectors import Projection

log = logging.getLogger(__name__)

MIN_IMAGES = 5
REDUCERS = ("tsne", "umap")


def reduce_to_2d(
    features: np.ndarray,
    pca_dims: int,
    perplexity: float,
    seed: int,
    n_jobs: int = 1,
    rows: np.ndarray | None = None,
    *,
    method: str = "tsne",
    umap_neighbors: int = 15,
    umap_min_dist: float = 0.1,
) -> np.ndarray:
    """2-D layout of ``features[rows]`` (all rows if None; ``features`` may be a memmap:
    it is read in chunks) with ``method`` (``tsne`` or ``umap``). Small N gets a smaller
    perplexity / neighbour count."""
    if method not in REDUCERS:
        raise SettingsError(f"reducer must be one of {', '.join(REDUCERS)}, got {method!r}")
    n = len(features) if rows is None else len(rows)
    if n < MIN_IMAGES:
        raise NothingToMapError(
            f"a map needs at least {MIN_IMAGES} images, and only {n} are "
            f"left after cleaning (statuses and reasons in catalog.parquet; "
            f"overrides.toml can keep flagged ones)"
        )
    dims = min(pca_dims, n - 1, features.shape[1])
    projection = Projection.fit(features, rows, dims, seed, renormalise=False)
    reduced = projection.transform(features, rows)
    if method == "umap":
        return umap_layout(reduced, seed, umap_neighbors, umap_min_dist)
    return tsne_layout(reduced, perplexity, seed, n_jobs)


def tsne_layout(reduced: np.ndarray, perplexity: float, seed: int, n_jobs: int) -> np.ndarray:
    from openTSNE import TSNE

    # openTSNE requires 3 * perplexity < N; keep tiny test sets valid.
    perplexity = min(perplexity, (len(reduced) - 1) / 3.0)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs, verbose=False
    )
    return np.asarray(tsne.fit(reduced), dtype=np.float64)


def umap_layout(reduced: np.ndarray, seed: int, neighbors: int, min_dist: float) -> np.ndarray:
    try:
        import umap
    except ImportError as err:
        raise SettingsError(
            "--reducer umap needs umap-learn: pip install 'postermap[umap]'"
        ) from err
    neighbors = max(2, min(neighbors, len(reduced) - 1))
    model = umap.UMAP(
        n_components=2, n_neighbors=neighbors, min_dist=min_dist, random_state=seed, n_jobs=1
    )
    return np.asarray(model.fit_transform(reduced), dtype=np.float64)
