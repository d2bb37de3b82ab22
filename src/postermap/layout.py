"""The 2-D layout: L2-normalised features -> PCA -> openTSNE, seeded.

Features are L2-normalised first, so Euclidean distance in PCA space ranks neighbours like
cosine similarity does in the full space. PCA is fitted on a 50k sample and applied chunk
by chunk (:mod:`postermap.vectors`), so the full features are never held. PCA to
``pca_dims`` removes noise and makes the t-SNE affinity search cheap; openTSNE's defaults
(PCA initialisation, FFT gradients for large N) keep global structure and scale to 169k
points.
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.errors import NothingToMapError
from postermap.vectors import Projection

log = logging.getLogger(__name__)

MIN_IMAGES = 5


def reduce_to_2d(
    features: np.ndarray,
    pca_dims: int,
    perplexity: float,
    seed: int,
    n_jobs: int = 1,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """2-D t-SNE layout of ``features[rows]`` (all rows if None; ``features`` may be a
    memmap: it is read in chunks). Small N gets a smaller perplexity."""
    from openTSNE import TSNE

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
    # openTSNE requires 3 * perplexity < N; keep tiny test sets valid.
    perplexity = min(perplexity, (n - 1) / 3.0)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs, verbose=False
    )
    return np.asarray(tsne.fit(reduced), dtype=np.float64)
