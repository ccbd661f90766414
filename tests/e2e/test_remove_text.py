"""`remove_text` and `clean` through a real tritonserver, on text rendered onto real photos."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from retouch.text import DetectSettings
from retouch_client import InvalidInputError
from test_detect_text import detect, encode
from text_scenes import make_scene, score

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# RETOUCH_UPDATE_DOCS=1 writes the README's before/after picture instead of a temporary copy.
PICTURE = ROOT / "docs" / "images" / "remove_text_before_after.png"


def pixels(result) -> np.ndarray:
    return np.asarray(result.image.convert("RGB"))


def psnr_in(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = np.mean((a[where].astype(np.float64) - b[where]) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def flat_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[hole] = rgb.reshape(-1, 3).mean(axis=0).round()
    return out


PHOTOS = {"astronaut": data.astronaut()[:384, :384], "coffee": data.coffee()[:384, :512],
          "chelsea": data.chelsea(), "rocket": data.rocket()[:384, :512]}


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(f"{name}-{layout}", np.ascontiguousarray(photo), seed=seed, layout=layout, lines=4)
            for seed, ((name, photo), layout) in enumerate(
                (p, layout) for p in PHOTOS.items() for layout in ("sparse", "dense"))]


@pytest.fixture(scope="module")
def removed(client, scenes):
    return [client.remove_text(scene.rgb) for scene in scenes]


def test_text_is_gone_and_the_holes_are_filled(triton, server, scenes, removed, tmp_path):
    lines = found_before = found_after = 0
    gains, outcomes = [], []
    for scene, result in zip(scenes, removed):
        out, mask = pixels(result), result.outputs["OUTPUT_MASK"]
        report = result.report["remove_text"]
        assert out.shape == scene.rgb.shape and mask.shape == scene.rgb.shape[:2]
        before = score(scene, np.asarray(report["boxes"], np.float32).reshape(-1, 4, 2), mask, 0)
        boxes, _, again_mask, _ = detect(triton, encode(Image.fromarray(out)), url=server["grpc"])
        after = score(scene, boxes, again_mask, 0)
        lines, found_before, found_after = lines + after.lines, found_before + before.found, found_after + after.found
        # Against the text-free photo, inside the hole: far better than one flat colour.
        hole = mask > 0
        photo = PHOTOS[scene.name.split("-")[0]]
        gains.append(psnr_in(out, photo, hole) - psnr_in(flat_fill(scene.rgb, hole), photo, hole))
        outcomes.append(report["outcome"])
        # The report's verdict agrees with what it measured.
        assert report["outcome"] in ("accepted", "needs_review")
        assert report["mask_coverage"] > 0 and len(report["mask_sha256"]) == 64
        if report["outcome"] == "accepted":
            assert report["residual_lines"] == 0 and report["inpaint"]["verdict"] == "accepted"
        else:
            assert report["residual_lines"] > 0 or report["inpaint"]["verdict"] == "needs_review"
        assert [m["name"] for m in result.report["models"]][0] == "text_detector"
    print(f"\nremove_text: {lines} rendered lines; detector found {found_before} before, {found_after} after; "
          f"in-hole PSNR gain over a flat fill (dB) {np.round(gains, 2).tolist()}; outcomes {outcomes}")
    assert found_before >= 0.95 * lines
    assert found_after <= 0.05 * lines
    assert np.median(gains) >= 3.0, gains
    save_before_after(scenes[0].rgb, removed[0], tmp_path)


def save_before_after(before: np.ndarray, result, tmp_path: Path) -> None:
    after, mask = pixels(result), result.outputs["OUTPUT_MASK"]
    h, w = before.shape[:2]
    panel = Image.new("RGB", (3 * w + 20, h + 24), "white")
    for i, (img, title) in enumerate([(before, "input"), (np.stack([mask] * 3, -1), "mask"), (after, "remove_text")]):
        panel.paste(Image.fromarray(img), (i * (w + 10), 24))
        ImageDraw.Draw(panel).text((i * (w + 10) + 4, 6), title, fill="black")
    target = PICTURE if os.environ.get("RETOUCH_UPDATE_DOCS") == "1" else tmp_path / PICTURE.name
    target.parent.mkdir(parents=True, exist_ok=True)
    panel.save(target)


def test_identical_requests_identical_bytes(client, scenes, removed):
    again = client.remove_text(scenes[1].rgb)
    assert again.data == removed[1].data
    assert again.report["remove_text"]["mask_sha256"] == removed[1].report["remove_text"]["mask_sha256"]


def test_no_text_returns_the_image_unchanged(client):
    sky = np.ascontiguousarray(data.astronaut()[:120, 300:500])  # a patch with no text
    result = client.remove_text(sky)
    assert result.report["remove_text"]["outcome"] == "no_text"
    np.testing.assert_array_equal(pixels(result), sky)
    assert not result.outputs["OUTPUT_MASK"].any()


def test_low_confidence_falls_back_to_a_blur(client, scenes):
    result = client.remove_text(scenes[0].rgb, min_confidence=1.0)
    report = result.report["remove_text"]
    assert report["outcome"] == "fallback" and report["fallback"] == "blur"
    out, mask = pixels(result), result.outputs["OUTPUT_MASK"] > 0
    far = cv2.dilate(mask.astype(np.uint8), np.ones((61, 61), np.uint8)) == 0  # past the feathered edge
    np.testing.assert_array_equal(out[far], scenes[0].rgb[far])
    assert np.abs(out[mask].astype(int) - scenes[0].rgb[mask]).mean() > 2


def test_settings_are_checked(client, scenes):
    with pytest.raises(InvalidInputError, match="'route' must be one of"):
        client.remove_text(scenes[0].rgb, inpaint={"route": "magic"})
    with pytest.raises(InvalidInputError, match="unknown setting"):
        client.remove_text(scenes[0].rgb, detect={"treshold": 0.3})


def test_clean_removes_text_and_objects_then_upscales(client, triton, server, scenes):
    scene = scenes[2]  # chelsea, sparse
    objects = np.zeros(scene.rgb.shape[:2], np.uint8)
    objects[200:230, 40:80] = 255  # an "object" the caller marks
    result = client.clean(scene.rgb, objects, upscale={"scale": 2})
    out = pixels(result)
    h, w = scene.rgb.shape[:2]
    assert out.shape == (2 * h, 2 * w, 3)
    report = result.report
    assert report["steps"] == ["remove_text", "upscale"]  # inpaint first, then upscale
    assert report["upscale"]["seam_score"] < report["upscale"]["settings"]["seam_threshold"]
    assert result.outputs["OUTPUT_MASK"][210, 60] == 255
    # Text gone: the detector, run on the result brought back to the input's size, finds (almost) none.
    small = np.asarray(Image.fromarray(out).resize((w, h), Image.BICUBIC))
    boxes, _, mask, _ = detect(triton, encode(Image.fromarray(small)), url=server["grpc"])
    assert score(scene, boxes, mask, DetectSettings().mask_dilation).found <= 0.05 * len(scene.lines) + 0.5
    with pytest.raises(InvalidInputError, match="unknown settings part"):
        client.clean(scene.rgb, upscale={"scale": 2}, denoise={})
