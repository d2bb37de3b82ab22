"""Approximate nearest neighbours on both cores, the same on every run: sharded hnswlib.

Four places search neighbours among the images' vectors: clean's near-duplicate
candidates, the cluster stage's whole-picture graph and its salient-cell graph, and the
neighbours stage's "more like this" index. Each needs the same answers on every run (the
verdicts, the cluster numbers and the lists depend on them), and an hnswlib graph is the
same on every run only when one thread builds it: the second core idled while the graph
grew, 33-95% of those stages' time (the profiles in README's Performance section).

hnswlib lets go of the GIL while it inserts, so :class:`ShardedIndex` builds one graph per
part of the rows, each in its own thread and each one-threaded, and a query searches every
graph and keeps the best ``k`` (ties: the lower label). At 169k rows
(``benchmarks/knn_shards.py``) the build takes about half the time of one graph and each
query nearly twice as long (a search in a graph half the size costs more than half as
much): 0.80x in all for the neighbours index (recall@21 0.9998 against 0.9993), 0.75x for
clean's candidates, 0.92x for the salient-cell graph, and 1.05x for the cluster stage's
whole-picture graph, a cheap graph searched hard, which therefore stays one graph. The
number of graphs is a fixed :data:`SHARDS`, not the machine's cores, so the answers are
the same on every machine; ``shards=1`` is exactly the one graph built before.
"""

from __future__ import annotations

import errno
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from postermap.errors import StageOrderError
from postermap.workspace import atomic_path, atomic_write_json

#: graphs an index is built as, over consecutive parts of the rows
SHARDS = 2
#: queries answered at once (the graphs' candidates of a block are held together)
QUERY_BLOCK = 65_536


class ShardedIndex:
    """Nearest neighbours of vectors as ``len(graphs)`` hnswlib graphs over parts of the
    rows; labels are rows of the whole index in every graph.

    ``space`` is hnswlib's (``cosine`` or ``ip``; distances are 1 - similarity either way),
    ``links`` and ``ef_construction`` its ``M`` and ``ef_construction``, ``ef`` the search
    breadth queries use unless they ask for another.
    """

    def __init__(self, graphs: list[Any], space: str, ef: int) -> None:
        self.graphs = graphs
        self.space = space
        self.ef = ef

    @property
    def dim(self) -> int:
        return int(self.graphs[0].dim)

    def __len__(self) -> int:
        return sum(g.get_current_count() for g in self.graphs)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        space: str = "cosine",
        links: int,
        ef_construction: int,
        ef: int,
        seed: int = 0,
        shards: int = SHARDS,
    ) -> ShardedIndex:
        """An index over ``vectors`` (row i has label i), its graphs built at once."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        parts = np.array_split(np.arange(len(vectors)), max(1, min(shards, len(vectors))))

        def graph(rows: np.ndarray) -> Any:
            g = _empty_graph(space, vectors.shape[1], len(rows), links, ef_construction, seed)
            if len(rows):  # the parts are consecutive rows: a view, not a copy
                g.add_items(vectors[rows[0] : rows[-1] + 1], rows)
            return g

        if len(parts) == 1:
            return cls([graph(parts[0])], space, ef)
        with ThreadPoolExecutor(min(len(parts), _cores())) as pool:
            return cls(list(pool.map(graph, parts)), space, ef)

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Grow the index by ``vectors`` (``postermap add``), into its smallest graph, in
        one thread: the same graph on every run."""
        g = min(reversed(self.graphs), key=lambda g: g.get_current_count())
        g.resize_index(g.get_current_count() + len(vectors))
        g.add_items(vectors, labels)

    def query(
        self, queries: np.ndarray, k: int, ef: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(labels, similarities) of the k nearest, best first; with several graphs, ties
        go to the lower label. The queries run on every core: each one only reads the
        graphs, so the answers do not depend on the threads."""
        k = min(k, len(self))
        for g in self.graphs:
            g.set_ef(max(ef or self.ef, k))
        if len(self.graphs) == 1:  # hnswlib's own order, exactly as one graph gives it
            found, distances = self.graphs[0].knn_query(queries, k=k, num_threads=_cores())
            return found.astype(np.int32), (1.0 - distances).astype(np.float32)
        labels = np.empty((len(queries), k), np.int32)
        sims = np.empty((len(queries), k), np.float32)
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
                    check = _load_graph(tmp, self.space, self.dim)
                except RuntimeError as err:
                    raise OSError(
                        errno.ENOSPC, f"the saved index does not load back ({err})"
                    ) from err
                if check.get_current_count() != g.get_current_count():
                    raise OSError(errno.ENOSPC, "the saved index is incomplete")
            names.append({"file": target.name, "count": g.get_current_count()})
        atomic_write_json(
            path, {"dim": self.dim, "space": self.space, "ef": self.ef, "graphs": names}
        )

    @classmethod
    def load(cls, path: Path, remedy: str) -> ShardedIndex:
        """The index :meth:`save` wrote to ``path``.

        Raises:
            StageOrderError: a graph is missing, unreadable or not the one ``path`` lists;
                the message ends with ``remedy`` (the command that writes it again).
        """
        manifest = json.loads(path.read_text())
        space = manifest.get("space", "cosine")  # the neighbours stage's, before it was kept
        graphs = []
        for entry in manifest["graphs"]:
            graph_path = path.with_name(entry["file"])
            try:
                g = _load_graph(graph_path, space, manifest["dim"])
            except RuntimeError as err:  # hnswlib's only error: missing, short, not a graph
                raise StageOrderError(f"{graph_path}: not readable ({err}): {remedy}") from err
            if g.get_current_count() != entry["count"]:
                raise StageOrderError(
                    f"{graph_path}: {g.get_current_count()} vectors where {path.name} says "
                    f"{entry['count']}: {remedy}"
                )
            graphs.append(g)
        return cls(graphs, space, int(manifest.get("ef", 100)))


def _cores() -> int:
    return os.cpu_count() or 1


def _empty_graph(
    space: str, dim: int, capacity: int, links: int, ef_construction: int, seed: int
) -> Any:
    import hnswlib

    g = hnswlib.Index(space=space, dim=dim)
    g.init_index(
        max_elements=max(1, capacity), ef_construction=ef_construction, M=links, random_seed=seed
    )
    g.set_num_threads(1)  # one thread per graph: the same graph on every run
    return g


def _load_graph(path: Path, space: str, dim: int) -> Any:
    import hnswlib

    g = hnswlib.Index(space=space, dim=dim)
    g.load_index(str(path))
    g.set_num_threads(1)
    return g
