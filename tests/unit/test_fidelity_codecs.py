"""Decode then encode keeps what the input had: mode (alpha, grey), 16-bit values, ICC profile and
EXIF (orientation applied, tag reset); keep_metadata=False strips the metadata."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps
from skimage import data

from retouch.codecs import Metadata, decode_image, encode_with_info, merge_deep, pack_fidelity, to_8bit, unpack_fidelity

RGB = data.astronaut()[100:148, 150:214]  # 48x64, non-square
ALPHA = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def save(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def roundtrip(encoded: bytes, fmt: str = "png", **kw):
    d = decode_image(encoded)
    out, info = encode_with_info(d.rgb, fmt, 95, deep=d.deep, alpha=d.alpha, metadata=d.metadata, **kw)
    return d, out, info


def test_rgb():
    _, out, info = roundtrip(save(Image.fromarray(RGB)))
    back = Image.open(io.BytesIO(out))
    assert back.mode == "RGB" and info["mode"] == "RGB"
    np.testing.assert_array_equal(np.asarray(back), RGB)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_rgba_stays_rgba(fmt):
    src = np.dstack([RGB, ALPHA])
    d, out, info = roundtrip(
        save(Image.fromarray(src, "RGBA")),
        fmt,
    )
    assert d.alpha is not None and d.info()["alpha"]
    back = Image.open(io.BytesIO(out))
    assert back.mode == "RGBA" and info["alpha"]
    if fmt == "png":
        np.testing.assert_array_equal(np.asarray(back), src)
    else:  # lossy WebP: alpha is lossless in WebP, colour is not
        np.testing.assert_array_equal(np.asarray(back)[..., 3], ALPHA)


def test_rgba_to_jpeg_drops_alpha_and_says_so():
    _, out, info = roundtrip(save(Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA")), "jpeg")
    assert Image.open(io.BytesIO(out)).mode == "RGB" and "alpha_dropped" in info


def test_grey_and_grey_alpha_stay_grey():
    grey = RGB[..., 1]
    _, out, _ = roundtrip(save(Image.fromarray(grey, "L")))
    back = Image.open(io.BytesIO(out))
    assert back.mode == "L"
    np.testing.assert_array_equal(np.asarray(back), grey)
    _, out, _ = roundtrip(save(Image.fromarray(np.dstack([grey, ALPHA]), "LA")))
    back = Image.open(io.BytesIO(out))
    assert back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back), np.dstack([grey, ALPHA]))


def test_16bit_grey_is_rounded_not_truncated_and_written_back_at_16_bits():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    d, out, info = roundtrip(save(Image.fromarray(ramp)))  # Pillow writes I;16 PNG
    assert d.bits == 16 and d.info()["bits"] == 16
    # 8-bit view: every level present once (not 0/255 only), rounded: v -> round(v / 257)
    np.testing.assert_array_equal(d.rgb[..., 0], np.rint(ramp / 257).astype(np.uint8))
    assert len(np.unique(d.rgb)) == 256
    assert info["mode"] == "I;16" and info["bits"] == 16
    back = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, ramp)
    _, jpeg, info = roundtrip(save(Image.fromarray(ramp)), "jpeg")
    assert info["bits"] == 8 and "reduced_to_8_bits" in info


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png(channels):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 65536, (20, 30, channels), dtype=np.uint16)
    ok, buf = cv2.imencode(".png", src)  # BGR(A) order in OpenCV
    d, out, info = roundtrip(buf.tobytes())
    rgb16 = src[..., [2, 1, 0]]
    np.testing.assert_array_equal(d.deep, rgb16)
    np.testing.assert_array_equal(d.rgb, to_8bit(rgb16))
    assert (d.alpha is not None) == (channels == 4)
    back = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, src)
    assert info["mode"] == ("RGB;16" if channels == 3 else "RGBA;16")


def test_palette_with_and_without_transparency():
    pal = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    _, out, _ = roundtrip(save(pal))
    back = Image.open(io.BytesIO(out))
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = 0
    d, out, _ = roundtrip(save(pal, transparency=0))
    back = Image.open(io.BytesIO(out))
    assert back.mode == "RGBA" and (np.asarray(back)[..., 3] == 0).any()


def test_cmyk_jpeg_comes_back_rgb_without_its_cmyk_profile():
    cmyk = Image.fromarray(RGB).convert("CMYK")
    d, out, info = roundtrip(save(cmyk, "JPEG", quality=95, icc_profile=b"not an rgb profile"), "png")
    assert d.source_mode == "CMYK" and not d.metadata.icc
    back = Image.open(io.BytesIO(out))
    assert back.mode == "RGB" and "icc_profile" not in back.info
    np.testing.assert_array_equal(
        np.asarray(back), np.asarray(Image.open(io.BytesIO(save(cmyk, "JPEG", quality=95))).convert("RGB"))
    )


@pytest.mark.parametrize("src_fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_icc_profile_kept_and_stripped(src_fmt, fmt):
    encoded = save(Image.fromarray(RGB), src_fmt, icc_profile=SRGB_ICC)
    _, out, info = roundtrip(encoded, fmt)
    assert Image.open(io.BytesIO(out)).info.get("icc_profile") == SRGB_ICC and info["icc_profile"]
    _, out, info = roundtrip(encoded, fmt, keep_metadata=False)
    assert not Image.open(io.BytesIO(out)).info.get("icc_profile") and not info["icc_profile"]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exif_rotated_jpeg(fmt):
    img = Image.fromarray(RGB)  # 64 wide, 48 high
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "RetouchCam"
    d, out, info = roundtrip(save(img, "JPEG", quality=95, exif=exif.tobytes()), fmt)
    assert d.rgb.shape[:2] == (64, 48)  # upright
    back = Image.open(io.BytesIO(out))
    assert back.size == (48, 64) and info["exif"]
    tags = back.getexif()
    assert tags.get(0x010F) == "RetouchCam" and tags.get(0x0112, 1) == 1
    _, out, _ = roundtrip(save(img, "JPEG", quality=95, exif=exif.tobytes()), fmt, keep_metadata=False)
    assert not Image.open(io.BytesIO(out)).getexif()


def test_exif_rotated_16bit_png_is_rotated_like_pillow_would():
    src = np.random.default_rng(1).integers(0, 65536, (10, 16, 3), dtype=np.uint16)
    ok, buf = cv2.imencode(".png", src)
    exif = Image.new("RGB", (1, 1)).getexif()
    for orientation in range(2, 9):
        exif[0x0112] = orientation
        png = buf.tobytes()
        png = png[:33] + _chunk(b"eXIf", exif.tobytes()[6:]) + png[33:]
        d = decode_image(png)
        expect = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(png))))
        np.testing.assert_array_equal(d.deep >> 8, expect)  # Pillow reads the high byte


def _chunk(tag, body):
    import struct
    import zlib

    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def test_edits_keep_16bit_values_outside_the_changed_pixels():
    deep = np.random.default_rng(2).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    rgb = to_8bit(deep)
    rgb[2:4, 2:4] = 7  # the "hole"
    merged = merge_deep(rgb, deep)
    np.testing.assert_array_equal(merged[2:4, 2:4], 7 * 257)
    keep = np.ones((8, 8), bool)
    keep[2:4, 2:4] = False
    np.testing.assert_array_equal(merged[keep], deep[keep])


def test_fidelity_packing():
    deep = np.zeros((4, 5, 3), np.uint16)
    alpha = np.full((4, 5), 9, np.uint16)
    for d, a, k in [(None, None, 0), (None, alpha, 1), (deep, None, 3), (deep, alpha, 4)]:
        packed = pack_fidelity(d, a)
        assert packed.dtype == np.uint16 and (packed.size == 0 if k == 0 else packed.shape == (4, 5, k))
        d2, a2 = unpack_fidelity(packed, (4, 5))
        assert (d2 is None) == (d is None) and (a2 is None) == (a is None)
    with pytest.raises(ValueError):
        unpack_fidelity(pack_fidelity(deep, alpha), (8, 10))
    m = Metadata(icc=b"\x00\x01", exif=b"Exif\x00\x00abc", grey=True)
    assert Metadata.from_bytes(m.to_bytes()) == m and Metadata.from_bytes(b"") == Metadata()


def test_16bit_grey_alpha_png_stays_grey_with_alpha_at_16_bits():
    import struct
    import zlib

    h, w = 3, 4
    la = np.arange(h * w * 2, dtype=np.uint16).reshape(h, w, 2) * 1000
    raw = b"".join(b"\x00" + la[y].astype(">u2").tobytes() for y in range(h))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
    d, out, info = roundtrip(png)
    assert d.metadata.grey and d.bits == 16
    np.testing.assert_array_equal(d.deep[..., 0], la[..., 0])
    np.testing.assert_array_equal(d.alpha, la[..., 1])
    back = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)  # written as RGBA 16
    np.testing.assert_array_equal(back[..., 0], la[..., 0])
    np.testing.assert_array_equal(back[..., 3], la[..., 1])
