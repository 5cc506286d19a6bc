"""Every JSON reply says ``charset=utf-8``.

JSON is UTF-8 (RFC 8259) and ``application/json`` has no charset parameter, but the mobile app's
HTTP library (Dart ``http`` 0.13.6, ``Response.body``) decodes a body as Latin-1 unless the
``Content-Type`` names a charset: "Stüart" would be shown as "StÃ¼art". This middleware adds the
parameter to every ``application/json`` reply, whichever part of the stack wrote it (routes,
exception handlers, the API-key middleware, FastAPI's body-size limit).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_UTF8 = b"application/json; charset=utf-8"


class JsonCharsetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_charset(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, with_charset(value) if name.lower() == b"content-type" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_with_charset)


def with_charset(content_type: bytes) -> bytes:
    """``application/json`` (any case, with or without other parameters) gains ``charset=utf-8``;
    anything else, or a type that already names a charset, is left alone."""
    media_type, _, params = content_type.partition(b";")
    if media_type.strip().lower() != b"application/json" or b"charset=" in params.lower():
        return content_type
    return JSON_UTF8 + (b";" + params if params.strip() else b"")
