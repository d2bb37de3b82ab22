"""InceptionV3 (the founding run's model): 2048-d pool features from torchvision's weights.

The weights are torchvision's ImageNet checkpoint ``inception_v3_google-0cc3c7bd.pth``
(27.2M parameters, ported from Google's original). Nothing is downloaded at run time; the
file is looked up, in order, at ``$POSTERMAP_INCEPTION_WEIGHTS``, then in torch's hub cache
(``$TORCH_HOME/hub/checkpoints/``, default ``~/.cache/torch``), where any earlier
``torchvision.models.inception_v3(weights="DEFAULT")`` call leaves it.

The network is defined here rather than imported from torchvision: torchvision's PyPI
wheels are built against the CUDA build of torch and fail to import next to the CPU wheel
this project pins. The module tree and parameter names mirror torchvision's
``Inception3`` exactly, so its checkpoint loads with every key matched (checked on load);
the auxiliary classifier, only used in training, is not built and its weights are ignored.

Like the default model, images are squashed to 299x299 (not centre-cropped) and
normalised with ImageNet statistics; the network's first step maps them to the [-1, 1]
scaling Google's weights expect (torchvision's ``transform_input``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from postermap.embedders.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalise_batch,
    require_torch,
    resize_square,
    softmax_classifier,
)
from postermap.errors import SettingsError

log = logging.getLogger(__name__)

CHECKPOINT = "inception_v3_google-0cc3c7bd.pth"


class WeightsNotFoundError(SettingsError):
    """The checkpoint is in none of the places looked at; the message lists them. A
    setting the user must act on (the CLI shows it as one line, not a traceback)."""


def weight_candidates() -> list[Path]:
    """Where the checkpoint is looked for, in order."""
    candidates = []
    if os.environ.get("POSTERMAP_INCEPTION_WEIGHTS"):
        candidates.append(Path(os.environ["POSTERMAP_INCEPTION_WEIGHTS"]).expanduser())
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    candidates.append(torch_home / "hub" / "checkpoints" / CHECKPOINT)
    return candidates


def find_weights() -> Path:
    for path in weight_candidates():
        if path.is_file():
            return path
    places = ", ".join(str(p) for p in weight_candidates())
    raise WeightsNotFoundError(
        f"InceptionV3 weights not found (looked at: {places}). Copy torchvision's "
        f"{CHECKPOINT} (https://download.pytorch.org/models/{CHECKPOINT}) to one of them, "
        f"or set POSTERMAP_INCEPTION_WEIGHTS to its path."
    )


def build_network():
    """The InceptionV3 module tree, named as torchvision names it (without AuxLogits)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicConv2d(nn.Module):
        def __init__(self, cin: int, cout: int, **kwargs) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    def chain(cin: int, *specs: tuple) -> list[tuple[str, nn.Module]]:
        """Named convs applied in sequence; spec = (suffix, cout, kernel, stride, padding)."""
        out = []
        for name, cout, kernel, stride, padding in specs:
            out.append(
                (name, BasicConv2d(cin, cout, kernel_size=kernel, stride=stride, padding=padding))
            )
            cin = cout
        return out

    class Block(nn.Module):
        """Parallel branches concatenated on channels. A branch is a list of convs, a
        list whose last element is a pair of convs applied side by side (the 1x3 / 3x1
        split of InceptionE), or the pooling branch."""

        def __init__(self, branches: list, pool: str, pool_conv: tuple | None) -> None:
            super().__init__()
            self.branches = []
            for branch in branches:
                names = []
                for item in branch:
                    pair = item if isinstance(item, list) else [item]
                    for name, module in pair:
                        self.add_module(name, module)
                    names.append([name for name, _ in pair])
                self.branches.append(names)
            self.pool = pool
            if pool_conv is not None:
                self.add_module("branch_pool", pool_conv)

        def forward(self, x):
            outputs = []
            for names in self.branches:
                y = x
                for step in names:
                    parts = [getattr(self, name)(y) for name in step]
                    y = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
                outputs.append(y)
            if self.pool == "avg":
                outputs.append(self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1)))
            else:
                outputs.append(F.max_pool2d(x, 3, stride=2))
            return torch.cat(outputs, 1)

    def block_a(cin: int, pool_features: int) -> Block:
        return Block(
            [
                chain(cin, ("branch1x1", 64, 1, 1, 0)),
                chain(cin, ("branch5x5_1", 48, 1, 1, 0), ("branch5x5_2", 64, 5, 1, 2)),
                chain(
                    cin,
                    ("branch3x3dbl_1", 64, 1, 1, 0),
                    ("branch3x3dbl_2", 96, 3, 1, 1),
                    ("branch3x3dbl_3", 96, 3, 1, 1),
                ),
            ],
            "avg",
            BasicConv2d(cin, pool_features, kernel_size=1),
        )

    def block_b(cin: int) -> Block:
        return Block(
            [
                chain(cin, ("branch3x3", 384, 3, 2, 0)),
                chain(
                    cin,
                    ("branch3x3dbl_1", 64, 1, 1, 0),
                    ("branch3x3dbl_2", 96, 3, 1, 1),
                    ("branch3x3dbl_3", 96, 3, 2, 0),
                ),
            ],
            "max",
            None,
        )

    def block_c(cin: int, c7: int) -> Block:
        return Block(
            [
                chain(cin, ("branch1x1", 192, 1, 1, 0)),
                chain(
                    cin,
                    ("branch7x7_1", c7, 1, 1, 0),
                    ("branch7x7_2", c7, (1, 7), 1, (0, 3)),
                    ("branch7x7_3", 192, (7, 1), 1, (3, 0)),
                ),
                chain(
                    cin,
                    ("branch7x7dbl_1", c7, 1, 1, 0),
                    ("branch7x7dbl_2", c7, (7, 1), 1, (3, 0)),
                    ("branch7x7dbl_3", c7, (1, 7), 1, (0, 3)),
                    ("branch7x7dbl_4", c7, (7, 1), 1, (3, 0)),
                    ("branch7x7dbl_5", 192, (1, 7), 1, (0, 3)),
                ),
            ],
            "avg",
            BasicConv2d(cin, 192, kernel_size=1),
        )

    def block_d(cin: int) -> Block:
        return Block(
            [
                chain(cin, ("branch3x3_1", 192, 1, 1, 0), ("branch3x3_2", 320, 3, 2, 0)),
                chain(
                    cin,
                    ("branch7x7x3_1", 192, 1, 1, 0),
                    ("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
                    ("branch7x7x3_3", 192, (7, 1), 1, (3, 0)),
                    ("branch7x7x3_4", 192, 3, 2, 0),
                ),
            ],
            "max",
            None,
        )

    def block_e(cin: int) -> Block:
        def split(prefix: str) -> list[tuple[str, nn.Module]]:
            return [
                (f"{prefix}a", BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))),
                (f"{prefix}b", BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))),
            ]

        return Block(
            [
                chain(cin, ("branch1x1", 320, 1, 1, 0)),
                [*chain(cin, ("branch3x3_1", 384, 1, 1, 0)), split("branch3x3_2")],
                [
                    *chain(cin, ("branch3x3dbl_1", 448, 1, 1, 0), ("branch3x3dbl_2", 384, 3, 1, 1)),
                    split("branch3x3dbl_3"),
                ],
            ],
            "avg",
            BasicConv2d(cin, 192, kernel_size=1),
        )

    class InceptionV3(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
            self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
            self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
            self.maxpool1 = nn.MaxPool2d(3, stride=2)
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
            self.maxpool2 = nn.MaxPool2d(3, stride=2)
            self.Mixed_5b = block_a(192, 32)
            self.Mixed_5c = block_a(256, 64)
            self.Mixed_5d = block_a(288, 64)
            self.Mixed_6a = block_b(288)
            self.Mixed_6b = block_c(768, 128)
            self.Mixed_6c = block_c(768, 160)
            self.Mixed_6d = block_c(768, 160)
            self.Mixed_6e = block_c(768, 192)
            self.Mixed_7a = block_d(768)
            self.Mixed_7b = block_e(1280)
            self.Mixed_7c = block_e(2048)
            self.fc = nn.Linear(2048, 1000)
            # ImageNet-normalised input -> the [-1, 1] scaling of Google's weights
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            self.register_buffer("in_scale", std / 0.5, persistent=False)
            self.register_buffer("in_shift", (mean - 0.5) / 0.5, persistent=False)

        def features(self, x):
            x = x * self.in_scale + self.in_shift
            for name in (
                "Conv2d_1a_3x3",
                "Conv2d_2a_3x3",
                "Conv2d_2b_3x3",
                "maxpool1",
                "Conv2d_3b_1x1",
                "Conv2d_4a_3x3",
                "maxpool2",
                "Mixed_5b",
                "Mixed_5c",
                "Mixed_5d",
                "Mixed_6a",
                "Mixed_6b",
                "Mixed_6c",
                "Mixed_6d",
                "Mixed_6e",
                "Mixed_7a",
                "Mixed_7b",
                "Mixed_7c",
            ):
                x = getattr(self, name)(x)
            return x.mean(dim=(2, 3))

    return InceptionV3()


def load_checkpoint(network, path: Path) -> None:
    """Load torchvision's state dict into ``network``; every key must match (AuxLogits,
    the training-only head, is skipped)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path} is not an InceptionV3 checkpoint in torchvision's layout: "
            f"missing {result.missing_keys[:5]}, unexpected "
            f"{result.unexpected_keys[:5]}"
        )


class InceptionV3:
    """2048-d average-pool features of InceptionV3 (PyTorch, CPU: the ``torch`` extra)."""

    name = "inception-v3"
    dim = 2048
    input_size = 299
    extras: dict[str, tuple[int, ...]] = {}  # none: the cluster stage uses the features

    def __init__(self, threads: int | None = None, weights: Path | None = None) -> None:
        self._torch = require_torch("inception-v3")
        self.weights = Path(weights) if weights is not None else find_weights()
        self.network = build_network()
        load_checkpoint(self.network, self.weights)
        self.network.eval()
        self.threads = threads or os.cpu_count() or 1
        log.debug("inception-v3: weights from %s", self.weights)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return resize_square(image, self.input_size)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            x = torch.from_numpy(normalise_batch(batch))
            return self.network.features(x).numpy().astype(np.float32)

    def embed_with_extras(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.embed(batch), {}

    def class_probabilities(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities from stored pool features (the fc layer)."""
        return softmax_classifier(
            features, self.network.fc.weight.detach().numpy(), self.network.fc.bias.detach().numpy()
        )
