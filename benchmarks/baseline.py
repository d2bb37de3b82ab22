"""The whole pipeline against the loop a user would write to embed the same posters.

    python -m benchmarks.baseline --n 6000

Issue 18's first measure: on N generated 300x450 posters (benchmarks/scale.py's, cached),
time (1) a plain PyTorch loop over the files that only embeds them with the same
EfficientNet-Lite0 weights: open, convert to RGB, resize to 224 px, normalise, one image
per forward pass in eager mode on the default 2 threads, keep the pooled features; and
(2) ``postermap run`` on the same folder (ingest .. tiles, a fresh workspace, default
settings, one process as a user runs it). Both in this script, one after the other,
twice in alternating order (the machine is shared: the ratio per round is what to
compare). Prints the ratio run / loop and writes benchmarks/results/baseline.json.
Needs the ``torch`` extra.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import CACHE, write_result
from benchmarks.scale import generate
from postermap.embedders.base import normalise_batch
from postermap.embedders.efficientnet_lite import EfficientNetLite0

SIDE = 224


def naive_loop(paths: list[Path]) -> float:
    """Seconds to embed ``paths`` one image at a time in PyTorch eager."""
    embedder = EfficientNetLite0(backend="torch", threads=2)
    features = np.zeros((len(paths), embedder.dim), np.float32)
    start = time.perf_counter()
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR))
        features[i] = embedder.embed_torch(normalise_batch(pixels[None]))[0]
    seconds = time.perf_counter() - start
    if not np.isfinite(features).all() or not features.any():
        raise SystemExit("the loop produced no features")
    return seconds


def whole_run(images: Path, ws: Path) -> float:
    """Seconds of ``postermap run`` on ``images`` into a fresh ``ws``."""
    shutil.rmtree(ws, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "postermap", "run", str(images), "-o", str(ws)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"postermap run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = CACHE / f"scale-{args.n}"
    images = generate(args.n, root)
    paths = sorted(images.rglob("*.jpg"))
    rounds = []
    for round_ in range(args.rounds):
        order = ("loop", "run") if round_ % 2 == 0 else ("run", "loop")
        took = {}
        for what in order:
            took[what] = naive_loop(paths) if what == "loop" else whole_run(images, root / "ws")
            print(f"round {round_}: {what} {took[what]:.1f} s", flush=True)
        took["ratio"] = took["run"] / took["loop"]
        print(f"round {round_}: run / loop = {took['ratio']:.3f}", flush=True)
        rounds.append(took)
    ratios = [r["ratio"] for r in rounds]
    print(f"run / loop: {np.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    write_result(
        "baseline.json",
        {"n": len(paths), "rounds": rounds, "ratio_median": float(np.median(ratios))},
    )


if __name__ == "__main__":
    main()
