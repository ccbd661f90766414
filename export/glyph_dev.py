"""Development set for the glyph-mask thresholds, kept apart from `make eval`'s photos.

Captions and watermarks (export/edit_data.py's styles and fonts) rendered on the lomiri and ukui
wallpaper photos (export/inpaint_data.py's catalogue; not among edit_data's evaluation photos), the
served detector in onnxruntime, and per setting value: how many of the same photos *without*
captions get any pixel painted, the kinds of the lines, and the glyph recall per true line.

    python -m export.glyph_dev '{"min_contrast": 7}' '{"min_contrast": 14}' [--photos 40] [--lines]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json

import cv2
import numpy as np

from export.edit_data import SCENE_FONTS, SCENE_STYLES, make_scene
from export.eval_edits import LocalModels
from export.inpaint_data import catalog, load_rgb
from retouch.glyphs import GlyphSettings, text_masks
from retouch.text import DetectSettings, detect_text

SEED = 777


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


def run(models: LocalModels, settings: GlyphSettings, photos: int, show_lines: bool) -> dict:
    images = [im for im in catalog() if im.source in ("lomiri", "ukui")][:photos]
    kinds, recalls, painted_free = collections.Counter(), [], 0
    for k, image in enumerate(images):
        rgb = load_rgb(image, 540)
        found, _ = asyncio.run(detect_text(rgb, DetectSettings(), models.detect))
        painted_free += bool(text_masks(rgb, found.boxes, found.scores, settings)[0].any())
        layout = "dense" if k % 2 else "sparse"
        scene = make_scene(
            f"{image.key}-{layout}",
            rgb,
            seed=SEED + k,
            layout=layout,
            lines=3 + k % 6,
            styles=SCENE_STYLES,
            fonts=SCENE_FONTS,
        )
        found, _ = asyncio.run(detect_text(scene.rgb, DetectSettings(), models.detect))
        mask, lines = text_masks(scene.rgb, found.boxes, found.scores, settings)
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
    return {
        "text_free_painted": painted_free,
        "photos": len(images),
        "line_kinds": dict(kinds),
        "recall_mean": round(float(np.mean(recalls)), 4),
        "recall_median": round(float(np.median(recalls)), 4),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", help="GlyphSettings overrides as JSON objects, one run each")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--lines", action="store_true", help="print every line not painted in full")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    models = LocalModels()
    for overrides in args.settings:
        print(overrides, json.dumps(run(models, GlyphSettings(**json.loads(overrides)), args.photos, args.lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
