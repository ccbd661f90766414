"""`upscale` through a real tritonserver, over gRPC, on real photos."""

from __future__ import annotations

import concurrent.futures as cf
import io

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim

from retouch_client import InvalidInputError

pytestmark = pytest.mark.e2e


def pixels(result) -> np.ndarray:
    return np.asarray(result.image.convert("RGB"))


def downscale(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // scale, h // scale), Image.BICUBIC, reducing_gap=None))


def bicubic_up(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * scale, h * scale), Image.BICUBIC))


@pytest.mark.parametrize("scale", [2, 4])
def test_conservative_beats_bicubic_on_real_photos(client, photos, scale):
    gains = {}
    for name, hr in photos.items():
        lr = downscale(hr, scale)
        result = client.upscale(lr, scale=scale)
        out = pixels(result)
        assert out.shape == hr.shape
        assert result.report["output"] == {
            "width": 256,
            "height": 256,
            "format": "png",
            "quality": 95,
            "bytes": len(result.data),
            "keep_metadata": True,
            "mode": "RGB",
            "bits": 8,
            "alpha": False,
            "icc_profile": False,
            "exif": False,
        }
        assert result.report["steps"] == ["upscale"] and result.report["input"]["width"] == 256 // scale
        gains[name] = psnr(hr, out) - psnr(hr, bicubic_up(lr, scale))
    print(f"PSNR gain over bicubic at x{scale}: {gains}")
    assert all(g > 0.3 for g in gains.values()), gains


@pytest.mark.parametrize("scale", [2, 4])
def test_creative_output_size_and_report(client, photos, scale):
    lr = downscale(photos["chelsea"], scale)
    result = client.upscale(lr, scale=scale, mode="creative")
    assert pixels(result).shape == (256, 256, 3)
    report = result.report
    assert report["upscale"]["settings"]["mode"] == "anime" and report["upscale"]["settings"]["scale"] == scale
    assert [m["name"] for m in report["models"]] == [f"upscaler_animevideov3_x{scale}"]
    assert all(len(m["onnx_sha256"]) == 64 and m["version"] == "1" for m in report["models"])


@pytest.mark.parametrize("mode", ["conservative", "creative"])
def test_tiled_matches_untiled(client, photos, mode):
    lr = photos["astronaut"][:200, :232]  # not a multiple of the tile: edge tiles overlap more
    tiled = client.upscale(lr, scale=2, mode=mode, tile=64, overlap=16)
    untiled = client.upscale(lr, scale=2, mode=mode, tile=256)
    assert tiled.report["upscale"]["tiles"] > 9 and untiled.report["upscale"]["tiles"] == 1
    score = ssim(pixels(tiled), pixels(untiled), channel_axis=2)
    print(f"{mode}: SSIM tiled vs untiled = {score:.5f}")
    assert score >= 0.995


@pytest.mark.parametrize("mode", ["conservative", "creative"])
def test_seam_score_separates_blended_from_naive_tiling(client, photos, mode):
    lr = photos["coffee"][:192, :192]
    blended = client.upscale(lr, scale=4, mode=mode, tile=48, overlap=16).report["upscale"]
    naive = client.upscale(lr, scale=4, mode=mode, tile=48, overlap=0, blend="none").report["upscale"]
    print(f"{mode}: seam score blended {blended['seam_score']}, naive {naive['seam_score']}")
    threshold = blended["settings"]["seam_threshold"]
    assert blended["seam_score"] < threshold and not blended["seam_over_threshold"]
    assert naive["seam_score"] > threshold and naive["seam_over_threshold"]


def test_identical_requests_give_identical_bytes(client, photos):
    first = client.upscale(photos["chelsea"][:96, :120], scale=2, tile=48, overlap=8)
    second = client.upscale(photos["chelsea"][:96, :120], scale=2, tile=48, overlap=8)
    assert first.data == second.data
    assert first.report["upscale"]["settings"] == second.report["upscale"]["settings"]


@pytest.mark.parametrize("fmt,pil", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_formats(client, photos, fmt, pil):
    result = client.upscale(photos["coffee"][:64, :64], format=fmt, quality=90)
    assert Image.open(io.BytesIO(result.data)).format == pil


def test_concurrent_requests_batch_in_the_upscaler(server, triton, photos):
    model = "upscaler_animevideov3_x2"

    def counts():
        stats = triton.get_inference_statistics(model).model_stats[0]
        return stats.inference_count, stats.execution_count

    before = counts()
    from retouch_client import RetouchClient

    def one(i):
        with RetouchClient(server["grpc"], timeout_s=300) as c:  # one channel per caller
            return c.upscale(np.roll(photos["chelsea"][:60, :60], i, axis=1), mode="creative", tile=32, overlap=4)

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(r.report["upscale"]["tiles"] == 4 for r in results)
    inferences, executions = (a - b for a, b in zip(counts(), before))
    print(f"{model}: {inferences} tiles in {executions} executions, average batch {inferences / executions:.2f}")
    assert inferences == 64
    assert inferences / executions > 1.0


def bomb(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload,settings,message",
    [
        (b"definitely not an image", {}, "not a PNG, JPEG or WebP"),
        (b"", {}, "empty image payload"),
        (None, {"scale": 3}, "'scale' must be one of \\[2, 4\\] \\(got 3\\)"),
        (None, {"tile": 4}, "'tile' must be between 32 and 512"),
        (None, {"colour": "red"}, "unknown setting"),
        (bomb(6000, 5000), {}, "over the limit of 25000000"),
    ],
)
def test_bad_input_is_invalid_argument_and_server_keeps_serving(client, triton, photos, payload, settings, message):
    image = photos["coffee"][:32, :32] if payload is None else payload
    with pytest.raises(InvalidInputError, match=message) as info:
        client.upscale(image, **settings)
    assert info.value.status == "StatusCode.INVALID_ARGUMENT"
    assert triton.is_server_live() and triton.is_server_ready()
    assert client.upscale(photos["coffee"][:32, :32]).report["output"]["width"] == 64


def test_output_pixel_limit(client):
    big = np.zeros((4100, 4100, 3), np.uint8)  # under the input limit; x4 would be 269 MP
    with pytest.raises(InvalidInputError, match="over the limit of 64000000"):
        client.upscale(big, scale=4)


def test_wrong_dtype_to_the_ensemble_is_refused(triton):
    tensor = grpcclient.InferInput("IMAGE", [1], "FP32")
    tensor.set_data_from_numpy(np.zeros(1, np.float32))
    with pytest.raises(Exception, match="(?i)data-type|datatype|FP32"):
        triton.infer("upscale", [tensor])
