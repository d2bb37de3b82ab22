"""The default model's torch-free ONNX graph against PyTorch and the old PyTorch export.

``python -m benchmarks.embedder [--n 256]`` (needs the ``torch`` extra). For each set, the
three outputs of the graph built from the weights without torch
(:mod:`postermap.embedders.efficientnet_graph`) are compared with PyTorch eager's on the
same batches: the largest absolute difference per output, the largest difference of the
features relative to their largest value, and the lowest cosine between an image's two
feature vectors. The same is done against the graph PyTorch's dynamo exporter made
(what workspaces embedded before the graph was built without torch), which says whether
their stored features are still what the model gives.

Sets: the default set (emoji, what the tests use; a sample of ``--n``) and, held out,
scikit-image's photographs, OpenMoji's SVGs (a sample of ``--n``) and, where the Debian
package is installed, GNOME's wallpapers. Speed: images per second
of the model alone (decoding excluded) on the default-set sample, graph, dynamo export
and PyTorch eager, each in this process on 2 threads; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from postermap.embedders.base import normalise_batch
from postermap.embedders.efficientnet_lite import EXPORT_TOLERANCE, EfficientNetLite0
from postermap.images import load_image

log = logging.getLogger(__name__)
BATCH = 32
THREADS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per sampled set")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    model = EfficientNetLite0(backend="onnx", threads=THREADS)
    dynamo = dynamo_session(model)
    sets = image_sets(args.n)
    rows = []
    for name, paths in sets.items():
        batch = np.stack([model.preprocess(load_image(p)) for p in paths])
        x = normalise_batch(batch)
        graph = run_batches(lambda b: model._session.run(None, {"x": b}), x)
        torch = run_batches(model.maps_torch, x)
        old = run_batches(lambda b: dynamo.run(None, {"x": b}), x)
        row = {"set": name, "images": len(paths)}
        row |= {f"vs_torch_{k}": v for k, v in differences(graph, torch).items()}
        row |= {f"vs_dynamo_{k}": v for k, v in differences(graph, old).items()}
        row |= {f"dynamo_vs_torch_{k}": v for k, v in differences(old, torch).items()}
        rows.append(row)
        for key, value in row.items():
            print(f"{name}.{key}: {value}")

    x = normalise_batch(
        np.stack([model.preprocess(load_image(p)) for p in sets["emoji (default set)"]])
    )
    speed = {
        "graph": images_per_second(lambda b: model._session.run(None, {"x": b}), x),
        "dynamo_export": images_per_second(lambda b: dynamo.run(None, {"x": b}), x),
        "torch_eager": images_per_second(model.maps_torch, x),
    }
    for key, value in speed.items():
        print(f"speed.{key}_images_per_s: {value:.1f}")
    print(f"speed.graph_over_dynamo_export: {speed['graph'] / speed['dynamo_export']:.2f}")
    print(f"speed.graph_over_torch_eager: {speed['graph'] / speed['torch_eager']:.2f}")
    worst = max(r["vs_torch_max_abs"] for r in rows)
    print(f"worst_vs_torch_max_abs: {worst:.2e} (tolerance {EXPORT_TOLERANCE})")
    path = write_result(
        "embedder.json",
        {"tolerance": EXPORT_TOLERANCE, "threads": THREADS, "sets": rows, "speed": speed},
    )
    print(f"written: {path}")


def image_sets(n: int) -> dict[str, list[Path]]:
    """Set name -> image paths (an evenly spaced sample of ``n`` where larger)."""
    from postermap.datasets import fetch_emoji
    from tests.conftest import EMOJI_DIR
    from tests.heldout import sources

    emoji = sorted(fetch_emoji(EMOJI_DIR).glob("*.png"))
    found = sources.fetch(["skimage-photos", "openmoji"])
    photos = sorted(p for p in found["skimage-photos"].rglob("*") if p.suffix in {".png", ".jpg"})
    openmoji = sorted(found["openmoji"].rglob("*.svg"))
    sets = {
        "emoji (default set)": sample(emoji, n),
        "skimage photos (held out)": photos,
        "openmoji (held out)": sample(openmoji, n),
    }
    if sources.is_available("gnome-backgrounds"):  # Debian's wallpapers: photographs
        walls = sources.fetch(["gnome-backgrounds"])["gnome-backgrounds"]
        found = sorted(p for p in walls.rglob("*") if p.suffix in {".webp", ".jpg", ".png"})
        sets["gnome-backgrounds (held out)"] = sample(found, n)
    return sets


def sample(paths: list[Path], n: int) -> list[Path]:
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def run_batches(run, x: np.ndarray) -> list[np.ndarray]:
    """The outputs of ``run`` over ``x`` in batches of ``BATCH``, concatenated."""
    parts = [run(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    return [np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(len(parts[0]))]


def differences(got: list[np.ndarray], expected: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for name, a, b in zip(("features", "maps", "mid"), got, expected, strict=True):
        out[f"{name}_max_abs"] = float(np.abs(a - b).max())
    out["max_abs"] = max(out.values())
    f, r = got[0], expected[0]
    out["features_max_rel"] = float(np.abs(f - r).max() / np.abs(r).max())
    cos = (f * r).sum(axis=1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(r, axis=1))
    out["features_min_cosine"] = float(cos.min())
    return out


def images_per_second(run, x: np.ndarray, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over ``x`` (the first warms up)."""
    run(x[:BATCH])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run_batches(run, x)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def dynamo_session(model: EfficientNetLite0):
    """An ONNX Runtime session of the graph torch.onnx's dynamo exporter makes of the
    same three outputs (how the default model ran before it was built without torch)."""
    import onnxruntime as ort
    import torch

    from postermap.embedders.efficientnet_lite import _pooled_features

    torch.set_num_threads(THREADS)
    module = _pooled_features(model.model).eval()
    sample_batch = torch.from_numpy(
        np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
    )
    batch = torch.export.Dim("batch", min=1)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            module,
            (sample_batch,),
            input_names=["x"],
            dynamo=True,
            dynamic_shapes={"x": {0: batch}},
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        program.model_proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


if __name__ == "__main__":
    main()
