"""The torch-free checkpoint reader and the ONNX graph's numerical pieces, against
PyTorch on small tensors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from postermap.embedders.checkpoint import CheckpointError, load_state_dict
from postermap.embedders.efficientnet_graph import fold_batch_norm, same_padding


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3),
        "transposed": base.t(),  # strided view
        "slice": base.reshape(-1)[7:19],  # offset into a shared storage
        "steps": torch.tensor(12, dtype=torch.int64),
        "half": torch.randn(3).half(),
        "flags": torch.tensor([True, False]),
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_what_torch_saved(tmp_path, zip_format):
    state = _state()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_state_dict(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.numpy().dtype
        assert np.array_equal(loaded[name], tensor.numpy()), name


class _Payload:
    """Unpickles as a call of ``ran`` (what a crafted checkpoint would do)."""

    calls: list[str] = []

    def __reduce__(self):
        return (_Payload.calls.append, ("ran code",))


@pytest.mark.parametrize("writer", ["pickle", "torch-legacy", "torch-zip"])
def test_refuses_anything_but_tensors_without_running_it(tmp_path, writer):
    path = tmp_path / "evil.pth"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Payload()))
    else:
        torch.save({"x": _Payload()}, path, _use_new_zipfile_serialization=writer == "torch-zip")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_state_dict(path)
    assert _Payload.calls == []


def test_a_truncated_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(path)


def test_folded_batch_norm_equals_conv_then_batch_norm():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 5, 3, bias=False)
    bn = torch.nn.BatchNorm2d(5, eps=1e-3).eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        expected = bn(conv(x)).numpy()
        weight, bias = fold_batch_norm(
            *(t.detach().numpy() for t in (conv.weight, bn.weight, bn.bias)),
            bn.running_mean.numpy(),
            bn.running_var.numpy(),
        )
        got = torch.nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias))
    assert np.abs(got.numpy() - expected).max() < 1e-5


@pytest.mark.parametrize(("size", "kernel", "stride"), [(224, 3, 2), (112, 3, 1), (56, 5, 2)])
def test_same_padding_keeps_ceil_size_with_the_odd_pixel_after(size, kernel, stride):
    before, after = same_padding(size, kernel, stride)
    assert after - before in (0, 1)
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)
