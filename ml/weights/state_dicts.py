"""Torch state dicts in checksummed safetensors files (the converted FaceNet weights; export-time only)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ml.weights.cache import WeightsChecksumError, write_atomically

CONVERTER_VERSION = "1"
"""Bump when the conversion changes, so caches written by an older converter are redone."""

_METADATA_CHECKSUM = "rollcall.tensors_sha256"
_METADATA_CONVERTER = "rollcall.converter_version"
_METADATA_SOURCE = "rollcall.source"


def tensors_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor, in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checked_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: Path, source: str
) -> None:
    """Write ``state_dict`` with its checksum in the safetensors metadata, atomically (temp file + rename)."""
    metadata = {
        _METADATA_CHECKSUM: tensors_sha256(state_dict),
        _METADATA_CONVERTER: CONVERTER_VERSION,
        _METADATA_SOURCE: source,
    }
    tensors = {key: value.contiguous() for key, value in state_dict.items()}
    write_atomically(path, lambda temp: save_file(tensors, temp, metadata=metadata))


def load_checked_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a file written by :func:`save_checked_safetensors`; raise :class:`WeightsChecksumError` if it is damaged."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsChecksumError(f"{path}: unreadable safetensors file ({error})") from error
    recorded = metadata.get(_METADATA_CHECKSUM)
    if recorded is None:
        raise WeightsChecksumError(f"{path}: no checksum recorded")
    actual = tensors_sha256(state_dict)
    if actual != recorded:
        raise WeightsChecksumError(
            f"{path}: checksum mismatch (recorded {recorded[:12]}..., got {actual[:12]}...)"
        )
    if metadata.get(_METADATA_CONVERTER) != CONVERTER_VERSION:
        raise WeightsChecksumError(
            f"{path}: written by converter version {metadata.get(_METADATA_CONVERTER)!r}, expected {CONVERTER_VERSION}"
        )
    return state_dict
