"""Per-request settings: parsed from the request's JSON, validated, and echoed in every report.

Each operation declares its settings as a frozen dataclass whose field defaults are the documented
defaults. Unknown keys and out-of-range values are refused with a message naming the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from retouch.codecs import RESPONSE_FORMATS
from retouch.errors import InvalidInput, parse_json

T = TypeVar("T")


def parse_settings(cls: type[T], raw: bytes | str | dict | None, base: T | None = None) -> T:
    """Build settings dataclass `cls` from JSON bytes (or a dict); what is not given keeps its
    default (the class's, or `base`'s when given)."""
    if raw is None or raw in (b"", ""):
        values: dict[str, Any] = {}
    elif isinstance(raw, dict):
        values = dict(raw)
    else:
        values = parse_json(raw)
        if not isinstance(values, dict):
            raise InvalidInput(f"SETTINGS must be a JSON object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown setting(s) {unknown}; known settings: {sorted(fields)}")
    for name, value in values.items():
        expected = type(fields[name].default)
        if dataclasses.is_dataclass(expected):  # a nested step's settings, e.g. remove_text.inpaint
            if not isinstance(value, dict):
                raise InvalidInput(f"setting {name!r} must be a JSON object of {name} settings, got {value!r}")
            values[name] = parse_settings(expected, value, base=fields[name].default)
            continue
        # JSON has one number type; accept 2.0 for an int only when it is whole.
        if expected is int and isinstance(value, float) and value.is_integer():
            values[name] = int(value)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InvalidInput(f"setting {name!r} must be {expected.__name__}, got {value!r}")
    settings = dataclasses.replace(base, **values) if base is not None else cls(**values)
    check = getattr(settings, "validate", None)
    if check:
        check()
    return settings


def split_sections(raw: bytes | str | None, parts: list[str]) -> dict[str, dict]:
    """{"part": {...}, ...} -> one settings object per part ({} when absent); unknown parts refused."""
    values = parse_json(raw) if raw else {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise InvalidInput(f"SETTINGS must be a JSON object of parts {parts}, each a JSON object")
    unknown = sorted(set(values) - set(parts))
    if unknown:
        raise InvalidInput(f"unknown settings part(s) {unknown}; this operation takes {parts}")
    return {part: values.get(part, {}) for part in parts}


def check_output(settings) -> None:
    """The output encoding every image-returning operation takes: format and quality."""
    one_of("format", settings.format, RESPONSE_FORMATS)
    in_range("quality", settings.quality, 1, 100)


def one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise InvalidInput(f"setting {name!r} must be one of {list(allowed)}, got {value!r}")


def in_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"setting {name!r} must be between {low} and {high}, got {value!r}")


# Upscale modes, named for what they do; the names before them stay as aliases.
UPSCALE_MODES = ("faithful", "photo", "anime")
MODE_ALIASES = {"conservative": "faithful", "creative": "anime"}
# (tile, overlap, margin) in input pixels when a request does not set them, from each mode's
# models' measured receptive field (export/upscalers.py, model.json "effective_radius_px": how far
# an input pixel moves outputs by more than half an 8-bit step). faithful (waifu2x, 7 px) and anime
# (animevideov3, 11-12 px): overlap about twice the radius, the ramp over all of it. photo
# (RRDBNet, 62 px, exact field hundreds of px): no affordable overlap covers it, so the margin
# keeps each tile's outer 24 px (where its error is largest) out of the blend.
# faithful's tile 256 is measured (BENCHMARKS.md): with tiles fitted to the image (tiling.fit_tile), a
# 4K image is 26% fewer model pixels than at 128 (10.5 M vs 14.1 M), at ~480 MB of ncnn working set per
# instance against ~150 MB; waifu2x's 7 px radius keeps overlap 16 ample at any tile size.
MODE_TILING = {"faithful": (256, 16, 0), "anime": (128, 24, 0), "photo": (160, 96, 36)}


@dataclass(frozen=True)
class UpscaleSettings:
    scale: int = 2  # 2 or 4; outscale overrides it
    outscale: float = 0.0  # any factor from 1 to 8 (Real-ESRGAN's --outscale); 0: use scale
    mode: str = "faithful"  # faithful: waifu2x photo; photo: RealESRGAN_x4plus; anime: realesr-animevideov3
    denoise: int = 0  # faithful only: 0 off, 1-3 waifu2x photo noise-reduction models (JPEG damage)
    tile: int = 0  # input pixels per tile side (32-512), 0: the mode's default; all tiles share it so they batch
    overlap: int = -1  # input pixels shared by neighbouring tiles; -1: the mode's default
    margin: int = -1  # input pixels at each shared tile edge kept out of the blend; -1: the mode's default
    blend: str = "cosine"  # cosine: raised-cosine weights over overlaps; none: hard cut at the midline
    alpha: str = "model"  # alpha upscaler: model (the mode's models; a flat alpha is resized) or bicubic
    format: str = "png"  # or jpeg, webp; raw returns the pixels in OUTPUT_PIXELS (shared memory)
    quality: int = 95  # JPEG/WebP only
    keep_metadata: bool = True  # ICC profile and EXIF of the input into the output
    seam_threshold: float = 1.25

    def resolved(self) -> UpscaleSettings:
        """Aliases and mode defaults replaced by what runs: the settings a report echoes."""
        mode = MODE_ALIASES.get(self.mode, self.mode)
        tile, overlap, margin = MODE_TILING.get(mode, MODE_TILING["faithful"])
        tile = self.tile or tile
        overlap = overlap if self.overlap < 0 else self.overlap
        margin = margin if self.margin < 0 else self.margin
        if self.tile and self.overlap < 0:  # a smaller tile than the default: keep the overlap legal
            overlap = min(overlap, tile // 2 - 1)
            margin = min(margin, max((overlap - 1) // 2, 0))
        if self.blend == "none":
            margin = 0  # a hard cut has no blend to keep edges out of
        elif self.margin < 0:  # the default margin, within whatever overlap was asked for
            margin = min(margin, max((overlap - 1) // 2, 0))
        return dataclasses.replace(self, mode=mode, tile=tile, overlap=overlap, margin=margin)

    def validate(self) -> None:
        one_of("scale", self.scale, (2, 4))
        if self.outscale != 0:
            in_range("outscale", self.outscale, 1.0, 8.0)
        one_of("mode", self.mode, UPSCALE_MODES + tuple(MODE_ALIASES))
        in_range("denoise", self.denoise, 0, 3)
        r = self.resolved()
        if self.denoise and r.mode != "faithful":
            raise InvalidInput(f"setting 'denoise' applies to mode 'faithful' (the waifu2x photo noise-reduction "
                               f"models); mode {r.mode!r} has no denoise model: set denoise 0 or mode 'faithful'")
        if self.tile:
            in_range("tile", self.tile, 32, 512)
        # Past half a tile, three tiles would share pixels; the margin's unweighted edges allow that much more.
        in_range("overlap", r.overlap, 0, r.tile // 2 - 1 + r.margin)
        if r.margin and not 2 * r.margin < r.overlap:
            raise InvalidInput(f"setting 'margin' ({r.margin}) must be under half the overlap ({r.overlap}); "
                               f"lower it or raise 'overlap'")
        in_range("margin", r.margin, 0, 255)
        one_of("blend", self.blend, ("cosine", "none"))
        one_of("alpha", self.alpha, ("model", "bicubic"))
        check_output(self)
        in_range("seam_threshold", self.seam_threshold, 1.0, 100.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
