"""Real encoded images for the load scripts (perf.py, loadtest.py, bench): natural photos from
scikit-image, cropped to a few sizes, with a line of text drawn on them (so detect_text and
remove_text have work to do), and masks of two rectangles for inpaint/clean."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
OPERATIONS = ("upscale", "detect_text", "inpaint", "remove_text", "clean")
# operation -> the ensemble inputs it needs beside IMAGE
NEEDS_MASK = {"inpaint": True, "clean": False}


@cache
def photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def image(size: int, index: int = 0, text: bool = True) -> np.ndarray:
    """size x size RGB crop of photo number `index` (resized up when the photo is smaller)."""
    img = photo(PHOTOS[index % len(PHOTOS)])
    h, w = img.shape[:2]
    if min(h, w) < size:
        f = size / min(h, w)
        img = np.asarray(Image.fromarray(img).resize((round(w * f) + 1, round(h * f) + 1), Image.BICUBIC))
        h, w = img.shape[:2]
    k = index // len(PHOTOS)
    y, x = (k * 37) % (h - size + 1), (k * 53) % (w - size + 1)
    crop = Image.fromarray(np.ascontiguousarray(img[y : y + size, x : x + size]))
    if text:
        draw = ImageDraw.Draw(crop)
        px = max(12, size // 12)
        try:
            font = ImageFont.truetype(FONT, px)
        except OSError:
            font = ImageFont.load_default(px)
        draw.text(
            (size // 10, size // 6),
            "SALE 50% OFF",
            font=font,
            fill=(255, 255, 255),
            stroke_width=max(1, px // 12),
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(crop)


def mask(size: int) -> np.ndarray:
    """Two small rectangles to fill, as a greyscale mask (255 = remove)."""
    m = np.zeros((size, size), np.uint8)
    a, b = size // 8, size // 5
    m[a : a + b // 2, a : a + b] = 255
    m[size - a - b : size - a, size // 2 : size // 2 + b // 2] = 255
    return m


def request(operation: str, size: int, index: int = 0, fmt: str = "PNG") -> dict[str, bytes]:
    """The BYTES inputs of one request: IMAGE, and MASK where the operation takes one."""
    inputs = {"IMAGE": encode(image(size, index), fmt)}
    if operation in NEEDS_MASK:
        inputs["MASK"] = encode(mask(size))
    return inputs
