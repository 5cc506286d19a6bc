"""FaceNet (Inception-ResNet-v1) face embedder on facenet-pytorch, with weights from :mod:`ml.weights`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ml.protocols import FaceEmbedder
from ml.types import Embeddings, RGBImage
from ml.weights import build_inception_resnet, converted_casia_weights, load_facenet_state_dict

EMBEDDING_DIM = 512
INPUT_SIZE = 160


class FaceNetEmbedder:
    """Maps 160x160 RGB face crops to 512-d unit-norm embeddings (implements ``ml.protocols.FaceEmbedder``).

    ``weights`` is a converted ``.safetensors`` file (checksum verified) or facenet-pytorch's VGGFace2 ``.pt``
    state dict. Safe to call from several threads: forward passes are serialised by a lock, because torch
    already spreads one pass over all cores and concurrent passes would only contend for them.
    """

    def __init__(self, weights: Path, *, batch_size: int = 32, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._batch_size = batch_size
        self._device = torch.device(device)
        self._model = build_inception_resnet(load_facenet_state_dict(weights)).to(self._device)
        self._model.eval()
        self._forward_lock = threading.Lock()

    @classmethod
    def from_default(
        cls, cache_dir: Path | None = None, *, batch_size: int = 32, device: str = "cpu"
    ) -> FaceNetEmbedder:
        """The CASIA-WebFace FaceNet, converted once into ``cache_dir`` (default :func:`ml.weights.default_cache_dir`)."""
        return cls(converted_casia_weights(cache_dir), batch_size=batch_size, device=device)

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    @property
    def input_size(self) -> int:
        return INPUT_SIZE

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        """``(N, 512)`` float32 L2-normalised rows, one per crop, in order; ``ValueError`` on a wrong crop."""
        for index, crop in enumerate(crops):
            _check_crop(crop, index)
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        batches = []
        for start in range(0, len(crops), self._batch_size):
            batch = np.stack(crops[start : start + self._batch_size])
            batches.append(self._embed_batch(batch))
        embeddings: Embeddings = np.concatenate(batches, axis=0)
        return embeddings

    def _embed_batch(self, batch: np.ndarray) -> Embeddings:
        pixels = torch.from_numpy(batch).to(self._device).permute(0, 3, 1, 2).float()
        # Fixed standardisation the CASIA-WebFace FaceNet was trained with (see ml.weights.standardise).
        standardised = (pixels - 127.5) / 128.0
        with self._forward_lock, torch.inference_mode():
            # InceptionResnetV1(classify=False) ends with an L2 normalisation of each row.
            embeddings = self._model(standardised)
        result: Embeddings = embeddings.to(dtype=torch.float32, device="cpu").numpy()
        return result


def _check_crop(crop: object, index: int) -> None:
    if not isinstance(crop, np.ndarray):
        raise ValueError(f"crop {index}: expected a numpy array, got {type(crop).__name__}")
    if crop.dtype != np.uint8 or crop.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(
            f"crop {index}: expected uint8 ({INPUT_SIZE}, {INPUT_SIZE}, 3), got {crop.dtype} {crop.shape}"
        )


def embed_plain_and_mirrored(
    embedder: FaceEmbedder, crops: Sequence[RGBImage]
) -> tuple[Embeddings, Embeddings]:
    """``(plain, mirror_averaged)`` unit embeddings of ``crops`` from a single embedder call."""
    if not crops:
        empty = np.zeros((0, embedder.dim), np.float32)
        return empty, empty
    mirrored = [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
    both = embedder.embed([*crops, *mirrored])
    plain = both[: len(crops)]
    summed = plain + both[len(crops) :]
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    averaged: Embeddings = (summed / np.maximum(norms, 1e-12)).astype(np.float32)
    return plain, averaged
