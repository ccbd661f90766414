"""The recogniser's part in remove_text (retouch.reading): crops it reads upright, greedy CTC
decoding, the verdicts on painted and unpainted lines, and the exported model reading real text."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw, ImageFont

from export.text_detectors import CHARACTERS_SHA256, RECOGNIZER_SOURCE, export_recognizer
from retouch.glyphs import GlyphSettings, LineMask
from retouch.reading import (
    LINE_VERDICTS,
    READ_HEIGHT,
    characters_read,
    ctc_read,
    judge_reads,
    line_verdict,
    read_input,
    read_lines,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def one_hot(indices: list[int], classes: int = 5, p: float = 0.9) -> np.ndarray:
    probs = np.full((len(indices), classes), (1 - p) / (classes - 1), np.float32)
    probs[np.arange(len(indices)), indices] = p
    return probs


def test_ctc_merges_repeats_and_drops_blanks():
    chars = ["a", "b", "c", " "]
    probs = one_hot([0, 1, 1, 0, 1, 2, 2, 0, 4, 3])  # a a _ a b b _ ' ' c
    probs[5, 2] = 0.7
    text, confidence = ctc_read(probs, chars)
    assert text == "aab c"
    assert confidence == pytest.approx((0.9 + 0.9 + 0.7 + 0.9 + 0.9) / 5)
    assert ctc_read(one_hot([0, 0, 0]), chars) == ("", 0.0)


def test_characters_read_counts_different_symbols():
    assert characters_read("open now") == 5
    assert characters_read("0000") == characters_read("回回") == characters_read("OOOO0o") == 1
    assert characters_read("Ill1") == 1 and characters_read("C000") == characters_read("100") == 2
    assert characters_read("") == 0


def line_photo(text: str, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A line of dark text on a light photo-like ground, turned by `angle` degrees, and its quad."""
    font = ImageFont.truetype(FONT, 28)
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left + 16, bottom - top + 12
    canvas = Image.new("RGB", (w, h), (225, 215, 190))
    ImageDraw.Draw(canvas).text((8 - left, 6 - top), text, font=font, fill=(30, 30, 40))
    side = int(np.hypot(w, h)) + 20
    ground = np.full((side, side, 3), (225, 215, 190), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    ground[y0 : y0 + h, x0 : x0 + w] = np.asarray(canvas)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    rgb = cv2.warpAffine(ground, turn, (side, side), borderMode=cv2.BORDER_REPLICATE)
    corners = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float64)
    quad = corners @ turn[:, :2].T + turn[:, 2]
    return rgb, quad.astype(np.float32)


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("repo")
    meta = export_recognizer(out)
    session = ort.InferenceSession(str(out / "text_recognizer" / "1" / "model.onnx"))

    async def infer(batch):
        return session.run(None, {"INPUT": batch})[0]

    return infer, meta["characters"], out


def test_export_is_pinned_checked_and_idempotent(recognizer):
    _, characters, out = recognizer
    meta = json.loads((out / "text_recognizer" / "1" / "model.json").read_text())
    assert meta["source_sha256"] == RECOGNIZER_SOURCE.sha256 and meta["characters_sha256"] == CHARACTERS_SHA256
    assert meta["parity_max_abs_diff"] == 0.0 and meta["license"] == "Apache-2.0"
    assert len(characters) == 6905 and characters[-1] == " "
    assert export_recognizer(out).get("skipped")


@pytest.mark.parametrize("angle", [0, 20, -35, 60, -75])
def test_lines_read_upright_at_any_angle(recognizer, angle):
    """The crop is turned so the line runs left to right, whichever way round the detector's
    rectangle came out (text itself upside down is not read: docs/text.md)."""
    infer, characters, _ = recognizer
    rgb, quad = line_photo("open 2024", angle)
    x = read_input(rgb, quad)
    assert x.shape[:2] == (3, READ_HEIGHT) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
    (text, confidence), empty = asyncio.run(
        read_lines(rgb, np.stack([quad, np.zeros((4, 2), np.float32)]), infer, characters)
    )
    assert text.replace(" ", "") == "open2024" and confidence > 0.9, (text, confidence)
    assert empty == ("", 0.0)  # a degenerate quad reads as nothing


def line(kind: str, mask: np.ndarray, rescue=None) -> LineMask:
    return LineMask(kind, 10, 20, mask, {"score": 0.8}, rescue)


def test_verdicts_veto_unreadable_lines_and_promote_readable_ones():
    settings = GlyphSettings()  # min 2 different characters at 0.5; promoted from 3 at 0.9
    window = np.zeros((30, 60), bool)
    painted = window.copy()
    painted[10:20, 5:50] = True
    quad = np.array([[25, 15], [75, 15], [75, 35], [25, 35]], np.float32)  # in image pixels
    clean = window.copy()
    clean[12:18, 10:40] = True
    lines = [
        line("glyph", painted),  # reads as text: kept
        line("glyph", painted),  # a row of icons: one symbol, left for review
        line("box", painted),  # reads too unsure: left for review
        line("texture", window),  # unsure to the rule, sure to the recogniser: painted as its box
        line("uncertain", window, rescue=("glyph", clean)),  # ...as its clean glyph split
        line("texture", window),  # a few odd characters: stays texture
    ]
    reads = [("sale", 0.95), ("回回", 0.97), ("ab", 0.4), ("open now", 0.97), ("street", 0.92), ("ab", 0.99)]
    judged = judge_reads(lines, np.stack([quad] * 6), reads, settings)
    assert [j.kind for j in judged] == ["glyph", "uncertain", "uncertain", "box", "glyph", "texture"]
    assert judged[0].mask is painted and judged[0].figures["read"] == "sale"
    assert not judged[1].mask.any() and judged[1].figures["reason"].startswith("unreadable: 1 different characters")
    box = judged[3].mask
    assert box[5:25, 5:55].all() and not box[:3].any()  # the quad (rows 5-25 of the window), grown 2 px
    assert judged[3].figures["reason"].startswith("read as text")
    assert judged[4].mask is clean
    assert all(j.figures["read_confidence"] == r[1] for j, r in zip(judged, reads))
    off = GlyphSettings(min_read_chars=0, promote_read_chars=0)
    assert [j.kind for j in judge_reads(lines, np.stack([quad] * 6), reads, off)] == [ln.kind for ln in lines]


def test_line_verdicts_name_what_became_of_each_line():
    settings = GlyphSettings()
    window = np.zeros((30, 60), bool)
    painted = window.copy()
    painted[10:20, 5:50] = True
    quad = np.array([[25, 15], [75, 15], [75, 35], [25, 35]], np.float32)
    lines = [line("glyph", painted), line("glyph", painted), line("texture", window), line("uncertain", window)]
    lines[3].figures["reason"] = "unclean split"
    reads = [("sale", 0.95), ("回回", 0.97), ("open now", 0.97), ("ab", 0.3)]
    judged = judge_reads(lines, np.stack([quad] * 4), reads, settings)
    verdicts = [line_verdict(j.kind, j.figures.get("reason")) for j in judged]
    assert verdicts == ["painted", "unreadable", "read_as_text", "uncertain"]
    assert set(verdicts) | {"texture"} == set(LINE_VERDICTS)
    assert line_verdict("texture", "no letters") == "texture"
