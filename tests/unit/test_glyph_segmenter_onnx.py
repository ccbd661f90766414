"""The learned glyph segmenter exported to ONNX (export/glyph_segmenters.py): the same numbers as
PyTorch, and, with the committed weights, masks that follow real rendered text (DejaVu, a face of
its training fonts, on a photo it never saw)."""
import cv2
import numpy as np
import onnxruntime as ort
import torch
from skimage import data

from export.glyph_segmenters import NAME, Probabilities, export, load_net
from retouch.glyphs import crop_input, learned_line_mask, line_crop
from text_scenes import make_scene

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
        prob = session.run(None, {"INPUT": x})[0][0, 0, :, :crop.width]
        with torch.no_grad():
            expected = Probabilities(load_net())(torch.from_numpy(x)).numpy()[0, 0, :, :crop.width]
        assert np.abs(prob - expected).max() < 1e-5
        mask = learned_line_mask(crop, prob, THRESHOLD, MIN_CONFIDENCE)
        assert mask.kind == "glyph"
        h_, w_ = mask.mask.shape
        painted[mask.y0:mask.y0 + h_, mask.x0:mask.x0 + w_] |= mask.mask
    ink = np.any([line.ink for line in scene.lines], axis=0)
    region = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    assert (painted & ink).sum() / ink.sum() > 0.9
    assert (painted & region).sum() / painted.sum() > 0.85  # glyphs, not the box
