"""The mobile app's side of the wire, byte for byte: Dart package ``http`` 0.13.6.

``multipart_request`` builds the body and headers ``http.MultipartRequest`` sends (fields first,
then files; a field that is not plain ASCII gets ``content-type: text/plain; charset=utf-8`` and
``content-transfer-encoding: binary``; a file from ``MultipartFile.fromPath`` is
``application/octet-stream``; the boundary is ``dart-http-boundary-`` and 51 random characters).
``response_body`` decodes a reply as ``http.Response.body`` does: with the charset named in the
``Content-Type``, else Latin-1.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

BOUNDARY_CHARACTERS = "+_-." + string.digits + string.ascii_uppercase + string.ascii_lowercase
"""``boundary_characters.dart``."""
BOUNDARY_LENGTH = 70
USER_AGENT = "Dart/2.19 (dart:io)"


@dataclass(frozen=True)
class DartFile:
    field: str
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


def _browser_encode(value: str) -> str:
    return re.sub(r"\r\n|\r|\n", "%0D%0A", value).replace('"', "%22")


def _is_plain_ascii(value: str) -> bool:
    return re.fullmatch(r"[\x00-\x7F]+", value) is not None


def multipart_request(
    fields: Mapping[str, str], files: Sequence[DartFile], *, seed: int = 0
) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` of ``MultipartRequest.send()``."""
    rng = random.Random(seed)
    prefix = "dart-http-boundary-"
    boundary = prefix + "".join(
        rng.choice(BOUNDARY_CHARACTERS) for _ in range(BOUNDARY_LENGTH - len(prefix))
    )
    separator = f"--{boundary}\r\n".encode()
    chunks: list[bytes] = []
    for name, value in fields.items():
        header = f'content-disposition: form-data; name="{_browser_encode(name)}"'
        if not _is_plain_ascii(value):
            header += (
                "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-transfer-encoding: binary"
            )
        chunks += [separator, (header + "\r\n\r\n").encode("utf-8"), value.encode("utf-8"), b"\r\n"]
    for file in files:
        header = (
            f"content-type: {file.content_type}\r\n"
            f'content-disposition: form-data; name="{_browser_encode(file.field)}"; '
            f'filename="{_browser_encode(file.filename)}"'
        )
        chunks += [separator, (header + "\r\n\r\n").encode("utf-8"), file.data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    body = b"".join(chunks)
    headers = {
        "user-agent": USER_AGENT,
        "accept-encoding": "gzip",
        "content-length": str(len(body)),
        "content-type": f"multipart/form-data; boundary={boundary}",
    }
    return body, headers


def response_body(response: httpx.Response) -> str:
    """``http.Response.body``: ``encodingForCharset(contentType.parameters['charset'], latin1)``."""
    content_type = response.headers.get("content-type", "")
    charset = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    codec = {"utf-8": "utf-8", "utf8": "utf-8"}.get(charset or "", "latin-1")
    return response.content.decode(codec)


def json_body(response: httpx.Response) -> Any:
    """What the app's ``jsonDecode(response.body)`` sees."""
    return json.loads(response_body(response))
