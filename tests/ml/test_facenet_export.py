"""FaceNet exported to ONNX from the CASIA-WebFace TensorFlow graph (ml.export.facenet, ml.export.tf_graph).

The graph itself, run by OpenCV's dnn module, is the reference here (no torch); facenet-pytorch's
module is the second one where the ``torch`` group is installed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import struct
import threading
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from ml.embedder import FaceNetEmbedder, standardise
from ml.export import cli, facenet
from ml.export.facenet import (
    BATCH_NORM_EPS,
    STALE_CONVERTED_WEIGHTS,
    FaceNetWeights,
    export_facenet,
    facenet_onnx_bytes,
    identity_running_var,
    load_facenet_weights,
)
from ml.export.tf_graph import decode_tensor_proto, parse_graph_def
from ml.onnx_session import create_session
from ml.weights import onnx_models
from ml.weights.cache import checksum_path, default_cache_dir, save_checked_file
from ml.weights.sources import facenet_graph_path
from tests.ml.conftest import lfw_centre_crop

logger = logging.getLogger(__name__)

PARITY_CROP_COUNT = 20
GRAPH_TOLERANCE = 1e-5
"""Largest |ONNX - TF graph| in a unit embedding (measured: see the test's log line)."""


def spread_lfw_images(shared_dir: Path, count: int) -> list[Path]:
    """``count`` LFW images spread evenly over the sorted list (many different people)."""
    images = sorted((shared_dir / "faces" / "lfw").glob("*/*.jpg"))
    if len(images) < count:
        pytest.skip(f"need {count} LFW images, found {len(images)}")
    step = len(images) // count
    return images[::step][:count]


@pytest.fixture(scope="module")
def exported_facenet() -> Path:
    """The CASIA-WebFace export in the default model cache (exported once if missing)."""
    cache_dir = default_cache_dir()
    return onnx_models.load_onnx_model(cache_dir, onnx_models.CASIA_ONNX_FILENAME)


# --- the protobuf reader ---------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _shape(*dims: int) -> bytes:
    return b"".join(_length_delimited(2, _varint(1 << 3) + _varint(size)) for size in dims)


def test_decode_tensor_proto_packed_floats_fill_with_last_value() -> None:
    # dtype=DT_FLOAT, shape (2, 3), packed float_val [1.5, -2.0]: TF repeats the last value to fill the shape.
    proto = (
        _varint(1 << 3)
        + _varint(1)
        + _length_delimited(2, _shape(2, 3))
        + _length_delimited(5, struct.pack("<2f", 1.5, -2.0))
    )
    tensor = decode_tensor_proto(proto)
    assert tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor, [[1.5, -2.0, -2.0], [-2.0, -2.0, -2.0]])


def test_decode_tensor_proto_unpacked_negative_ints_and_raw_content() -> None:
    # dtype=DT_INT32, shape (2,), two unpacked int_val varints, the first negative (10-byte two's complement).
    ints = (
        _varint(1 << 3)
        + _varint(3)
        + _length_delimited(2, _shape(2))
        + _varint(7 << 3)
        + _varint(-1)
        + _varint(7 << 3)
        + _varint(512)
    )
    np.testing.assert_array_equal(decode_tensor_proto(ints), np.array([-1, 512], dtype=np.int32))
    raw_values = np.arange(6, dtype="<f4")
    content = (
        _varint(1 << 3)
        + _varint(1)
        + _length_delimited(2, _shape(3, 2))
        + _length_delimited(4, raw_values.tobytes())
    )
    np.testing.assert_array_equal(decode_tensor_proto(content), raw_values.reshape(3, 2))


@pytest.mark.models  # parses the 94 MB graph
def test_graph_structure_is_what_the_mapping_assumes() -> None:
    nodes = {node.name: node for node in parse_graph_def(facenet_graph_path().read_bytes())}
    assert nodes[facenet.GRAPH_INPUT_NAME].op == "Placeholder"
    first_conv = nodes["InceptionResnetV1/Conv2d_1a_3x3/Conv2D"]
    assert first_conv.string_attr("data_format") == "NHWC"
    assert first_conv.string_attr("padding") == "VALID"
    assert nodes["InceptionResnetV1/Conv2d_1a_3x3/weights"].tensor_attr().shape == (3, 3, 3, 32)
    # The output is already L2-normalised: embeddings = x * rsqrt(max(sum(x^2), eps)).
    assert nodes[facenet.GRAPH_OUTPUT_NAME].op == "Mul"
    assert nodes["embeddings/Rsqrt"].op == "Rsqrt"
    assert nodes[facenet.GRAPH_BOTTLENECK_OUTPUT_NAME].op == "FusedBatchNorm"


# --- the weights and the graph built from them ------------------------------------------------------------------------


def test_identity_running_variance_leaves_the_folded_weights_unchanged() -> None:
    variance = np.float64(identity_running_var(BATCH_NORM_EPS))
    scale = 1.0 / np.sqrt(variance + BATCH_NORM_EPS)
    weights = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    np.testing.assert_array_equal((weights.astype(np.float64) * scale).astype(np.float32), weights)


def test_the_builder_takes_every_weight_once_with_its_shape(
    casia_graph_weights: FaceNetWeights,
) -> None:
    missing = dict(casia_graph_weights)
    del missing["last_bn.bias"]
    with pytest.raises(ValueError, match=r"no last_bn\.bias"):
        facenet_onnx_bytes(missing)
    extra = {**casia_graph_weights, "repeat_9.conv2d.weight": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match=r"left unused: \['repeat_9\.conv2d\.weight'\]"):
        facenet_onnx_bytes(extra)
    wrong = {**casia_graph_weights, "conv2d_1a.conv.weight": np.zeros((32, 3, 5, 5), np.float32)}
    with pytest.raises(ValueError, match=r"conv2d_1a\.conv\.weight has shape"):
        facenet_onnx_bytes(wrong)


@pytest.mark.slow  # cv2.dnn runs the 94 MB graph one crop at a time
def test_onnx_matches_the_tensorflow_graph_on_lfw_faces(
    exported_facenet: Path, shared_dir: Path
) -> None:
    """Same standardised crops through cv2.dnn on the original graph and through the ONNX export."""
    crops = np.stack(
        [lfw_centre_crop(path) for path in spread_lfw_images(shared_dir, PARITY_CROP_COUNT)]
    )
    batch_nchw = np.ascontiguousarray(standardise(crops).transpose(0, 3, 1, 2))
    # The graph hard-codes batch 1 in its reshapes, so cv2.dnn runs one crop at a time.
    net = cv2.dnn.readNetFromTensorflow(str(facenet_graph_path()))
    graph_rows = []
    for index in range(len(batch_nchw)):
        net.setInput(batch_nchw[index : index + 1])
        graph_rows.append(net.forward(facenet.GRAPH_OUTPUT_NAME).reshape(-1))
    graph_embeddings = np.stack(graph_rows)
    onnx_embeddings = FaceNetEmbedder(exported_facenet, batch_size=8).embed(list(crops))
    difference = float(np.abs(onnx_embeddings - graph_embeddings).max())
    logger.info(f"FaceNet ONNX vs the TF graph (cv2.dnn), {len(crops)} LFW crops: {difference:.3g}")
    assert difference < GRAPH_TOLERANCE
    # Different people give different embeddings (a constant output cannot pass).
    assert float(np.abs(graph_embeddings[0] - graph_embeddings[1]).max()) > 100 * GRAPH_TOLERANCE


def test_the_export_is_deterministic_and_documents_its_io(
    exported_facenet: Path, casia_graph_weights: FaceNetWeights
) -> None:
    again = facenet_onnx_bytes(casia_graph_weights, source=_recorded_source(exported_facenet))
    assert (
        hashlib.sha256(again).hexdigest()
        == hashlib.sha256(exported_facenet.read_bytes()).hexdigest()
    )
    session = create_session(exported_facenet, intra_op_threads=1)
    (faces,) = session.get_inputs()
    (embeddings,) = session.get_outputs()
    assert (faces.name, faces.shape, faces.type) == (
        onnx_models.FACENET_INPUT,
        ["batch", 3, 160, 160],
        "tensor(float)",
    )
    assert (embeddings.name, embeddings.shape) == (onnx_models.FACENET_OUTPUT, ["batch", 512])


def _recorded_source(path: Path) -> str:
    import json

    source: str = json.loads(checksum_path(path).read_text())["source"]
    return source


@pytest.mark.models
def test_exporting_removes_the_older_exporters_converted_weights(tmp_path: Path) -> None:
    stale = tmp_path / STALE_CONVERTED_WEIGHTS
    stale.write_bytes(b"94 MB that nothing reads any more")
    path = export_facenet(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, checksum_path(path).name]
    )


# --- the cache and the command line -------------------------------------------------------------------------------


def test_concurrent_writers_leave_one_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    candidates = [bytes([index]) * 1_000_000 for index in range(4)]
    errors: list[BaseException] = []

    def write_repeatedly(data: bytes) -> None:
        try:
            for _ in range(5):
                save_checked_file(data, target, version="test", source="test")
        except BaseException as error:  # collected and re-raised by the main thread
            errors.append(error)

    threads = [threading.Thread(target=write_repeatedly, args=(data,)) for data in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in candidates
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        target.name,
        checksum_path(target).name,
    ]


def test_cli_verifies_an_exported_cache_and_prints_its_files(
    exported_facenet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = exported_facenet.parent
    onnx_models.prepare_models(cache_dir, onnx_models.SERVICE_MODELS)
    for name in onnx_models.SERVICE_MODELS:
        shutil.copyfile(cache_dir / name, tmp_path / name)
        shutil.copyfile(checksum_path(cache_dir / name), checksum_path(tmp_path / name))
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    assert cli.main(["--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / name) for name in onnx_models.SERVICE_MODELS
    ]
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == before


def test_cli_refuses_an_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--cache-dir", str(tmp_path), "--only", "facenet-other.onnx"])
    assert list(tmp_path.iterdir()) == []


# --- against facenet-pytorch (the torch group) --------------------------------------------------------------------


def test_casia_weights_load_strictly_into_facenet_pytorch(
    casia_graph_weights: FaceNetWeights, torch_module: ModuleType
) -> None:
    from tests.ml.torch_reference import inception_resnet

    model = inception_resnet(casia_graph_weights)
    assert not model.training


def test_identity_batch_norm_is_an_exact_bias_add(torch_module: ModuleType) -> None:
    torch = torch_module
    channels = 64
    batch_norm = torch.nn.BatchNorm2d(channels, eps=BATCH_NORM_EPS).eval()
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch_norm.weight.fill_(1.0)
        batch_norm.bias.copy_(bias)
        batch_norm.running_mean.zero_()
        batch_norm.running_var.fill_(float(identity_running_var(BATCH_NORM_EPS)))
    features = torch.randn(2, channels, 5, 5, generator=torch.Generator().manual_seed(1)) * 50
    with torch.inference_mode():
        torch.testing.assert_close(
            batch_norm(features), features + bias[None, :, None, None], rtol=0, atol=0
        )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_facenet_pytorch_checkpoint_exports_to_the_same_function(
    tmp_path: Path, zip_format: bool, torch_module: ModuleType
) -> None:
    """A VGGFace2-style checkpoint (classifier included, real batch norms) saved by torch in either
    of its formats: read without torch, exported, and equal to facenet-pytorch's module."""
    torch = torch_module
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=True, num_classes=7).eval()
    with torch.no_grad():  # batch norms that are not the identity, as trained ones are
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)

    weights = load_facenet_weights(path)
    assert not any(key.startswith("logits.") for key in weights)
    session = create_session(facenet_onnx_bytes(weights), intra_op_threads=1)
    faces = np.random.default_rng(0).uniform(-1, 1, (2, 3, 160, 160)).astype(np.float32)
    (embeddings,) = session.run(None, {onnx_models.FACENET_INPUT: faces})
    model.classify = False
    with torch.inference_mode():
        expected = model(torch.from_numpy(faces)).numpy()
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=1e-5)
