"""How the embed stage spends its two cores: processes of one model thread each, against
one process running the model on two threads beside a decode worker.

    python -m benchmarks.embed_workers [--n 4000] [--images DIR] [--rounds 2]
                                       [--precisions fp32 int8]

A is the stage's own path (:func:`postermap.embedding.embed_shards` on a local runner of
2 processes, each decoding its thumbnails and running the model on one thread). B, the
baseline, is the layout the stage had before: the model in this process on 2 threads
(ONNX Runtime, spinning off) while one forked worker decodes the next batches. Both embed
the same thumbnails (default: the first ``--n`` of ``benchmarks.scale``'s 169k posters if
that cache exists, else the default set's PNGs) in batches of 8, alternating A and B;
prints images per second, the ratio A / B per round, and whether the features are
identical. Writes ``benchmarks/results/embed-workers.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE, write_result
from postermap.datasets import fetch_emoji
from postermap.embedders import get_embedder
from postermap.embedding import embed_shards, prepare
from postermap.runner import LocalRunner

MODEL = "efficientnet-lite0"
BATCH = 8
SCALE_THUMBS = CACHE / "scale-169000" / "ws" / "thumbs"

_PREPROCESS = []


def _decode(chunk: list[Path]) -> np.ndarray:
    return np.stack([prepare(p, _PREPROCESS[0])[0] for p in chunk])


def threads_and_decoder(paths: list[Path], precision: str) -> np.ndarray:
    """B: one 2-thread model here, one forked process decoding ahead (2 batches queued)."""
    embedder = get_embedder(MODEL, threads=2, precision=precision)
    _PREPROCESS[:] = [embedder.preprocess]
    chunks = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)]
    out = []
    with multiprocessing.get_context("fork").Pool(1) as pool:
        for batch in pool.imap(_decode, chunks, chunksize=1):
            out.append(embedder.embed_with_extras(batch)[0])
    return np.concatenate(out)


def processes(paths: list[Path], precision: str) -> np.ndarray:
    """A: the stage's path, 2 processes of one model thread each."""
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "00000-bench.npy"
        with LocalRunner(2) as runner:
            embed_shards([(paths, shard)], MODEL, precision, BATCH, runner)
        return np.load(shard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    args = parser.parse_args()
    if args.images:
        folder = args.images
    elif SCALE_THUMBS.exists():
        folder = SCALE_THUMBS
    else:
        folder = fetch_emoji(CACHE / "emoji")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    paths = paths[: args.n]
    print(f"{len(paths)} images from {folder}")
    results = {}
    for precision in args.precisions:
        rates: dict[str, list[float]] = {"processes": [], "threads_and_decoder": []}
        identical = True
        for _ in range(args.rounds):
            features = {}
            for name, fn in (
                ("processes", processes),
                ("threads_and_decoder", threads_and_decoder),
            ):
                start = time.perf_counter()
                features[name] = fn(paths, precision)
                rates[name].append(len(paths) / (time.perf_counter() - start))
            identical &= bool(
                np.array_equal(features["processes"], features["threads_and_decoder"])
            )
        pairs = zip(rates["processes"], rates["threads_and_decoder"], strict=True)
        ratios = [a / b for a, b in pairs]
        rounds = ", ".join(f"{r:.2f}" for r in ratios)
        results[precision] = {"images_per_s": rates, "ratio": ratios, "identical": identical}
        print(
            f"{precision}: processes {statistics.median(rates['processes']):.0f} images/s, "
            f"threads + decoder {statistics.median(rates['threads_and_decoder']):.0f} images/s, "
            f"ratio {statistics.median(ratios):.2f} (rounds {rounds}), "
            f"features identical: {identical}"
        )
    write_result(
        "embed-workers.json",
        {"images": len(paths), "folder": str(folder), "batch": BATCH, "results": results},
    )


if __name__ == "__main__":
    main()
