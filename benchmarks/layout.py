"""Layout quality of ``--reducer tsne`` (the default, the baseline) and ``--reducer umap``.

    python -m benchmarks.layout [--sets NAME ...] [--skip-synthetic] [--cache DIR]

For each set, the features of the images on its map (the workspace's embeddings, rows of
the ``ok`` images, exactly what the reduce stage reads) are laid out by the library call
the reduce stage makes (:func:`postermap.layout.reduce_to_2d`: L2-normalise, PCA-50, then
openTSNE or UMAP, seed 42, default parameters) and scored against the full features:

* **trustworthiness** (:func:`postermap.layout.trustworthiness`, sklearn's, k = 10, on a
  seeded sample of at most 5,000 points): 1.0 when no 2-D neighbour is a stranger in
  feature space;
* **kNN preservation** (:func:`postermap.layout.knn_preservation`, k = 10, all points):
  the share of each image's 10 most similar images (cosine) that are among its 10
  nearest on the layout;
* **seconds** of the layout call (UMAP's numba compilation is done before, on a tiny
  set, and not counted).

A PCA-2 projection is scored beside them as a floor. Sets: the default set ``emoji``
(Noto emoji, the whole set) and the held-out sets of ``tests/heldout`` (seed 0):
``clipart-posters``, ``icon-posters``, ``openmoji``, whose workspaces are reused from
``benchmarks/.cache/cluster-runs`` or ``heldout-runs`` when present (else built as
``benchmarks/clusters.py`` builds them and run up to ``reduce``), and ``synthetic-20k``:
a 20,000-point 50-d Gaussian mixture (``benchmarks.common.gaussian_mixture``).

Prints one table with the ratios umap / tsne and writes benchmarks/results/layout.json.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from benchmarks.common import CACHE, gaussian_mixture, write_result
from postermap.layout import knn_preservation, reduce_to_2d, trustworthiness, umap_layout
from postermap.vectors import Projection
from postermap.workspace import Workspace

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
HELDOUT = ("clipart-posters", "icon-posters", "openmoji")
SETS = ("emoji", *HELDOUT, "synthetic-20k")
K = 10
SAMPLE = 5000
SEED = 42
PCA_DIMS = 50
PERPLEXITY = 30.0
WORKERS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help="where the benchmark workspaces are cached"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = [n for n in args.sets if not (args.skip_synthetic and n == "synthetic-20k")]
    umap_layout(np.random.default_rng(0).normal(size=(64, 8)), 0, 8, 0.1)  # numba JIT
    results = {}
    for name in names:
        features, origin = load_features(name, args.cache)
        results[name] = {"images": len(features), "features_from": origin, **score(features)}
        print_row(name, results[name])
    print_table(results)
    path = write_result(
        "layout.json",
        {
            "command": "python -m benchmarks.layout",
            "k": K,
            "trustworthiness_sample": SAMPLE,
            "settings": {"pca_dims": PCA_DIMS, "perplexity": PERPLEXITY, "seed": SEED},
            "sets": results,
        },
    )
    print(f"wrote {path}")


def score(features: np.ndarray) -> dict:
    """Each layout's measures and seconds; umap / tsne ratios."""
    out: dict[str, dict] = {}
    for method in ("tsne", "umap"):
        start = time.perf_counter()
        xy, _ = reduce_to_2d(features, PCA_DIMS, PERPLEXITY, SEED, n_jobs=WORKERS, method=method)
        seconds = time.perf_counter() - start
        out[method] = _measures(features, xy) | {"seconds": round(seconds, 2)}
    start = time.perf_counter()
    xy = Projection.fit(features, None, 2, SEED, renormalise=False).transform(features)
    out["pca2"] = _measures(features, xy) | {"seconds": round(time.perf_counter() - start, 2)}
    out["umap_over_tsne"] = {
        key: round(out["umap"][key] / out["tsne"][key], 3) for key in out["tsne"]
    }
    return out


def _measures(features: np.ndarray, xy: np.ndarray) -> dict:
    return {
        "trustworthiness": round(trustworthiness(features, xy, K, SAMPLE, seed=0), 4),
        "knn_preservation": round(knn_preservation(features, xy, K), 4),
    }


def load_features(name: str, cache: Path) -> tuple[np.ndarray, str]:
    """The features of the images on the set's map (in memory), and where they came from."""
    if name == "synthetic-20k":
        return gaussian_mixture(20_000, seed=0), "benchmarks.common.gaussian_mixture(20000)"
    for runs in ("cluster-runs", "heldout-runs", "layout-runs"):
        ws = Workspace(cache / runs / f"{name}-0")
        if (ws.root / "layout_ids.npy").exists() and ws.embeddings_path.exists():
            return _map_features(ws), f"benchmarks/{ws.root.relative_to(cache.parent)}"
    ws = _build(name, cache / "layout-runs" / f"{name}-0")
    return _map_features(ws), f"benchmarks/{ws.root.relative_to(cache.parent)}"


def _map_features(ws: Workspace) -> np.ndarray:
    ids = ws.read_layout().ids
    embeddings, rows = ws.embedding_rows(ids)
    return np.asarray(embeddings[np.sort(rows)], dtype=np.float32)


def _build(name: str, ws_path: Path) -> Workspace:
    """Build the set (as benchmarks/clusters.py does) and run it up to ``reduce``."""
    from postermap.cli import main as cli

    if name == "emoji":
        from postermap.datasets import fetch_emoji

        source = fetch_emoji(REPO / "data" / "emoji")
    else:
        from benchmarks.clusters import build

        source = build(name, 0)
    result = CliRunner().invoke(
        cli, ["run", str(source), "-o", str(ws_path), "--until", "reduce"], catch_exceptions=False
    )
    if result.exit_code != 0:
        raise RuntimeError(f"postermap run failed on {name}:\n{result.output[-2000:]}")
    return Workspace(ws_path)


def print_row(name: str, result: dict) -> None:
    for method in ("tsne", "umap", "pca2"):
        r = result[method]
        print(
            f"{name}.{method}: trustworthiness {r['trustworthiness']:.4f}  "
            f"knn_preservation {r['knn_preservation']:.4f}  seconds {r['seconds']:.1f}",
            flush=True,
        )


def print_table(results: dict) -> None:
    print()
    print(f"{'set':<18}{'n':>7}  {'trustworthiness@10':^26}  {'kNN kept@10':^26}  {'seconds':^15}")
    print(
        f"{'':<18}{'':>7}  {'tsne  umap  pca2  u/t':^26}  {'tsne  umap  pca2  u/t':^26}  "
        f"{'tsne  umap  u/t':^15}"
    )
    for name, r in results.items():
        t, u, p, q = r["tsne"], r["umap"], r["pca2"], r["umap_over_tsne"]
        print(
            f"{name:<18}{r['images']:>7}  "
            f"{t['trustworthiness']:.3f} {u['trustworthiness']:.3f} {p['trustworthiness']:.3f} "
            f"{q['trustworthiness']:.2f}  "
            f"{t['knn_preservation']:.3f} {u['knn_preservation']:.3f} {p['knn_preservation']:.3f} "
            f"{q['knn_preservation']:.2f}  "
            f"{t['seconds']:5.1f} {u['seconds']:5.1f} {q['seconds']:.2f}"
        )


if __name__ == "__main__":
    main()
