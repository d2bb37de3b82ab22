"""Does ``--precision int8`` change the cluster figures by more than the pipeline's own seed?

    python -m benchmarks.precision [--seeds 42 7 8 9 10] [--sets NAME ...] [--commit REV]

One lower-precision variant of the features moves every later stage a little, and so does
another ``--seed`` (PCA, t-SNE, the grid, Louvain). A single run per precision cannot tell
the two apart, so this runs the whole pipeline on each held-out set (as
``benchmarks/judgement.py`` does, data seed 0) once per precision and pipeline seed, and
prints each cluster figure's mean and standard deviation over the seeds per precision. A
difference of means several fp32 standard deviations wide is the precision's doing.
The clean figures are compared run by run: they should not move at all.
Writes ``benchmarks/results/precision-seeds.json``; ``--reuse-workspaces`` scores the last
runs' workspaces again (each run then resumes with nothing left to do).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from benchmarks.common import CACHE, heldout_set, write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from judgement import DEFAULT_POSTERMAP, export_commit, run_pipeline  # noqa: E402

from tests.heldout import SETS, fetch_sources  # noqa: E402
from tests.heldout.evaluate import evaluate_run  # noqa: E402

PRECISIONS = ("fp32", "int8")
CLUSTER_FIGURES = ("trope recall", "trope purity", "trope ARI", "category ARI")


def figures(metrics: dict) -> dict[str, object]:
    """The cluster figures (None where a set has no labels for one) and the clean ones."""
    tropes = metrics["tropes"]
    return {
        "trope recall": tropes["mean_recall"],
        "trope purity": tropes["mean_purity"],
        "trope ARI": tropes["ari"] if tropes["per_trope"] else None,
        "category ARI": metrics["categories"]["ari"] if metrics["categories"]["images"] else None,
        "clean": {
            key: (metrics[key].get("precision"), metrics[key].get("recall"))
            for key in ("exact", "near", "boring")
        }
        | {"keepers removed": metrics["keep"]["removed"], "on map": metrics["on_map"]},
    }


def summary(runs: dict, names: list[str]) -> list[dict]:
    """Per set and cluster figure: mean and standard deviation over the seeds per precision."""
    rows = []
    for name in names:
        for figure in CLUSTER_FIGURES:
            values = {
                p: [seeds[s][name][figure] for s in seeds if seeds[s][name][figure] is not None]
                for p, seeds in runs.items()
            }
            if any(len(v) < 2 for v in values.values()):
                continue
            row = {"set": name, "figure": figure}
            for p, v in values.items():
                row[p] = {"mean": statistics.mean(v), "sd": statistics.stdev(v), "n": len(v)}
            spread = row["fp32"]["sd"]
            row["difference"] = row["int8"]["mean"] - row["fp32"]["mean"]
            row["in_fp32_sd"] = row["difference"] / spread if spread else None
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 8, 9, 10])
    parser.add_argument("--sets", nargs="*", default=[n for n in SETS if n != "cleanset"])
    parser.add_argument("--commit", help="run postermap from this commit, not the work tree")
    parser.add_argument(
        "--reuse-workspaces", action="store_true", help="resume the last runs' workspaces"
    )
    args = parser.parse_args()
    fetch_sources(args.sets)
    code = "work tree"
    if args.commit:
        code, root = export_commit(args.commit)
        os.environ["PYTHONPATH"] = str(root / "src")
    runs: dict[str, dict[int, dict]] = {p: {} for p in PRECISIONS}
    for precision in PRECISIONS:
        for seed in args.seeds:
            per_set = runs[precision].setdefault(seed, {})
            for name in args.sets:
                folder, _ = heldout_set(name, 0)
                ws = CACHE / "precision-runs" / f"{name}-{precision}-{seed}"
                extra = ["--precision", precision, "--seed", str(seed)]
                run_pipeline([DEFAULT_POSTERMAP], folder, ws, args.reuse_workspaces, extra)
                per_set[name] = figures(evaluate_run(folder, ws))
            print(f"{precision} seed {seed}: done", flush=True)
    rows = summary(runs, args.sets)
    print("| set | figure | fp32 mean ± sd | int8 mean ± sd | difference | in fp32 sd |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "-" if r["in_fp32_sd"] is None else f"{r['in_fp32_sd']:+.1f}"
        print(
            f"| {r['set']} | {r['figure']} | {r['fp32']['mean']:.3f} ± {r['fp32']['sd']:.3f} "
            f"| {r['int8']['mean']:.3f} ± {r['int8']['sd']:.3f} | {r['difference']:+.3f} "
            f"| {ratio} |"
        )
    clean_same = all(
        runs[p][s][n]["clean"] == runs["fp32"][args.seeds[0]][n]["clean"]
        for p in PRECISIONS
        for s in args.seeds
        for n in args.sets
    )
    print(f"clean figures identical in every run: {clean_same}")
    write_result(
        "precision-seeds.json",
        {
            "code": code,
            "command": "postermap run SET -o WS --cell-size 32 --precision P --seed S",
            "seeds": args.seeds,
            "clean_identical": clean_same,
            "summary": rows,
            "runs": {p: {str(s): v for s, v in seeds.items()} for p, seeds in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
