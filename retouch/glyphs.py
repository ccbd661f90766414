"""Glyph-level text masks: which pixels inside a detected text box are text, and is it text at all.

A DBNet box covers a whole line: the letters and the photo between and around them. Painting the
whole box repaints photo that was never covered. Inside each box this module separates the glyphs
from the background, and decides from that separation whether the box holds text at all:

1. Background model: the colours on a thin ring just outside the box and a band just inside its
   edge (DB's unclip leaves a margin there), clustered in CIELAB; other boxes and the line's own
   glyphs (second pass) are left out of it.
2. Glyphs: pixels far from every background colour (over `min_contrast` and `spread_factor` times
   the ring's own spread), or of a colour far commoner in the box than around it (`min_enrichment`).
3. Halo: anti-aliasing, outlines and drop shadows sit between the two; pixels next to the glyphs
   that are still measurably off the background join them (hysteresis, up to `halo_px`), and the
   mask grows `grow_px` more: one pixel everywhere, further only over pixels at least
   `grow_contrast` of the halo's threshold off the background. The halo's measured width is
   reported per line. An outline whose colour the background model also holds (a black outline on
   a photo with dark folds) stops the halo; rings of one colour round it that the ground away from
   the line rarely shows join it (`outline_px`), else the fill spreads the outline's remains into
   a dark smudge of the letters.
4. Evidence that the box holds text: the glyphs stand well clear of the background's spread, fill
   a share of the box typical of writing, and either have consistent stroke widths or sit like
   letters on a line (alike heights, on the line's axis, about one per line height).

5. Shape (segment_lines, with the served learned segmenter): a line painted as its box gets the
   segmenter's ink inside the box instead; a glyph mask keeps only pixels near that ink.

Each line ends as `glyph` (its glyph mask is painted), `texture` (not text: nothing painted) or
`uncertain` (maybe text but no clean split, or a detector score under `min_score`: nothing painted;
the caller answers needs_review). `mode="box"` or `unclean="box"` paint whole boxes instead.
Measured in docs/reports/edit_quality.md (export/eval_edits.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from retouch.batching import in_width_batches
from retouch.morphology import dilate, erode
from retouch.settings import Float, Int, Settings, check_range


class GlyphSettings(Settings):
    """remove_text's `mask` section: which pixels of each detected line are painted."""

    mode: Literal["glyph", "box"] = Field(
        "glyph", description="glyph: glyph masks where the split is clean; box: always whole boxes"
    )
    unclean: Literal["review", "box"] = Field(
        "review", description="a text-like line that does not split cleanly: review (leave it) or box (paint it)"
    )
    box_mask: Literal["segmenter", "whole"] = Field(
        "segmenter",
        description="a line painted as a box (text that does not split cleanly, rescued or unclean=box): the "
        "learned glyph segmenter's ink inside the box, grown 1 px (segmenter; the box where it finds none), or "
        "the whole box (whole)",
    )
    segmenter_rescue: bool = Field(
        True,
        description="a line-shaped box the rule calls texture, in a photo with rescue_after cleanly split lines "
        "(scored from low_score), is painted with the learned glyph segmenter's ink when the segmenter is sure "
        "of it (ink confidence at least 0.9075)",
    )
    trim_px: Int = Field(
        5,
        ge=0,
        le=64,
        description="a glyph line's mask keeps only pixels within this distance of the ink the learned glyph "
        "segmenter sees (photo the colour split took for glyphs; 0: no trimming, nor where it would remove "
        "more than half the mask)",
    )
    trim_below: Float = Field(
        0.005,
        ge=0,
        le=1,
        description="a glyph line's mask also drops the pixels where the learned glyph segmenter's ink probability "
        "is under this (photo texture the colour split took for halo: a fig's seeds beside the letters; 0: off), "
        "unless with trim_px it would remove more than half the mask",
    )
    faint_ink: Float = Field(
        0.9,
        ge=0,
        le=1,
        description="a faint glyph line (split at the faint thresholds, or under faint_ink_contrast) also gets "
        "the pixels the learned glyph segmenter gives at least this ink probability, grown 1 px, inside its box: "
        "watermark ink the colour split misses (0: off)",
    )
    faint_ink_contrast: Float = Field(
        20.0, ge=0, le=100, description="...a glyph line whose glyphs stand less than this (CIELAB) off the background"
    )
    min_contrast: Float = Field(
        14.0, ge=0, le=100, description="CIELAB distance glyphs stand off the background, at least"
    )
    spread_factor: Float = Field(
        1.5,
        ge=0,
        le=10,
        description="glyphs stand off the background by this many times the background ring's own spread, at least",
    )
    faint_contrast: Float = Field(
        5.0,
        ge=0,
        le=100,
        description="a confident line that does not split at min_contrast is split again from this CIELAB distance "
        "(faint watermarks; 0: never) and kept only if it reads as letters",
    )
    faint_spread_factor: Float = Field(
        1.5, ge=0, le=10, description="...and from this many times the background ring's spread"
    )
    faint_separation: Float = Field(
        2.0, ge=0, le=100, description="...and its glyphs stand off the background by this many times its spread"
    )
    min_enrichment: Float = Field(
        6.0, ge=0, le=1000, description="a colour this many times commoner in the box than around it is text's"
    )
    rescue_after: Int = Field(
        2,
        ge=0,
        le=1000,
        description="in a photo with this many cleanly split lines, text-like lines left uncertain (an unclean "
        "split, or a score from low_score) are painted: their clean glyph mask, else their box (0: never)",
    )
    rescue_height_ratio: Float = Field(
        2.5,
        ge=0,
        le=10,
        description="...or beside fewer clean lines, one within this ratio of a clean line's height (a caption's "
        "font sizes; 0: never)",
    )
    halo_px: Int = Field(4, ge=0, le=16, description="the halo may reach at most this far from the glyphs")
    outline_px: Int = Field(
        4,
        ge=0,
        le=16,
        description="an outline round the glyphs (rings of one colour the background lacks) joins the halo, up to "
        "this many px (0: off)",
    )
    outline_share: Float = Field(
        0.6, ge=0, le=1, description="...a ring is outline when this share of it is the outline's colour"
    )
    outline_tolerance: Float = Field(12.0, ge=0, le=100, description="...within this CIELAB distance")
    grow_px: Int = Field(2, ge=0, le=16, description="then the mask grows this far (anti-aliasing)")
    grow_contrast: Float = Field(
        0.35,
        ge=0,
        le=1,
        description="beyond its first pixel the growth takes only pixels at least this share of the halo's "
        "threshold off the background (0: every pixel within grow_px)",
    )
    min_separation: Float = Field(
        2.2, ge=0, le=20, description="glyph contrast over background spread for a clean split"
    )
    min_fill: Float = Field(0.04, ge=0, le=1, description="glyph share of the box typical of writing: at least")
    max_fill: Float = Field(
        0.75, ge=0, le=1, description="glyph share of the box typical of writing: at most (at least min_fill)"
    )
    max_stroke_cv: Float = Field(
        0.85, ge=0, le=10, description="stroke widths' coefficient of variation, at most (letters' are consistent)"
    )
    min_aspect: Float = Field(
        1.25,
        ge=0,
        le=20,
        description="a line's box is at least this many times longer than high (a blob as long as high is no caption)",
    )
    min_score: Float = Field(0.7, ge=0, le=1, description="detector score from which a line is painted")
    low_score: Float = Field(
        0.5,
        ge=0,
        le=1,
        description="a line under min_score is still painted from this score if it sits like letters and stands clear",
    )
    low_score_separation: Float = Field(4.0, ge=0, le=100, description="...by this many times the background spread")
    # Letters on a line: letter-sized components per line height of length, at least...
    min_letters: Float = Field(
        1.2, ge=0, le=100, description="letters on a line: letter-sized components per line height of length, at least"
    )
    max_letter_height_cv: Float = Field(
        0.4, ge=0, le=10, description="letters on a line: their heights' coefficient of variation, at most"
    )
    max_off_axis: Float = Field(
        0.15,
        ge=0,
        le=10,
        description="letters on a line: mean offset of their centres from the line's axis, in line heights, at most",
    )
    min_letter_separation: Float = Field(
        1.2, ge=0, le=20, description="letters on a line: glyph contrast over background spread for a clean split"
    )
    # The recogniser (retouch.reading) has the last word on the lines the rule would paint.
    min_read_chars: Int = Field(
        2,
        ge=0,
        le=100,
        description="a line is painted only if the recogniser reads at least this many different characters in it "
        "(0: not judged)",
    )
    min_read_confidence: Float = Field(
        0.5,
        ge=0,
        le=1,
        description="...with at least this mean confidence (PaddleOCR's drop_score); else it is left for review",
    )
    promote_read_chars: Int = Field(
        3,
        ge=0,
        le=100,
        description="a line the rule leaves unpainted is painted when the recogniser reads at least this many "
        "different characters in it (0: never)",
    )
    promote_read_confidence: Float = Field(0.9, ge=0, le=1, description="...with at least this mean confidence")

    @model_validator(mode="after")
    def _consistent(self) -> GlyphSettings:
        check_range("max_fill", self.max_fill, self.min_fill, 1.0)
        return self


@dataclass
class LineMask:
    kind: str  # glyph | box | texture | uncertain
    y0: int  # the mask's window in the image
    x0: int
    mask: np.ndarray  # bool, window-sized: the pixels to paint (empty for texture/uncertain)
    figures: dict
    # Uncertain lines: what text_masks' group rescue paints, (kind, window-sized pixels): the glyph
    # mask of a line that split cleanly (but scored low), else the line's box.
    rescue: tuple[str, np.ndarray] | None = None

    def paint(self, mask: np.ndarray) -> None:
        """Mark this line's pixels (255) in the image-sized mask."""
        h, w = self.mask.shape
        mask[self.y0 : self.y0 + h, self.x0 : self.x0 + w][self.mask] = 255


def paint_lines(lines: list[LineMask], shape: tuple[int, int]) -> np.ndarray:
    """The lines' pixels on one HxW uint8 mask (255 = paint)."""
    mask = np.zeros(shape, np.uint8)
    for line in lines:
        line.paint(mask)
    return mask


def lab(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> float32 CIELAB (L 0..100)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _background_distance(colours: np.ndarray, samples: np.ndarray, clusters: int = 4) -> np.ndarray:
    """Each colour's CIELAB distance to the nearest of the background samples' cluster centres."""
    k = min(clusters, len(samples))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)  # deterministic centres
    _, _, centres = cv2.kmeans(samples.astype(np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    d = np.linalg.norm(colours[:, None, :] - centres[None, :, :], axis=2)
    return d.min(axis=1)


LAB_BINS = 16
NO_LETTERS = "no letter-like glyphs"  # a texture line's reason when its box is line-shaped
EXCLUDE_PX = 3  # glyphs (and their shadow) this close to the ring leave the background model


def _lab_bins(colours: np.ndarray) -> np.ndarray:
    """CIELAB colours -> flat histogram bin index (LAB_BINS per axis)."""
    lightness = np.clip(colours[:, 0] / 100.0 * LAB_BINS, 0, LAB_BINS - 1).astype(np.int32)
    a = np.clip((colours[:, 1] + 100.0) / 200.0 * LAB_BINS, 0, LAB_BINS - 1).astype(np.int32)
    b = np.clip((colours[:, 2] + 100.0) / 200.0 * LAB_BINS, 0, LAB_BINS - 1).astype(np.int32)
    return (lightness * LAB_BINS + a) * LAB_BINS + b


def _histogram(bins: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    h = np.bincount(bins, minlength=LAB_BINS**3).astype(np.float32).reshape((LAB_BINS,) * 3)
    return uniform_filter(h, size=3, mode="constant").reshape(-1) / max(len(bins), 1)


def enrichment(window: np.ndarray, box: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """How much more common each pixel's colour is inside the box than on the ring around it
    (smoothed colour histograms): text colours are enriched in the box, the background's are not
    (their ratio is about one minus the text's share of the box)."""
    bins = _lab_bins(window.reshape(-1, 3))
    inside, outside = _histogram(bins[box.reshape(-1)]), _histogram(bins[ring.reshape(-1)])
    floor = 1.0 / max(int(ring.sum()), 1)
    return (inside[bins] / (outside[bins] + floor)).reshape(box.shape)


def glyph_layout(glyphs: np.ndarray, quad: np.ndarray, height: float) -> dict:
    """How much the glyph components look like letters on a line: how many letter-sized ones
    there are per line height of length, how alike their heights are, and how well their centres
    sit on the line's axis (in line heights)."""
    count, _, stats, centres = cv2.connectedComponentsWithStats(glyphs.astype(np.uint8), connectivity=8)
    (cx, cy), (w, h), angle = cv2.minAreaRect(quad.astype(np.float32))
    axis = np.radians(angle if w >= h else angle + 90)
    length = max(w, h)
    sizes = stats[1:count, 2:4].astype(np.float32)
    big = np.flatnonzero(sizes.max(axis=1) >= 0.3 * height) + 1 if count > 1 else np.array([], int)
    if big.size == 0:
        return {"letters_per_height": 0.0, "letter_height_cv": None, "off_axis": None}
    offsets = (centres[big, 1] - cy) * np.cos(axis) - (centres[big, 0] - cx) * np.sin(axis)
    extents = np.abs(-stats[big, 2] * np.sin(axis)) + np.abs(stats[big, 3] * np.cos(axis))
    return {
        "letters_per_height": round(float(big.size * height / max(length, 1.0)), 3),
        "letter_height_cv": round(float(extents.std() / max(extents.mean(), 1e-6)), 3),
        "off_axis": round(float(np.abs(offsets).mean() / height), 3),
    }


def stroke_widths(glyphs: np.ndarray) -> np.ndarray:
    """Stroke width (2x the distance to the background) along the glyphs' ridges."""
    dist = cv2.distanceTransform(glyphs.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & glyphs
    return 2 * dist[ridge]


@dataclass
class _Split:
    """One line's glyph/background split and the evidence that it is text."""

    painted: np.ndarray  # glyphs, their halo and the anti-aliasing margin
    separation: float
    letters: bool
    clean: bool
    textlike: bool
    figures: dict


def _split_line(
    window: np.ndarray,
    box: np.ndarray,
    background: np.ndarray,
    grown: np.ndarray,
    quad: np.ndarray,
    height: float,
    ring_px: int,
    others: np.ndarray | None,
    settings: GlyphSettings,
    faint: bool = False,
) -> _Split:
    """Glyphs: the box's pixels far from the background model (`faint`: the faint-watermark
    threshold), their halo, and the figures that say whether they are letters."""
    min_contrast, spread_factor = (
        (settings.faint_contrast, settings.faint_spread_factor)
        if faint
        else (settings.min_contrast, settings.spread_factor)
    )
    # Two passes: glyphs that reach into the ring are taken out of the background model.
    colours = window.reshape(-1, 3)
    glyphs = np.zeros_like(box)
    for _ in range(2):
        samples = background & ~dilate(glyphs, EXCLUDE_PX)
        if samples.sum() < 8:
            samples = background
        d = _background_distance(colours, window[samples]).reshape(box.shape)
        spread = float(np.percentile(d[samples], 90))
        floor = max(min_contrast, spread_factor * spread)
        glyphs = box & (d > floor)
    if settings.min_enrichment > 0:  # colours found in the box and rare around it: the text's
        ring = dilate(box, 2 * ring_px) & ~box
        if others is not None:
            ring &= ~others
        if ring.sum() >= 16:
            enriched = enrichment(window, box, ring) > settings.min_enrichment
            glyphs |= box & enriched & (d > 0.5 * min_contrast)
    layout = glyph_layout(glyphs, quad, height)
    contrast = float(np.median(d[glyphs])) if glyphs.any() else 0.0
    fill = float(glyphs.sum()) / float(box.sum())
    widths = stroke_widths(glyphs)
    stroke_cv = float(widths.std() / widths.mean()) if widths.size >= 8 else float("inf")
    separation = contrast / max(spread, 1.0)

    # Halo: pixels next to the glyphs still clearly off the background, grown a ring at a time
    # (hysteresis); how far it went is the halo's measured width.
    off_background = max(min_contrast, spread)
    soft = d > 0.75 * off_background
    halo, reach = glyphs.copy(), 0
    for step in range(1, settings.halo_px + 1):
        nxt = dilate(halo, 1) & soft & grown
        if nxt.sum() == halo.sum():
            break
        halo, reach = nxt, step
    # An outline the halo stopped short of (its colour is in the background model too).
    halo, outline = outline_band(window, halo, grown, background, settings) if settings.outline_px else (halo, 0)
    # Anti-aliasing: one pixel round the halo always; further out only pixels that differ from the
    # background at all, since every photo pixel painted needlessly is one the fill gets wrong
    # (40 dev photos, glyph_dev --edits: +0.4 dB pooled, with remove_text's residual repaint).
    painted = dilate(halo, settings.grow_px) & grown
    if settings.grow_px > 1 and settings.grow_contrast:
        painted &= dilate(halo, 1) | (d > settings.grow_contrast * off_background)

    letters = (
        layout["letters_per_height"] >= settings.min_letters
        and layout["letter_height_cv"] is not None
        and layout["letter_height_cv"] <= settings.max_letter_height_cv
        and layout["off_axis"] <= settings.max_off_axis
    )
    in_fill = settings.min_fill <= fill <= settings.max_fill
    # Strokes of one font have alike widths; stars, coins and foliage read as letters but do not.
    strokes = stroke_cv <= settings.max_stroke_cv
    clean = (
        in_fill
        and strokes
        and (separation >= settings.min_separation or (letters and separation >= settings.min_letter_separation))
    )
    textlike = letters or (separation >= 0.6 * settings.min_separation and stroke_cv <= 1.3 * settings.max_stroke_cv)
    figures = dict(
        contrast=round(contrast, 2),
        background_spread=round(spread, 2),
        separation=round(separation, 2),
        glyph_fill=round(fill, 4),
        stroke_cv=round(stroke_cv, 3) if np.isfinite(stroke_cv) else None,
        halo_px=reach + 1,
        **({"outline_px": outline} if outline else {}),
        **layout,
    )
    if faint:
        figures["faint"] = True
    return _Split(painted, separation, letters, clean, textlike, figures)


def outline_band(
    window: np.ndarray, halo: np.ndarray, grown: np.ndarray, background: np.ndarray, settings: GlyphSettings
) -> tuple[np.ndarray, int]:
    """An outline round the halo: from its second ring out, rings mostly (outline_share) of one
    colour (the second ring's median, within outline_tolerance) that the background away from the
    line rarely shows, joined a ring at a time, at most outline_px -> (the halo with it, rings
    joined: 0 when there is none)."""
    first = dilate(halo, 1) & grown
    second = dilate(halo, 2) & grown & ~first
    if second.sum() < 16:
        return halo, 0
    near = np.linalg.norm(window - np.median(window[second], axis=0), axis=-1) < settings.outline_tolerance
    away = background & ~dilate(halo, settings.outline_px + 2)
    if away.sum() < 16 or near[away].mean() > 0.5 * settings.outline_share:
        return halo, 0
    band, joined = first, 0
    for _ in range(settings.outline_px):
        ring = dilate(band, 1) & grown & ~band
        taken = ring & near
        if not taken.any() or taken.sum() < settings.outline_share * ring.sum():
            break
        band, joined = band | taken, joined + 1
    return (band, joined) if joined else (halo, 0)


def line_sides(quad: np.ndarray) -> tuple[float, float]:
    """A line's (height, length): its quad's short and long sides, in pixels (at least 1)."""
    side = sorted([np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[1])])
    return max(float(side[0]), 1.0), max(float(side[1]), 1.0)


def _line_window(
    quad: np.ndarray, shape: tuple[int, int], halo_px: int
) -> tuple[tuple[int, int, int, int], np.ndarray, float, int]:
    """A line's window in the image ((y0, x0, y1, x1): the quad with room for its background ring
    and halo), the quad rasterised in it (uint8, 1 inside), the line's height and its ring width."""
    h, w = shape
    height = line_sides(quad)[0]
    ring_px = int(np.clip(round(0.15 * height), 2, 8))
    pad = ring_px + halo_px + 2
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    box = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(box, [np.round((quad - [x0, y0]) * 16).astype(np.int32)], 1, shift=4)
    return (int(y0), int(x0), int(y1), int(x1)), box, height, ring_px


def segment_line(
    image_lab: np.ndarray,
    quad: np.ndarray,
    score: float,
    settings: GlyphSettings,
    boxes_per_pixel: np.ndarray | None = None,
) -> LineMask:
    """One detected line ([4, 2] quad in image pixels) -> its LineMask. `boxes_per_pixel` (HxW
    counts of the detected boxes covering each pixel, this one included) marks the other lines'
    boxes, which never count as this line's background."""
    quad = np.asarray(quad, np.float32)
    (y0, x0, y1, x1), box, height, ring_px = _line_window(quad, image_lab.shape[:2], settings.halo_px)
    window = image_lab[y0:y1, x0:x1]
    others = None if boxes_per_pixel is None else boxes_per_pixel[y0:y1, x0:x1] > box
    box = box.astype(bool)
    empty = np.zeros_like(box)
    figures = {"score": round(float(score), 4), "height_px": round(height, 1)}

    grown = dilate(box, ring_px)
    inner = box & ~erode(box, 2)
    background = (grown & ~box) | inner
    if others is not None:
        background &= ~others | box
    if box.sum() < 16 or background.sum() < 8:
        figures["reason"] = "too small to segment"
        return LineMask("uncertain", y0, x0, empty, figures, rescue=("box", dilate(box, 2)))
    if line_sides(quad)[1] < settings.min_aspect * height:
        return LineMask("texture", y0, x0, empty, {**figures, "reason": "as high as long: no line of text"})

    local = quad - [x0, y0]
    split = _split_line(window, box, background, grown, local, height, ring_px, others, settings)
    # A faint watermark on a smooth background stays under min_contrast: from a confident
    # detection, split again nearer the background, and keep it only if it reads as letters.
    if not split.clean and settings.faint_contrast > 0 and score >= settings.min_score:
        faint = _split_line(window, box, background, grown, local, height, ring_px, others, settings, faint=True)
        if faint.letters and faint.clean and faint.separation >= settings.faint_separation:
            split = faint
    figures.update(split.figures)
    # A low-scored line still counts when its letters stand far clear of the background.
    confident = score >= settings.min_score or (
        score >= settings.low_score and split.letters and split.separation >= settings.low_score_separation
    )
    whole_box = dilate(box, 2)
    if settings.mode == "box":
        return LineMask("box", y0, x0, whole_box, figures)
    if confident and split.clean:
        return LineMask("glyph", y0, x0, split.painted, figures)
    if confident and split.textlike and settings.unclean == "box":  # text_masks' rescue paints the same box
        return LineMask("box", y0, x0, whole_box, {**figures, "reason": "unclean split"})
    if split.textlike:
        reason = "unclean split" if confident else "low detector score"
        rescue = ("glyph", split.painted) if split.clean else ("box", whole_box)
        return LineMask("uncertain", y0, x0, empty, {**figures, "reason": reason}, rescue)
    return LineMask("texture", y0, x0, empty, {**figures, "reason": NO_LETTERS})


def _same_size(line: LineMask, heights: list[float], settings: GlyphSettings) -> bool:
    """Is the line within rescue_height_ratio of a clean line's height (a caption's own font size)?"""
    h = line.figures["height_px"]
    return any(max(h, g) <= settings.rescue_height_ratio * min(h, g) for g in heights)


def quad_mask(quad: np.ndarray, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray:
    """A quad (image pixels, sub-pixel corners) rasterised on the window of `shape` at (y0, x0):
    uint8, 1 inside."""
    out = np.zeros(shape, np.uint8)
    if out.size:
        cv2.fillPoly(out, [np.round((quad - [x0, y0]) * 16).astype(np.int32)], 1, shift=4)
    return out


def _on_window(values: np.ndarray, y0: int, x0: int, line: LineMask) -> np.ndarray:
    """A map placed at (y0, x0) in the image, cut to `line`'s window (zeros where it does not reach)."""
    h, w = line.mask.shape
    out = np.zeros((h, w), values.dtype)
    top, left = max(y0, line.y0), max(x0, line.x0)
    bottom, right = min(y0 + values.shape[0], line.y0 + h), min(x0 + values.shape[1], line.x0 + w)
    if bottom > top and right > left:
        out[top - line.y0 : bottom - line.y0, left - line.x0 : right - line.x0] = values[
            top - y0 : bottom - y0, left - x0 : right - x0
        ]
    return out


def text_masks(
    rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray, settings: GlyphSettings
) -> tuple[np.ndarray, list[LineMask]]:
    """HxWx3 uint8 + detected quads -> (HxW uint8 mask to paint, 255 = text; one LineMask per box)."""
    image_lab = lab(rgb)
    # How many boxes cover each pixel, rasterised once: a line's other boxes are where the count
    # exceeds its own box's.
    boxes_per_pixel = np.zeros(rgb.shape[:2], np.uint16)
    for quad in boxes:
        x0, y0 = np.maximum(np.floor(quad.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
        own = quad_mask(quad, y0, x0, (max(min(y1, rgb.shape[0]) - y0, 0), max(min(x1, rgb.shape[1]) - x0, 0)))
        if not own.size:
            continue
        boxes_per_pixel[y0 : y0 + own.shape[0], x0 : x0 + own.shape[1]] += own
    lines = [segment_line(image_lab, q, float(s), settings, boxes_per_pixel) for q, s in zip(boxes, scores)]
    # Captions come in groups: in a photo with `rescue_after` cleanly split lines (or one of about
    # its height), a line that looks like text but split uncleanly or scored between low_score and
    # min_score is text too: its clean glyph mask is painted, else its box.
    glyph_heights = [line.figures["height_px"] for line in lines if line.kind == "glyph"]
    glyph_lines = len(glyph_heights)
    if settings.rescue_after and glyph_lines:
        for i, line in enumerate(lines):
            if line.rescue is None or line.figures["score"] < settings.low_score:
                continue
            if glyph_lines < settings.rescue_after and not _same_size(line, glyph_heights, settings):
                continue
            beside = f"beside {glyph_lines} glyph line{'s' if glyph_lines > 1 else ''}"
            figures = {**line.figures, "reason": f"{line.figures['reason']}, {beside}"}
            kind, pixels = line.rescue
            lines[i] = LineMask(kind, line.y0, line.x0, pixels, figures)
    return paint_lines(lines, rgb.shape[:2]), lines


# -- line crops for the learned segmenter (glyph_segmenter) -----------------------------------------

CROP_HEIGHT = 48  # px: every line crop is rectified to this height, so crops batch by width


@dataclass(frozen=True)
class LineCrop:
    """A detected line rectified to CROP_HEIGHT: its long side horizontal, for the segmenter a margin
    of a quarter of its height plus 4 px around it (outlines, shadows and the detector's slack).
    `to_image` maps crop pixels to image pixels (2x3 affine)."""

    to_image: np.ndarray
    width: int
    height: int
    quad: np.ndarray  # the detector's quad, in crop pixels
    shape: tuple[int, int]  # the image's

    def cut(self, image: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
        return cv2.warpAffine(
            image,
            self.to_image,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=border,
        )

    def box(self) -> np.ndarray:
        """CROP_HEIGHT x width uint8, 255 inside the detector's quad."""
        out = np.zeros((self.height, self.width), np.uint8)
        cv2.fillPoly(out, [np.round(self.quad * 16).astype(np.int32)], 255, shift=4)
        return out

    def paste(self, crop: np.ndarray) -> tuple[int, int, np.ndarray]:
        """A float crop-sized map -> (y0, x0, the map on the image window the crop covers)."""
        h, w = self.shape
        corners = np.array([[0, 0], [self.width, 0], [self.width, self.height], [0, self.height]], np.float64)
        points = corners @ self.to_image[:, :2].T + self.to_image[:, 2]
        x0, y0 = np.clip(np.floor(points.min(axis=0)).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(points.max(axis=0)).astype(int) + 1, 0, [w, h])
        to_crop = cv2.invertAffineTransform(self.to_image)
        to_crop[:, 2] += to_crop[:, :2] @ [x0, y0]  # window pixels, not image pixels
        window = cv2.warpAffine(
            crop.astype(np.float32),
            to_crop,
            (max(x1 - x0, 1), max(y1 - y0, 1)),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return int(y0), int(x0), window[: y1 - y0, : x1 - x0]


def line_crop(
    quad: np.ndarray, shape: tuple[int, int], height: int = CROP_HEIGHT, margin: tuple[float, float] = (0.25, 4.0)
) -> LineCrop | None:
    """The rectified crop of one detected line ([4, 2] quad in image pixels), with a margin of
    margin[0] of its height plus margin[1] px; None if degenerate."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(np.asarray(quad, np.float32))
    if w < h:
        w, h, angle = h, w, angle + 90.0
    if h < 2:
        return None
    margin = margin[0] * h + margin[1]
    scale = height / (h + 2 * margin)
    width = max(int(np.ceil((w + 2 * margin) * scale)), 8)
    a = np.radians(angle)
    along, across = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    origin = np.array([cx, cy]) - along * width / (2 * scale) - across * height / (2 * scale)
    to_image = np.column_stack([along / scale, across / scale, origin])
    to_crop = cv2.invertAffineTransform(to_image)
    inside = np.asarray(quad, np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
    return LineCrop(to_image, width, height, inside.astype(np.float32), tuple(shape[:2]))


def crop_input(rgb: np.ndarray, crop: LineCrop) -> np.ndarray:
    """The segmenter's input for one line: 4 x CROP_HEIGHT x width float32, RGB in [0, 1] and the
    detector's box (1 inside)."""
    image = crop.cut(rgb).astype(np.float32) * np.float32(1.0 / 255.0)
    return np.concatenate([image.transpose(2, 0, 1), (crop.box() > 127).astype(np.float32)[None]])


def ink_confidence(prob: np.ndarray, box: np.ndarray) -> float:
    """How sure the segmenter is of the ink it sees in a box: the mean probability of the box's
    pixels over one half (0 when there are none). Texture leaves it unsure; letters do not."""
    inside = prob[box]
    ink = inside[inside > 0.5]
    return float(ink.mean()) if ink.size else 0.0


def learned_line_mask(crop: LineCrop, prob: np.ndarray, threshold: float, min_confidence: float) -> LineMask:
    """One line's ink probability (crop-sized) -> its LineMask, pasted back on the image window
    the crop covers: `glyph` (the pixels over `threshold` painted) when its ink_confidence is at
    least `min_confidence`, else `texture` (nothing painted)."""
    box = crop.box() > 127
    confidence = ink_confidence(prob, box)
    y0, x0, window = crop.paste(prob)
    figures = {
        "glyph_fill": round(float((prob[box] > threshold).mean()) if box.any() else 0.0, 4),
        "confidence": round(confidence, 4),
    }
    if confidence < min_confidence:
        return LineMask("texture", y0, x0, np.zeros(window.shape, bool), figures)
    return LineMask("glyph", y0, x0, window > threshold, figures)


# The learned segmenter's operating point, chosen on its training data's validation shards
# (export/eval_glyph_segmenter.py; docs/reports/glyph_segmenter.md).
LEARNED_THRESHOLD = 0.10
LEARNED_MIN_CONFIDENCE = 0.9075
WIDTH_STEP = 64  # crop widths are padded up to a multiple of this, so alike lines share a batch
SEGMENTER = "glyph_segmenter"  # the served model (export/glyph_segmenters.py)
# A box line's segmented ink grows this far (40 dev photos, glyph_dev --edits: 1 px beats 2).
BOX_INK_GROW_PX = 1
MIN_TRIM_KEEP = 0.5  # a trim that would leave less of a glyph line's mask than this is not made

# [N, 4, CROP_HEIGHT, W] float32 crops -> [N, 1, CROP_HEIGHT, W] float32 ink probability
GlyphInfer = Callable[[np.ndarray], Awaitable[np.ndarray]]


async def ink_probabilities(
    rgb: np.ndarray, boxes: np.ndarray, infer: GlyphInfer, max_batch: int = 8
) -> list[tuple[LineCrop, np.ndarray] | None]:
    """Each detected quad's rectified crop and the segmenter's ink probability on it (crop-sized;
    None for a degenerate quad). Crops of one padded width go out as one batch (in chunks of
    max_batch, concurrently); the padding is zeros, box channel included, as in training."""
    crops = [line_crop(q, rgb.shape[:2]) for q in boxes]
    inputs = [None if crop is None else crop_input(rgb, crop) for crop in crops]
    out = await in_width_batches(infer, inputs, WIDTH_STEP, max_batch)
    return [None if crop is None else (crop, prob[0, :, : crop.width]) for crop, prob in zip(crops, out)]


async def learned_text_masks(
    rgb: np.ndarray,
    boxes: np.ndarray,
    infer: GlyphInfer,
    threshold: float = LEARNED_THRESHOLD,
    min_confidence: float = LEARNED_MIN_CONFIDENCE,
    max_batch: int = 8,
) -> tuple[np.ndarray, list[LineMask]]:
    """text_masks with the learned segmenter alone: HxWx3 uint8 + detected quads -> (HxW uint8 mask,
    255 = text; one LineMask per box)."""
    mask = np.zeros(rgb.shape[:2], np.uint8)
    lines = []
    for found in await ink_probabilities(rgb, boxes, infer, max_batch):
        if found is None:
            lines.append(LineMask("uncertain", 0, 0, np.zeros((0, 0), bool), {"reason": "too small to segment"}))
            continue
        line = learned_line_mask(*found, threshold, min_confidence)
        line.paint(mask)
        lines.append(line)
    return mask, lines


def lines_to_segment(lines: list[LineMask], settings: GlyphSettings) -> list[int]:
    """The lines segment_lines sends to the segmenter: `box` lines (box_mask), `glyph` lines
    (trim_px, trim_below) and, in a photo with rescue_after clean lines, line-shaped `texture` lines scored from
    low_score (segmenter_rescue)."""
    if settings.mode != "glyph":
        return []
    group = settings.rescue_after > 0 and sum(line.kind == "glyph" for line in lines) >= settings.rescue_after
    return [
        i
        for i, line in enumerate(lines)
        if (line.kind == "box" and settings.box_mask == "segmenter")
        or (line.kind == "glyph" and (settings.trim_px > 0 or settings.trim_below > 0))
        or (
            line.kind == "texture"
            and settings.segmenter_rescue
            and group
            and line.figures.get("reason") == NO_LETTERS
            and line.figures["score"] >= settings.low_score
        )
    ]


async def segment_lines(
    rgb: np.ndarray,
    boxes: np.ndarray,
    lines: list[LineMask],
    infer: GlyphInfer,
    settings: GlyphSettings,
    max_batch: int = 8,
) -> tuple[np.ndarray, list[LineMask]]:
    """The lines' masks shaped by the learned segmenter's ink (probability over LEARNED_THRESHOLD):
    a `box` line (text that did not split cleanly, painted whole) gets that ink grown
    BOX_INK_GROW_PX inside its box (`box_mask`); a `glyph` line keeps only the pixels of its mask
    within `trim_px` of the ink and not where the ink probability is under `trim_below` (photo the
    colour split took for glyphs or halo: a fig's seeds, leaves) and, if
    faint (`faint_ink_contrast`), gains the ink the segmenter is sure of (`faint_ink`), grown 1 px; a
    `texture` line among a caption's clean lines (lines_to_segment) is painted with its ink, as a
    box line is, when the segmenter is sure of it (ink_confidence at least LEARNED_MIN_CONFIDENCE).
    A line where the segmenter sees no ink, or a glyph line it would cut by more than half, stays
    as it was. -> (HxW uint8 mask of every line, the lines). The rule decides which lines are text;
    the segmenter only overrules it inside a caption (alone it is behind the rule on that decision,
    docs/reports/glyph_segmenter.md)."""
    chosen = lines_to_segment(lines, settings)
    glyph_lines = sum(line.kind == "glyph" for line in lines)
    lines = list(lines)
    found = await ink_probabilities(rgb, boxes[chosen], infer, max_batch) if chosen else []
    for i, crop_prob in zip(chosen, found):
        if crop_prob is None:
            continue
        line = lines[i]
        y0, x0, window = crop_prob[0].paste(crop_prob[1])
        ink = _on_window(window > LEARNED_THRESHOLD, y0, x0, line)
        if line.kind == "texture":
            confidence = ink_confidence(crop_prob[1], crop_prob[0].box() > 127)
            box = quad_mask(boxes[i], line.y0, line.x0, line.mask.shape) > 0
            shaped = dilate(ink, BOX_INK_GROW_PX) & dilate(box, 2)
            if confidence >= LEARNED_MIN_CONFIDENCE and shaped.any():
                beside = f"beside {glyph_lines} glyph lines"
                figures = {**line.figures, "reason": f"{NO_LETTERS} to the rule, ink to the segmenter, {beside}"}
                figures |= {"mask": "segmenter", "segmenter_confidence": round(confidence, 4)}
                lines[i] = replace(line, kind="glyph", mask=shaped, figures=figures)
        elif line.kind == "box":
            shaped = dilate(ink, BOX_INK_GROW_PX) & line.mask
            if shaped.any():
                share = round(float(shaped.sum()) / max(int(line.mask.sum()), 1), 4)
                lines[i] = replace(line, mask=shaped, figures={**line.figures, "mask": "segmenter", "box_share": share})
        else:
            kept = line.mask
            if settings.trim_px:
                kept = kept & dilate(ink, settings.trim_px)
            if settings.trim_below:  # where the segmenter is sure of no ink, within its crop
                seen = _on_window(crop_prob[0].paste(np.ones_like(crop_prob[1]))[2] > 0.99, y0, x0, line)
                kept = kept & ~(seen & _on_window(window < settings.trim_below, y0, x0, line))
            if MIN_TRIM_KEEP * line.mask.sum() <= kept.sum() < line.mask.sum():
                trimmed = int(line.mask.sum() - kept.sum())
                lines[i] = line = replace(line, mask=kept, figures={**line.figures, "trimmed": trimmed})
            if settings.faint_ink and (
                line.figures.get("faint") or line.figures["contrast"] < settings.faint_ink_contrast
            ):
                sure = _on_window(window > settings.faint_ink, y0, x0, line)
                box = quad_mask(boxes[i], line.y0, line.x0, line.mask.shape) > 0
                added = dilate(sure, BOX_INK_GROW_PX) & box & ~line.mask
                if added.any():
                    figures = {**line.figures, "faint_ink_added": int(added.sum())}
                    lines[i] = replace(line, mask=line.mask | added, figures=figures)
    return paint_lines(lines, rgb.shape[:2]), lines
