"""Natural images available offline for training and evaluating the inpainting UNet, with licences.

Sources (training only; the CI never retrains, so none of these is installed by scripts/setup.sh):
- scikit-image's bundled data images (in the server venv already);
- scikit-learn's china.jpg and flower.jpg and matplotlib's grace_hopper.jpg, read straight out of
  their wheels, which are downloaded, not installed:
      pip download --no-deps -d build/train-wheels -r requirements/train.txt
- Debian wallpaper packages (apt-get install gnome-backgrounds plasma-workspace-wallpapers
  mate-backgrounds); licences from /usr/share/doc/<package>/copyright.

The held-out split is by image group (light/dark or multi-resolution variants of one picture are
one group), never by crop: every fifth group of each source, in sha256 order of its key.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

WHEEL_DIR = Path("build/train-wheels")
HELD_OUT_EVERY = 5
STORED_SHORT_SIDE = 512  # every image is kept at this short side (downscaled, never upscaled)
CACHE_DIR = Path("build/inpaint-images")


@dataclass(frozen=True)
class SourceImage:
    key: str          # "<source>/<name>", unique
    group: str        # variants of one picture share a group, so they share a split
    source: str
    license: str
    origin: str       # where the file lives
    read: Callable[[], Image.Image]


def _skimage_images() -> list[SourceImage]:
    from skimage import data
    # Photographs only (licences from each function's docstring); the stereo motorcycle
    # (Middlebury, no licence stated) and the moon (none stated) are left out.
    chosen = {
        "astronaut": "public domain (NASA)", "coffee": "CC0 (Rachel Michetti)", "chelsea": "CC0 (Stefan van der Walt)",
        "rocket": "public domain (SpaceX)", "hubble_deep_field": "public domain (NASA)",
        "camera": "CC0 (Lav Varshney)", "coins": "no known copyright restrictions",
        "brick": "CC0 (CC0Textures)", "grass": "CC0 (CC0Textures)", "gravel": "CC0 (CC0Textures)",
    }
    return [SourceImage(f"skimage/{name}", f"skimage/{name}", "skimage", lic, f"skimage.data.{name}()",
                        lambda name=name: Image.fromarray(getattr(data, name)()))
            for name, lic in chosen.items()]


def _wheel_images(wheel_dir: Path) -> list[SourceImage]:
    members = {  # wheel name prefix -> (member path, licence)
        "scikit_learn-": [("sklearn/datasets/images/china.jpg", "CC-BY-2.0 (danielbuechele, Flickr)"),
                          ("sklearn/datasets/images/flower.jpg", "CC-BY-2.0 (vultilion, Flickr)")],
        "matplotlib-": [("matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                         "US Navy photograph, public domain (not stated in the wheel)")],
    }
    found = []
    for prefix, files in members.items():
        for wheel in sorted(wheel_dir.glob(prefix + "*.whl"))[:1]:
            for member, lic in files:
                name = Path(member).stem
                found.append(SourceImage(f"wheels/{name}", f"wheels/{name}", "wheels", lic, f"{wheel.name}:{member}",
                                         lambda w=wheel, m=member: Image.open(io.BytesIO(zipfile.ZipFile(w).read(m)))))
    return found


def _file_image(source: str, group: str, path: Path, root: Path, lic: str) -> SourceImage:
    return SourceImage(f"{source}/{path.relative_to(root)}", f"{source}/{group}", source, lic, str(path),
                       lambda: Image.open(path))


def _largest(paths: list[Path]) -> Path:
    """The highest resolution among variants of one wallpaper, from names like 3840x2160.png."""
    def pixels(p: Path) -> int:
        size = p.stem.rsplit("_", 1)[-1].split("x")
        return int(size[0]) * int(size[1]) if len(size) == 2 and all(v.isdigit() for v in size) else 0
    return max(paths, key=lambda p: (pixels(p), p.name))


def _plasma_images(root: Path = Path("/usr/share/wallpapers")) -> list[SourceImage]:
    lic = "GPL-2+ (KDE Visual Design Group; /usr/share/doc/plasma-workspace-wallpapers/copyright)"
    return [_file_image("plasma", folder.name, _largest(list((folder / "contents" / "images").glob("*.[jp][pn]g"))),
                        root, lic)
            for folder in sorted(root.iterdir()) if any((folder / "contents" / "images").glob("*.[jp][pn]g"))]


def _mate_images(root: Path = Path("/usr/share/backgrounds/mate")) -> list[SourceImage]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.glob("*/*.[jp][pn]g")):
        stem = path.stem.split("_")[0]  # Elephants_3840x2160 -> Elephants
        for family in ("Ubuntu-Mate-", "MATE-Stripes-"):
            stem = family if stem.startswith(family) else stem
        groups.setdefault(stem, []).append(path)
    images = []
    for stem, paths in sorted(groups.items()):
        lic = ("CC-BY-SA-4.0 (Goce Mitevski)" if stem == "Ubuntu-Mate-" else
               "GPL-2+ (/usr/share/doc/mate-backgrounds/copyright)")
        chosen = paths if stem == "Ubuntu-Mate-" else [_largest(paths)]  # four colourings of one design
        images += [_file_image("mate", stem, p, root, lic) for p in chosen]
    return images


def _gnome_images(root: Path = Path("/usr/share/backgrounds/gnome")) -> list[SourceImage]:
    # The copyright file of gnome-backgrounds 43.1 still names older pictures; the package is
    # GPL-2+ with pictures under CC-BY-SA-3.0. The SVGs are skipped (no rasteriser here) and vnc-*
    # are 1-pixel placeholders.
    lic = "CC-BY-SA-3.0 / GPL-2+ (/usr/share/doc/gnome-backgrounds/copyright; 43.x files not listed individually)"
    return [_file_image("gnome", p.stem.rsplit("-", 1)[0], p, root, lic)
            for p in sorted(root.glob("*.webp")) if not p.name.startswith("vnc-")]


def catalog(wheel_dir: Path = WHEEL_DIR) -> list[SourceImage]:
    """Every available source image; missing sources are simply absent (see the report)."""
    images = _skimage_images() + _wheel_images(Path(wheel_dir))
    for finder in (_plasma_images, _mate_images, _gnome_images):
        try:
            images += finder()
        except FileNotFoundError:
            pass
    return images


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def held_out_groups(images: list[SourceImage]) -> set[str]:
    """Every HELD_OUT_EVERY-th group of each source in sha256 order, at least one per source."""
    held = set()
    for source in sorted({im.source for im in images}):
        groups = sorted({im.group for im in images if im.source == source}, key=_rank)
        held |= set(groups[::HELD_OUT_EVERY])
    return held


def split(images: list[SourceImage]) -> tuple[list[SourceImage], list[SourceImage]]:
    """(train, held_out), by group."""
    held = held_out_groups(images)
    return [im for im in images if im.group not in held], [im for im in images if im.group in held]


def load_rgb(image: SourceImage, short_side: int = STORED_SHORT_SIDE, cache_dir: Path | None = CACHE_DIR) -> np.ndarray:
    """HxWx3 uint8 RGB, area-downscaled so the short side is at most `short_side`.

    Decoding the 4K wallpapers takes minutes on a busy CPU, so results are cached as .npy files.
    """
    cached = cache_dir and Path(cache_dir) / f"{_rank(image.key + image.origin)[:20]}_{short_side}.npy"
    if cached and cached.exists():
        return np.load(cached)
    rgb = np.asarray(image.read().convert("RGB"))
    scale = short_side / min(rgb.shape[:2])
    if scale < 1:
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, rgb)
    return rgb


def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator,
                scale: tuple[float, float] = (0.5, 2.0), flip: bool = True) -> np.ndarray:
    """A size x size float32 [0,1] crop of a region `size * s` wide (s in `scale`, clipped to the
    image), resized to size: s > 1 shrinks detail, s < 1 magnifies it like an upscaled crop."""
    h, w = rgb.shape[:2]
    side = int(np.clip(round(size * rng.uniform(*scale)), 8, min(h, w)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = rgb[y:y + side, x:x + side]
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop, dtype=np.float32) / 255.0
