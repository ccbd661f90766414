"""Line crops for the learned glyph segmenter (retouch.glyphs.line_crop): rectified to a fixed
height along the line, and pasted back onto the same image pixels."""

import cv2
import numpy as np
import pytest
from skimage import data
from text_scenes import make_scene

from retouch.glyphs import CROP_HEIGHT, crop_input, learned_line_mask, line_crop


@pytest.mark.parametrize("angle", [0.0, 17.0, -25.0, 90.0])
def test_crop_is_rectified_and_pastes_back_onto_the_line(angle):
    quad = cv2.boxPoints(((160.0, 110.0), (180.0, 30.0), angle)).astype(np.float32)
    crop = line_crop(quad, (240, 320))
    assert crop.height == CROP_HEIGHT
    # long side horizontal: the box in the crop is wider than high, with the margin around it
    x0, y0 = crop.quad.min(axis=0)
    x1, y1 = crop.quad.max(axis=0)
    assert x1 - x0 > 4 * (y1 - y0) and 0 < y0 and y1 < CROP_HEIGHT and 0 < x0 and x1 < crop.width
    # the box channel pasted back covers the line's box on the image (up to the edges' resampling)
    y, x, window = crop.paste(crop.box().astype(np.float32) / 255.0)
    pasted = np.zeros((240, 320), np.float32)
    pasted[y : y + window.shape[0], x : x + window.shape[1]] = window
    truth = np.zeros((240, 320), np.uint8)
    cv2.fillPoly(truth, [np.round(quad).astype(np.int32)], 1)
    iou = ((pasted > 0.5) & (truth > 0)).sum() / ((pasted > 0.5) | (truth > 0)).sum()
    assert iou > 0.95


def test_crop_input_and_learned_mask_follow_the_ink():
    scene = make_scene("coffee", data.coffee(), seed=3, layout="sparse", sizes=(22, 40), contrasts=("high",), lines=1)
    line = scene.lines[0]
    crop = line_crop(line.quad, scene.rgb.shape[:2])
    net_in = crop_input(scene.rgb, crop)
    assert net_in.shape == (4, CROP_HEIGHT, crop.width) and net_in.dtype == np.float32
    assert 0.0 <= net_in.min() and net_in.max() <= 1.0
    # the true ink, cut like the image and used as the "probability": pasted back, it is the ink
    ink = crop.cut(line.ink.astype(np.float32), border=cv2.BORDER_CONSTANT)
    painted = learned_line_mask(crop, ink, threshold=0.5, min_confidence=0.9)
    assert painted.kind == "glyph"
    mask = np.zeros(line.ink.shape, bool)
    h, w = painted.mask.shape
    mask[painted.y0 : painted.y0 + h, painted.x0 : painted.x0 + w] = painted.mask
    grown = cv2.dilate(line.ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (mask & line.ink).sum() / line.ink.sum() > 0.8 and (mask & ~grown).sum() < 0.1 * mask.sum()
    assert learned_line_mask(crop, np.zeros_like(ink), 0.5, 0.05).kind == "texture"
