"""Development set for the glyph-mask thresholds, kept apart from `make eval`'s photos.

Captions and watermarks (export/edit_data.py's styles and fonts) rendered on the lomiri and ukui
wallpapers and the scikit-image and wheel sample photos of export/inpaint_data.py's catalogue, less
every photo edit_data evaluates on (40 photos); the served detector, recogniser and glyph segmenter
in onnxruntime. Per setting value: how many of the same photos *without* captions get any pixel
painted (which ones, and how many lines, of which kinds), the kinds of the captions' lines, and the
glyph recall per true line. A photo whose
mask covers more than remove_text's max_text_coverage is left unpainted, as remove_text leaves it.

    python -m export.glyph_dev '{"faint_contrast": 0}' '{}' [--photos 60] [--sources lomiri,ukui] [--lines]
        [--detect '{"box_thresh": 0.4}'] [--edits [--inpaint '{"refine": []}'] [--scenes after.json]]
        [--detector-onnx candidate.onnx | --detector ppocrv6_small]
    python -m export.glyph_dev --compare before.json after.json

`--scenes` keeps each caption scene's figures (PSNR and squared error in the text region, outcome,
fill routes, fallback windows, repainted lines, residual lines); `--compare` reads two such files
and says how many scenes a change helps and hurts, and which moved most, which pooled and median
figures alone hide. `--detector-onnx` scores a candidate detector graph (export/train_text_detector.py --write-onnx) in
place of the served one, `--detector NAME` another of export.text_detectors' detectors (exported to a
scratch folder). The photos of the first dev set (DEV_SOURCES[0]) are never trained on.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
from pathlib import Path

import cv2
import numpy as np

from export.edit_data import SCENE_FONTS, SCENE_STYLES, make_scene
from export.eval_edits import LocalModels, grow, psnr, residual_lines
from export.glyph_data import evaluated
from export.inpaint_data import catalog, load_rgb
from retouch.glyphs import GlyphSettings
from retouch.inpaint import classical_fill
from retouch.morphology import dilate
from retouch.remove_text import RemoveTextSettings, line_masks
from retouch.text import DETECTORS, DetectSettings

SEED = 777
# The two dev sets (catalogue sources, photos): never trained on (export/train_text_detector.py).
DEV_SOURCES = ((("lomiri", "ukui", "skimage", "wheels"), 40), (("plasma", "lxqt", "palapeli"), 32))


def best_box(ink: np.ndarray, boxes: np.ndarray) -> tuple[int | None, float]:
    """The detected box covering most of a true line's ink, and the share it covers."""
    best, share = None, 0.0
    for i, quad in enumerate(boxes):
        box = np.zeros(ink.shape, np.uint8)
        cv2.fillPoly(box, [np.round(quad).astype(np.int32)], 1)
        covered = float((ink & (box > 0)).sum()) / max(int(ink.sum()), 1)
        if covered > share:
            best, share = i, covered
    return best, share


def edit_scores(models: LocalModels, scene, settings: RemoveTextSettings) -> dict:
    """remove_text end to end on one caption scene, against TELEA with the true glyph mask: squared
    error in the text region (true glyphs grown 2 px), PSNR there, and the share of the scene's
    lines the independent detector still finds."""
    ink = scene.ink
    region = grow(ink, 2)
    out, _, report = models.remove_text(scene.rgb, settings)
    telea = classical_fill("TELEA", scene.rgb, ink)
    filled = report.get("inpaint") or {}
    scores = {
        "scene": scene.name,
        "outcome": report["outcome"],
        "routes": filled.get("routes"),
        "fallback_windows": filled.get("fallback_windows", 0),
        "repainted_lines": (report.get("repaint") or {}).get("lines", 0),
        "second_look_lines": len(looked.get("lines", []))
        if (looked := report.get("second_look") or {}).get("painted")
        else 0,
        "n": int(region.sum()) * 3,
        **residual_lines(models, out, scene),
    }
    for name, image in (("served", out), ("telea", telea)):
        scores[f"{name}_sse"] = float(((image[region].astype(np.float64) - scene.photo[region]) ** 2).sum())
        scores[f"{name}_psnr"] = psnr(image, scene.photo, region)
    return scores


def glyph_masks(models: LocalModels, rgb: np.ndarray, found, settings: GlyphSettings):
    """remove_text's text mask (retouch.remove_text.line_masks) with the served models: (mask, lines,
    the coverage max_text_coverage is held against)."""
    text = asyncio.run(
        line_masks(rgb, found.boxes, found.scores, settings, models.segment, models.read, models.characters)
    )
    return text.mask, text.lines, text.coverage


def dev_photos(sources: tuple[str, ...], photos: int) -> list:
    """The dev catalogue: the chosen sources less every photo edit_data evaluates on."""
    return [im for im in catalog() if im.source in sources and not evaluated(im)][:photos]


def dev_scene(key: str, rgb: np.ndarray, k: int):
    """The k-th dev photo's caption scene: dense and sparse layouts alternate, 3-8 lines."""
    layout = "dense" if k % 2 else "sparse"
    return make_scene(
        f"{key}-{layout}", rgb, seed=SEED + k, layout=layout, lines=3 + k % 6, styles=SCENE_STYLES, fonts=SCENE_FONTS
    )


def pooled_psnr(sse: float, n: int) -> float:
    return round(float(10 * np.log10(255.0**2 / max(sse / max(n, 1), 1e-12))), 2)


def psnr_summary(scenes: list[dict], name: str = "served") -> tuple[float, float]:
    """Pooled and median PSNR of one method (`served`, `telea`) over edit_scores' scenes."""
    pooled = pooled_psnr(sum(e[f"{name}_sse"] for e in scenes), sum(e["n"] for e in scenes))
    return pooled, round(float(np.median([e[f"{name}_psnr"] for e in scenes])), 2)


def run(
    models: LocalModels,
    settings: GlyphSettings,
    photos: int,
    show_lines: bool,
    sources: tuple[str, ...],
    detect: DetectSettings | None = None,
    edits: bool = False,
    inpaint: dict | None = None,
    scenes: Path | None = None,
    remove_text: dict | None = None,
) -> dict:
    detect = detect or DetectSettings()
    max_text_coverage, over_coverage = RemoveTextSettings().max_text_coverage, 0
    images = dev_photos(sources, photos)
    kinds, recalls, painted_free, painted_lines = collections.Counter(), [], [], 0
    free_kinds, areas, coverages, edited = collections.Counter(), [], [], []
    for k, image in enumerate(images):
        rgb = load_rgb(image, 540)
        found, _ = models.detect_text(rgb, detect)
        free_mask, free_lines, coverage = glyph_masks(models, rgb, found, settings)
        if coverage > max_text_coverage:  # remove_text leaves the photo for review
            over_coverage += 1
            free_mask, free_lines = np.zeros_like(free_mask), []
        if free_mask.any():
            painted_free.append(image.key)
        painted_lines += sum(line.kind == "glyph" for line in free_lines)
        free_kinds.update(line.kind for line in free_lines)
        scene = dev_scene(image.key, rgb, k)
        if edits and scene.lines:
            edited.append(
                edit_scores(
                    models,
                    scene,
                    RemoveTextSettings(
                        **{**(remove_text or {}), "detect": detect, "mask": settings, "inpaint": inpaint or {}}
                    ),
                )
            )
        found, _ = models.detect_text(scene.rgb, detect)
        mask, lines, coverage = glyph_masks(models, scene.rgb, found, settings)
        if coverage > max_text_coverage:
            over_coverage += 1
            mask = np.zeros_like(mask)
        areas.append(float((mask > 0).sum()) / max(int(dilate(scene.ink, 2).sum()), 1))
        coverages.append(float((mask > 0).mean()))
        for line in scene.lines:
            i, share = best_box(line.ink, found.boxes)
            kind = "missed" if i is None or share < 0.3 else lines[i].kind
            recall = float((line.ink & (mask > 0)).sum()) / max(int(line.ink.sum()), 1)
            kinds[kind] += 1
            recalls.append(recall)
            if show_lines and (kind != "glyph" or recall < 0.9):
                print(
                    f"  {scene.name} {line.style} {kind} recall {recall:.2f}",
                    {} if kind == "missed" else lines[i].figures,
                )
    figures = {}
    if edited and scenes is not None:
        scenes.write_text(json.dumps(edited, indent=1) + "\n")
    if edited:
        for name in ("served", "telea"):
            figures[f"{name}_psnr_pooled"], figures[f"{name}_psnr_median"] = psnr_summary(edited, name)
        for key in ("residual", "residual_floor", "residual_new"):
            figures[f"{key}_mean"] = round(float(np.mean([e[key] for e in edited])), 4)
    return figures | {
        "text_free_painted": len(painted_free),
        "text_free_painted_photos": painted_free,
        "over_max_text_coverage": over_coverage,
        "text_free_lines_painted": painted_lines,
        "text_free_line_kinds": dict(free_kinds),
        "photos": len(images),
        "line_kinds": dict(kinds),
        "recall_mean": round(float(np.mean(recalls)), 4),
        "recall_median": round(float(np.median(recalls)), 4),
        "area_over_true_median": round(float(np.median(areas)), 3),
        "caption_coverage_max": round(float(np.max(coverages)), 4),
    }


def compare(before: Path, after: Path, movers: int = 8) -> dict:
    """Two `--scenes` files of the same photos: pooled and median PSNR of each, the per-scene changes
    (a median moves with the one or two scenes at the middle; the wins and losses show whether a
    change helps most photos), and the scenes that moved most: (scene, PSNR before, after, its share of
    the squared error before)."""
    a, b = (json.loads(p.read_text()) for p in (before, after))
    if [r["scene"] for r in a] != [r["scene"] for r in b]:
        raise SystemExit("the two files hold different scenes: rerun both with the same --photos and --sources")
    sse = sum(r["served_sse"] for r in a)
    change = np.array([rb["served_psnr"] - ra["served_psnr"] for ra, rb in zip(a, b)])
    order = np.argsort(np.abs(change))[::-1][:movers]
    return {
        "pooled": [psnr_summary(rows)[0] for rows in (a, b)],
        "median": [psnr_summary(rows)[1] for rows in (a, b)],
        "residual_new_mean": [round(float(np.mean([r["residual_new"] for r in rows])), 4) for rows in (a, b)],
        "scenes": len(a),
        "better": int((change > 0.05).sum()),
        "worse": int((change < -0.05).sum()),
        "mean_change_db": round(float(change.mean()), 3),
        "movers": [
            (
                a[i]["scene"],
                round(a[i]["served_psnr"], 2),
                round(b[i]["served_psnr"], 2),
                round(a[i]["served_sse"] / sse, 4),
            )
            for i in order
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "settings", nargs="*", default=["{}"], help="GlyphSettings overrides as JSON objects, one run each (default {})"
    )
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument(
        "--sources",
        default="lomiri,ukui,skimage,wheels",
        help="export/inpaint_data.py catalogue sources (edit_data's evaluation photos are always left out)",
    )
    parser.add_argument("--lines", action="store_true", help="print every line not painted in full")
    parser.add_argument("--detect", default="{}", help="DetectSettings overrides as a JSON object, for every run")
    parser.add_argument("--inpaint", default="{}", help="remove_text's inpaint overrides (JSON), with --edits")
    parser.add_argument(
        "--remove-text", default="{}", help="remove_text's other overrides (JSON, e.g. second_look), with --edits"
    )
    parser.add_argument(
        "--edits",
        action="store_true",
        help="also run remove_text end to end on the caption scenes: PSNR in the text region against TELEA with "
        "the true glyph mask, and residual lines (the independent detector), as make eval scores them",
    )
    parser.add_argument(
        "--detector-onnx",
        type=Path,
        help="a candidate text detector graph in place of the served one (export/train_text_detector.py --write-onnx)",
    )
    parser.add_argument(
        "--detector", choices=sorted(DETECTORS), help="another of the exporter's text detectors (docs/text.md)"
    )
    parser.add_argument(
        "--scenes",
        type=Path,
        help="with --edits and one settings object: write each caption scene's figures (JSON) for --compare",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="compare two --scenes files (the settings argument is then ignored); no models are run",
    )
    args = parser.parse_args(argv)
    if args.compare:
        for key, value in compare(*args.compare).items():
            print(f"{key}: {json.dumps(value)}")
        return 0
    if args.scenes and (not args.edits or len(args.settings) != 1):
        parser.error("--scenes needs --edits and exactly one settings object")
    cv2.setNumThreads(1)
    models = LocalModels(detector=args.detector_onnx, detector_name=args.detector)
    for overrides in args.settings:
        print(
            overrides,
            json.dumps(
                run(
                    models,
                    GlyphSettings(**json.loads(overrides)),
                    args.photos,
                    args.lines,
                    tuple(args.sources.split(",")),
                    DetectSettings(**json.loads(args.detect)),
                    args.edits,
                    json.loads(args.inpaint),
                    args.scenes,
                    json.loads(args.remove_text),
                )
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
