"""Lower-precision copies of an fp32 ONNX embedder, made once and cached beside it.

This CPU runs int8 convolutions (AVX-512 VNNI) faster than fp32 ones, and EfficientNet-Lite
was designed to survive int8 (ReLU6, no squeeze-excitation). Whether a quantised copy
still gives the same map is an empirical question: ``benchmarks/quantise.py`` measures
every recipe here against fp32 (cosine of the features, top-10 neighbour agreement,
throughput in the same process) and README (Performance) gives the figures. The earlier
attempt's failure (agreement 0.16) came from per-tensor weights: a depthwise filter's
channels differ in range by orders of magnitude, and one scale per tensor rounds the
small ones to zero.

A :class:`Recipe` says how: static QDQ (activation ranges calibrated on real model inputs,
weights per channel and symmetric) or dynamic (activation ranges found at run time), the
calibration method, and how many of the last convolutions stay in fp32 with everything
after them (the pooling and the outputs). :func:`quantise` takes the fp32 model file and
returns the quantised one, cached beside it under a name keyed by the fp32 file's bytes,
the recipe and the ONNX Runtime version, so a new export, a changed recipe or a new
quantiser makes a new file rather than reusing a stale one.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from postermap.errors import PostermapError
from postermap.workspace import atomic_path

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class QuantisationError(PostermapError, RuntimeError):
    """A model could not be quantised as asked (no calibration data, unknown method)."""


@dataclass(frozen=True)
class Recipe:
    """How to quantise a model (every field is part of the cache key).

    Attributes:
        static: calibrate activation ranges ahead (QDQ format) on real inputs; False is
            dynamic quantisation (weights ahead, activation ranges per batch at run time).
        per_channel: one weight scale per output channel instead of per tensor.
        calibration: ``minmax``, ``entropy`` or ``percentile`` (static only).
        percentile: the range kept by ``percentile`` calibration.
        signed_activations: int8 activations (symmetric) instead of uint8 (asymmetric).
        fp32_tail: trailing Conv nodes kept in fp32, with every node after the first of
            them (the activations, the pooling, the outputs).
        fp32_head: leading Conv nodes kept in fp32 (the stem sees the normalised pixels,
            whose three channels share one activation scale when quantised).
        fp32_depthwise: every depthwise (grouped) Conv kept in fp32.
        reduce_range: weights in 7 bits (-64..64, symmetric) instead of 8. An x86 CPU
            without VNNI multiplies uint8 activations by int8 weights with VPMADDUBSW,
            which adds two products into a saturating int16: 2 * 255 * 127 overflows it,
            2 * 255 * 64 does not. With 8-bit weights the same file gives other features
            on such a CPU than on one with VNNI (cosine 0.95 against fp32, not 0.996).
    """

    static: bool = True
    per_channel: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    signed_activations: bool = False
    fp32_tail: int = 0
    fp32_head: int = 0
    fp32_depthwise: bool = False
    reduce_range: bool = False

    def describe(self) -> str:
        """A canonical one-line form (cache key, benchmark output)."""
        return ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))


#: the recipe of ``precision = int8``, chosen by ``benchmarks/quantise.py``: per-channel
#: weights, MinMax ranges, the first three convolutions (the stem, which sees the three
#: pixel channels through one activation scale, and the first block) in fp32
INT8_RECIPE = Recipe(fp32_head=3)

#: /proc/cpuinfo flags of the x86 dot-product instructions that accumulate in int32
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def cpu_saturates_int8(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether ONNX Runtime's uint8 x int8 kernels can saturate on this CPU: an x86 CPU
    without VNNI (see :attr:`Recipe.reduce_range`). ``cpuinfo`` (the text of
    /proc/cpuinfo) and ``machine`` (``platform.machine()``) are read from this machine
    when not given. An x86 CPU whose flags cannot be read is taken to saturate: 7-bit
    weights cost a little accuracy there, 8-bit ones on a saturating CPU cost much more."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False  # ARM's SDOT/UDOT and others accumulate in int32
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return True
    flags = set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            flags.update(value.split())
    return not flags.intersection(VNNI_FLAGS)


def int8_recipe(base: Recipe = INT8_RECIPE) -> Recipe:
    """``base`` as this CPU needs it: 7-bit weights where 8-bit ones would saturate.
    The cache key holds the recipe, so each kind of CPU gets its own file."""
    return replace(base, reduce_range=True) if cpu_saturates_int8() else base


def quantise(
    fp32: Path,
    recipe: Recipe,
    calibration: Iterable[np.ndarray] | None = None,
    calibration_key: str = "",
) -> Path:
    """The int8 copy of ONNX model ``fp32`` made by ``recipe`` (cached beside it).

    Args:
        fp32: the fp32 model file (one input, any outputs).
        recipe: how to quantise.
        calibration: float32 batches exactly as the model receives them (after the
            embedder's pre-processing and normalisation); needed by static recipes when
            the file is not cached yet. Ranges seen here are the ranges the int8 model can
            represent, so they must come from real images of the kind that will be mapped.
            Consumed only when the file is not cached yet (a generator costs nothing then).
        calibration_key: what the calibration images are (part of the cache key: the
            batches themselves are not read when the copy is cached).

    Returns:
        The path of the quantised model.
    """
    import onnxruntime

    fp32 = Path(fp32)
    if recipe.calibration not in CALIBRATION_METHODS:
        raise QuantisationError(
            f"unknown calibration {recipe.calibration!r}; use one of {CALIBRATION_METHODS}"
        )
    path = cached_path(fp32, recipe, onnxruntime.__version__, calibration_key)
    if path.exists():
        return path
    batches = list(calibration) if calibration is not None else []
    if recipe.static and not batches:
        raise QuantisationError(
            f"static quantisation of {fp32.name} needs calibration batches (real model inputs)"
        )
    log.info("quantising %s (%s) to %s", fp32.name, recipe.describe(), path.name)
    with tempfile.TemporaryDirectory(prefix="postermap-quantise-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _prepare(fp32, prepared)
        with atomic_path(path) as out:
            _quantise_prepared(prepared, out, recipe, batches)
    return path


def cached_path(
    fp32: Path, recipe: Recipe, runtime_version: str, calibration_key: str = ""
) -> Path:
    """Where the quantised copy of ``fp32`` by ``recipe`` lives: beside it, named by a hash
    of the fp32 file's bytes, the recipe, the calibration images' key and the quantiser's
    (ONNX Runtime's) version."""
    digest = hashlib.sha256()
    with open(fp32, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"|{recipe.describe()}|{calibration_key}|onnxruntime={runtime_version}".encode())
    return fp32.with_name(f"{fp32.stem}-int8-{digest.hexdigest()[:12]}.onnx")


def excluded_nodes(model, recipe: Recipe) -> list[str]:
    """Names of the nodes ``recipe`` keeps in fp32, found by position (the first
    ``fp32_head`` convolutions; the last ``fp32_tail`` and every node after the first of
    them; every pooling), not by name, so they survive a differently built graph."""
    nodes = list(model.graph.node)
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
    keep: set[int] = set(convs[: recipe.fp32_head])
    if recipe.fp32_depthwise:
        keep |= {i for i in convs if any(a.name == "group" and a.i > 1 for a in nodes[i].attribute)}
    if recipe.fp32_tail:
        keep |= set(range(convs[-min(recipe.fp32_tail, len(convs))], len(nodes)))
    keep |= {
        i
        for i, node in enumerate(nodes)
        if node.op_type in ("ReduceMean", "GlobalAveragePool", "GlobalMaxPool")
    }
    return [nodes[i].name for i in sorted(keep)]


def _prepare(source: Path, target: Path) -> None:
    """Shape inference and graph clean-up the quantiser expects (ORT's pre-processing),
    and a name for every node: the quantiser excludes nodes by name, and a graph built
    by hand may leave them unnamed."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    model = onnx.load(str(target))
    names = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            while node.name in names:
                node.name += "_"
            names.add(node.name)
    onnx.save(model, str(target))


def _quantise_prepared(prepared: Path, out: Path, recipe: Recipe, batches: list) -> None:
    import onnx
    from onnxruntime import quantization as q

    model = onnx.load(str(prepared))
    excluded = excluded_nodes(model, recipe)
    common = {
        "per_channel": recipe.per_channel,
        "reduce_range": recipe.reduce_range,
        "weight_type": q.QuantType.QInt8,
        "nodes_to_exclude": excluded,
        "op_types_to_quantize": None,
    }
    if not recipe.static:
        common["op_types_to_quantize"] = ["Conv"]
        q.quantize_dynamic(str(prepared), str(out), **common)
        return
    input_name = model.graph.input[0].name
    method = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[recipe.calibration]
    # ranges are merged every few batches instead of holding every activation of every
    # calibration image (14 GB for 600 images at 224 px)
    extra = {"ActivationSymmetric": recipe.signed_activations, "CalibMaxIntermediateOutputs": 4}
    if recipe.calibration == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    q.quantize_static(
        str(prepared),
        str(out),
        _reader(input_name, batches),
        quant_format=q.QuantFormat.QDQ,
        activation_type=q.QuantType.QInt8 if recipe.signed_activations else q.QuantType.QUInt8,
        calibrate_method=method,
        extra_options=extra,
        **common,
    )


def _reader(input_name: str, batches: list):
    """The calibration batches as ONNX Runtime's calibrator reads them."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.position = 0

        def get_next(self) -> dict | None:
            if self.position >= len(batches):
                return None
            self.position += 1
            return {input_name: np.asarray(batches[self.position - 1], np.float32)}

        def rewind(self) -> None:
            self.position = 0

    return Batches()


def saved_model(model, folder: Path, stem: str) -> Path:
    """``model`` (an ``onnx.ModelProto``) as a file in ``folder`` named by a hash of its
    bytes: the fp32 file a quantised copy is keyed by. Written once (atomically)."""
    data = model.SerializeToString()
    path = Path(folder) / f"{stem}-fp32-{hashlib.sha256(data).hexdigest()[:12]}.onnx"
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path


def calibration_inputs(
    files: Iterable[Path], preprocess, thumb_size: int, batch_size: int = 16
) -> Iterator[np.ndarray]:
    """Normalised model inputs of ``files`` (see :func:`pipeline_input`), in batches. A
    file that does not decode is skipped (and logged): calibration needs many images, not
    every one."""
    from postermap.embedders.base import normalise_batch
    from postermap.images import ImageLoadError

    pending: list[np.ndarray] = []
    for path in files:
        try:
            pending.append(pipeline_input(Path(path).read_bytes(), preprocess, thumb_size))
        except (ImageLoadError, OSError) as err:
            log.warning("calibration: skipping %s: %s", path, err)
            continue
        if len(pending) == batch_size:
            yield normalise_batch(np.stack(pending))
            pending = []
    if pending:
        yield normalise_batch(np.stack(pending))


def pipeline_input(data: bytes, preprocess, thumb_size: int) -> np.ndarray:
    """What the embed stage feeds the model for a file's bytes, through the exact path of
    the pipeline: ingest's thumbnail (decoded upright, transparency on white, shrunk to
    ``thumb_size``, JPEG q90), decoded again and pre-processed (uint8 HWC)."""
    from postermap.images import decode_with_alpha, encode_jpeg, load_image, shrink

    image, _, _ = decode_with_alpha(data, at_least=thumb_size)
    return preprocess(load_image(encode_jpeg(shrink(image, thumb_size))))
