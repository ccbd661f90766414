"""make eval's and glyph_dev's in-process models: the served detector, or another one by name."""

import json
from pathlib import Path

import numpy as np
from skimage import data
from text_scenes import make_scene, score

from export.eval_edits import LocalModels
from retouch.text import DetectSettings

SERVED = Path(__file__).resolve().parents[2] / "model_repository" / "text_detector" / "1" / "model.json"


def test_local_models_run_the_served_detector_or_another_by_name():
    scene = make_scene("chelsea", data.chelsea(), seed=5, layout="sparse", sizes=(20, 40), contrasts=("high",), lines=4)
    served, small = LocalModels(), LocalModels(detector_name="ppocrv6_small")
    assert served.detector == json.loads(SERVED.read_text())["detector"]
    assert small.detector == "ppocrv6_small"
    boxes = []
    for models in (served, small):
        found, figures = models.detect_text(scene.rgb)
        assert figures["detector"] == models.detector
        result = score(scene, found.boxes, found.mask, DetectSettings().mask_dilation)
        assert result.lines >= 3 and result.found == result.lines, result.missed
        boxes.append(found.boxes)
    # the named graph is the one that ran: the two detectors' boxes differ
    assert served.detector == "ppocrv6_small" or not np.array_equal(*boxes)
