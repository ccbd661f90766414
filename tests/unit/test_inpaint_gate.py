"""inpaint's quality gate and its fallback, with the fill models faked: a model that returns noise
must be caught by the gate, flagged needs_review, and its windows refilled by the fast fill."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from retouch.inpaint import FAST_FILL, REFINE, UNET, InpaintSettings, classical_fill, inpaint
from retouch.settings import parse_settings


def telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A real fill (OpenCV's Telea) of one CHW window, known pixels kept: the canonical contract."""
    u8 = np.clip(image.transpose(1, 2, 0) * 255, 0, 255).astype(np.uint8)
    filled = cv2.inpaint(u8, (mask[0] > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA).transpose(2, 0, 1) / 255.0
    return np.where(mask > 0, filled, image)


def noise(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A broken model: uniform noise in the hole."""
    rng = np.random.default_rng(int(image.sum() * 1000) % 2**32)
    return np.where(mask > 0, rng.random(image.shape), image)


def served(**models):
    """The fake `infer`: each model name filled by the given function; the calls are recorded."""
    calls = []

    async def infer(model, images, masks, bases=None):
        calls.append((model, len(images)))
        extra = [()] * len(images) if bases is None else [(b,) for b in bases]
        return np.stack([models[model](i, m, *e) for i, m, e in zip(images, masks, extra)]).astype(np.float32)

    return infer, calls


def run(rgb, mask, infer, **settings):
    return asyncio.run(inpaint(rgb, mask, parse_settings(InpaintSettings, settings), infer))


@pytest.fixture
def case(photos):
    rgb = photos["astronaut"][:200, :200].copy()
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[60:100, 70:110] = 255  # a blob-like block away from the edges
    return rgb, mask


def test_a_good_fill_passes_the_gate(case):
    rgb, mask = case
    infer, calls = served(**{UNET: telea, FAST_FILL: telea})
    out, report = run(rgb, mask, infer, route="unet")
    assert report["verdict"] == "accepted" and report["fallback"] is None and report["review_reasons"] == []
    assert report["gate"]["ring_error"] <= InpaintSettings().gate_ring_error
    assert report["models"] == [UNET]
    assert [m for m, _ in calls] == [UNET]  # hole and probe in one call


def test_a_noisy_model_is_caught_flagged_and_replaced_by_the_fast_fill(case):
    rgb, mask = case
    infer, calls = served(**{UNET: noise, FAST_FILL: telea})
    out, report = run(rgb, mask, infer, route="unet")
    assert report["verdict"] == "needs_review" and report["review_reasons"] == ["quality_gate"]
    assert report["fallback"] == "fast_fill"
    gate = report["gate"]
    assert gate["ring_error"] > InpaintSettings().gate_ring_error or gate["hf_ratio"] > InpaintSettings().gate_hf_high
    assert report["models"] == [UNET, FAST_FILL]
    assert [m for m, _ in calls] == [UNET, FAST_FILL]
    # What is served is exactly what the fast route gives, and nothing outside the hole moved.
    fast, _ = run(rgb, mask, served(**{FAST_FILL: telea})[0], route="fast")
    np.testing.assert_array_equal(out, fast)
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])


def test_noise_from_the_fast_fill_itself_is_flagged_but_has_nothing_safer(case):
    rgb, mask = case
    infer, calls = served(**{FAST_FILL: noise})
    out, report = run(rgb, mask, infer, route="fast")
    assert report["verdict"] == "needs_review" and report["review_reasons"] == ["quality_gate"]
    assert [m for m, _ in calls] == [FAST_FILL]  # no second fill: it is the fallback already
    assert report["models"] == [FAST_FILL]
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])


def test_a_classical_route_is_probed_by_the_fast_fill_and_kept_when_the_gate_fails(case):
    """The classical routes' probe is the fast fill's (a second classical fill would double its
    cost): so a failed gate judges the fast fill, not the classical fill. The edit is flagged for
    review and the classical fill is served as is (retouch.inpaint, step 4)."""
    rgb, mask = case
    infer, calls = served(**{FAST_FILL: noise})
    out, report = run(rgb, mask, infer, route="telea")
    assert report["verdict"] == "needs_review" and report["review_reasons"] == ["quality_gate"]
    assert report["fallback"] is None and report["models"] == []  # the served pixels are all Telea's
    assert [m for m, _ in calls] == [FAST_FILL]  # the probe only
    hole = mask > 0
    np.testing.assert_array_equal(out[hole], classical_fill("TELEA", rgb, hole)[hole])
    np.testing.assert_array_equal(out[~hole], rgb[~hole])


def test_gate_fallback_all_swaps_a_classical_fill_too(case):
    """gate_fallback "all": a failed gate swaps the classical windows for the fast fill as well."""
    rgb, mask = case
    infer, calls = served(**{FAST_FILL: noise})
    out, report = run(rgb, mask, infer, route="telea", gate_fallback="all")
    assert report["verdict"] == "needs_review" and report["fallback"] == "fast_fill"
    assert report["models"] == [FAST_FILL]
    assert [m for m, _ in calls] == [FAST_FILL, FAST_FILL]  # the probe, then the swap
    fast, _ = run(rgb, mask, served(**{FAST_FILL: noise})[0], route="fast")
    np.testing.assert_array_equal(out, fast)


def test_gate_fallback_windows_swaps_only_the_windows_failing_their_own_gate(photos):
    """remove_text's default: of a failed gate's classical windows, only those whose own probe and
    ring fail are swapped; a plain window far from the textured one keeps its classical fill."""
    rgb = np.zeros((256, 576, 3), np.uint8)
    ramp = np.linspace(60, 190, 320)[None, :, None] + np.random.default_rng(0).normal(0, 3, (256, 320, 1))
    rgb[:, :320] = np.clip(ramp, 0, 255).astype(np.uint8)  # a smooth ramp with a little grain
    rgb[:, 320:] = photos["astronaut"][:256, :256]  # texture
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[110:140, 60:120] = mask[110:140, 440:500] = 255
    plain, textured = np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    plain[:, :320], textured[:, 320:] = mask[:, :320] > 0, mask[:, 320:] > 0

    def fails_on_texture(image, hole):  # the fast fill's probe: noise where the window is busy
        busy = np.abs(np.diff(image, axis=2)).mean() > 0.02  # mean step between neighbours, 0..1 units
        return noise(image, hole) if busy else telea(image, hole)

    results = {}
    for fallback in ("models", "all", "windows"):
        infer, _ = served(**{FAST_FILL: fails_on_texture})
        results[fallback] = run(rgb, mask, infer, route="telea", gate_fallback=fallback)
    (kept, _), (swapped, _), (out, report) = results["models"], results["all"], results["windows"]
    assert report["verdict"] == "needs_review" and report["fallback"] == "fast_fill"
    assert report["windows"] == 2 and report["fallback_windows"] == 1 and results["all"][1]["fallback_windows"] == 2
    np.testing.assert_array_equal(out[plain], kept[plain])  # Telea's fill, kept
    np.testing.assert_array_equal(out[textured], swapped[textured])  # the fast fill's
    assert not np.array_equal(kept[textured], swapped[textured])
    np.testing.assert_array_equal(out[mask == 0], rgb[mask == 0])
    # PatchMatch's windows are kept: the fast fill would leave a smooth box where it copied texture.
    pm = {}
    for fallback in ("all", "windows"):
        infer, _ = served(**{FAST_FILL: fails_on_texture})
        pm[fallback] = run(rgb, mask, infer, route="patchmatch", gate_fallback=fallback)
    assert pm["all"][1]["fallback_windows"] == 2 and pm["windows"][1]["fallback_windows"] == 0
    assert pm["windows"][1]["verdict"] == "needs_review" and pm["windows"][1]["fallback"] is None
    assert not np.array_equal(pm["windows"][0][textured], pm["all"][0][textured])


def brighter_base(image: np.ndarray, mask: np.ndarray, base: np.ndarray) -> np.ndarray:
    """A refine net's contract (IMAGE, MASK, BASE -> OUTPUT), faked: the base lifted in the hole."""
    return np.where(mask > 0, np.clip(base + 0.2, 0, 1), image)


def test_auto_refines_the_classical_fill_of_every_window_of_its_routes():
    """On auto, inpaint_refine gets the classical fill of each window of the routes in `refine`
    (patchmatch by default) as BASE, all in one call; a hole too thick for one window, on such a
    route, is refined over native windows on a grid (its classical fill is native anyway); refine []
    or a named route serves the classical fill as is."""
    from skimage import data

    rgb = np.ascontiguousarray(data.astronaut())
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[250:480, 250:480] = 255  # thick and larger than a window: patchmatch, refined over 2 x 2 windows
    mask[40:70, 40:70] = mask[40:70, 150:180] = 255  # one native window of strokes to auto: fsr
    mask[40:80, 300:360] = 255  # a native window with a rectangle: patchmatch
    refined = np.zeros(mask.shape, bool)
    refined[40:80, 300:360] = refined[250:480, 250:480] = True
    infer, calls = served(**{FAST_FILL: telea, REFINE: brighter_base})
    out, report = run(rgb, mask, infer)
    assert report["routes"] == {"patchmatch": 5, "fsr": 1} and report["native_windows"] == 6
    assert report["refined_windows"] == 5 and REFINE in report["models"]
    assert [(m, n) for m, n in calls if m == REFINE] == [(REFINE, 5)]
    plain, plain_report = run(rgb, mask, served(**{FAST_FILL: telea})[0], refine=[])
    assert plain_report["refined_windows"] == 0 and REFINE not in plain_report["models"]
    assert plain_report["native_windows"] == 3  # the thick hole keeps one reduced window: no tiles
    np.testing.assert_array_equal(out[~refined], plain[~refined])  # the strokes' fsr fill as it was
    lift = out[refined].astype(int) - plain[refined]
    assert np.all((lift == np.minimum(51, 255 - plain[refined].astype(int))) | (abs(lift - 51) <= 1))
    infer, calls = served(**{FAST_FILL: telea, REFINE: brighter_base})
    both, both_report = run(rgb, mask, infer, refine=["fsr", "patchmatch"])
    assert both_report["refined_windows"] == 6 and [(m, n) for m, n in calls if m == REFINE] == [(REFINE, 6)]
    infer, calls = served(**{FAST_FILL: telea})
    _, named_report = run(rgb, mask, infer, route="patchmatch")
    assert named_report["refined_windows"] == 0 and [m for m, _ in calls] == [FAST_FILL]  # the probe only
    for image in (out, both):
        np.testing.assert_array_equal(image[mask == 0], rgb[mask == 0])


def test_remove_text_keeps_its_own_inpaint_defaults_under_a_partial_section():
    from retouch.remove_text import INPAINT_DEFAULTS, RemoveTextSettings

    for raw in ({}, {"inpaint": {"route": "fsr"}}):
        fill = parse_settings(RemoveTextSettings, raw).inpaint
        assert {k: getattr(fill, k) for k in INPAINT_DEFAULTS} == INPAINT_DEFAULTS
    assert (
        parse_settings(RemoveTextSettings, {"inpaint": {"gate_fallback": "models"}}).inpaint.gate_fallback == "models"
    )
    assert InpaintSettings().gate_fallback == "models"
