"""Rollcall's face pipeline: numpy RGB images in, frozen dataclasses out. No HTTP, no storage."""
