"""The `upscale` operation: tile, infer in batches, blend, score the seams; alpha and 16-bit
values go through too, and any output scale from 1 to 8.

Inference is injected as an async callable, so the same code runs inside Triton (BLS calls to
the upscaler models) and in-process against onnxruntime (tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import numpy as np
from PIL import Image

from retouch.codecs import merge_deep
from retouch.errors import InvalidInput
from retouch.seams import seam_score
from retouch.settings import UpscaleSettings
from retouch.tiling import TileBlender, cut_tiles, fit_tile, plan_tiles, seam_lines

# model name -> scale; names are the model_repository folders.
UPSCALERS = {
    "upscaler_waifu2x_photo_x2": 2,
    "upscaler_waifu2x_photo_x2_denoise1": 2,
    "upscaler_waifu2x_photo_x2_denoise2": 2,
    "upscaler_waifu2x_photo_x2_denoise3": 2,
    "upscaler_realesrgan_x4plus": 4,
    "upscaler_animevideov3_x2": 2,
    "upscaler_animevideov3_x4": 4,
}
# Each mode's models by native scale; scales beyond them chain passes (waifu2x has only x2).
MODE_MODELS = {
    "faithful": {2: "upscaler_waifu2x_photo_x2"},
    "photo": {4: "upscaler_realesrgan_x4plus"},
    "anime": {2: "upscaler_animevideov3_x2", 4: "upscaler_animevideov3_x4"},
}
DENOISE_MODELS = {n: f"upscaler_waifu2x_photo_x2_denoise{n}" for n in (1, 2, 3)}
MAX_SCALE = 8
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000

# (model name, NCHW float32 batch) -> NCHW float32 batch at the model's scale
Infer = Callable[[str, np.ndarray], Awaitable[np.ndarray]]


def model_chain(mode: str, target: float, denoise: int = 0) -> tuple[str, ...]:
    """The models run one after another: the fewest passes whose scale reaches `target`, the
    mode's own model first. Past the mode's largest native scale, waifu2x x2 passes follow (a
    faithful x2 on an already sharp image; photo x8 = x4plus then waifu2x x2)."""
    models = MODE_MODELS[mode]
    native = sorted(models)
    first = next((s for s in native if s >= target), native[-1])
    chain = [models[first]]
    scale = first
    while scale < target - 1e-9:
        extra = models.get(2, MODE_MODELS["faithful"][2])
        chain.append(extra)
        scale *= 2
    if denoise:
        chain[0] = DENOISE_MODELS[denoise]  # only faithful has denoise models (settings check it)
    return tuple(chain)


def chain_scale(chain: tuple[str, ...]) -> int:
    return math.prod(UPSCALERS[m] for m in chain)


def output_size(height: int, width: int, settings: UpscaleSettings) -> tuple[int, int]:
    factor = settings.outscale or settings.scale
    return max(1, round(height * factor)), max(1, round(width * factor))


def check_output_size(height: int, width: int, settings: UpscaleSettings, max_output_pixels: int) -> None:
    """Refuse what the chain would make too big (its native scale is at least the output's)."""
    r = settings.resolved()
    s = chain_scale(model_chain(r.mode, r.outscale or r.scale, r.denoise))
    out = height * width * s * s
    if out > max_output_pixels:
        raise InvalidInput(
            f"upscaling {width}x{height} by {s} (the model chain's scale) gives {out} pixels, over the limit "
            f"of {max_output_pixels}; send a smaller image or a lower scale"
        )


async def upscale_pass(image: np.ndarray, model: str, settings: UpscaleSettings, infer: Infer, max_batch: int):
    """One model over the image, tile by tile: HxWx3 float32 -> (sH)x(sW)x3 float32, grid.

    The tile side is fitted to the image (tiling.fit_tile): no more tiles than the full side needs,
    spread evenly, so an image that fits in one tile gets a tile shrunk to it (in steps of 16 px, so
    small requests still share a few shapes): padding a 40 px image to RRDBNet's 160 px tile would
    cost 16x. Tiles are cut, inferred and blended chunk by chunk (TileBlender), so a large image
    never holds all of its upscaled tiles at once."""
    h, w = image.shape[:2]
    overlap = settings.overlap if max(h, w) > settings.tile else 0  # one tile: nothing to share
    grid = plan_tiles(h, w, fit_tile(h, w, settings.tile, overlap), overlap)
    blender = TileBlender(grid, UPSCALERS[model], image.shape[2], settings.blend, settings.margin)

    async def chunk(start: int) -> None:  # cut, infer and blend one chunk: memory stays bounded
        tiles = cut_tiles(image, grid, start, start + max_batch).transpose(0, 3, 1, 2)
        upscaled = await infer(model, np.ascontiguousarray(tiles))
        blender.add(start, upscaled.transpose(0, 2, 3, 1))

    await asyncio.gather(*(chunk(i) for i in range(0, grid.count, max_batch)))
    return blender.result(), grid


async def run_chain(image: np.ndarray, chain: tuple[str, ...], settings: UpscaleSettings, infer: Infer, max_batch: int):
    """HxWx3 float32 through every model of the chain: (image, seam rows, seam cols, tiles)."""
    rows: list[int] = []
    cols: list[int] = []
    tiles = 0
    for model in chain:
        scale = UPSCALERS[model]
        image, grid = await upscale_pass(image, model, settings, infer, max_batch)
        new_rows, new_cols = seam_lines(grid, scale, settings.blend, settings.margin)
        # Earlier passes' borders are magnified by this pass.
        rows = [r * scale for r in rows] + new_rows
        cols = [c * scale for c in cols] + new_cols
        tiles += grid.count
    return image, rows, cols, tiles


def resize(image: np.ndarray, height: int, width: int, resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """HxW[xC] float32 -> height x width, channel by channel. Pillow's Lanczos (and bicubic)
    widen their kernel when shrinking: antialiased, like Real-ESRGAN's --outscale resize."""
    if image.shape[:2] == (height, width):
        return image
    planes = image[..., None] if image.ndim == 2 else image
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(planes[..., c]), "F").resize((width, height), resample), np.float32
            )
            for c in range(planes.shape[2])
        ],
        axis=2,
    )
    return out[..., 0] if image.ndim == 2 else out


def quantise(image: np.ndarray, levels: int, dtype) -> np.ndarray:
    q = np.clip(image, 0.0, 1.0)  # the one full-size temporary (at 4K each is 400 MB): scaled and
    q *= levels  # rounded in place, same values as rint(clip(image) * levels)
    np.rint(q, out=q)
    return q.astype(dtype)


async def upscale(
    rgb: np.ndarray,
    settings: UpscaleSettings,
    infer: Infer,
    max_batch: int = 8,
    deep: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
):
    """HxWx3 uint8 -> (HxWx3 uint8, figures (the report section's, retouch.reports.UpscaleFigures, and
    the models run), deep or None, alpha or None) at the output size.

    deep: HxWx3 uint16 values of the input (16-bit sources): the models take float input, so they
    run on these instead of the 8-bit pixels and the result comes back at 16 bits too. Pixels an
    earlier step changed (clean's inpainting) are taken from `rgb` (codecs.merge_deep).
    alpha: HxW uint16; upscaled on its own: through the same models (as grey), or resized
    bicubic when it is flat or settings.alpha is "bicubic" (Real-ESRGAN's two alpha upsamplers).
    """
    settings = settings.resolved()
    target = settings.outscale or settings.scale
    chain = model_chain(settings.mode, target, settings.denoise)
    native = chain_scale(chain)
    h, w = rgb.shape[:2]
    out_h, out_w = output_size(h, w, settings)
    if deep is not None:
        image = merge_deep(rgb, deep).astype(np.float32) / 65535.0
    else:
        image = rgb.astype(np.float32)
        image /= 255.0  # in place, same values as rgb / 255.0
    image, rows, cols, tiles = await run_chain(image, chain, settings, infer, max_batch)
    native_u8 = quantise(image, 255, np.uint8)
    score = seam_score(native_u8, rows, cols, native)
    image = resize(image, out_h, out_w)
    out = native_u8 if (out_h, out_w) == (h * native, w * native) else quantise(image, 255, np.uint8)
    out_deep = quantise(image, 65535, np.uint16) if deep is not None else None
    out_alpha = alpha_how = None
    if alpha is not None:
        a = alpha.astype(np.float32) / 65535.0
        if settings.alpha == "model" and alpha.min() != alpha.max():
            up, _, _, alpha_tiles = await run_chain(
                np.repeat(a[..., None], 3, axis=2), chain, settings, infer, max_batch
            )
            tiles += alpha_tiles
            a, alpha_how = resize(up.mean(axis=2), out_h, out_w), "model"
        else:
            a = resize(a, out_h, out_w, Image.Resampling.BICUBIC)
            alpha_how = "flat" if alpha.min() == alpha.max() else "bicubic"
        out_alpha = quantise(a, 65535, np.uint16)
    figures = {
        "models": list(chain),
        "chain_scale": native,
        "output_scale": target,
        "resized": f"{w * native}x{h * native} -> {out_w}x{out_h} (Lanczos)" if native != target else None,
        "tiles": tiles,
        "seam_lines": len(rows) + len(cols),
        "seam_score": round(score, 4),
        "seam_over_threshold": score > settings.seam_threshold,
        "bits": 16 if deep is not None else 8,
        "alpha": alpha_how,
    }
    return out, figures, out_deep, out_alpha
