"""Extra registration views from a single aligned face crop (albumentations 2.x).

A student is registered from one photo; a handful of mildly perturbed views of that crop make the
stored template less sensitive to the lighting, pose jitter and blur of later group photos.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml.types import RGBImage, check_rgb_image

if TYPE_CHECKING:
    import albumentations

_IMPORT_LOCK = threading.Lock()


class _RefuseTorch(importlib.abc.MetaPathFinder):
    """Makes ``import torch`` fail while albumentations is first imported."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not needed for albumentations' image transforms")
        return None


def load_albumentations() -> ModuleType:
    """albumentations, imported when the first registration needs it, and without two things it
    does on import: it asks pypi.org for a newer version (``NO_ALBUMENTATIONS_UPDATE``; the
    service never calls out), and it loads its optional PyTorch helpers whenever torch is
    installed, as in the development environment, where that pulled torch into the service
    (RSS when ready 934 MiB instead of about 420 MiB, 2026-11-29). If torch is already loaded
    (tests, benchmarks), nothing is refused."""
    with _IMPORT_LOCK:
        if "albumentations" in sys.modules:
            return sys.modules["albumentations"]
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
        refuse = _RefuseTorch()
        sys.meta_path.insert(0, refuse)
        try:
            import albumentations
        finally:
            sys.meta_path.remove(refuse)
        loaded: ModuleType = albumentations
        return loaded


def build_view_pipeline(seed: int) -> albumentations.Compose:
    """A fresh, seeded albumentations pipeline producing one random view per call.

    The perturbations stay within what an aligned face crop of the same person can look like:
    the landmarks move by a few pixels at most, so the views remain valid embedder inputs.
    """
    albumentations = load_albumentations()
    return albumentations.Compose(
        [
            albumentations.RandomBrightnessContrast(
                brightness_limit=0.2, contrast_limit=0.2, p=0.8
            ),
            albumentations.Affine(
                scale=(0.93, 1.07),
                translate_percent=(-0.04, 0.04),
                rotate=(-10.0, 10.0),
                interpolation=cv2.INTER_LINEAR,
                # Replicating the edge avoids black corners, which never occur in real crops.
                border_mode=cv2.BORDER_REPLICATE,
                # Always applied so that no extra view is a copy of the original crop.
                p=1.0,
            ),
            albumentations.HorizontalFlip(p=0.5),
            albumentations.OneOf(
                [
                    albumentations.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2)),
                    albumentations.GaussNoise(std_range=(0.01, 0.04)),
                ],
                p=0.3,
            ),
        ],
        seed=seed,
    )


def augment_views(crop: RGBImage, n_views: int = 15, seed: int = 0) -> list[RGBImage]:
    """``n_views`` crops: ``crop`` itself first, then ``n_views - 1`` random perturbations of it.

    Deterministic for a given ``seed``; a new pipeline is built on every call, so concurrent
    calls from several threads never share random state.
    """
    check_rgb_image(crop)
    if n_views < 1:
        raise ValueError(f"n_views must be at least 1, got {n_views}")
    pipeline = build_view_pipeline(seed)
    views: list[RGBImage] = [crop.copy()]
    for _ in range(n_views - 1):
        view = pipeline(image=crop)["image"]
        views.append(np.ascontiguousarray(view, dtype=np.uint8))
    return views
