"""Quantised copies of an ONNX model: made from calibration batches, cached beside the
fp32 file under a key of its bytes and the recipe, the tail kept in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from postermap.embedders import quantise as quantise_module  # noqa: E402
from postermap.embedders.quantise import (  # noqa: E402
    INT8_RECIPE,
    QuantisationError,
    Recipe,
    cpu_saturates_int8,
    excluded_nodes,
    int8_recipe,
    quantise,
)


def small_model(path: Path, seed: int = 0) -> Path:
    """stem conv -> ReLU6 -> depthwise conv -> ReLU6 -> 1x1 conv -> ReLU6 -> mean: the
    shape of EfficientNet-Lite's layers, with random weights."""
    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...], scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.normal(size=shape) * scale).astype(np.float32), name)

    zero, six = (
        numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((0, "lo"), (6, "hi"))
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"], name="act1"),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["a2"], name="act2"),
        helper.make_node("Conv", ["a2", "w3"], ["c3"], name="head"),
        helper.make_node("Clip", ["c3", "lo", "hi"], ["maps"], name="act3"),
        helper.make_node("ReduceMean", ["maps"], ["pooled"], name="pool", axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["n", 16]),
            helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["n", 16, 16, 16]),
        ],
        [
            weight("w1", (8, 3, 3, 3), 0.5),
            weight("w2", (8, 1, 3, 3), 0.5),
            weight("w3", (16, 8, 1, 1), 0.3),
            zero,
            six,
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def batches(n: int = 6, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 3, 16, 16)).astype(np.float32) for _ in range(n)]


def run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_static_copy_is_int8_and_close_to_fp32(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    path = quantise(fp32, Recipe(), batches())
    assert path.parent == fp32.parent and path != fp32
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    x = batches(1, seed=7)[0]
    for got, want in zip(run(path, x), run(fp32, x), strict=True):
        assert got.shape == want.shape
        assert cosine(got, want).min() > 0.98


def int8_weights(path: Path) -> np.ndarray:
    """Every int8 initializer of a QDQ model (its quantised weights), flattened."""
    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return np.concatenate([a.ravel() for a in arrays if a.dtype == np.int8 and a.size > 1])


def test_reduce_range_keeps_weights_in_seven_bits(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    full = int8_weights(quantise(fp32, Recipe(), batches()))
    reduced_path = quantise(fp32, Recipe(reduce_range=True), batches())
    reduced = int8_weights(reduced_path)
    # symmetric per-channel weights: each channel's largest reaches the end of the range
    assert np.abs(full).max() == 127
    # symmetric 7-bit: -64..64, so two products of a uint8 stay within int16 (2*255*64)
    assert np.abs(reduced).max() == 64
    x = batches(1, seed=7)[0]
    for got, want in zip(run(reduced_path, x), run(fp32, x), strict=True):
        assert cosine(got, want).min() > 0.95


ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\nprocessor\t: 1\nflags\t\t: avx2\n"
ZEN4 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"
ALDER_LAKE = "flags\t\t: avx2 avx_vnni\n"


def test_which_cpus_saturate() -> None:
    assert cpu_saturates_int8(ZEN3, "x86_64")
    assert not cpu_saturates_int8(ZEN4, "x86_64")
    assert not cpu_saturates_int8(ALDER_LAKE, "AMD64")
    assert cpu_saturates_int8("", "x86_64")  # flags unknown: the safe side
    assert not cpu_saturates_int8(ZEN3, "aarch64")


def test_int8_recipe_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantise_module, "cpu_saturates_int8", lambda: True)
    assert int8_recipe() == Recipe(fp32_head=INT8_RECIPE.fp32_head, reduce_range=True)
    monkeypatch.setattr(quantise_module, "cpu_saturates_int8", lambda: False)
    assert int8_recipe() == INT8_RECIPE and not INT8_RECIPE.reduce_range
    assert Recipe(reduce_range=True).describe() != Recipe().describe()  # its own cache file


def test_cached_by_bytes_and_recipe(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    first = quantise(fp32, Recipe(), batches())
    stamp = first.stat().st_mtime_ns
    # cached: no calibration needed, nothing rewritten
    assert quantise(fp32, Recipe(), None) == first
    assert first.stat().st_mtime_ns == stamp
    assert quantise(fp32, Recipe(fp32_tail=1), batches()) != first
    assert quantise(fp32, Recipe(), batches(seed=2), calibration_key="other") != first
    small_model(fp32, seed=3)  # new weights, same name: a new copy, not the stale one
    assert quantise(fp32, Recipe(), batches()) != first


def test_tail_and_pooling_stay_fp32(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    model = onnx.load(str(fp32))
    assert excluded_nodes(model, Recipe(fp32_tail=1)) == ["head", "act3", "pool"]
    assert excluded_nodes(model, Recipe(fp32_head=1)) == ["stem", "pool"]
    assert excluded_nodes(model, Recipe(fp32_depthwise=True)) == ["dw", "pool"]
    path = quantise(fp32, Recipe(fp32_tail=1), batches())
    quantised = onnx.load(str(path))
    # the head conv reads an fp32 weight, not a dequantised int8 one
    head = next(n for n in quantised.graph.node if n.op_type == "Conv" and n.name == "head")
    weights = {i.name: i for i in quantised.graph.initializer}
    assert weights[head.input[1]].data_type == TensorProto.FLOAT


def test_unnamed_nodes_are_named_and_excluded(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    model = onnx.load(str(fp32))
    for node in model.graph.node:
        node.name = ""
    onnx.save(model, str(fp32))
    path = quantise(fp32, Recipe(fp32_head=1), batches())
    quantised = onnx.load(str(path))
    stem = next(n for n in quantised.graph.node if n.op_type == "Conv")
    weights = {i.name: i for i in quantised.graph.initializer}
    assert weights[stem.input[1]].data_type == TensorProto.FLOAT
    assert "DequantizeLinear" in {n.op_type for n in quantised.graph.node}


def test_dynamic_needs_no_calibration(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    path = quantise(fp32, Recipe(static=False), None)
    x = batches(1, seed=7)[0]
    assert cosine(run(path, x)[0], run(fp32, x)[0]).min() > 0.98


def test_static_without_calibration_says_so(tmp_path: Path) -> None:
    fp32 = small_model(tmp_path / "m.onnx")
    with pytest.raises(QuantisationError, match="calibration"):
        quantise(fp32, Recipe(), None)
    with pytest.raises(QuantisationError, match="unknown calibration"):
        quantise(fp32, Recipe(calibration="mean"), batches())


def test_normalise_batch_is_the_per_channel_standardisation_in_nchw():
    from postermap.embedders.base import IMAGENET_MEAN, IMAGENET_STD, normalise_batch

    batch = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    want = (batch.astype(np.float64) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    got = normalise_batch(batch)
    assert got.dtype == np.float32 and got.shape == (3, 3, 5, 7) and got.flags.c_contiguous
    np.testing.assert_allclose(got, want.transpose(0, 3, 1, 2), atol=1e-5)
