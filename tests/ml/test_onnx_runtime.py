"""The ONNX models the service runs: parity with PyTorch on real faces and photos (where the
``torch`` group is installed), the checked cache, exports in a child process, and a runtime
without torch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from ml.detection.mtcnn import MTCNNFaceDetector, MtcnnNets, OnnxMtcnnNets, _fast_nms
from ml.embedder import FaceNetEmbedder
from ml.export.facenet import FaceNetWeights
from ml.types import DetectedFace
from ml.weights import onnx_models
from ml.weights.cache import (
    WeightsChecksumError,
    check_file,
    checksum_path,
    default_cache_dir,
)
from tests.ml.conftest import lfw_centre_crop

# Loads the real face models or torch (the reference): not in the fast set (docs/development.md).
pytestmark = pytest.mark.models

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDING_TOLERANCE = 1e-5
"""Largest |ONNX - torch| allowed in a unit embedding (measured 9.7e-8 over 24 LFW crops,
2026-12-06; logged by the test)."""
NETWORK_TOLERANCE = 1e-4
"""Largest |ONNX - torch| allowed in an MTCNN output (regressions, landmarks, probabilities) on
real photos (measured, see the test's log line)."""
PIXEL_TOLERANCE = 1e-3
"""Largest |ONNX - torch| allowed in a box or landmark coordinate, in pixels."""
BLOCKED = ("torch", "torchvision", "facenet_pytorch")
PARITY_PHOTOS = (
    "facenet_pytorch__multiface.jpg",
    "face_api_js__bbt3.jpg",
    "dlib__2007_007763.jpg",
)
"""Group photos whose every P/R/O-Net pass is compared with torch (big, crowded, small faces)."""


@pytest.fixture(scope="module")
def exported_cache() -> Path:
    """The default model cache with every ONNX model exported (by ``python -m ml.export`` or here, once)."""
    cache_dir = default_cache_dir()
    onnx_models.prepare_models(cache_dir, onnx_models.SERVICE_MODELS)
    for name in onnx_models.SERVICE_MODELS:
        onnx_models.load_onnx_model(cache_dir, name)
    return cache_dir


@pytest.fixture
def one_torch_thread(torch_module: ModuleType) -> Iterator[None]:
    """torch, the reference, on one thread: its OpenMP workers spin and would fight onnxruntime's
    for the shared cores."""
    torch = torch_module
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
    exported_cache: Path,
    shared_dir: Path,
    one_torch_thread: None,
    casia_graph_weights: FaceNetWeights,
) -> None:
    from tests.ml.torch_reference import TorchFaceNetEmbedder

    images = sorted((shared_dir / "faces" / "lfw").glob("*/*.jpg"))
    if len(images) < 1000:
        pytest.skip("LFW not found in ../shared")
    crops = [lfw_centre_crop(path) for path in images[:: len(images) // 24][:24]]
    onnx_rows = FaceNetEmbedder(cache_dir=exported_cache, batch_size=8).embed(crops)
    torch_rows = TorchFaceNetEmbedder(casia_graph_weights, batch_size=8).embed(crops)
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
    from tests.ml.torch_reference import TorchMtcnnNets

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


class ComparingNets:
    """The ONNX networks, each pass also run on torch: the worst |difference| per output."""

    def __init__(self, onnx_nets: MtcnnNets, torch_nets: MtcnnNets) -> None:
        self._onnx = onnx_nets
        self._torch = torch_nets
        self.worst: dict[str, float] = {}
        self.passes = 0

    def _compare(self, stage: str, ours: tuple[Any, ...], reference: tuple[Any, ...]) -> None:
        self.passes += 1
        names = onnx_models.MTCNN_OUTPUTS[f"mtcnn-{stage}.onnx"]
        for name, got, want in zip(names, ours, reference, strict=True):
            assert got.shape == want.shape, (stage, name)
            key = f"{stage}.{name}"
            self.worst[key] = max(
                self.worst.get(key, 0.0), float(np.abs(got - want).max(initial=0))
            )

    def pnet(self, images: Any) -> Any:
        ours = self._onnx.pnet(images)
        self._compare("pnet", ours, self._torch.pnet(images))
        return ours

    def rnet(self, crops: Any) -> Any:
        ours = self._onnx.rnet(crops)
        self._compare("rnet", ours, self._torch.rnet(crops))
        return ours

    def onet(self, crops: Any) -> Any:
        ours = self._onnx.onet(crops)
        self._compare("onet", ours, self._torch.onet(crops))
        return ours


def test_mtcnn_onnx_outputs_match_torch_on_real_photos(
    exported_cache: Path, shared_dir: Path, one_torch_thread: None
) -> None:
    """Every P-Net pyramid level and R/O-Net batch of a detection on real photos, through both."""
    from tests.ml.torch_reference import TorchMtcnnNets

    nets = ComparingNets(OnnxMtcnnNets(exported_cache, intra_op_threads=1), TorchMtcnnNets())
    detector = MTCNNFaceDetector(nets=nets)
    faces = sum(
        len(detector.detect(read_rgb(shared_dir / "faces" / "groups" / name)))
        for name in PARITY_PHOTOS
    )
    logger.info(f"MTCNN ONNX vs torch, {nets.passes} passes, {faces} faces: worst {nets.worst}")
    assert faces > 10
    assert set(nets.worst) == {
        f"{stage}.{name}"
        for stage in ("pnet", "rnet", "onet")
        for name in onnx_models.MTCNN_OUTPUTS[f"mtcnn-{stage}.onnx"]
    }
    assert max(nets.worst.values()) < NETWORK_TOLERANCE


def test_numpy_nms_keeps_what_torchvision_keeps(torch_module: ModuleType) -> None:
    """Many overlapping boxes with tied and degenerate ones, at MTCNN's two IoU thresholds."""
    torch = torch_module
    from torchvision.ops import nms as torchvision_nms  # type: ignore[import-untyped]

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


def _copy_mtcnn(source: Path, destination: Path) -> None:
    for name in onnx_models.MTCNN_FILENAMES:
        shutil.copyfile(source / name, destination / name)
        shutil.copyfile(checksum_path(source / name), checksum_path(destination / name))


def test_a_damaged_onnx_file_is_detected_and_exported_again(
    exported_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _copy_mtcnn(exported_cache, tmp_path)
    damaged = tmp_path / onnx_models.RNET_FILENAME
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the weights
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        check_file(damaged, version=onnx_models.EXPORT_VERSION)

    with caplog.at_level(logging.INFO):
        OnnxMtcnnNets(tmp_path, intra_op_threads=1)  # exported again, in a child process
    check_file(damaged, version=onnx_models.EXPORT_VERSION)
    assert damaged.read_bytes() == (exported_cache / onnx_models.RNET_FILENAME).read_bytes()
    record = json.loads(checksum_path(damaged).read_text())
    assert record["version"] == onnx_models.EXPORT_VERSION
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]
    # Damage is worth a warning; the export's own lines come from the child, under its names.
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == [
        "ml.weights.onnx_models"
    ]
    assert any(r.name == "ml.export.mtcnn" and "exported" in r.message for r in caplog.records)


def test_an_older_exporters_cache_is_exported_again_quietly(
    exported_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade: files recorded by exporter version 1 are exported again, at INFO only."""
    _copy_mtcnn(exported_cache, tmp_path)
    for name in onnx_models.MTCNN_FILENAMES:
        record_path = checksum_path(tmp_path / name)
        record = json.loads(record_path.read_text())
        record_path.write_text(json.dumps({**record, "version": "1"}))
    with caplog.at_level(logging.INFO):
        onnx_models.prepare_models(tmp_path, onnx_models.MTCNN_FILENAMES)
        OnnxMtcnnNets(tmp_path, intra_op_threads=1)
    for name in onnx_models.MTCNN_FILENAMES:
        assert json.loads(checksum_path(tmp_path / name).read_text())["version"] == "2"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("written by exporter version 1" in r.getMessage() for r in caplog.records)


def test_a_failed_export_names_the_command(tmp_path: Path) -> None:
    weights = tmp_path / "broken.pt"
    weights.write_bytes(b"not a torch file")
    with pytest.raises(onnx_models.ModelNotExportedError) as raised:
        onnx_models.load_facenet_onnx(tmp_path, weights)
    message = str(raised.value)
    assert f"python -m ml.export --cache-dir {tmp_path}" in message
    assert "--embedder-weights" in message
    assert "TorchFileError" in message  # the child's traceback tail


# --- the runtime without torch ------------------------------------------------------------------------------------

_BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
                raise ModuleNotFoundError(f"blocked by the test: {name}", name=name)
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)


def run_without_torch(
    script: str, cache_dir: Path, blocked: tuple[str, ...] = BLOCKED
) -> subprocess.CompletedProcess[str]:
    """``script`` in a new interpreter where importing any of ``blocked`` fails."""
    environment = {
        **os.environ,
        "ROLLCALL_MODEL_CACHE": str(cache_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-c", f"BLOCKED = {blocked!r}\n" + _BLOCK_TORCH + textwrap.dedent(script)],
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


_EXPORT_ON_FIRST_USE = """
    import json
    from pathlib import Path

    import cv2

    from ml.detection.mtcnn import MTCNNFaceDetector

    detector = MTCNNFaceDetector(intra_op_threads=1)  # an empty cache: exported in a child process
    image = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
    faces = detector.detect(image)
    imported = sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("onnx", "torch") or name.startswith("ml.export")
    )
    print(json.dumps({{"faces": len(faces), "imported": imported}}))
"""


def test_missing_models_are_exported_in_a_child_process(shared_dir: Path, tmp_path: Path) -> None:
    """A first start without torch: the models are exported, and the process that needed them
    imported neither the exporter nor onnx (nor torch)."""
    photo = shared_dir / "faces" / "groups" / "facenet_pytorch__multiface.jpg"
    result = run_without_torch(_EXPORT_ON_FIRST_USE.format(photo=str(photo)), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["faces"] >= 5
    assert report["imported"] == []
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix == ".onnx") == sorted(
        onnx_models.MTCNN_FILENAMES
    )


def test_missing_models_without_the_exporter_fail_with_the_command_to_run(tmp_path: Path) -> None:
    """Where onnx is not installed (the Docker image, whose cache is baked in), an empty cache
    fails at start with the command that fills it."""
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
    result = run_without_torch(script, tmp_path, blocked=(*BLOCKED, "onnx"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"python -m ml.export --cache-dir {tmp_path}" in result.stdout
    assert str(tmp_path / onnx_models.PNET_FILENAME) in result.stdout
    assert list(tmp_path.iterdir()) == []
