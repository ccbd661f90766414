import asyncio

import cv2
import numpy as np
import pytest
from skimage import data

from retouch.errors import InvalidInput
from retouch.inpaint import (
    WINDOW_MARGIN,
    InpaintSettings,
    choose_route,
    classical_fill,
    inpaint,
    native_grid,
    plan_windows,
    prepare_mask,
    route_features,
)
from retouch.morphology import feather
from retouch.settings import parse_settings


async def telea(model, images, masks, bases=None):
    """A real classical fill (OpenCV's Telea) standing in for the served models: same contract.
    For inpaint_refine (bases given): the base in the hole, what an untrained refine net returns."""
    if bases is not None:
        return np.where(masks > 0, bases, images).astype(np.float32)
    out = []
    for img, m in zip(images, masks):
        u8 = np.clip(img.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(u8, (m[0] > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA) / 255.0
        keep = (m[0] == 0)[..., None]
        out.append(np.where(keep, img.transpose(1, 2, 0), filled).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def run(rgb, mask, **settings):
    return asyncio.run(inpaint(rgb, mask, parse_settings(InpaintSettings, settings), telea))


def block_mask(shape, y, x, size):
    m = np.zeros(shape[:2], np.uint8)
    m[y : y + size, x : x + size] = 255
    return m


def test_native_fill_changes_only_the_hole(photos):
    rgb = photos["coffee"]
    mask = block_mask(rgb.shape, 100, 120, 24)
    out, figures = run(rgb, mask)
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])  # bit-exact outside the hole
    assert not np.array_equal(out[mask > 0], rgb[mask > 0])
    assert figures["windows"] == figures["native_windows"] == 1 and figures["mask_coverage"] > 0


def test_a_long_band_is_filled_natively_over_several_windows():
    """A line of text's box (40 px tall, longer than a window) is not shrunk: it is split over
    native windows, and every pixel outside it comes back bit for bit."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (300, 700, 3), dtype=np.uint8)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[120:160, 40:660] = 255
    out, figures = run(rgb, mask)
    assert figures["windows"] == figures["native_windows"] >= 3
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])


def test_reduced_fill_stays_inside_its_feathered_band():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (600, 600, 3), dtype=np.uint8)
    mask = block_mask(rgb.shape, 150, 150, 300)  # a thick hole too large for a 256 window
    out, figures = run(rgb, mask, max_coverage=0.5, route="fast")
    assert figures["native_windows"] == 0 and figures["windows"] == 1
    settings = InpaintSettings()
    band = int(np.ceil(2 * settings.feather_sigma) + 4 * settings.feather_sigma) + 1
    far = cv2.dilate(mask, np.ones((2 * band + 1, 2 * band + 1), np.uint8)) == 0
    np.testing.assert_array_equal(out[far], rgb[far])


def test_a_classical_route_fills_a_large_hole_natively_in_one_run():
    """Not bound to the models' window: the hole too large for a 256 window is filled at native
    resolution, with the known pixels around it as context, and only its pixels change."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (600, 600, 3), dtype=np.uint8)
    mask = block_mask(rgb.shape, 150, 150, 300)
    out, figures = run(rgb, mask, max_coverage=0.5, route="telea")
    assert figures["native_windows"] == figures["windows"] == 1 and figures["models"] == []
    hole = mask > 0
    np.testing.assert_array_equal(out[hole], classical_fill("TELEA", rgb, hole)[hole])
    np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_fill_is_better_than_flat_fill(photos):
    rgb = photos["astronaut"]
    mask = block_mask(rgb.shape, 60, 60, 20)
    out, _ = run(rgb, mask)
    hole = mask > 0
    ring = (cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0) & ~hole
    err = np.abs(out[hole].astype(float) - rgb[hole]).mean()
    flat = np.abs(rgb[ring].mean(axis=0) - rgb[hole]).mean()  # the ring's mean colour
    assert err < flat


def test_coverage_cap_review_and_size_mismatch(photos):
    rgb = photos["chelsea"]
    _, figures = run(rgb, block_mask(rgb.shape, 0, 0, 160))  # 39 %: filled, flagged for review
    assert figures["verdict"] == "needs_review" and "large_coverage" in figures["review_reasons"]
    with pytest.raises(InvalidInput, match="over the 50% limit"):
        run(rgb, block_mask(rgb.shape, 0, 0, 190))
    with pytest.raises(InvalidInput, match="mask is 10x10 but the image is 256x256"):
        run(rgb, np.zeros((10, 10), np.uint8))


def test_empty_mask_returns_image_unchanged(photos):
    rgb = photos["chelsea"]
    out, figures = run(rgb, np.zeros(rgb.shape[:2], np.uint8))
    np.testing.assert_array_equal(out, rgb)
    assert figures["verdict"] == "unchanged"


def test_identical_requests_identical_output_and_mask_hash(photos):
    rgb, mask = photos["coffee"], block_mask((256, 256), 30, 40, 16)
    a, ra = run(rgb, mask)
    b, rb = run(rgb, mask)
    assert np.array_equal(a, b) and ra == rb
    assert ra["mask_sha256"] != run(rgb, block_mask((256, 256), 30, 41, 16))[1]["mask_sha256"]


def test_windows_own_every_hole_pixel_once_at_native_resolution():
    hole = np.zeros((400, 900), bool)
    hole[50:60, 20:30] = hole[52:56, 40:44] = True  # near each other: one window
    hole[10:390, 600:603] = True  # a thin stroke taller than a window: split over native windows
    hole[300:330, 100:130] = True
    settings = InpaintSettings()
    windows = plan_windows(hole, 256, settings)
    owned = np.zeros(hole.shape, int)
    for w in windows:
        y0, x0, y1, x1 = w.box
        assert w.scale == 1.0 and (y1 - y0, x1 - x0) == (256, 256)
        owned[y0:y1, x0:x1] += w.owns
        ys, xs = np.nonzero(w.owns)  # every owned pixel keeps context, except at the image edge
        assert ((ys >= WINDOW_MARGIN) | (y0 == 0)).all() and ((xs < 256 - WINDOW_MARGIN) | (x1 == 900)).all()
    np.testing.assert_array_equal(owned, hole.astype(int))
    assert len(windows) == 4


def test_a_native_grid_owns_a_thick_hole_once():
    hole = np.zeros((400, 500), bool)
    cv2.circle(hole.view(np.uint8), (300, 200), 150, 1, -1)  # 301 px across: 2 x 2 cores of 192
    windows = native_grid(hole, 256)
    owned = np.zeros(hole.shape, int)
    for w in windows:
        y0, x0, y1, x1 = w.box
        assert w.scale == 1.0 and (y1 - y0, x1 - x0) == (256, 256)
        owned[y0:y1, x0:x1] += w.owns
    np.testing.assert_array_equal(owned, hole.astype(int))
    assert len(windows) == 4


def test_small_images_get_padded_native_windows(photos):
    rgb = np.ascontiguousarray(photos["coffee"][:100, :180])
    mask = block_mask(rgb.shape, 40, 60, 10)
    out, figures = run(rgb, mask)
    assert figures["native_windows"] == 1 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])


def test_routing_strokes_fsr_rectangles_and_blobs_patchmatch(photos):
    grey = cv2.cvtColor(photos["coffee"], cv2.COLOR_RGB2GRAY)
    thin = np.zeros((256, 256), bool)
    thin[100:103, 20:200] = True
    rectangle = np.zeros((256, 256), bool)
    rectangle[60:160, 50:200] = True
    blob = np.zeros((256, 256), bool)
    cv2.circle(blob.view(np.uint8), (128, 128), 40, 1, -1)
    s = InpaintSettings()
    assert choose_route(route_features(grey, thin), s) == "fsr"
    textured = route_features(np.ascontiguousarray(data.gravel()[:256, :256]), thin)  # grey stones
    assert textured["edge_density"] >= 0.12
    assert choose_route(textured, s) == "fsr"  # strokes in texture too (make eval's window table)
    assert choose_route(textured, s.model_copy(update={"textured_edges": 0.12})) == "patchmatch"
    assert choose_route(route_features(grey, rectangle), s) == "patchmatch"
    assert choose_route(route_features(grey, blob), s) == "patchmatch"
    assert choose_route(route_features(grey, blob), s.model_copy(update={"blob_route": "fast"})) == "fast"
    assert choose_route(route_features(grey, thin), parse_settings(InpaintSettings, {"route": "unet"})) == "unet"


def test_feather_is_one_on_hole_and_zero_far_away():
    hole = np.zeros((64, 64), bool)
    hole[30:34, 30:34] = True
    alpha = feather(hole, 2.0)
    assert (alpha[hole] == 1).all() and alpha[0, 0] == 0 and 0 < alpha[30, 27] < 1


def test_prepare_mask_dilates():
    m = np.zeros((20, 20), np.uint8)
    m[10, 10] = 255
    assert prepare_mask(m, (20, 20, 3), 2).sum() == np.count_nonzero(
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    )
