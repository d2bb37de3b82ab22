"""The whole pipeline at scale: a synthetic poster collection, every stage timed.

    python benchmarks/scale.py --n 169000      # the founding run's size
    python benchmarks/scale.py --n 20000       # a quicker look

Generates N poster-sized JPEGs (300x450: gradient, shapes, noise, a title band; cached in
benchmarks/.cache/scale-N/images, made in parallel), then runs each stage as its own
`postermap` process and records wall time, images/s and the process's peak RSS (from
wait4). Near duplicates are kept on the map (the synthetic posters share themes), so the
later stages see all N images. Prints a table and writes benchmarks/results/scale-N.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from common import CACHE, RESULTS
from PIL import Image, ImageDraw

STAGES = ["embed", "clean", "reduce", "grid", "cluster", "neighbours", "tiles"]


def make_poster(args: tuple[Path, int]) -> None:
    path, seed = args
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    theme = seed % 97  # recurring palettes and motifs, so there is something to cluster
    trng = np.random.default_rng(theme)
    top, bottom = trng.integers(0, 256, 3), trng.integers(0, 256, 3)
    t = np.linspace(0, 1, 450, dtype=np.float32)[:, None, None]
    field = top * (1 - t) + bottom * t + rng.normal(0, 8, (450, 300, 3))
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(trng.integers(1, 5))):
        x, y = rng.integers(0, 240), rng.integers(0, 360)
        size = int(trng.integers(30, 140))
        colour = tuple(int(v) for v in trng.integers(0, 256, 3))
        shape = draw.ellipse if trng.random() < 0.5 else draw.rectangle
        shape((int(x), int(y), int(x) + size, int(y) + size), fill=colour)
    draw.rectangle((0, 400, 300, 450), fill=(20, 20, 20))
    draw.text((10, 415), f"POSTER {seed}", fill=(230, 230, 230))
    tmp = path.with_name(f".tmp-{path.name}")
    image.save(tmp, quality=85)
    tmp.replace(path)


def generate(n: int, root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    jobs = [(images / f"{i // 1000:03d}" / f"p{i:07d}.jpg", i) for i in range(n)]
    for folder in {p.parent for p, _ in jobs}:
        folder.mkdir(exist_ok=True)
    start = time.perf_counter()
    with Pool(os.cpu_count()) as pool:
        pool.map(make_poster, jobs, chunksize=256)
    print(f"generate: {n} images in {time.perf_counter() - start:.1f} s", flush=True)
    return images


def run_stage(args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one postermap process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "postermap", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=169_000)
    args = parser.parse_args()
    root = CACHE / f"scale-{args.n}"
    images = generate(args.n, root)
    ws = root / "ws"
    rows = []
    for stage in ["ingest", *STAGES]:
        command = (["ingest", str(images), "-o", str(ws)] if stage == "ingest"
                   else [stage, str(ws)])
        if stage == "clean":
            # the synthetic posters share themes, so most are near duplicates by design;
            # keep them on the map so every later stage handles all N images
            command.append("--keep-near-duplicates")
        seconds, rss, code = run_stage(command)
        rows.append({"stage": stage, "seconds": seconds, "images_per_s": args.n / seconds,
                     "peak_rss_mb": rss, "exit": code})
        print(f"stage: {stage} seconds: {seconds:.1f} images_per_s: {args.n / seconds:.0f} "
              f"peak_rss_mb: {rss:.0f} exit: {code}", flush=True)
        if code != 0:
            break
    total = sum(r["seconds"] for r in rows)
    print(f"total: {total:.1f} s for {args.n} images")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scale-{args.n}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
