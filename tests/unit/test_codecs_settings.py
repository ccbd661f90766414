import io
import json

import numpy as np
import pytest
from PIL import Image

from retouch.codecs import decode_image, encode_image
from retouch.errors import InvalidInput
from retouch.settings import UpscaleSettings, parse_settings


def png(arr, mode=None, **info):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG", **info)
    return buf.getvalue()


def test_roundtrip_is_lossless_and_deterministic():
    rgb = np.random.default_rng(1).integers(0, 256, (31, 47, 3), dtype=np.uint8)
    data = encode_image(rgb, "png")
    assert encode_image(rgb, "png") == data
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded.rgb, rgb)
    assert decoded.info() == {
        "width": 47,
        "height": 31,
        "format": "PNG",
        "mode": "RGB",
        "bits": 8,
        "alpha": False,
        "grey": False,
        "icc_profile": False,
        "exif": False,
    }


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_decode_back(fmt):
    rgb = np.full((16, 16, 3), 100, np.uint8)
    assert decode_image(encode_image(rgb, fmt, 90)).rgb.shape == (16, 16, 3)


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"", "empty image payload"),
        (b"this is not an image at all", "not a PNG, JPEG or WebP"),
    ],
)
def test_bad_bytes_are_refused_clearly(payload, message):
    with pytest.raises(InvalidInput, match=message):
        decode_image(payload)


def test_truncated_png_is_refused():
    data = png(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_pixel_limit_is_checked_before_decoding():
    bomb = png(np.zeros((3000, 3000), np.uint8), "L")  # 9 MP that compresses to a few KB
    assert len(bomb) < 100_000
    with pytest.raises(InvalidInput, match="over the limit of 1000000"):
        decode_image(bomb, max_pixels=1_000_000)


def test_rgba_and_grey_become_rgb_with_mode_reported():
    rgba = np.zeros((8, 8, 4), np.uint8)
    assert decode_image(png(rgba, "RGBA")).source_mode == "RGBA"
    assert decode_image(png(np.zeros((8, 8), np.uint8), "L")).rgb.shape == (8, 8, 3)


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).rgb.shape == (20, 10, 3)


def test_settings_defaults_and_echo():
    s = parse_settings(UpscaleSettings, b"")
    assert s == UpscaleSettings() and s.to_dict()["scale"] == 2
    assert parse_settings(UpscaleSettings, json.dumps({"scale": 4.0})).scale == 4


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"scale": 3}, "'scale' must be one of \\[2, 4\\] \\(got 3\\)"),
        ({"mode": "magic"}, "'mode' must be one of"),
        ({"tile": 8}, "'tile' must be between 32 and 512"),
        ({"overlap": 64, "tile": 128}, "'overlap' must be between 0 and 63"),
        ({"scale": "2"}, "'scale' must be one of \\[2, 4\\] \\(got '2'\\)"),
        ({"scale": True}, "'scale' must be one of \\[2, 4\\] \\(got True\\)"),
        ({"denoise": True}, "'denoise' must be int \\(got True\\)"),
        ({"denoise": 1.5}, "'denoise' must be int"),
        ({"sclae": 2}, "unknown setting"),
        (b"{not json", "must be a JSON object"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_settings_are_refused_clearly(raw, message):
    with pytest.raises(InvalidInput, match=message):
        parse_settings(UpscaleSettings, raw)


def test_nested_step_settings_keep_their_own_defaults():
    from pydantic import Field

    from retouch.settings import Float, Settings

    class Outer(Settings):
        upscale: UpscaleSettings = Field(UpscaleSettings(tile=64), description="the upscale part")
        strength: Float = Field(1.0, ge=0, le=2, description="how strong")

    s = parse_settings(Outer, {"upscale": {"scale": 4}})
    assert s.upscale == UpscaleSettings(tile=64, scale=4)  # the nested default's tile survives
    with pytest.raises(InvalidInput, match="'upscale.scale' must be one of"):
        parse_settings(Outer, {"upscale": {"scale": 3}})
    with pytest.raises(InvalidInput, match="must be a JSON object of upscale settings"):
        parse_settings(Outer, {"upscale": 4})
