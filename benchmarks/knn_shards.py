"""Every neighbour search of the pipeline as one hnswlib graph built in one thread against
its graphs built at once.

    python -m benchmarks.knn_shards [--n 169000] [--shards 2] [--only neighbours,...]

A graph is the same on every run only when one thread builds it, so one graph leaves the
second core idle (93% of the neighbours stage's samples at 169k). hnswlib releases the
GIL while it adds items, so :class:`postermap.knn.ShardedIndex` builds one graph per part
of the rows, each in its own thread (each still reproducible), and every query searches
them all and keeps the best ``k``. This times both ways, in the same run, with each
caller's own code and settings (``shards=1`` is the one graph each built before):

* ``neighbours``: the neighbours stage's index, on a Gaussian mixture of unit vectors in
  its 128 dimensions, recall@k against exact cosine search for 2,000 sampled rows;
* ``candidates``: clean's embedding candidates (k = 10) on a mixture in 128 dimensions
  (the projection it makes first is left out: the same work both ways), recall of the
  sampled rows' exact 10 nearest among the pairs;
* ``knn_graph``: the cluster stage's whole-picture graph (k = 20) on a 32-d mixture, the
  same recall of its edges;
* ``cell_graph``: its salient-cell graph, 4 cells per image of 112 channels drawn around
  20,000 motifs (as ``benchmarks/clusters.py`` makes them), the share of the one graph's
  edges the sharded graph has too.

Writes ``benchmarks/results/knn-shards-N.json``.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from benchmarks.common import gaussian_mixture, neighbour_recall, write_result
from postermap.cleaning import embedding_candidates
from postermap.clustering import cell_graph, knn_graph
from postermap.similarity import NEIGHBOURS, SIMILAR_DIMS, build_index, nearest

log = logging.getLogger("benchmarks.knn_shards")
SAMPLE = 2000


def timed_index(vectors: np.ndarray, shards: int, k: int) -> tuple[np.ndarray, float, float]:
    """Every row's ``k`` nearest from an index of ``shards`` graphs; build and query s."""
    start = time.perf_counter()
    index = build_index(vectors, seed=0, shards=shards)
    build = time.perf_counter() - start
    start = time.perf_counter()
    labels, _ = nearest(index, vectors, k)
    return labels, build, time.perf_counter() - start


def recall(found: np.ndarray, vectors: np.ndarray, sample: np.ndarray, k: int) -> float:
    """Share of each sampled row's ``k`` exact nearest (itself included) that ``found`` has."""
    truth = np.argsort(-(vectors[sample] @ vectors.T), axis=1)[:, :k]
    return neighbour_recall(found[sample], truth)


def _unit(n: int, dim: int, clusters: int) -> np.ndarray:
    vectors = gaussian_mixture(n, dim=dim, clusters=clusters).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _edge_recall(graph, vectors: np.ndarray, sample: np.ndarray, k: int) -> float:
    """Share of each sampled row's exact ``k`` nearest others that are its edges in
    ``graph`` (a scipy matrix, or an (m, 2) array of pairs)."""
    from scipy import sparse

    if not sparse.issparse(graph):
        n = len(vectors)
        ones = np.ones(len(graph))
        graph = sparse.csr_matrix((ones, (graph[:, 0], graph[:, 1])), shape=(n, n))
        graph = graph + graph.T
    graph = sparse.csr_matrix(graph)
    truth = np.argsort(-(vectors[sample] @ vectors.T), axis=1)[:, 1 : k + 1]
    hits = [
        np.isin(t, graph.indices[graph.indptr[i] : graph.indptr[i + 1]]).mean()
        for i, t in zip(sample, truth, strict=True)
    ]
    return float(np.mean(hits))


def _edge_share(graph, reference) -> float:
    """Share of ``reference``'s edges that ``graph`` has too."""
    a, b = graph.tocoo(), reference.tocoo()
    width = np.int64(reference.shape[1])
    mine = np.unique(a.row.astype(np.int64) * width + a.col)
    theirs = np.unique(b.row.astype(np.int64) * width + b.col)
    return float(np.isin(theirs, mine).mean()) if len(theirs) else 1.0


def _both_ways(name: str, run, shards: int) -> dict:
    """``run(shards)`` timed with one graph and with ``shards``; ``run`` returns its output."""
    out = {}
    for label, count in (("single", 1), ("shards", shards)):
        start = time.perf_counter()
        result = run(count)
        out[label] = {"count": count, "s": time.perf_counter() - start, "result": result}
    out["ratio"] = out["shards"]["s"] / out["single"]["s"]
    log.info(
        "%s: one graph %.1f s, %d graphs %.1f s: %.2fx",
        name,
        out["single"]["s"],
        shards,
        out["shards"]["s"],
        out["ratio"],
    )
    return out


def neighbours_bench(n: int, shards: int, sample: np.ndarray) -> dict:
    vectors = _unit(n, SIMILAR_DIMS, 500)
    k = NEIGHBOURS + 1
    single_labels, single_build, single_query = timed_index(vectors, 1, k)
    shard_labels, shard_build, shard_query = timed_index(vectors, shards, k)
    result = {
        "dims": SIMILAR_DIMS,
        "k": k,
        "single": {
            "build_s": single_build,
            "query_s": single_query,
            "recall": recall(single_labels, vectors, sample, k),
        },
        "shards": {
            "count": shards,
            "build_s": shard_build,
            "query_s": shard_query,
            "recall": recall(shard_labels, vectors, sample, k),
        },
    }
    result["total_ratio"] = (shard_build + shard_query) / (single_build + single_query)
    log.info(
        "neighbours: one index %.1f s build + %.1f s queries (recall@%d %.4f); %d shards "
        "%.1f + %.1f s (recall %.4f); shards / one: %.2f",
        single_build,
        single_query,
        k,
        result["single"]["recall"],
        shards,
        shard_build,
        shard_query,
        result["shards"]["recall"],
        result["total_ratio"],
    )
    return result


def candidates_bench(n: int, shards: int, sample: np.ndarray) -> dict:
    vectors = _unit(n, 128, 500)
    rows = np.arange(n)
    out = _both_ways(
        "candidates", lambda count: embedding_candidates(vectors, rows, 10, shards=count), shards
    )
    for label in ("single", "shards"):
        pairs = out[label].pop("result")
        out[label].update(pairs=len(pairs), recall=_edge_recall(pairs, vectors, sample, 10))
    return out


def knn_graph_bench(n: int, shards: int, sample: np.ndarray) -> dict:
    points = gaussian_mixture(n, dim=32, clusters=3000, seed=1)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    out = _both_ways("knn_graph", lambda count: knn_graph(points, 20, 0, shards=count), shards)
    for label in ("single", "shards"):
        out[label]["recall"] = _edge_recall(out[label].pop("result"), unit, sample, 20)
    return out


def cell_graph_bench(n: int, shards: int) -> dict:
    rng = np.random.default_rng(2)
    motifs = rng.normal(size=(20_000, 112)).astype(np.float32)
    cells = np.empty((n, 4, 112), np.float16)
    for start in range(0, n, 32_768):
        m = min(32_768, n - start)
        picked = motifs[rng.integers(0, len(motifs), (m, 4))]
        cells[start : start + m] = picked + rng.normal(scale=0.5, size=(m, 4, 112))
    out = _both_ways(
        "cell_graph", lambda count: cell_graph(cells, None, 4, neighbours=20, shards=count), shards
    )
    one, many = out["single"].pop("result"), out["shards"].pop("result")
    out["edges_kept"] = _edge_share(many, one)
    return out


BENCHES = ("neighbours", "candidates", "knn_graph", "cell_graph")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=169_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--only", default=",".join(BENCHES), help=", ".join(BENCHES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sample = np.random.default_rng(1).choice(args.n, min(SAMPLE, args.n), replace=False)
    chosen = args.only.split(",")
    result: dict = {"n": args.n}
    if "neighbours" in chosen:
        result["neighbours"] = neighbours_bench(args.n, args.shards, sample)
    if "candidates" in chosen:
        result["candidates"] = candidates_bench(args.n, args.shards, sample)
    if "knn_graph" in chosen:
        result["knn_graph"] = knn_graph_bench(args.n, args.shards, sample)
    if "cell_graph" in chosen:
        result["cell_graph"] = cell_graph_bench(args.n, args.shards)
    write_result(f"knn-shards-{args.n}.json", result)


if __name__ == "__main__":
    main()
