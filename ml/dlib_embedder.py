"""dlib's ResNet face descriptor (the network behind face_recognition), fed by the pipeline's detector.

Weights ship in the ``face-recognition-models`` wheel and the runtime in ``dlib-bin``, both from PyPI,
no torch. The pipeline's detector (MTCNN or YOLO) gives the face box; dlib's 5-point shape predictor
places its own landmarks inside that box, and ``dlib.get_face_chip`` cuts the 150 px chip the
network was trained on. Measured against dlib's own HOG detector on LFW View-2 (10 folds, 2026-11-29,
``python -m ml.eval lfw --data ../shared/faces/lfw --models dlib``): see the accuracy table of docs/accuracy.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.onnx_session import create_session, run_in_batches
from ml.types import DetectedFace, Embeddings, RGBImage, check_rgb_image
from ml.vectors import l2_normalize
from ml.weights.onnx_models import DLIB_CHIP_SIZE as DLIB_CHIP_SIZE
from ml.weights.onnx_models import DLIB_EMBEDDING_DIM as DLIB_EMBEDDING_DIM
from ml.weights.sources import RESNET_FILE, SHAPE_PREDICTOR_FILE, dlib_models_dir

DLIB_CHIP_PADDING = 0.25
"""dlib's own default padding for ``compute_face_descriptor``: the network was trained on such chips."""

DLIB_ONNX_MAX_BATCH = 16
"""Chips per onnxruntime pass: dlib's own ``compute_face_descriptor`` batch. Per face, batches of 8, 16
and 32 cost the same within noise (41-57, 45-59, 31-58 ms, 2 threads, load 8-10 on 2 cores,
2026-11-29), and the largest activation of 16 chips (32x72x72 floats each) is 11 MB."""


class DlibUnavailableError(RuntimeError):
    """dlib's runtime (the ``dlib-bin`` wheel) is not installed."""


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as error:  # pragma: no cover - dlib-bin is a runtime dependency
        raise DlibUnavailableError("the dlib embedder needs the 'dlib-bin' package") from error
    return dlib


class DlibChipCropper:
    """Face box -> dlib's 150 px chip, aligned on dlib's own 5 landmarks (a ``FaceCropper``).

    Only the box of the detected face is used: dlib's predictor was trained on boxes, and its
    landmarks (eye corners, nose base) are not MTCNN's (eye centres, nose tip, mouth corners).
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        self._dlib = _import_dlib()
        folder = models_dir or dlib_models_dir()
        self._predictor = self._dlib.shape_predictor(str(folder / SHAPE_PREDICTOR_FILE))
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return DLIB_CHIP_SIZE

    def crop(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        image = check_rgb_image(image)
        height, width = image.shape[:2]
        x1, y1, x2, y2 = face.box
        # dlib rectangles are inclusive integer pixels; keep at least one pixel inside the image.
        left = round(min(max(x1, 0.0), width - 1))
        top = round(min(max(y1, 0.0), height - 1))
        right = round(min(max(x2, left + 1.0), width - 1))
        bottom = round(min(max(y2, top + 1.0), height - 1))
        rectangle = self._dlib.rectangle(left, top, max(right, left), max(bottom, top))
        contiguous = np.ascontiguousarray(image)
        with self._lock:
            shape = self._predictor(contiguous, rectangle)
            chip = self._dlib.get_face_chip(
                contiguous, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING
            )
        result: RGBImage = np.ascontiguousarray(chip, dtype=np.uint8)
        return result


class DlibResNetEmbedder:
    """dlib's ResNet-34 face descriptor: 150 px chips -> 128-D unit embeddings (a ``FaceEmbedder``).

    dlib's raw descriptors are compared by euclidean distance and are not unit length; they are
    L2-normalised here so that every model of the pipeline is compared by cosine. Forward passes
    are serialised: dlib already uses every core for one batch.
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        self._dlib = _import_dlib()
        folder = models_dir or dlib_models_dir()
        self._network = self._dlib.face_recognition_model_v1(str(folder / RESNET_FILE))
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return DLIB_EMBEDDING_DIM

    @property
    def input_size(self) -> int:
        return DLIB_CHIP_SIZE

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        check_dlib_chips(crops)
        if len(crops) == 0:
            return np.zeros((0, DLIB_EMBEDDING_DIM), np.float32)
        chips = [np.ascontiguousarray(crop) for crop in crops]
        with self._lock:
            descriptors = self._network.compute_face_descriptor(chips)
        matrix = np.asarray([np.asarray(d, dtype=np.float32) for d in descriptors], np.float32)
        return l2_normalize(matrix)


class DlibResNetOnnxEmbedder:
    """dlib's ResNet exported to ONNX (:mod:`ml.export.dlib_resnet`), on onnxruntime (a ``FaceEmbedder``).

    The same function as :class:`DlibResNetEmbedder` (unit descriptors within 1e-6 of dlib's on real
    chips, ``tests/ml/test_dlib_onnx.py``) without dlib's runtime: the graph takes the uint8 chips as
    they are and returns dlib's raw descriptors, normalised here. Chips run ``max_batch`` at a time.
    """

    def __init__(
        self,
        model: bytes | Path,
        num_threads: int | None = None,
        max_batch: int = DLIB_ONNX_MAX_BATCH,
    ) -> None:
        """
        Args:
            model: the ``.onnx`` file written by :func:`ml.export.dlib_resnet.export_dlib_resnet_onnx`
                (``python -m ml.export`` puts it in the model cache), or its checked bytes.
            num_threads: onnxruntime intra-op threads (``None``: onnxruntime's default).
            max_batch: most chips per forward pass (bounds the activation memory).
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model_path = None if isinstance(model, bytes) else Path(model)
        self._session = create_session(model, intra_op_threads=num_threads)
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        expected_input = ["batch", DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3]
        if (
            len(inputs) != 1
            or list(inputs[0].shape)[1:] != expected_input[1:]
            or inputs[0].type != "tensor(uint8)"
            or len(outputs) != 1
            or list(outputs[0].shape)[1:] != [DLIB_EMBEDDING_DIM]
        ):
            raise ValueError(
                f"{self.model_path or 'the model'} is not the dlib ResNet export: inputs "
                f"{[(i.shape, i.type) for i in inputs]}, outputs {[o.shape for o in outputs]}"
            )
        self.max_batch = max_batch
        # Sessions may run concurrently, but one pass at a time keeps a small server's cores
        # from being oversubscribed (as for the YOLO detector).
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return DLIB_EMBEDDING_DIM

    @property
    def input_size(self) -> int:
        return DLIB_CHIP_SIZE

    def descriptors(self, crops: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """dlib's raw descriptors ``(N, 128)`` (euclidean distance 0.6 is dlib's same-person threshold)."""
        check_dlib_chips(crops)
        return run_in_batches(
            self._session,
            crops,
            batch_size=self.max_batch,
            output_dim=DLIB_EMBEDDING_DIM,
            lock=self._lock,
        )

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        return l2_normalize(self.descriptors(crops))


def check_dlib_chips(crops: Sequence[RGBImage]) -> None:
    """Raise ``ValueError`` naming the first crop that is not a uint8 150x150 RGB chip."""
    for index, crop in enumerate(crops):
        if (
            not isinstance(crop, np.ndarray)
            or crop.dtype != np.uint8
            or crop.shape != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3)
        ):
            shape = getattr(crop, "shape", None)
            raise ValueError(
                f"crop {index}: expected uint8 ({DLIB_CHIP_SIZE}, {DLIB_CHIP_SIZE}, 3), got {shape}"
            )
