"""Neighbours: the ``k`` most similar images of every image on the map ("more like this").

Neighbours are searched in the CNN embedding space, not on the grid, so an image's look-
alikes are found even where the grid put them far apart. The L2-normalised features are
projected to ``SIMILAR_DIMS`` principal components (re-normalised) and indexed with
hnswlib (cosine); the projection and the index are kept in ``neighbours/`` so
``postermap similar`` can answer for an image that is not in the collection.
Outputs: ``neighbours/neighbours.npy`` (N x k row numbers into ``layout_ids.npy``, best
first), ``neighbours/scores.npy`` (cosine), ``neighbours/index.bin``, ``neighbours/projection.npz``.
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.config import Settings
from postermap.pipeline import Stage, StageOutcome
from postermap.stages.embed import embedding_rows
from postermap.stages.reduce import load_layout
from postermap.vectors import Projection
from postermap.workspace import Workspace, atomic_path, atomic_save_npy

log = logging.getLogger(__name__)

SIMILAR_DIMS = 128
NEIGHBOURS = 20


def build_index(vectors: np.ndarray, seed: int = 0):
    """An hnswlib cosine index over ``vectors`` (row i has label i)."""
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=200, M=24, random_seed=seed)
    index.set_num_threads(1)  # one thread: the same graph on every run
    index.add_items(vectors, np.arange(len(vectors)))
    index.set_ef(100)
    return index


def nearest(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, cosine similarities) of the k nearest, best first."""
    k = min(k, index.get_current_count())
    labels, distances = index.knn_query(queries, k=k)
    return labels.astype(np.int32), (1.0 - distances).astype(np.float32)


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids, _ = load_layout(ws)
    embeddings, rows = embedding_rows(ws, ids)
    projection = Projection.fit(embeddings, rows, SIMILAR_DIMS, settings.seed)
    vectors = projection.transform(embeddings, rows)
    index = build_index(vectors, settings.seed)
    k = min(NEIGHBOURS + 1, len(ids))
    labels, scores = nearest(index, vectors, k)
    # drop each image itself (normally first; exact copies may tie with it)
    neighbours = np.full((len(ids), k - 1), -1, dtype=np.int32)
    sims = np.zeros((len(ids), k - 1), dtype=np.float32)
    for i in range(len(ids)):
        keep = labels[i] != i
        row, sim = labels[i][keep][: k - 1], scores[i][keep][: k - 1]
        neighbours[i, : len(row)] = row
        sims[i, : len(sim)] = sim
    out = ws.root / "neighbours"
    out.mkdir(exist_ok=True)
    projection.save(out / "projection.npz")
    with atomic_path(out / "index.bin") as tmp:
        index.save_index(str(tmp))
    atomic_save_npy(out / "scores.npy", sims)
    atomic_save_npy(out / "neighbours.npy", neighbours)
    return StageOutcome(counts={"in": len(ids), "k": k - 1}, items=len(ids))


def load_neighbours(ws: Workspace) -> tuple[np.ndarray, np.ndarray]:
    return np.load(ws.root / "neighbours" / "neighbours.npy"), np.load(
        ws.root / "neighbours" / "scores.npy"
    )


def query(ws: Workspace, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest images on the map (row numbers into layout_ids) for raw feature vectors."""
    import hnswlib

    projection = Projection.load(ws.root / "neighbours" / "projection.npz")
    vectors = projection(features)
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.load_index(str(ws.root / "neighbours" / "index.bin"))
    index.set_ef(max(100, k))
    return nearest(index, vectors, k)


STAGE = Stage(name="neighbours", depends=("reduce",), params=("seed",), run=run, version=2)
