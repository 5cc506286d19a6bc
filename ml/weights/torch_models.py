"""The PyTorch networks the ONNX models are exported from (export time, parity tests and benchmarks only).

The service never imports this module: it runs the ONNX exports through onnxruntime.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from torch import nn

from ml.embedder import EMBEDDING_DIM, check_crop, standardise
from ml.types import Embeddings, RGBImage
from ml.weights.facenet_casia import (
    build_inception_resnet,
    check_against_model,
    converted_casia_weights,
)
from ml.weights.state_dicts import load_checked_safetensors

FloatArray = npt.NDArray[np.float32]


def load_vggface2_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """facenet-pytorch's ``20180402-114759-vggface2.pt`` state dict without its classifier (``logits.*``)."""
    loaded = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(loaded).__name__}")
    state_dict = {key: value for key, value in loaded.items() if not key.startswith("logits.")}
    check_against_model(state_dict)
    return state_dict


def load_facenet_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Checked state dict from a converted ``.safetensors`` file or a facenet-pytorch ``.pt`` state dict."""
    if path.suffix == ".safetensors":
        state_dict = load_checked_safetensors(path)
        check_against_model(state_dict)
        return state_dict
    if path.suffix in (".pt", ".pth"):
        return load_vggface2_state_dict(path)
    raise ValueError(f"{path}: expected a .safetensors or .pt weights file")


def load_facenet_module(
    weights: Path | None = None, cache_dir: Path | None = None
) -> InceptionResnetV1:
    """Eval-mode FaceNet: ``weights`` (``.safetensors``/``.pt``), or the converted CASIA-WebFace weights."""
    if weights is None:
        weights = converted_casia_weights(cache_dir)
    return build_inception_resnet(load_facenet_state_dict(weights))


def load_mtcnn_modules() -> tuple[nn.Module, nn.Module, nn.Module]:
    """facenet-pytorch's eval-mode P-, R- and O-Net with the weights that ship in its wheel."""
    nets = (PNet(pretrained=True), RNet(pretrained=True), ONet(pretrained=True))
    for net in nets:
        net.eval()
    return nets


class TorchMtcnnNets:
    """facenet-pytorch's MTCNN networks behind :class:`ml.detection.mtcnn.MtcnnNets` (the reference for parity)."""

    def __init__(self) -> None:
        self._pnet, self._rnet, self._onet = load_mtcnn_modules()
        for net in (self._pnet, self._rnet, self._onet):
            # channels_last makes the small-channel convolutions 2-3x faster on CPU (oneDNN).
            net.to(memory_format=torch.channels_last)

    def _run(self, net: nn.Module, batch: FloatArray) -> tuple[FloatArray, ...]:
        tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            outputs = net(tensor)
        return tuple(np.ascontiguousarray(output.numpy()) for output in outputs)

    def pnet(self, images: FloatArray) -> tuple[FloatArray, FloatArray]:
        regression, probabilities = self._run(self._pnet, images)
        return regression, probabilities

    def rnet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray]:
        regression, probabilities = self._run(self._rnet, crops)
        return regression, probabilities

    def onet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        regression, landmarks, probabilities = self._run(self._onet, crops)
        return regression, landmarks, probabilities


class TorchFaceNetEmbedder:
    """FaceNet on PyTorch with :class:`ml.embedder.FaceNetEmbedder`'s interface (the reference for parity)."""

    def __init__(
        self, weights: Path | None = None, *, batch_size: int = 32, cache_dir: Path | None = None
    ) -> None:
        self._model = load_facenet_module(weights, cache_dir)
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        for index, crop in enumerate(crops):
            check_crop(crop, index)
        rows = [np.zeros((0, EMBEDDING_DIM), np.float32)]
        for start in range(0, len(crops), self._batch_size):
            batch = standardise(np.stack(crops[start : start + self._batch_size]))
            with self._lock, torch.inference_mode():
                rows.append(self._model(torch.from_numpy(batch.transpose(0, 3, 1, 2))).numpy())
        embeddings: Embeddings = np.concatenate(rows)
        return embeddings
