"""Property test of upload decoding: whatever the bytes, ``decode_image`` returns an RGB ``uint8``
``(H, W, 3)`` array or raises :class:`ImageError`; never another exception (which would be a 500).

Inputs: random bytes, real photos (JPEG, PNG, GIF, WebP) with random bytes overwritten, inserted
or cut off, and synthetic images of random size and mode in every format Pillow writes. Bounded:
a few hundred examples, no deadline, seeded by hypothesis' database like any other test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.core.images import ImageError, ImageTooLargeError, decode_image

pytestmark = pytest.mark.slow  # hundreds of generated images through the decoder and the API


MAX_PIXELS = 2_000_000
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seeds(people_dir: Path) -> list[bytes]:
    """A real face photo, small, in the formats people upload."""
    face = Image.open(people_dir / "face_recognition__obama" / "obama.jpg").convert("RGB")
    face.thumbnail((96, 96))
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return [
        _encode(face, "JPEG", quality=85),
        _encode(face, "JPEG", quality=85, progressive=True),
        _encode(face, "PNG"),
        _encode(face.convert("L"), "PNG"),
        _encode(face, "GIF", save_all=True, append_images=frames[1:]),
        _encode(face, "WEBP", quality=80),
        _encode(face.convert("CMYK"), "JPEG"),
        _encode(face, "TIFF"),
        _encode(face, "BMP"),
    ]


def _check(data: bytes) -> None:
    try:
        decoded = decode_image(data, max_pixels=MAX_PIXELS, name="fuzz")
    except ImageError as error:
        assert str(error).startswith("fuzz: ")
        return
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.uint8
    assert decoded.ndim == 3
    assert decoded.shape[2] == 3
    assert decoded.shape[0] >= 1
    assert decoded.shape[1] >= 1
    assert decoded.shape[0] * decoded.shape[1] <= MAX_PIXELS
    assert decoded.flags.c_contiguous


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(
    which=st.integers(min_value=0, max_value=8),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["overwrite", "insert", "delete", "truncate"]),
            st.floats(min_value=0.0, max_value=1.0),
            st.binary(min_size=1, max_size=16),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_real_photos(
    seeds: list[bytes], which: int, edits: list[tuple[str, float, bytes]]
) -> None:
    data = bytearray(seeds[which])
    for kind, where, chunk in edits:
        at = int(where * len(data))
        if kind == "overwrite":
            data[at : at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at : at + len(chunk)]
        else:
            del data[at:]
    _check(bytes(data))


@FUZZ
@given(
    width=st.integers(min_value=1, max_value=80),
    height=st.integers(min_value=1, max_value=80),
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_any_size_and_mode_decodes_to_its_size(
    width: int, height: int, mode: str, fmt: str, seed: int
) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    try:
        data = _encode(image, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to decode
    decoded = decode_image(data, max_pixels=MAX_PIXELS)
    assert decoded.shape == (height, width, 3)
    assert decoded.dtype == np.uint8


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=2**31 - 1),
    height=st.integers(min_value=1, max_value=2**31 - 1),
)
def test_declared_dimensions_over_the_limit_are_refused_before_decoding(
    width: int, height: int
) -> None:
    """A PNG header can announce any size; the pixels are never allocated."""
    data = _png_header_only(width, height)
    if width * height > MAX_PIXELS:
        with pytest.raises(ImageTooLargeError):
            decode_image(data, max_pixels=MAX_PIXELS)
    else:
        _check(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR for an 8-bit RGB image of this size and an empty IDAT/IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
