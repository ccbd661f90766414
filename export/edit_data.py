"""Photos and scenes for the edit-quality evaluation (export/eval_edits.py).

- Text-free photos of many kinds (landscape, foliage, flowers, food, animals, texture, architecture,
  night sky, water) from Debian's wallpaper packages and the scikit-image, scikit-learn and
  matplotlib wheels. Every one is checked by eye to hold no text: remove_text must return them
  unchanged.
- Scenes: captions and watermarks rendered onto photos (tests/text_scenes.py), with fonts the
  service's tests do not use (Liberation, FreeFont, Noto) and outlines, drop shadows and
  semi-transparent watermarks; the true glyph mask is kept from the rendering.

Install the photos once: apt-get install gnome-backgrounds plasma-workspace-wallpapers mate-backgrounds
fonts-liberation fonts-freefont-ttf fonts-noto-core (make eval does it). Debian's opencv-doc images
are reserved for independent evaluation and never used here.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the scene generator the tests use
from text_scenes import Scene, make_scene  # noqa: E402

PLASMA = Path("/usr/share/wallpapers")
MATE = Path("/usr/share/backgrounds/mate")
GNOME = Path("/usr/share/backgrounds/gnome")
# Photos with no text in them (kind in brackets), looked at one by one.
TEXT_FREE = {
    "plasma/Autumn": "tree, fog",
    "plasma/BytheWater": "jetty, water",
    "plasma/ColdRipple": "pier, fog",
    "plasma/ColorfulCups": "cups, pattern",
    "plasma/DarkestHour": "lake at dusk",
    "plasma/EveningGlow": "boats, sunset",
    "plasma/FallenLeaf": "leaf, bokeh",
    "plasma/Grey": "architecture, curves",
    "plasma/Kite": "sky, clouds",
    "plasma/MilkyWay": "night sky",
    "plasma/OneStandsOut": "moss, texture",
    "plasma/Path": "forest",
    "plasma/Volna": "beach, waves",
    "plasma/summer_1am": "lake, twilight",
    "mate/abstract/Elephants": "painting, dense detail",
    "mate/nature/Aqua": "water drop",
    "mate/nature/Blinds": "leaf veins",
    "mate/nature/Dune": "grass, sea",
    "mate/nature/FreshFlower": "flower",
    "mate/nature/Garden": "flowers",
    "mate/nature/GreenMeadow": "grass",
    "mate/nature/LadyBird": "insect, foliage",
    "mate/nature/RainDrops": "leaves, drops",
    "mate/nature/Storm": "storm, road",
    "mate/nature/TwoWings": "insect, flower",
    "mate/nature/Wood": "wood grain",
    "mate/nature/YellowFlower": "flower",
    "gnome/grid-l": "mosaic texture",
    "gnome/licorice-l": "pattern",
    "gnome/truchet-l": "pattern",
    "gnome/wood-l": "wood",
    "skimage/coffee": "food",
    "skimage/chelsea": "animal, fur",
    "skimage/brick": "brick wall",
    "skimage/grass": "grass",
    "skimage/gravel": "gravel",
    "skimage/hubble_deep_field": "galaxies",
}
SCENE_FONTS = tuple(
    str(p)
    for d in ("liberation", "freefont", "noto")
    for p in sorted(Path("/usr/share/fonts/truetype", d).glob("*.ttf"))
    if any(
        s in p.name
        for s in (
            "Sans-Regular",
            "Serif-Bold",
            "SansNarrow-Bold",
            "Mono-Regular",
            "FreeSans.",
            "FreeSerifBold.",
            "FreeMonoBold.",
            "NotoSans-Regular",
            "NotoSerif-Bold",
            "NotoSans-Black",
        )
    )
)
SCENE_STYLES = ("plain", "outline", "shadow", "watermark")


def _file(key: str) -> Path | None:
    source, name = key.split("/", 1)
    if source == "plasma":
        images = sorted((PLASMA / name / "contents" / "images").glob("*.[jp][pn]g"))
        medium = [p for p in images if p.stem.startswith(("1280x", "1920x1080", "2560x", "3840x", "5120x"))]
        return min(medium or images, key=lambda p: p.stat().st_size) if images else None
    if source == "mate":
        found = sorted((MATE / Path(name).parent).glob(Path(name).name + ".*"))
        return found[0] if found else None
    if source == "gnome":
        path = GNOME / f"{name}.webp"
        return path if path.exists() else None
    return None


@cache
def load_photo(key: str, long_side: int = 960) -> np.ndarray | None:
    """HxWx3 uint8, area-downscaled to `long_side` at most; None when the package is not installed."""
    if key.startswith("skimage/"):
        from skimage import data

        rgb = getattr(data, key.split("/", 1)[1])()
    else:
        path = _file(key)
        if path is None:
            return None
        image = Image.open(path)
        image.draft("RGB", (long_side, long_side))  # JPEG: decode at a reduced scale, fast
        rgb = np.asarray(image.convert("RGB"))
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    scale = long_side / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[..., :3])


def text_free_photos(long_side: int = 960) -> list[tuple[str, np.ndarray]]:
    return [(k, rgb) for k in TEXT_FREE if (rgb := load_photo(k, long_side)) is not None]


def caption_scenes(photos: list[tuple[str, np.ndarray]], per_photo: int = 1, seed: int = 0) -> list[Scene]:
    """Captions and watermarks on each photo: sparse lines (12-48 px) and dense paragraphs in turn,
    every style and font of SCENE_STYLES and SCENE_FONTS."""
    scenes = []
    for i, (name, rgb) in enumerate(photos):
        for j in range(per_photo):
            k = i * per_photo + j
            layout = "dense" if k % 2 else "sparse"
            scenes.append(
                make_scene(
                    f"{name}#{j}-{layout}",
                    rgb,
                    seed=seed + k,
                    layout=layout,
                    lines=int(3 + k % 6),
                    styles=SCENE_STYLES,
                    fonts=SCENE_FONTS or None,
                )
            )
    return scenes
