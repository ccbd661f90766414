"""Development set for the fill routes, kept apart from `make eval`'s photos.

The dev photos of export/glyph_dev.py (lomiri, ukui, scikit-image and wheel photos that make eval
does not use), 960 px long: block masks (seed 11), object masks (seed 12) and the true glyph masks
of rendered captions (glyph_dev's scenes). Rows: inpaint's `auto` (as served, with the injected
ONNX models), `auto_classical` (auto with `refine` empty: the classical fills inpaint_refine
starts from) and `auto_refine_all` (inpaint_refine over fsr's windows too), the fast fill, and
FSR_FAST and PatchMatch on the whole image; pooled and median PSNR in the hole (captions: the glyphs
grown 2 px) and median ms.

    python -m export.fill_dev [--photos 24] [--no-classical] [--kinds block,object,text] [--routes auto,fast]
        [--classical-context 256]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import cv2
import numpy as np

import retouch.inpaint
from export.eval_edits import LocalModels, block_mask, grow, object_mask, psnr
from export.glyph_dev import dev_photos, dev_scene, pooled_psnr
from export.inpaint_data import load_rgb
from retouch.inpaint import InpaintSettings, classical_fill, inpaint

SOURCES = ("lomiri", "ukui", "skimage", "wheel")


KINDS = {"block": 11, "object": 12, "text": 13}  # mask kind -> its seed


def cases(photos: int, kinds=tuple(KINDS)):
    """(kind, image, truth, hole, scored region) for each mask kind and dev photo."""
    images = dev_photos(SOURCES, photos)
    for kind in kinds:
        seed = KINDS[kind]
        rng = np.random.default_rng(seed)
        for k, image in enumerate(images):
            rgb = load_rgb(image, 960)
            if kind != "text":
                hole = (block_mask if kind == "block" else object_mask)(rgb.shape[:2], rng)
                yield kind, rgb, rgb, hole, hole
                continue
            scene = dev_scene(image.key, rgb, k)
            if scene.lines:
                yield kind, scene.rgb, scene.photo, scene.ink, grow(scene.ink, 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--no-classical", action="store_true", help="only the served routes (faster)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="mask kinds, comma-separated")
    parser.add_argument("--routes", default="auto,fast", help="inpaint routes served, comma-separated")
    parser.add_argument(
        "--classical-context",
        type=int,
        default=None,
        help="known pixels a classical route's fill sees around its holes (retouch.inpaint.CLASSICAL_CONTEXT)",
    )
    args = parser.parse_args(argv)
    if args.classical_context is not None:
        retouch.inpaint.CLASSICAL_CONTEXT = args.classical_context
    cv2.setNumThreads(1)
    models = LocalModels()
    rows: dict[str, list[tuple[float, float, int, float]]] = {}

    def served(route, **settings):
        return lambda src, hole: asyncio.run(
            inpaint(src, hole.astype(np.uint8) * 255, InpaintSettings(route=route, **settings), models.fill)
        )[0]

    methods = {route: served(route) for route in args.routes.split(",")}
    if "auto" in methods:
        methods["auto_classical"] = served("auto", refine=())
        methods["auto_refine_all"] = served("auto", refine=("fsr", "patchmatch"))
    if not args.no_classical:
        methods |= {
            name: (lambda n: lambda src, hole: classical_fill(n, src, hole))(name)
            for name in ("FSR_FAST", "PatchMatch")
        }
    for kind, src, truth, hole, region in cases(args.photos, args.kinds.split(",")):
        for name, fill in methods.items():
            start = time.perf_counter()
            out = fill(src, hole)
            ms = (time.perf_counter() - start) * 1e3
            error = float(((out[region].astype(np.float64) - truth[region]) ** 2).sum())
            rows.setdefault(f"{kind} {name}", []).append((psnr(out, truth, region), error, int(region.sum()) * 3, ms))
    print("| mask, fill | PSNR pooled | PSNR median | ms median |\n|---|---|---|---|")
    for key, r in rows.items():
        pooled = pooled_psnr(sum(x[1] for x in r), sum(x[2] for x in r))
        print(f"| {key} | {pooled:.2f} | {np.median([x[0] for x in r]):.2f} | {np.median([x[3] for x in r]):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
