"""Held-out evaluation of the inpainters: PSNR and SSIM inside the hole, per mask kind, and time.

    python -m export.eval_inpainter --report export/reports/inpaint_unet.md \
        [--candidate NAME=PATH ...] [--crops 3] [--fsr-best-crops 4]
    python -m export.eval_inpainter --reuse --report export/reports/inpaint_unet.md   # re-render only

Methods: the served UNet and the served refine net over auto's classical pick (PyTorch, from the
pinned weights; their ONNX exports match within 1e-4), each --candidate (a plain state_dict, or a
training checkpoint of export/train_inpainter.py, whose EMA weights are used), the push-pull fast fill, OpenCV's Telea (radius 3) and opencv-contrib's
xphoto FSR_FAST and FSR_BEST (the last on only --fsr-best-crops crops per mask kind: about a minute
per 256 px crop here). Every output is rounded to 8 bits, as the service returns it; every method runs
on one thread, one crop at a time, and its wall time per crop is recorded.
Images: the held-out split of export/inpaint_data.py at their stored 512 px short side; `--crops`
256 px crops per image and mask kind (the service's kinds: text strokes, blocks of 5-25 % of the
window, object blobs), drawn from fixed seeds, so every method sees exactly the same inputs.
Classical outputs are cached under build/eval-cache (a rerun only runs the networks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity

from export import inpaint_data
from export.inpaint_nets import WIDTHS, ClassicalRefineUNet, PushPullFill, build_net
from export.inpainters import (
    REFINE_WEIGHTS,
    REFINE_WEIGHTS_SHA256,
    WEIGHTS,
    WEIGHTS_SHA256,
    load_refine,
    load_unet,
    to_8bit,
    torch_reference,
)
from retouch.inpaint import InpaintSettings, classical_fill, classical_pick

EVAL_SIZE = 256
EVAL_SEED = 20240611
NEAR_PERFECT_DB = 40
FLAT_STD = 0.02  # in-hole standard deviation below which a crop is too flat to tell methods apart
MASKS = inpaint_data.service_masks()  # text, block, object
CACHE_DIR = Path("build/eval-cache")
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]  # HxWx3 float [0,1], HxW mask -> HxWx3


def hole_psnr(pred: np.ndarray, target: np.ndarray, hole: np.ndarray) -> float:
    """PSNR (dB, peak 1.0) over the hole's pixels only, all channels."""
    err = ((pred - target) ** 2)[hole > 0]
    return float(10 * np.log10(1.0 / max(err.mean(), 1e-12)))


def hole_ssim(pred: np.ndarray, target: np.ndarray, hole: np.ndarray) -> float:
    """Mean of the SSIM map (7x7 windows, channels averaged) over the hole's pixels."""
    _, ssim_map = structural_similarity(pred, target, data_range=1.0, channel_axis=2, full=True)
    return float(ssim_map.mean(axis=2)[hole > 0].mean())


def pooled_psnr(psnrs: list[float]) -> float:
    """PSNR of the mean squared error over cases (hard cases weigh more than in the mean PSNR)."""
    return float(-10 * np.log10(np.mean([10 ** (-p / 10) for p in psnrs])))


def _opencv(algorithm: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return classical_fill(algorithm, u8, hole > 0).astype(np.float32) / 255.0


def telea(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return _opencv("TELEA", image, hole)


def classical(algorithm: str) -> Method:
    """A classical fill as the service runs it (retouch.inpaint.classical_fill): xphoto's FSR_FAST
    and FSR_BEST, PatchMatch."""

    def run(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return _opencv(algorithm, image, hole)

    return run


def cached(name: str, method: Method, cache_dir: Path = CACHE_DIR) -> Method:
    """A deterministic method's outputs (and first-run time) kept on disk, keyed by its inputs."""

    def run(image: np.ndarray, hole: np.ndarray):
        key = hashlib.sha256(name.encode() + image.tobytes() + hole.tobytes()).hexdigest()[:24]
        path = Path(cache_dir) / name / f"{key}.npz"
        if path.exists():
            hit = np.load(path)
            return hit["out"].astype(np.float32) / 255.0, float(hit["ms"])
        start = time.perf_counter()
        out = method(image, hole)
        ms = (time.perf_counter() - start) * 1e3
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, out=np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8), ms=ms)
        return out, ms

    run.reports_time = True
    return run


def load_net(path: Path) -> torch.nn.Module:
    """A plain state_dict, or a training checkpoint's EMA weights (a UNet, a coarse-to-fine pair or,
    when the checkpoint's config says so, a ClassicalRefineUNet)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "format" in state:
        if state["config"].get("arch") == "refine":
            net = ClassicalRefineUNet(tuple(state["config"]["widths"]))
            net.load_state_dict(state["ema"])
            return net.eval()
        state = state["ema"]
    return build_net(state).eval()


def auto_classical(fills: dict[str, Method]) -> Method:
    """The classical fill inpaint's auto route picks for the crop (choose_route), from `fills`
    (cached methods keyed by retouch.inpaint.CLASSICAL_FILLS names)."""
    settings = InpaintSettings()

    def run(image: np.ndarray, hole: np.ndarray):
        u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        return fills[classical_pick(u8, hole > 0, settings)](image, hole)

    run.reports_time = True
    return run


def torch_method(module: torch.nn.Module, base: Method | None = None) -> Method:
    """A network's fill; with `base` (a ClassicalRefineUNet), of base's fill, whose time counts too."""

    def run(image: np.ndarray, hole: np.ndarray):
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        m = hole[None, None].astype(np.float32)
        if base is None:
            return to_8bit(torch_reference(module, x, m)[0].transpose(1, 2, 0))
        filled, ms = base(image, hole)
        start = time.perf_counter()
        out = torch_reference(module, x, m, np.ascontiguousarray(filled.transpose(2, 0, 1)[None], dtype=np.float32))
        return to_8bit(out[0].transpose(1, 2, 0)), ms + (time.perf_counter() - start) * 1e3

    run.reports_time = base is not None
    return run


def evaluation_set(
    images: list[tuple[str, np.ndarray]], crops: int, size: int = EVAL_SIZE, seed: int = EVAL_SEED
) -> list[dict]:
    """[{image, kind, crop [0,1] HxWx3, hole HxW}], the same for every method."""
    cases = []
    for index, (key, rgb) in enumerate(images):
        for kind, make_mask in MASKS.items():
            rng = np.random.default_rng([seed, index, list(MASKS).index(kind)])
            for draw in range(crops):
                for _ in range(20):  # flat content under the hole: every method is perfect, so redraw
                    crop = inpaint_data.random_crop(rgb, size, rng, scale=(1.0, 1.0), flip=False)
                    hole = make_mask(size, size, rng)
                    if hole.any() and crop[hole > 0].std() >= FLAT_STD:
                        break
                cases.append({"image": key, "kind": kind, "crop": crop, "hole": hole, "draw": draw, "index": index})
    return cases


def fsr_best_subset(cases: list[dict], per_kind: int) -> list[int]:
    """Indices of `per_kind` cases per mask kind, first draws of images spread evenly over the list."""
    chosen = []
    for kind in MASKS:
        firsts = [i for i, c in enumerate(cases) if c["kind"] == kind and c["draw"] == 0]
        if per_kind > 0 and firsts:
            picks = np.linspace(0, len(firsts) - 1, min(per_kind, len(firsts))).round().astype(int)
            chosen += [firsts[p] for p in sorted(set(picks))]
    return chosen


def _stats(sel: list[dict]) -> dict:
    psnr, ssim = [r["psnr"] for r in sel], [r["ssim"] for r in sel]
    return {
        "psnr_pooled": round(pooled_psnr(psnr), 3),
        "psnr_median": round(float(np.median(psnr)), 3),
        "psnr_mean": round(float(np.mean(psnr)), 3),
        "ssim_mean": round(float(np.mean(ssim)), 4),
        "ssim_median": round(float(np.median(ssim)), 4),
        "ms_median": round(float(np.median([r["ms"] for r in sel])), 2),
        "cases": len(sel),
    }


def summarise(rows: list[dict], case_ids: set[int] | None = None) -> dict:
    """{kind: {method: stats}} over the rows of `case_ids` (all when None)."""
    out: dict = {}
    for kind in MASKS:
        for name in dict.fromkeys(r["method"] for r in rows):
            sel = [
                r
                for r in rows
                if r["kind"] == kind and r["method"] == name and (case_ids is None or r["case"] in case_ids)
            ]
            if sel:
                out.setdefault(kind, {})[name] = _stats(sel)
    return out


def evaluate(methods: dict[str, Method], cases: list[dict], only: dict[str, set[int]] | None = None) -> dict:
    """In-hole PSNR/SSIM and ms per crop, per mask kind and method. `only`: method -> the case
    indices it runs on (the slow FSR_BEST); the others run on every case."""
    rows = []
    for number, case in enumerate(cases):
        target, hole = case["crop"], case["hole"]
        masked = target * (1 - hole[..., None])  # no method may see the hole's true pixels
        for name, method in methods.items():
            if only and name in only and number not in only[name]:
                continue
            start = time.perf_counter()
            pred = method(masked, hole)
            ms = (time.perf_counter() - start) * 1e3
            if getattr(method, "reports_time", False):
                pred, ms = pred
            rows.append(
                {
                    "case": number,
                    "image": case["image"],
                    "kind": case["kind"],
                    "method": name,
                    "psnr": hole_psnr(pred, target, hole),
                    "ssim": hole_ssim(pred, target, hole),
                    "ms": ms,
                }
            )
    per_image: dict = {}
    for r in rows:
        per_image.setdefault(r["image"], {}).setdefault(r["kind"], {}).setdefault(r["method"], []).append(r["psnr"])
    per_image = {
        img: {k: {m: round(float(np.mean(v)), 2) for m, v in ms.items()} for k, ms in kinds.items()}
        for img, kinds in per_image.items()
    }
    coverage = {
        kind: round(float(np.mean([c["hole"].mean() for c in cases if c["kind"] == kind])), 4)
        for kind in MASKS
        if any(c["kind"] == kind for c in cases)
    }
    result = {
        "summary": summarise(rows),
        "per_image_psnr": per_image,
        "mean_hole_coverage": coverage,
        "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    if only:
        subset = set().union(*only.values())
        result["subset_cases"] = sorted(subset)
        result["subset_summary"] = summarise(rows, subset)
    return result


HEADROOM_SIGMAS = (4, 8, 16)


def headroom(cases: list[dict], base: Method, sigmas=HEADROOM_SIGMAS) -> dict:
    """Pooled in-hole PSNR of an oracle that knows the truth's coarse structure: `base`'s fill plus
    the Gaussian low-pass (sigma px) of its error, per mask kind. No texture at all, so it bounds
    what a network that gets only the coarse shapes and shading right could reach."""
    psnrs: dict = {}
    for case in cases:
        target, hole = case["crop"], case["hole"]
        filled = base(target * (1 - hole[..., None]), hole)
        for sigma in sigmas:
            coarse = cv2.GaussianBlur((target - filled).astype(np.float32), (0, 0), sigma)
            oracle = np.clip(filled + coarse * hole[..., None], 0.0, 1.0)
            psnrs.setdefault(case["kind"], {}).setdefault(sigma, []).append(hole_psnr(oracle, target, hole))
    return {
        kind: {str(sigma): round(pooled_psnr(v), 2) for sigma, v in by_sigma.items()}
        for kind, by_sigma in psnrs.items()
    }


def held_out_images() -> list[tuple[str, np.ndarray]]:
    _, held_out = inpaint_data.split(inpaint_data.catalog())
    return [(im.key, inpaint_data.load_rgb(im)) for im in held_out]


def _licence_table(rows: list[dict]) -> list[str]:
    lines = ["| image | licence | file |", "|---|---|---|"]
    return lines + [f"| {r['key']} | {r['license']} | `{r['origin']}` |" for r in rows]


CLASSICAL = {
    "fast_fill": "fast fill (push-pull)",
    "telea": "cv2 Telea (r=3)",
    "fsr_fast": "xphoto FSR_FAST",
    "fsr_best": "xphoto FSR_BEST",
    "patchmatch": "PatchMatch (pypatchmatch, patch 5)",
    "auto_classical": "auto's classical pick (FSR_FAST / PatchMatch by choose_route)",
}


def _label(name: str) -> str:
    served = {"served": "UNet, served weights", "served_refine": "refine net, served weights (inpaint_refine)"}
    return CLASSICAL.get(name, served.get(name, f"UNet {name}"))


def _table(summary: dict) -> list[str]:
    lines = [
        "| masks | method | PSNR pooled (dB) | PSNR median (dB) | SSIM mean | SSIM median | ms per crop (median) | cases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, methods in summary.items():
        for name, m in methods.items():
            lines.append(
                f"| {kind} | {_label(name)} | {m['psnr_pooled']:.2f} | {m['psnr_median']:.2f} | "
                f"{m['ssim_mean']:.4f} | {m['ssim_median']:.4f} | {m['ms_median']:.1f} | {m['cases']} |"
            )
    return lines


def networks(result: dict) -> list[str]:
    return [n for n in next(iter(result["summary"].values())) if n not in CLASSICAL]


def goal_lines(result: dict) -> list[str]:
    """The issue's goal per network: beat FSR_BEST (pooled PSNR, on its subset) on block and object
    masks and FSR_FAST on text, at <= 1/50 of FSR_BEST's time; never below the fast fill's median."""
    full, subset = result["summary"], result.get("subset_summary", {})
    best_ms = [m["fsr_best"]["ms_median"] for m in subset.values() if "fsr_best" in m]
    lines = []
    for net in networks(result):
        parts = []
        for kind in ("block", "object"):
            if kind in subset and "fsr_best" in subset[kind]:
                d = subset[kind][net]["psnr_pooled"] - subset[kind]["fsr_best"]["psnr_pooled"]
                parts.append(
                    f"{kind} vs FSR_BEST {d:+.2f} dB on its {subset[kind]['fsr_best']['cases']} crops "
                    f"({'met' if d > 0 else 'NOT met'})"
                )
        if "text" in full and "fsr_fast" in full["text"]:
            d = full["text"][net]["psnr_pooled"] - full["text"]["fsr_fast"]["psnr_pooled"]
            parts.append(f"text vs FSR_FAST {d:+.2f} dB ({'met' if d > 0 else 'NOT met'})")
        if best_ms:
            ratio = float(np.median(best_ms)) / max(np.median([m[net]["ms_median"] for m in full.values()]), 1e-9)
            parts.append(f"speed {ratio:.0f}x FSR_BEST's ({'met' if ratio >= 50 else 'NOT met'}, needs 50x)")
        below = [
            f"{k} {s.split('_')[1]}"
            for k, m in full.items()
            for s in ("psnr_pooled", "psnr_median")
            if m[net][s] < m["fast_fill"][s]
        ]
        parts.append("never below the fast fill: " + ("met" if not below else "NOT met (" + ", ".join(below) + ")"))
        lines.append(f"- **{_label(net)}**: " + "; ".join(parts) + ".")
    return lines


def paired_gain(rows: list[dict], net: str, kind: str, base: str = "fast_fill", resamples: int = 1000) -> dict:
    """`net` against `base` on the same crops: pooled and median PSNR gain, the share of crops it
    improves, and a 95 % bootstrap interval (over crops, seed 0) of the pooled gain."""
    by_case = {}
    for r in rows:
        if r["kind"] == kind and r["method"] in (net, base):
            by_case.setdefault(r["case"], {})[r["method"]] = r["psnr"]
    pairs = np.array([(v[net], v[base]) for v in by_case.values() if len(v) == 2])
    if not len(pairs):
        return {}
    mse = 10 ** (-pairs / 10)

    def pooled_gain(m):
        return float(10 * np.log10(m[:, 1].mean() / m[:, 0].mean()))

    rng = np.random.default_rng(0)
    boot = [pooled_gain(mse[rng.integers(0, len(mse), len(mse))]) for _ in range(resamples)]
    return {
        "pooled": round(pooled_gain(mse), 3),
        "median": round(float(np.median(pairs[:, 0]) - np.median(pairs[:, 1])), 3),
        "improved": round(float(np.mean(pairs[:, 0] > pairs[:, 1])), 3),
        "pooled_ci95": [round(float(np.percentile(boot, 2.5)), 3), round(float(np.percentile(boot, 97.5)), 3)],
    }


def route_lines(result: dict) -> list[str]:
    """Per network and mask kind: the gain over the fast fill, pooled and median; 'wins' when both > 0
    and the bootstrap interval of the pooled gain is above zero."""
    kinds = list(result["summary"])
    lines = [
        "| network | "
        + " | ".join(f"{k}: pooled gain [95 % interval] / median gain (dB), crops improved" for k in kinds)
        + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for net in networks(result):
        cells = []
        for kind in kinds:
            g = paired_gain(result["rows"], net, kind)
            wins = g["pooled"] > 0 and g["median"] > 0 and g["pooled_ci95"][0] > 0
            cells.append(
                f"{g['pooled']:+.2f} [{g['pooled_ci95'][0]:+.2f}, {g['pooled_ci95'][1]:+.2f}] / "
                f"{g['median']:+.2f}, {g['improved']:.0%}{' (wins)' if wins else ''}"
            )
        lines.append(f"| {_label(net)} | " + " | ".join(cells) + " |")
    return lines


def gain_lines(result: dict, base: str) -> list[str]:
    """Each network's paired gain over `base` on the same crops, per mask kind."""
    kinds = list(result["summary"])
    lines = [
        "| network | " + " | ".join(f"{k}: pooled gain [95 % interval] / median gain (dB)" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for net in networks(result):
        gains = [paired_gain(result["rows"], net, kind, base=base) for kind in kinds]
        lines.append(
            f"| {_label(net)} | "
            + " | ".join(
                f"{g['pooled']:+.2f} [{g['pooled_ci95'][0]:+.2f}, {g['pooled_ci95'][1]:+.2f}] / {g['median']:+.2f}"
                if g
                else "n/a"
                for g in gains
            )
            + " |"
        )
    return lines


def render_report(result: dict, notes: str = "") -> str:
    """export/reports/inpaint_unet.md from the evaluation result (and the hand-written notes)."""
    crops, subset = result["crops_per_image_and_kind"], result.get("subset_cases", [])
    out = [
        "# Inpainting networks: held-out evaluation",
        "",
        f"Generated by `{result['command']}`; the numbers are copied from `{result['json']}`.",
        "Training runs, their commands and seeds: [inpaint_ledger.md](inpaint_ledger.md).",
        "",
        "## Goal check",
        "",
        *goal_lines(result),
        "",
        *([notes.strip(), ""] if notes else []),
        "## Held-out results, inside the hole only",
        "",
        f"{len(result['held_out_images'])} held-out images (never read by training), {crops} crops of "
        f"{result['crop']}x{result['crop']} px per image and mask kind, seed {result['seed']}. Mean hole coverage: "
        + ", ".join(f"{k} {v:.1%}" for k, v in result["mean_hole_coverage"].items())
        + ". Networks: "
        + ", ".join(f"{n} = `{p}`" for n, p in result["networks"].items())
        + ".",
        "",
        *_table(result["summary"]),
        "",
    ]
    if subset:
        out += [
            f"### The FSR_BEST subset: {len(subset)} crops ({len(subset) // max(1, len(result['subset_summary']))} "
            "per mask kind, the first crop of images spread evenly over the held-out list)",
            "",
            "FSR_BEST takes about a minute per crop on this shared CPU, so it runs on these crops only; every "
            "other method is scored again on the same crops:",
            "",
            *_table(result["subset_summary"]),
            "",
        ]
    out += [
        "### Gain over the fast fill (route rule)",
        "",
        "The auto route should use a network only on a mask kind where it wins, pooled and median:",
        "",
        *route_lines(result),
        "",
        "The same against FSR_FAST, the best classical fill that runs in under a second:",
        "",
        *gain_lines(result, "fsr_fast"),
        "",
    ]
    if any(r["method"] == "auto_classical" for r in result["rows"]):
        out += [
            "And against the classical fill inpaint's auto route picks for each crop (FSR_FAST or PatchMatch), "
            "the base a refine network (`--arch refine`) starts from:",
            "",
            *gain_lines(result, "auto_classical"),
            "",
        ]
    if "headroom_pooled_psnr" in result:
        sigmas = list(next(iter(result["headroom_pooled_psnr"].values())))
        out += [
            "**Headroom.** Pooled PSNR of an oracle that adds the Gaussian low-pass of the fast fill's true "
            "error inside the hole: the coarse shapes and shading exactly right, no texture at all.",
            "",
            "| masks | fast fill | " + " | ".join(f"oracle, sigma {s} px" for s in sigmas) + " |",
            "|---|---|" + "---|" * len(sigmas),
        ]
        for kind, by_sigma in result["headroom_pooled_psnr"].items():
            fill = result["summary"][kind]["fast_fill"]["psnr_pooled"]
            out.append(f"| {kind} | {fill:.2f} | " + " | ".join(f"{by_sigma[s]:.2f}" for s in sigmas) + " |")
        out.append("")
    out += [
        "PSNR: peak 1.0 over the hole's pixels (all channels), per crop; 'pooled' is the PSNR of the mean",
        "squared error over all crops, which weighs the hard crops more; the median is the typical crop.",
        f"Crops whose hole lies on flat content (in-hole std < {FLAT_STD}) are redrawn, up to 20 times.",
        "SSIM: scikit-image's 7x7 SSIM map, channels averaged, then averaged over the hole's pixels.",
        "Time: wall time of one call on one 256 px crop, one thread, on a 2-core CPU shared with other jobs",
        "(a training run among them): compare ratios, not absolute values. Classical results come from a",
        "disk cache on reruns, with the time of their first run.",
        "",
        "### Per held-out image (mean in-hole PSNR, dB)",
        "",
    ]
    names = [n for n in result["summary"][next(iter(result["summary"]))] if n != "fsr_best"]
    out += ["| image | masks | " + " | ".join(_label(n) for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for image, kinds in result["per_image_psnr"].items():
        for kind, methods in kinds.items():
            out.append(f"| {image} | {kind} | " + " | ".join(f"{methods[n]:.2f}" for n in names) + " |")
    catalog = {im.key: im for im in inpaint_data.catalog()}
    held = [
        {"key": k, "license": catalog[k].license, "origin": catalog[k].origin}
        for k in result["held_out_images"]
        if k in catalog
    ]
    out += ["", "### Held-out images", ""] + _licence_table(held) + [""]
    return "\n".join(out)


def _run_rows() -> list[dict]:
    """Every training run: the two before checkpoints (their JSON logs) and export/reports/runs/*.json."""
    rows = []
    for name, path in (
        ("run1 (served)", Path("export/reports/inpaint_unet_train.json")),
        ("run2", Path("export/reports/candidates/run2_train.json")),
    ):
        if path.exists():
            log = json.loads(path.read_text())
            a = log["args"]
            rows.append(
                {
                    "run": name,
                    "command": f"python -m export.train_inpainter --steps {a['steps']} --minutes "
                    f"{a['minutes']:g}" + (" --resume" if a.get("resume") else "") + " (the old script)",
                    "seed": a["seed"],
                    "init": a.get("resume") and "run1 (served)" or "scratch",
                    "steps": log["steps"],
                    "minutes": log["seconds"] / 60,
                    "lr": f"{a['lr']:g} peak, 2 % warm-up, cosine over {a['steps']} (time-based)",
                    "data": f"batch {a['batch']}, crop {a['crop']}, masks {log['mask_weights']}",
                    "last_ratio": (log["history"][-1].get("l1", 0) / log["history"][-1]["fill_l1"])
                    if log["history"] and log["history"][-1].get("fill_l1")
                    else None,
                }
            )
    for path in sorted(Path("export/reports/runs").glob("*.json")):
        log = json.loads(path.read_text())
        cfg = log["config"]
        rows.append(
            {
                "run": path.stem,
                "command": "; ".join(
                    f"`{s['command']}` ({s['from_step']}->{s['to_step']}, "
                    f"{s['seconds'] / 60:.0f} min"
                    + (f", {s['cpu_seconds'] / 60:.0f} CPU min" if "cpu_seconds" in s else "")
                    + f", {s.get('stopped', 'running')})"
                    for s in log["segments"]
                ),
                "seed": cfg["seed"],
                "init": log["init"] or "scratch",
                "steps": log["step"],
                "minutes": log["seconds"] / 60,
                "lr": f"{cfg['lr']:g} peak, {cfg['warmup']} warm-up steps, cosine to {cfg['min_lr_fraction']:g}x "
                f"at step {cfg['steps']}; EMA {cfg['ema_decay']}",
                "data": f"batch {cfg['batch']}, crop {cfg['crop']}, masks {cfg['mask_mix']}, jitter {cfg['jitter']}"
                + (f"; loss + {cfg['ssim_weight']:g} x (1 - SSIM)" if cfg.get("ssim_weight") else "")
                + (
                    f"; coarse-to-fine pair, coarse-stage loss x {cfg['stage_weight']:g}"
                    if cfg.get("arch") == "coarse_to_fine"
                    else ""
                )
                + (
                    f"; + {cfg['teacher_weight']:g} x L1 to the {cfg['teacher']} teacher's fill"
                    if cfg.get("teacher_weight")
                    else ""
                )
                + (
                    f"; refines the {cfg['teacher']} classical fill (its L1 / fill L1 is against that fill)"
                    if cfg.get("arch") == "refine"
                    else ""
                )
                + (f"; widths {cfg['widths']}" if tuple(cfg["widths"]) != WIDTHS else ""),
                "last_ratio": log["history"][-1]["l1_over_fill"] if log["history"] else None,
            }
        )
    return rows


def render_ledger(result: dict | None, notes: str = "") -> str:
    """export/reports/inpaint_ledger.md: every run, with its held-out figures where evaluated."""
    out = [
        "# Inpainting UNet: training ledger",
        "",
        "Generated by `python -m export.eval_inpainter --ledger export/reports/inpaint_ledger.md` from the run",
        "logs (`export/reports/inpaint_unet_train.json`, `candidates/run2_train.json`, `runs/*.json`) and the",
        "evaluation (`inpaint_unet_eval.json`). Held-out figures: gain in PSNR over the fast fill inside the",
        "hole, pooled / median, on the evaluation of [inpaint_unet.md](inpaint_unet.md).",
        "",
        "| run | seed | from | steps | wall min | learning rate | data | last L1 / fill L1 (train) | "
        "held-out text | held-out block | held-out object | weights evaluated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    evaluated = {}
    if result:
        for net, path in result["networks"].items():
            evaluated[net] = path
    for row in _run_rows():
        key = {"run1 (served)": "served"}.get(row["run"], row["run"])
        cells = []
        for kind in MASKS:
            m = (result or {}).get("summary", {}).get(kind, {})
            if key in m:
                cells.append(
                    f"{m[key]['psnr_pooled'] - m['fast_fill']['psnr_pooled']:+.2f} / "
                    f"{m[key]['psnr_median'] - m['fast_fill']['psnr_median']:+.2f}"
                )
            else:
                cells.append("not evaluated")
        ratio = "n/a" if row["last_ratio"] is None else f"{row['last_ratio']:.3f}"
        weights = (result or {}).get("networks", {}).get(key)
        out.append(
            f"| {row['run']} | {row['seed']} | {row['init']} | {row['steps']} | {row['minutes']:.0f} | {row['lr']} | "
            f"{row['data']} | {ratio} | " + " | ".join(cells) + f" | {f'`{weights}`' if weights else '-'} |"
        )
    out += ["", "## Commands", ""]
    for row in _run_rows():
        out.append(f"- **{row['run']}**: {row['command']}")
    out += ["", *([notes.strip(), ""] if notes else [])]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a network to evaluate beside the served one (state_dict or training checkpoint)",
    )
    ap.add_argument("--crops", type=int, default=3, help="crops per held-out image and mask kind")
    ap.add_argument("--fsr-best-crops", type=int, default=4, help="crops per mask kind for FSR_BEST (slow)")
    ap.add_argument("--json", type=Path, default=Path("export/reports/inpaint_unet_eval.json"))
    ap.add_argument("--report", type=Path, help="write the markdown report here")
    ap.add_argument("--ledger", type=Path, help="write the training ledger here")
    ap.add_argument("--reuse", action="store_true", help="render from an existing --json")
    ap.add_argument(
        "--notes",
        type=Path,
        default=Path("export/reports/inpaint_unet_notes.md"),
        help="hand-written findings placed under the goal check, if the file exists",
    )
    ap.add_argument("--ledger-notes", type=Path, default=Path("export/reports/inpaint_ledger_notes.md"))
    args = ap.parse_args(argv)
    if args.reuse:
        result = json.loads(args.json.read_text())
    else:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        images = held_out_images()
        nets = {"served": Path(os.path.relpath(WEIGHTS)), "served_refine": Path(os.path.relpath(REFINE_WEIGHTS))} | {
            n: Path(p) for n, p in (c.split("=", 1) for c in args.candidate)
        }
        fills = {
            "FSR_FAST": cached("fsr_fast", classical("FSR_FAST")),
            "FSR_BEST": cached("fsr_best", classical("FSR_BEST")),
            "PatchMatch": cached("patchmatch", classical("PatchMatch")),
        }
        auto = auto_classical(fills)
        methods: dict[str, Method] = {
            "served": torch_method(load_unet(WEIGHTS)),
            "served_refine": torch_method(load_refine(), auto),
        }
        for name, path in nets.items():
            if name not in methods:
                net = load_net(path)
                methods[name] = torch_method(net, auto if isinstance(net, ClassicalRefineUNet) else None)
        methods |= {
            "fast_fill": torch_method(PushPullFill().eval()),
            "telea": telea,
            "fsr_fast": fills["FSR_FAST"],
            "fsr_best": fills["FSR_BEST"],
            "patchmatch": fills["PatchMatch"],
            "auto_classical": auto,
        }
        cases = evaluation_set(images, args.crops)
        result = evaluate(methods, cases, only={"fsr_best": set(fsr_best_subset(cases, args.fsr_best_crops))})
        result["headroom_pooled_psnr"] = headroom(cases, methods["fast_fill"])
        result |= {
            "held_out_images": [key for key, _ in images],
            "crop": EVAL_SIZE,
            "crops_per_image_and_kind": args.crops,
            "fsr_best_crops_per_kind": args.fsr_best_crops,
            "seed": EVAL_SEED,
            "networks": {n: str(p) for n, p in nets.items()},
            "served_sha256": WEIGHTS_SHA256,
            "served_refine_sha256": REFINE_WEIGHTS_SHA256,
            "json": str(args.json),
            "command": "python -m export.eval_inpainter " + " ".join(argv if argv is not None else sys.argv[1:]),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        for kind, methods_summary in result["summary"].items():
            print(
                kind,
                json.dumps(
                    {n: [m["psnr_pooled"], m["psnr_median"], m["ms_median"]] for n, m in methods_summary.items()}
                ),
            )
    if args.report:
        notes = args.notes.read_text() if args.notes.exists() else ""
        args.report.write_text(render_report(result, notes))
    if args.ledger:
        notes = args.ledger_notes.read_text() if args.ledger_notes.exists() else ""
        args.ledger.write_text(render_ledger(result, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
