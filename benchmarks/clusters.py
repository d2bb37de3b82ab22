"""Clusters measured on every set: the default, every variant tried, the names, the scale.

    python -m benchmarks.clusters [--sets NAME-SEED ...] [--index-n 169000]
                                  [--scale-n 169000] [--skip-scale]

Tuning discipline: the cluster settings were chosen on ONE set, ``clipart-posters`` seed 0
(marked "tuning"); every other set is held out: ``clipart-posters`` seed 1 (the same
recipe with a new seed), ``icon-posters`` seeds 0 and 1, ``openmoji`` (real emoji, scored
against their categories), ``tropes`` (the old tuning generator) and the default set
``emoji`` (Noto emoji, categories).

1. Each set is built as ``benchmarks/judgement.py`` builds it (shared cache) and run with
   ``postermap run SET -o WS --until cluster`` (workspaces cached in
   ``benchmarks/.cache/cluster-runs``; finished stages are skipped).
2. **Default**: the pipeline's own clusters, scored by ``tests/heldout/evaluate.py``: per
   planted trope the recall and purity of the cluster holding most of it, trope ARI,
   category ARI (openmoji, emoji; on ``tropes`` the categories are colour-only palette
   groups, which a trope finder should *not* recover), and the name of each trope's
   cluster next to its motif's source file.
3. **Ablation**: every variant (clustering method x space x features) on every set. The
   pooled features beyond the stored ones (GeM, max, R-MAC of a grey input) come from a
   second pass over the thumbnails made here, for measurement only; "grey" needs that
   second pass in production too, so it cannot be a default.
4. **Emoji**: grid-neighbour category share of the default set's map
   (``tests/conftest.py::grid_neighbour_agreement``).
5. **Scale**: the cluster stage's library calls on ``--scale-n`` synthetic images
   (1280-d features and R-MAC vectors, memory-mapped) against HDBSCAN on a 2-D t-SNE
   layout of the same size (the old default); the neighbour index at ``--index-n``.

Writes benchmarks/results/clusters.json.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from benchmarks.common import (
    CACHE,
    blob_layout,
    heldout_set,
    neighbour_recall,
    tsne_layout,
    write_result,
)
from postermap.cli import main as cli
from postermap.clustering import (
    EMBEDDING_DIMS,
    GRAPH_DIMS,
    cell_graph,
    describe_clusters,
    distinctive_classes,
    find_clusters,
    whiten,
)
from postermap.similarity import build_index, nearest
from postermap.vectors import Projection, normalise
from postermap.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
TUNING = ("clipart-posters", 0)
ALL_SETS = [
    ("clipart-posters", 0),
    ("clipart-posters", 1),
    ("icon-posters", 0),
    ("icon-posters", 1),
    ("openmoji", 0),
    ("tropes", 0),
    ("emoji", 0),
]
SEED = 42  # the pipeline's default seed, so the default variant is the pipeline's result


def role(name: str, seed: int) -> str:
    if (name, seed) == TUNING:
        return "tuning"
    if name == TUNING[0]:
        return "held out (same recipe, new seed)"
    return "held out"


# -- building and running -------------------------------------------------------------------


def build(name: str, seed: int) -> Path:
    """The set folder, built once (the cache benchmarks/judgement.py uses)."""
    if name == "emoji":
        from postermap.datasets import fetch_emoji

        return fetch_emoji(REPO / "data" / "emoji")
    from tests.heldout import fetch_sources

    fetch_sources([name])
    return heldout_set(name, seed)[0]


def run_pipeline(source: Path, ws: Path) -> Workspace:
    """Run (or bring up to date) the workspace with today's defaults: a workspace keeps the
    settings it was run with, so those are forgotten first."""
    (ws / "settings.json").unlink(missing_ok=True)
    result = CliRunner().invoke(
        cli, ["run", str(source), "-o", str(ws), "--until", "cluster"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return Workspace(ws)


@dataclass
class SetData:
    """Everything a variant needs, rows in layout order."""

    name: str
    seed: int
    folder: Path
    ws: Workspace
    ids: list[str]
    rows: list[dict]  # the catalog
    xy: np.ndarray
    features: dict[str, np.ndarray]
    colour: np.ndarray


def load(name: str, seed: int) -> SetData:
    folder = build(name, seed)
    ws = run_pipeline(folder, CACHE / "cluster-runs" / f"{name}-{seed}")
    layout = ws.read_layout()
    ids = layout.ids.tolist()
    embeddings, rows = ws.embedding_rows(layout.ids)
    rmac = ws.read_extra_features("rmac")
    cells = ws.read_extra_features("cells")
    catalog = pq.read_table(ws.catalog_path).to_pylist()
    by_id = {r["id"]: r for r in catalog}
    colour = np.array([by_id[i]["colour_hist"] for i in ids], dtype=np.float32)
    features = {
        "avg": np.asarray(embeddings[rows], np.float32),
        "rmac": np.asarray(rmac[rows], np.float32),
        "cells": np.asarray(cells[rows], np.float32),
        **second_pass(ws, ids, [by_id[i]["content_hash"] for i in ids], f"{name}-{seed}"),
    }
    return SetData(name, seed, folder, ws, ids, catalog, layout.xy, features, colour)


def second_pass(ws: Workspace, ids: list[str], hashes: list[str], key: str) -> dict:
    """Poolings the embed stage does not store, from a pass over the thumbnails made for
    this benchmark (cached by the ids): GeM, max, and avg / R-MAC of a grey input."""
    from postermap.embedders.efficientnet_lite import EfficientNetLite0
    from postermap.embedders.pooling import gem, max_pool, rmac
    from postermap.images import load_image

    digest = hashlib.sha256("".join(ids).encode()).hexdigest()[:12]
    path = CACHE / "cluster-features" / f"{key}-{digest}.npz"
    if path.exists():
        return dict(np.load(path))
    model = EfficientNetLite0()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("gem", "max", "grey_avg", "grey_rmac")}
    for start in range(0, len(hashes), 32):
        images = [load_image(ws.thumb_path(h)) for h in hashes[start : start + 32]]
        colour = np.stack([model.preprocess(im) for im in images])
        grey = np.stack([model.preprocess(im.convert("L").convert("RGB")) for im in images])
        _, maps, _ = model.feature_maps(colour)
        out["gem"].append(gem(maps))
        out["max"].append(max_pool(maps))
        grey_features, grey_maps, _ = model.feature_maps(grey)
        out["grey_avg"].append(grey_features)
        out["grey_rmac"].append(rmac(grey_maps))
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


# -- variants -------------------------------------------------------------------------------


def decolour(x: np.ndarray, colour: np.ndarray, k: int = 8) -> np.ndarray:
    """``x`` without the ``k`` directions best predicted (linearly) by the colour
    histograms: a colour-invariant feature from the same pass."""
    unit = normalise(x)
    centred = unit - unit.mean(axis=0)
    c = np.sqrt(np.maximum(colour, 0))
    c = c - c.mean(axis=0)
    coef, *_ = np.linalg.lstsq(c, centred, rcond=None)
    _, _, vt = np.linalg.svd(c @ coef, full_matrices=False)
    return centred - (centred @ vt[:k].T) @ vt[:k]


def probabilities(x: np.ndarray) -> np.ndarray:
    from postermap.embedders import get_embedder

    return np.sqrt(get_embedder("efficientnet-lite0").class_probabilities(x))


def graph_space(x: np.ndarray) -> np.ndarray:
    p = Projection.fit(x, None, GRAPH_DIMS, SEED, renormalise=False)
    return whiten(p.transform(x))


def pca30(x: np.ndarray) -> np.ndarray:
    return Projection.fit(x, None, EMBEDDING_DIMS, SEED, renormalise=False).transform(x)


def louvain(space: np.ndarray, cells: np.ndarray | None = None, used: int = 4) -> np.ndarray:
    """Louvain as the stage runs it; with ``cells``, on the whole-picture kNN graph
    averaged with the salient-cell graph of the first ``used`` cells."""
    extra = None if cells is None else cell_graph(cells, None, used, neighbours=20, seed=SEED)
    return find_clusters(
        space, "louvain", neighbours=20, density=0.06, extra_graph=extra, seed=SEED
    )


def cells_only(d: SetData) -> np.ndarray:
    """Louvain on the salient-cell graph alone."""
    from sknetwork.clustering import Louvain

    from postermap.clustering.find import prune_members

    graph = cell_graph(d.features["cells"], None, 4, neighbours=20, seed=SEED)
    n = graph.shape[0]
    louvain_ = Louvain(
        resolution=0.06 * n * n / max(graph.sum(), 1e-12),
        modularity="potts",
        random_state=SEED,
        return_probs=False,
        return_aggregate=False,
    )
    return prune_members(louvain_.fit_predict(graph), graph, 10, 0.3)


def hdbscan(space: np.ndarray) -> np.ndarray:
    return find_clusters(space, "hdbscan", min_samples=8, min_cluster_size=10, seed=SEED)


#: name -> (labels of a set, needs a second forward pass in production)
VARIANTS: dict[str, tuple[Callable[[SetData], np.ndarray], bool]] = {
    "hdbscan / layout (before)": (lambda d: hdbscan(d.xy), False),
    "hdbscan / PCA-30 avg": (lambda d: hdbscan(pca30(d.features["avg"])), False),
    "hdbscan / PCA-30 rmac": (lambda d: hdbscan(pca30(d.features["rmac"])), False),
    "louvain / layout": (lambda d: louvain(d.xy), False),
    "louvain / avg": (lambda d: louvain(graph_space(d.features["avg"])), False),
    "louvain / gem": (lambda d: louvain(graph_space(d.features["gem"])), False),
    "louvain / max": (lambda d: louvain(graph_space(d.features["max"])), False),
    "louvain / class probabilities": (
        lambda d: louvain(graph_space(probabilities(d.features["avg"]))),
        False,
    ),
    "louvain / avg - colour PCs": (
        lambda d: louvain(graph_space(decolour(d.features["avg"], d.colour))),
        False,
    ),
    "louvain / rmac - colour PCs": (
        lambda d: louvain(graph_space(decolour(d.features["rmac"], d.colour))),
        False,
    ),
    "louvain / grey avg": (lambda d: louvain(graph_space(d.features["grey_avg"])), True),
    "louvain / grey rmac": (lambda d: louvain(graph_space(d.features["grey_rmac"])), True),
    "louvain / rmac": (lambda d: louvain(graph_space(d.features["rmac"])), False),
    "louvain / salient cells": (cells_only, False),
    "louvain / rmac + 8 salient cells": (
        lambda d: louvain(graph_space(d.features["rmac"]), d.features["cells"], 8),
        False,
    ),
    "louvain / avg + 4 salient cells": (
        lambda d: louvain(graph_space(d.features["avg"]), d.features["cells"]),
        False,
    ),
    "louvain / rmac + 4 salient cells (default)": (
        lambda d: louvain(graph_space(d.features["rmac"]), d.features["cells"]),
        False,
    ),
}


# -- scoring --------------------------------------------------------------------------------


def score(d: SetData, labels: np.ndarray | None) -> dict:
    """Trope and category metrics of ``labels`` (None: the pipeline's own clusters)."""
    from tests.heldout.evaluate import evaluate, join
    from tests.heldout.labels import read_labels

    cluster = dict(zip(d.ids, labels.tolist(), strict=True)) if labels is not None else None
    rows = [dict(r) for r in d.rows]
    if cluster is not None:
        for r in rows:
            r["cluster"] = cluster.get(r["id"]) if r["status"] == "ok" else None
    if d.name == "emoji":
        return {"categories": {"ari": _category_ari(rows)}, **_counts(rows)}
    metrics = evaluate(join(read_labels(d.folder), rows))
    return {"tropes": metrics["tropes"], "categories": metrics["categories"], **_counts(rows)}


def _counts(rows: list[dict]) -> dict:
    on_map = [r["cluster"] for r in rows if r["status"] == "ok"]
    found = [c for c in on_map if c is not None and c >= 0]
    return {"clusters": len(set(found)), "noise": 1 - len(found) / max(len(on_map), 1)}


def _category_ari(rows: list[dict]) -> float:
    """ARI against the emoji category, noise as singletons (as tests/heldout/evaluate)."""
    from sklearn.metrics import adjusted_rand_score

    ok = [r for r in rows if r["status"] == "ok" and r.get("category")]
    labels = [
        r["cluster"] if r["cluster"] is not None and r["cluster"] >= 0 else -(k + 1)
        for k, r in enumerate(ok)
    ]
    return float(adjusted_rand_score([r["category"] for r in ok], labels))


def cell(metrics: dict) -> str:
    t = metrics.get("tropes") or {}
    if t.get("mean_recall") is not None:
        return f"{t['mean_recall']:.2f} / {t['mean_purity']:.2f}"
    return f"ARI {metrics['categories']['ari']:.2f}"


def names_of_tropes(d: SetData) -> dict[str, dict]:
    """Per planted trope: its motif's source file and the name of its best cluster."""
    from tests.tropes import heldout_trope_motifs

    info = {c["id"]: c for c in d.ws.read_clusters()}
    per = score(d, None)["tropes"]["per_trope"]
    motifs = {}
    if d.name in ("clipart-posters", "icon-posters"):
        motifs = heldout_trope_motifs(d.name, d.seed)
    out = {}
    for trope, m in per.items():
        c = info.get(m["cluster"]) if m["cluster"] is not None else None
        out[trope] = {
            "recall": m["recall"],
            "purity": m["purity"],
            "motif": Path(motifs[trope]).name if trope in motifs else "",
            "name": c["name"] if c else "",
            "named_from": c["provenance"] if c else "",
        }
    return out


def emoji_extras(d: SetData) -> dict:
    from tests.conftest import grid_neighbour_agreement

    grid = d.ws.read_grid()
    category = {r["id"]: r["category"] for r in d.rows}
    rows, cols = np.divmod(grid.cells, grid.cols)
    share = grid_neighbour_agreement(rows, cols, [category[i] for i in grid.ids.tolist()])
    names = [(c["size"], c["name"], c["provenance"]) for c in d.ws.read_clusters()[:15]]
    return {"grid_neighbour_category_share": share, "top_clusters": names}


# -- scale ------------------------------------------------------------------------------------


def cluster_scale(n: int, seed: int = 0) -> dict:
    """The cluster stage's work at ``n`` images on synthetic features, and the old default
    (HDBSCAN leaf on a 2-D t-SNE layout) at the same size."""
    from postermap.embedders import get_embedder

    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(48, 1280)).astype(np.float32) / np.sqrt(48)
    centres = rng.normal(size=(3000, 48)).astype(np.float32) * 3
    out: dict = {"n": n}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, dtype in (("avg", np.float32), ("rmac", np.float16)):
            arr = np.lib.format.open_memmap(
                Path(tmp) / f"{name}.npy", mode="w+", dtype=dtype, shape=(n, 1280)
            )
            for start in range(0, n, 32_768):
                m = min(32_768, n - start)
                latent = centres[rng.integers(0, 3000, m)] + rng.normal(size=(m, 48))
                arr[start : start + m] = np.maximum(latent @ basis, 0)
            arr.flush()
            del arr
            paths[name] = Path(tmp) / f"{name}.npy"
        # salient cells: 8 per image, each near one of 20,000 "motifs" or random
        motifs = rng.normal(size=(20_000, 112)).astype(np.float32)
        cells_arr = np.lib.format.open_memmap(
            Path(tmp) / "cells.npy", mode="w+", dtype=np.float16, shape=(n, 8, 112)
        )
        for start in range(0, n, 32_768):
            m = min(32_768, n - start)
            picked = motifs[rng.integers(0, len(motifs), (m, 8))]
            cells_arr[start : start + m] = picked + rng.normal(scale=0.5, size=(m, 8, 112))
        cells_arr.flush()
        del cells_arr
        avg = np.load(paths["avg"], mmap_mode="r")
        rmac = np.load(paths["rmac"], mmap_mode="r")
        cells = np.load(Path(tmp) / "cells.npy", mmap_mode="r")
        timings = {}
        start = time.perf_counter()
        projection = Projection.fit(rmac, None, GRAPH_DIMS, SEED, renormalise=False)
        space = whiten(projection.transform(rmac))
        timings["projection_s"] = time.perf_counter() - start
        start = time.perf_counter()
        extra = cell_graph(cells, None, 4, neighbours=20, seed=SEED)
        timings["cell_graph_s"] = time.perf_counter() - start
        start = time.perf_counter()
        labels = find_clusters(
            space, "louvain", neighbours=20, density=0.06, extra_graph=extra, seed=SEED
        )
        timings["knn_graph_and_louvain_s"] = time.perf_counter() - start
        colour = rng.dirichlet(np.ones(48), size=n).astype(np.float32)
        start = time.perf_counter()
        describe_clusters(labels, avg, colour, seed=SEED)
        timings["describe_s"] = time.perf_counter() - start
        model = get_embedder("efficientnet-lite0")
        start = time.perf_counter()
        distinctive_classes(labels, avg, model.class_probabilities)
        timings["names_s"] = time.perf_counter() - start
        out.update(timings)
        out["total_s"] = sum(timings.values())
        out["clusters"] = int(labels.max()) + 1
        out["noise"] = float((labels < 0).mean())
    # t-SNE of a million points takes hours: above 169k a t-SNE-looking layout of blobs
    xy = tsne_layout(n, seed) if n <= 169_000 else blob_layout(n, seed)
    start = time.perf_counter()
    old = find_clusters(xy, "hdbscan", min_samples=8, min_cluster_size=10)
    out["before_hdbscan_layout_s"] = time.perf_counter() - start
    out["before_clusters"] = int(old.max()) + 1
    return out


def index_bench(n: int, seed: int = 0) -> dict:
    """The "more like this" index: recall@10 of hnswlib on the PCA-128 projection against
    exact cosine search (2,000 queries), build and query throughput."""
    # CNN features have low intrinsic dimension: clusters in a 48-d subspace of 1280-d,
    # plus a little isotropic noise (pure 1280-d noise would make "nearest" meaningless)
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(48, 1280)).astype(np.float32) / np.sqrt(48)
    centres = rng.normal(size=(300, 48)).astype(np.float32) * 3
    latent = centres[rng.integers(0, 300, n)] + rng.normal(size=(n, 48)).astype(np.float32)
    x = latent @ basis + rng.normal(size=(n, 1280)).astype(np.float32) * 0.02
    unit = normalise(x)
    start = time.perf_counter()
    projection = Projection.fit(unit, None, 128, seed)  # PCA from a 50k sample
    vectors = projection.transform(unit)
    index = build_index(vectors, seed)
    build_s = time.perf_counter() - start
    queries = rng.choice(n, 2000, replace=False)
    start = time.perf_counter()
    labels, _ = nearest(index, vectors[queries], 11)
    query_s = time.perf_counter() - start
    start = time.perf_counter()
    exact = np.argsort(-(unit[queries] @ unit.T), axis=1)[:, :11]
    exact_s = time.perf_counter() - start
    recall = neighbour_recall(labels[:, 1:], exact[:, 1:])  # each row itself left out
    return {
        "n": n,
        "recall_at_10": float(recall),
        "build_s": build_s,
        "build_vectors_per_s": n / build_s,
        "query_per_s": len(queries) / query_s,
        "exact_query_per_s": len(queries) / exact_s,
        "speedup_vs_exact": exact_s / query_s,
    }


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", help="NAME-SEED, e.g. icon-posters-1 (default: all)")
    parser.add_argument("--index-n", type=int, default=169_000)
    parser.add_argument("--scale-n", type=int, default=169_000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    chosen = [s for s in ALL_SETS if not args.sets or f"{s[0]}-{s[1]}" in args.sets]
    results: dict = {"tuning_set": f"{TUNING[0]} seed {TUNING[1]}", "sets": {}}
    ablation: dict[str, dict[str, str]] = {v: {} for v in VARIANTS}
    for name, seed in chosen:
        key = f"{name}-{seed}"
        d = load(name, seed)
        default = score(d, None)
        entry = {"role": role(name, seed), "images_on_map": len(d.ids), "default": default}
        if name != "emoji":
            entry["tropes"] = names_of_tropes(d)
        else:
            entry.update(emoji_extras(d))
        variants = {}
        for variant, (labels_of, _) in VARIANTS.items():
            start = time.perf_counter()
            variants[variant] = score(d, labels_of(d))
            variants[variant]["seconds"] = time.perf_counter() - start
            ablation[variant][key] = cell(variants[variant])
        entry["variants"] = variants
        results["sets"][key] = entry
        print(f"{key} ({entry['role']}): {len(d.ids)} images on the map", flush=True)
    print_tables(results, ablation, chosen)
    if not args.skip_scale:
        results["scale"] = cluster_scale(args.scale_n)
        print(
            f"\ncluster stage at {args.scale_n:,} images (library calls): "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["scale"].items() if k.endswith("_s"))
            + f"; clusters {results['scale']['clusters']}, noise {results['scale']['noise']:.2f}",
            flush=True,
        )
        results["index"] = index_bench(args.index_n)
        print(
            "neighbour index: "
            + " ".join(
                f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in results["index"].items()
            )
        )
    results["ablation"] = ablation
    write_result("clusters.json", results)


def print_tables(results: dict, ablation: dict, chosen: list[tuple[str, int]]) -> None:
    keys = [f"{n}-{s}" for n, s in chosen]
    heads = [f"{k} ({results['sets'][k]['role']})" for k in keys]
    print("\nDefault (the pipeline's clusters): trope recall / purity, trope ARI, category ARI")
    print("| set | recall / purity | trope ARI | category ARI | clusters | noise |")
    print("|---|---|---|---|---|---|")
    for k, head in zip(keys, heads, strict=True):
        m = results["sets"][k]["default"]
        t = m.get("tropes") or {}
        rp = cell(m) if t.get("mean_recall") is not None else "-"
        ari = f"{t['ari']:.2f}" if t.get("ari") is not None else "-"
        cat = m["categories"]["ari"]
        cat_s = "-" if cat is None else f"{cat:.2f}"
        print(f"| {head} | {rp} | {ari} | {cat_s} | {m['clusters']} | {m['noise']:.2f} |")
    print("\nAblation (trope recall / purity; category ARI where a set has no tropes):")
    print("| variant | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(keys))
    for variant, cells in ablation.items():
        second = " (2nd pass)" if VARIANTS[variant][1] else ""
        print(f"| {variant}{second} | " + " | ".join(cells.get(k, "") for k in keys) + " |")
    for k in keys:
        entry = results["sets"][k]
        if "tropes" in entry:
            print(f"\n{k} ({entry['role']}): per trope recall/purity, motif, cluster name")
            for trope, v in entry["tropes"].items():
                motif = f" [{v['motif']}]" if v["motif"] else ""
                print(
                    f"  {trope}{motif}: {v['recall']:.2f}/{v['purity']:.2f}"
                    f" -> {v['name'] or '(noise)'}"
                )
        if "grid_neighbour_category_share" in entry:
            print(
                f"\n{k}: grid-neighbour category share {entry['grid_neighbour_category_share']:.3f}"
            )
            for size, name, provenance in entry["top_clusters"]:
                print(f"  {size:4d}  {name}  ({provenance})")


if __name__ == "__main__":
    main()
