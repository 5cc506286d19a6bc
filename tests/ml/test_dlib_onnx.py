"""dlib's face-recognition ResNet read from its .dat file and exported to ONNX (ml.export.dlib_resnet), against dlib itself."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper

from ml.dlib_embedder import (
    DLIB_CHIP_SIZE,
    DLIB_EMBEDDING_DIM,
    DlibChipCropper,
    DlibResNetEmbedder,
    DlibResNetOnnxEmbedder,
)
from ml.export.dlib_resnet import (
    AddPrev,
    Affine,
    Conv,
    DlibFormatError,
    DlibReader,
    FullyConnected,
    Pool,
    export_dlib_resnet_onnx,
    read_dlib_resnet,
)
from ml.types import DetectedFace
from ml.weights.cache import file_sha256
from ml.weights.sources import RESNET_FILE, dlib_models_dir

logger = logging.getLogger(__name__)

UNIT_TOLERANCE = 1e-4
"""Max abs difference of unit descriptors (issue 13).

Measured 2.2e-7 on these chips, 2026-11-29 (logged by the parity test:
``pytest tests/ml/test_dlib_onnx.py -k real_chips -o log_cli=true --log-cli-level=INFO``).
"""

LFW_CHIP_COUNT = 8
GROUP_PHOTO = "dlib__2007_007763.jpg"
"""Seven hand-boxed faces of 37-45 px: small, blurry group faces, unlike LFW's portraits."""


# --- dlib's serialization primitives -----------------------------------------------------------------------------


def test_reader_decodes_dlib_integers_bools_and_strings() -> None:
    # dlib's pack_int: control byte (0x80: negative, low nibble: byte count), then little-endian bytes.
    data = bytes([0x01, 0x02, 0x81, 0x11, 0x02, 0x2C, 0x01]) + b"10" + bytes([0x01, 0x03]) + b"abc"
    reader = DlibReader(data)
    assert reader.integer() == 2
    assert reader.integer() == -17
    assert reader.integer() == 300
    assert reader.boolean() is True
    assert reader.boolean() is False
    assert reader.string() == "abc"
    assert reader.remaining == 0


def test_reader_decodes_float_details_and_tensors() -> None:
    # 122.78199768066406 as float_details: mantissa 0xF59062 (3 bytes), exponent -17; from the real file's input layer.
    value = bytes([0x03, 0x62, 0x90, 0xF5, 0x81, 0x11])
    tensor = bytes([0x01, 0x02]) + bytes([0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01])
    tensor += struct.pack("<2f", 1.5, -2.25)
    reader = DlibReader(value + tensor)
    assert reader.floating() == pytest.approx(122.78199768066406, abs=0)
    array = reader.tensor()
    assert array.shape == (1, 2, 1, 1)
    assert array.reshape(-1).tolist() == [1.5, -2.25]


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # more than 8 bytes
        bytes([0x00]),  # zero bytes
        bytes([0x02, 0x01]),  # truncated
    ],
)
def test_reader_rejects_malformed_integers(data: bytes) -> None:
    with pytest.raises(DlibFormatError):
        DlibReader(data).integer()


def test_reader_rejects_a_bad_bool() -> None:
    with pytest.raises(DlibFormatError, match="bool"):
        DlibReader(b"x").boolean()


# --- the real network --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_bytes() -> bytes:
    return (dlib_models_dir() / RESNET_FILE).read_bytes()


def test_real_file_parses_to_dlibs_anet_type(resnet_bytes: bytes) -> None:
    network = read_dlib_resnet(resnet_bytes)
    layers = network.layers
    convs = [layer for layer in layers if isinstance(layer, Conv)]
    # 1 stem conv + 2 per residual block (3 + 4 + 3 + 3 + 1 blocks): ResNet-34 halved in depth and width.
    assert len(convs) == 29
    assert [conv.filters.shape[0] for conv in convs][:3] == [32, 32, 32]
    assert convs[0].filters.shape == (32, 3, 7, 7)
    assert sum(isinstance(layer, Affine) for layer in layers) == 29
    assert sum(isinstance(layer, AddPrev) for layer in layers) == 14
    pools = [layer for layer in layers if isinstance(layer, Pool)]
    assert pools[0].is_max and pools[-1].window == (0, 0)
    fc = layers[-1]
    assert isinstance(fc, FullyConnected)
    assert fc.weights.shape == (256, DLIB_EMBEDDING_DIM) and fc.bias is None
    assert network.input.size == DLIB_CHIP_SIZE
    assert network.input.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert network.metric_distance_threshold == pytest.approx(0.6)
    for layer in layers:
        if isinstance(layer, Conv | Affine | FullyConnected):
            arrays = [value for value in vars(layer).values() if isinstance(value, np.ndarray)]
            assert all(np.isfinite(array).all() for array in arrays)


def test_truncated_or_padded_file_is_rejected(resnet_bytes: bytes) -> None:
    with pytest.raises(DlibFormatError, match="truncated"):
        read_dlib_resnet(resnet_bytes[:-10])
    with pytest.raises(DlibFormatError, match="bytes left"):
        read_dlib_resnet(resnet_bytes + b"\x00")


def test_another_dlib_file_is_rejected() -> None:
    with pytest.raises(DlibFormatError):
        read_dlib_resnet((dlib_models_dir() / "mmod_human_face_detector.dat").read_bytes())


# --- export ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exported = export_dlib_resnet_onnx(tmp_path_factory.mktemp("dlib_onnx") / "dlib.onnx")
    assert exported.sha256 == file_sha256(exported.path)
    return exported.path


def test_export_is_deterministic_and_documents_its_io(exported_onnx: Path, tmp_path: Path) -> None:
    again = export_dlib_resnet_onnx(tmp_path / "again.onnx")
    assert again.sha256 == file_sha256(exported_onnx)
    model = onnx.load(str(exported_onnx))
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.type.tensor_type.elem_type == TensorProto.UINT8
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [dim.dim_value for dim in dims[1:]] == [DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3]
    assert graph_output.type.tensor_type.shape.dim[1].dim_value == DLIB_EMBEDDING_DIM
    properties = {prop.key: prop.value for prop in model.metadata_props}
    assert properties["source_sha256"] == file_sha256(dlib_models_dir() / RESNET_FILE)


def test_onnx_embedder_rejects_a_different_graph(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 160, 160])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 160, 160])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "other.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="not the dlib ResNet export"):
        DlibResNetOnnxEmbedder(path)


# --- parity with dlib on real chips -------------------------------------------------------------------------------


def _no_landmarks() -> npt.NDArray[np.float32]:
    return np.zeros((5, 2), np.float32)


def _rgb(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def real_chips(shared_dir: Path) -> list[npt.NDArray[np.uint8]]:
    """dlib chips of 8 LFW portraits (centre box) and the 7 hand-boxed faces of a group photo."""
    cropper = DlibChipCropper()
    images = sorted((shared_dir / "faces" / "lfw").glob("*/*.jpg"))
    if len(images) < LFW_CHIP_COUNT:
        pytest.skip("LFW images missing")
    chips = []
    for path in images[:: len(images) // LFW_CHIP_COUNT][:LFW_CHIP_COUNT]:
        # LFW images are 250x250 with the face centred.
        face = DetectedFace(box=(70.0, 70.0, 180.0, 180.0), score=1.0, landmarks=_no_landmarks())
        chips.append(cropper.crop(_rgb(path), face))
    groups = shared_dir / "faces" / "groups"
    group = _rgb(groups / GROUP_PHOTO)
    for line in (groups / "dlib_face_boxes.tsv").read_text().splitlines():
        fields = line.split("\t")
        if fields[0] != GROUP_PHOTO:
            continue
        top, left, width, height = (float(value) for value in fields[2:6])
        face = DetectedFace(
            box=(left, top, left + width, top + height), score=1.0, landmarks=_no_landmarks()
        )
        chips.append(cropper.crop(group, face))
    assert len(chips) == LFW_CHIP_COUNT + 7
    return chips


@pytest.fixture(scope="module")
def dlib_embedder() -> DlibResNetEmbedder:
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def onnx_embedder(exported_onnx: Path) -> DlibResNetOnnxEmbedder:
    return DlibResNetOnnxEmbedder(exported_onnx, num_threads=2, max_batch=4)


def test_onnx_matches_dlib_on_real_chips(
    real_chips: list[npt.NDArray[np.uint8]],
    dlib_embedder: DlibResNetEmbedder,
    onnx_embedder: DlibResNetOnnxEmbedder,
) -> None:
    expected = dlib_embedder.embed(real_chips)
    actual = onnx_embedder.embed(real_chips)
    difference = float(np.abs(actual - expected).max())
    logger.info("dlib vs ONNX, %d chips: max abs difference %.2e", len(real_chips), difference)
    assert actual.shape == (len(real_chips), DLIB_EMBEDDING_DIM) and actual.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-6)
    assert difference < UNIT_TOLERANCE
    # Distinct faces stay distinct: the parity is not that of a constant output.
    assert float(np.abs(actual[0] - actual[LFW_CHIP_COUNT]).max()) > 100 * UNIT_TOLERANCE


def test_onnx_matches_dlib_on_mirrored_chips(
    real_chips: list[npt.NDArray[np.uint8]],
    dlib_embedder: DlibResNetEmbedder,
    onnx_embedder: DlibResNetOnnxEmbedder,
) -> None:
    # dlib's jitter flips chips; a mirrored face is a different input the export must also match.
    mirrored = [np.ascontiguousarray(chip[:, ::-1]) for chip in real_chips]
    expected = dlib_embedder.embed(mirrored)
    actual = onnx_embedder.embed(mirrored)
    assert float(np.abs(actual - expected).max()) < UNIT_TOLERANCE
    assert float(np.abs(actual - onnx_embedder.embed(real_chips)).max()) > 10 * UNIT_TOLERANCE


def test_raw_descriptors_match_dlibs_scale(
    real_chips: list[npt.NDArray[np.uint8]], onnx_embedder: DlibResNetOnnxEmbedder
) -> None:
    import dlib

    network = dlib.face_recognition_model_v1(str(dlib_models_dir() / RESNET_FILE))
    expected = np.asarray(
        [np.asarray(d) for d in network.compute_face_descriptor(real_chips[:3])], np.float32
    )
    np.testing.assert_allclose(onnx_embedder.descriptors(real_chips[:3]), expected, atol=1e-5)


def test_batches_do_not_change_results(
    real_chips: list[npt.NDArray[np.uint8]], exported_onnx: Path
) -> None:
    whole = DlibResNetOnnxEmbedder(exported_onnx, num_threads=1, max_batch=len(real_chips))
    one_by_one = DlibResNetOnnxEmbedder(exported_onnx, num_threads=1, max_batch=1)
    np.testing.assert_allclose(whole.embed(real_chips), one_by_one.embed(real_chips), atol=1e-6)


def test_onnx_embedder_checks_its_input(onnx_embedder: DlibResNetOnnxEmbedder) -> None:
    assert onnx_embedder.embed([]).shape == (0, DLIB_EMBEDDING_DIM)
    with pytest.raises(ValueError, match="crop 1"):
        onnx_embedder.embed(
            [
                np.zeros((DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3), np.uint8),
                np.zeros((160, 160, 3), np.uint8),
            ]
        )
    with pytest.raises(ValueError, match="crop 0"):
        onnx_embedder.embed([np.zeros((DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3), np.float32)])
    with pytest.raises(ValueError, match="max_batch"):
        DlibResNetOnnxEmbedder(Path("unused.onnx"), max_batch=0)
