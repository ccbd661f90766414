"""Rule-based glyph masks against the learned segmenter, on export/eval_edits.py's own scenes.

    python -m export.eval_glyph_segmenter --checkpoint export/checkpoints/glyph.pt [--photos 12]
        [--out docs/reports/glyph_segmenter.md]

Scenes and text-free photos are eval_edits' (export/edit_data.py, the same seed and photo choice);
boxes come from the served detector (model_repository/text_detector in onnxruntime). Per method:
- mask recall of the true ink, per line and pooled; painted area over the true ink grown 2 px (the
  text region); precision (the share of painted pixels inside that region);
- TELEA filled with that mask, PSNR in the text region against the photo without the text (what
  eval_edits' "TELEA, the service's mask" row measures);
- text-free photos with any pixel painted.

The learned segmenter's threshold and its text/no-text gate (min box fill) are chosen on the
training data's validation shards (export/glyph_data.py), never on these scenes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from text_scenes import score  # tests/ is on the path through export.edit_data

from export.edit_data import caption_scenes, text_free_photos
from export.eval_edits import SEED, grow, psnr
from export.glyph_data import detector, random_view, training_photos
from export.inpaint_data import load_rgb
from export.train_glyph_segmenter import GlyphNet, load_shards, pad_to
from retouch.glyphs import GlyphSettings, LineMask, crop_input, ink_confidence, learned_line_mask, line_crop, text_masks
from retouch.inpaint import classical_fill

ROOT = Path(__file__).resolve().parents[1]


def torch_probs(model: GlyphNet):
    @torch.no_grad()
    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [torch.sigmoid(model(torch.from_numpy(pad_to(x)[None])))[0, 0, :, : x.shape[-1]].numpy() for x in inputs]

    return run


def operating_point(probs, val_crops: list[dict], max_negative_rate: float = 0.01) -> dict:
    """Threshold: the best pixel F2 (recall counts double) on the validation crops with ink.
    min_confidence (the segmenter's text/no-text gate, retouch.glyphs.learned_line_mask): the
    smallest that at most `max_negative_rate` of the boxes on text-free photos reach."""
    inputs = [
        np.concatenate(
            [c["image"].transpose(2, 0, 1).astype(np.float32) / 255.0, c["box"][None].astype(np.float32) / 255.0]
        )
        for c in val_crops
    ]
    maps = probs(inputs)
    best = None
    for t in np.arange(0.1, 0.91, 0.05):
        tp = fp = fn = 0
        for c, p in zip(val_crops, maps):
            if c["ink"]:
                truth, hit = c["label"] > 127, p > t
                tp += int((truth & hit).sum())
                fp += int((~truth & hit).sum())
                fn += int((truth & ~hit).sum())
        recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        f2 = 5 * precision * recall / max(4 * precision + recall, 1e-9)
        if best is None or f2 > best["f2"]:
            best = {"threshold": round(float(t), 2), "f2": f2, "recall": recall, "precision": precision}
    t = best["threshold"]
    confidence = {"ink": [], "text-free": []}
    for c, p in zip(val_crops, maps):
        kind = "ink" if c["ink"] else "text-free" if c["scene"] == 0 else None
        if kind:
            confidence[kind].append(ink_confidence(p, c["box"] > 127))
    negatives, positives = np.sort(confidence["text-free"]), np.array(confidence["ink"])
    k = int(np.floor(max_negative_rate * len(negatives)))
    gate = float(negatives[len(negatives) - 1 - k]) + 1e-4
    return {
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()},
        "min_confidence": round(gate, 4),
        "val_crops_with_ink": int(len(positives)),
        "val_text_free_crops": int(len(negatives)),
        "val_ink_crops_passing_gate": round(float((positives >= gate).mean()), 4),
    }


def rescue_gate(detect, probs, threshold: float, views: int, seed: int = 2026) -> dict:
    """The segmenter's confidence on the boxes the rule calls `uncertain` on text-free TRAINING
    photos (random views, export/glyph_data.py): a rescue gate over all of them changes none."""
    photos = training_photos()
    seen = []
    for k in range(views):
        rng = np.random.default_rng([seed, k])
        rgb = random_view(load_rgb(photos[int(rng.integers(len(photos)))]), rng)
        found = detect(rgb)
        _, lines = text_masks(rgb, found.boxes, found.scores, GlyphSettings())
        for (line, _), rule in zip(
            learned_masks(rgb, found.boxes, probs, {"threshold": threshold, "min_confidence": 1.0}), lines
        ):
            if rule.kind == "uncertain":
                seen.append(line.figures.get("confidence", 0.0))
    return {"views": views, "uncertain_boxes": len(seen), "min_confidence": round(max(seen, default=0.0) + 1e-4, 4)}


def learned_masks(rgb: np.ndarray, boxes: np.ndarray, probs, point: dict) -> list[tuple[LineMask, bool]]:
    """Per box: (its learned LineMask, ungated: the mask over the threshold whatever the box's fill;
    whether the segmenter's gate calls it text)."""
    crops = [line_crop(q, rgb.shape[:2]) for q in boxes]
    kept = [c for c in crops if c is not None]
    maps = iter(probs([crop_input(rgb, c) for c in kept]))
    out = []
    for crop in crops:
        if crop is None:
            out.append((LineMask("texture", 0, 0, np.zeros((0, 0), bool), {}), False))
            continue
        line = learned_line_mask(crop, next(maps), point["threshold"], 0.0)
        out.append((line, line.figures["confidence"] >= point["min_confidence"]))
    return out


METHODS = {
    "rule": "retouch.glyphs.text_masks, default GlyphSettings (served)",
    "learned": "the segmenter alone: its mask on the boxes its gate (min_confidence) calls text",
    "rule lines, learned mask": "the lines the rule paints (kind glyph), with the learned mask instead",
    "rule lines, union mask": "the lines the rule paints, with the union of both masks",
    "rule + rescued lines": "the rule's masks, plus the rule's `uncertain` lines where the segmenter's confidence passes the rescue gate, with the learned mask",
    "rule + rescued lines, union mask": "both: the union of both masks on the lines the rule paints, plus the rescued lines (rescue gate: set on the rule's uncertain boxes on text-free training photos)",
}


def combine(shape, rule_lines: list, learned: list, rescue_confidence: float) -> dict:
    """{method: (HxW bool mask, per-box kinds)} for METHODS: per box, which masks are painted."""
    out = {m: (np.zeros(shape, bool), []) for m in METHODS}
    for rule, (line, text) in zip(rule_lines, learned):
        glyph = rule.kind == "glyph"
        rescued = rule.kind == "uncertain" and line.figures.get("confidence", 0.0) >= rescue_confidence
        choices = {
            "rule": ([rule], rule.kind),
            "learned": ([line] if text else [], "glyph" if text else "texture"),
            "rule lines, learned mask": ([line] if glyph else [], rule.kind),
            "rule lines, union mask": ([rule, line] if glyph else [], rule.kind),
            "rule + rescued lines": (
                [rule] if glyph else [line] if rescued else [],
                "glyph" if glyph or rescued else rule.kind,
            ),
            "rule + rescued lines, union mask": (
                [rule, line] if glyph else [line] if rescued else [],
                "glyph" if glyph or rescued else rule.kind,
            ),
        }
        for method, (painted, kind) in choices.items():
            mask, kinds = out[method]
            for p in painted:
                h, w = p.mask.shape
                mask[p.y0 : p.y0 + h, p.x0 : p.x0 + w] |= p.mask
            kinds.append(kind)
    return out


def measure(scene, painted: np.ndarray) -> dict:
    ink = scene.ink
    region = grow(ink, 2)
    filled = classical_fill("TELEA", scene.rgb, painted > 0) if painted.any() else scene.rgb
    err = (filled[region].astype(np.float64) - scene.photo[region]) ** 2
    return {
        "recall": float((painted & ink).sum() / max(ink.sum(), 1)),
        "area": float(painted.sum() / max(region.sum(), 1)),
        "precision": float((painted & region).sum() / max(painted.sum(), 1)) if painted.any() else None,
        "psnr": psnr(filled, scene.photo, region),
        "sse": float(err.sum()),
        "n": int(err.size),
        "ink": int(ink.sum()),
        "hit": int((painted & ink).sum()),
        "painted": int(painted.sum()),
        "inside": int((painted & region).sum()),
        "region": int(region.sum()),
        "lines": [float((painted & line.ink).sum() / max(line.ink.sum(), 1)) for line in scene.lines],
    }


def summarise(rows: list[dict]) -> dict:
    lines = np.array([r for row in rows for r in row["lines"]])
    sse, n = sum(r["sse"] for r in rows), sum(r["n"] for r in rows)
    return {
        "recall_median": float(np.median([r["recall"] for r in rows])),
        "recall_mean": float(np.mean([r["recall"] for r in rows])),
        "recall_pooled": sum(r["hit"] for r in rows) / max(sum(r["ink"] for r in rows), 1),
        "area_median": float(np.median([r["area"] for r in rows])),
        "area_pooled": sum(r["painted"] for r in rows) / max(sum(r["region"] for r in rows), 1),
        "precision_pooled": sum(r["inside"] for r in rows) / max(sum(r["painted"] for r in rows), 1),
        "psnr_median": float(np.median([r["psnr"] for r in rows])),
        "psnr_pooled": float(10 * np.log10(255.0**2 / max(sse / max(n, 1), 1e-10))),
        "lines": int(lines.size),
        "lines_recall_ge_0.9": int((lines >= 0.9).sum()),
        "lines_recall_0.5_0.9": int(((lines >= 0.5) & (lines < 0.9)).sum()),
        "lines_recall_lt_0.1": int((lines < 0.1).sum()),
        "line_recall_median": float(np.median(lines)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "export/checkpoints/glyph.pt")
    parser.add_argument("--data", type=Path, default=ROOT / "build/glyph-data")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument(
        "--rescue-views", type=int, default=200, help="text-free training photo views the rescue gate is set on"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build/glyph_segmenter_eval.json")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    state = torch.load(args.checkpoint, weights_only=False)
    model = GlyphNet()
    model.load_state_dict(state["model"])
    model.eval()
    probs = torch_probs(model)
    started = time.time()
    point = operating_point(probs, load_shards([args.data / p for p in state["val_shards"]]))
    print("operating point", point, file=sys.stderr, flush=True)
    detect = detector()
    rescue = rescue_gate(detect, probs, point["threshold"], args.rescue_views)
    print("rescue gate", rescue, file=sys.stderr, flush=True)
    photos = text_free_photos()
    chosen = photos[:: max(1, len(photos) // args.photos)][: args.photos]
    scenes = caption_scenes(chosen, seed=SEED)
    methods = tuple(METHODS)
    rows = {m: [] for m in methods}
    kinds = {m: {} for m in methods}

    missed = []

    def masks(rgb, scene=None):
        found = detect(rgb)
        if scene is not None:
            missed.extend(score(scene, found.boxes, np.zeros(rgb.shape[:2], np.uint8), 0).missed)
        _, rule_lines = text_masks(rgb, found.boxes, found.scores, GlyphSettings())
        return combine(
            rgb.shape[:2], rule_lines, learned_masks(rgb, found.boxes, probs, point), rescue["min_confidence"]
        )

    for scene in scenes:
        for m, (mask, line_kinds) in masks(scene.rgb, scene).items():
            rows[m].append(measure(scene, mask))
            for k in line_kinds:
                kinds[m][k] = kinds[m].get(k, 0) + 1
        print(
            f"  {scene.name}: " + ", ".join(f"{m} {rows[m][-1]['recall']:.3f}" for m in methods),
            file=sys.stderr,
            flush=True,
        )
    free = {m: [] for m in methods}
    for name, rgb in photos:
        for m, (mask, _) in masks(rgb).items():
            if mask.any():
                free[m].append((name, float(mask.mean())))
    result = {
        "methods_described": METHODS,
        "operating_point": point,
        "rescue_gate": rescue,
        "checkpoint_step": state["step"],
        "scenes": len(scenes),
        "detector_missed_lines": len(missed),
        "text_free_photos": len(photos),
        "minutes": round((time.time() - started) / 60, 1),
        "methods": {m: {**summarise(rows[m]), "box_kinds": kinds[m], "text_free_changed": free[m]} for m in methods},
        "per_scene": {
            m: [{k: v for k, v in r.items() if k != "lines"} | {"scene": s.name} for r, s in zip(rows[m], scenes)]
            for m in methods
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("\n".join(render(result)))
    return 0


def render(result: dict) -> list[str]:
    """The comparison as markdown tables (docs/reports/glyph_segmenter.md quotes them)."""
    point = result["operating_point"]
    out = [
        f"Checkpoint step {result['checkpoint_step']}; operating point (validation shards): threshold "
        f"{point['threshold']} (pixel F2 {point['f2']}, recall {point['recall']}, precision {point['precision']}), "
        f"min_confidence {point['min_confidence']} (passes {point['val_ink_crops_passing_gate']:.1%} of "
        f"{point['val_crops_with_ink']} validation crops with ink, 1 % of {point['val_text_free_crops']} boxes "
        "on text-free photos).",
        "",
        "| method | recall median | recall mean | recall pooled | area / true+2px median | area pooled | precision pooled "
        "| TELEA PSNR median | TELEA PSNR pooled | lines ≥0.9 / 0.5-0.9 / <0.1 recall | boxes by kind | text-free changed |",
        "|---" * 12 + "|",
    ]
    rescue = result["rescue_gate"]
    out[0] += (
        f" Rescue gate: confidence over {rescue['min_confidence']}, the highest the segmenter gave any of "
        f"{rescue['uncertain_boxes']} `uncertain` boxes on {rescue['views']} text-free training photo views."
    )
    out[0] += f" The detector misses {result['detector_missed_lines']} lines outright (no method can paint them)."
    for method, m in result["methods"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(m["box_kinds"].items()))
        changed = len(m["text_free_changed"])
        names = ", ".join(n for n, _ in m["text_free_changed"])
        out.append(
            f"| {method} | {m['recall_median']:.4f} | {m['recall_mean']:.4f} | {m['recall_pooled']:.4f} "
            f"| {m['area_median']:.3f} | {m['area_pooled']:.3f} | {m['precision_pooled']:.4f} "
            f"| {m['psnr_median']:.2f} | {m['psnr_pooled']:.2f} | {m['lines_recall_ge_0.9']} / "
            f"{m['lines_recall_0.5_0.9']} / {m['lines_recall_lt_0.1']} of {m['lines']} | {kinds} "
            f"| {changed} of {result['text_free_photos']}{f' ({names})' if names else ''} |"
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
