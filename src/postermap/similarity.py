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
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from postermap.errors import NotOnMapError, StageOrderError
from postermap.vectors import Projection
from postermap.workspace import Neighbours, Workspace, atomic_path, atomic_write_json

log = logging.getLogger(__name__)

SIMILAR_DIMS = 128
NEIGHBOURS = 20
#: hnswlib graphs the index is built as, over consecutive parts of the rows, each in its
#: own thread. A fixed number, not the machine's cores: the lists come out the same on
#: every machine.
SHARDS = 2
#: queries answered at once (the shards' candidates of a block are held together)
QUERY_BLOCK = 65_536
EF_CONSTRUCTION, LINKS, EF = 200, 24, 100


class NeighbourIndex:
    """Cosine nearest neighbours over the projected features, as ``SHARDS`` hnswlib graphs.

    An hnswlib graph is the same on every run only when it is built in one thread, which
    left the second core idle for 93% of the neighbours stage. hnswlib lets go of the GIL
    while it inserts, so one graph per part of the rows, each built in its own thread, is
    reproducible and uses both cores. A query searches every graph and keeps the best
    ``k``: at 169k rows the build took 0.52x the time of one graph, the queries 1.71x,
    0.78x in all, with recall@21 0.9998 against one graph's 0.9993
    (``benchmarks/knn_shards.py``). Labels are rows of the whole index in every graph.
    """

    def __init__(self, graphs: list[Any]) -> None:
        self.graphs = graphs

    @property
    def dim(self) -> int:
        return int(self.graphs[0].dim)

    def __len__(self) -> int:
        return sum(g.get_current_count() for g in self.graphs)

    @classmethod
    def build(cls, vectors: np.ndarray, seed: int = 0, shards: int = SHARDS) -> NeighbourIndex:
        """An index over ``vectors`` (row i has label i), its graphs built at once."""
        from concurrent.futures import ThreadPoolExecutor

        parts = np.array_split(np.arange(len(vectors)), max(1, min(shards, len(vectors))))

        def graph(rows: np.ndarray) -> Any:
            g = _empty_graph(vectors.shape[1], len(rows), seed)
            g.add_items(vectors[rows], rows)
            return g

        threads = min(len(parts), _cores())
        with ThreadPoolExecutor(threads) as pool:
            return cls(list(pool.map(graph, parts)))

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Grow the index by ``vectors`` (``postermap add``), into its smallest graph, in
        one thread: the same graph on every run."""
        g = min(reversed(self.graphs), key=lambda g: g.get_current_count())
        g.resize_index(g.get_current_count() + len(vectors))
        g.add_items(vectors, labels)

    def query(self, queries: np.ndarray, k: int, ef: int = EF) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine similarities) of the k nearest, best first (ties: the lower
        label). The queries run on every core: each one only reads the graphs."""
        k = min(k, len(self))
        labels = np.empty((len(queries), k), np.int32)
        sims = np.empty((len(queries), k), np.float32)
        for g in self.graphs:
            g.set_ef(max(ef, k))
        for at in range(0, len(queries), QUERY_BLOCK):
            block = queries[at : at + QUERY_BLOCK]
            found, distances = [], []
            for g in self.graphs:
                got = g.knn_query(block, k=min(k, g.get_current_count()), num_threads=_cores())
                found.append(got[0].astype(np.int32))
                distances.append(got[1])
            found_all, distances_all = np.hstack(found), np.hstack(distances)
            best = np.lexsort((found_all, distances_all), axis=-1)[:, :k]
            labels[at : at + len(block)] = np.take_along_axis(found_all, best, axis=1)
            sims[at : at + len(block)] = 1.0 - np.take_along_axis(distances_all, best, axis=1)
        return labels, sims

    def save(self, path: Path) -> None:
        """The graphs beside ``path``, then ``path``, which names them. hnswlib does not
        report a failed write (a full disk leaves a short file), so each saved graph is
        read back before it replaces the old one."""
        names = []
        for number, g in enumerate(self.graphs):
            target = path.with_name(f"{path.stem}-{number}.bin")
            with atomic_path(target) as tmp:
                g.save_index(str(tmp))
                try:
                    check = _load_graph(tmp, self.dim)
                except RuntimeError as err:
                    raise OSError(
                        errno.ENOSPC, f"the saved index does not load back ({err})"
                    ) from err
                if check.get_current_count() != g.get_current_count():
                    raise OSError(errno.ENOSPC, "the saved index is incomplete")
            names.append({"file": target.name, "count": g.get_current_count()})
        atomic_write_json(path, {"dim": self.dim, "graphs": names})

    @classmethod
    def load(cls, path: Path) -> NeighbourIndex:
        """The index :meth:`save` wrote to ``path``.

        Raises:
            StageOrderError: a graph is missing, unreadable or not the one ``path`` lists.
        """
        manifest = json.loads(path.read_text())
        again = f"run `postermap neighbours {path.parent.parent} --force`"
        graphs = []
        for entry in manifest["graphs"]:
            graph_path = path.with_name(entry["file"])
            try:
                g = _load_graph(graph_path, manifest["dim"])
            except RuntimeError as err:  # hnswlib's only error: missing, short, not a graph
                raise StageOrderError(f"{graph_path}: not readable ({err}): {again}") from err
            if g.get_current_count() != entry["count"]:
                raise StageOrderError(
                    f"{graph_path}: {g.get_current_count()} vectors where {path.name} says "
                    f"{entry['count']}: {again}"
                )
            graphs.append(g)
        return cls(graphs)


def _cores() -> int:
    return os.cpu_count() or 1


def _empty_graph(dim: int, capacity: int, seed: int) -> Any:
    import hnswlib

    g = hnswlib.Index(space="cosine", dim=dim)
    g.init_index(
        max_elements=max(1, capacity), ef_construction=EF_CONSTRUCTION, M=LINKS, random_seed=seed
    )
    g.set_num_threads(1)  # one thread per graph: the same graph on every run
    g.set_ef(EF)
    return g


def _load_graph(path: Path, dim: int) -> Any:
    import hnswlib

    g = hnswlib.Index(space="cosine", dim=dim)
    g.load_index(str(path))
    g.set_num_threads(1)
    g.set_ef(EF)
    return g


def build_index(vectors: np.ndarray, seed: int = 0, shards: int = SHARDS) -> NeighbourIndex:
    """A :class:`NeighbourIndex` over ``vectors`` (row i has label i)."""
    return NeighbourIndex.build(vectors, seed, shards)


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
    labels, scores = NeighbourIndex.load(ws.neighbour_index_path).query(vectors, k)
    id_list = ws.read_layout().ids.tolist()
    return [(id_list[j], float(s)) for j, s in zip(labels[0], scores[0], strict=True)]
