"""The `inpaint` operation: fill each hole in fixed-size windows at native resolution, gate.

1. The mask is binarised and dilated. Coverage up to `max_coverage` (default 0.5) is filled;
   above `review_coverage` the result is flagged needs_review; above max_coverage (a hard cap
   the request may raise to 0.9) the request is refused.
2. Connected holes are grouped and each group gets windows of the model's fixed side (256) at
   NATIVE resolution, so thin strokes are never shrunk and enlarged again, and windows of any
   request still batch together. A group too large for one window is covered by several when
   its holes are thin; only a thick hole too large for a window is filled at reduced resolution
   (the whole group resized into one window), and pasted back with a feathered edge.
3. A route per window: the fast push-pull fill or the UNet (models served by Triton), or a
   classical fill run in the step itself (cv2 Telea, xphoto FSR or PatchMatch), chosen from the window's
   mask features (choose_route) unless the request names one. export/eval_edits.py measures
   which wins where. A classical route is not bound to the models' window size: it runs once,
   at native resolution, on the box around all its windows' holes grown by CLASSICAL_CONTEXT
   (PatchMatch copies patches from that context; in 256-px windows it lost 1.4 dB on blocks).
4. Each window is also filled with the hole grown by a ring of known pixels (the probe; by the
   fast fill for the classical routes, whose second fill would double their cost); the probe's
   error on that ring and the hole's high-frequency power against the ring's gate the result:
   `accepted`, or `needs_review`. A failed gate replaces the windows a model filled (the UNet)
   by the conservative fast fill; a classical fill is kept (the probe did not judge it, and on
   textured photos, where the fast fill's probe fails, it is the better fill for a mask of thin
   strokes) unless `gate_fallback` is "all" (every window but the fast fill's) or "windows",
   remove_text's default (of those, the windows that fail the gate on their own probe and ring).
5. On the auto route, the inpaint_refine network (a Triton model) takes the classical fill of each
   native window of the routes in `refine` (PatchMatch by default; FSR_FAST too if asked: the fills
   it was trained on) as BASE and adds what it learned beyond it, all windows in one batch; a
   thick hole planned at reduced resolution is covered by native windows on a grid instead (its
   classical fill is native anyway), so the net refines it too. export/eval_inpainter.py (crops)
   and export/fill_dev.py (whole photos) measure the gain.
6. Pixels outside the holes (outside the feathered band of a resized window) come back bit for bit.

Inference is injected (model name, NCHW image, N1HW mask) -> NCHW image, as in retouch.upscale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from retouch.errors import InvalidInput
from retouch.morphology import dilate, feather
from retouch.settings import Float, Int, OutputSettings, check_range

FAST_FILL = "inpaint_fast_fill"
UNET = "inpaint_unet"
REFINE = "inpaint_refine"  # refines a classical route's fill (setting `refine`)
REFINED_ROUTES = ("fsr", "patchmatch")  # the classical fills inpaint_refine was trained on
MODEL_ROUTES = {"fast": FAST_FILL, "unet": UNET}  # routes served by a Triton model
# Routes computed in the step (classical_fill), by the algorithm they run.
CLASSICAL_ROUTES = {"telea": "TELEA", "fsr": "FSR_FAST", "patchmatch": "PatchMatch"}
ROUTES = ("auto", *MODEL_ROUTES, *CLASSICAL_ROUTES)
PROBE_RING_PX = 6  # known pixels around the hole that the probe hides and scores
WINDOW_MARGIN = 32  # known context a native window keeps around the holes it fills
CLASSICAL_CONTEXT = 256  # known pixels around its holes that a classical route's fill sees
# A hole longer than a window but at most this wide (a stroke, a line of text's box) is split over
# native windows; only thicker ones are filled at reduced resolution.
NATIVE_BAND_PX = 2 * WINDOW_MARGIN
HARD_MAX_COVERAGE = 0.9
# The fill models' fixed window side (export/inpainters.py); the served steps read it from their
# config (parameter model_size), which must match.
MODEL_SIDE = 256

# (model, NCHW images, N1HW masks[, NCHW bases: inpaint_refine's classical fills]) -> NCHW images
InpaintInfer = Callable[..., Awaitable[np.ndarray]]


class InpaintSettings(OutputSettings):
    """SETTINGS of `inpaint` (and remove_text's `inpaint` section)."""

    route: Literal[ROUTES] = Field(
        "auto",
        description="the fill: auto (per window, choose_route), fast, unet, "  # type: ignore[valid-type]
        "telea, fsr or patchmatch",
    )
    dilation: Int = Field(
        0, ge=0, le=64, description="pixels the mask grows before filling (halos of a tight mask); 0: as given"
    )
    feather_sigma: Float = Field(
        3.0, ge=0, le=32, description="Gaussian sigma of the edge of a fill pasted from reduced resolution"
    )
    context: Float = Field(
        0.5, ge=0, le=4, description="margin around each reduced-resolution hole's box, as a fraction of its side"
    )
    max_coverage: Float = Field(
        0.5,
        ge=0,
        le=HARD_MAX_COVERAGE,
        description="largest share of the image a mask may cover; larger masks are refused",
    )
    review_coverage: Float = Field(
        0.3, ge=0, le=1, description="share of the image over which a fill is flagged needs_review"
    )
    thin_stroke_px: Float = Field(
        24.0, ge=0, le=1000, description="auto route: strokes up to this wide (text) go to fsr"
    )
    rectangular: Float = Field(
        0.9,
        ge=0,
        le=1.01,
        description="auto route: hole pixels over their boxes' area from "
        "which a hole counts as a rectangle (filled by patchmatch)",
    )
    textured_edges: Float = Field(
        1.01,
        ge=0,
        le=1.01,
        description="auto route: share of edges in the ring around a stroke from which patchmatch fills it "
        "(1.01: never; fsr won on strokes in texture in make eval's window table)",
    )
    blob_route: Literal["patchmatch", "fast"] = Field(
        "patchmatch",
        description="auto route: what fills a hole neither thin nor rectangular (an object's blob): patchmatch "
        "(copies texture; about 1 s an image) or fast (blurs; about 40 ms)",
    )
    refine: tuple[Literal[REFINED_ROUTES], ...] = Field(  # type: ignore[valid-type]
        ("patchmatch",),
        description="auto route: the classical routes whose native windows the inpaint_refine network refines "
        "(40 dev photos: patchmatch +0.36 dB on blocks at +15 % time; fsr +0.04 dB on captions at +70 %, "
        "so not by default); [] turns it off",
    )
    gate_fallback: Literal["models", "all", "windows"] = Field(
        "models",
        description="what a failed gate swaps for the fast fill: the UNet's windows (models; a classical fill's "
        "probe is the fast fill's, so the gate never judged it), every window but the fast fill's (all), or of "
        "those, the windows that fail the gate on their own, PatchMatch's kept (windows)",
    )
    # Gate. Good fills probe at 0.03-0.085 mean abs error on the ring (scikit-image photos). Fills
    # are smooth by design, so only noise-like artefacts (hf ratio far above 1) fail by default.
    gate_ring_error: Float = Field(
        0.10,
        ge=0,
        le=1,
        description="gate: largest mean abs error of the probe fill on the ring of known pixels (0..1 units)",
    )
    gate_hf_low: Float = Field(
        0.0, ge=0, le=100, description="gate: lowest accepted high-frequency power of the hole over the ring's"
    )
    gate_hf_high: Float = Field(
        4.0,
        ge=0,
        le=1000,
        description="gate: highest accepted high-frequency power of the hole over the ring's (at least gate_hf_low)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> InpaintSettings:
        check_range("gate_hf_high", self.gate_hf_high, self.gate_hf_low, 1000.0)
        return self


def prepare_mask(mask: np.ndarray, image_shape: tuple[int, ...], dilation: int) -> np.ndarray:
    """HxW uint8 (nonzero = remove) -> dilated HxW bool hole, refusing a size mismatch."""
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != tuple(image_shape[:2]):
        raise InvalidInput(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{image_shape[1]}x{image_shape[0]}; send a mask of the image's size"
        )
    return dilate(mask > 127, dilation)


def mask_sha256(mask: np.ndarray) -> str:
    """Of the mask as received (shape and bytes), so a report pins the exact mask used."""
    return hashlib.sha256(str(mask.shape).encode() + np.ascontiguousarray(mask).tobytes()).hexdigest()


Box = tuple[int, int, int, int]  # y0, x0, y1, x1


def _centred_box(y0: int, x0: int, y1: int, x1: int, side: int, shape: tuple[int, int]) -> Box:
    """A square of `side` centred on the box, shifted inside the image; an axis the image is too
    small for spans the whole image."""
    out = []
    for lo, hi, size in ((y0, y1, shape[0]), (x0, x1, shape[1])):
        extent = min(side, size)
        start = int(np.clip((lo + hi - extent) // 2, 0, size - extent))
        out.append((start, start + extent))
    return out[0][0], out[1][0], out[0][1], out[1][1]


@dataclass(frozen=True)
class Window:
    box: Box  # the image pixels the window covers
    scale: float  # model pixels per image pixel: 1 = native resolution
    owns: np.ndarray  # bool, box-sized: the hole pixels this window's fill is pasted into


def _stroke_width(component: np.ndarray) -> float:
    """Twice the 95th percentile distance to the hole's edge: where lines of text touch, a few
    pixels are far from it, but the hole is still thin strokes."""
    padded = np.pad(component.astype(np.uint8), 1)  # the crop's edge is not the hole's edge
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    return float(2 * np.percentile(dist[padded > 0], 95))


def _native_window(cy0: int, cx0: int, owns_full: np.ndarray, side: int, core_only: bool = False) -> list[Window]:
    """The native window of `side` around the core at (cy0, cx0), owning `owns_full`'s pixels in it,
    or with core_only those in its core (none if it owns nothing)."""
    core = side - 2 * WINDOW_MARGIN
    y0, x0, y1, x1 = box = _centred_box(cy0, cx0, cy0 + core, cx0 + core, side, owns_full.shape)
    owns = owns_full[y0:y1, x0:x1].copy()
    if core_only:  # cut to the core here, not with an image-sized cell mask per window
        owns[: cy0 - y0] = owns[cy0 + core - y0 :] = False
        owns[:, : cx0 - x0] = owns[:, cx0 + core - x0 :] = False
    return [Window(box, 1.0, owns)] if owns.any() else []


def native_grid(hole: np.ndarray, side: int) -> list[Window]:
    """Native windows on a grid of cores over the box of `hole` (HxW bool), each owning the hole
    pixels of its core: every pixel exactly once."""
    core = side - 2 * WINDOW_MARGIN
    ys, xs = np.nonzero(hole)
    windows = []
    for cy0 in range(int(ys.min()), int(ys.max()) + 1, core):
        for cx0 in range(int(xs.min()), int(xs.max()) + 1, core):
            windows.extend(_native_window(cy0, cx0, hole, side, core_only=True))
    return windows


def plan_windows(hole: np.ndarray, side: int, settings: InpaintSettings) -> list[Window]:
    """Windows of `side` covering every hole pixel exactly once (in `owns`).

    Holes that fit a window's core (the window less WINDOW_MARGIN of context on each side) are
    gathered, in reading order, into native windows. A larger hole is split over native windows
    on a grid of cores when it is a band (up to NATIVE_BAND_PX or thin_stroke_px wide: strokes, a
    line's box), else filled at reduced resolution: its box with `context` around it resized into
    one window."""
    h, w = hole.shape
    core = side - 2 * WINDOW_MARGIN
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    windows: list[Window] = []
    fits = [c for c in range(1, count) if stats[c, 2] <= core and stats[c, 3] <= core]
    fits.sort(key=lambda c: (stats[c, 1], stats[c, 0]))
    taken: set[int] = set()
    for c in fits:
        if c in taken:
            continue
        x, y = int(stats[c, 0]), int(stats[c, 1])
        cy0, cx0 = min(y, max(h - core, 0)), min(x, max(w - core, 0))
        members = [
            m
            for m in fits
            if m not in taken
            and stats[m, 0] >= cx0
            and stats[m, 1] >= cy0
            and stats[m, 0] + stats[m, 2] <= cx0 + core
            and stats[m, 1] + stats[m, 3] <= cy0 + core
        ]
        taken.update(members)
        windows.extend(_native_window(cy0, cx0, np.isin(labels, members), side))
    for c in range(1, count):
        if c in fits:
            continue
        x, y, bw, bh = (int(v) for v in stats[c, :4])
        component = labels == c
        if _stroke_width(component[y : y + bh, x : x + bw]) <= max(settings.thin_stroke_px, NATIVE_BAND_PX):
            windows.extend(native_grid(component, side))
        else:
            extent = int(round(max(bw, bh) * (1 + 2 * settings.context)))
            box = _centred_box(y, x, y + bh, x + bw, max(extent, side), (h, w))
            scale = side / max(box[2] - box[0], box[3] - box[1])
            windows.append(Window(box, min(scale, 1.0), component[box[0] : box[2], box[1] : box[3]].copy()))
    return windows


def route_features(grey: np.ndarray, hole: np.ndarray, image_pixels: int | None = None) -> dict:
    """Mask area (a fraction of the image's `image_pixels`; default: of `hole`), stroke width,
    rectangularity (hole pixels over their components' bounding boxes) and edge density in a
    ring around the hole."""
    stroke = _stroke_width(hole) if hole.any() else 0.0
    count, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    boxes = float((stats[1:count, 2] * stats[1:count, 3]).sum()) if count > 1 else 1.0
    ring = dilate(hole, 8) & ~hole
    edges = cv2.Canny(grey, 80, 160) > 0
    density = float(edges[ring].mean()) if ring.any() else 0.0
    return {
        "area": float(hole.sum()) / (image_pixels or hole.size),
        "stroke_width_px": round(stroke, 2),
        "rectangularity": round(float(hole.sum()) / max(boxes, 1.0), 4),
        "edge_density": round(density, 4),
    }


def choose_route(features: dict, settings: InpaintSettings) -> str:
    """auto, per window, from export/eval_edits.py's per-window table (docs/reports/edit_quality.md,
    24 photos): strokes go to xphoto FSR (+2.1 dB over the fast fill at ~0.33 s a window; in
    texture too, where PatchMatch, the route there until the table grew from 5 to 32 such windows,
    lost 2.3 dB to it; `textured_edges` can still send them there); rectangles go to PatchMatch
    (+1.5 dB over the fast fill at ~0.2 s a window: it copies texture where the diffusing fills
    blur); blobs go to `blob_route`, PatchMatch by default (whole images: make eval +0.7 dB pooled
    and +3.1 median over the fast fill, 40 dev photos of export.fill_dev +0.56 and +2.4, at about
    1 s an image against 40 ms; the UNet adds under 0.1 dB)."""
    if settings.route != "auto":
        return settings.route
    if features["stroke_width_px"] <= settings.thin_stroke_px:
        return "patchmatch" if features["edge_density"] >= settings.textured_edges else "fsr"
    if features["rectangularity"] >= settings.rectangular:
        return "patchmatch"
    return settings.blob_route


def classical_pick(rgb: np.ndarray, hole: np.ndarray, settings: InpaintSettings) -> str:
    """The classical fill (a CLASSICAL_FILLS name) auto picks for an HxWx3 uint8 crop's hole;
    PatchMatch where auto would pick a model route (the base a refine network starts from)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return CLASSICAL_ROUTES.get(choose_route(route_features(grey, hole), settings), "PatchMatch")


def high_frequency_power(grey: np.ndarray, where: np.ndarray) -> float:
    lap = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F)
    return float(np.mean(lap[where] ** 2)) if where.any() else 0.0


def hf_ratio(filled_grey: np.ndarray, grey: np.ndarray, hole: np.ndarray, where: np.ndarray | None = None) -> float:
    """The gate's high-frequency ratio: the fill's power in `where` (the whole hole by default) over
    the input's on the known ring around it."""
    where = hole if where is None else where
    ring = dilate(where, 8) & ~hole
    return high_frequency_power(filled_grey, where) / max(high_frequency_power(grey, ring), 1e-6)


def gate_passes(ring_error: float, hf: float, settings: InpaintSettings) -> bool:
    return ring_error <= settings.gate_ring_error and settings.gate_hf_low <= hf <= settings.gate_hf_high


CLASSICAL_FILLS = ("TELEA", "NS", "FSR_FAST", "FSR_BEST", "PatchMatch")
PATCH_MATCH_PATCH = 5  # PatchMatch's patch side in pixels


def classical_fill(algorithm: str, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB with its HxW bool hole filled by a classical method: cv2.inpaint's Telea or
    Navier-Stokes, xphoto's frequency-selective reconstruction (FSR_FAST, FSR_BEST), or PatchMatch
    (pypatchmatch; seeded, so equal inputs give equal bytes). OpenCV works in BGR (FSR's result
    depends on it) and xphoto's mask is inverted (0 = missing)."""
    if algorithm == "PatchMatch":
        from patchmatch import patch_match  # loads its native library on first use

        return patch_match.inpaint(np.ascontiguousarray(rgb), hole.astype(np.uint8) * 255, patch_size=PATCH_MATCH_PATCH)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if algorithm in ("TELEA", "NS"):
        out = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, getattr(cv2, f"INPAINT_{algorithm}"))
    else:
        out = np.zeros_like(bgr)
        cv2.xphoto.inpaint(bgr, (~hole).astype(np.uint8) * 255, out, getattr(cv2.xphoto, f"INPAINT_{algorithm}"))
    return np.ascontiguousarray(out[..., ::-1])


def route_fill(route: str, crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """A classical route's fill of an HxWx3 float32 [0, 1] crop."""
    pixels = np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)
    return classical_fill(CLASSICAL_ROUTES[route], pixels, hole).astype(np.float32) / 255.0


def classical_region_fill(route: str, rgb: np.ndarray, hole: np.ndarray, owned: np.ndarray) -> np.ndarray:
    """The classical route's fill, HxWx3 uint8, of the box around `owned` (HxW bool) grown by
    CLASSICAL_CONTEXT, run once at native resolution with every hole pixel in that box missing
    (so other text is never copied); elsewhere the input."""
    ys, xs = np.nonzero(owned)
    (h, w), c = hole.shape, CLASSICAL_CONTEXT
    y0, x0, y1, x1 = max(ys.min() - c, 0), max(xs.min() - c, 0), min(ys.max() + 1 + c, h), min(xs.max() + 1 + c, w)
    out = rgb.copy()
    out[y0:y1, x0:x1] = classical_fill(CLASSICAL_ROUTES[route], rgb[y0:y1, x0:x1], hole[y0:y1, x0:x1])
    return out


def tile_refined(
    windows: list[Window], routes: list[str], refining: tuple[str, ...], shape: tuple[int, int], side: int
) -> tuple[list[Window], list[str]]:
    """A reduced-resolution window on a route the refine net refines becomes native windows on a
    grid (native_grid): its classical fill is native anyway, and so the net can refine all of it."""
    out: list[tuple[Window, str]] = []
    for window, route in zip(windows, routes):
        if route not in refining or window.scale >= 1.0:
            out.append((window, route))
            continue
        y0, x0, y1, x1 = window.box
        hole = np.zeros(shape, bool)
        hole[y0:y1, x0:x1] = window.owns
        out.extend((tile, route) for tile in native_grid(hole, side))
    return [w for w, _ in out], [r for _, r in out]


def window_inputs(image: np.ndarray, hole: np.ndarray, window: Window, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(side x side x 3 image, side x side hole in 0/1) for one window: native windows smaller than
    `side` (a small image) are padded by reflection, reduced ones resized."""
    y0, x0, y1, x1 = window.box
    crop, holes = image[y0:y1, x0:x1], hole[y0:y1, x0:x1].astype(np.float32)
    if window.scale < 1.0:
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        holes = np.minimum(cv2.resize(holes, (side, side), interpolation=cv2.INTER_LINEAR) * 2, 1.0)
        return crop, (holes > 0).astype(np.float32)  # >= half covered counts as hole: nothing leaks
    pad = ((0, side - crop.shape[0]), (0, side - crop.shape[1]))
    if pad != ((0, 0), (0, 0)):
        crop = np.pad(crop, (*pad, (0, 0)), mode="reflect" if min(crop.shape[:2]) > 1 else "edge")
        holes = np.pad(holes, pad)
    return crop, holes


async def model_fill(
    model: str, crops: np.ndarray, holes: np.ndarray, infer: InpaintInfer, bases: np.ndarray | None = None
) -> np.ndarray:
    """[N, S, S, 3] crops and [N, S, S] holes (and [N, S, S, 3] bases, for inpaint_refine) through a
    served model, which takes and returns NCHW -> [N, S, S, 3] fills."""
    nchw = [np.ascontiguousarray(crops.transpose(0, 3, 1, 2)), np.ascontiguousarray(holes[:, None])]
    if bases is not None:
        nchw.append(np.ascontiguousarray(bases.transpose(0, 3, 1, 2)))
    return (await infer(model, *nchw)).transpose(0, 2, 3, 1)


async def fill_windows(route: str, crops: np.ndarray, holes: np.ndarray, infer: InpaintInfer) -> np.ndarray:
    """[N, S, S, 3] crops and [N, S, S] holes -> [N, S, S, 3] fills by the route."""
    if route in MODEL_ROUTES:
        return await model_fill(MODEL_ROUTES[route], crops, holes, infer)
    return np.stack([route_fill(route, c, m > 0) for c, m in zip(crops, holes)])


def paste(
    rgb: np.ndarray, hole: np.ndarray, windows: list[Window], fills: list[np.ndarray], feather_sigma: float
) -> np.ndarray:
    """The fills pasted into the image: a native window writes exactly the hole pixels it owns; a
    reduced one is resized back and blended over a feathered edge. Everything else is the input,
    bit for bit."""
    out = rgb.astype(np.float32) / 255.0
    touched = np.zeros(hole.shape, bool)
    order = sorted(range(len(windows)), key=lambda i: windows[i].scale >= 1.0)  # native ones last
    for window, fill in ((windows[i], fills[i]) for i in order):
        y0, x0, y1, x1 = window.box
        region = out[y0:y1, x0:x1]
        if window.scale >= 1.0:
            back = fill[: y1 - y0, : x1 - x0]
            region[window.owns] = back[window.owns]
            touched[y0:y1, x0:x1] |= window.owns
            continue
        back = cv2.resize(fill, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        alpha = feather(window.owns, feather_sigma)
        region[:] = region * (1 - alpha[..., None]) + back * alpha[..., None]
        touched[y0:y1, x0:x1] |= alpha > 0
    result = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    result[~touched] = rgb[~touched]  # outside the holes and their feathered bands: the input
    return result


async def inpaint(
    rgb: np.ndarray, mask: np.ndarray, settings: InpaintSettings, infer: InpaintInfer, model_size: int = MODEL_SIDE
):
    """HxWx3 uint8 image + HxW uint8 mask -> (HxWx3 uint8 result, figures: the report section's
    (retouch.reports.InpaintFigures) and the names of the models used)."""
    hole = prepare_mask(mask, rgb.shape, settings.dilation)
    coverage = float(hole.mean())
    figures = {"mask_sha256": mask_sha256(mask), "mask_coverage": round(coverage, 5)}
    if coverage > settings.max_coverage:
        raise InvalidInput(
            f"the dilated mask covers {coverage:.1%} of the image, over the "
            f"{settings.max_coverage:.0%} limit (setting max_coverage, at most "
            f"{HARD_MAX_COVERAGE:.0%}); send a smaller mask"
        )
    if not hole.any():
        return rgb.copy(), {**figures, "route": "none", "verdict": "unchanged", "windows": 0}

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    windows = plan_windows(hole, model_size, settings)
    routes = []  # per window: auto picks for each hole from its own window's features
    for w in windows:
        y0, x0, y1, x1 = w.box
        routes.append(choose_route(route_features(grey[y0:y1, x0:x1], w.owns, hole.size), settings))
    refining = settings.refine if settings.route == "auto" else ()
    windows, routes = tile_refined(windows, routes, refining, hole.shape, model_size)
    image = rgb.astype(np.float32) / 255.0
    inputs = [window_inputs(image, hole, w, model_size) for w in windows]
    crops = np.stack([c for c, _ in inputs])
    holes = np.stack([m for _, m in inputs])
    probes = np.stack([dilate(m > 0, PROBE_RING_PX).astype(np.float32) for m in holes])

    # Model routes fill hole and probe in one batch; a classical route's probe is the fast fill's
    # (a classical fill of the probe would double its cost, seconds for FSR).
    n = len(windows)
    probe_routes = [r if r in MODEL_ROUTES else "fast" for r in routes]
    all_crops, both = np.concatenate([crops, crops]), np.concatenate([holes, probes])
    filled_all: list[np.ndarray] = [np.empty(0)] * (2 * n)
    for route in dict.fromkeys(r for r in routes + probe_routes if r in MODEL_ROUTES):
        idx = [i for i, r in enumerate(routes) if r == route] + [
            n + i for i, r in enumerate(probe_routes) if r == route
        ]
        for i, fill in zip(idx, await fill_windows(route, all_crops[idx], both[idx], infer)):
            filled_all[i] = fill
    ring = (probes > 0) & (holes == 0)
    probe_errors = np.abs(np.stack(filled_all[n:]) - crops)
    ring_error = float(probe_errors[ring].mean()) if ring.any() else 0.0

    # A classical route fills all its windows' holes at once, natively; they paste as native windows.
    # On auto, inpaint_refine then refines the windows' fills (`bases`) in one batch.
    fills, placed = filled_all[:n], list(windows)
    bases: dict[int, np.ndarray] = {}
    for route in dict.fromkeys(r for r in routes if r in CLASSICAL_ROUTES):
        mine = [i for i, r in enumerate(routes) if r == route]
        owned = np.zeros(hole.shape, bool)
        for i in mine:
            y0, x0, y1, x1 = windows[i].box
            owned[y0:y1, x0:x1] |= windows[i].owns
        region = classical_region_fill(route, rgb, hole, owned).astype(np.float32) / 255.0
        for i in mine:
            y0, x0, y1, x1 = windows[i].box
            fills[i], placed[i] = region[y0:y1, x0:x1], replace(windows[i], scale=1.0)
            if route in refining:  # its windows are all native (tile_refined)
                bases[i] = window_inputs(region, hole, windows[i], model_size)[0]
    if bases:
        refined = sorted(bases)
        out = await model_fill(REFINE, crops[refined], holes[refined], infer, np.stack([bases[i] for i in refined]))
        for i, fill in zip(refined, out):
            fills[i] = fill

    result = paste(rgb, hole, placed, fills, settings.feather_sigma)
    result_grey = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
    hf = hf_ratio(result_grey, grey, hole)
    gate_ok = gate_passes(ring_error, hf, settings)
    reasons = [] if gate_ok else ["quality_gate"]
    if coverage > settings.review_coverage:
        reasons.append("large_coverage")
    used = dict.fromkeys(routes)
    models = [MODEL_ROUTES[r] for r in used if r in MODEL_ROUTES] + ([REFINE] if bases else [])
    # A failed gate swaps what a model other than the fast fill painted (the probe judged it); with
    # gate_fallback "all" the classical fills too, and with "windows" those of either that fail the
    # gate in their own window (a photo's textured corner no longer costs its plain ones their fill),
    # PatchMatch's excepted: the fast fill would leave a smooth rectangle where it copied texture (a
    # box repainted on grass; keeping it: 40 dev photos +0.04 dB, the second set unchanged).
    kept = {"models": ("fast", *CLASSICAL_ROUTES), "windows": ("fast", "patchmatch")}.get(
        settings.gate_fallback, ("fast",)
    )
    suspect = [i for i, r in enumerate(routes) if r not in kept]  # refined windows go with their route
    if not gate_ok and settings.gate_fallback == "windows":

        def window_fails(i: int) -> bool:
            (y0, x0, y1, x1), owns = windows[i].box, windows[i].owns
            error = float(probe_errors[i][ring[i]].mean()) if ring[i].any() else 0.0
            window_hf = hf_ratio(result_grey[y0:y1, x0:x1], grey[y0:y1, x0:x1], hole[y0:y1, x0:x1], owns)
            return not gate_passes(error, window_hf, settings)

        suspect = [i for i in suspect if window_fails(i)]
    if not gate_ok and suspect:
        safe = await fill_windows("fast", crops[suspect], holes[suspect], infer)
        for i, fill in zip(suspect, safe):
            fills[i], placed[i] = fill, windows[i]
        result = paste(rgb, hole, placed, fills, settings.feather_sigma)
        models = list(dict.fromkeys([*models, FAST_FILL]))
    route_counts = {r: routes.count(r) for r in used}
    figures.update(
        route=routes[0] if len(used) == 1 else "mixed",
        routes=route_counts,
        route_features=route_features(grey, hole),
        verdict="needs_review" if reasons else "accepted",
        review_reasons=reasons,
        fallback="fast_fill" if not gate_ok and suspect else None,
        windows=n,
        native_windows=sum(w.scale >= 1.0 for w in placed),
        refined_windows=len(bases),
        fallback_windows=len(suspect) if not gate_ok else 0,
        gate={"ring_error": round(ring_error, 5), "hf_ratio": round(hf, 4)},
        models=models,
    )
    return result, figures
