"""The `upscale` operation: tile, infer in batches, blend, score the seams.

Inference is injected as an async callable, so the same code runs inside Triton (BLS calls to
the upscaler models) and in-process against onnxruntime (tests and benchmarks).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import numpy as np

from retouch.errors import InvalidInput
from retouch.seams import seam_score
from retouch.settings import UpscaleSettings
from retouch.tiling import TileBlender, cut_tiles, fit_tile, plan_tiles, seam_lines

# model name -> scale; names are the model_repository folders.
UPSCALERS = {
    "upscaler_waifu2x_photo_x2": 2,
    "upscaler_animevideov3_x2": 2,
    "upscaler_animevideov3_x4": 4,
}
# (mode, scale) -> the models run one after another. waifu2x has only a x2 model: x4 is two passes.
MODEL_CHAINS = {
    ("conservative", 2): ("upscaler_waifu2x_photo_x2",),
    ("conservative", 4): ("upscaler_waifu2x_photo_x2", "upscaler_waifu2x_photo_x2"),
    ("creative", 2): ("upscaler_animevideov3_x2",),
    ("creative", 4): ("upscaler_animevideov3_x4",),
}
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000

# (model name, NCHW float32 batch) -> NCHW float32 batch at the model's scale
Infer = Callable[[str, np.ndarray], Awaitable[np.ndarray]]


def check_output_size(height: int, width: int, scale: int, max_output_pixels: int) -> None:
    out = height * width * scale * scale
    if out > max_output_pixels:
        raise InvalidInput(
            f"upscaling {width}x{height} by {scale} gives {out} pixels, over the limit of "
            f"{max_output_pixels}; send a smaller image or a lower scale"
        )


async def upscale_pass(image: np.ndarray, model: str, settings: UpscaleSettings, infer: Infer,
                       max_batch: int):
    """One model over the image, tile by tile: HxWx3 float32 -> (sH)x(sW)x3 float32, grid."""
    h, w = image.shape[:2]
    grid = plan_tiles(h, w, fit_tile(h, w, settings.tile, settings.overlap), settings.overlap)
    blender = TileBlender(grid, UPSCALERS[model], image.shape[2], settings.blend)

    async def chunk(start: int) -> None:  # cut, infer and blend one chunk: memory stays bounded
        tiles = cut_tiles(image, grid, start, start + max_batch).transpose(0, 3, 1, 2)
        upscaled = await infer(model, np.ascontiguousarray(tiles))
        blender.add(start, upscaled.transpose(0, 2, 3, 1))

    await asyncio.gather(*(chunk(i) for i in range(0, grid.count, max_batch)))
    return blender.result(), grid


async def upscale(rgb: np.ndarray, settings: UpscaleSettings, infer: Infer, max_batch: int = 8):
    """HxWx3 uint8 -> (upscaled HxWx3 uint8, report dict)."""
    image = rgb.astype(np.float32)
    image /= 255.0  # in place, same values as rgb / 255.0
    rows: list[int] = []
    cols: list[int] = []
    tiles = 0
    chain = MODEL_CHAINS[(settings.mode, settings.scale)]
    for model in chain:
        scale = UPSCALERS[model]
        image, grid = await upscale_pass(image, model, settings, infer, max_batch)
        new_rows, new_cols = seam_lines(grid, scale, settings.blend)
        # Earlier passes' borders are magnified by this pass.
        rows = [r * scale for r in rows] + new_rows
        cols = [c * scale for c in cols] + new_cols
        tiles += grid.count
    image *= 255.0  # in place: at 4K each full-size float temporary is 400 MB
    np.rint(image, out=image)
    out = np.clip(image, 0, 255, out=image).astype(np.uint8)
    score = seam_score(out, rows, cols, settings.scale)
    report = {
        "models": list(chain),
        "tiles": tiles,
        "seam_lines": len(rows) + len(cols),
        "seam_score": round(score, 4),
        "seam_over_threshold": score > settings.seam_threshold,
    }
    return out, report
