"""The learned glyph segmenter exported to ONNX (export/glyph_segmenters.py): the same numbers as
PyTorch, and, with the committed weights, masks that follow real rendered text (DejaVu, a face of
its training fonts, on a photo it never saw)."""

import cv2
import numpy as np
import onnxruntime as ort
import torch
from skimage import data
from text_scenes import make_scene

from export.glyph_segmenters import NAME, Probabilities, export, load_net
from retouch.glyphs import crop_input, learned_line_mask, line_crop

THRESHOLD, MIN_CONFIDENCE = 0.10, 0.9075  # docs/reports/glyph_segmenter.md's operating point


def test_onnx_matches_torch_and_segments_text(tmp_path):
    meta = export(tmp_path, force=True)
    assert meta["parity_max_abs_diff"] < 1e-5
    session = ort.InferenceSession(str(tmp_path / NAME / "1" / "model.onnx"))
    scene = make_scene("coffee", data.coffee(), seed=5, layout="sparse", sizes=(24, 36), contrasts=("high",), lines=2)
    painted = np.zeros(scene.rgb.shape[:2], bool)
    for line in scene.lines:
        (cx, cy), (w, h), a = cv2.minAreaRect(line.quad)
        grow = 0.6 * min(w, h)  # about DB's unclip
        crop = line_crop(cv2.boxPoints(((cx, cy), (w + grow, h + grow), a)), scene.rgb.shape[:2])
        x = crop_input(scene.rgb, crop)[None]
        x = np.pad(x, [(0, 0)] * 3 + [(0, -x.shape[-1] % 4)])
        prob = session.run(None, {"INPUT": x})[0][0, 0, :, : crop.width]
        with torch.no_grad():
            expected = Probabilities(load_net())(torch.from_numpy(x)).numpy()[0, 0, :, : crop.width]
        assert np.abs(prob - expected).max() < 1e-5
        mask = learned_line_mask(crop, prob, THRESHOLD, MIN_CONFIDENCE)
        assert mask.kind == "glyph"
        h_, w_ = mask.mask.shape
        painted[mask.y0 : mask.y0 + h_, mask.x0 : mask.x0 + w_] |= mask.mask
    ink = scene.ink
    region = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    assert (painted & ink).sum() / ink.sum() > 0.9
    assert (painted & region).sum() / painted.sum() > 0.85  # glyphs, not the box


def test_learned_text_masks_batch_by_width_and_paint_the_glyphs(tmp_path):
    import asyncio

    from retouch.glyphs import WIDTH_STEP, learned_text_masks

    export(tmp_path, force=True)
    session = ort.InferenceSession(str(tmp_path / NAME / "1" / "model.onnx"))
    shapes = []

    async def infer(batch):
        shapes.append(batch.shape)
        return session.run(None, {"INPUT": batch})[0]

    scene = make_scene(
        "chelsea",
        data.chelsea(),
        seed=11,
        layout="sparse",
        sizes=(20, 34),
        contrasts=("high",),
        lines=3,
        styles=("plain", "outline"),
    )
    boxes = []
    for line in scene.lines:
        (cx, cy), (w, h), a = cv2.minAreaRect(line.quad)
        grow = 0.6 * min(w, h)
        boxes.append(cv2.boxPoints(((cx, cy), (w + grow, h + grow), a)))
    mask, lines = asyncio.run(learned_text_masks(scene.rgb, np.array(boxes, np.float32), infer, max_batch=2))
    assert all(s[3] % WIDTH_STEP == 0 and s[0] <= 2 for s in shapes) and sum(s[0] for s in shapes) == len(boxes)
    assert [line.kind for line in lines] == ["glyph"] * len(boxes)
    ink = np.any([line.ink for line in scene.lines], axis=0)
    painted = mask > 0
    assert (painted & ink).sum() / ink.sum() > 0.9
    region = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    assert (painted & region).sum() / painted.sum() > 0.85
    # a box on the photo without text: nothing painted
    patch = np.array([[[10, 10], [120, 10], [120, 40], [10, 40]]], np.float32)
    empty, kinds = asyncio.run(learned_text_masks(data.chelsea(), patch, infer))
    assert kinds[0].kind == "texture" and not empty.any()


def test_box_lines_are_painted_with_the_segmenters_ink_inside_their_box(tmp_path):
    """A line text_masks paints whole (an unclean split beside clean lines) is painted with the
    segmenter's ink instead: the ink covered, a fraction of the box painted, nothing outside the
    box; the other lines keep their masks; a segmenter that finds nothing leaves the box."""
    import asyncio

    from retouch.glyphs import GlyphSettings, segment_box_lines, text_masks

    export(tmp_path, force=True)
    session = ort.InferenceSession(str(tmp_path / NAME / "1" / "model.onnx"))

    async def infer(batch):
        return session.run(None, {"INPUT": batch})[0]

    async def blind(batch):
        return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)

    scene = make_scene("coffee-dense", data.coffee(), seed=0, layout="dense", lines=4)
    boxes = []
    for line in scene.lines:
        (cx, cy), (w, h), a = cv2.minAreaRect(line.quad)
        boxes.append(cv2.boxPoints(((cx, cy), (w + 0.6 * line.height, h + 0.6 * line.height), a)))
    boxes = np.array(boxes, np.float32)
    whole, lines = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), GlyphSettings())
    box_lines = [i for i, line in enumerate(lines) if line.kind == "box"]
    assert box_lines

    mask, shaped = asyncio.run(segment_box_lines(scene.rgb, boxes, lines, infer))
    assert [line.kind for line in shaped] == [line.kind for line in lines]
    for i, (before, after) in enumerate(zip(lines, shaped)):
        if i not in box_lines:
            assert after is before
            continue
        assert after.figures["mask"] == "segmenter" and 0 < after.figures["box_share"] < 0.8
        assert not (after.mask & ~before.mask).any()  # inside the box it replaces
        ink = scene.lines[i].ink
        assert (mask[ink] > 0).mean() >= 0.9
    assert (mask > 0).sum() < (whole > 0).sum()
    assert not ((mask > 0) & (whole == 0)).any()

    kept, unshaped = asyncio.run(segment_box_lines(scene.rgb, boxes, lines, blind))
    np.testing.assert_array_equal(kept, whole)
    assert all("mask" not in line.figures for line in unshaped)
