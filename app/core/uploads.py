"""An uploaded file, as the routers hand it to the services, and its decoding."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import InvalidInputError, PayloadTooLargeError
from app.core.images import ImageError, ImageTooLargeError, decode_image
from ml.types import RGBImage


@dataclass(frozen=True)
class Upload:
    """One uploaded file, already read (and size-checked) by the router."""

    filename: str | None
    data: bytes


def decode_upload(upload: Upload, label: str, max_pixels: int) -> RGBImage:
    """Decode once; an unreadable image is invalid input, too many pixels too large."""
    try:
        return decode_image(upload.data, max_pixels=max_pixels, name=label)
    except ImageTooLargeError as error:
        raise PayloadTooLargeError(str(error)) from error
    except ImageError as error:
        raise InvalidInputError(str(error)) from error


def upload_label(index: int, filename: str | None) -> str:
    """How a photo of a request is named in a refusal: ``photo 2 (ada.jpg)``."""
    return f"photo {index + 1} ({filename})" if filename else f"photo {index + 1}"
