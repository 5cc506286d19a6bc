"""The ONNX models the service runs: parity with PyTorch on real faces and photos, checks, and a torch-free runtime."""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import torch
from torchvision.ops import nms as torchvision_nms  # type: ignore[import-untyped]

from ml.detection.mtcnn import MTCNNFaceDetector, OnnxMtcnnNets, _fast_nms
from ml.embedder import FaceNetEmbedder
from ml.types import DetectedFace
from ml.weights import onnx_models
from ml.weights.cache import (
    WeightsChecksumError,
    check_file,
    checksum_path,
    default_cache_dir,
)
from ml.weights.torch_models import TorchFaceNetEmbedder, TorchMtcnnNets
from tests.ml.conftest import lfw_centre_crop

# Loads the real face models or torch (the reference): not in the fast set (README).
pytestmark = pytest.mark.models

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDING_TOLERANCE = 1e-4
"""Largest |ONNX - torch| allowed in a unit embedding (issue 13)."""
PIXEL_TOLERANCE = 1e-3
"""Largest |ONNX - torch| allowed in a box or landmark coordinate, in pixels."""
BLOCKED = ("torch", "torchvision", "facenet_pytorch")
TORCH_FREE_EXCEPTIONS = {
    # Export-time code, the evaluation tools and the projection head (being rewritten in numpy).
    "ml/weights/facenet_casia.py",
    "ml/weights/state_dicts.py",
    "ml/weights/torch_models.py",
    "ml/weights/onnx_export.py",
    "ml/weights/cli.py",
    "ml/weights/__main__.py",
    "ml/head.py",
}


@pytest.fixture(scope="module")
def exported_cache() -> Path:
    """The default model cache with every ONNX model exported (by ``python -m ml.weights`` or here, once)."""
    cache_dir = default_cache_dir()
    for name in [*onnx_models.MTCNN_FILENAMES, onnx_models.CASIA_ONNX_FILENAME]:
        onnx_models.load_onnx_model(cache_dir, name)
    return cache_dir


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread: its OpenMP workers spin and would fight onnxruntime's for the shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


# --- parity with PyTorch --------------------------------------------------------------------------------------------


def test_facenet_onnx_matches_torch_on_lfw_faces(
    exported_cache: Path, shared_dir: Path, one_torch_thread: None
) -> None:
    images = sorted((shared_dir / "faces" / "lfw").glob("*/*.jpg"))
    if len(images) < 1000:
        pytest.skip("LFW not found in ../shared")
    crops = [lfw_centre_crop(path) for path in images[:: len(images) // 24][:24]]
    onnx_rows = FaceNetEmbedder(cache_dir=exported_cache, batch_size=8).embed(crops)
    torch_rows = TorchFaceNetEmbedder(cache_dir=exported_cache, batch_size=8).embed(crops)
    difference = float(np.abs(onnx_rows - torch_rows).max())
    logger.info(f"FaceNet ONNX vs torch over {len(crops)} LFW crops: max |diff| {difference:.3g}")
    assert difference < EMBEDDING_TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(onnx_rows, axis=1), 1.0, atol=1e-5)
    # Different people give clearly different rows (a constant output cannot pass).
    assert float(np.abs(onnx_rows[0] - onnx_rows[1]).max()) > 100 * EMBEDDING_TOLERANCE


def _as_arrays(faces: list[DetectedFace]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4)
    scores = np.array([face.score for face in faces], dtype=np.float64)
    landmarks = np.array(
        [face.landmarks for face in faces if face.landmarks is not None], dtype=np.float64
    ).reshape(-1, 5, 2)
    return boxes, scores, landmarks


def test_mtcnn_onnx_matches_torch_on_the_group_photos(
    exported_cache: Path, shared_dir: Path, one_torch_thread: None
) -> None:
    """Same faces, boxes, scores and landmarks on every shared group photo: only the networks' runtime differs."""
    photos = sorted((shared_dir / "faces" / "groups").glob("*.jpg"))
    if not photos:
        pytest.skip("no group photos in ../shared")
    onnx_detector = MTCNNFaceDetector(model_cache_dir=exported_cache, intra_op_threads=1)
    torch_detector = MTCNNFaceDetector(nets=TorchMtcnnNets())
    total_faces = 0
    worst = {"box": 0.0, "landmark": 0.0, "score": 0.0}
    for photo in photos:
        image = read_rgb(photo)
        onnx_boxes, onnx_scores, onnx_landmarks = _as_arrays(onnx_detector.detect(image))
        torch_boxes, torch_scores, torch_landmarks = _as_arrays(torch_detector.detect(image))
        assert len(onnx_boxes) == len(torch_boxes), photo.name
        assert len(onnx_landmarks) == len(onnx_boxes) == len(torch_landmarks), photo.name
        total_faces += len(onnx_boxes)
        if len(onnx_boxes):
            worst["box"] = max(worst["box"], float(np.abs(onnx_boxes - torch_boxes).max()))
            worst["landmark"] = max(
                worst["landmark"], float(np.abs(onnx_landmarks - torch_landmarks).max())
            )
            worst["score"] = max(worst["score"], float(np.abs(onnx_scores - torch_scores).max()))
    logger.info(f"MTCNN ONNX vs torch on {len(photos)} photos, {total_faces} faces: worst {worst}")
    assert total_faces > 100
    assert worst["box"] < PIXEL_TOLERANCE
    assert worst["landmark"] < PIXEL_TOLERANCE
    assert worst["score"] < 1e-4


def test_numpy_nms_keeps_what_torchvision_keeps() -> None:
    """Many overlapping boxes with tied and degenerate ones, at MTCNN's two IoU thresholds."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        count = int(rng.integers(1, 3000))
        corners = rng.uniform(0, 500, size=(count, 2))
        sides = rng.uniform(0, 80, size=(count, 2))
        sides[rng.random(count) < 0.02] = 0.0  # zero-area boxes
        boxes = np.concatenate([corners, corners + sides], axis=1).astype(np.float32)
        scores = rng.choice(np.linspace(0.6, 1.0, 50), size=count).astype(np.float32)  # many ties
        candidates = np.concatenate([boxes, scores[:, None]], axis=1)
        for threshold in (0.5, 0.7):
            expected = torchvision_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
            np.testing.assert_array_equal(
                _fast_nms(candidates, threshold), expected.numpy(), err_msg=f"trial {trial}"
            )


# --- the cache --------------------------------------------------------------------------------------------------


def test_a_damaged_onnx_file_is_detected_and_exported_again(
    exported_cache: Path, tmp_path: Path
) -> None:
    for name in onnx_models.MTCNN_FILENAMES:
        shutil.copyfile(exported_cache / name, tmp_path / name)
        shutil.copyfile(checksum_path(exported_cache / name), checksum_path(tmp_path / name))
    damaged = tmp_path / onnx_models.RNET_FILENAME
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the weights
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        check_file(damaged, version=onnx_models.EXPORT_VERSION)

    OnnxMtcnnNets(tmp_path, intra_op_threads=1)  # torch is installed: exported again
    check_file(damaged, version=onnx_models.EXPORT_VERSION)
    record = json.loads(checksum_path(damaged).read_text())
    assert record["version"] == onnx_models.EXPORT_VERSION
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


# --- the runtime without torch ------------------------------------------------------------------------------------

_BLOCK_TORCH = textwrap.dedent(
    f"""
    import importlib.abc
    import sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ModuleNotFoundError(f"blocked by the test: {{name}}", name=name)
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)


def run_without_torch(script: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ROLLCALL_MODEL_CACHE": str(cache_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TORCH + textwrap.dedent(script)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


_DETECT_AND_EMBED = """
    import json
    from pathlib import Path

    import cv2
    import numpy as np

    from ml.align import crop_face
    from ml.config import PipelineConfig
    from ml.detection import create_detector
    from ml.embedder import FaceNetEmbedder

    image = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
    config = PipelineConfig(intra_op_threads=1)
    detector = create_detector("mtcnn", min_face_size=20, intra_op_threads=1)
    faces = detector.detect(image)
    crops = [crop_face(image, face, config.alignment) for face in faces]
    embeddings = FaceNetEmbedder(intra_op_threads=1).embed(crops)
    blocked = sorted(name for name in sys.modules if name.split(".")[0] in {blocked!r})
    print(json.dumps({{"faces": len(faces), "norms": np.linalg.norm(embeddings, axis=1).tolist(), "blocked": blocked}}))
"""


def test_detect_and_embed_without_torch(exported_cache: Path, shared_dir: Path) -> None:
    photo = shared_dir / "faces" / "groups" / "facenet_pytorch__multiface.jpg"
    result = run_without_torch(
        _DETECT_AND_EMBED.format(photo=str(photo), blocked=BLOCKED), exported_cache
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["faces"] >= 5
    np.testing.assert_allclose(report["norms"], 1.0, atol=1e-5)
    assert report["blocked"] == []


_BUILD_PIPELINE = """
    import json

    import cv2

    from ml.config import PipelineConfig
    from ml.factory import build_pipeline

    image = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
    pipeline = build_pipeline(PipelineConfig(intra_op_threads=1))
    faces = pipeline.detect(image)
    embedded = pipeline.embed_faces_by_model(image, faces)
    blocked = sorted(name for name in sys.modules if name.split(".")[0] in {blocked!r})
    counts = {{model: len(rows) for model, rows in embedded.items()}}
    print(json.dumps({{"faces": len(faces), "embedded": counts, "blocked": blocked}}))
"""


def test_the_pipeline_builds_and_runs_without_torch(exported_cache: Path, shared_dir: Path) -> None:
    photo = shared_dir / "faces" / "groups" / "facenet_pytorch__multiface.jpg"
    result = run_without_torch(
        _BUILD_PIPELINE.format(photo=str(photo), blocked=BLOCKED), exported_cache
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["faces"] >= 5
    # FaceNet and dlib's ResNet (the default fusion), both on onnxruntime.
    assert report["embedded"] == {"facenet": report["faces"], "dlib": report["faces"]}
    assert report["blocked"] == []


def test_missing_models_without_torch_fail_with_the_command_to_run(tmp_path: Path) -> None:
    script = """
        from ml.detection.mtcnn import MTCNNFaceDetector
        from ml.weights.onnx_models import ModelNotExportedError

        try:
            MTCNNFaceDetector()
        except ModelNotExportedError as error:
            print(error)
        else:
            raise SystemExit("loaded models from an empty cache")
    """
    result = run_without_torch(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python -m ml.weights --cache-dir" in result.stdout
    assert str(tmp_path / onnx_models.PNET_FILENAME) in result.stdout
    assert list(tmp_path.iterdir()) == []


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_runtime_module_imports_torch() -> None:
    """Not even inside a function: the service's runtime does not install torch (ml/eval is offline tooling)."""
    offenders = []
    for path in sorted([*REPO_ROOT.glob("app/**/*.py"), *REPO_ROOT.glob("ml/**/*.py")]):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in TORCH_FREE_EXCEPTIONS or relative.startswith("ml/eval/"):
            continue
        offenders += [
            f"{relative}: {module}"
            for module in _imported_modules(path)
            if module.split(".")[0] in BLOCKED
        ]
    assert offenders == []
