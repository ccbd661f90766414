"""Reading detected lines: does a line hold characters at all?

The rule (retouch.glyphs) decides from colours and shapes, and rows of like shapes on a flat ground
(app icons, buttons, coins) pass it. A text recogniser (PP-OCRv6 tiny, CTC) reads every detected
line. A line the rule would paint that does not read as at least `min_read_chars` different
characters at a mean confidence of `min_read_confidence` is left for review; a line the rule left
alone that reads as `promote_read_chars` or more at `promote_read_confidence` is painted. On the
three dev sets every caption line the rule paints reads at 0.58 or more and rows of icons as one or
two odd symbols under 0.6 (docs/text.md, "From boxes to glyphs", 9).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from retouch.batching import in_width_batches
from retouch.glyphs import GlyphSettings, LineMask, line_crop, quad_mask
from retouch.morphology import dilate

READ_HEIGHT = 48  # px: the recogniser's input height (PP-OCR's rec_image_shape 3x48xW)
READ_WIDTH_STEP = 64  # crop widths are padded up to a multiple of this, so alike lines share a batch
MAX_READ_WIDTH = 2048  # px: a longer line is squeezed to this width
RECOGNIZER = "text_recognizer"  # the served model (export/text_detectors.py)
PAINTED = ("glyph", "box")  # the line kinds whose mask is painted
# What became of a detected line (the retouch_text_lines_total metric's `verdict`; line_verdict).
LINE_VERDICTS = ("painted", "read_as_text", "unreadable", "uncertain", "texture")
READ_AS_TEXT, UNREADABLE = "read as text", "unreadable"  # how judge_reads' reasons begin

# [N, 3, READ_HEIGHT, W] float32 -> [N, T, C] float32 character probabilities (index 0: CTC blank)
ReadInfer = Callable[[np.ndarray], Awaitable[np.ndarray]]


def read_input(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
    """One line as the recogniser takes it: the quad rectified to READ_HEIGHT (no margin: DB's unclip
    already leaves one), BGR, scaled to [-1, 1] as PaddleOCR does; 3 x READ_HEIGHT x W float32, or
    None for a degenerate quad."""
    crop = line_crop(quad, rgb.shape[:2], READ_HEIGHT, margin=(0.0, 0.0))
    if crop is None:
        return None
    pixels = crop.cut(rgb)
    if crop.to_image[0, 0] < 0:  # the crop runs right to left: turn it so the text reads upright
        pixels = pixels[::-1, ::-1]
    if crop.width > MAX_READ_WIDTH:
        pixels = cv2.resize(pixels, (MAX_READ_WIDTH, READ_HEIGHT), interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1), np.float32)
    return bgr * np.float32(2.0 / 255.0) - np.float32(1.0)


def ctc_read(probs: np.ndarray, characters: list[str]) -> tuple[str, float]:
    """Greedy CTC decoding of one line's [T, C] probabilities: repeats merged, blanks (index 0)
    dropped -> (text, mean probability of the characters kept; 0 when none)."""
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(characters[i - 1] if i - 1 < len(characters) else "" for i in best[keep])
    return text, float(probs.max(axis=1)[keep].mean())


async def read_lines(
    rgb: np.ndarray, boxes: np.ndarray, infer: ReadInfer, characters: list[str], max_batch: int = 8
) -> list[tuple[str, float]]:
    """Each quad's text and confidence (("", 0.0) for a degenerate one). Lines of one padded width go
    out as one batch (chunks of max_batch, concurrently); padding is 0, mid-grey, as PaddleOCR pads."""
    out = await in_width_batches(infer, [read_input(rgb, q) for q in boxes], READ_WIDTH_STEP, max_batch)
    return [("", 0.0) if probs is None else ctc_read(probs, characters) for probs in out]


def read_characters(repository: Path) -> list[str]:
    """The characters of the served recogniser's classes (1 onwards), from its model.json in a
    model repository."""
    return json.loads((Path(repository) / RECOGNIZER / "1" / "model.json").read_text())["characters"]


# Characters of one shape: a row of rings or squares reads as any mix of them ('OOO0', '0o').
SAME_SHAPE = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l"})


def characters_read(text: str) -> int:
    """How many different characters a reading holds, spaces aside, case and the digits that look
    like letters (0 and O, 1 and l) folded: one symbol repeated (a row of buttons read as '0000' or
    'OOO0', of icons as '回回') counts once."""
    return len(set(text.replace(" ", "").casefold().translate(SAME_SHAPE)))


def reads_as_text(text: str, confidence: float, settings: GlyphSettings) -> bool:
    """Whether a reading is text beyond doubt: at least promote_read_chars different characters
    (0: never) at promote_read_confidence. Such a line is painted though the glyph rule left it."""
    chars = characters_read(text)
    return 0 < settings.promote_read_chars <= chars and confidence >= settings.promote_read_confidence


def judge_reads(
    lines: list[LineMask],
    boxes: np.ndarray,
    reads: list[tuple[str, float]],
    settings: GlyphSettings,
    veto: bool = True,
) -> list[LineMask]:
    """Every line with what the recogniser read in it (figures `read`, `read_confidence`), and its
    verdict: a line about to be painted (`glyph`, `box`) that reads fewer than min_read_chars
    characters or under min_read_confidence becomes `uncertain`, nothing painted; a line the rule
    left alone (`uncertain`, `texture`) that reads at least promote_read_chars characters at
    promote_read_confidence or more is text after all, painted as its rescue mask (a clean glyph
    split) or its box grown 2 px (a `box` line, which the segmenter then shapes). `veto` False: only
    the promotions."""
    judged = []
    for quad, line, (text, confidence) in zip(boxes, lines, reads):
        chars = characters_read(text)
        figures = {**line.figures, "read": text, "read_confidence": round(confidence, 4)}
        said = f"{chars} different characters at confidence {confidence:.2f}"
        unreadable = chars < settings.min_read_chars or confidence < settings.min_read_confidence
        if line.kind in PAINTED and veto and settings.min_read_chars > 0 and unreadable:
            empty = np.zeros_like(line.mask)
            line = LineMask("uncertain", line.y0, line.x0, empty, {**figures, "reason": f"{UNREADABLE}: {said}"})
        elif line.kind not in PAINTED and line.mask.size and reads_as_text(text, confidence, settings):
            kind, pixels = line.rescue or ("box", dilate(quad_mask(quad, line.y0, line.x0, line.mask.shape) > 0, 2))
            line = LineMask(kind, line.y0, line.x0, pixels, {**figures, "reason": f"{READ_AS_TEXT}: {said}"})
        else:
            line = replace(line, figures=figures)
        judged.append(line)
    return judged


def line_verdict(kind: str, reason: str | None) -> str:
    """One of LINE_VERDICTS for a report line (its `kind` and `reason`)."""
    reason = reason or ""
    if kind in PAINTED:
        return "read_as_text" if reason.startswith(READ_AS_TEXT) else "painted"
    if kind == "uncertain":
        return "unreadable" if reason.startswith(UNREADABLE) else "uncertain"
    return "texture"
