"""Training data for a learned glyph segmenter: per-line crops around the served detector's boxes.

    python -m export.glyph_data --scenes 400 --out build/glyph-data

Scenes are rendered by tests/text_scenes.py on the inpainting TRAINING split's photos
(export/inpaint_data.py), minus every photo the edit-quality evaluation uses (export/edit_data.py's
TEXT_FREE, which holds its scene photos too), with fonts the evaluation does not use (DejaVu and
Quicksand; the evaluation renders Liberation, FreeFont and Noto). Each photo is a random crop of
the cached training image, so one picture gives many backgrounds.

The served detector (model_repository/text_detector, in onnxruntime) runs on every scene and on
the photo without text. Every box it finds is cut out with retouch.glyphs.line_crop (rectified
to a fixed height) together with its label: the true ink of every line, grown 1 px (`--label-grow`), warped the
same way. Boxes on the text-free photos and boxes off the text are negatives (label all zero):
they teach the net "no text here", which keeps text-free photos untouched.

Shards of crops go to <out>/shard-<k>.npz (uint8 image, uint8 box, uint8 label: 255 = ink).
`--negatives N` writes <out>/neg-<k>.npz instead: N more photo views without text, with the
detector's box threshold lowered to NEGATIVE_BOX_THRESH so that it also yields the near misses
(hard negatives).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from export.edit_data import TEXT_FREE, _file
from export.inpaint_data import TRAIN_ONLY, catalog, load_rgb, split
from retouch.glyphs import line_crop
from retouch.morphology import dilate
from retouch.text import DetectSettings, detect_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from text_scenes import STYLES, make_scene  # noqa: E402

NEGATIVE_BOX_THRESH = 0.3
TRAIN_FONTS = tuple(
    str(p)
    for d in ("dejavu", "quicksand")
    for p in sorted(Path("/usr/share/fonts/truetype", d).glob("*.ttf"))
    if "MathTeXGyre" not in p.name
)


# Training pictures with text or logos of their own (looked at): a negative there would teach "not text".
HAS_TEXT = {"skimage/coins", "skimage/rocket", "mate/GreenTraditional", "ukui/focal-ubuntukylin"}


@cache
def _evaluation_groups() -> tuple[frozenset[str], frozenset[str]]:
    """The catalogue groups of edit_data's evaluation photos, by file (and by name for scikit-image),
    and their pictures' names in lower case."""
    eval_files = {str(p) for k in TEXT_FREE if not k.startswith("skimage/") and (p := _file(k)) is not None}
    groups = {im.group for im in catalog() if im.origin in eval_files}
    groups |= {f"skimage/{k.split('/', 1)[1]}" for k in TEXT_FREE if k.startswith("skimage/")}
    return frozenset(groups), frozenset(k.rsplit("/", 1)[-1].lower() for k in TEXT_FREE)


def evaluated(im) -> bool:
    """Whether a catalogue image is (a variant of) one of edit_data's evaluation photos: its group,
    or a group of the same name (edit_data's mate/gnome keys name pictures in other spellings)."""
    groups, names = _evaluation_groups()
    return im.group in groups or im.group.rsplit("/", 1)[-1].lower() in names


def training_photos() -> list:
    """The inpainting training split without any photo (group) the edit evaluation uses, nor the
    pictures with text in them."""
    train, _ = split(catalog())
    train = [im for im in train if im.source not in TRAIN_ONLY]  # the segmenter's data predates them
    return [im for im in train if not evaluated(im) and "opencv" not in im.origin and im.group not in HAS_TEXT]


def detector(settings: DetectSettings | None = None):
    settings = settings or DetectSettings()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(ROOT / "model_repository/text_detector/1/model.onnx"), options)

    async def infer(batch):
        return session.run(None, {"INPUT": batch})[0]

    return lambda rgb: asyncio.run(detect_text(rgb, settings, infer))[0]


def random_view(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (40-100 % of each side) at a random scale (long side 480-960 px)."""
    h, w = rgb.shape[:2]
    ch, cw = int(h * rng.uniform(0.4, 1.0)), int(w * rng.uniform(0.4, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = rgb[y : y + ch, x : x + cw]
    scale = rng.uniform(480, 960) / max(ch, cw)
    size = (max(64, round(cw * scale)), max(64, round(ch * scale)))
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC))


def crops(rgb: np.ndarray, ink: np.ndarray, boxes: np.ndarray, label_grow: int = 1):
    label = dilate(ink.astype(np.uint8) * 255, label_grow)
    for quad in boxes:
        crop = line_crop(quad, rgb.shape[:2])
        if crop is None:
            continue
        yield crop.cut(rgb), crop.box(), crop.cut(label)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--per-shard", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--negatives", type=int, default=0, help="write N photo views without text instead")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "glyph-data")
    parser.add_argument(
        "--label-grow", type=int, default=1, help="the label is the true ink grown this many px (0: the ink itself)"
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    photos = training_photos()
    print(f"{len(photos)} training photos, fonts {len(TRAIN_FONTS)}", file=sys.stderr)
    negatives = args.negatives > 0
    detect = detector(DetectSettings(box_thresh=NEGATIVE_BOX_THRESH) if negatives else DetectSettings())
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    total = args.negatives if negatives else args.scenes
    for shard in range(0, total, args.per_shard):
        path = args.out / f"{'neg' if negatives else 'shard'}-{shard // args.per_shard:04d}.npz"
        if path.exists():
            continue
        images, boxes_, labels, kinds = [], [], [], []
        for k in range(shard, min(shard + args.per_shard, total)):
            rng = np.random.default_rng([args.seed + 1000 * negatives, k])
            photo = random_view(load_rgb(photos[int(rng.integers(len(photos)))]), rng)
            if negatives:
                for image, box, label in crops(
                    photo, np.zeros(photo.shape[:2], bool), detect(photo).boxes, args.label_grow
                ):
                    images.append(image), boxes_.append(box), labels.append(label), kinds.append(0)
                continue
            layout = "dense" if rng.random() < 0.4 else "sparse"
            scene = make_scene(
                f"train{k}",
                photo,
                seed=int(rng.integers(1 << 31)),
                layout=layout,
                lines=int(rng.integers(2, 8)),
                styles=STYLES,
                fonts=TRAIN_FONTS,
            )
            ink = scene.ink
            for rgb, truth, kind in ((scene.rgb, ink, 1), (photo, np.zeros_like(ink), 0)):
                for image, box, label in crops(rgb, truth, detect(rgb).boxes, args.label_grow):
                    images.append(image), boxes_.append(box), labels.append(label), kinds.append(kind)
        if not images:
            continue
        widths = [im.shape[1] for im in images]
        width = max(widths, default=1)

        def pad(a, width=width):
            return np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2))

        np.savez_compressed(
            path,
            image=np.stack([pad(a) for a in images]),
            box=np.stack([pad(a) for a in boxes_]),
            label=np.stack([pad(a) for a in labels]),
            width=np.array(widths, np.int32),
            scene=np.array(kinds, np.uint8),
        )
        positives = sum(int((lab > 127).any()) for lab in labels)
        print(
            f"{path.name}: {len(images)} crops ({positives} with ink), {time.time() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
