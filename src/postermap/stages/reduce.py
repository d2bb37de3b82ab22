"""Reduce: embeddings -> 2-D layout with PCA then openTSNE, seeded.

Features are L2-normalised first, so Euclidean distance in PCA space ranks neighbours like
cosine similarity does in the full space. PCA is fitted on a 50k sample and applied chunk
by chunk (:mod:`postermap.vectors`), so the stage never holds the full features. PCA to
``pca_dims`` removes noise and makes the t-SNE affinity search cheap; openTSNE's defaults
(PCA initialisation, FFT gradients for large N) keep global structure and scale to 169k
points.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from postermap.catalog import ok_ids
from postermap.config import Settings
from postermap.pipeline import NothingToMapError, Stage, StageOutcome
from postermap.stages.embed import embedding_rows
from postermap.vectors import Projection
from postermap.workspace import Workspace, atomic_save_npy, atomic_write_table

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


def normalise_layout(xy: np.ndarray) -> np.ndarray:
    """Scale to the unit square keeping the aspect ratio (the longer axis spans 0..1)."""
    lo = xy.min(axis=0)
    span = float((xy.max(axis=0) - lo).max()) or 1.0
    return (xy - lo) / span


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids = np.array(ok_ids(ws))
    embeddings, rows = embedding_rows(ws, ids)
    xy = reduce_to_2d(
        embeddings,
        settings.pca_dims,
        settings.perplexity,
        settings.seed,
        n_jobs=settings.workers,
        rows=rows,
    )
    atomic_save_npy(ws.root / "layout_ids.npy", ids)
    atomic_save_npy(ws.root / "layout.npy", xy)
    table = pa.table(
        {
            "id": pa.array(ids.tolist(), pa.string()),
            "x": pa.array(xy[:, 0]),
            "y": pa.array(xy[:, 1]),
        }
    )
    atomic_write_table(ws.table_path("reduce"), table)
    return StageOutcome(counts={"in": len(ids), "out": len(ids)}, items=len(ids))


def features_for(ws: Workspace, ids: np.ndarray) -> np.ndarray:
    """Embedding rows of the given image ids, copied into memory (for small sets; the
    stages read them through :func:`postermap.stages.embed.embedding_rows`)."""
    embeddings, rows = embedding_rows(ws, ids)
    return np.asarray(embeddings[rows])


def load_layout(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, N x 2 layout) of the images on the map."""
    return np.load(ws.root / "layout_ids.npy"), np.load(ws.root / "layout.npy")


STAGE = Stage(
    name="reduce",
    depends=("embed", "clean"),
    params=("pca_dims", "perplexity", "seed"),
    run=run,
    version=2,
)
