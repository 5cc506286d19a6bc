"""The mobile client's two calls (:mod:`.service`)."""

from app.services.mobile.service import detect, register_student

__all__ = ["detect", "register_student"]
