"""Masks grown, shrunk and softened with round structuring elements: one set of helpers for text
detection, glyph masks, inpainting and the evaluation."""

from __future__ import annotations

import cv2
import numpy as np


def disk(radius: int) -> np.ndarray:
    """A (2r+1) x (2r+1) ellipse structuring element."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _morph(op, mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    if mask.dtype == bool:  # OpenCV takes no bool arrays: 0/1 bytes, and bool back
        return op(mask.astype(np.uint8), disk(radius)).astype(bool)
    return op(mask, disk(radius))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask (uint8 or bool, returned as given) grown by a disk of `radius` pixels."""
    return _morph(cv2.dilate, mask, radius)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask (uint8 or bool, returned as given) shrunk by a disk of `radius` pixels."""
    return _morph(cv2.erode, mask, radius)


def feather(hole: np.ndarray, sigma: float) -> np.ndarray:
    """Alpha: 1 on the hole, a Gaussian ramp outside it over about 3 sigma, exactly 0 beyond."""
    if sigma <= 0:
        return hole.astype(np.float32)
    grown = dilate(hole.astype(np.uint8), int(np.ceil(2 * sigma))).astype(np.float32)
    soft = cv2.GaussianBlur(grown, (0, 0), sigma)
    return np.maximum(soft, hole.astype(np.float32))
