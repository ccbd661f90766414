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


def dense_caption():
    """Four caption lines on coffee and their boxes grown about as DB's unclip grows them: one of
    them splits uncleanly beside clean ones (text_masks paints it as its box)."""
    scene = make_scene("coffee-dense", data.coffee(), seed=0, layout="dense", lines=4)
    boxes = []
    for line in scene.lines:
        (cx, cy), (w, h), a = cv2.minAreaRect(line.quad)
        boxes.append(cv2.boxPoints(((cx, cy), (w + 0.6 * line.height, h + 0.6 * line.height), a)))
    return scene, np.array(boxes, np.float32)


def exported_segmenter(tmp_path):
    """The exported segmenter in onnxruntime, as an async infer like the served model's."""
    export(tmp_path, force=True)
    session = ort.InferenceSession(str(tmp_path / NAME / "1" / "model.onnx"))

    async def infer(batch):
        return session.run(None, {"INPUT": batch})[0]

    return infer


def caption_lines(settings):
    """dense_caption's scene, boxes and the rule's lines."""
    from retouch.glyphs import text_masks

    scene, boxes = dense_caption()
    _, lines = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), settings)
    return scene, boxes, lines


def test_painted_lines_are_shaped_by_the_segmenters_ink(tmp_path):
    """A line text_masks paints whole (an unclean split beside clean lines) is painted with the
    segmenter's ink instead: the ink covered, a fraction of the box painted, nothing outside the
    box. Glyph lines keep their mask near the ink only. A segmenter that finds nothing changes
    nothing."""
    import asyncio

    from retouch.glyphs import GlyphSettings, segment_lines, text_masks

    infer = exported_segmenter(tmp_path)

    async def blind(batch):
        return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)

    scene, boxes = dense_caption()
    settings = GlyphSettings()
    whole, lines = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), settings)
    kinds = [line.kind for line in lines]
    assert "box" in kinds and "glyph" in kinds

    mask, shaped = asyncio.run(segment_lines(scene.rgb, boxes, lines, infer, settings))
    assert [line.kind for line in shaped] == kinds
    for i, (before, after) in enumerate(zip(lines, shaped)):
        if "faint_ink_added" not in after.figures:  # a faint line may gain sure ink (the next test)
            assert not (after.mask & ~before.mask).any()  # inside what it replaces
        assert (mask[scene.lines[i].ink] > 0).mean() >= 0.9
        if before.kind == "box":
            assert after.figures["mask"] == "segmenter" and 0 < after.figures["box_share"] < 0.8
        elif "trimmed" in after.figures:
            assert after.figures["trimmed"] == before.mask.sum() - after.mask.sum() > 0
    assert (mask > 0).sum() < (whole > 0).sum()
    assert not ((mask > 0) & (whole == 0)).any()

    # Photo the colour split took for glyphs, far from any letter: trimmed away.
    from dataclasses import replace

    from retouch.morphology import dilate

    i = kinds.index("glyph")
    line = lines[i]
    h, w = line.mask.shape
    near = dilate(np.any([t.ink for t in scene.lines], axis=0), 12)[line.y0 : line.y0 + h, line.x0 : line.x0 + w]
    stray = ~near & ~line.mask
    assert stray.sum() > 50
    stray &= np.cumsum(stray.ravel()).reshape(stray.shape) <= line.mask.sum() // 3  # a third more, at most
    polluted = list(lines)
    polluted[i] = replace(line, mask=line.mask | stray)
    _, cleaned = asyncio.run(segment_lines(scene.rgb, boxes, polluted, infer, settings))
    assert not (cleaned[i].mask & stray).any() and cleaned[i].figures["trimmed"] >= stray.sum()

    # Photo beside the letters, within trim_px of the ink, where the segmenter sees none: the halo
    # the colour split took in texture. trim_below drops it; the distance trim alone keeps it.
    ink = np.any([t.ink for t in scene.lines], axis=0)
    beside = (dilate(ink, 5) & ~dilate(ink, 3))[line.y0 : line.y0 + h, line.x0 : line.x0 + w] & ~line.mask
    beside &= np.cumsum(beside.ravel()).reshape(beside.shape) <= line.mask.sum() // 3
    assert beside.sum() > 50
    polluted[i] = replace(line, mask=line.mask | beside)
    _, by_distance = asyncio.run(segment_lines(scene.rgb, boxes, polluted, infer, GlyphSettings(trim_below=0)))
    _, by_both = asyncio.run(segment_lines(scene.rgb, boxes, polluted, infer, settings))
    assert (by_distance[i].mask & beside).sum() > 0.75 * beside.sum()
    assert (by_both[i].mask & beside).sum() < 0.5 * beside.sum()

    untrimmed = GlyphSettings(trim_px=0, trim_below=0)
    _, only_boxes = asyncio.run(segment_lines(scene.rgb, boxes, lines, infer, untrimmed))
    assert all(after is before for before, after in zip(lines, only_boxes) if before.kind == "glyph")

    kept, unshaped = asyncio.run(segment_lines(scene.rgb, boxes, lines, blind, settings))
    np.testing.assert_array_equal(kept, whole)
    assert all(after is before for before, after in zip(lines, unshaped))


def test_a_faint_glyph_line_gains_the_ink_the_segmenter_is_sure_of(tmp_path):
    """A glyph line of low contrast (a watermark) whose colour split missed letters gets the pixels
    the segmenter is sure are ink, grown 1 px, inside its box; a line of full contrast, or faint_ink
    0, keeps its mask."""
    import asyncio
    from dataclasses import replace

    from retouch.glyphs import GlyphSettings, quad_mask, segment_lines
    from retouch.morphology import dilate

    infer = exported_segmenter(tmp_path)
    settings = GlyphSettings()
    scene, boxes, lines = caption_lines(settings)
    i = next(i for i, line in enumerate(lines) if line.kind == "glyph")
    line = lines[i]
    h, w = line.mask.shape
    ink = scene.lines[i].ink[line.y0 : line.y0 + h, line.x0 : line.x0 + w]
    half = line.mask.copy()
    half[:, : w // 2] = False  # the split missed the first half of the letters
    for contrast, faint_ink, gains in ((10.0, 0.9, True), (40.0, 0.9, False), (10.0, 0.0, False)):
        cut = list(lines)
        cut[i] = replace(line, mask=half, figures={**line.figures, "contrast": contrast})
        _, shaped = asyncio.run(segment_lines(scene.rgb, boxes, cut, infer, GlyphSettings(faint_ink=faint_ink)))
        after = shaped[i].mask
        if not gains:
            assert "faint_ink_added" not in shaped[i].figures and not (after & ~half).any()
            continue
        added = after & ~half
        assert shaped[i].figures["faint_ink_added"] == added.sum() > 0
        assert not (added & ~(quad_mask(boxes[i], line.y0, line.x0, (h, w)) > 0)).any()
        assert (after & ink).sum() / ink.sum() > 0.9 > (half & ink).sum() / ink.sum()
        assert (added & dilate(ink, 2)).sum() > 0.9 * added.sum()  # the ink and its edge, not the photo


def test_a_caption_line_the_rule_calls_texture_is_painted_when_the_segmenter_is_sure(tmp_path):
    """Among a caption's clean lines, a line-shaped box the rule calls texture (its colour split found
    no letters) is painted with the segmenter's ink when the segmenter is sure of it; alone, or with
    the rescue off, or with a box as high as long, it stays texture."""
    import asyncio
    from dataclasses import replace

    from retouch.glyphs import NO_LETTERS, GlyphSettings, lines_to_segment, segment_lines

    infer = exported_segmenter(tmp_path)
    settings = GlyphSettings()
    scene, boxes, lines = caption_lines(settings)
    glyphs = [i for i, line in enumerate(lines) if line.kind == "glyph"]
    assert len(glyphs) >= 3
    i = glyphs[0]
    as_texture = list(lines)
    as_texture[i] = replace(
        lines[i], kind="texture", mask=np.zeros_like(lines[i].mask), figures={**lines[i].figures, "reason": NO_LETTERS}
    )
    assert i in lines_to_segment(as_texture, settings)
    mask, shaped = asyncio.run(segment_lines(scene.rgb, boxes, as_texture, infer, settings))
    assert shaped[i].kind == "glyph" and shaped[i].figures["mask"] == "segmenter"
    assert shaped[i].figures["segmenter_confidence"] >= 0.9075
    assert (mask[scene.lines[i].ink] > 0).mean() >= 0.9

    for other in (
        GlyphSettings(rescue_after=len(glyphs)),  # fewer clean lines than the group needs
        GlyphSettings(segmenter_rescue=False),
    ):
        assert i not in lines_to_segment(as_texture, other)
    square = list(as_texture)
    square[i] = replace(as_texture[i], figures={**as_texture[i].figures, "reason": "as high as long: no line of text"})
    assert i not in lines_to_segment(square, settings)
