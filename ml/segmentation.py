"""Head segmentation (face and hair) with OpenCV GrabCut, seeded by the detector's box and landmarks.

GrabCut needs no model weights. It runs only on a downscaled window around the face, so the cost
per face (a few tens of milliseconds on one core) does not depend on the photo's size.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from ml.types import DetectedFace, RGBImage, check_rgb_image

MaskFill = Literal["grey", "blur"]

# Window around the box that GrabCut sees, in box widths/heights on each side: hair above, a little
# neck below, some background on every side for the background colour model.
WINDOW_LEFT_RIGHT = 0.7
WINDOW_ABOVE = 0.9
WINDOW_BELOW = 0.5


class GrabCutHeadSegmenter:
    """``HeadSegmenter`` using GrabCut on a window around the face.

    Seeds: the polygon of eyes, nose and mouth (slightly enlarged) is definite head; an ellipse
    around the box, extended upwards for hair, is probable head; the band around it is probable
    background and the window's outer border definite background. The result keeps only the
    connected region touching the face, so a similar-coloured background patch is never included.
    Deterministic: OpenCV's RNG (used by GrabCut's k-means initialisation) is reseeded per call.
    """

    def __init__(self, iterations: int = 2, working_size: int = 128, seed: int = 0):
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        if working_size < 32:
            raise ValueError("working_size must be >= 32")
        self.iterations = iterations
        self.working_size = working_size
        self.seed = seed

    def segment(self, image: RGBImage, face: DetectedFace) -> npt.NDArray[np.bool_]:
        """Boolean mask ``(H, W)`` of ``image``: True on the head of ``face``."""
        check_rgb_image(image)
        height, width = image.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in face.box)
        box_w = max(x2 - x1, 1.0)
        box_h = max(y2 - y1, 1.0)
        left = int(np.clip(math.floor(x1 - WINDOW_LEFT_RIGHT * box_w), 0, width - 1))
        right = int(np.clip(math.ceil(x2 + WINDOW_LEFT_RIGHT * box_w), left + 1, width))
        top = int(np.clip(math.floor(y1 - WINDOW_ABOVE * box_h), 0, height - 1))
        bottom = int(np.clip(math.ceil(y2 + WINDOW_BELOW * box_h), top + 1, height))
        window = image[top:bottom, left:right]
        # Where the image border cuts the window, the head may continue beyond it: no background
        # seed there.
        open_sides = (
            y1 - WINDOW_ABOVE * box_h >= 0,
            y2 + WINDOW_BELOW * box_h <= height,
            x1 - WINDOW_LEFT_RIGHT * box_w >= 0,
            x2 + WINDOW_LEFT_RIGHT * box_w <= width,
        )

        # Work at a fixed small size: GrabCut's cost grows with pixels and the mask only needs to
        # be as sharp as the 160 px crop it feeds.
        scale = min(1.0, self.working_size / max(box_w, box_h) * 0.5)
        small_w = max(8, round(window.shape[1] * scale))
        small_h = max(8, round(window.shape[0] * scale))
        scale_x = small_w / window.shape[1]
        scale_y = small_h / window.shape[0]
        small = cv2.resize(window, (small_w, small_h), interpolation=cv2.INTER_AREA)

        def to_small(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            shifted = points - np.array([left, top], dtype=np.float64)
            return np.asarray(shifted * np.array([scale_x, scale_y]), dtype=np.float64)

        seeds = self._seed_mask(
            (small_h, small_w),
            to_small(np.array([[x1, y1], [x2, y2]], dtype=np.float64)),
            to_small(np.asarray(face.landmarks, dtype=np.float64)),
            open_sides,
        )
        small_bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        has_both = np.any(np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD))) and np.any(
            np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
        )
        if has_both:
            # OpenCV's RNG is thread-local, so reseeding here makes this call deterministic
            # without serialising concurrent calls from other threads.
            cv2.setRNGSeed(self.seed)
            cv2.grabCut(
                small_bgr,
                seeds,
                (0, 0, 0, 0),  # unused with GC_INIT_WITH_MASK
                background_model,
                foreground_model,
                self.iterations,
                cv2.GC_INIT_WITH_MASK,
            )
        head_small = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        head_small = _keep_face_component(head_small, seeds == cv2.GC_FGD)

        head_window = cv2.resize(
            head_small, (window.shape[1], window.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        mask = np.zeros((height, width), dtype=bool)
        mask[top:bottom, left:right] = head_window > 0
        return mask

    @staticmethod
    def _seed_mask(
        shape: tuple[int, int],
        box: npt.NDArray[np.float64],
        landmarks: npt.NDArray[np.float64],
        open_sides: tuple[bool, bool, bool, bool] = (True, True, True, True),
    ) -> npt.NDArray[np.uint8]:
        """GrabCut's initial labels for the working window (``box`` and ``landmarks`` in its pixels).

        ``open_sides`` (top, bottom, left, right): the window edges that lie inside the photo; only
        those get a definite-background rim.
        """
        seeds = np.full(shape, cv2.GC_PR_BGD, dtype=np.uint8)
        (bx1, by1), (bx2, by2) = box
        box_w = max(bx2 - bx1, 1.0)
        box_h = max(by2 - by1, 1.0)
        # Head ellipse: as wide as the box plus ears, from above the hairline (MTCNN boxes start
        # near the eyebrows) to just below the chin.
        centre = (float((bx1 + bx2) / 2), float(by1 + 0.35 * box_h))
        head_axes = (0.62 * box_w, 0.78 * box_h)
        cv2.ellipse(
            seeds,
            (round(centre[0]), round(centre[1])),
            (max(1, round(head_axes[0])), max(1, round(head_axes[1]))),
            0.0,
            0.0,
            360.0,
            cv2.GC_PR_FGD,
            thickness=-1,
        )
        # Definite background: the window's outer rim, which lies well outside the head ellipse.
        rim = max(1, round(0.04 * min(shape)))
        top_open, bottom_open, left_open, right_open = open_sides
        if top_open:
            seeds[:rim, :] = cv2.GC_BGD
        if bottom_open:
            seeds[-rim:, :] = cv2.GC_BGD
        if left_open:
            seeds[:, :rim] = cv2.GC_BGD
        if right_open:
            seeds[:, -rim:] = cv2.GC_BGD
        # Definite head: the eyes-nose-mouth polygon, grown by 15% around its centroid.
        if np.all(np.isfinite(landmarks)):
            centroid = landmarks.mean(axis=0)
            inner = centroid + (landmarks - centroid) * 1.15
            hull = cv2.convexHull(np.round(inner).astype(np.int32))
            cv2.fillConvexPoly(seeds, hull, cv2.GC_FGD)
        else:
            inner_box = np.array(
                [bx1 + 0.3 * box_w, by1 + 0.35 * box_h, bx2 - 0.3 * box_w, by2 - 0.2 * box_h]
            )
            cv2.rectangle(
                seeds,
                (round(inner_box[0]), round(inner_box[1])),
                (round(inner_box[2]), round(inner_box[3])),
                cv2.GC_FGD,
                thickness=-1,
            )
        return seeds


def _keep_face_component(
    head: npt.NDArray[np.uint8], face_core: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint8]:
    """Keep the connected regions of ``head`` that touch ``face_core``, with their holes filled."""
    count, labels = cv2.connectedComponents(head, connectivity=8)
    if count <= 1:
        return head
    touching = np.unique(labels[face_core & (head > 0)])
    touching = touching[touching > 0]
    if touching.size == 0:
        return head
    kept = np.isin(labels, touching).astype(np.uint8)
    # Fill holes (eyes or glasses GrabCut labelled background): flood the background from outside.
    padded = np.pad(kept, 1)
    outside = padded.copy()
    flood_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, flood_mask, (0, 0), 1)
    holes = (outside[1:-1, 1:-1] == 0).astype(np.uint8)
    return np.asarray(kept | holes, dtype=np.uint8)


def apply_head_mask(
    image: RGBImage,
    mask: npt.NDArray[np.bool_],
    fill: MaskFill = "blur",
    feather: float = 2.0,
) -> RGBImage:
    """``image`` with everything outside ``mask`` replaced by a strong blur or a neutral grey.

    Blur is the default: on LFW (folds 1-2, similarity crops, no flip) it hurt less than grey
    (accuracy 98.67% vs 98.17%, d' 4.94 vs 4.76; unmasked 98.67%, d' 5.12): the embedder was
    trained with real backgrounds and a flat grey is further from them. The mask edge is
    feathered by a Gaussian of ``feather`` pixels so that the embedder sees no hard contour.
    """
    check_rgb_image(image)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
    if fill == "grey":
        background = np.full_like(image, 128)
    elif fill == "blur":
        sigma = max(3.0, 0.02 * max(image.shape[:2]))
        background = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8)
    else:
        raise ValueError(f"unknown fill {fill!r}, expected 'grey' or 'blur'")
    alpha = mask.astype(np.float32)
    if feather > 0:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), feather), dtype=np.float32)
    alpha = alpha[:, :, None]
    blended = image.astype(np.float32) * alpha + background.astype(np.float32) * (1.0 - alpha)
    return np.asarray(np.clip(blended + 0.5, 0, 255), dtype=np.uint8)
