"""The segmenter evaluation's own arithmetic (export/eval_glyph_segmenter.py): the operating point
it picks on validation crops and the figures it gives a painted mask."""

from types import SimpleNamespace

import numpy as np
import pytest

from export.eval_glyph_segmenter import measure, operating_point


def crop(ink: bool, scene: int = 1) -> dict:
    label = np.zeros((48, 64), np.uint8)
    if ink:
        label[20:28, 8:56:4] = 255
    box = np.zeros((48, 64), np.uint8)
    box[12:36, 4:60] = 255
    return {"image": np.zeros((48, 64, 3), np.uint8), "box": box, "label": label, "ink": ink, "scene": scene}


def test_operating_point_takes_the_best_f2_threshold_and_gates_text_free_boxes():
    val = [crop(True) for _ in range(3)] + [crop(False, scene=0) for _ in range(4)]

    def probs(inputs):  # certain on the ink, 0.3 on the rest of the box: thresholds >= 0.3 are exact
        return [np.where(x[3] > 0, 0.3, 0.0) + 0.6 * (x[0] > 0) for x in inputs]

    for c in val:
        c["image"][..., 0] = c["label"]  # the fake net reads ink from the red channel
    point = operating_point(probs, val)
    assert point["threshold"] >= 0.3 and point["recall"] == 1.0 and point["precision"] == 1.0
    assert point["val_ink_crops_passing_gate"] == 1.0  # text-free boxes have no pixel over 0.5


def test_measure_scores_a_mask_against_the_true_ink():
    photo = np.full((40, 60, 3), 120, np.uint8)
    ink = np.zeros((40, 60), bool)
    ink[18:22, 10:50] = True
    rgb = photo.copy()
    rgb[ink] = 250
    scene = SimpleNamespace(ink=ink, rgb=rgb, photo=photo, lines=[SimpleNamespace(ink=ink)])
    exact = measure(scene, ink.copy())
    assert exact["recall"] == 1.0 and exact["precision"] == 1.0 and exact["psnr"] > 40
    half = ink.copy()
    half[:, 30:] = False
    partial = measure(scene, half)
    assert partial["recall"] == pytest.approx(0.5) and partial["psnr"] < exact["psnr"]
    assert partial["lines"] == [pytest.approx(0.5)]
