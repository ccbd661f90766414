"""Raw pixels in place of encoded bytes, both ways: what the shared-memory client path sends and gets."""

import numpy as np
import pytest

from retouch.codecs import decode_request, encode_image, encode_response
from retouch.errors import InvalidInput
from retouch.settings import UpscaleSettings, parse_settings

RGB = np.random.default_rng(2).integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_raw_pixels_pass_through_checked():
    decoded = decode_request(None, RGB)
    np.testing.assert_array_equal(decoded.rgb, RGB)
    assert decoded.info() == {
        "width": 20,
        "height": 12,
        "format": "raw",
        "mode": "RGB",
        "bits": 8,
        "alpha": False,
        "grey": False,
        "icc_profile": False,
        "exif": False,
    }


def test_encoded_and_raw_requests_decode_to_the_same_pixels():
    np.testing.assert_array_equal(decode_request(encode_image(RGB, "png"), None).rgb, decode_request(None, RGB).rgb)


@pytest.mark.parametrize(
    "image,pixels,message",
    [
        (None, None, "send exactly one of IMAGE .* got neither"),
        (b"png", RGB, "send exactly one of IMAGE .* got both"),
        (None, RGB[..., 0], "expected HxWx3 uint8 RGB pixels"),
        (None, RGB.astype(np.float32), "expected HxWx3 uint8 RGB pixels"),
        (None, np.zeros((0, 4, 3), np.uint8), "image has no pixels"),
    ],
)
def test_bad_requests_say_what_to_fix(image, pixels, message):
    with pytest.raises(InvalidInput, match=message):
        decode_request(image, pixels)


def test_raw_pixels_respect_the_pixel_limit():
    with pytest.raises(InvalidInput, match="over the limit of 200"):
        decode_request(None, RGB, max_pixels=200)


def test_raw_response_returns_pixels_and_no_bytes():
    data, raw = encode_response(RGB, "raw")
    assert data == b""
    np.testing.assert_array_equal(raw, RGB)


def test_encoded_response_returns_bytes_and_no_pixels():
    data, raw = encode_response(RGB, "png")
    assert data == encode_image(RGB, "png")
    assert raw.shape == (0, 0, 3) and raw.dtype == np.uint8


def test_raw_is_an_accepted_output_format():
    assert parse_settings(UpscaleSettings, b'{"format": "raw"}').format == "raw"
    with pytest.raises(InvalidInput, match="'format' must be one of .*'raw'"):
        parse_settings(UpscaleSettings, b'{"format": "bmp"}')
