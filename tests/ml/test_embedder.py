"""FaceNetEmbedder on the CASIA-WebFace FaceNet and real LFW faces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from ml.embedder import FaceNetEmbedder
from ml.protocols import FaceEmbedder
from tests.ml.conftest import lfw_centre_crop

# Loads the real face models or torch (the reference): not in the fast set (docs/development.md).
pytestmark = pytest.mark.models

# People with several LFW images; the first images of each (sorted by name) are used.
IDENTITIES = ("Colin_Powell", "George_W_Bush", "Gerhard_Schroeder", "Serena_Williams", "Tony_Blair")
IMAGES_PER_IDENTITY = 3


@pytest.fixture(scope="module")
def embedder() -> FaceNetEmbedder:
    return FaceNetEmbedder()


@pytest.fixture(scope="module")
def labelled_crops(shared_dir: Path) -> tuple[list[npt.NDArray[np.uint8]], list[str]]:
    crops: list[npt.NDArray[np.uint8]] = []
    labels: list[str] = []
    for identity in IDENTITIES:
        paths = sorted((shared_dir / "faces" / "lfw" / identity).glob("*.jpg"))[
            :IMAGES_PER_IDENTITY
        ]
        if len(paths) < IMAGES_PER_IDENTITY:
            pytest.skip(f"LFW has fewer than {IMAGES_PER_IDENTITY} images of {identity}")
        crops.extend(lfw_centre_crop(path) for path in paths)
        labels.extend([identity] * len(paths))
    return crops, labels


def test_implements_the_protocol(embedder: FaceNetEmbedder) -> None:
    protocol_view: FaceEmbedder = embedder
    assert protocol_view.dim == 512
    assert protocol_view.input_size == 160


def test_empty_input_gives_an_empty_matrix(embedder: FaceNetEmbedder) -> None:
    embeddings = embedder.embed([])
    assert embeddings.shape == (0, 512)
    assert embeddings.dtype == np.float32


@pytest.mark.parametrize(
    "bad_crop",
    [
        np.zeros((160, 160, 3), dtype=np.float32),
        np.zeros((112, 112, 3), dtype=np.uint8),
        np.zeros((160, 160), dtype=np.uint8),
        np.zeros((160, 160, 4), dtype=np.uint8),
        [[0] * 3] * 160,
    ],
    ids=["float32", "112px", "grey", "rgba", "list"],
)
def test_rejects_crops_that_are_not_160_rgb_uint8(
    embedder: FaceNetEmbedder, bad_crop: object
) -> None:
    good_crop = np.zeros((160, 160, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="crop 1"):
        embedder.embed([good_crop, bad_crop])  # type: ignore[list-item]


@pytest.fixture(scope="module")
def labelled_embeddings(
    embedder: FaceNetEmbedder, labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]]
) -> npt.NDArray[np.float32]:
    return embedder.embed(labelled_crops[0])


def test_rows_are_unit_norm_float32(
    labelled_embeddings: npt.NDArray[np.float32],
    labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]],
) -> None:
    assert labelled_embeddings.shape == (len(labelled_crops[0]), 512)
    assert labelled_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(labelled_embeddings, axis=1), 1.0, atol=1e-5)


def test_same_input_gives_the_same_rows(
    embedder: FaceNetEmbedder, labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]]
) -> None:
    crops = labelled_crops[0][:2]
    np.testing.assert_allclose(embedder.embed(crops), embedder.embed(crops), rtol=0, atol=1e-6)


def test_batch_size_does_not_change_the_rows(
    labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]],
) -> None:
    crops = labelled_crops[0][:8]  # 8 = one full batch of 7 plus a remainder of 1
    one_by_one = FaceNetEmbedder(batch_size=1).embed(crops)
    by_seven = FaceNetEmbedder(batch_size=7).embed(crops)
    np.testing.assert_allclose(one_by_one, by_seven, rtol=0, atol=1e-5)
    # Row i belongs to crop i: distinct faces give distinct rows.
    assert float(np.abs(by_seven[0] - by_seven[3]).max()) > 1e-2


def test_same_person_is_more_similar_than_different_people(
    labelled_embeddings: npt.NDArray[np.float32],
    labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]],
) -> None:
    labels = labelled_crops[1]
    similarity = labelled_embeddings @ labelled_embeddings.T
    label_array = np.array(labels)
    same_person = label_array[:, None] == label_array[None, :]
    not_self = ~np.eye(len(labels), dtype=bool)

    mean_same = float(similarity[same_person & not_self].mean())
    mean_different = float(similarity[~same_person].mean())
    assert mean_same > mean_different + 0.2, (mean_same, mean_different)
    # Every image's nearest other image shows the same person.
    nearest = np.where(not_self, similarity, -np.inf).argmax(axis=1)
    assert list(label_array[nearest]) == labels


def test_concurrent_calls_match_one_batched_call(
    embedder: FaceNetEmbedder,
    labelled_crops: tuple[list[npt.NDArray[np.uint8]], list[str]],
    labelled_embeddings: npt.NDArray[np.float32],
) -> None:
    indices = [0, 3, 6, 9]
    with ThreadPoolExecutor(max_workers=len(indices)) as pool:
        rows = list(pool.map(lambda index: embedder.embed([labelled_crops[0][index]]), indices))
    np.testing.assert_allclose(
        np.concatenate(rows), labelled_embeddings[indices], rtol=0, atol=1e-5
    )


def test_loads_a_facenet_pytorch_state_dict_file(tmp_path: Path, torch_module: ModuleType) -> None:
    """The VGGFace2 ``.pt`` path, on a randomly initialised model saved here (the real file is not available)."""
    torch = torch_module
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=True, num_classes=5).eval()
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(model.state_dict(), path)

    crop = np.random.default_rng(0).integers(0, 256, size=(160, 160, 3), dtype=np.uint8)
    # Exported to ONNX into the model cache on first use, in a child process, without torch.
    embeddings = FaceNetEmbedder(path, cache_dir=tmp_path).embed([crop])
    model.classify = False
    with torch.inference_mode():
        expected = model((torch.from_numpy(crop).permute(2, 0, 1)[None].float() - 127.5) / 128.0)
    np.testing.assert_allclose(embeddings, expected.numpy(), rtol=0, atol=1e-5)
