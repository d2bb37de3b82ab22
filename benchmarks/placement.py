"""Where `postermap add` puts a new image: the neighbour-weighted start against t-SNE's
placement against the fixed map, on real and held-out sets.

    python -m benchmarks.placement [--sets NAME-SEED ...] [--splits 3]

Per set (embedded once by ``postermap run SET -o WS --until embed``, as benchmarks/clean.py
does; all images, before cleaning) and per split: a random 10% of the images are the
"added" ones, the other 90% are laid out by the reduce stage's own call
(:func:`postermap.layout.reduce_to_2d`, PCA-50 + openTSNE, seed 42); each added image is
placed from its 25 most similar map images (exact cosine on the full features, standing
in for the map's index) by :func:`postermap.growing.place_by_neighbours` (its 10
nearest) and then by :func:`postermap.layout.tsne_place`; a t-SNE of all images is the
reference a rebuild would give. The figure is *kNN kept* of the added images: the share
of each one's 10 most similar images (cosine, all images) that are among its 10 nearest
on the layout. No parameter of the placement was chosen on these sets (openTSNE's
``transform`` defaults). Writes benchmarks/results/placement.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import heldout_set, write_result
from postermap.growing import PLACE_NEIGHBOURS, place_by_neighbours
from postermap.layout import PARTIAL_NEIGHBOURS, reduce_to_2d, tsne_place
from postermap.vectors import normalise

DEFAULT_SETS = ("openmoji-0", "clipart-posters-1", "icon-posters-0", "tropes-0")
K = 10


def kept(unit: np.ndarray, xy: np.ndarray, queries: np.ndarray) -> float:
    """Mean share of each query's K most similar rows of ``unit`` among its K nearest on
    ``xy`` (both over every row but itself)."""
    sim = unit[queries] @ unit.T
    sim[np.arange(len(queries)), queries] = -np.inf
    similar = np.argpartition(-sim, K, axis=1)[:, :K]
    dist = ((xy[queries, None, :] - xy[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(queries)), queries] = np.inf
    near = np.argpartition(dist, K, axis=1)[:, :K]
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(similar, near, strict=True)]))


def measure(unit: np.ndarray, split: int) -> dict:
    n = len(unit)
    rng = np.random.default_rng(split)
    new = np.sort(rng.choice(n, n // 10, replace=False))
    old = np.setdiff1d(np.arange(n), new)
    xy_old, _ = reduce_to_2d(unit, 50, 30.0, 42, 2, rows=old)
    sim = unit[new] @ unit[old].T
    labels = np.argsort(-sim, axis=1)[:, :PARTIAL_NEIGHBOURS]
    sims = np.take_along_axis(sim, labels, axis=1)
    start = place_by_neighbours(
        xy_old, labels[:, :PLACE_NEIGHBOURS], sims[:, :PLACE_NEIGHBOURS].astype(np.float32)
    )
    began = time.perf_counter()
    moved = tsne_place(xy_old, start, labels, np.sqrt(np.maximum(2 - 2 * sims, 0)), 2)
    seconds = time.perf_counter() - began
    full, _ = reduce_to_2d(unit, 50, 30.0, 42, 2)
    # the added rows after the map's: queries are their positions in that order
    order = np.concatenate([old, new])
    queries = np.arange(len(old), n)
    return {
        "added": len(new),
        "start": kept(unit[order], np.concatenate([xy_old, start]), queries),
        "tsne_place": kept(unit[order], np.concatenate([xy_old, moved]), queries),
        "full_tsne": kept(unit, full, new),
        "tsne_place_seconds": seconds,
    }


def main() -> None:
    from benchmarks.clean import embedded

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(DEFAULT_SETS), help="NAME-SEED")
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for key in args.sets:
        name, seed = key.rsplit("-", 1)
        folder, _ = heldout_set(name, int(seed))
        unit = normalise(np.asarray(embedded(folder, key).read_embeddings().vectors, np.float32))
        splits = [measure(unit, split) for split in range(args.splits)]
        mean = {k: float(np.mean([s[k] for s in splits])) for k in splits[0]}
        results[key] = {"images": len(unit), "splits": splits, "mean": mean}
        print(
            f"{key}: {len(unit)} images, added {splits[0]['added']} x {args.splits} splits; "
            f"kNN kept of the added: start {mean['start']:.3f}, t-SNE placement "
            f"{mean['tsne_place']:.3f}, t-SNE of all {mean['full_tsne']:.3f}",
            flush=True,
        )
    write_result("placement.json", {"k": K, "sets": results})


if __name__ == "__main__":
    main()
