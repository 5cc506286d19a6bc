"""Torch state dicts read without torch (ml.export.torch_pickle): the shipped MTCNN weights, files
torch writes in both of its formats, and pickles that name anything else."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ml.export.torch_pickle import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    ForbiddenGlobalError,
    TorchFileError,
    read_state_dict,
)
from ml.weights.sources import MTCNN_NETS, mtcnn_weights_path

MTCNN_SHAPES = {
    "pnet": {"conv1.weight": (10, 3, 3, 3), "prelu3.weight": (32,), "conv4_2.bias": (4,)},
    "rnet": {"conv3.weight": (64, 48, 2, 2), "dense4.weight": (128, 576), "dense5_2.bias": (4,)},
    "onet": {"dense5.weight": (256, 1152), "dense6_3.weight": (10, 256), "prelu5.weight": (256,)},
}
"""A few of each network's weights, as facenet-pytorch's ``PNet``/``RNet``/``ONet`` declare them."""


def _legacy_file(main_pickle: bytes, storage_keys: list[str] | None = None) -> bytes:
    """torch's legacy stream around ``main_pickle``: magic, protocol, system info, then the keys."""
    system = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    return (
        pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)
        + pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=2)
        + pickle.dumps(system, protocol=2)
        + main_pickle
        + pickle.dumps(storage_keys or [], protocol=2)
    )


def _zip_file(main_pickle: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", main_pickle)
        archive.writestr("archive/byteorder", "little")
    return buffer.getvalue()


def _calls(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle calling ``module.name(argument)`` (what a hostile .pt would hold)."""
    encoded = argument.encode()
    return (
        b"\x80\x02c"
        + f"{module}\n{name}\n".encode()
        + b"X"
        + len(encoded).to_bytes(4, "little")
        + encoded
        + b"\x85R."
    )


@pytest.mark.parametrize("net", MTCNN_NETS)
def test_reads_the_mtcnn_weights_facenet_pytorch_ships(net: str) -> None:
    state_dict = read_state_dict(mtcnn_weights_path(net))
    for key, shape in MTCNN_SHAPES[net].items():
        assert state_dict[key].shape == shape
    assert all(value.dtype == np.float32 for value in state_dict.values())
    assert all(np.isfinite(value).all() for value in state_dict.values())
    assert all(value.flags.c_contiguous and value.flags.writeable for value in state_dict.values())


@pytest.mark.parametrize("container", [_legacy_file, _zip_file], ids=["legacy", "zip"])
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("subprocess", "check_call"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "load"),
    ],
)
def test_refuses_any_other_global(
    tmp_path: Path, container: Callable[[bytes], bytes], module: str, name: str
) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pt"
    path.write_bytes(container(_calls(module, name, f"touch {marker}")))
    with pytest.raises(ForbiddenGlobalError, match=rf"refused to load the global {module}\.{name}"):
        read_state_dict(path)
    assert not marker.exists()


def test_refuses_a_global_in_the_legacy_header(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pt"
    path.write_bytes(_calls("os", "system", f"touch {marker}") + b"rest")
    with pytest.raises(ForbiddenGlobalError):
        read_state_dict(path)
    assert not marker.exists()


def test_refuses_what_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    path.write_bytes(_legacy_file(pickle.dumps([1, 2, 3], protocol=2)))
    with pytest.raises(TorchFileError, match="not a state dict"):
        read_state_dict(path)
    path.write_bytes(b"\x00 not a pickle at all")
    with pytest.raises(TorchFileError):
        read_state_dict(path)


def test_refuses_a_truncated_or_padded_file(tmp_path: Path) -> None:
    data = mtcnn_weights_path("pnet").read_bytes()
    path = tmp_path / "pnet.pt"
    path.write_bytes(data[:-10])
    with pytest.raises(TorchFileError, match="truncated"):
        read_state_dict(path)
    path.write_bytes(data + b"\x00")
    with pytest.raises(TorchFileError, match="bytes left"):
        read_state_dict(path)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_what_torch_writes_as_torch_does(
    tmp_path: Path, zip_format: bool, torch_module: ModuleType
) -> None:
    """Dtypes, a transposed view, views sharing one storage at offsets, an empty and a 0-d tensor."""
    torch = torch_module
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "float": torch.randn(3, 5, generator=torch.Generator().manual_seed(0)),
        "half": torch.tensor([1.5, -2.0], dtype=torch.float16),
        "long": torch.tensor(7, dtype=torch.int64),
        "bool": torch.tensor([True, False]),
        "transposed": base.t(),
        "row": base[2],
        "column": base[:, 3],
        "empty": torch.zeros(0, 4),
    }
    path = tmp_path / "state.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_state_dict(path)
    expected = torch.load(path, weights_only=True)
    assert list(loaded) == list(expected)
    for key, tensor in expected.items():
        np.testing.assert_array_equal(loaded[key], tensor.numpy(), err_msg=key)
        assert loaded[key].dtype == tensor.numpy().dtype, key
