"""Quicker t-SNE settings at scale, and what they cost in layout quality.

    python -m benchmarks.tsne_variants [--workspace WS] [--variants default hnsw iter250]

On the features of a finished workspace (default: ``benchmarks.scale``'s 169k posters),
projected as the reduce stage does (PCA-50 fitted on a sample, the images on the map),
runs openTSNE with the reduce stage's settings (``default``) and with one change each:
``hnsw`` (openTSNE's hnswlib neighbour search on 2 threads instead of Annoy) and
``iter250`` (250 optimisation steps after the early exaggeration instead of 500). Each is
timed, and scored by kNN kept on a sample: for 5,000 random images, the share of their 10
most similar images (exact cosine over the full features, among all images) that are
among their 10 nearest on the layout. Writes ``benchmarks/results/tsne-variants.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE, write_result
from postermap.layout import knn_preservation
from postermap.vectors import Projection, normalise
from postermap.workspace import Workspace

VARIANTS = {
    "default": {},
    "hnsw": {"neighbors": "hnsw"},
    "iter250": {"n_iter": 250},
}
SAMPLE = 5000
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=CACHE / "scale-169000" / "ws")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    from openTSNE import TSNE

    ws = Workspace(args.workspace)
    features, rows = ws.embedding_rows(ws.read_layout().ids)
    projection = Projection.fit(features, rows, 50, args.seed, renormalise=False)
    reduced = projection.transform(features, rows)
    unit = normalise(np.asarray(features[rows], dtype=np.float32))
    print(f"{len(rows)} images, PCA-{reduced.shape[1]}")
    results = {}
    for name in args.variants:
        start = time.perf_counter()
        tsne = TSNE(
            n_components=2, perplexity=30, random_state=args.seed, n_jobs=2, **VARIANTS[name]
        )
        xy = np.asarray(tsne.fit(reduced))
        seconds = time.perf_counter() - start
        results[name] = {
            "seconds": seconds,
            "knn_kept": knn_preservation(unit, xy, K, sample=SAMPLE),
        }
        print(f"{name}: {seconds:.0f} s, kNN kept {results[name]['knn_kept']:.3f}", flush=True)
    base = results.get("default")
    if base:
        for name, r in results.items():
            print(
                f"{name} / default: time {r['seconds'] / base['seconds']:.2f}, "
                f"kNN kept {r['knn_kept'] / base['knn_kept']:.3f}"
            )
    write_result(
        "tsne-variants.json",
        {"workspace": str(args.workspace), "images": len(rows), "results": results},
    )


if __name__ == "__main__":
    main()
