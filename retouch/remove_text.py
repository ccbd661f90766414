"""The `remove_text` operation: detect -> glyph masks -> inpaint -> verify.

Nothing is painted unless it is text. Each detected line is segmented into glyphs
(retouch.glyphs): lines that split cleanly are painted with their glyph mask; lines that look like
texture are left alone; lines that may be text but do not split cleanly are left alone too and
make the outcome `needs_review` (the report lists them as candidates). The check runs a detector
on the result: the second look's (`second_look`, PP-OCRv6 small), else the first one. A box it
finds over the painted mask is residual text (the ghost of an outline or a shadow the glyph mask
left); its whole box is painted once more (`repaint_residual`). A box it finds off the mask is a
line the first detector missed; it is painted too, glyph-masked, if the recogniser reads it as
text. After such a repaint the first detector looks again, and whatever it finds over the mask is
reported.

Outcomes:
- no_text: nothing to remove; the image comes back unchanged, bit for bit;
- accepted: the text was painted out, the gate accepted and no text remains;
- needs_review: something wants a human: unsure lines left as they were, the gate, residual
  text, or a mask covering more than inpaint.review_coverage. It is never refused for what it found.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pydantic import Field, field_validator

from retouch.glyphs import (
    GlyphInfer,
    GlyphSettings,
    LineMask,
    lines_to_segment,
    paint_lines,
    segment_lines,
    text_masks,
)
from retouch.inpaint import MODEL_SIDE, InpaintInfer, InpaintSettings, inpaint, mask_sha256, prepare_mask
from retouch.morphology import dilate
from retouch.reading import ReadInfer, judge_reads, read_lines, reads_as_text
from retouch.settings import Float, OutputSettings, Settings, UpscaleSettings
from retouch.text import DetectionResult, DetectSettings, Infer, box_mask, detect_text

# The service's own mask is never refused: the fill takes up to this much of the image, and a
# larger mask (a page of text) is left for review instead of painted.
MAX_PAINTED_COVERAGE = 0.6
# Where remove_text's fill differs from inpaint's: when the gate fails, the windows of its own masks
# that fail it on their own get the fast fill, classical ones included: there the fast fill's blur
# hides the ghosts of halos a glyph mask left (every window swapped: 40 dev photos, export.glyph_dev
# --edits, 19.66 -> 20.01 dB pooled, residual lines 18.6 -> 16.5 %; only the failing ones, with
# the segmenter-shaped masks of 2026-12-07: 23.44 -> 23.56, residual unchanged; docs/text.md),
# PatchMatch's windows excepted (a smooth rectangle where it copied texture is no better).
INPAINT_DEFAULTS = {"max_coverage": MAX_PAINTED_COVERAGE, "gate_fallback": "windows"}
# The check's boxes: one less than this inside the painted mask's reach is a line the first
# detector missed (one at least residual_overlap inside is residual text; between the two, neither).
NEW_LINE_OVERLAP = 0.1
# A line left for review is settled when the second look's mask covers this much of its box.
SETTLED_OVERLAP = 0.5


class RemoveTextSettings(OutputSettings):
    """SETTINGS of `remove_text` (and clean's `remove_text` part)."""

    detect: DetectSettings = Field(DetectSettings(), description="text detection (the detect_text settings)")
    mask: GlyphSettings = Field(
        GlyphSettings(), description="glyph masks: which pixels of each detected line are painted"
    )
    # The glyph masks already carry their measured halo; inpaint adds no dilation by default.
    inpaint: InpaintSettings = Field(
        InpaintSettings(**INPAINT_DEFAULTS),
        description="the fill (the inpaint settings; here "
        + ", ".join(f"{k} defaults to {v}" for k, v in INPAINT_DEFAULTS.items())
        + ")",
    )
    residual_overlap: Float = Field(
        0.5, ge=0, le=1, description="a re-detected box this much inside the mask is residual text"
    )
    second_look: bool = Field(
        True,
        description="once text is painted, a second detector (text_detector_small) looks at the "
        "result; a line it finds off the mask that the recogniser reads as text (mask.promote_read_chars at "
        "mask.promote_read_confidence) is painted too. Photos where nothing was painted are not looked at again",
    )
    repaint_residual: bool = Field(
        True,
        description="a box found again over the painted mask is filled once more, whole (grown 2 px); "
        "false: only reported",
    )
    max_text_coverage: Float = Field(
        0.3,
        ge=0,
        le=MAX_PAINTED_COVERAGE,
        description="a text mask over this share of the photo is left for review, not painted (captions cover "
        "far less; rows of coins or tiles read as large lettering cover more)",
    )

    @field_validator("inpaint", mode="before")
    @classmethod
    def _inpaint_defaults(cls, value):
        """A partial `inpaint` section keeps remove_text's own defaults for what it leaves out."""
        return {**INPAINT_DEFAULTS, **value} if isinstance(value, dict) else value


class CleanSettings(Settings):
    """SETTINGS of `clean` (remove_text, then upscale): one part per step, each as its operation takes
    it (split_settings hands them on)."""

    remove_text: RemoveTextSettings = Field(RemoveTextSettings(), description="the remove_text step's settings")
    upscale: UpscaleSettings = Field(UpscaleSettings(), description="the upscale step's settings")


def mask_overlaps(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The share of each box inside the mask's reach (the mask grown by a little, since a glyph mask
    is thinner than the box around what is left of it); NaN for an empty box, which no comparison
    selects."""
    reach = dilate(mask, 4) > 0
    shares = np.full(len(boxes), np.nan)
    for i, quad in enumerate(boxes):
        box = box_mask(quad[None], *mask.shape) > 0
        if box.any():
            shares[i] = np.count_nonzero(box & reach) / np.count_nonzero(box)
    return shares


def residual_boxes(boxes: np.ndarray, mask: np.ndarray, overlap: float) -> list[int]:
    """The boxes (indices) that lie at least `overlap` inside the mask's reach."""
    return [i for i, inside in enumerate(mask_overlaps(boxes, mask)) if inside >= overlap]


def share(mask: np.ndarray) -> float:
    """The share of the image a mask covers."""
    return float(np.count_nonzero(mask)) / mask.size


def fillable(mask: np.ndarray, settings: InpaintSettings) -> bool:
    """Whether inpaint takes the mask: its dilated hole within max_coverage (remove_text never
    sends one it would refuse)."""
    return float(prepare_mask(mask, mask.shape, settings.dilation).mean()) <= settings.max_coverage


def line_figures(lines: list[LineMask]) -> list[dict]:
    """The report's lines: kind, pixels painted, and the figures that decided it."""
    return [{"kind": line.kind, "pixels": int(line.mask.sum()), **line.figures} for line in lines]


class TextMask(NamedTuple):
    mask: np.ndarray  # HxW uint8, 255 = paint
    lines: list[LineMask]
    segmented: int  # lines the segmenter shaped
    read: int  # lines the recogniser read
    coverage: float  # the share of the image in the mask, or in the one before the veto if larger


async def line_masks(
    rgb: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    settings: GlyphSettings,
    segment_infer: GlyphInfer | None = None,
    read_infer: ReadInfer | None = None,
    characters: list[str] | None = None,
    reads: list[tuple[str, float]] | None = None,
) -> TextMask:
    """What remove_text paints of the detected lines: the rule's glyph masks (text_masks), the lines
    the recogniser reads as text added (read_infer; retouch.reading.judge_reads), shaped by the
    glyph segmenter (segment_infer; segment_lines), less the lines the recogniser cannot read. Its
    coverage is the shaped mask's before that last step when larger: a photo whose mask is too
    large to trust (rows of coins) stays untrusted when the recogniser drops a few of its lines.
    `reads`: the lines' readings, when the caller has them already."""
    _, lines = text_masks(rgb, boxes, scores, settings)
    reading = read_infer is not None and characters and (settings.min_read_chars or settings.promote_read_chars)
    if reads is None and reading and len(boxes):
        reads = await read_lines(rgb, boxes, read_infer, characters)
    if reads is not None:
        lines = judge_reads(lines, boxes, reads, settings, veto=False)
    segmented = len(lines_to_segment(lines, settings)) if segment_infer is not None else 0
    if segmented:
        _, lines = await segment_lines(rgb, boxes, lines, segment_infer, settings)
    shaped = paint_lines(lines, rgb.shape[:2])
    if reads is None:
        return TextMask(shaped, lines, segmented, 0, share(shaped))
    lines = judge_reads(lines, boxes, reads, settings)
    mask = paint_lines(lines, rgb.shape[:2])
    return TextMask(mask, lines, segmented, len(reads), max(share(mask), share(shaped)))


class SecondLook(NamedTuple):
    """The detector that checks remove_text's result (text_remove serves PP-OCRv6 small as
    text_detector_small): more recall than the first, and looser on texture, so it looks only where
    text was painted, and a line it finds off the mask is painted only if the recogniser reads it
    as text."""

    infer: Infer
    detector: str  # one of retouch.text.DETECTORS: its normalisation


async def missed_lines(
    out: np.ndarray,
    found: DetectionResult,
    mask: np.ndarray,
    settings: RemoveTextSettings,
    segment_infer: GlyphInfer | None,
    read_infer: ReadInfer,
    characters: list[str],
) -> tuple[TextMask | None, dict]:
    """The lines detected in the result `out` (`found`) off the painted `mask`, kept only where the
    recogniser reads them as text (the promotion rule), masked as line_masks masks the first
    look's -> (their TextMask or None, report figures)."""
    new = [i for i, inside in enumerate(mask_overlaps(found.boxes, mask)) if inside < NEW_LINE_OVERLAP]
    reads = await read_lines(out, found.boxes[new], read_infer, characters) if new else []
    judged = [(i, read) for i, read in zip(new, reads) if reads_as_text(*read, settings.mask)]
    text, kept = [i for i, _ in judged], [read for _, read in judged]
    figures = {"boxes": len(found.boxes), "new_lines": len(new), "read_as_text": len(text), "painted": False}
    if not text:
        return None, figures
    extra = await line_masks(
        out, found.boxes[text], found.scores[text], settings.mask, segment_infer, read_infer, characters, kept
    )
    figures.update(
        lines=line_figures(extra.lines),
        boxes_read_as_text=np.round(found.boxes[text], 1).tolist(),
        segmented_lines=extra.segmented,
    )
    return extra, figures


async def remove_text(
    rgb: np.ndarray,
    settings: RemoveTextSettings,
    detect_infer: Infer,
    inpaint_infer: InpaintInfer,
    object_mask: np.ndarray | None = None,
    model_size: int = MODEL_SIDE,
    segment_infer: GlyphInfer | None = None,
    read_infer: ReadInfer | None = None,
    characters: list[str] | None = None,
    second_look: SecondLook | None = None,
    **detect_options,
):
    """HxWx3 uint8 -> (result HxWx3 uint8, the mask painted HxW uint8, report figures).

    object_mask (HxW uint8, bright = remove) is removed along with the text (the `clean` chain);
    the caller checks its size. segment_infer runs the learned glyph segmenter, which shapes the
    painted lines' masks (settings.mask.box_mask, trim_px, segmenter_rescue); without it the rule's
    masks are painted. read_infer runs the text recogniser (its model's `characters`): a line it
    cannot read is left for review instead of painted (settings.mask.min_read_chars), and a line
    it reads well is painted though the rule left it (promote_read_chars). second_look runs another
    detector on the result (settings.second_look; it needs read_infer): lines it finds that the
    first did not, and that read as text, are painted too."""
    found, detection = await detect_text(rgb, settings.detect, detect_infer, **detect_options)
    mask, lines, segmented, read, text_coverage = await line_masks(
        rgb, found.boxes, found.scores, settings.mask, segment_infer, read_infer, characters
    )
    if object_mask is not None:
        mask = np.maximum(mask, np.where(object_mask > 127, 255, 0).astype(np.uint8))
    kinds = [line.kind for line in lines]
    coverage = share(mask)
    candidates = [i for i, k in enumerate(kinds) if k == "uncertain"]
    figures = {
        "detection": detection,
        "boxes": np.round(found.boxes, 1).tolist(),
        "scores": np.round(found.scores, 4).tolist(),
        "lines": line_figures(lines),
        "line_kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "candidates": candidates,
        "segmented_lines": segmented,
        "read_lines": read,
        "mask_sha256": mask_sha256(mask),
        "mask_coverage": round(coverage, 6),
        "text_coverage": round(text_coverage, 6),
        "residual_lines": 0,
    }
    too_much = ["text_coverage"] if text_coverage > settings.max_text_coverage else []
    too_much += ["coverage_over_cap"] if coverage > MAX_PAINTED_COVERAGE else []
    if not mask.any() or too_much:  # nothing to paint, or too much to trust: the photo as sent
        reasons = (["uncertain_lines"] if candidates else []) + too_much
        return (
            rgb.copy(),
            np.zeros_like(mask),
            {**figures, "outcome": "needs_review" if reasons else "no_text", "review_reasons": reasons},
        )

    out, filled = await inpaint(rgb, mask, settings.inpaint, inpaint_infer, model_size)
    reasons, repaint, ghost_lines = [], np.zeros_like(mask), 0
    # The check: with the second look, its detector finds both what is left over the mask and the
    # lines the first detector missed, in one pass.
    looking = second_look is not None and settings.second_look and read_infer is not None and bool(characters)
    check, check_options = (
        (second_look.infer, {**detect_options, "detector": second_look.detector})
        if looking
        else (detect_infer, detect_options)
    )
    again, _ = await detect_text(out, settings.detect, check, **check_options)
    residual = residual_boxes(again.boxes, mask, settings.residual_overlap)
    # Ghosts: outlines and shadows the glyph mask left (40 dev photos, glyph_dev --edits: +0.37 dB
    # pooled, residual lines 16.5 -> 14.0 %), filled in the first fill's result.
    if residual and settings.repaint_residual:
        ghosts = box_mask(again.boxes[residual], *mask.shape, dilation=2)
        if fillable(ghosts, settings.inpaint):
            repaint, ghost_lines = ghosts, len(residual)
    if looking:
        extra, looked = await missed_lines(out, again, mask, settings, segment_infer, read_infer, characters)
        both = repaint if extra is None else np.maximum(repaint, extra.mask)
        if (
            extra is not None
            and extra.mask.any()
            and text_coverage + extra.coverage <= settings.max_text_coverage
            and fillable(both, settings.inpaint)
        ):
            repaint = both
            # A line left for review that the second look paints is no longer a candidate.
            inside = mask_overlaps(found.boxes[candidates], extra.mask)
            resolved = [i for i, part in zip(candidates, inside) if part >= SETTLED_OVERLAP]
            candidates = [i for i in candidates if i not in resolved]
            looked.update(painted=True, candidates_painted=resolved)
        figures["second_look"] = {"detector": second_look.detector, **looked}
    if repaint.any():
        out, repainted = await inpaint(out, repaint, settings.inpaint, inpaint_infer, model_size)
        repainted["lines"] = ghost_lines
        mask = np.maximum(mask, repaint)
        again, _ = await detect_text(out, settings.detect, detect_infer, **detect_options)
        residual = residual_boxes(again.boxes, mask, settings.residual_overlap)
        reasons += repainted.get("review_reasons") or []
        figures.update(repaint=repainted, mask_sha256=mask_sha256(mask), mask_coverage=round(share(mask), 6))
    reasons += filled["review_reasons"] + (["residual_text"] if residual else [])
    reasons = list(dict.fromkeys((["uncertain_lines"] if candidates else []) + reasons))
    figures.update(
        candidates=candidates,
        inpaint=filled,
        residual_lines=len(residual),
        review_reasons=reasons,
        outcome="needs_review" if reasons else "accepted",
    )
    return out, mask, figures
