"""Text rendered onto real photographs, with each line's ground truth kept from the rendering.

A scene is a pure function of (photo, seed, layout): fonts are DejaVu (Debian's fonts-dejavu-core)
when installed, else Pillow's bundled font. Each line is drawn on its own layer, so its ink is
known exactly; its ground-truth polygon is the rotated rectangle around that ink.

How a detection is scored (docs/text.md):
- a line is *found* when the detected boxes (undilated) cover at least FOUND_COVERAGE of its
  ground-truth rectangle;
- *false-positive area* is the part of the served mask outside every line's allowance (its
  rectangle grown by half the line's height plus the mask dilation: DB's unclip legitimately
  reaches about that far), as a fraction of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed-Oblique.ttf",
    "DejaVuSerif-Bold.ttf",
)
WORDS = (
    "sale",
    "open",
    "daily",
    "photo",
    "retouch",
    "coffee",
    "street",
    "market",
    "summer",
    "2024",
    "call",
    "now",
    "free",
    "delivery",
    "garden",
    "hotel",
    "station",
    "north",
    "limited",
    "offer",
    "www.example.com",
    "No. 42",
    "EXIT",
    "Menu",
    "fresh",
    "bread",
    "copyright",
    "studio",
)
FOUND_COVERAGE = 0.5
DENSE_MAX_SIZE = 28  # px; six larger lines rarely fit a photo of a few hundred pixels
# Luminance difference between text and the background under it, per contrast level.
CONTRAST = {"high": 150, "medium": 80, "low": 40}
# A line must stay legible all along: this share of its ink at least LEGIBLE levels of luminance
# away from the photo under it (half the "low" level).
VISIBLE, LEGIBLE = 0.9, 20


def font(name: str | None, size: int) -> ImageFont.FreeTypeFont:
    if name and (FONT_DIR / name).exists():  # an absolute name replaces FONT_DIR
        return ImageFont.truetype(str(FONT_DIR / name), size)
    return ImageFont.load_default(size)  # Pillow's bundled font when DejaVu is missing


@dataclass
class Line:
    text: str
    font: str
    size: int  # px
    angle: float  # degrees, counter-clockwise
    contrast: str
    ink: np.ndarray  # HxW bool: every pixel the line visibly changed
    quad: np.ndarray  # [4, 2] float32 rotated rectangle around the ink
    style: str = "plain"

    @property
    def height(self) -> float:
        """Short side of the ground-truth rectangle."""
        return float(min(np.linalg.norm(self.quad[1] - self.quad[0]), np.linalg.norm(self.quad[2] - self.quad[1])))


@dataclass
class Scene:
    name: str
    rgb: np.ndarray
    lines: list[Line] = field(default_factory=list)
    photo: np.ndarray | None = None  # the photo without the text

    @property
    def ink(self) -> np.ndarray:
        """HxW bool: every pixel any line changed."""
        ink = np.zeros(self.rgb.shape[:2], bool)
        for line in self.lines:
            ink |= line.ink
        return ink


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def text_colour(background: np.ndarray, contrast: str, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """A random hue whose luminance differs from the background's mean by the contrast level, on
    the side (lighter or darker) where the line stays legible over the background pixels (N x 3)
    it covers; None when neither side does: part of the line would vanish into the photo."""
    lum = luminance(background.reshape(-1, 3).astype(np.float32))
    delta = CONTRAST[contrast]
    sides = (1, -1) if rng.random() < 0.5 else (-1, 1)
    hue = rng.uniform(0.3, 1.0, 3)
    for side in sides:
        target = float(lum.mean()) + side * delta
        if not 0 <= target <= 255:
            continue
        colour = hue * target / max(luminance(hue[None])[0], 1e-3)
        if colour.max() > 255:  # too bright for this hue: grey at that luminance
            colour = np.full(3, target)
        colour = np.clip(np.round(colour), 0, 255)
        if (np.abs(luminance(colour[None])[0] - lum) >= LEGIBLE).mean() >= VISIBLE:
            return tuple(int(c) for c in colour)
    return None


def _place(layer: Image.Image, canvas: Image.Image, centre: tuple[float, float]) -> np.ndarray | None:
    """The layer pasted centred at `centre` on a canvas-sized alpha; None if any of it would leave
    the image (or come within 2 px of its edge)."""
    left = int(round(centre[0] - layer.width / 2))
    top = int(round(centre[1] - layer.height / 2))
    placed = Image.new("L", canvas.size, 0)
    placed.paste(layer, (left, top))  # clips whatever falls outside
    alpha = np.asarray(placed)
    ys, xs = np.nonzero(alpha)
    if (
        int(alpha.sum()) != int(np.asarray(layer).sum(dtype=np.int64))
        or not len(ys)
        or min(ys.min(), xs.min()) < 2
        or ys.max() >= canvas.height - 2
        or xs.max() >= canvas.width - 2
    ):
        return None
    return alpha


def _layers(text: str, f, size: int, angle: float, style: str) -> dict[str, Image.Image]:
    """Alpha layers of one line: the letters ("fill"), and for the styled kinds an outline around
    them or a soft drop shadow under them, all on one canvas so they stay registered."""
    outline = max(1, size // 12) if style == "outline" else 0
    x0, y0, x1, y1 = f.getbbox(text, stroke_width=outline)
    pad = size
    shape = (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
    origin = (pad - x0, pad - y0)
    layers = {}
    fill = Image.new("L", shape, 0)
    ImageDraw.Draw(fill).text(origin, text, fill=255, font=f)
    layers["fill"] = fill
    if style == "outline":
        ring = Image.new("L", shape, 0)
        ImageDraw.Draw(ring).text(origin, text, fill=255, font=f, stroke_width=outline, stroke_fill=255)
        layers["under"] = ring
    elif style == "shadow":
        offset = max(1, size // 14)
        shadow = Image.new("L", shape, 0)
        ImageDraw.Draw(shadow).text((origin[0] + offset, origin[1] + offset), text, fill=255, font=f)
        blurred = cv2.GaussianBlur(np.asarray(shadow, np.float32), (0, 0), max(0.8, size / 30))
        layers["under"] = Image.fromarray(np.clip(blurred * 0.85, 0, 255).astype(np.uint8))
    return {k: v.rotate(angle, resample=Image.BICUBIC, expand=True) for k, v in layers.items()}


STYLES = ("plain", "outline", "shadow", "watermark")
WATERMARK_OPACITY = 0.55


def render_line(
    canvas: Image.Image,
    text: str,
    font_name: str,
    size: int,
    angle: float,
    centre: tuple[float, float],
    contrast: str,
    rng: np.random.Generator,
    style: str = "plain",
) -> Line | None:
    """Draw one line centred at `centre`; None if it would leave the image or could not keep its
    contrast against the photo all along (see text_colour).

    style: plain letters; `outline` (letters in a contrasting outline), `shadow` (a soft dark drop
    shadow under them) or `watermark` (letters at WATERMARK_OPACITY). The line's `ink` is every
    pixel the rendering visibly changed: letters, outline and shadow."""
    f = font(font_name, size)
    layers = _layers(text, f, size, angle, style)
    placed = {k: _place(v, canvas, centre) for k, v in layers.items()}
    if any(v is None for v in placed.values()):
        return None  # part of the line would leave the image
    alpha = placed["fill"]
    letters = alpha > 64
    rgb = np.asarray(canvas)
    colour = text_colour(rgb[letters], contrast, rng)
    if colour is None:
        return None
    ink = letters
    if "under" in placed:  # outline or shadow: the opposite side of the luminance range
        dark = luminance(np.array([colour], np.float32))[0] > 127
        under = (20, 20, 20) if dark else (235, 235, 235)
        canvas.paste(Image.new("RGB", canvas.size, under), (0, 0), Image.fromarray(placed["under"]))
        ink = ink | (placed["under"] > 24)
    opacity = WATERMARK_OPACITY if style == "watermark" else 1.0
    canvas.paste(
        Image.new("RGB", canvas.size, colour), (0, 0), Image.fromarray(np.round(alpha * opacity).astype(np.uint8))
    )
    points = np.column_stack(np.nonzero(ink)[::-1]).astype(np.float32)
    quad = cv2.boxPoints(cv2.minAreaRect(points)).astype(np.float32)
    return Line(text, font_name, size, angle, contrast, ink, quad, style)


def random_text(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(WORDS, words))


def make_scene(
    name: str,
    photo: np.ndarray,
    seed: int,
    layout: str,
    sizes: tuple[int, int] = (12, 48),
    contrasts: tuple[str, ...] = ("high", "medium", "low"),
    max_angle: float = 30.0,
    lines: int = 6,
    styles: tuple[str, ...] = ("plain",),
    fonts: tuple[str, ...] = FONTS,
) -> Scene:
    """Lines of text on `photo`. layout: sparse (scattered lines, half of them at random angles) or
    dense (a paragraph of body text: one font, size and angle, lines 1.6 sizes apart). Each line
    (each paragraph, when dense) takes one of `styles` (see render_line) and `fonts` (file names
    under FONT_DIR or absolute paths)."""
    rng = np.random.default_rng(seed)

    def pick_style() -> str:  # a single style draws nothing, so plain scenes stay as they were
        return styles[0] if len(styles) == 1 else str(rng.choice(styles))

    canvas = Image.fromarray(photo).convert("RGB")
    h, w = photo.shape[:2]
    scene = Scene(name, photo, photo=photo)
    taken = np.zeros((h, w), bool)  # lines must not touch: each stays one ground-truth object
    if layout == "dense":  # body text: a paragraph of small lines
        size = int(rng.integers(sizes[0], min(sizes[1], DENSE_MAX_SIZE) + 1))
        font_name = fonts[int(rng.integers(len(fonts)))]
        angle = float(rng.uniform(-max_angle, max_angle))
        contrast = str(rng.choice(contrasts))
        style = pick_style()
        step = 1.6 * size
        direction = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))])  # down the page
        texts = [random_text(rng, int(rng.integers(2, 4))) for _ in range(lines)]
        best: tuple[list, Image.Image] = ([], canvas)
        for _ in range(20):  # paragraph positions, until every line fits and stays visible
            trial = canvas.copy()
            start = (
                np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h]) - direction * step * (lines - 1) / 2
            )
            drawn = [
                render_line(
                    trial, text, font_name, size, angle, tuple(start + direction * step * i), contrast, rng, style
                )
                for i, text in enumerate(texts)
            ]
            drawn = [line for line in drawn if line is not None]
            if len(drawn) > len(best[0]):
                best = (drawn, trial)
            if len(drawn) == lines:
                break
        scene.lines, canvas = best
    else:
        for _ in range(lines * 20):
            if len(scene.lines) == lines:
                break
            size = int(rng.integers(sizes[0], sizes[1] + 1))
            angle = float(rng.uniform(-max_angle, max_angle)) if rng.random() < 0.5 else 0.0
            trial = canvas.copy()
            line = render_line(
                trial,
                random_text(rng, int(rng.integers(1, 4))),
                fonts[int(rng.integers(len(fonts)))],
                size,
                angle,
                (rng.uniform(0, w), rng.uniform(0, h)),
                str(rng.choice(contrasts)),
                rng,
                pick_style(),
            )
            if line is None:
                continue
            zone = cv2.dilate(line.ink.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
            if (zone & taken).any():
                continue
            canvas, taken = trial, taken | zone
            scene.lines.append(line)
    scene.rgb = np.asarray(canvas).copy()
    return scene


def quad_mask(quads, shape, grow: float = 0.0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for q in quads:
        q = np.asarray(q, np.float32)
        if grow:
            (cx, cy), (qw, qh), a = cv2.minAreaRect(q)
            q = cv2.boxPoints(((cx, cy), (qw + 2 * grow, qh + 2 * grow), a))
        cv2.fillPoly(mask, [np.round(q * 16).astype(np.int32)], 1, shift=4)
    return mask.astype(bool)


@dataclass
class Score:
    lines: int
    found: int
    missed: list  # (size, contrast, angle) of each missed line
    false_positive_area: float  # fraction of the image
    ink_in_mask: float  # fraction of all text ink inside the served mask


def score(scene: Scene, boxes: np.ndarray, mask: np.ndarray, mask_dilation: int) -> Score:
    shape = scene.rgb.shape[:2]
    detected = quad_mask(boxes, shape)
    missed = []
    allowance = np.zeros(shape, bool)
    for line in scene.lines:
        truth = quad_mask([line.quad], shape)
        if (detected & truth).sum() < FOUND_COVERAGE * truth.sum():
            missed.append((line.size, line.contrast, round(line.angle, 1), line.text))
        allowance |= quad_mask([line.quad], shape, grow=0.5 * line.height + mask_dilation)
    ink = scene.ink
    served = mask > 0
    return Score(
        len(scene.lines),
        len(scene.lines) - len(missed),
        missed,
        float((served & ~allowance).sum()) / served.size,
        float((served & ink).sum()) / max(int(ink.sum()), 1),
    )
