"""The whole pipeline at scale: a synthetic poster collection, every stage timed.

    python -m benchmarks.scale --n 169000      # the founding run's size
    python -m benchmarks.scale --n 20000       # a quicker look
    python -m benchmarks.scale --n 1000000 --features-only   # post-embed stages at 1M
    python -m benchmarks.scale --n 169000 --again clean,reduce --profile   # profiles
    python -m benchmarks.scale --n 169000 --sample   # timed, every process sampled

Generates N poster-sized JPEGs (300x450: gradient, shapes, noise, a title band; cached in
benchmarks/.cache/scale-N/images, made in parallel), then runs each stage as its own
`postermap` process and records wall time, images/s and the process's peak RSS (from
wait4, through :mod:`benchmarks.peak` so the benchmark's own memory is not counted).
Near duplicates are kept on the map (the synthetic posters share themes), so the later
stages see all N images. After the tiles, benchmarks/viewer.py measures the map in
Chromium (first tile, pan, zoom, search). Every run starts from an empty workspace.
Prints a table and writes benchmarks/results/scale-N.json.

``--features-only`` skips generation, ingest and embedding: it ingests 2,000 real generated
posters once, then builds a workspace of N images whose ingest rows and thumbnails are
those posters' (hard links, fresh ids, titles and perceptual hashes) and whose features
are random clustered vectors (a Gaussian mixture in the model's 1,280 dimensions), and
runs the remaining stages on it. Above 300k images the mosaic cell is 32 px (the raw
mosaic the tile stage streams from would otherwise need 3 bytes x 128^2 per image of
temporary disk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from benchmarks.common import CACHE, RESULTS, write_result
from benchmarks.viewer import measure_viewer
from postermap.workspace import Workspace

STAGES = ["embed", "clean", "reduce", "grid", "cluster", "neighbours", "tiles"]
POST_EMBED = STAGES[1:]
FEATURE_DIM = 1280


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


def features_workspace(n: int, root: Path, seed: int = 0) -> Path:
    """A workspace of ``n`` images as if ingest and embed had run (see module docstring)."""
    base_ws = root / "base-ws"
    if not (base_ws / "stages" / "ingest.json").exists():
        images = generate(2000, root / "base")
        _, _, code = run_stage(["ingest", str(images), "-o", str(base_ws)])
        if code != 0:
            raise SystemExit("ingest of the base posters failed")
    base = Workspace(base_ws).read_table("ingest")
    base = base.filter(pa.compute.equal(base["status"], "ok"))
    ws = Workspace(root / "ws").create()
    rng = np.random.default_rng(seed)
    take = np.arange(n) % base.num_rows
    table = base.take(pa.array(take))
    ids = [f"{i:032x}" for i in range(n)]
    phash = [f"{v:016x}" for v in rng.integers(0, 2**63, n, dtype=np.int64)]
    replace = {
        "id": ids,
        "content_hash": ids,
        "pixel_hash": ids,
        "phash": phash,
        "path": [f"synthetic/{i:07d}.jpg" for i in range(n)],
        "title": [f"Poster {i} {'ABCDEFGHIJ'[i % 10]}" for i in range(n)],
    }
    for name, values in replace.items():
        table = table.set_column(
            table.column_names.index(name), name, pa.array(values, pa.string())
        )
    ws.write_table("ingest", table)
    base_hashes = base["content_hash"].to_pylist()
    for i, image_id in enumerate(ids):
        target = ws.thumb_path(image_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(Workspace(base_ws).thumb_path(base_hashes[take[i]]), target)
    ws.embed_dir.mkdir(parents=True, exist_ok=True)
    features = np.lib.format.open_memmap(
        ws.embeddings_path, mode="w+", dtype=np.float32, shape=(n, FEATURE_DIM)
    )
    centres = np.maximum(rng.normal(0.3, 1.0, size=(200, FEATURE_DIM)), 0)
    weights = rng.dirichlet(np.full(200, 0.7))
    for start in range(0, n, 50_000):
        size = min(50_000, n - start)
        labels = rng.choice(200, size=size, p=weights)
        noise = rng.normal(0, 0.6, size=(size, FEATURE_DIM))
        features[start : start + size] = np.maximum(centres[labels] + noise, 0)
    features.flush()
    del features
    np.save(ws.embedding_ids_path, np.array(ids))
    for stage in ("ingest", "embed"):
        ws.write_marker(
            stage,
            {
                "fingerprint": f"synthetic-{n}-{seed}",
                "counts": {"ok": n},
                "items": n,
                "seconds": 0,
                "params": {},
            },
        )
    return ws.root


def run_stage(
    args: list[str], profile: Path | None = None, samples: Path | None = None
) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one postermap process: under cProfile, its
    statistics written to ``profile``, when given; sampled by py-spy with every worker
    process it starts, the stacks written to ``samples``, when given."""
    start = time.perf_counter()
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        peak_file = Path(fh.name)
    # through benchmarks.peak: started from this process, a stage's peak RSS would never
    # read below this process's own (the features it generated)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.peak", str(peak_file)]
        + [sys.executable, *prefix, "-m", "postermap", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    spy = None
    if samples:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                f"--pid={proc.pid}",
                "--subprocesses",
                "--nonblocking",  # never pauses the stage: ~1% of a core at this rate
                f"--rate={SAMPLE_RATE}",
                "--format=raw",
                f"--output={samples}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    _, status, _ = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if spy:
        spy.wait()  # it stops when the stage has ended, and writes its file then
    if status != 0:
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    text = peak_file.read_text()
    peak_file.unlink()
    if not text:  # the launcher itself was killed: no figure, and say so
        return seconds, float("nan"), os.waitstatus_to_exitcode(status)
    measured = json.loads(text)
    return seconds, measured["peak_kb"] / 1024, measured["exit"]


def top_lines(profile: Path, count: int = 12) -> list[str]:
    """The package's and libraries' functions with the most cumulative time in a cProfile
    file, one line each: ``cumulative s  own s  calls  file:line(function)``."""
    import pstats

    stats = pstats.Stats(str(profile)).stats
    rows = sorted(stats.items(), key=lambda kv: kv[1][3], reverse=True)
    lines = []
    for (file, line, function), (_, calls, own, cumulative, _) in rows:
        if "site-packages/" not in file and "/src/" not in file or function == "<module>":
            continue  # the interpreter's own frames (runpy, futures, locks) say little
        if file.endswith(("click/core.py", "postermap/cli.py", "postermap/pipeline.py")):
            continue  # the command line's frames around every stage
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        lines.append(f"{cumulative:8.1f} {own:8.1f} {calls:>9} {short}:{line}({function})")
        if len(lines) == count:
            break
    return lines


SAMPLE_RATE = 25  # samples per second and process
NOT_WORK = ("runpy", "click/", "postermap/cli.py", "postermap/pipeline.py", "multiprocessing/")
NOT_WORK += ("concurrent/", "threading.py", "<module>", "<frozen importlib")


def sampled_lines(samples: Path, count: int = 12) -> list[str]:
    """The functions on most of a py-spy raw file's samples (every process of the stage,
    active threads only), one line each: ``% of samples with it on the stack  % with it
    on top  function (file)``; the command line's and the process pools' frames left out."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = [
            re.sub(r":\d+\)$", ")", frame)  # a function, not each of its lines
            for frame in stack.split(";")
            if not frame.startswith(("process ", "thread "))
        ]
        total += int(number)
        for frame in set(frames):
            inclusive[frame] += int(number)
        if frames:
            own[frames[-1]] += int(number)
    rows = [(n, f) for f, n in inclusive.items() if not any(s in f for s in NOT_WORK)]
    return [
        f"{100 * n / total:5.1f}% {100 * own[f] / total:5.1f}% {f}"
        for n, f in sorted(rows, reverse=True)[:count]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=169_000)
    parser.add_argument(
        "--features-only",
        action="store_true",
        help="start from random clustered features (post-embed stages)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each stage under cProfile and keep its top lines (the main process's: "
        "work in decode or render workers shows as waiting on them)",
    )
    parser.add_argument(
        "--again",
        metavar="STAGES",
        help="comma-separated stages to run again (--force) on the workspace an earlier "
        "run left, without generating or wiping anything; the result goes to "
        "scale-N-again.json (with --profile: each stage's profile at full scale)",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample every process of each stage with py-spy while it is timed, and "
        "keep the functions on most samples",
    )
    args = parser.parse_args()
    if args.again:
        root = CACHE / (f"features-{args.n}" if args.features_only else f"scale-{args.n}")
        ws = root / "ws"
        if not (ws / "stages").is_dir():
            raise SystemExit(f"no workspace at {ws}: run without --again first")
        stages = args.again.split(",")
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise SystemExit(f"--again: not a stage after ingest: {', '.join(sorted(unknown))}")
    elif args.features_only:
        root = CACHE / f"features-{args.n}"
        shutil.rmtree(root / "ws", ignore_errors=True)
        ws = features_workspace(args.n, root)
        stages = POST_EMBED
    else:
        root = CACHE / f"scale-{args.n}"
        images = generate(args.n, root)
        ws = root / "ws"
        shutil.rmtree(ws, ignore_errors=True)  # every stage really runs
        stages = ["ingest", *STAGES]
    rows = []
    for stage in stages:
        command = ["ingest", str(images), "-o", str(ws)] if stage == "ingest" else [stage, str(ws)]
        if stage == "tiles" and args.n > 300_000:
            command += ["--cell-size", "32"]
        if stage == "clean":
            # the synthetic posters share themes, so most are near duplicates by design;
            # keep them on the map so every later stage handles all N images
            command.append("--keep-near-duplicates")
        if args.again:
            command.append("--force")
            if stage == "tiles":
                # the site a run left would let tiles draw only the cells that changed:
                # time the whole render, as a first run does it
                shutil.rmtree(Workspace(ws).site_dir, ignore_errors=True)
        profile = root / "profiles" / f"{stage}.prof" if args.profile else None
        if profile:
            profile.parent.mkdir(parents=True, exist_ok=True)
        samples = root / "samples" / f"{stage}.txt" if args.sample else None
        if samples:
            samples.parent.mkdir(parents=True, exist_ok=True)
        seconds, rss, code = run_stage(command, profile, samples)
        rows.append(
            {
                "stage": stage,
                "seconds": seconds,
                "images_per_s": args.n / seconds,
                "peak_rss_mb": rss,
                "exit": code,
            }
        )
        if profile and profile.exists():
            rows[-1]["profile"] = top_lines(profile)
            print("\n".join(rows[-1]["profile"]), flush=True)
        if samples and samples.exists():
            rows[-1]["samples"] = sampled_lines(samples)
            print("\n".join(rows[-1]["samples"]), flush=True)
        print(
            f"stage: {stage} seconds: {seconds:.1f} images_per_s: {args.n / seconds:.0f} "
            f"peak_rss_mb: {rss:.0f} exit: {code}",
            flush=True,
        )
        if code != 0:
            break
    total = sum(r["seconds"] for r in rows)
    print(f"total: {total:.1f} s for {args.n} images")
    result = {
        "n": args.n,
        "features_only": args.features_only,
        "stages": rows,
        "total_seconds": total,
    }
    if rows[-1]["stage"] == "tiles" and rows[-1]["exit"] == 0 and not args.again:
        result["viewer"] = measure_viewer(ws / "site")
        print("viewer:", json.dumps(result["viewer"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    name = f"scale-{args.n}{'-features' if args.features_only else ''}"
    name += "-again.json" if args.again else ".json"
    write_result(name, result)


if __name__ == "__main__":
    main()
