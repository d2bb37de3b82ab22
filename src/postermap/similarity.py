""" "More like this": the neighbour index over the CNN features, and queries against it.

Neighbours are searched in the CNN embedding space, not on the grid, so an image's look-
alikes are found even where the grid put them far apart. The L2-normalised features are
projected to ``SIMILAR_DIMS`` principal components (re-normalised) and indexed with
hnswlib (cosine). The neighbours stage stores every image's ``NEIGHBOURS`` nearest and
keeps the projection and the index, so :func:`similar_to_file` can answer for an image
that is not in the collection, embedded the way the pipeline embeds.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from postermap.errors import NotOnMapError
from postermap.vectors import Projection
from postermap.workspace import Neighbours, Workspace, atomic_path

log = logging.getLogger(__name__)

SIMILAR_DIMS = 128
NEIGHBOURS = 20


def build_index(vectors: np.ndarray, seed: int = 0) -> Any:
    """An hnswlib cosine index over ``vectors`` (row i has label i)."""
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=200, M=24, random_seed=seed)
    index.set_num_threads(1)  # one thread: the same graph on every run
    index.add_items(vectors, np.arange(len(vectors)))
    index.set_ef(100)
    return index


def nearest(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, cosine similarities) of the k nearest, best first. The queries run on
    every core: each one only reads the graph, so the answers are the same as on one
    (the build stays on one thread, which is what makes the graph the same each run)."""
    k = min(k, index.get_current_count())
    labels, distances = index.knn_query(queries, k=k, num_threads=os.cpu_count() or 1)
    return labels.astype(np.int32), (1.0 - distances).astype(np.float32)


def all_neighbours(index: Any, vectors: np.ndarray, k: int) -> Neighbours:
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


def save_index(ws: Workspace, index: Any, projection: Projection) -> None:
    """Keep the index and its projection for ``similar`` queries. hnswlib does not report
    a failed write (a full disk leaves a short file), so the saved index is read back
    before it replaces the old one."""
    import hnswlib

    projection.save(ws.projection_path)
    with atomic_path(ws.neighbour_index_path) as tmp:
        index.save_index(str(tmp))
        check = hnswlib.Index(space="cosine", dim=index.dim)
        try:
            check.load_index(str(tmp))
        except RuntimeError as err:
            raise OSError(errno.ENOSPC, f"the saved index does not load back ({err})") from err
        if check.get_current_count() != index.get_current_count():
            raise OSError(errno.ENOSPC, "the saved index is incomplete")


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
    import hnswlib

    from postermap.embedders import get_embedder
    from postermap.images import decode_image, load_image, make_thumbnail

    embedder = get_embedder(model)
    image = load_image(make_thumbnail(decode_image(path, at_least=thumb_size)[0], thumb_size))
    features = embedder.embed(np.stack([embedder.preprocess(image)]))
    vectors = Projection.load(ws.projection_path)(features)
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.load_index(str(ws.neighbour_index_path))
    index.set_ef(max(100, k))
    labels, scores = nearest(index, vectors, k)
    id_list = ws.read_layout().ids.tolist()
    return [(id_list[j], float(s)) for j, s in zip(labels[0], scores[0], strict=True)]
