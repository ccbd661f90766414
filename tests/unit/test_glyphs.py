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


def box_around(pixels: np.ndarray, px: float = 6) -> np.ndarray:
    """The upright rectangle round a bool image's true pixels, grown px as DB's unclip grows it."""
    ys, xs = np.nonzero(pixels)
    quad = [[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]]
    return unclipped(np.array(quad, np.float32), px)


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
    # Glyph masks alone (no line rescued as a box: test_an_unclean_line_beside_clean_ones...).
    settings = GlyphSettings(rescue_after=0)
    mask, lines = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), settings)
    painted = mask > 0
    kinds = [line.kind for line in lines]
    assert kinds.count("glyph") >= 2 and set(kinds) <= {"glyph", "uncertain"}  # never texture
    glyph_lines = [t for t, m in zip(scene.lines, lines) if m.kind == "glyph"]
    ink = np.any([t.ink for t in glyph_lines], axis=0)
    truth = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    # Every pixel the text changed by 10 levels or more; a shadow's faint tail (under 10 levels off
    # the photo) is left where it does not stand off the background (grow_contrast).
    changed = np.abs(scene.rgb.astype(int) - scene.photo).max(axis=2) >= 10
    assert painted[ink & changed].mean() >= 0.98 and painted[ink].mean() >= 0.92
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


def smooth_background(h: int = 120, w: int = 420) -> np.ndarray:
    """A soft sky-like gradient: little spread on the ring around a box."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 150 + 20 * x / w + 10 * y / h
    return np.clip(np.stack([base - 30, base - 10, base + 20], axis=-1), 0, 255).astype(np.uint8)


def test_a_faint_watermark_on_a_smooth_background_is_painted():
    from PIL import Image, ImageDraw
    from text_scenes import font

    rgb = smooth_background(w=520)
    ink = Image.new("L", (rgb.shape[1], rgb.shape[0]), 0)
    ImageDraw.Draw(ink).text((30, 35), "Sample watermark", font=font("DejaVuSans-Bold.ttf", 40), fill=255)
    alpha = np.asarray(ink, np.float32)[..., None] / 255 * 0.22  # 22 % white: under min_contrast
    faint = np.round(rgb * (1 - alpha) + 255 * alpha).astype(np.uint8)
    quad = box_around(np.asarray(ink) > 64)
    mask, lines = text_masks(faint, quad[None], np.array([0.9], np.float32), GlyphSettings())
    assert lines[0].kind == "glyph" and lines[0].figures.get("faint") is True
    letters = np.asarray(ink) > 64
    assert (mask[letters] > 0).mean() >= 0.9
    strict, strict_lines = text_masks(faint, quad[None], np.array([0.9], np.float32), GlyphSettings(faint_contrast=0))
    assert strict_lines[0].kind != "glyph" and not strict.any()


def test_shapes_in_a_row_with_unlike_strokes_are_not_letters():
    """Discs and thin bars of one height on a line read as letters by their layout alone (as
    coins, stars or fruit in a row do); letters of one font have alike stroke widths, these do not."""
    rgb = smooth_background()
    for i in range(12):
        cx = 30 + 30 * i
        if i % 2:
            cv2.rectangle(rgb, (cx - 1, 46), (cx + 1, 74), (250, 250, 250), -1)
        else:
            cv2.circle(rgb, (cx, 60), 14, (250, 250, 250), -1, lineType=cv2.LINE_AA)
    quad = np.array([[10, 40], [376, 40], [376, 80], [10, 80]], np.float32)
    mask, lines = text_masks(rgb, quad[None], np.array([0.9], np.float32), GlyphSettings())
    figures = lines[0].figures
    assert figures["letters_per_height"] >= GlyphSettings().min_letters  # they do line up like letters
    assert figures["letter_height_cv"] <= GlyphSettings().max_letter_height_cv
    assert figures["stroke_cv"] > GlyphSettings().max_stroke_cv
    assert lines[0].kind != "glyph" and not mask.any()


def test_an_unclean_line_beside_clean_ones_is_painted_as_its_box():
    """Captions come in groups: beside rescue_after cleanly split lines, a confident line that looks
    like text but does not split cleanly is painted whole; alone, it is left for review."""
    scene = make_scene("coffee-dense", data.coffee(), seed=0, layout="dense", lines=4)
    boxes = np.stack([unclipped(line.quad, 0.3 * line.height) for line in scene.lines])
    scores = np.full(len(boxes), 0.9, np.float32)
    _, strict = text_masks(scene.rgb, boxes, scores, GlyphSettings(rescue_after=0))
    unclean = [i for i, line in enumerate(strict) if line.kind == "uncertain"]
    assert unclean and sum(line.kind == "glyph" for line in strict) >= 2
    i = unclean[0]
    assert strict[i].figures["reason"] == "unclean split" and not strict[i].mask.any()

    mask, lines = text_masks(scene.rgb, boxes, scores, GlyphSettings())
    assert lines[i].kind == "box" and "beside" in lines[i].figures["reason"]
    ink = scene.lines[i].ink
    assert (mask[ink] > 0).mean() >= 0.95

    _, alone = text_masks(scene.rgb, boxes[i : i + 1], scores[i : i + 1], GlyphSettings())
    assert alone[0].kind == "uncertain" and not alone[0].mask.any()


def test_a_low_scored_line_beside_clean_ones_is_painted_with_its_glyph_mask():
    """A line the detector scored between low_score and min_score is left for review alone, and
    painted, glyphs only, beside rescue_after cleanly split lines; under low_score it never is."""
    scene = make_scene("coffee-dense", data.coffee(), seed=0, layout="dense", lines=4)
    boxes = np.stack([unclipped(line.quad, 0.3 * line.height) for line in scene.lines])
    _, confident = text_masks(scene.rgb, boxes, np.full(len(boxes), 0.9, np.float32), GlyphSettings())
    i = next(k for k, line in enumerate(confident) if line.kind == "glyph" and "reason" not in line.figures)
    settings = GlyphSettings(low_score_separation=100)  # no low-score line passes on its own
    scores = np.full(len(boxes), 0.9, np.float32)
    scores[i] = 0.55
    _, strict = text_masks(scene.rgb, boxes, scores, settings.model_copy(update={"rescue_after": 0}))
    assert strict[i].kind == "uncertain" and strict[i].figures["reason"] == "low detector score"
    mask, lines = text_masks(scene.rgb, boxes, scores, settings)
    assert lines[i].kind == "glyph" and lines[i].figures["reason"].startswith("low detector score, beside")
    assert np.array_equal(lines[i].mask, confident[i].mask)  # the same glyphs as at a confident score
    scores[i] = 0.45
    _, low = text_masks(scene.rgb, boxes, scores, settings)
    assert low[i].kind == "uncertain" and not low[i].mask.any()


def test_a_blob_as_high_as_long_is_no_line_of_text():
    """A ring in a square box splits cleanly (an 'O'), but a caption is longer than high: a fish's
    scales or a pair of horns in a square box were painted on text-free photos before min_aspect."""
    rgb = np.full((120, 200, 3), 200, np.uint8)
    cv2.circle(rgb, (70, 60), 24, (20, 20, 20), 6, cv2.LINE_AA)
    quad = np.array([[40, 30], [100, 30], [100, 90], [40, 90]], np.float32)
    score = np.array([0.9], np.float32)
    _, loose = text_masks(rgb, quad[None], score, GlyphSettings(min_aspect=0))
    assert loose[0].kind == "glyph"
    mask, lines = text_masks(rgb, quad[None], score, GlyphSettings())
    assert lines[0].kind == "texture" and lines[0].figures["reason"] == "as high as long: no line of text"
    assert not mask.any()


def test_one_clean_line_of_the_same_size_is_enough_to_rescue():
    """A caption's lines share a font size: beside one clean line within rescue_height_ratio of its
    height, an unclean line is painted; with the ratio 0 (or beside fewer than rescue_after lines
    of other sizes) it is left for review."""
    scene = make_scene("coffee-dense", data.coffee(), seed=0, layout="dense", lines=4)
    boxes = np.stack([unclipped(line.quad, 0.3 * line.height) for line in scene.lines])
    scores = np.full(len(boxes), 0.9, np.float32)
    _, strict = text_masks(scene.rgb, boxes, scores, GlyphSettings(rescue_after=0))
    i = next(k for k, line in enumerate(strict) if line.kind == "uncertain")
    height = strict[i].figures["height_px"]
    j = next(
        k
        for k, line in enumerate(strict)
        if line.kind == "glyph"
        and max(height, line.figures["height_px"]) <= 1.2 * min(height, line.figures["height_px"])
    )
    pair, pair_scores = boxes[[i, j]], scores[[i, j]]
    _, lines = text_masks(scene.rgb, pair, pair_scores, GlyphSettings())
    assert lines[0].kind == "box" and lines[0].figures["reason"] == "unclean split, beside 1 glyph line"
    _, lines = text_masks(scene.rgb, pair, pair_scores, GlyphSettings(rescue_height_ratio=0))
    assert lines[0].kind == "uncertain"


def test_the_anti_aliasing_margin_spares_pixels_the_text_left_alone():
    """Beyond its first pixel the margin takes only pixels off the background: every changed pixel
    is still painted, and far fewer untouched photo pixels (each one the fill would get wrong)."""
    from PIL import Image, ImageDraw
    from text_scenes import font

    rgb = smooth_background(w=520)
    ink = Image.new("L", (rgb.shape[1], rgb.shape[0]), 0)
    ImageDraw.Draw(ink).text((30, 35), "Caption here", font=font("DejaVuSans.ttf", 40), fill=255)
    alpha = np.asarray(ink, np.float32)[..., None] / 255
    texted = np.round(rgb * (1 - alpha) + 20 * alpha).astype(np.uint8)
    changed = np.abs(texted.astype(int) - rgb).max(axis=2) > 2
    quad = box_around(changed)
    masks = {
        c: text_masks(texted, quad[None], np.array([0.9], np.float32), GlyphSettings(grow_contrast=c))[0] > 0
        for c in (0.0, 0.35)
    }
    for painted in masks.values():
        assert painted[changed].mean() >= 0.99
    spared = masks[0.0] & ~masks[0.35]
    assert not (masks[0.35] & ~masks[0.0]).any() and not (spared & changed).any()
    assert (masks[0.35] & ~changed).sum() <= 0.6 * (masks[0.0] & ~changed).sum()  # 0.41 measured


def outlined_caption(outline: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """White letters in a black outline `outline` px wide on an orange photo with dark folds in it
    (the background model holds dark, so the halo alone stops at the outline) -> (image, letters,
    outline pixels, box)."""
    from PIL import Image, ImageDraw
    from text_scenes import font

    rng = np.random.default_rng(5)
    h, w = 140, 520
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (225, 110, 40)
    for _ in range(60):  # dark folds: about a tenth of the photo
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 40))
        rgb[y : y + 3, x : x + int(rng.integers(10, 40))] = (25, 20, 20)
    layers = {}
    for name, stroke in (("letters", 0), ("outer", outline)):
        layer = Image.new("L", (w, h), 0)
        ImageDraw.Draw(layer).text(
            (30, 40), "Caption here", font=font("DejaVuSans.ttf", 44), fill=255, stroke_width=stroke, stroke_fill=255
        )
        layers[name] = np.asarray(layer, np.float32)[..., None] / 255
    texted = rgb * (1 - layers["outer"]) + 20 * layers["outer"]
    texted = texted * (1 - layers["letters"]) + 240 * layers["letters"]
    letters, ring = layers["letters"][..., 0] > 0.5, (layers["outer"][..., 0] > 0.5) & (layers["letters"][..., 0] < 0.5)
    return np.round(texted).astype(np.uint8), letters, ring, box_around(layers["outer"][..., 0] > 0)


def test_an_outline_round_the_letters_is_painted_with_them():
    """An outline the background also shows (dark folds) stops the halo; outline_px takes the rings
    of its one colour: the outline is painted and the fill gets no dark contour to spread."""
    texted, letters, ring, quad = outlined_caption(outline=4)
    masks = {
        px: text_masks(texted, quad[None], np.array([0.9], np.float32), GlyphSettings(outline_px=px)) for px in (0, 4)
    }
    (without, lines_without), (with_outline, lines_with) = masks[0], masks[4]
    assert lines_without[0].kind == lines_with[0].kind == "glyph"
    assert (without > 0)[letters].mean() >= 0.99 and (with_outline > 0)[letters].mean() >= 0.99
    assert (without > 0)[ring].mean() < 0.6  # the halo alone leaves half the outline (0.48 measured)
    assert (with_outline > 0)[ring].mean() >= 0.9  # 0.95: the rest is deep in letters' counters
    assert lines_with[0].figures["outline_px"] >= 1 and "outline_px" not in lines_without[0].figures


def test_plain_letters_get_no_outline():
    """Without an outline the rings round the letters are the photo's colours: nothing is added."""
    texted, _, _, quad = outlined_caption(outline=0)
    without, with_outline = (
        text_masks(texted, quad[None], np.array([0.9], np.float32), GlyphSettings(outline_px=px))[0] for px in (0, 4)
    )
    assert without.any() and np.array_equal(without, with_outline)
