"""What the caller hands in (PIL image, numpy array or encoded bytes) -> what goes on the wire."""

from __future__ import annotations

import io
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from retouch_client.errors import InvalidInputError

ImageInput = Union[bytes, bytearray, memoryview, Image.Image, np.ndarray]


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def to_encoded(image: ImageInput) -> bytes:
    """Encoded bytes pass through untouched; arrays and PIL images are sent as lossless PNG."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return encode_png(image)


def to_pixels(image: ImageInput) -> np.ndarray:
    """HxWx3 uint8 RGB, as the server would decode it (EXIF orientation applied); raw pixels carry
    no alpha, 16-bit values or metadata: send encoded bytes to keep them."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            image = ImageOps.exif_transpose(Image.open(io.BytesIO(bytes(image))))
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises for unreadable data
            # Raw pixels are decoded here, so the server never sees these bytes: refuse them alike.
            raise InvalidInputError(
                f"image bytes are not a readable PNG, JPEG or WebP file ({exc}); "
                f"raw pixels (shared memory) are decoded on the client",
                "StatusCode.INVALID_ARGUMENT",
            ) from None
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def to_mask(mask: ImageInput) -> bytes:
    """An HxW mask (bool, or uint8 where >0 means edit) as PNG bytes; encoded bytes pass through.
    Masks compress well, so they travel encoded even when the image travels raw."""
    if isinstance(mask, (bytes, bytearray, memoryview)):
        return bytes(mask)
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2:
            raise ValueError(f"a mask array must be HxW, got shape {mask.shape}")
        # The server removes pixels brighter than 127: any nonzero array value becomes 255.
        mask = Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8))
    return encode_png(mask.convert("L"))
