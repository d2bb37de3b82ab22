"""The neighbour index as one hnswlib graph built in one thread against its graphs built at once.

    python -m benchmarks.knn_shards [--n 169000] [--shards 2]

A graph is the same on every run only when one thread builds it, so one graph leaves the
second core idle (93% of the neighbours stage's samples at 169k). hnswlib releases the
GIL while it adds items, so :class:`postermap.similarity.NeighbourIndex` builds one
graph per part of the rows, each in its own thread (each still reproducible), and every
query searches them all and keeps the best ``k``. This times both with the stage's own
code in the same run, on a Gaussian mixture of unit vectors in the stage's 128
dimensions, with recall@k of each against exact cosine search for a sample of 2,000
rows. Writes ``benchmarks/results/knn-shards-N.json``.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from benchmarks.common import gaussian_mixture, neighbour_recall, write_result
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

    single_labels, single_build, single_query = timed_index(vectors, 1, k)
    shard_labels, shard_build, shard_query = timed_index(vectors, args.shards, k)

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
