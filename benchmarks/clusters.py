"""Clustering quality and the neighbour index, measured.

    python -m benchmarks.clusters [--index-n 169000]

1. Emoji categories (the default set, ok images): adjusted Rand index of the clusters
   against the emoji category, for DBSCAN vs HDBSCAN, in the layout vs the embedding space.
2. Planted tropes (tests/tropes.py: six motifs pasted large into posters of every palette,
   six palettes with random motifs, random others): per trope, recall and purity of the
   best-matching cluster; and the rank the interestingness score gives trope clusters vs
   palette (colour-only) clusters.
3. The "more like this" index at N random clustered vectors (1280-d, like the model's):
   recall@10 of hnswlib on the PCA-128 projection against exact cosine search on the full
   vectors (a 2,000-query sample), and build/query throughput, with exact search's query
   throughput as the baseline in the same run.
Writes benchmarks/results/clusters.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner
from sklearn.metrics import adjusted_rand_score

from benchmarks.common import RESULTS, write_result
from postermap.cli import main as cli
from postermap.clustering import EMBEDDING_DIMS, describe_clusters, find_clusters
from postermap.datasets import fetch_emoji
from postermap.similarity import build_index, nearest
from postermap.vectors import Projection, normalise
from postermap.workspace import Workspace
from tests.tropes import group_of, make_trope_set

VARIANTS = [("dbscan", s, "leaf") for s in ("layout", "embedding")] + [
    ("hdbscan", s, sel) for s in ("layout", "embedding") for sel in ("leaf", "eom")
]

REPO = Path(__file__).resolve().parents[1]


def run_pipeline(source: Path, ws: Path) -> Workspace:
    result = CliRunner().invoke(
        cli,
        ["run", str(source), "-o", str(ws), "--until", "cluster", "--keep-near-duplicates"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return Workspace(ws)


def spaces(ws: Workspace) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    layout = ws.read_layout()
    ids, xy = layout.ids, layout.xy
    embeddings, rows = ws.embedding_rows(ids)
    features = np.asarray(embeddings[rows])
    from sklearn.decomposition import PCA

    embedding = PCA(n_components=EMBEDDING_DIMS, random_state=0).fit_transform(normalise(features))
    return ids.tolist(), {"layout": xy, "embedding": embedding}, features


def label_all(space: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    return {
        (m, s, sel): find_clusters(
            space[s], m, eps=1.0, min_samples=8, min_cluster_size=10, selection=sel
        )
        for m, s, sel in VARIANTS
    }


def emoji_ari(tmp: Path) -> dict:
    ws = Workspace(REPO / "work" / "emoji")
    if not (ws.root / "layout.npy").exists():
        ws = run_pipeline(fetch_emoji(REPO / "data" / "emoji"), tmp / "emoji")
    ids, space, _ = spaces(ws)
    category = {r["id"]: r["category"] for r in pq.read_table(ws.catalog_path).to_pylist()}
    truth = [category[i] for i in ids]
    out = {}
    for (method, where, sel), labels in label_all(space).items():
        name = f"{method}/{where}" + (f"/{sel}" if method == "hdbscan" else "")
        out[name] = {
            "ari": adjusted_rand_score(truth, labels),
            "clusters": int(labels.max()) + 1,
            "noise": float((labels < 0).mean()),
        }
    return out


def tropes(tmp: Path) -> dict:
    source = make_trope_set(fetch_emoji(REPO / "data" / "emoji"), tmp / "tropes")
    ws = run_pipeline(source, tmp / "tropes-ws")
    ids, space, features = spaces(ws)
    rows = {r["id"]: r for r in pq.read_table(ws.catalog_path).to_pylist()}
    groups = np.array([group_of(rows[i]["path"]) for i in ids])
    colour = np.array([rows[i]["colour_hist"] for i in ids], dtype=np.float32)
    out = {}
    for (method, where, sel), labels in label_all(space).items():
        per_group = {}
        for g in sorted(set(groups) - {"other"}):
            members = groups == g
            found = labels[members]
            found = found[found >= 0]
            if len(found) == 0:
                per_group[g] = {"recall": 0.0, "purity": 0.0, "cluster": -1}
                continue
            best = np.bincount(found).argmax()
            in_best = labels == best
            per_group[g] = {
                "recall": float((found == best).sum() / members.sum()),
                "purity": float((groups[in_best] == g).mean()),
                "cluster": int(best),
            }
        ranked = [c.id for c in describe_clusters(labels, features, colour)]
        rank_of = {c: r + 1 for r, c in enumerate(ranked)}
        trope_ranks = [
            rank_of.get(v["cluster"])
            for g, v in per_group.items()
            if g.startswith("trope") and v["cluster"] >= 0
        ]
        palette_ranks = [
            rank_of.get(v["cluster"])
            for g, v in per_group.items()
            if g.startswith("palette") and v["cluster"] >= 0
        ]
        out[f"{method}/{where}" + (f"/{sel}" if method == "hdbscan" else "")] = {
            "ari": adjusted_rand_score(groups, labels),
            "groups": per_group,
            "mean_trope_rank": float(np.mean(trope_ranks)) if trope_ranks else None,
            "mean_palette_rank": float(np.mean(palette_ranks)) if palette_ranks else None,
            "clusters": len(ranked),
        }
    return out


def index_bench(n: int, seed: int = 0) -> dict:
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
    build = time.perf_counter() - start
    queries = rng.choice(n, 2000, replace=False)
    start = time.perf_counter()
    labels, _ = nearest(index, vectors[queries], 11)
    query_s = time.perf_counter() - start
    start = time.perf_counter()
    exact = np.argsort(-(unit[queries] @ unit.T), axis=1)[:, :11]
    exact_s = time.perf_counter() - start
    recall = np.mean(
        [len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(labels, exact, strict=True)]
    )
    return {
        "n": n,
        "recall_at_10": float(recall),
        "build_s": build,
        "build_vectors_per_s": n / build,
        "query_per_s": len(queries) / query_s,
        "exact_query_per_s": len(queries) / exact_s,
        "speedup_vs_exact": exact_s / query_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-n", type=int, default=169_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["emoji"] = emoji_ari(Path(tmp))
        for variant, m in results["emoji"].items():
            print(
                f"emoji {variant} ari: {m['ari']:.3f} clusters: {m['clusters']} "
                f"noise: {m['noise']:.2f}",
                flush=True,
            )
        results["tropes"] = tropes(Path(tmp))
        for variant, m in results["tropes"].items():
            recall = np.mean([g["recall"] for k, g in m["groups"].items() if k.startswith("trope")])
            purity = np.mean([g["purity"] for k, g in m["groups"].items() if k.startswith("trope")])
            print(
                f"tropes {variant} ari: {m['ari']:.3f} trope_recall: {recall:.2f} "
                f"trope_purity: {purity:.2f} mean_trope_rank: {m['mean_trope_rank']} "
                f"mean_palette_rank: {m['mean_palette_rank']} clusters: {m['clusters']}",
                flush=True,
            )
    results["index"] = index_bench(args.index_n)
    print(
        " ".join(
            f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in results["index"].items()
        )
    )
    RESULTS.mkdir(exist_ok=True)
    write_result("clusters.json", results)


if __name__ == "__main__":
    main()
