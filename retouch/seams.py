"""A no-reference seam score: how much sharper the image steps across known tile borders than
across comparable lines nearby.

For a border between pixel rows b-1 and b, the step is the median over the row of the absolute
grey-level difference between those rows: the median follows flat areas, where a seam shows,
rather than texture, which steps everywhere. A border's ratio is its step over a reference: the
larger of the median step of the rows 2..4 away, and the median step of the rows one and two
JPEG blocks away (8 and 16 input pixels, times the scale). The second term keeps JPEG block
edges, which fall on the same 8-pixel grid as tile borders, from reading as seams. The response's
score is the mean ratio over its borders: about 1 without seams, 1.0 when there are no borders.
"""

from __future__ import annotations

import numpy as np

NEAR_OFFSETS = (-4, -3, -2, 2, 3, 4)
JPEG_BLOCK = 8
# Added to step and reference (in grey levels) so flat areas score 1, not 0/0.
FLOOR = 0.5


def _line_steps(image: np.ndarray) -> np.ndarray:
    """steps[b] = median over columns of |grey(row b) - grey(row b-1)|; steps[0] = nan."""
    grey = image.astype(np.float32).mean(axis=2)
    steps = np.median(np.abs(np.diff(grey, axis=0)), axis=1)
    return np.concatenate([[np.nan], steps])


def _border_ratios(steps: np.ndarray, lines: list[int], scale: int) -> list[float]:
    block = JPEG_BLOCK * scale
    ratios = []
    for b in lines:
        refs = []
        for offsets in (NEAR_OFFSETS, (-2 * block, -block, block, 2 * block)):
            values = [steps[b + o] for o in offsets if 1 <= b + o < len(steps)]
            if values:
                refs.append(float(np.median(values)))
        if refs:
            ratios.append((steps[b] + FLOOR) / (max(refs) + FLOOR))
    return ratios


def seam_score(image: np.ndarray, rows: list[int], cols: list[int], scale: int = 1) -> float:
    """Mean border ratio over seam rows and columns of an HxWx3 image (0..255 range).

    `scale` is the upscaling factor the image went through, so the JPEG grid is known.
    """
    ratios = _border_ratios(_line_steps(image), rows, scale)
    ratios += _border_ratios(_line_steps(np.swapaxes(image, 0, 1)), cols, scale)
    return float(np.mean(ratios)) if ratios else 1.0
