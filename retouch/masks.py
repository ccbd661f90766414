"""Random inpainting masks: rendered text, thin lines, brush strokes, object-like blobs and blocks.

Every generator is a pure function of (height, width, rng) and returns a float32 [H, W] array with
1 = hole and 0 = known, the same polarity as the inpainting models' MASK input. The same rng seed
gives the same mask on one machine (text also depends on the fonts installed: DejaVu when present,
else Pillow's bundled font).
"""

from __future__ import annotations

import string
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retouch.morphology import dilate as grow

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu",)  # Debian fonts-dejavu-core
TEXT_CHARS = string.ascii_letters + string.digits + "  .,:!?&%$€@#-'"


@cache
def font_files() -> tuple[str, ...]:
    """Sorted TrueType files from FONT_DIRS, so a seed picks the same font on every run."""
    return tuple(sorted(str(p) for d in FONT_DIRS for p in Path(d).glob("*.ttf")))


@lru_cache(maxsize=256)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def text_stroke_mask(
    height: int, width: int, rng: np.random.Generator, lines: int | None = None, dilate: int | None = None
) -> np.ndarray:
    """Random words in random fonts, sizes and slight rotations, dilated by a few pixels the way
    a text detector's mask is grown before removal (captions, watermarks, signs)."""
    fonts = font_files() or (None,)
    canvas = Image.new("L", (width, height), 0)
    for _ in range(lines or int(rng.integers(1, 4))):
        size = int(rng.integers(max(8, height // 24), max(10, height // 6) + 1))
        font = _font(fonts[int(rng.integers(len(fonts)))], size)
        words = ["".join(rng.choice(list(TEXT_CHARS), int(rng.integers(2, 9)))) for _ in range(int(rng.integers(1, 4)))]
        layer = Image.new("L", (width, height), 0)
        x, y = int(rng.integers(-width // 8, width * 3 // 4)), int(rng.integers(0, max(1, height - size)))
        ImageDraw.Draw(layer).text(
            (x, y), " ".join(words).strip() or "Aa", fill=255, font=font, stroke_width=int(rng.integers(0, 3))
        )
        angle = float(rng.normal(0, 8))  # most text is near-horizontal
        layer = layer.rotate(angle, resample=Image.BILINEAR, center=(x, y + size / 2))
        canvas = Image.fromarray(np.maximum(np.asarray(canvas), np.asarray(layer)))
    mask = (np.asarray(canvas) > 64).astype(np.float32)
    return grow(mask, int(rng.integers(1, 4)) if dilate is None else dilate)


def _polyline_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    strokes: int,
    vertices: int,
    thickness: tuple[int, int],
    step: tuple[float, float],
) -> np.ndarray:
    """Random-walk polylines (DeepFill v2 style free-form strokes) with round joints."""
    mask = np.zeros((height, width), np.float32)
    scale = min(height, width)
    for _ in range(strokes):
        point = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        angle = rng.uniform(0, 2 * np.pi)
        t = int(rng.integers(thickness[0], thickness[1] + 1))
        for _ in range(vertices):
            angle += rng.normal(0, 0.6)
            length = rng.uniform(*step) * scale
            nxt = np.clip(point + length * np.array([np.cos(angle), np.sin(angle)]), 0, [width - 1, height - 1])
            p0, p1 = tuple(int(v) for v in point), tuple(int(v) for v in nxt)
            cv2.line(mask, p0, p1, 1.0, t, lineType=cv2.LINE_8)
            cv2.circle(mask, p1, t // 2, 1.0, -1)
            point = nxt
    return mask


def line_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Thin lines 1-4 px wide: scratches, wires, underlines."""
    return _polyline_mask(
        height,
        width,
        rng,
        strokes=int(rng.integers(1, 6)),
        vertices=int(rng.integers(1, 5)),
        thickness=(1, 4),
        step=(0.1, 0.5),
    )


def brush_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Thick free-form brush strokes, as a user paints over an object."""
    scale = min(height, width)
    return _polyline_mask(
        height,
        width,
        rng,
        strokes=int(rng.integers(1, 4)),
        vertices=int(rng.integers(2, 7)),
        thickness=(max(3, scale // 40), max(4, scale // 10)),
        step=(0.05, 0.2),
    )


def blob_mask(height: int, width: int, rng: np.random.Generator, blobs: int | None = None) -> np.ndarray:
    """Object-like blobs: star-shaped outlines whose radius is a low-order random Fourier series."""
    mask = np.zeros((height, width), np.float32)
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    for _ in range(blobs or int(rng.integers(1, 3))):
        radius = rng.uniform(0.08, 0.25) * min(height, width)
        shape = np.ones_like(theta)
        for k in range(1, 5):
            shape += rng.normal(0, 0.25 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        r = radius * np.clip(shape, 0.3, None)
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        pts = np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
    return mask


def block_mask(
    height: int, width: int, rng: np.random.Generator, size: tuple[float, float] = (0.15, 0.4)
) -> np.ndarray:
    """One axis-aligned rectangle whose sides are a random fraction `size` of the image's."""
    mask = np.zeros((height, width), np.float32)
    bh, bw = (int(round(rng.uniform(*size) * n)) for n in (height, width))
    y, x = int(rng.integers(0, height - bh + 1)), int(rng.integers(0, width - bw + 1))
    mask[y : y + bh, x : x + bw] = 1.0
    return mask


MASK_KINDS = {"text": text_stroke_mask, "line": line_mask, "brush": brush_mask, "blob": blob_mask, "block": block_mask}


def random_mask(
    height: int, width: int, rng: np.random.Generator, weights: dict[str, float] | None = None
) -> np.ndarray:
    """A mask of a random kind (weights per MASK_KINDS name; default: equal), never empty."""
    weights = weights or dict.fromkeys(MASK_KINDS, 1.0)
    names = sorted(weights)
    p = np.array([weights[n] for n in names], float)
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    mask = MASK_KINDS[name](height, width, rng)
    if not mask.any():  # e.g. text drawn off-canvas
        mask = block_mask(height, width, rng)
    return mask
