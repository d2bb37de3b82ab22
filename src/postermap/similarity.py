""" "More like this": the neighbour index over the CNN features, and queries against it.

Neighbours are searched in the CNN embedding space, not on the grid, so an image's look-
alikes are found even where the grid put them far apart. The L2-normalised features are
projected to ``SIMILAR_DIMS`` principal components (re-normalised) and indexed with
hnswlib (cosine). The neighbours stage stores every image's ``NEIGHBOURS`` nearest and
keeps the projection and the index, so :func:`similar_to_file` can answer for an image
that is not in the collection, embedded the way the pipeline embeds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from postermap.errors import NotOnMapError
from postermap.knn import SHARDS, ShardedIndex
from postermap.vectors import Projection
from postermap.workspace import Neighbours, Workspace

log = logging.getLogger(__name__)

SIMILAR_DIMS = 128
NEIGHBOURS = 20
#: the index's hnswlib settings: recall@21 0.9998 at 169k (``benchmarks/knn_shards.py``)
EF_CONSTRUCTION, LINKS, EF = 200, 24, 100

#: cosine nearest neighbours over the projected features (:class:`~postermap.knn.ShardedIndex`)
NeighbourIndex = ShardedIndex


def build_index(vectors: np.ndarray, seed: int = 0, shards: int = SHARDS) -> NeighbourIndex:
    """The neighbour index over ``vectors`` (row i has label i): ``shards`` graphs built at
    once (:mod:`postermap.knn`)."""
    return ShardedIndex.build(
        vectors, links=LINKS, ef_construction=EF_CONSTRUCTION, ef=EF, seed=seed, shards=shards
    )


def load_index(path: Path) -> NeighbourIndex:
    """The index :func:`save_index` kept at ``path``.

    Raises:
        StageOrderError: a graph is missing, unreadable or not the one ``path`` lists.
    """
    return ShardedIndex.load(path, f"run `postermap neighbours {path.parent.parent} --force`")


def nearest(index: NeighbourIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, cosine similarities) of the k nearest, best first."""
    return index.query(queries, k)


def all_neighbours(index: NeighbourIndex, vectors: np.ndarray, k: int) -> Neighbours:
    """Each row's ``k`` nearest other rows (-1 where fewer exist), itself left out
    (normally first; exact copies may tie with it)."""
    n = len(vectors)
    k_query = min(k + 1, n)
    labels, scores = nearest(index, vectors, k_query)
    others = labels != np.arange(n, dtype=labels.dtype)[:, None]
    # per row, the other rows first in their order (a stable sort of "is itself")
    order = np.argsort(~others, axis=1, kind="stable")[:, : k_query - 1]
    rows = np.take_along_axis(labels, order, axis=1)
    sims = np.take_along_axis(scores, order, axis=1)
    found = np.take_along_axis(others, order, axis=1)
    return Neighbours(np.where(found, rows, -1), np.where(found, sims, 0).astype(np.float32))


def save_index(ws: Workspace, index: NeighbourIndex, projection: Projection) -> None:
    """Keep the index and its projection for ``similar`` queries and ``add``."""
    projection.save(ws.projection_path)
    index.save(ws.neighbour_index_path)
    (ws.neighbours_dir / "index.bin").unlink(missing_ok=True)  # one graph, before version 3


def similar_to_id(ws: Workspace, image_id: str, k: int) -> list[tuple[str, float]]:
    """The k most similar images on the map to an image on the map."""
    id_list = ws.read_layout().ids.tolist()
    try:
        row = id_list.index(image_id)
    except ValueError:
        raise NotOnMapError(
            f"{image_id} is not the id of an image on the map (see catalog.parquet)"
        ) from None
    neighbours = ws.read_neighbours()
    return [
        (id_list[j], float(s))
        for j, s in zip(neighbours.rows[row][:k], neighbours.scores[row][:k], strict=True)
        if j >= 0
    ]


def similar_to_file(
    ws: Workspace, path: Path, model: str, thumb_size: int, k: int, features: str | None = None
) -> list[tuple[str, float]]:
    """The k most similar images on the map to any image file, embedded now the way the
    pipeline embeds (decoded as ingest decodes, through the same JPEG thumbnail), so a
    copy of an image on the map finds it with similarity ~1.

    Raises:
        ImageLoadError: the file cannot be decoded.
        FeaturesError: the map's vectors came from a ``--features`` file (``features``),
            which holds none for a new image.
    """
    if features:
        from postermap.errors import FeaturesError

        raise FeaturesError(
            f"this map's vectors come from --features {features}, so a new image file "
            f"cannot be embedded like them; ask by the id of an image on the map"
        )
    from postermap.embedders import get_embedder
    from postermap.images import decode_image, load_image, make_thumbnail

    embedder = get_embedder(model)
    image = load_image(make_thumbnail(decode_image(path, at_least=thumb_size)[0], thumb_size))
    features = embedder.embed(np.stack([embedder.preprocess(image)]))
    vectors = Projection.load(ws.projection_path)(features)
    labels, scores = load_index(ws.neighbour_index_path).query(vectors, k)
    id_list = ws.read_layout().ids.tolist()
    return [(id_list[j], float(s)) for j, s in zip(labels[0], scores[0], strict=True)]
