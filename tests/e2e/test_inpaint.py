"""`inpaint` through a real tritonserver: real photos, text-stroke and block masks, every route."""

from __future__ import annotations

import concurrent.futures as cf
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from retouch.inpaint import InpaintSettings
from retouch.masks import text_stroke_mask
from retouch_client import InvalidInputError, RetouchClient

pytestmark = pytest.mark.e2e


def block_mask(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((256, 256), np.uint8)
    y, x = rng.integers(40, 180, size=2)
    m[y : y + 24, x : x + 32] = 255
    return m


def text_mask(seed: int) -> np.ndarray:
    m = text_stroke_mask(256, 256, np.random.default_rng(seed), lines=2, dilate=1)
    return (m > 0).astype(np.uint8) * 255


def psnr_in(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = np.mean((a[where].astype(np.float64) - b[where]) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def pixels(result) -> np.ndarray:
    return np.asarray(result.image.convert("RGB"))


def far_from(mask: np.ndarray, settings: InpaintSettings) -> np.ndarray:
    """Pixels beyond the dilation plus the feathered band, which must come back untouched."""
    band = settings.dilation + int(np.ceil(2 * settings.feather_sigma) + 4 * settings.feather_sigma) + 1
    return cv2.dilate(mask, np.ones((2 * band + 1, 2 * band + 1), np.uint8)) == 0


CASES = [
    (kind, seed, photo)
    for kind in ("text", "block")
    for seed, photo in zip((1, 2, 3), ("astronaut", "chelsea", "coffee"))
]


def flat_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The baseline: the hole painted one flat colour, the image's mean."""
    out = rgb.copy()
    out[hole] = rgb.reshape(-1, 3).mean(axis=0).round()
    return out


@pytest.mark.parametrize("route", ["fast", "unet", "fsr", "patchmatch", "auto"])
def test_inpaint_real_photos_each_route(client, photos, route):
    gains = []
    for kind, seed, name in CASES:
        rgb = photos[name]
        mask = text_mask(seed) if kind == "text" else block_mask(seed)
        result = client.inpaint(rgb, mask, route=route)
        out, report = pixels(result), result.report["inpaint"]
        settings = InpaintSettings(route=route)
        # Known pixels are unchanged outside the feathered band.
        keep = far_from(mask, settings)
        np.testing.assert_array_equal(out[keep], rgb[keep])
        hole = mask > 0
        gains.append(psnr_in(out, rgb, hole) - psnr_in(flat_fill(rgb, hole), rgb, hole))
        assert report["settings"]["route"] == route
        assert route == "auto" or report["route"] == route
        assert report["verdict"] in ("accepted", "needs_review")
        assert set(report["gate"]) == {"ring_error", "hf_ratio"}
        assert report["fallback"] in (None, "fast_fill")
        assert len(report["mask_sha256"]) == 64 and 0 < report["mask_coverage"] <= 0.12
        assert {m["name"] for m in result.report["models"]} <= {"inpaint_fast_fill", "inpaint_unet", "inpaint_refine"}
        assert ("inpaint_refine" in {m["name"] for m in result.report["models"]}) == (report["refined_windows"] > 0)
        assert route == "auto" or report["refined_windows"] == 0
        assert report["route"] in ("fast", "unet", "telea", "fsr", "patchmatch", "mixed")
        # Native-resolution windows: outside the hole, the input bit for bit.
        if report["windows"] == report["native_windows"]:
            np.testing.assert_array_equal(out[~hole], rgb[~hole])
    print(
        f"route={route}: in-hole PSNR gain over a flat fill, dB: "
        f"{[(k, p, round(g, 2)) for (k, _, p), g in zip(CASES, gains)]}, median {np.median(gains):.2f}"
    )
    # The hole is really filled: on the median case, less than half the flat fill's error.
    assert np.median(gains) >= 3.0, gains


def test_auto_route_sends_strokes_to_fsr_and_rectangles_and_blobs_to_patchmatch(client, photos):
    rgb = np.ascontiguousarray(photos["astronaut"][:, ::-1])
    thin = np.zeros((256, 256), np.uint8)
    cv2.line(thin, (30, 200), (220, 200), 255, 2)  # across the suit: plain, then the textured collar
    routes = client.inpaint(rgb, thin).report["inpaint"]["routes"]
    assert set(routes) <= {"fsr", "patchmatch"} and sum(routes.values()) >= 1  # FSR, or PatchMatch in texture
    smooth = np.zeros((256, 256), np.uint8)
    smooth[60:95, 5:40] = 255  # a rectangle on the plain backdrop
    assert client.inpaint(rgb, smooth).report["inpaint"]["route"] == "patchmatch"
    blob = np.zeros((256, 256), np.uint8)
    cv2.circle(blob, (128, 128), 40, 255, -1)
    assert client.inpaint(rgb, blob).report["inpaint"]["route"] == "patchmatch"
    assert client.inpaint(rgb, blob, blob_route="fast").report["inpaint"]["route"] == "fast"


def test_identical_requests_identical_bytes(client, photos):
    rgb, mask = photos["astronaut"], block_mask(3)
    a = client.inpaint(rgb, mask, route="unet")
    b = client.inpaint(rgb, mask, route="unet")
    assert a.data == b.data
    assert a.report["inpaint"]["mask_sha256"] == b.report["inpaint"]["mask_sha256"]


def test_thin_stroke_fills_are_not_blurred(client, photos):
    """A 2 px stroke filled at native resolution keeps the texture around it: the hole's
    high-frequency energy is a fair share of the ring's (a shrink-and-enlarge fill smears it)."""
    rgb = photos["chelsea"]  # fur: texture all around the stroke
    mask = np.zeros((256, 256), np.uint8)
    cv2.line(mask, (20, 60), (236, 190), 255, 2)
    result = client.inpaint(rgb, mask)
    report = result.report["inpaint"]
    assert report["windows"] == report["native_windows"]  # the stroke is never shrunk
    grey = cv2.cvtColor(pixels(result), cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F) ** 2
    hole = mask > 0
    ring = (cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0) & ~hole
    assert lap[hole].mean() >= 0.1 * lap[ring].mean(), (lap[hole].mean(), lap[ring].mean())
    # and the fur around the stroke is not touched at all (no resize, no feathered band)
    np.testing.assert_array_equal(pixels(result)[~hole], rgb[~hole])


def test_object_masks_up_to_half_the_image_are_filled(client, photos):
    mask = np.zeros((256, 256), np.uint8)
    mask[40:200, 30:170] = 255  # 34 % of the image: filled, flagged for review
    report = client.inpaint(photos["coffee"], mask).report["inpaint"]
    assert report["verdict"] == "needs_review" and "large_coverage" in report["review_reasons"]


def test_gate_sends_a_bad_fill_to_review(client, photos):
    """With the accepted ring error set to zero no fill can pass: the verdict is needs_review and
    the response is the conservative fast fill."""
    rgb, mask = photos["chelsea"], block_mask(5)
    strict = client.inpaint(rgb, mask, route="unet", gate_ring_error=0.0).report["inpaint"]
    assert strict["verdict"] == "needs_review" and strict["fallback"] == "fast_fill"
    fast = client.inpaint(rgb, mask, route="fast")
    fallback = client.inpaint(rgb, mask, route="unet", gate_ring_error=0.0)
    assert fallback.data == fast.data


def png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "mask,settings,message",
    [
        (np.zeros((100, 100), np.uint8), {}, "mask is 100x100 but the image is 256x256"),
        (np.full((256, 256), 255, np.uint8), {}, "over the 50% limit"),
        (np.full((256, 256), 255, np.uint8), {"max_coverage": 0.95}, "'max_coverage' must be"),
        (b"not a mask", {}, "mask bytes are not a PNG, JPEG or WebP"),
        (np.zeros((256, 256), np.uint8), {"route": "magic"}, "'route' must be one of"),
    ],
)
def test_bad_masks_are_invalid_argument(client, triton, photos, mask, settings, message):
    with pytest.raises(InvalidInputError, match=message):
        client.inpaint(photos["coffee"], mask if isinstance(mask, bytes) else png(mask), **settings)
    assert triton.is_server_ready()


def test_empty_mask_returns_the_image(client, photos):
    result = client.inpaint(photos["coffee"], np.zeros((256, 256), np.uint8))
    assert result.report["inpaint"]["verdict"] == "unchanged"
    np.testing.assert_array_equal(pixels(result), photos["coffee"])


def test_response_cache_answers_a_repeat(tmp_path, photos):
    """With RETOUCH_CACHE_BYTES set, Triton's response cache answers an identical inpaint request
    (same image, mask and settings bytes) without running the pipeline again."""
    import tritonclient.grpc as grpcclient

    from retouch_client import RetouchClient
    from scripts.local_server import local_server

    with local_server(tmp_path, RETOUCH_CACHE_BYTES=str(64 << 20)) as server:
        with RetouchClient(server["grpc"]) as client:
            first = client.inpaint(photos["coffee"], block_mask(4))
            again = client.inpaint(photos["coffee"], block_mask(4))
            other = client.inpaint(photos["coffee"], block_mask(5))
        stats = grpcclient.InferenceServerClient(server["grpc"]).get_inference_statistics("inpaint").model_stats[0]
    assert again.data == first.data and other.data != first.data
    assert stats.inference_stats.cache_hit.count == 1 and stats.inference_stats.cache_miss.count == 2


def test_concurrent_requests_share_fill_batches(server, triton, photos):
    """Eight inpaint requests at once: each sends its crop and its gate probes to inpaint_unet in one
    call; concurrent calls merge in its dynamic batcher, so it executes fewer times than it is called."""

    def counts():
        s = triton.get_inference_statistics("inpaint_unet").model_stats[0]
        return s.inference_stats.success.count, s.inference_count, s.execution_count

    def one(seed):
        with RetouchClient(server["grpc"], timeout_s=300) as c:
            return c.inpaint(photos["coffee"], block_mask(seed), route="unet")

    before = counts()
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(20, 28)))
    calls, inferences, executions = np.subtract(counts(), before)
    print(
        f"\ninpaint_unet: {calls} calls from {len(results)} requests, {inferences} crops in {executions} "
        f"executions (average batch {inferences / executions:.2f})"
    )
    assert all(r.report["inpaint"]["route"] == "unet" for r in results)
    assert calls == len(results)
    assert executions < calls and inferences / executions > inferences / calls
