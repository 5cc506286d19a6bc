"""Vector helpers shared by the matcher and the projection head (numpy only, imports nothing of ``ml``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ml.types import Embeddings


def l2_normalize(vectors: npt.ArrayLike) -> Embeddings:
    """Rows scaled to unit length (rows shorter than 1e-12 are divided by 1e-12, as torch does)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    normalized: Embeddings = (array / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalized
