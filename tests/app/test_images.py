"""Decoding uploads: one decode, EXIF orientation, RGB uint8, clear errors for bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.core.images import ImageError, ImageTooLargeError, decode_image, encode_jpeg

LIMIT = 40_000_000


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, axis=1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2))


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        *[("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG")],
        *[("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG")],
        *[("RGB", "WEBP"), ("RGB", "BMP"), ("RGB", "TIFF")],
    ],
)
def test_any_mode_becomes_rgb_uint8(mode: str, fmt: str) -> None:
    image = _gradient(64, 48).convert(mode)
    decoded = decode_image(_encode(image, fmt), max_pixels=LIMIT)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (48, 64, 3)
    assert decoded.flags.c_contiguous


def test_exif_orientation_is_applied() -> None:
    image = _gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the displayed photo is portrait
    decoded = decode_image(_encode(image, "JPEG", exif=exif), max_pixels=LIMIT)
    assert decoded.shape == (80, 40, 3)


def test_empty_file_is_refused() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", max_pixels=LIMIT)


def test_not_an_image_is_refused() -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"%PDF-1.7 this is a document, not a photo", max_pixels=LIMIT)


def test_truncated_jpeg_is_refused() -> None:
    data = _encode(_gradient(640, 480), "JPEG", quality=95)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 3], max_pixels=LIMIT)


def test_pixel_limit_is_checked_before_decoding() -> None:
    # A 1-bit 8000x6250 PNG is 50 megapixels in a few kilobytes: a decompression bomb in miniature.
    bomb = _encode(Image.new("1", (8000, 6250)), "PNG", optimize=True)
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError, match=r"50\.0 megapixels"):
        decode_image(bomb, max_pixels=LIMIT)


def test_larger_than_pillow_own_bomb_limit_is_still_a_clean_error() -> None:
    huge = _encode(Image.new("1", (20000, 10000)), "PNG", optimize=True)
    with pytest.raises(ImageTooLargeError):
        decode_image(huge, max_pixels=LIMIT)


def test_jpeg_round_trip() -> None:
    original = np.asarray(_gradient(64, 32))
    decoded = decode_image(encode_jpeg(original), max_pixels=LIMIT)
    assert decoded.shape == original.shape
    assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 4
