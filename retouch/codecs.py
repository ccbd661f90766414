"""Decode and encode images at the service boundary.

Pixels travel as encoded bytes (PNG/JPEG/WebP): on the network that costs far less than raw
tensors. Decoding is guarded by a pixel limit checked from the header, before any pixel is
decompressed, so a decompression bomb is refused cheaply.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from retouch.errors import InvalidInput

# We check the limit ourselves (with a clear message); Pillow's own guard would only warn.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 25_000_000
INPUT_FORMATS = ("PNG", "JPEG", "WEBP")
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# Pixels returned as-is: for a client on the same host, through shared memory, where encoding
# would cost more than moving them.
RAW_FORMAT = "raw"
RESPONSE_FORMATS = (*OUTPUT_FORMATS, RAW_FORMAT)
NO_PIXELS = np.zeros((0, 0, 3), np.uint8)
# zlib level for PNG output, chosen by measurement (BENCHMARKS.md): on a 1024^2 photo, level 1 encodes
# 4.3x faster than Pillow's usual 6 for 13% more bytes (cv2's encoder at 1 was only 1.2x faster still).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # HxWx3 uint8, EXIF orientation applied
    source_format: str
    source_mode: str

    def info(self) -> dict:
        h, w = self.rgb.shape[:2]
        return {"width": w, "height": h, "format": self.source_format, "mode": self.source_mode}


def check_size(w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise InvalidInput(
            f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}; downscale it first"
        )
    if w == 0 or h == 0:
        raise InvalidInput(f"image has no pixels ({w}x{h})")


def check_rgb(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInput(f"expected HxWx3 uint8 RGB pixels, got {rgb.dtype} {rgb.shape}")


def open_image(data: bytes, max_pixels: int, what: str = "image") -> tuple[Image.Image, str, str]:
    """Decode PNG/JPEG/WebP bytes, size-checked from the header first; EXIF orientation applied.

    Returns the image and its source format and mode."""
    if not data:
        raise InvalidInput(f"empty {what} payload: send PNG, JPEG or WebP bytes")
    try:
        img = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
    except UnidentifiedImageError:
        raise InvalidInput(
            f"{what} bytes are not a PNG, JPEG or WebP file ({len(data)} bytes, "
            f"starting {data[:8]!r})"
        ) from None
    check_size(*img.size, max_pixels)
    source_format, source_mode = img.format or "", img.mode
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt pixel data
        raise InvalidInput(f"{what} data is corrupt or truncated: {exc}") from None
    return img, source_format, source_mode


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode PNG/JPEG/WebP bytes to RGB uint8, refusing anything over max_pixels."""
    img, source_format, source_mode = open_image(data, max_pixels)
    # Alpha is flattened (dropped); the original mode is echoed in the report.
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return DecodedImage(rgb=np.ascontiguousarray(rgb), source_format=source_format, source_mode=source_mode)


def decode_mask(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a mask image to HxW uint8 grey (bright = remove). Colour masks are converted to grey."""
    img, _, _ = open_image(data, max_pixels, "mask")
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))


def decode_pixels(pixels: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Check raw HxWx3 uint8 pixels (sent instead of encoded bytes) like decoded ones."""
    check_rgb(pixels)
    check_size(pixels.shape[1], pixels.shape[0], max_pixels)
    return DecodedImage(rgb=np.ascontiguousarray(pixels), source_format="raw", source_mode="RGB")


def decode_request(image: bytes | None, pixels: np.ndarray | None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """The request's image: encoded IMAGE bytes or raw PIXELS, exactly one of them."""
    if (image is None) == (pixels is None):
        sent = "both" if image is not None else "neither"
        raise InvalidInput(f"send exactly one of IMAGE (encoded PNG, JPEG or WebP bytes) or PIXELS "
                           f"(HxWx3 uint8 RGB); got {sent}")
    return decode_image(image, max_pixels) if pixels is None else decode_pixels(pixels, max_pixels)


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode HxWx3 uint8 RGB. Deterministic: the same pixels give the same bytes."""
    if fmt not in OUTPUT_FORMATS:
        raise InvalidInput(f"output format {fmt!r} is not one of {sorted(OUTPUT_FORMATS)}")
    check_rgb(rgb)
    buf = io.BytesIO()
    pil_format = OUTPUT_FORMATS[fmt]
    options = {"compress_level": PNG_COMPRESS_LEVEL} if pil_format == "PNG" else {"quality": int(quality)}
    Image.fromarray(rgb, "RGB").save(buf, format=pil_format, **options)
    return buf.getvalue()


def encode_response(rgb: np.ndarray, fmt: str = "png", quality: int = 95) -> tuple[bytes, np.ndarray]:
    """(encoded bytes, raw pixels): format "raw" returns the pixels and no bytes, others the reverse."""
    if fmt == RAW_FORMAT:
        check_rgb(rgb)
        return b"", np.ascontiguousarray(rgb)
    return encode_image(rgb, fmt, quality), NO_PIXELS
