"""The `detect_text` operation: fixed-size buckets, a DBNet probability map, DB post-processing, a mask.

1. An image that fits the largest bucket is upscaled to fill it (by at most `max_upscale`: the
   detectors find small text far better that way) and padded with black to the smallest square
   bucket that holds it. A larger image is cut into overlapping tiles of the largest bucket at
   native resolution (downscaled first only if over `max_side`). Every input the model sees is
   therefore one of a few fixed shapes, and concurrent requests batch.
2. The tiles' probability maps are stitched back (maximum over overlaps), so a line cut by a tile
   border comes out as one region, and DB post-processing runs once on the whole map: threshold,
   contours, mean probability per box, unclip (pyclipper), minimum size.
3. Boxes map back to the image's pixels; the hard mask fills them and is dilated; `soften` makes
   the feathered mask an inpainter takes.

Inference is injected, (NCHW float32 batch) -> N1HW float32 probability maps, as in retouch.upscale.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pyclipper
from pydantic import Field

from retouch.batching import in_chunks
from retouch.morphology import dilate, feather
from retouch.settings import Float, Int, Settings
from retouch.tiling import TileGrid, cut_tiles, plan_tiles

MODEL_NAME = "text_detector"  # the model_repository folder export.text_detectors writes
DEFAULT_DETECTOR = "ppocrv6_tiny"
# The detector remove_text's second look runs on its result (retouch.remove_text.SecondLook), and
# the folder that serves it.
SECOND_LOOK_MODEL, SECOND_LOOK_DETECTOR = "text_detector_small", "ppocrv6_small"
# Square model inputs, multiples of 32 (the network's stride). Few sizes, so requests batch.
DEFAULT_BUCKETS = (640, 960, 1280)
CLIPPER_SCALE = 256  # pyclipper works in integers: 1/256 px keeps the unclip sub-pixel


@dataclass(frozen=True)
class Preprocess:
    """How a detector was trained to see pixels: channel order, then (x / 255 - mean) / std,
    mean and std listed in that channel order."""

    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# PaddleOCR feeds OpenCV's BGR and lists ImageNet's RGB statistics against it, B first: that is
# what the models learned, so it is reproduced as is. RapidOCR ships v4 with 0.5/0.5.
PADDLE_IMAGENET = Preprocess("BGR", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
DETECTORS = {
    "ppocrv6_small": PADDLE_IMAGENET,
    "ppocrv6_tiny": PADDLE_IMAGENET,
    "ppocrv4": Preprocess("BGR", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def served_detector(repository, model: str = MODEL_NAME) -> str:
    """Which of DETECTORS a model repository serves in a detector folder (text_detector, or
    text_detector_small), from its model.json (export writes it; it decides the normalisation)."""
    return json.loads((Path(repository) / model / "1" / "model.json").read_text())["detector"]


# NCHW float32 batch -> N1HW float32 text probability
Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]


class DetectSettings(Settings):
    """SETTINGS of `detect_text` (and remove_text's `detect` section)."""

    # DB post-processing; docs/text.md compares them with PaddleOCR's and RapidOCR's defaults.
    thresh: Float = Field(0.3, ge=0.01, le=0.99, description="probability over which a pixel is text")
    box_thresh: Float = Field(0.5, ge=0, le=1, description="boxes whose mean probability is lower are dropped")
    unclip_ratio: Float = Field(
        1.5, ge=0.5, le=4, description="how far each shrunk text kernel grows back to the line's extent"
    )
    max_candidates: Int = Field(1000, ge=1, le=10000, description="regions scored, largest first")
    min_size: Float = Field(3.0, ge=0, le=100, description="shortest box side kept, in model pixels")
    score_mode: Literal["fast", "slow"] = Field(
        "fast", description="fast: mean probability over the box; slow: over the region's own contour"
    )
    # Geometry (plan_detection). max_side bounds the tile count of huge images.
    max_upscale: Float = Field(
        2.0, ge=1, le=4, description="small images are upscaled to fill the largest bucket, by at most this much"
    )
    max_side: Int = Field(4096, ge=64, le=16384, description="longer image sides are downscaled to this first")
    tile_overlap: Int = Field(
        128, ge=0, le=320, description="model pixels shared by neighbouring tiles of a large image"
    )
    # The mask an inpainter gets.
    mask_dilation: Int = Field(
        3, ge=0, le=64, description="pixels the filled boxes grow by (anti-aliasing, outlines, shadows)"
    )
    soft_mask_sigma: Float = Field(3.0, ge=0, le=32, description="Gaussian sigma of the soft mask's edge")
    soft_mask_strength: Float = Field(0.8, ge=0, le=1, description="the soft mask's value on the text")


@dataclass(frozen=True)
class DetectionResult:
    boxes: np.ndarray  # [N, 4, 2] float32 (x, y) in image pixels, clockwise from top-left
    scores: np.ndarray  # [N] float32 mean text probability inside each box
    mask: np.ndarray  # HxW uint8, 255 = text: the boxes filled and dilated
    coverage: float  # fraction of the image inside the mask


# -- preprocessing --------------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, how: Preprocess) -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xHxW float32, in the order of operations of PaddleOCR's NormalizeImage
    (float32 multiply by 1/255, subtract, divide), so values match it bit for bit."""
    pixels = rgb[..., ::-1] if how.channel_order == "BGR" else rgb
    mean = np.array(how.mean, np.float32).reshape(1, 1, 3)
    std = np.array(how.std, np.float32).reshape(1, 1, 3)
    scaled = (pixels.astype(np.float32) * np.float32(1.0 / 255.0) - mean) / std
    return np.ascontiguousarray(scaled.transpose(2, 0, 1))


@dataclass(frozen=True)
class Plan:
    scale: float  # model pixels per image pixel
    height: int  # the image at that scale
    width: int
    bucket: int  # side of every model input
    grid: TileGrid  # over the scaled image padded to at least one bucket

    @property
    def tiles(self) -> int:
        return self.grid.count


def plan_detection(
    height: int, width: int, settings: DetectSettings, buckets: tuple[int, ...] = DEFAULT_BUCKETS
) -> Plan:
    """Scale, bucket and tiles for an image.

    An image that fits the largest bucket is upscaled to fill it, by at most max_upscale: these
    detectors were trained on images upscaled to a short side of 736 and find small text far more
    reliably at that scale (docs/text.md). It then goes into the smallest bucket that holds it.
    A larger image is tiled at native resolution, or downscaled first if over max_side.
    """
    long_side, largest = max(height, width), max(buckets)
    if long_side > settings.max_side:
        scale = settings.max_side / long_side
    else:
        scale = max(1.0, min(settings.max_upscale, largest / long_side))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    bucket = next((b for b in sorted(buckets) if b >= max(h, w)), largest)
    overlap = min(settings.tile_overlap, bucket // 2)
    grid = plan_tiles(max(h, bucket), max(w, bucket), bucket, overlap)
    return Plan(scale, h, w, bucket, grid)


def model_inputs(rgb: np.ndarray, plan: Plan, how: Preprocess) -> np.ndarray:
    """HxWx3 uint8 -> [tiles, 3, bucket, bucket] float32: the scaled image at the top-left, padded
    with black as the detectors' training crops were."""
    if plan.scale != 1.0:  # area averaging down: plain bilinear aliases fine strokes away
        shrink = plan.scale < 1.0
        rgb = cv2.resize(rgb, (plan.width, plan.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    padded = np.zeros((plan.grid.height, plan.grid.width, 3), np.uint8)
    padded[: plan.height, : plan.width] = rgb
    tiles = cut_tiles(padded, plan.grid)
    return np.stack([preprocess(tile, how) for tile in tiles])


def stitch(maps: np.ndarray, plan: Plan) -> np.ndarray:
    """[tiles, 1, bucket, bucket] -> the (scaled) image's HxW probability map; overlaps take the
    maximum, so text near one tile's border keeps the confident reading of the other tile."""
    b = plan.bucket
    out = np.zeros((plan.grid.height, plan.grid.width), np.float32)
    for tile, (y, x) in zip(maps[:, 0], plan.grid.positions()):
        np.maximum(out[y : y + b, x : x + b], tile, out=out[y : y + b, x : x + b])
    return out[: plan.height, : plan.width]


async def probability_map(rgb: np.ndarray, plan: Plan, infer: Infer, how: Preprocess, max_batch: int = 8) -> np.ndarray:
    """The text probability of every pixel of the scaled image, HxW float32."""
    return stitch(await in_chunks(infer, (model_inputs(rgb, plan, how),), max_batch), plan)


# -- DB post-processing ---------------------------------------------------------------------------


def mean_in_polygon(prob: np.ndarray, polygon: np.ndarray) -> float:
    """Mean of prob over the pixels inside polygon ([K, 2] x, y), computed on its bounding box."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(polygon.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(polygon.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    inside = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(inside, [np.round(polygon - [x0, y0]).astype(np.int32)], 1)
    return cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], inside)[0]


def unclip(quad: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow a polygon by DB's distance, area * ratio / perimeter (round joins); None when the
    offset does not give exactly one polygon."""
    distance = cv2.contourArea(quad) * ratio / cv2.arcLength(quad, True)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(
        pyclipper.scale_to_clipper(quad.tolist(), CLIPPER_SCALE), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON
    )
    grown = offset.Execute(distance * CLIPPER_SCALE)
    if len(grown) != 1:
        return None
    return np.array(pyclipper.scale_from_clipper(grown[0], CLIPPER_SCALE), np.float32)


def clockwise_from_top_left(quad: np.ndarray) -> np.ndarray:
    """[4, 2] corners ordered top-left, top-right, bottom-right, bottom-left (image axes, y down)."""
    centre = quad.mean(axis=0)
    ordered = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    return np.roll(ordered, -int(np.argmin(ordered.sum(axis=1))), axis=0)


def db_boxes(prob: np.ndarray, settings: DetectSettings) -> tuple[np.ndarray, np.ndarray]:
    """Probability map -> ([N, 4, 2] float32 quads in map pixels, [N] float32 scores)."""
    bitmap = (prob > settings.thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)[: settings.max_candidates]
    boxes, scores = [], []
    for contour in contours:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < settings.min_size:
            continue
        quad = cv2.boxPoints(rect)
        region = quad if settings.score_mode == "fast" else contour.reshape(-1, 2).astype(np.float32)
        score = mean_in_polygon(prob, region)
        if score < settings.box_thresh:
            continue
        grown = unclip(quad, settings.unclip_ratio)
        if grown is None:
            continue
        rect = cv2.minAreaRect(grown)
        if min(rect[1]) < settings.min_size + 2:
            continue
        boxes.append(clockwise_from_top_left(cv2.boxPoints(rect)))
        scores.append(score)
    return (np.array(boxes, np.float32).reshape(-1, 4, 2), np.array(scores, np.float32))


def to_image_pixels(boxes: np.ndarray, plan: Plan, height: int, width: int) -> np.ndarray:
    """Quads in model pixels -> image pixels, clipped to the image."""
    out = boxes / np.array([plan.width / width, plan.height / height], np.float32)
    out[..., 0] = np.clip(out[..., 0], 0, width)
    out[..., 1] = np.clip(out[..., 1], 0, height)
    return out.astype(np.float32)


# -- masks ----------------------------------------------------------------------------------------


def box_mask(boxes: np.ndarray, height: int, width: int, dilation: int = 0) -> np.ndarray:
    """HxW uint8, 255 inside the quads (sub-pixel corners), grown by `dilation` pixels."""
    mask = np.zeros((height, width), np.uint8)
    if len(boxes):
        corners = np.round(boxes * 16).astype(np.int32)  # 4 fractional bits, OpenCV's `shift`
        cv2.fillPoly(mask, list(corners), 255, lineType=cv2.LINE_8, shift=4)
    return dilate(mask, dilation)


def soften(mask: np.ndarray, settings: DetectSettings) -> np.ndarray:
    """HxW float32 soft mask: `soft_mask_strength` on the text, a Gaussian edge outside it."""
    return feather(mask > 0, settings.soft_mask_sigma) * np.float32(settings.soft_mask_strength)


# -- the operation --------------------------------------------------------------------------------


async def detect_text(
    rgb: np.ndarray,
    settings: DetectSettings,
    infer: Infer,
    *,
    detector: str = DEFAULT_DETECTOR,
    buckets: tuple[int, ...] = DEFAULT_BUCKETS,
    max_batch: int = 8,
) -> tuple[DetectionResult, dict]:
    """HxWx3 uint8 RGB -> (DetectionResult, report figures)."""
    height, width = rgb.shape[:2]
    plan = plan_detection(height, width, settings, buckets)
    prob = await probability_map(rgb, plan, infer, DETECTORS[detector], max_batch)
    boxes, scores = db_boxes(prob, settings)
    boxes = to_image_pixels(boxes, plan, height, width)
    mask = box_mask(boxes, height, width, settings.mask_dilation)
    coverage = float(np.count_nonzero(mask)) / mask.size
    figures = {
        "detector": detector,
        "boxes": len(boxes),
        "mask_coverage": round(coverage, 6),
        "bucket": plan.bucket,
        "tiles": plan.tiles,
        "scale": round(plan.scale, 6),
    }
    return DetectionResult(boxes, scores, mask, coverage), figures
