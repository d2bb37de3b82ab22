"""Clean and cluster judgement on the tuning sets and on held-out sets, side by side.

    python benchmarks/judgement.py [--sets NAME ...] [--seed 0] [--rebuild]
                                   [--commit REV] [--postermap CMD] [--reuse-workspaces]
                                   [--run-args ARGS] [--out FILE]

Thresholds tuned on one set flatter that set. tests/heldout/ builds labelled sets from
other sources with other recipes (see its docstring); this script builds each set once
(cached in benchmarks/.cache/heldout/<name>-<seed>), runs the whole pipeline on it as a
user would (``postermap run SET -o WS --cell-size 32``, a subprocess, a fresh workspace
unless --reuse-workspaces), scores the catalog with tests/heldout/evaluate.py, and prints
one table: tuning sets first, then the held-out ones, and where the errors are. Writes
benchmarks/results/judgement.json (judgement-seedN.json for another seed): every metric,
with breakdowns by kind.

``--commit REV`` runs postermap from that commit's ``src/`` (exported with git archive into
benchmarks/.cache/heldout-src/) instead of the work tree, so a baseline can be measured
while the tree is being changed, and an old commit can be compared with a new one on the
very same sets. ``--postermap`` names another command to run. ``--run-args`` adds options
to every ``postermap run`` (e.g. ``"--precision int8 --seed 7"``: the pipeline's seed, not
the sets'), and ``--out`` names the results file, so variants can be compared run by run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from common import CACHE, RESULTS, heldout_set

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.heldout import SETS, TUNING, fetch_sources  # noqa: E402
from tests.heldout.evaluate import evaluate_run  # noqa: E402

DEFAULT_POSTERMAP = str(REPO / ".venv" / "bin" / "postermap")


def run_pipeline(
    command: list[str], folder: Path, ws: Path, reuse: bool, extra: list[str]
) -> float:
    if not reuse:
        shutil.rmtree(ws, ignore_errors=True)
    ws.parent.mkdir(parents=True, exist_ok=True)
    log = ws.parent / f"{ws.name}.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(
            [*command, "run", str(folder), "-o", str(ws), "--cell-size", "32", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"postermap run failed on {folder.name} (log {log}):\n" + "\n".join(tail)
        )
    return seconds


def _pr(m: dict) -> str:
    p, r = m.get("precision"), m.get("recall")
    return f"{_f(p)} / {_f(r)}"


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def table(results: dict) -> str:
    header = (
        "| set | images | exact P / R | near-dup P / R | keep wrongly removed | boring P / R "
        "| trope recall / purity | trope ARI | category ARI | build s | run s |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'].splitlines()[0]} |")
            continue
        m = r["metrics"]
        keep = m["keep"]
        share = "-" if keep["share"] is None else f"{100 * keep['share']:.1f}% ({keep['removed']})"
        t = m["tropes"]
        label = f"{name} (tuning)" if name in TUNING else name
        build_s = "cached" if r["build_s"] is None else f"{r['build_s']:.0f}"
        lines.append(
            f"| {label} | {m['images']} | {_pr(m['exact'])} | {_pr(m['near'])} | {share} "
            f"| {_pr(m['boring'])} | {_f(t['mean_recall'])} / {_f(t['mean_purity'])} "
            f"| {_f(t['ari'])} | {_f(m['categories']['ari'])} | {build_s} | {r['run_s']:.0f} |"
        )
    return "\n".join(lines)


def _shares(counts: dict[str, list[int]], missed: bool) -> str:
    """'kind a/b' for every kind with a miss (missed=True: a = found) or a hit."""
    parts = [f"{kind} {a}/{b}" for kind, (a, b) in counts.items() if (a < b if missed else a > 0)]
    return ", ".join(parts) or "none"


def breakdown(results: dict) -> str:
    """Where the errors are, per set: the lines a reader needs to see why a number is low."""
    lines = []
    for name, r in results.items():
        if "error" in r:
            continue
        m = r["metrics"]
        fp = m["near"]["false_positives_by_kind"]
        lines += [
            f"{name}:",
            f"  keep removed (kind removed/total): {_shares(m['keep']['removed_by_kind'], False)}"
            f"; as {m['keep']['removed_as'] or 'none'}",
            "  near duplicates with misses (kind recognised/planted): "
            + _shares(m["near"]["recognised_by_kind"], True),
            "  exact copies with misses (kind recognised/planted): "
            + _shares(m["exact"]["recognised_by_kind"], True)
            + f" (recognised as exact or near: {_f(m['exact'].get('recognised'))})",
            f"  near-duplicate false positives by kind: {fp or 'none'}",
            "  boring with misses (kind found/planted): "
            + _shares(m["boring"]["found_by_kind"], True)
            + f"; false alarms {m['boring']['false_alarms_by_kind'] or 'none'}",
        ]
        per = m["tropes"]["per_trope"]
        if per:
            cells = [f"{t} {v['recall']:.2f}/{v['purity']:.2f}" for t, v in per.items()]
            lines.append("  tropes recall/purity: " + ", ".join(cells))
    return "\n".join(lines)


def export_commit(rev: str) -> tuple[str, Path]:
    """(short hash, folder holding that commit's src/), exported once."""
    short = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    root = CACHE / "heldout-src" / short
    if not (root / "src" / "postermap").exists():
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", short, "src"],
            capture_output=True,
            check=True,
        ).stdout
        tmp = root.with_name(f".tmp-{short}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return short, root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), help=", ".join(SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="ignore cached sets")
    parser.add_argument("--commit", help="run postermap from this commit, not the work tree")
    parser.add_argument("--postermap", default=DEFAULT_POSTERMAP, help="command to run")
    parser.add_argument("--reuse-workspaces", action="store_true")
    parser.add_argument("--run-args", default="", help="options added to every postermap run")
    parser.add_argument("--out", help="results file name in benchmarks/results/")
    args = parser.parse_args()
    extra = shlex.split(args.run_args)
    names = sorted(args.sets, key=lambda n: (n not in TUNING, list(SETS).index(n)))
    fetch_sources(names)
    command = shlex.split(args.postermap)
    if args.commit:
        code, root = export_commit(args.commit)
        os.environ["PYTHONPATH"] = str(root / "src")  # ahead of the editable install
    else:
        code = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        code = f"work tree at {code}"
    results: dict[str, dict] = {}
    for name in names:
        folder, build_s = heldout_set(name, args.seed, args.rebuild)
        ws = CACHE / "heldout-runs" / f"{name}-{args.seed}"
        try:
            run_s = run_pipeline(command, folder, ws, args.reuse_workspaces, extra)
        except RuntimeError as err:
            print(err, file=sys.stderr)
            results[name] = {"error": str(err), "build_s": build_s}
            continue
        metrics = evaluate_run(folder, ws)
        results[name] = {
            "tuning": name in TUNING,
            "build_s": build_s,
            "run_s": run_s,
            "metrics": metrics,
        }
        print(f"{name}: {metrics['images']} images, built in "
              f"{'cache' if build_s is None else f'{build_s:.0f} s'}, run {run_s:.0f} s",
              flush=True)  # fmt: skip
    print()
    print(table(results))
    print(
        "(tuning) marks the clean stage's tuning sets. The cluster settings were tuned on "
        "clipart-posters seed 0 only: every other set's trope and category figures are "
        "held out (clipart-posters seed 1: the same recipe, a new seed)."
    )
    print()
    print(breakdown(results))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or ("judgement.json" if args.seed == 0 else f"judgement-seed{args.seed}.json")
    (RESULTS / out).write_text(
        json.dumps(
            {
                "seed": args.seed,
                "code": code,
                "postermap": "default" if args.postermap == DEFAULT_POSTERMAP else args.postermap,
                "command": " ".join(["postermap run SET -o WORKSPACE --cell-size 32", *extra]),
                "sets": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
