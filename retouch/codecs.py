"""Decode and encode images at the service boundary.

Pixels travel as encoded bytes (PNG/JPEG/WebP): on the network that costs far less than raw
tensors. Decoding is guarded by a pixel limit checked from the header, before any pixel is
decompressed, so a decompression bomb is refused cheaply.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from retouch.errors import InvalidInput, client_data

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
# Both encoders use it: Pillow for 8-bit output, OpenCV for 16-bit (_png16).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class Metadata:
    """What an output should carry over from its input: colour profile, EXIF (orientation already
    applied to the pixels, so its tag is reset: removed, which reads as 1) and whether the source
    was grey (then the output is grey)."""

    icc: bytes = b""
    exif: bytes = b""
    grey: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "icc": base64.b64encode(self.icc).decode(),
                "exif": base64.b64encode(self.exif).decode(),
                "grey": self.grey,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Metadata:
        if not data:
            return cls()
        d = json.loads(data)
        return cls(base64.b64decode(d["icc"]), base64.b64decode(d["exif"]), bool(d["grey"]))


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # HxWx3 uint8, EXIF orientation applied (grey sources replicated to 3 channels)
    source_format: str
    source_mode: str
    # What 8-bit RGB loses, carried beside it (FIDELITY tensor): None, or HxW uint16 alpha (0..65535).
    alpha: np.ndarray | None = None
    # HxWx3 uint16 (0..65535) when the source has more than 8 bits per channel.
    deep: np.ndarray | None = None
    metadata: Metadata = Metadata()
    bits: int = 8

    def info(self) -> dict:
        h, w = self.rgb.shape[:2]
        return {
            "width": w,
            "height": h,
            "format": self.source_format,
            "mode": self.source_mode,
            "bits": self.bits,
            "alpha": self.alpha is not None,
            "grey": self.metadata.grey,
            "icc_profile": bool(self.metadata.icc),
            "exif": bool(self.metadata.exif),
        }

    def fidelity(self) -> np.ndarray:
        return pack_fidelity(self.deep, self.alpha)


# FIDELITY: one HxWxK uint16 tensor (0..65535) with what the 8-bit RGB PIXELS lose. K says what:
# 0 nothing (shape 0x0x0), 1 alpha, 3 deep RGB, 4 deep RGB + alpha.
NO_FIDELITY = np.zeros((0, 0, 0), np.uint16)


def pack_fidelity(deep: np.ndarray | None, alpha: np.ndarray | None) -> np.ndarray:
    parts = ([deep] if deep is not None else []) + ([alpha[..., None]] if alpha is not None else [])
    if not parts:
        return NO_FIDELITY
    return np.ascontiguousarray(np.concatenate(parts, axis=2).astype(np.uint16))


def unpack_fidelity(
    fidelity: np.ndarray | None, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """FIDELITY -> (deep HxWx3 or None, alpha HxW or None); checks it matches the pixels' HxW."""
    if fidelity is None or fidelity.size == 0:
        return None, None
    k = fidelity.shape[2]
    if k not in (1, 3, 4) or (shape is not None and fidelity.shape[:2] != tuple(shape)):
        raise ValueError(f"FIDELITY {fidelity.shape} does not go with pixels {shape}")
    deep = fidelity[..., :3] if k >= 3 else None
    alpha = fidelity[..., 3] if k == 4 else fidelity[..., 0] if k == 1 else None
    return deep, alpha


def to_8bit(values16: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255, rounded (exactly inverts x * 257)."""
    return ((values16.astype(np.uint32) + 128) // 257).astype(np.uint8)


def merge_deep(rgb: np.ndarray, deep: np.ndarray) -> np.ndarray:
    """16-bit pixels for an 8-bit result: where the step left a pixel as it was, its 16-bit
    original; where it changed the pixel (an inpainted hole), the 8-bit value scaled up."""
    kept = (to_8bit(deep) == rgb).all(axis=2, keepdims=True)
    return np.where(kept, deep, rgb.astype(np.uint16) * 257)


# EXIF orientation -> numpy transform of an HxW[xC] array (what ImageOps.exif_transpose does).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
ORIENTATION_TAG = 0x0112
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


def check_size(w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise InvalidInput(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}; downscale it first")
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
    with client_data(what):  # Image.open parses the chunks before IDAT (iCCP, text): they can fail
        try:
            img = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
        except UnidentifiedImageError:
            raise InvalidInput(
                f"{what} bytes are not a PNG, JPEG or WebP file ({len(data)} bytes, starting {data[:8]!r})"
            ) from None
    check_size(*img.size, max_pixels)
    source_format, source_mode = img.format or "", img.mode
    with client_data(what):  # truncated or corrupt pixel data, a broken EXIF block
        img.load()
        img = ImageOps.exif_transpose(img)
    return img, source_format, source_mode


def _metadata(img: Image.Image, grey: bool, colour: bool) -> Metadata:
    """ICC (only when it describes the colour space the output will have) and EXIF with the
    orientation tag reset (exif_transpose removed it; any left is set to 1)."""
    icc = img.info.get("icc_profile") or b""
    if icc and not colour:  # a CMYK/Lab profile does not describe the RGB we return
        icc = b""
    exif = img.getexif()
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return Metadata(icc=icc, exif=exif.tobytes() if len(exif) else b"", grey=grey)


def _deep_png_rgb(data: bytes, orientation: int) -> np.ndarray:
    """A 16-bit RGB(A) PNG at full depth (Pillow reads it at 8 bits): HxWx3|4 uint16, RGB order."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise InvalidInput("16-bit PNG data is corrupt or truncated")
    arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(arr))


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode PNG/JPEG/WebP bytes, refusing anything over max_pixels.

    Returns 8-bit RGB for the models, and beside it what 8-bit RGB would lose: alpha, 16-bit
    values (rounded to 8 bits for the RGB, never truncated), the ICC profile and EXIF."""
    img, source_format, source_mode = open_image(data, max_pixels)
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    mode = img.mode
    # Pillow opens a 16-bit grey+alpha PNG as RGBA: the PNG's colour type (0 grey, 4 grey+alpha) says.
    grey = mode in GREY_MODES or (source_format == "PNG" and len(data) > 25 and data[25] in (0, 4))
    colour = grey or mode in ("RGB", "RGBA", "RGBX", "RGBa")
    metadata = _metadata(img, grey, colour)
    deep = alpha = None
    bits = 8
    if source_format == "PNG" and source_mode in ("RGB", "RGBA") and _png_bit_depth(data) == 16:
        arr = _deep_png_rgb(data, _orientation(data))
        deep, bits = arr[..., :3], 16
        alpha = arr[..., 3] if arr.shape[2] == 4 else None
        rgb = to_8bit(deep)
    elif mode.startswith("I"):  # 16-bit (or 32-bit integer) grey
        values = np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)
        deep, bits = np.repeat(values[..., None], 3, axis=2), 16
        rgb = to_8bit(deep)
    elif mode in ("RGBA", "LA", "La", "RGBa"):
        full = img.convert("RGBA")
        arr = np.asarray(full, dtype=np.uint8)
        rgb, alpha = arr[..., :3], arr[..., 3].astype(np.uint16) * 257
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb),
        source_format=source_format,
        source_mode=source_mode,
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        deep=None if deep is None else np.ascontiguousarray(deep),
        metadata=metadata,
        bits=bits,
    )


def _png_bit_depth(data: bytes) -> int:
    """IHDR bit depth of PNG bytes (byte 24: signature 8 + length 4 + type 4 + width 4 + height 4)."""
    return data[24] if len(data) > 24 and data[:8] == b"\x89PNG\r\n\x1a\n" else 8


def _orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as img:
            return int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - open_image reports what is wrong with the bytes
        return 1


def decode_mask(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a mask image to HxW uint8 grey (bright = remove). Colour masks are converted to grey."""
    img, _, _ = open_image(data, max_pixels, "mask")
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))


def decode_pixels(pixels: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Check raw HxWx3 uint8 pixels (sent instead of encoded bytes) like decoded ones."""
    check_rgb(pixels)
    check_size(pixels.shape[1], pixels.shape[0], max_pixels)
    return DecodedImage(rgb=np.ascontiguousarray(pixels), source_format="raw", source_mode="RGB")


def decode_request(
    image: bytes | None, pixels: np.ndarray | None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """The request's image: encoded IMAGE bytes or raw PIXELS, exactly one of them."""
    if (image is None) == (pixels is None):
        sent = "both" if image is not None else "neither"
        raise InvalidInput(
            f"send exactly one of IMAGE (encoded PNG, JPEG or WebP bytes) or PIXELS (HxWx3 uint8 RGB); got {sent}"
        )
    return decode_image(image, max_pixels) if pixels is None else decode_pixels(pixels, max_pixels)


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 95, **fidelity) -> bytes:
    """Encode HxWx3 uint8 RGB (and what `fidelity` carries, see encode_with_info). Deterministic:
    the same pixels give the same bytes."""
    return encode_with_info(rgb, fmt, quality, **fidelity)[0]


def encode_with_info(
    rgb: np.ndarray,
    fmt: str,
    quality: int,
    *,
    deep: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    metadata: Metadata | None = None,
    keep_metadata: bool = True,
) -> tuple[bytes, dict]:
    """Encode the result with what the input had: (bytes, what was written).

    deep: HxWx3 uint16 values of the input (or of an upscaled result) for a 16-bit PNG: pixels the
    result left as they were keep their 16-bit value, changed ones are the 8-bit result scaled up
    (merge_deep). alpha: HxW uint16, written to PNG and WebP (JPEG has none: dropped, and said).
    metadata: a grey source gives a grey output; ICC profile and EXIF are written unless
    keep_metadata is false."""
    if fmt not in OUTPUT_FORMATS:
        raise InvalidInput(f"output format {fmt!r} is not one of {sorted(OUTPUT_FORMATS)}")
    check_rgb(rgb)
    metadata = metadata or Metadata()
    pil_format = OUTPUT_FORMATS[fmt]
    use_alpha = alpha is not None and pil_format != "JPEG"
    use_deep = deep is not None and pil_format == "PNG"
    icc = metadata.icc if keep_metadata else b""
    exif = metadata.exif if keep_metadata else b""
    if use_deep:
        values = merge_deep(rgb, deep)
        if metadata.grey:
            values = np.rint(values.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint16)
        if use_alpha:  # PNG has grey+alpha at 16 bits, but OpenCV writes 1, 3 or 4 channels
            values = np.concatenate([np.broadcast_to(values, (*values.shape[:2], 3)), alpha[..., None]], axis=2)
        data = _png16(values, icc, exif)
        mode = {1: "I;16", 3: "RGB;16", 4: "RGBA;16"}[values.shape[2]]
    else:
        channels = np.rint(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8) if metadata.grey else rgb
        if use_alpha:
            a8 = to_8bit(alpha)
            channels = np.dstack([channels, a8]) if metadata.grey else np.dstack([rgb, a8])
        mode = ("L" if metadata.grey else "RGB") + ("A" if use_alpha else "")
        if pil_format == "WEBP" and mode.startswith("L"):
            mode = "RGBA" if use_alpha else "RGB"  # WebP is colour only
            channels = np.dstack([rgb] + ([to_8bit(alpha)] if use_alpha else []))
        options = {"compress_level": PNG_COMPRESS_LEVEL} if pil_format == "PNG" else {"quality": int(quality)}
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(channels), mode).save(buf, format=pil_format, **options)
        data = buf.getvalue()
    info = {
        "mode": mode,
        "bits": 16 if use_deep else 8,
        "alpha": use_alpha,
        "icc_profile": bool(icc),
        "exif": bool(exif),
    }
    if alpha is not None and not use_alpha:
        info["alpha_dropped"] = f"{fmt} has no alpha channel; use png or webp to keep it"
    if deep is not None and not use_deep:
        info["reduced_to_8_bits"] = f"{fmt} holds 8 bits per channel; png keeps 16"
    return data, info


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def _png16(values: np.ndarray, icc: bytes, exif: bytes) -> bytes:
    """HxWx{1,3,4} uint16 (grey, RGB or RGBA) -> 16-bit PNG with iCCP and eXIf chunks (Pillow
    writes 16-bit grey only; OpenCV writes 16-bit colour but no metadata, so we add the chunks)."""
    arr = values[..., 0] if values.shape[2] == 1 else values[..., [2, 1, 0, 3][: values.shape[2]]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESS_LEVEL])
    if not ok:
        raise RuntimeError("OpenCV could not encode the 16-bit PNG")
    data = buf.tobytes()
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def encode_response(rgb: np.ndarray, fmt: str = "png", quality: int = 95, **fidelity) -> tuple[bytes, np.ndarray]:
    """(encoded bytes, raw pixels): format "raw" returns the pixels and no bytes, others the reverse."""
    return encode_result(rgb, fmt, quality, **fidelity)[:2]


def encode_result(rgb: np.ndarray, fmt: str, quality: int, **fidelity) -> tuple[bytes, np.ndarray, dict]:
    """(encoded bytes, raw pixels, what was written): format "raw" returns the 8-bit RGB pixels
    and no bytes, others the reverse."""
    if fmt == RAW_FORMAT:
        check_rgb(rgb)
        return b"", np.ascontiguousarray(rgb), {"mode": "RGB", "bits": 8, "alpha": False}
    data, info = encode_with_info(rgb, fmt, quality, **fidelity)
    return data, NO_PIXELS, info
