"""remove_text's second look (retouch.remove_text.missed_lines on text_detector_small's boxes) with
the served ONNX models in process: of the lines off the painted mask it keeps only those the
recogniser reads as text, and leaves the lines already painted to the first look."""

import asyncio

import numpy as np
import pytest
from skimage import data
from text_scenes import make_scene

from export.eval_edits import LocalModels
from retouch.remove_text import RemoveTextSettings, missed_lines
from retouch.text import SECOND_LOOK_DETECTOR, detect_text


@pytest.fixture(scope="module")
def models():
    return LocalModels()


@pytest.fixture(scope="module")
def scene():
    return make_scene("chelsea", data.chelsea(), seed=5, layout="sparse", sizes=(20, 40), contrasts=("high",), lines=4)


def look(models, rgb, mask, settings=None):
    settings = settings or RemoveTextSettings()

    async def run():
        looker = models.second_look
        found, _ = await detect_text(rgb, settings.detect, looker.infer, detector=looker.detector)
        return await missed_lines(rgb, found, mask, settings, models.segment, models.read, models.characters)

    return asyncio.run(run())


def test_lines_off_the_mask_that_read_as_text_are_masked(models, scene):
    assert models.second_look.detector == SECOND_LOOK_DETECTOR
    extra, figures = look(models, scene.rgb, np.zeros(scene.rgb.shape[:2], np.uint8))
    assert figures["new_lines"] == figures["boxes"] >= 3
    assert extra is not None and figures["read_as_text"] == len(extra.lines) >= 3
    # each kept line read as three or more different characters at 0.9, and is masked glyph-tight
    assert all(line.figures["read_confidence"] >= 0.9 and len(set(line.figures["read"])) >= 3 for line in extra.lines)
    ink = scene.ink
    hole = extra.mask > 0
    assert (hole & ink).sum() >= 0.9 * ink.sum() and hole.sum() < 3 * ink.sum()


def test_lines_on_the_mask_are_not_looked_at_again(models, scene):
    painted = scene.ink.astype(np.uint8) * 255
    extra, figures = look(models, scene.rgb, painted)
    assert figures["boxes"] >= 3 and figures["new_lines"] == 0 and extra is None


def test_a_stricter_reading_rule_paints_nothing(models, scene):
    never = RemoveTextSettings(mask={"promote_read_chars": 0})
    extra, figures = look(models, scene.rgb, np.zeros(scene.rgb.shape[:2], np.uint8), never)
    assert figures["new_lines"] >= 3 and figures["read_as_text"] == 0 and extra is None
