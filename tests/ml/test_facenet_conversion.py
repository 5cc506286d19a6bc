"""Conversion of the CASIA-WebFace FaceNet TensorFlow graph into facenet-pytorch weights (ml.weights)."""

from __future__ import annotations

import logging
import shutil
import struct
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from facenet_pytorch import InceptionResnetV1

from ml.embedder import standardise
from ml.weights import cli, facenet_casia, onnx_models, state_dicts
from ml.weights.cache import WeightsChecksumError, checksum_path
from ml.weights.facenet_casia import (
    BATCH_NORM_EPS,
    build_inception_resnet,
    converted_casia_weights,
    facenet_graph_path,
    identity_running_var,
)
from ml.weights.state_dicts import load_checked_safetensors, save_checked_safetensors
from ml.weights.tf_graph import decode_tensor_proto, parse_graph_def
from ml.weights.torch_models import load_vggface2_state_dict
from tests.ml.conftest import lfw_centre_crop

# the TF graph through cv2.dnn beside the converted model on LFW faces
pytestmark = pytest.mark.slow


logger = logging.getLogger(__name__)

PARITY_CROP_COUNT = 20
PARITY_TOLERANCE = 1e-4


def spread_lfw_images(shared_dir: Path, count: int) -> list[Path]:
    """``count`` LFW images spread evenly over the sorted list (many different people)."""
    images = sorted((shared_dir / "faces" / "lfw").glob("*/*.jpg"))
    if len(images) < count:
        pytest.skip(f"need {count} LFW images, found {len(images)}")
    step = len(images) // count
    return images[::step][:count]


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


def test_graph_structure_is_what_the_mapping_assumes() -> None:
    nodes = {node.name: node for node in parse_graph_def(facenet_graph_path().read_bytes())}
    assert nodes[facenet_casia.GRAPH_INPUT_NAME].op == "Placeholder"
    first_conv = nodes["InceptionResnetV1/Conv2d_1a_3x3/Conv2D"]
    assert first_conv.string_attr("data_format") == "NHWC"
    assert first_conv.string_attr("padding") == "VALID"
    assert nodes["InceptionResnetV1/Conv2d_1a_3x3/weights"].tensor_attr().shape == (3, 3, 3, 32)
    # The output is already L2-normalised: embeddings = x * rsqrt(max(sum(x^2), eps)).
    assert nodes[facenet_casia.GRAPH_OUTPUT_NAME].op == "Mul"
    assert nodes["embeddings/Rsqrt"].op == "Rsqrt"
    assert nodes[facenet_casia.GRAPH_BOTTLENECK_OUTPUT_NAME].op == "FusedBatchNorm"


# --- the converted weights ----------------------------------------------------------------------------------------


def test_identity_batch_norm_is_an_exact_bias_add() -> None:
    channels = 64
    batch_norm = torch.nn.BatchNorm2d(channels, eps=BATCH_NORM_EPS).eval()
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(0))
    assert batch_norm.running_mean is not None and batch_norm.running_var is not None
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


def test_converted_weights_load_strictly(casia_weights: Path) -> None:
    state_dict = load_checked_safetensors(casia_weights)
    reference = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    assert set(state_dict) == set(reference)
    model = build_inception_resnet(state_dict)
    assert not model.training


def test_parity_with_opencv_dnn_on_lfw_faces(casia_weights: Path, shared_dir: Path) -> None:
    """Same standardised crops through cv2.dnn on the original graph and through the converted torch model.

    The graph's output ``embeddings`` is already L2-normalised, so the normalised embeddings are compared; the
    pre-normalisation bottleneck output (after its batch norm, norms around 20-30) is compared as well.
    """
    crops = np.stack(
        [lfw_centre_crop(path) for path in spread_lfw_images(shared_dir, PARITY_CROP_COUNT)]
    )
    batch_nchw = np.ascontiguousarray(standardise(crops).transpose(0, 3, 1, 2))

    # The graph hard-codes batch 1 in its reshapes, so cv2.dnn runs one crop at a time.
    net = cv2.dnn.readNetFromTensorflow(str(facenet_graph_path()))
    graph_embeddings = []
    graph_bottleneck = []
    for index in range(len(batch_nchw)):
        net.setInput(batch_nchw[index : index + 1])
        graph_embeddings.append(net.forward(facenet_casia.GRAPH_OUTPUT_NAME).reshape(-1))
        net.setInput(batch_nchw[index : index + 1])
        graph_bottleneck.append(net.forward(facenet_casia.GRAPH_BOTTLENECK_OUTPUT_NAME).reshape(-1))
    graph_normalised = np.stack(graph_embeddings)
    graph_raw = np.stack(graph_bottleneck)
    np.testing.assert_allclose(np.linalg.norm(graph_normalised, axis=1), 1.0, atol=1e-5)

    model = build_inception_resnet(load_checked_safetensors(casia_weights))
    captured: dict[str, torch.Tensor] = {}
    model.last_bn.register_forward_hook(
        lambda _module, _inputs, output: captured.__setitem__("raw", output.detach().clone())
    )
    with torch.inference_mode():
        torch_normalised = model(torch.from_numpy(batch_nchw)).numpy()
    torch_raw = captured["raw"].numpy()

    normalised_difference = float(np.abs(torch_normalised - graph_normalised).max())
    raw_difference = float(np.abs(torch_raw - graph_raw).max())
    logger.info(
        f"parity over {len(crops)} LFW crops: max |diff| normalised {normalised_difference:.3g}, "
        f"pre-normalisation {raw_difference:.3g} (norms {np.linalg.norm(graph_raw, axis=1).mean():.1f})"
    )
    assert normalised_difference < PARITY_TOLERANCE
    assert raw_difference < PARITY_TOLERANCE
    # Different people give different embeddings (guards against a constant output matching trivially).
    assert float(np.abs(graph_normalised[0] - graph_normalised[1]).max()) > 100 * PARITY_TOLERANCE


# --- the checksummed cache ----------------------------------------------------------------------------------------


def test_corrupted_cache_is_detected_and_reconverted(casia_weights: Path, tmp_path: Path) -> None:
    """A damaged cached file raises on load; ``converted_casia_weights`` logs it and converts again."""
    cached = tmp_path / facenet_casia.CASIA_WEIGHTS_FILENAME
    shutil.copyfile(casia_weights, cached)
    corrupted = bytearray(cached.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0x01  # one bit inside the tensor data
    cached.write_bytes(bytes(corrupted))

    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        load_checked_safetensors(cached)

    assert converted_casia_weights(tmp_path) == cached
    reconverted = load_checked_safetensors(cached)
    reference = load_checked_safetensors(casia_weights)
    assert state_dicts.tensors_sha256(reconverted) == state_dicts.tensors_sha256(reference)
    assert list(tmp_path.iterdir()) == [cached]  # no temp file left behind


def test_truncated_cache_is_detected(casia_weights: Path, tmp_path: Path) -> None:
    truncated = tmp_path / facenet_casia.CASIA_WEIGHTS_FILENAME
    truncated.write_bytes(casia_weights.read_bytes()[:100_000])
    with pytest.raises(WeightsChecksumError):
        load_checked_safetensors(truncated)


def test_concurrent_writers_leave_one_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    generator = torch.Generator().manual_seed(0)
    candidates = [{"w": torch.randn(256, 256, generator=generator)} for _ in range(4)]
    errors: list[BaseException] = []

    def write_repeatedly(state_dict: dict[str, torch.Tensor]) -> None:
        try:
            for _ in range(5):
                save_checked_safetensors(state_dict, target, source="test")
        except BaseException as error:  # collected and re-raised by the main thread
            errors.append(error)

    threads = [
        threading.Thread(target=write_repeatedly, args=(candidate,)) for candidate in candidates
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    loaded = load_checked_safetensors(target)["w"]
    assert any(torch.equal(loaded, candidate["w"]) for candidate in candidates)
    assert list(tmp_path.iterdir()) == [target]


def test_cli_reports_the_cached_path(
    casia_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copyfile(casia_weights, tmp_path / facenet_casia.CASIA_WEIGHTS_FILENAME)
    # The ONNX exports too (made once in the default cache by the same command), so that it only verifies them.
    onnx_names = [
        *onnx_models.MTCNN_FILENAMES,
        onnx_models.CASIA_ONNX_FILENAME,
        onnx_models.DLIB_ONNX_FILENAME,
    ]
    for name in onnx_names:
        exported = casia_weights.parent / name
        onnx_models.load_onnx_model(casia_weights.parent, name)
        shutil.copyfile(exported, tmp_path / name)
        shutil.copyfile(checksum_path(exported), checksum_path(tmp_path / name))
    assert cli.main(["--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / name) for name in [facenet_casia.CASIA_WEIGHTS_FILENAME, *onnx_names]
    ]


# --- facenet-pytorch's VGGFace2 state dict ------------------------------------------------------------------------


def test_vggface2_state_dict_loader_drops_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    classifier = InceptionResnetV1(pretrained=None, classify=True, num_classes=7)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(classifier.state_dict(), path)

    loaded = load_vggface2_state_dict(path)
    assert not any(key.startswith("logits.") for key in loaded)
    expected = {k: v for k, v in classifier.state_dict().items() if not k.startswith("logits.")}
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_vggface2_state_dict_loader_rejects_a_wrong_file(tmp_path: Path) -> None:
    state_dict = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    del state_dict["last_bn.bias"]
    path = tmp_path / "incomplete.pt"
    torch.save(state_dict, path)
    with pytest.raises(ValueError, match=r"missing \['last_bn.bias'\]"):
        load_vggface2_state_dict(path)
