"""The operations on the server. Every one is an ensemble with the same I/O convention, so one
call path serves them all; an operation joins with an Operation, a method on Operations and a CLI
entry (cli.py).

Convention: in IMAGE (encoded bytes) or PIXELS (HxWx3 uint8), optional MASK, optional SETTINGS
(JSON); out OUTPUT_IMAGE (encoded) or OUTPUT_PIXELS (with {"format": "raw"}), REPORT (JSON), and
the operation's own outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from retouch_client.images import ImageInput


def same_size(settings: dict) -> int:
    return 1


def upscale_factor(settings: dict) -> int:
    outscale = settings.get("outscale")  # any factor from 1 to 8; overrides scale
    if isinstance(outscale, (int, float)) and outscale > 0:
        return math.ceil(outscale)
    scale = settings.get("scale", 2)  # the server's default
    return scale if isinstance(scale, int) and scale > 0 else 1


@dataclass(frozen=True)
class Operation:
    name: str  # the ensemble's model name
    outputs: tuple[str, ...] = ()  # outputs of its own (boxes, masks), returned in Result.outputs
    # Output side over input side, to size the shared-memory output region before the call.
    output_scale: Callable[[dict], int] = field(default=same_size)
    returns_image: bool = True  # False: only the report and the operation's own outputs
    output_part: str = ""  # the settings part that holds the output format, in chained operations


def clean_factor(settings: dict) -> int:
    return upscale_factor(settings.get("upscale") or {})


UPSCALE = Operation("upscale", output_scale=upscale_factor)
DETECT_TEXT = Operation("detect_text", outputs=("BOXES", "SCORES", "MASK"), returns_image=False)
INPAINT = Operation("inpaint")
REMOVE_TEXT = Operation("remove_text", outputs=("OUTPUT_MASK",))
CLEAN = Operation("clean", outputs=("OUTPUT_MASK",), output_scale=clean_factor, output_part="upscale")
OPERATIONS = (UPSCALE, DETECT_TEXT, INPAINT, REMOVE_TEXT, CLEAN)


class Operations:
    """One method per operation, shared by RetouchClient and AsyncRetouchClient (whose `call` is a
    coroutine, so there they return awaitables)."""

    def call(self, operation: Operation, image: ImageInput, mask: Optional[ImageInput] = None, /, **settings: Any):
        # `mask` (the image of what to remove) is positional only: remove_text's settings have a
        # section of that name, which reaches the server as settings.
        raise NotImplementedError

    def upscale(self, image: ImageInput, **settings: Any):
        """Upscale with blended tiles. Settings (all optional): scale (2|4), outscale (1-8, any
        factor), mode (faithful|photo|anime; conservative and creative are aliases), denoise (0-3,
        faithful), tile, overlap, margin, blend (cosine|none), alpha (model|bicubic), format
        (png|jpeg|webp), quality, keep_metadata, seam_threshold. The report echoes the effective
        settings."""
        return self.call(UPSCALE, image, **settings)

    def inpaint(self, image: ImageInput, mask: ImageInput, **settings: Any):
        """Fill the masked region (bright mask pixels = remove; a mask image, encoded bytes or an HxW
        uint8 array of the image's size). Settings (all optional): route (auto|fast|unet|telea|fsr|patchmatch),
        dilation, feather_sigma, context, max_coverage, review_coverage, the routing and gate thresholds, format,
        quality. The report carries the route, the gate figures and verdict, and the mask's sha256."""
        return self.call(INPAINT, image, mask, **settings)

    def remove_text(self, image: ImageInput, **settings: Any):
        """Erase overlaid text: detect, glyph masks, inpaint, verify. Settings (all optional): detect
        ({...}), mask ({glyph mask settings}), inpaint ({...}), residual_overlap, repaint_residual,
        max_text_coverage, format, quality. The mask painted is in Result.outputs["OUTPUT_MASK"]; the
        report's remove_text section has the boxes, scores, each line's mask kind and figures, the
        candidates left for review, gate figures, the repaint of boxes found again, residual text and
        the outcome (accepted, needs_review, no_text)."""
        return self.call(REMOVE_TEXT, image, **settings)

    def clean(self, image: ImageInput, mask: Optional[ImageInput] = None, **settings: Any):
        """Remove text (and the objects under `mask`, if given), then upscale. Settings:
        remove_text ({...}) and upscale ({...}), each as its operation takes them."""
        return self.call(CLEAN, image, mask, **settings)

    def detect_text(self, image: ImageInput, **settings: Any):
        """Find text: Result.outputs["BOXES"] ([N,4,2] float32 quads, clockwise from top-left, in
        image pixels), ["SCORES"] ([N]) and ["MASK"] (HxW uint8, 255 = text, dilated). Settings: the
        DB post-processing (thresh, box_thresh, unclip_ratio, ...) and the mask's (mask_dilation, ...)."""
        return self.call(DETECT_TEXT, image, **settings)
