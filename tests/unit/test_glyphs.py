"""Glyph masks inside text boxes (retouch.glyphs), on text rendered onto real photos; the boxes are
the ground-truth line rectangles grown as DB's unclip grows them, so no detector is needed."""

import cv2
import numpy as np
import pytest
from skimage import data
from text_scenes import make_scene

from retouch.glyphs import GlyphSettings, segment_line, text_masks


def unclipped(quad: np.ndarray, px: float) -> np.ndarray:
    (cx, cy), (w, h), a = cv2.minAreaRect(quad)
    return cv2.boxPoints(((cx, cy), (w + 2 * px, h + 2 * px), a)).astype(np.float32)


@pytest.mark.parametrize("style", ["plain", "outline", "shadow", "watermark"])
def test_glyph_masks_cover_the_ink_and_little_else(style):
    scene = make_scene(
        f"coffee-{style}",
        data.coffee(),
        seed=3,
        layout="sparse",
        sizes=(22, 40),
        contrasts=("high",),
        lines=3,
        styles=(style,),
    )
    boxes = np.stack([unclipped(line.quad, 0.3 * line.height) for line in scene.lines])
    mask, lines = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), GlyphSettings())
    painted = mask > 0
    kinds = [line.kind for line in lines]
    assert kinds.count("glyph") >= 2 and set(kinds) <= {"glyph", "uncertain"}  # never texture
    glyph_lines = [t for t, m in zip(scene.lines, lines) if m.kind == "glyph"]
    ink = np.any([t.ink for t in glyph_lines], axis=0)
    truth = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    assert (painted & ink).sum() / ink.sum() >= 0.95
    assert painted.sum() <= 1.6 * truth.sum()  # the halo (outline, shadow) included; 1.3x is the median goal
    box_area = sum(cv2.contourArea(b) for b, m in zip(boxes, lines) if m.kind == "glyph")
    assert painted.sum() < 0.8 * box_area  # glyphs, not boxes
    for line in lines:  # an uncertain line is left as it was
        assert line.figures["halo_px"] >= 1 and (line.kind == "glyph") == bool(line.mask.any())


def test_texture_is_not_painted():
    gravel = np.stack([data.gravel()] * 3, axis=-1)[:200, :300]
    quad = np.array([[40, 60], [260, 60], [260, 100], [40, 100]], np.float32)
    mask, lines = text_masks(gravel, quad[None], np.array([0.9], np.float32), GlyphSettings())
    assert lines[0].kind in ("texture", "uncertain") and not mask.any()


def test_low_score_is_uncertain_and_box_mode_paints_boxes():
    scene = make_scene("chelsea", data.chelsea(), seed=1, layout="sparse", sizes=(28, 36), contrasts=("high",), lines=1)
    quad = unclipped(scene.lines[0].quad, 8)
    from retouch.glyphs import lab

    low = segment_line(lab(scene.rgb), quad, 0.3, GlyphSettings())
    assert low.kind == "uncertain" and not low.mask.any()
    box = segment_line(lab(scene.rgb), quad, 0.9, GlyphSettings(mode="box"))
    assert box.kind == "box" and box.mask.sum() >= cv2.contourArea(quad)
