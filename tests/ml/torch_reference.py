"""facenet-pytorch's networks on PyTorch: the reference the ONNX exports are compared with.

Tests only, and only where the ``torch`` group is installed (``uv sync --group torch``): import this
module after ``pytest.importorskip("torch", reason=TORCH_MISSING)``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from torch import nn

from ml.embedder import EMBEDDING_DIM, check_crop, standardise
from ml.types import Embeddings, RGBImage

FloatArray = npt.NDArray[np.float32]


def inception_resnet(state_dict: Mapping[str, npt.NDArray[Any]]) -> InceptionResnetV1:
    """An eval-mode ``InceptionResnetV1(classify=False)`` holding ``state_dict`` (strict load)."""
    model = InceptionResnetV1(pretrained=None, classify=False)
    model.load_state_dict(
        {key: torch.from_numpy(np.array(value)) for key, value in state_dict.items()}, strict=True
    )
    model.eval()
    return model


def mtcnn_modules() -> tuple[nn.Module, nn.Module, nn.Module]:
    """facenet-pytorch's eval-mode P-, R- and O-Net with the weights that ship in its wheel
    (loaded by facenet-pytorch itself, with ``torch.load``)."""
    nets = (PNet(pretrained=True), RNet(pretrained=True), ONet(pretrained=True))
    for net in nets:
        net.eval()
    return nets


class TorchMtcnnNets:
    """facenet-pytorch's MTCNN networks behind :class:`ml.detection.mtcnn.MtcnnNets`."""

    def __init__(self) -> None:
        self._pnet, self._rnet, self._onet = mtcnn_modules()
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
    """FaceNet on PyTorch with :class:`ml.embedder.FaceNetEmbedder`'s interface."""

    def __init__(self, state_dict: Mapping[str, npt.NDArray[Any]], *, batch_size: int = 32) -> None:
        self._model = inception_resnet(state_dict)
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
