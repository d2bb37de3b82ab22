"""The neighbours stage's single-threaded hnswlib build against two shards built at once.

    python -m benchmarks.knn_shards [--n 169000]

The stage builds its index in one thread, so the graph is the same on every run, and the
second core idles for most of the stage (93% of its samples at 169k). hnswlib releases
the GIL while it adds items, so two indexes over two halves of the rows, each built in
one thread (each still reproducible), can be built at once in two Python threads; every
query then searches both and keeps the best ``k``. This measures whether that pays: build
and query seconds of both, in the same run, on a Gaussian mixture of unit vectors in the
stage's 128 dimensions, and recall@k of each against exact cosine search for a sample of
2,000 rows. Writes ``benchmarks/results/knn-shards-N.json``.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

import numpy as np

from benchmarks.common import gaussian_mixture, neighbour_recall, write_result
from postermap.similarity import NEIGHBOURS, SIMILAR_DIMS, build_index, nearest

log = logging.getLogger("benchmarks.knn_shards")
SAMPLE = 2000


def sharded(vectors: np.ndarray, shards: int) -> tuple[list, float]:
    """``shards`` (index, rows) over consecutive parts of ``vectors``, built in as many
    threads, and the seconds the build took."""
    parts = np.array_split(np.arange(len(vectors)), shards)
    built: list = [None] * shards

    def build(s: int) -> None:
        # an index labels its rows 0..len-1: the shard's rows map them back
        built[s] = (build_index(vectors[parts[s]], seed=0), parts[s])

    start = time.perf_counter()
    threads = [threading.Thread(target=build, args=(s,)) for s in range(shards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return built, time.perf_counter() - start


def sharded_nearest(indexes: list, queries: np.ndarray, k: int) -> np.ndarray:
    """The best ``k`` labels (global rows) over every shard's ``k`` nearest."""
    labels, sims = [], []
    for index, rows in indexes:
        local, sim = nearest(index, queries, k)
        labels.append(rows[local])
        sims.append(sim)
    merged_labels, merged_sims = np.hstack(labels), np.hstack(sims)
    order = np.argsort(-merged_sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(merged_labels, order, axis=1)


def recall(found: np.ndarray, vectors: np.ndarray, sample: np.ndarray, k: int) -> float:
    """Share of each sampled row's ``k`` exact nearest (itself included) that ``found`` has."""
    truth = np.argsort(-(vectors[sample] @ vectors.T), axis=1)[:, :k]
    return neighbour_recall(found[sample], truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=169_000)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vectors = gaussian_mixture(args.n, dim=SIMILAR_DIMS, clusters=500).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    k = NEIGHBOURS + 1
    sample = np.random.default_rng(1).choice(args.n, min(SAMPLE, args.n), replace=False)

    start = time.perf_counter()
    single = build_index(vectors, seed=0)
    single_build = time.perf_counter() - start
    start = time.perf_counter()
    single_labels, _ = nearest(single, vectors, k)
    single_query = time.perf_counter() - start
    del single

    indexes, shard_build = sharded(vectors, args.shards)
    start = time.perf_counter()
    shard_labels = sharded_nearest(indexes, vectors, k)
    shard_query = time.perf_counter() - start

    result = {
        "n": args.n,
        "dims": SIMILAR_DIMS,
        "k": k,
        "single": {
            "build_s": single_build,
            "query_s": single_query,
            "recall": recall(single_labels, vectors, sample, k),
        },
        "shards": {
            "count": args.shards,
            "build_s": shard_build,
            "query_s": shard_query,
            "recall": recall(shard_labels, vectors, sample, k),
        },
    }
    result["total_ratio"] = (shard_build + shard_query) / (single_build + single_query)
    log.info(
        "%d vectors: one index %.1f s build + %.1f s queries (recall@%d %.4f); %d shards "
        "%.1f + %.1f s (recall %.4f); shards / one: %.2f",
        args.n,
        single_build,
        single_query,
        k,
        result["single"]["recall"],
        args.shards,
        shard_build,
        shard_query,
        result["shards"]["recall"],
        result["total_ratio"],
    )
    write_result(f"knn-shards-{args.n}.json", result)


if __name__ == "__main__":
    main()
