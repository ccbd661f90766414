"""The `remove_text` operation: detect -> glyph masks -> inpaint -> verify.

Nothing is painted unless it is text. Each detected line is segmented into glyphs
(retouch.glyphs): lines that split cleanly are painted with their glyph mask; lines that look like
texture are left alone; lines that may be text but do not split cleanly are left alone too and
make the outcome `needs_review` (the report lists them as candidates). Verification runs the
detector again on the result: a box found again over the painted mask is residual text (the
ghost of an outline or a shadow the glyph mask left); its whole box is painted once more
(`repaint_residual`), and whatever is found after that is reported.

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
from retouch.inpaint import MODEL_SIDE, InpaintInfer, InpaintSettings, inpaint, mask_sha256
from retouch.morphology import dilate
from retouch.reading import ReadInfer, judge_reads, read_lines
from retouch.settings import Float, OutputSettings, Settings, UpscaleSettings
from retouch.text import DetectSettings, Infer, box_mask, detect_text

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


def residual_boxes(boxes: np.ndarray, mask: np.ndarray, overlap: float) -> list[int]:
    """The boxes (indices) that lie at least `overlap` inside the mask's reach (the mask grown by a
    little, since a glyph mask is thinner than the box around what is left of it)."""
    reach = dilate(mask, 4) > 0
    found = []
    for i, quad in enumerate(boxes):
        box = box_mask(quad[None], *mask.shape) > 0
        if box.any() and np.count_nonzero(box & reach) / np.count_nonzero(box) >= overlap:
            found.append(i)
    return found


def share(mask: np.ndarray) -> float:
    """The share of the image a mask covers."""
    return float(np.count_nonzero(mask)) / mask.size


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
) -> TextMask:
    """What remove_text paints of the detected lines: the rule's glyph masks (text_masks), the lines
    the recogniser reads as text added (read_infer; retouch.reading.judge_reads), shaped by the
    glyph segmenter (segment_infer; segment_lines), less the lines the recogniser cannot read. Its
    coverage is the shaped mask's before that last step when larger: a photo whose mask is too
    large to trust (rows of coins) stays untrusted when the recogniser drops a few of its lines."""
    _, lines = text_masks(rgb, boxes, scores, settings)
    reading = read_infer is not None and characters and (settings.min_read_chars or settings.promote_read_chars)
    reads = await read_lines(rgb, boxes, read_infer, characters) if reading and len(boxes) else None
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
    **detect_options,
):
    """HxWx3 uint8 -> (result HxWx3 uint8, the mask painted HxW uint8, report figures).

    object_mask (HxW uint8, bright = remove) is removed along with the text (the `clean` chain);
    the caller checks its size. segment_infer runs the learned glyph segmenter, which shapes the
    painted lines' masks (settings.mask.box_mask, trim_px, segmenter_rescue); without it the rule's
    masks are painted. read_infer runs the text recogniser (its model's `characters`): a line it
    cannot read is left for review instead of painted (settings.mask.min_read_chars), and a line
    it reads well is painted though the rule left it (promote_read_chars)."""
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
        "lines": [{"kind": line.kind, "pixels": int(line.mask.sum()), **line.figures} for line in lines],
        "line_kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "candidates": candidates,
        "segmented_lines": segmented,
        "read_lines": read,
        "mask_sha256": mask_sha256(mask),
        "mask_coverage": round(coverage, 6),
        "text_coverage": round(text_coverage, 6),
        "residual_lines": 0,
    }
    reasons = ["uncertain_lines"] if candidates else []
    too_much = ["text_coverage"] if text_coverage > settings.max_text_coverage else []
    too_much += ["coverage_over_cap"] if coverage > MAX_PAINTED_COVERAGE else []
    if not mask.any() or too_much:  # nothing to paint, or too much to trust: the photo as sent
        reasons += too_much
        return (
            rgb.copy(),
            np.zeros_like(mask),
            {**figures, "outcome": "needs_review" if reasons else "no_text", "review_reasons": reasons},
        )

    out, filled = await inpaint(rgb, mask, settings.inpaint, inpaint_infer, model_size)
    again, _ = await detect_text(out, settings.detect, detect_infer, **detect_options)
    residual = residual_boxes(again.boxes, mask, settings.residual_overlap)
    # Ghosts: outlines and shadows the glyph mask left (40 dev photos, glyph_dev --edits: +0.37 dB
    # pooled, residual lines 16.5 -> 14.0 %), filled in the first fill's result.
    ghosts = (
        box_mask(again.boxes[residual], *mask.shape, dilation=2) if residual and settings.repaint_residual else None
    )
    if ghosts is not None and share(ghosts) <= settings.inpaint.max_coverage:
        out, repainted = await inpaint(out, ghosts, settings.inpaint, inpaint_infer, model_size)
        repainted["lines"] = len(residual)
        mask = np.maximum(mask, ghosts)
        again, _ = await detect_text(out, settings.detect, detect_infer, **detect_options)
        residual = residual_boxes(again.boxes, mask, settings.residual_overlap)
        reasons += repainted.get("review_reasons") or []
        figures.update(repaint=repainted, mask_sha256=mask_sha256(mask), mask_coverage=round(share(mask), 6))
    reasons += filled["review_reasons"] + (["residual_text"] if residual else [])
    reasons = list(dict.fromkeys(reasons))
    figures.update(
        inpaint=filled,
        residual_lines=len(residual),
        review_reasons=reasons,
        outcome="needs_review" if reasons else "accepted",
    )
    return out, mask, figures
