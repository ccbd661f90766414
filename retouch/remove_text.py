"""The `remove_text` operation: detect -> refine the mask -> inpaint -> verify.

Verification runs the detector again on the result: a box found again where the mask was is
residual text. The outcome is one of
- no_text: nothing was detected; the image comes back unchanged;
- fallback: the detector was not confident enough to trust an inpainting; the region is blurred;
- accepted: inpainted, the gate accepted and no text remains;
- needs_review: inpainted, but the gate or the residual check wants a human to look.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from retouch.inpaint import InpaintInfer, InpaintSettings, feather, inpaint, mask_sha256
from retouch.settings import check_output, in_range
from retouch.text import DetectSettings, Infer, detect_text


@dataclass(frozen=True)
class RemoveTextSettings:
    detect: DetectSettings = DetectSettings()
    # The detector's mask is already dilated (detect.mask_dilation); inpaint adds none by default.
    # Captions and signs cover more of a photo than a typical object mask: a higher coverage limit.
    inpaint: InpaintSettings = InpaintSettings(max_coverage=0.25)
    min_confidence: float = 0.6  # below this best box score the region is blurred, not inpainted
    residual_overlap: float = 0.5  # a re-detected box this much inside the mask is residual text
    blur_sigma: float = 8.0  # the fallback's Gaussian blur
    format: str = "png"
    quality: int = 95
    keep_metadata: bool = True  # ICC profile and EXIF of the input into the output

    def validate(self) -> None:
        in_range("min_confidence", self.min_confidence, 0.0, 1.0)
        in_range("residual_overlap", self.residual_overlap, 0.0, 1.0)
        in_range("blur_sigma", self.blur_sigma, 0.5, 64.0)
        check_output(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def blur_region(rgb: np.ndarray, hole: np.ndarray, sigma: float, feather_sigma: float) -> np.ndarray:
    """The conservative fallback: the masked region blurred, blended in with a feathered edge."""
    alpha = feather(hole, feather_sigma)[..., None]
    blurred = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma)
    out = np.clip(np.rint(rgb * (1 - alpha) + blurred * alpha), 0, 255).astype(np.uint8)
    out[alpha[..., 0] == 0] = rgb[alpha[..., 0] == 0]
    return out


def residual_boxes(boxes: np.ndarray, mask: np.ndarray, overlap: float) -> int:
    """How many boxes lie at least `overlap` inside the mask."""
    count = 0
    for quad in boxes:
        box = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(box, [np.round(quad).astype(np.int32)], 1)
        inside = np.count_nonzero(box & (mask > 0))
        if box.any() and inside / np.count_nonzero(box) >= overlap:
            count += 1
    return count


async def remove_text(rgb: np.ndarray, settings: RemoveTextSettings, detect_infer: Infer,
                      inpaint_infer: InpaintInfer, object_mask: np.ndarray | None = None,
                      model_size: int = 256, **detect_options):
    """HxWx3 uint8 -> (result HxWx3 uint8, the mask used HxW uint8, report figures).

    object_mask (HxW uint8, bright = remove) is removed along with the text (the `clean` chain)."""
    found, detection = await detect_text(rgb, settings.detect, detect_infer, **detect_options)
    mask = found.mask
    if object_mask is not None:
        mask = np.maximum(mask, np.where(object_mask > 127, 255, 0).astype(np.uint8))
    figures = {"detection": detection, "boxes": np.round(found.boxes, 1).tolist(),
               "scores": np.round(found.scores, 4).tolist(), "mask_sha256": mask_sha256(mask),
               "mask_coverage": round(float(np.count_nonzero(mask)) / mask.size, 6)}
    if not mask.any():
        return rgb.copy(), mask, {**figures, "outcome": "no_text", "residual_lines": 0}
    confident = object_mask is not None or float(found.scores.max(initial=0.0)) >= settings.min_confidence
    if not confident:
        out = blur_region(rgb, mask > 0, settings.blur_sigma, settings.inpaint.feather_sigma)
        return out, mask, {**figures, "outcome": "fallback", "fallback": "blur", "residual_lines": None}

    out, filled = await inpaint(rgb, mask, settings.inpaint, inpaint_infer, model_size)
    again, _ = await detect_text(out, settings.detect, detect_infer, **detect_options)
    residual = residual_boxes(again.boxes, mask, settings.residual_overlap)
    accepted = filled["verdict"] == "accepted" and residual == 0
    figures.update(inpaint=filled, residual_lines=residual,
                   outcome="accepted" if accepted else "needs_review")
    return out, mask, figures
