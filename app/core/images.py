"""Decoding uploaded photos once, safely, and encoding JPEGs for storage and responses.

Every upload goes through :func:`decode_image`: the pixel count is checked from the header before any
pixel is decoded (decompression bombs), EXIF orientation is applied, and the result is the RGB
``uint8`` array the pipeline takes. What it decides for unusual files:

- animated GIF / WebP / APNG: the first frame (what a viewer shows first; a registration photo
  is one picture);
- 16-bit grey (PNG, TIFF): scaled to 8 bits (Pillow's own conversion clips it to white);
  48-bit colour: Pillow keeps the high byte;
- transparency (RGBA, LA, palette with a transparent colour): composited on white, as a viewer
  shows it, instead of exposing whatever colour hides under transparent pixels;
- CMYK (including Adobe's inverted JPEGs), grey, palette, bilevel: converted to RGB;
- anything Pillow cannot decode, for whatever reason, is the file's fault: :class:`ImageError`
  (422), never another exception (see the property test ``tests/app/test_fuzz_images.py``).
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.types import RGBImage

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90
ANNOTATED_MAX_SIDE = 1600
"""Default cap on the longer side of the annotated photo sent back (``ROLLCALL_ANNOTATED_MAX_SIDE``).
The app shows it full width on a phone (about 1,080-1,440 physical pixels across), so 1,600 px keeps
every box and label sharp there. The 5,334 px benchmark class photo (``bench.class_photo``) came
back as 3.7 MB of base64 in 620 ms (encode + base64); capped, 0.54 MB in 43 ms (2026-11-29).
Smaller photos are sent at their own size."""
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)
"""What Pillow's format plugins may raise on a malformed file besides OSError (struct and zlib
errors in TIFF/PNG chunks, EOFError in GIF frames...): each means a bad file, never a server fault."""


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
        # Pillow refuses to even open an image over twice its own limit; say it in our terms.
        raise ImageTooLargeError(
            f"{name}: the image declares more than {_pillow_bomb_limit() / 1e6:.0f} megapixels; "
            f"the limit is {max_pixels / 1e6:.1f} megapixels"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image (or an unsupported image format)") from error
    except _DECODE_ERRORS as error:
        raise ImageError(f"{name}: unreadable image ({_reason(error)})") from error

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
            # The first frame of an animation (Image.open leaves the file on it).
            image.load()
            oriented = ImageOps.exif_transpose(image)
            rgb = _to_rgb(oriented)
        except MemoryError as error:
            raise ImageTooLargeError(f"{name}: the image is too large to decode") from error
        except _DECODE_ERRORS as error:
            # PIL reports a cut-off JPEG as "image file is truncated" (OSError).
            raise ImageError(
                f"{name}: the image is truncated or corrupt ({_reason(error)})"
            ) from error
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise ImageError(f"{name}: the image could not be converted to RGB")
    return array


def _pillow_bomb_limit() -> int:
    return 2 * int(Image.MAX_IMAGE_PIXELS or 0)


def _reason(error: BaseException) -> str:
    # Pillow's messages are short; an odd one is cut so a response never carries a wall of text.
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _to_rgb(image: Image.Image) -> Image.Image:
    """An RGB image as a viewer would show ``image``."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_grey_to_uint8(np.asarray(image), mode), mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _grey_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer or float grey levels to 8 bits."""
    if mode.startswith("I;16"):
        return (values.astype(np.uint16) >> 8).astype(np.uint8)
    data = values.astype(np.float64)
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(data.max()) if data.size else 0.0
    if mode == "F" and peak <= 1.0:
        data = data * 255.0  # floats in [0, 1]
    elif peak > 255.0:
        data = data / 257.0  # a 16-bit range held in 32-bit integers (Pillow's "I" for PNG)
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)


def encode_jpeg(image: RGBImage, *, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB ``uint8`` image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
