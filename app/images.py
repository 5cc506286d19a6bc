"""Decoding uploaded photos once, safely, and encoding JPEGs for storage and responses.

Every upload goes through :func:`decode_image`: the pixel count is checked from the header before any
pixel is decoded (decompression bombs), EXIF orientation is applied, and the result is the RGB
``uint8`` array the pipeline takes.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.types import RGBImage

JPEG_QUALITY = 90


class ImageError(ValueError):
    """The upload is not a usable image; the message says why (shown to the client)."""


class ImageTooLargeError(ImageError):
    """The upload is larger than allowed (bytes or pixels)."""


def decode_image(data: bytes, *, max_pixels: int, name: str = "file") -> RGBImage:
    """Decode ``data`` into an RGB ``uint8`` ``(H, W, 3)`` array with EXIF orientation applied.

    Raises :class:`ImageTooLargeError` when the header announces more than ``max_pixels`` pixels and
    :class:`ImageError` for an empty, unrecognised, truncated or otherwise corrupt file.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Our own limit replaces PIL's global one; its warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name}: the image has too many pixels ({error})") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image (or an unsupported image format)") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: unreadable image ({error})") from error

    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError(f"{name}: the image has no pixels")
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{name}: the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                f"the limit is {max_pixels / 1e6:.1f} megapixels"
            )
        try:
            image.load()
            oriented = ImageOps.exif_transpose(image)
            rgb = oriented.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            # PIL reports a cut-off JPEG as "image file is truncated" (OSError).
            raise ImageError(f"{name}: the image is truncated or corrupt ({error})") from error
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def encode_jpeg(image: RGBImage, *, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB ``uint8`` image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
