"""Upscaling as Real-ESRGAN users expect it, and fidelity in every operation, through a real
tritonserver: photo x4, any output scale, denoise, alpha, 16-bit values, ICC profile and EXIF."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

pytestmark = pytest.mark.e2e

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def bicubic_up(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def test_photo_x4_small_image(client, photos):
    # A small image and a small tile keep RRDBNet (16.7M parameters) quick on a CPU.
    lr = np.asarray(Image.fromarray(photos["astronaut"]).resize((40, 40), Image.BOX))
    result = client.upscale(lr, scale=4, mode="photo", tile=48)
    out = np.asarray(result.image.convert("RGB"))
    assert out.shape == (160, 160, 3)
    report = result.report["upscale"]
    assert [m["name"] for m in result.report["models"]] == ["upscaler_realesrgan_x4plus"]
    assert report["settings"]["mode"] == "photo" and report["chain_scale"] == 4 and report["resized"] is None
    # the same picture, sharpened: close to bicubic on average, but with more detail (gradient energy)
    ref = bicubic_up(lr, 160, 160).astype(np.float32)
    assert np.abs(out.astype(np.float32) - ref).mean() < 20  # a shifted or garbled output is far over

    def energy(a):
        return np.mean(np.abs(np.diff(a.astype(np.float32).mean(axis=2), axis=1)))

    assert energy(out) > energy(ref)


def test_legacy_mode_names_are_aliases(client, photos):
    report = client.upscale(photos["coffee"][:32, :32], mode="conservative").report
    assert report["upscale"]["settings"]["mode"] == "faithful"


@pytest.mark.parametrize("mode,outscale", [("faithful", 3), ("anime", 3), ("faithful", 1.5)])
def test_outscale_gives_exactly_that_size(client, photos, mode, outscale):
    lr = photos["chelsea"][:30, :44]
    result = client.upscale(lr, outscale=outscale, mode=mode)
    h, w = round(30 * outscale), round(44 * outscale)
    assert result.image.size == (w, h)
    report = result.report["upscale"]
    assert report["output_scale"] == outscale and report["chain_scale"] == (4 if outscale > 2 else 2)
    assert report["resized"] == f"{44 * report['chain_scale']}x{30 * report['chain_scale']} -> {w}x{h} (Lanczos)"
    assert result.report["output"]["width"] == w


def test_rgba_comes_back_rgba_with_its_alpha_upscaled(client, photos):
    rgb = photos["coffee"][:40, :48]
    yy, xx = np.mgrid[:40, :48]
    alpha = np.where((yy - 20) ** 2 + (xx - 24) ** 2 < 15**2, 255, 0).astype(np.uint8)  # an opaque disc
    result = client.upscale(encoded(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")), scale=2)
    assert result.image.mode == "RGBA" and result.image.size == (96, 80)
    out_alpha = np.asarray(result.image)[..., 3].astype(np.float32)
    nearest = alpha.repeat(2, 0).repeat(2, 1).astype(np.float32)
    assert np.abs(out_alpha - nearest).mean() < 6  # the disc, upscaled, edges aside
    assert out_alpha[40, 48] >= 250 and out_alpha[2, 2] <= 5
    assert result.report["upscale"]["alpha"] == "model" and result.report["output"]["alpha"]
    assert result.report["input"]["alpha"] and result.report["upscale"]["tiles"] == 2


def test_icc_profile_survives_upscale_and_inpaint(client, photos):
    jpeg = encoded(Image.fromarray(photos["astronaut"][:48, :64]), "JPEG", quality=90, icc_profile=SRGB_ICC)
    for fmt in ("jpeg", "png"):
        up = client.upscale(jpeg, format=fmt)
        assert Image.open(io.BytesIO(up.data)).info.get("icc_profile") == SRGB_ICC
    mask = np.zeros((48, 64), np.uint8)
    mask[20:26, 20:34] = 255
    filled = client.inpaint(jpeg, mask, format="jpeg")
    assert Image.open(io.BytesIO(filled.data)).info.get("icc_profile") == SRGB_ICC
    assert filled.report["output"]["icc_profile"] and filled.report["input"]["icc_profile"]
    stripped = client.upscale(jpeg, keep_metadata=False)
    assert not Image.open(io.BytesIO(stripped.data)).info.get("icc_profile")


def test_exif_kept_with_orientation_applied(client, photos):
    img = Image.fromarray(photos["chelsea"][:40, :56])
    exif = img.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "RetouchCam"
    result = client.upscale(encoded(img, "JPEG", quality=90, exif=exif.tobytes()), format="jpeg")
    out = Image.open(io.BytesIO(result.data))
    assert out.size == (80, 112)  # upright, then x2
    tags = out.getexif()
    assert tags.get(0x010F) == "RetouchCam" and tags.get(0x0112, 1) == 1


def test_16bit_gradient_is_not_posterised(client):
    ramp = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (24, 1))  # 16-bit grey PNG (I;16)
    result = client.upscale(encoded(Image.fromarray(ramp)), scale=2)
    assert result.report["input"]["bits"] == 16 and result.report["output"]["bits"] == 16
    assert result.report["output"]["mode"] == "I;16"
    out = cv2.imdecode(np.frombuffer(result.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (48, 192)
    row = out[24].astype(np.int64)
    assert len(np.unique(out)) > 256  # more levels than 8 bits could hold
    assert np.abs(row - np.linspace(0, 65535, 192)).max() < 2000  # still the ramp
    # an edit keeps the 16-bit values it did not touch
    mask = np.zeros((24, 96), np.uint8)
    mask[8:14, 40:50] = 255
    filled = client.inpaint(encoded(Image.fromarray(ramp)), mask)
    back = cv2.imdecode(np.frombuffer(filled.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[:, :30], ramp[:, :30])


def test_rgba_inpaint_keeps_alpha(client, photos):
    rgb = photos["coffee"][:48, :48]
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (48, 1))
    mask = np.zeros((48, 48), np.uint8)
    mask[20:28, 20:28] = 255
    result = client.inpaint(encoded(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")), mask)
    assert result.image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(result.image)[..., 3], alpha)


def test_denoise_2_runs_and_smooths_jpeg_noise(client, photos):
    jpeg = encoded(Image.fromarray(photos["coffee"][:48, :48]), "JPEG", quality=50)
    plain = client.upscale(jpeg, scale=2)
    result = client.upscale(jpeg, scale=2, denoise=2)
    assert [m["name"] for m in result.report["models"]] == ["upscaler_waifu2x_photo_x2_denoise2"]
    assert result.report["upscale"]["settings"]["denoise"] == 2

    def energy(r):
        return np.mean(np.abs(np.diff(np.asarray(r.image.convert("L"), np.float32), axis=1)))

    assert energy(result) < energy(plain)  # block edges and ringing smoothed away


def test_denoise_outside_faithful_is_refused(client, photos):
    from retouch_client import InvalidInputError

    with pytest.raises(InvalidInputError, match="denoise"):
        client.upscale(photos["coffee"][:32, :32], mode="photo", denoise=1)


def test_clean_keeps_alpha_and_upscales_it(client, photos):
    rgb = photos["chelsea"][:48, :48]
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8)[:, None], (1, 48))
    result = client.clean(encoded(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")))
    assert result.image.mode == "RGBA" and result.image.size == (96, 96)
    out_alpha = np.asarray(result.image)[..., 3].astype(np.float32)
    assert np.abs(out_alpha - alpha.repeat(2, 0).repeat(2, 1)).mean() < 3
