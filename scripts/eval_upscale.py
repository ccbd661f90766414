"""Upscaling quality table: each mode at x2 and x4 on downscaled scikit-image photos, denoise on
JPEG-damaged ones, and tiled vs untiled at each mode's default tiling. Writes docs/upscale_quality.md.

    .venv/bin/python scripts/eval_upscale.py [--out docs/upscale_quality.md] [--no-tiling]

Runs the served ONNX files (model_repository/*/1/model.onnx) in-process with onnxruntime through
retouch.upscale, the code upscale_tiles runs; no server needed. Figures are medians over photos.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.common import ort_session  # noqa: E402
from retouch.seams import seam_score  # noqa: E402
from retouch.settings import MODE_TILING, UpscaleSettings, parse_settings  # noqa: E402
from retouch.tiling import fit_tile, plan_tiles, seam_lines  # noqa: E402
from retouch.upscale import UPSCALERS, upscale  # noqa: E402

# 128x128 high-resolution crops of scikit-image photos (not opencv-doc); x2 and x4 inputs are
# 64x64 and 32x32 after an antialiased bicubic downscale.
PHOTOS = {
    "astronaut": lambda: data.astronaut()[30:158, 170:298],
    "coffee": lambda: data.coffee()[150:278, 200:328],
    "chelsea": lambda: data.chelsea()[60:188, 150:278],
    "rocket": lambda: data.rocket()[120:248, 200:328],
    "immunohistochemistry": lambda: data.immunohistochemistry()[200:328, 200:328],
}
SESSIONS: dict[str, object] = {}


async def infer(model: str, batch: np.ndarray) -> np.ndarray:
    if model not in SESSIONS:
        SESSIONS[model] = ort_session(str(ROOT / "model_repository" / model / "1" / "model.onnx"))
    return SESSIONS[model].run(None, {"INPUT": batch})[0]


def resize(img: np.ndarray, h: int, w: int, method) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), method))


def run(rgb: np.ndarray, **settings):
    s = parse_settings(UpscaleSettings, settings)
    t0 = time.perf_counter()
    out, report, _, _ = asyncio.run(upscale(rgb, s, infer, max_batch=1))
    return out, report, time.perf_counter() - t0


def grad_energy(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    return float(np.mean(np.hypot(np.diff(g, axis=0)[:, :-1], np.diff(g, axis=1)[:-1])))


def model_costs(side: int = 64, repeats: int = 2) -> dict[str, float]:
    """Seconds per input megapixel of each served model: median of timed calls on a side x side
    input (after a warm-up call)."""
    x = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    costs = {}
    for model in UPSCALERS:
        asyncio.run(infer(model, x))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            asyncio.run(infer(model, x))
            times.append(time.perf_counter() - t0)
        costs[model] = statistics.median(times) / (side * side / 1e6)
        print(f"{model}: {costs[model]:.0f} s per input MP", flush=True)
    return costs


def chain_cost(chain: tuple[str, ...], costs: dict[str, float]) -> float:
    """Model seconds per input MP of a chain: each pass costs its model's figure times its input area."""
    total, area = 0.0, 1.0
    for model in chain:
        total += costs[model] * area
        area *= UPSCALERS[model] ** 2
    return total


def quality_rows(costs: dict[str, float]) -> list[str]:
    rows = [
        "| mode | scale | PSNR dB (bicubic / Lanczos / model) | SSIM (bicubic / Lanczos / model) | "
        "gain over bicubic dB (median, min to max) | sharpness (model / bicubic, vs original) | s per input MP |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("faithful", "photo", "anime"):
        for scale in (2, 4):
            figs = {k: [] for k in ("pb", "pl", "pm", "sb", "sl", "sm", "gain", "em", "eb", "spm")}
            for load in PHOTOS.values():
                hr = np.ascontiguousarray(load())
                h, w = hr.shape[0] // scale, hr.shape[1] // scale
                lr = resize(hr, h, w, Image.BICUBIC)
                bic, lan = resize(lr, *hr.shape[:2], Image.BICUBIC), resize(lr, *hr.shape[:2], Image.LANCZOS)
                out, report, _ = run(lr, mode=mode, scale=scale, tile=max(h, 32))
                figs["pb"].append(psnr(hr, bic))
                figs["pl"].append(psnr(hr, lan))
                figs["pm"].append(psnr(hr, out))
                figs["sb"].append(ssim(hr, bic, channel_axis=2))
                figs["sl"].append(ssim(hr, lan, channel_axis=2))
                figs["sm"].append(ssim(hr, out, channel_axis=2))
                figs["gain"].append(psnr(hr, out) - psnr(hr, bic))
                figs["em"].append(grad_energy(out) / grad_energy(hr))
                figs["eb"].append(grad_energy(bic) / grad_energy(hr))
                figs["spm"].append(chain_cost(tuple(report["models"]), costs))
            m = {k: statistics.median(v) for k, v in figs.items()}
            rows.append(
                f"| {mode} | x{scale} | {m['pb']:.2f} / {m['pl']:.2f} / **{m['pm']:.2f}** | "
                f"{m['sb']:.4f} / {m['sl']:.4f} / **{m['sm']:.4f}** | {m['gain']:+.2f} "
                f"({min(figs['gain']):+.2f} to {max(figs['gain']):+.2f}) | {m['em']:.2f} / {m['eb']:.2f} | "
                f"{m['spm']:.0f} |"
            )
            print(rows[-1], flush=True)
    return rows


def denoise_rows() -> list[str]:
    rows = ["| JPEG quality | denoise 0 | denoise 1 | denoise 2 | denoise 3 |", "|---|---|---|---|---|"]
    for q in (50, 75):
        psnrs = {n: [] for n in range(4)}
        for load in PHOTOS.values():
            hr = np.ascontiguousarray(load())
            lr = resize(hr, 64, 64, Image.BICUBIC)
            buf = io.BytesIO()
            Image.fromarray(lr).save(buf, "JPEG", quality=q)
            damaged = np.asarray(Image.open(buf).convert("RGB"))
            for n in range(4):
                out, _, _ = run(damaged, mode="faithful", scale=2, denoise=n, tile=64)
                psnrs[n].append(psnr(hr, out))
        med = {n: statistics.median(v) for n, v in psnrs.items()}
        rows.append(
            f"| {q} | {med[0]:.2f} | "
            + " | ".join(f"{med[n]:.2f} ({statistics.median(np.subtract(psnrs[n], psnrs[0])):+.2f})" for n in (1, 2, 3))
            + " |"
        )
        print(rows[-1], flush=True)
    return rows


# One model pass each, so the seam lines are this grid's: every served model once.
# faithful's default tile is 256: its crops are larger than that, so they are tiled at all.
TILING_CASES = [
    ("faithful", 2, 0, 384),
    *[("faithful", 2, n, 384) for n in (1, 2, 3)],
    ("anime", 2, 0, 200),
    ("anime", 4, 0, 200),
    ("photo", 4, 0, 224),
]


def tiling_rows() -> list[str]:
    rows = [
        "| model | mode | image | default tile / overlap / margin | tiles | SSIM tiled vs untiled | "
        "seam score tiled / untiled |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, scale, denoise, n in TILING_CASES:
        tile, overlap, margin = MODE_TILING[mode]
        lr = np.ascontiguousarray(data.astronaut()[40 : 40 + n, 120 : 120 + n])
        tiled, report, _ = run(lr, mode=mode, scale=scale, denoise=denoise)
        untiled, _, _ = run(lr, mode=mode, scale=scale, denoise=denoise, tile=n, overlap=0, margin=0)
        rows_, cols_ = seam_lines(plan_tiles(n, n, fit_tile(n, n, tile, overlap), overlap), scale, "cosine", margin)
        rows.append(
            f"| `{report['models'][0]}` | {mode} x{scale} | {n}x{n} | {tile} / {overlap} / {margin} | "
            f"{report['tiles']} | {ssim(tiled, untiled, channel_axis=2):.5f} | {report['seam_score']:.3f} / "
            f"{seam_score(untiled, rows_, cols_, scale):.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "upscale_quality.md"))
    ap.add_argument("--no-tiling", action="store_true", help="skip the tiled vs untiled check (slow for photo)")
    args = ap.parse_args(argv)
    costs = model_costs()
    quality = quality_rows(costs)
    denoise = denoise_rows()
    tiling = [] if args.no_tiling else tiling_rows()
    text = [
        "# Upscaling quality, measured",
        "",
        f"Written by `scripts/eval_upscale.py` (`make eval-upscale`) on {platform.machine()} "
        f"({__import__('os').cpu_count()} CPUs, shared with other work), onnxruntime on CPU, the served ONNX files.",
        "",
        "## Modes at x2 and x4",
        "",
        f"{len(PHOTOS)} crops of 128x128 from scikit-image photos ({', '.join(PHOTOS)}), downscaled by 2 and 4 "
        "(Pillow bicubic, antialiased), upscaled back, compared with the original. Medians over the photos. "
        "Sharpness: mean gradient magnitude over the original's (1 = as crisp as the original; under 1 = "
        "blurrier). s per input MP: the models' time for one input megapixel on this CPU (each model timed on "
        "a 64x64 input, median of 2 calls after a warm-up; a chain adds its passes: x4 in `faithful` is two "
        "x2 passes, x2 in `photo` is x4plus then a Lanczos resize), not a latency: tiling overlap adds to it "
        "and a GPU divides it.",
        "",
        "Per model: " + ", ".join(f"`{m}` {c:.0f}" for m, c in costs.items()) + " s per input MP.",
        "",
        *quality,
        "",
        "## Denoise (faithful x2)",
        "",
        "The same crops downscaled to 64x64, saved as JPEG at quality 50 and 75, upscaled x2 with `denoise` 0 "
        "to 3; PSNR (dB) against the original, median, and the median change against denoise 0 in brackets.",
        "",
        *denoise,
    ]
    if tiling:
        text += [
            "",
            "## Tiled vs untiled at each mode's defaults",
            "",
            "Every served model: a crop of `astronaut` upscaled by one pass with the mode's default tile, "
            "overlap and margin, against the same crop in one tile. Seam score (retouch/seams.py) of the tiled output at its tile "
            "borders, and of the untiled output at the same lines (about 1 = no seam).",
            "",
            *tiling,
        ]
    Path(args.out).write_text("\n".join(text) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
