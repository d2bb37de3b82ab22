"""Lower-precision EfficientNet-Lite0 against fp32: do the features, and the maps, stay?

    python -m benchmarks.quantise [--eval 2400] [--rounds 5] [--variants a,b] [--out F]
    python -m benchmarks.quantise --variants fp32-192px,precision-int8 --out quantise-192px.json

Images: the default set (``data/emoji/images``) and the held-out sets' cached originals
(``benchmarks/.cache/heldout/*``, made by ``python -m benchmarks.judgement``; posters,
clipart, icons, OpenMoji, synthetic tropes), each taken through the exact ingest + embed
pre-processing (decode, 256 px JPEG thumbnail, squashed to 224 px), byte copies dropped.
A stratified ``--calibration`` images (default 600) calibrate the static recipes; the
evaluation images (``--eval``) are drawn from the rest, never used for calibration.

For every variant it prints the cosine of its pooled features to fp32's (mean, 1st
percentile), the top-10 neighbour agreement (share of each image's 10 nearest
neighbours by cosine that fp32's features also give), the same for R-MAC of the last map
and for the salient cells of the mid-level map (image similarity: the best pair among the
first 4 cells, as the cluster stage matches them, on raw cosine), and throughput as a
ratio to fp32 measured in alternating rounds in this process (the machine is shared, so
only the ratio per round means much; the load average is printed). The acceptance rule
(issue 18): agreement >= 0.9 and mean cosine >= 0.98 on the pooled features.

OpenVINO variants (fp32, bf16, NNCF int8) run when ``openvino`` and ``nncf`` import (they
are not project dependencies; install them into a separate environment to measure).
Writes ``benchmarks/results/quantise.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE, timed, write_result
from postermap.embedders.base import normalise_batch, resize_square
from postermap.embedders.pooling import rmac, salient_cells
from postermap.embedders.quantise import Recipe, pipeline_input, quantise, saved_model
from postermap.images import is_image_name

log = logging.getLogger("benchmarks.quantise")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "data" / "emoji"
HELDOUT = CACHE / "heldout"
THUMB = 256
SIDE = 224
BATCH = 32
ACCEPT_TOP10, ACCEPT_COSINE = 0.9, 0.98
#: smaller model inputs measured against 224 px (issue 18: ~27% fewer FLOPs at 192)
SMALLER_SIDES = (192,)

#: the onnxruntime recipes measured (name -> recipe)
RECIPES: dict[str, Recipe] = {
    "ort-int8-per-tensor": Recipe(per_channel=False),
    "ort-int8": Recipe(),
    "ort-int8-s8s8": Recipe(signed_activations=True),
    "ort-int8-fp32-tail1": Recipe(fp32_tail=1),
    "ort-int8-fp32-depthwise": Recipe(fp32_depthwise=True),
    "ort-int8-fp32-head1": Recipe(fp32_head=1),
    "ort-int8-fp32-head2": Recipe(fp32_head=2),
    "ort-int8-fp32-head3": Recipe(fp32_head=3),
    "ort-int8-fp32-head5": Recipe(fp32_head=5),
    "ort-int8-fp32-head3-tail1": Recipe(fp32_head=3, fp32_tail=1),
    "ort-int8-fp32-head3-percentile": Recipe(fp32_head=3, calibration="percentile"),
    "ort-int8-fp32-head3-entropy": Recipe(fp32_head=3, calibration="entropy"),
    "ort-int8-dynamic": Recipe(static=False),
}
#: onnxruntime's histogram calibrators (entropy, percentile) hold every activation of every
#: calibration batch at once (615 images: out of memory at 24 GB), so they see fewer
HISTOGRAM_IMAGES = 128

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration", type=int, default=600)
    parser.add_argument("--eval", type=int, default=2400)
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds")
    parser.add_argument("--timed", type=int, default=256, help="images per timed pass")
    parser.add_argument("--batch", type=int, default=BATCH, help="images per timed batch")
    parser.add_argument("--variants", default="", help="comma-separated subset of names")
    parser.add_argument("--fp32", type=Path, help="fp32 ONNX model (default: the embedder's)")
    parser.add_argument(
        "--heldout", type=Path, default=HELDOUT, help="folder of the held-out sets' originals"
    )
    parser.add_argument("--out", default="quantise.json", help="result file name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)

    images, sources = model_inputs(args.heldout)
    calibration, evaluation = split(sources, args.calibration, args.eval)
    counts = {s: int((sources[evaluation] == s).sum()) for s in np.unique(sources)}
    print(f"images: {len(images)} ({len(calibration)} calibration, {len(evaluation)} evaluation)")
    print(f"evaluation per set: {counts}")
    fp32 = args.fp32 or default_model()
    wanted = {v for v in args.variants.split(",") if v}
    batches = [
        normalise_batch(images[calibration[i : i + 16]]) for i in range(0, len(calibration), 16)
    ]
    runners: dict[str, Runner] = {"fp32": ort_runner(fp32)}
    made: dict[str, dict] = {}
    for name, recipe in RECIPES.items():
        if wanted and name not in wanted:
            continue
        used = batches if recipe.calibration == "minmax" else batches[: HISTOGRAM_IMAGES // 16]
        key = hashlib.sha256(np.concatenate([b.ravel()[::97] for b in used]).tobytes())
        with timed() as took:
            path = quantise(fp32, recipe, used, calibration_key=f"bench:{key.hexdigest()}")
        calibrated = sum(len(b) for b in used) if recipe.static else 0
        made[name] = {"recipe": recipe.describe(), "calibration_images": calibrated}
        print(
            f"{name}: {path.name}, calibrated on {calibrated} images "
            f"({took['seconds']:.0f} s to make or load)"
        )
        runners[name] = ort_runner(path)
    if not args.fp32 and (not wanted or "precision-int8" in wanted):
        # what --precision int8 runs: the same recipe, calibrated on the default set
        # only (so the default-set rows below include its calibration images)
        from postermap.embedders.efficientnet_lite import EfficientNetLite0
        from postermap.embedders.quantise import int8_recipe

        shipped = EfficientNetLite0(precision="int8").int8_model()
        # this CPU's variant of INT8_RECIPE (7-bit weights where 8-bit ones saturate)
        made["precision-int8"] = {
            "recipe": f"{int8_recipe().describe()}, calibrated on the default set"
        }
        runners["precision-int8"] = ort_runner(shipped)
    runners.update(openvino_runners(fp32, batches, wanted))
    inputs = {name: images for name in runners}
    for side in SMALLER_SIDES:  # the same fp32 graph on a smaller input (fewer FLOPs)
        name = f"fp32-{side}px"
        if not wanted or name in wanted:
            runners[name] = ort_runner(at_side(fp32, side))
            inputs[name] = model_inputs(args.heldout, side)[0]
            made[name] = {"recipe": f"fp32, thumbnails squashed to {side} px instead of {SIDE}"}

    reference = outputs(runners["fp32"], images[evaluation])
    ref_neighbours = neighbour_sets(reference)
    results: dict[str, dict] = {}
    for name, runner in runners.items():
        if name == "fp32":
            continue
        got = outputs(runner, inputs[name][evaluation])
        results[name] = made.get(name, {}) | compare(
            got, reference, ref_neighbours, sources[evaluation]
        )
    sample = {name: inputs[name][evaluation[: args.timed]] for name in runners}
    speed = throughput(runners, sample, args.rounds, args.batch)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    print(f"fp32: {speed['fp32']['images_per_s']:.0f} images/s (median of rounds)")
    for name, figures in results.items():
        figures.update(speed[name])
        figures["accepted"] = (
            figures["features"]["top10"] >= ACCEPT_TOP10
            and figures["features"]["cos_mean"] >= ACCEPT_COSINE
        )
        print(line(name, figures))
    out = write_result(
        args.out,
        {
            "fp32_model": fp32.name,
            "calibration_images": len(calibration),
            "evaluation_images": counts,
            "rounds": args.rounds,
            "timed_images": len(sample["fp32"]),
            "timed_batch": args.batch,
            "load_average": os.getloadavg(),
            "fp32_images_per_s": speed["fp32"]["images_per_s"],
            "variants": results,
        },
    )
    print(f"wrote {out}")


def model_inputs(heldout: Path, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x side x side x 3 model inputs, source set of each), cached on disk."""
    from postermap.datasets import fetch_emoji

    folders = {"default-emoji": fetch_emoji(DEFAULT_SET)}
    if heldout.is_dir():
        folders |= {d.name: d for d in sorted(heldout.iterdir()) if d.is_dir()}
    else:
        print(f"no held-out sets in {heldout} (python -m benchmarks.judgement builds them)")
    files = {
        name: sorted(p for p in d.rglob("*") if p.is_file() and is_image_name(p))
        for name, d in folders.items()
    }
    key = hashlib.sha256(
        "".join(f"{n}:{len(f)}:{f[-1].name if f else ''}" for n, f in files.items()).encode()
    ).hexdigest()[:12]
    cache = CACHE / f"quantise-inputs-{key}{'' if side == SIDE else f'-{side}'}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["images"], data["sources"]
    arrays, names, seen = [], [], set()
    for name, paths in files.items():
        for path in paths:
            data = path.read_bytes()
            digest = hashlib.sha256(data).digest()
            if digest in seen:
                continue
            seen.add(digest)
            arrays.append(model_input(data, side))
            names.append(name)
    images, sources = np.stack(arrays), np.array(names)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, sources=sources)
    return images, sources


def model_input(data: bytes, side: int = SIDE) -> np.ndarray:
    """What the embed stage feeds the model for a file (``EfficientNetLite0.preprocess``
    squashes to 224 px; ``side`` for a smaller input)."""
    return pipeline_input(data, lambda image: resize_square(image, side), THUMB)


def split(sources: np.ndarray, calibration: int, evaluation: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (calibration, evaluation) indices, each stratified by source set."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(sources))
    cal, rest = [], []
    for source in np.unique(sources):
        members = order[sources[order] == source]
        k = max(10, round(calibration * len(members) / len(sources)))
        cal += members[:k].tolist()
        rest += members[k:].tolist()
    rest = rng.permutation(np.array(rest))
    return np.array(cal), rest[:evaluation]


def default_model() -> Path:
    """The fp32 ONNX graph the default embedder runs, as the file its int8 copies are
    keyed by (the cache ``precision = int8`` uses too)."""
    from postermap.embedders.efficientnet_lite import EfficientNetLite0, model_cache

    embedder = EfficientNetLite0()
    return saved_model(embedder.onnx_model(), model_cache(), embedder.name)


def at_side(fp32: Path, side: int) -> Path:
    """A copy of the fp32 graph whose input is ``side`` x ``side`` (the network is fully
    convolutional up to its global pooling; the spatial sizes inside are inferred again)."""
    import onnx

    out = fp32.with_name(f"{fp32.stem}-{side}px.onnx")
    if out.exists():
        return out
    model = onnx.load(str(fp32))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = side
    for value in model.graph.output:
        for dim in value.type.tensor_type.shape.dim[2:]:
            dim.dim_param = "spatial"
    del model.graph.value_info[:]
    onnx.save(onnx.shape_inference.infer_shapes(model), str(out))
    return out


def ort_runner(path: Path, threads: int = 2) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: tuple(session.run(None, {name: batch}))


def openvino_runners(fp32: Path, batches: list[np.ndarray], wanted: set[str]) -> dict[str, Runner]:
    """OpenVINO's CPU runtime on the same fp32 file (f32, bf16) and NNCF's int8 of it."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        print("openvino: not installed here; its variants are skipped")
        return {}
    core = ov.Core()

    def runner(model, precision: str) -> Runner:
        compiled = core.compile_model(
            model,
            "CPU",
            {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": precision},
        )
        request = compiled.create_infer_request()
        return lambda batch: tuple(request.infer(batch)[o] for o in compiled.outputs)

    model = core.read_model(str(fp32))
    out: dict[str, Runner] = {}
    for name, precision in (("openvino-fp32", "f32"), ("openvino-bf16", "bf16")):
        if not wanted or name in wanted:
            out[name] = runner(model, precision)
    for name, tail in (("openvino-nncf-int8", 0), ("openvino-nncf-int8-tail1", 1)):
        if wanted and name not in wanted:
            continue
        singles = [b[i : i + 1] for b in batches for i in range(len(b))]
        convs = [op.get_friendly_name() for op in model.get_ordered_ops()]
        convs = [
            n
            for n, op in zip(convs, model.get_ordered_ops(), strict=True)
            if op.get_type_name() == "Convolution"
        ]
        scope = nncf.IgnoredScope(names=convs[-tail:]) if tail else None
        with timed() as took:
            quantised = nncf.quantize(
                model, nncf.Dataset(singles), subset_size=len(singles), ignored_scope=scope
            )
        print(f"{name}: NNCF quantised in {took['seconds']:.0f} s")
        out[name] = runner(quantised, "f32")
    return out


def outputs(runner: Runner, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled features, R-MAC of the last map, salient cells of the mid map)."""
    features, poolings, cells = [], [], []
    for start in range(0, len(images), BATCH):
        pooled, maps, mid = runner(normalise_batch(images[start : start + BATCH]))
        features.append(np.asarray(pooled, np.float32))
        poolings.append(rmac(np.asarray(maps, np.float32)))
        cells.append(salient_cells(np.asarray(mid, np.float32), 8))
    return np.concatenate(features), np.concatenate(poolings), np.concatenate(cells)


def neighbour_sets(out: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    features, poolings, cells = out
    return [top_k(similarity(features)), top_k(similarity(poolings)), top_k(cell_similarity(cells))]


def compare(got, reference, ref_neighbours, sources: np.ndarray) -> dict:
    result = {}
    for label, g, r, neighbours in zip(
        ("features", "rmac", "cells"), got, reference, ref_neighbours, strict=True
    ):
        cosine = (_unit(g.reshape(len(g), -1)) * _unit(r.reshape(len(r), -1))).sum(axis=1)
        sim = cell_similarity(g) if label == "cells" else similarity(g)
        result[label] = {
            "cos_mean": round(float(cosine.mean()), 4),
            "cos_p1": round(float(np.percentile(cosine, 1)), 4),
            "top10": round(agreement(top_k(sim), neighbours), 3),
        }
        if label == "features":
            shares = shared_share(top_k(sim), neighbours)
            result[label]["top10_per_set"] = {
                str(s): round(float(shares[sources == s].mean()), 3) for s in np.unique(sources)
            }
    return result


def similarity(vectors: np.ndarray) -> np.ndarray:
    unit = _unit(vectors)
    return unit @ unit.T


def cell_similarity(cells: np.ndarray, used: int = 4) -> np.ndarray:
    """Image x image similarity: the best cosine among pairs of their first ``used``
    salient cells."""
    n = len(cells)
    unit = _unit(cells[:, :used]).reshape(n * used, -1)
    best = np.full((n, n), -np.inf, dtype=np.float32)
    for a in range(used):
        for b in range(used):
            np.maximum(best, unit[a::used] @ unit[b::used].T, out=best)
    return best


def top_k(sim: np.ndarray, k: int = 10) -> np.ndarray:
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    return np.argpartition(-sim, k, axis=1)[:, :k]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row's neighbours that the other also lists."""
    return float(shared_share(a, b).mean())


def shared_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])


def throughput(
    runners: dict[str, Runner], images: dict[str, np.ndarray], rounds: int, size: int
) -> dict[str, dict]:
    """Images/s of each runner on its own inputs (``images[name]``), in alternating
    rounds; ratio to fp32 per round (median)."""
    batches = {
        name: [normalise_batch(own[i : i + size]) for i in range(0, len(own), size)]
        for name, own in images.items()
    }
    for name, runner in runners.items():  # warm-up
        runner(batches[name][0])
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            start = time.perf_counter()
            for batch in batches[name]:
                runner(batch)
            rates[name].append(len(images[name]) / (time.perf_counter() - start))
    base = np.array(rates["fp32"])
    return {
        name: {
            "images_per_s": round(float(np.median(r)), 1),
            "speed_vs_fp32": round(float(np.median(np.array(r) / base)), 2),
            "speed_vs_fp32_range": [round(float(x), 2) for x in np.array(r) / base],
        }
        for name, r in rates.items()
    }


def line(name: str, f: dict) -> str:
    feats, reg, cells = f["features"], f["rmac"], f["cells"]
    return (
        f"{name}: speed {f['speed_vs_fp32']:.2f}x fp32 ({f['images_per_s']:.0f} images/s); "
        f"features cos {feats['cos_mean']:.4f} (p1 {feats['cos_p1']:.3f}) "
        f"top10 {feats['top10']:.3f}; "
        f"rmac cos {reg['cos_mean']:.4f} top10 {reg['top10']:.3f}; "
        f"cells top10 {cells['top10']:.3f}; {'ACCEPTED' if f['accepted'] else 'rejected'}"
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


if __name__ == "__main__":
    main()
