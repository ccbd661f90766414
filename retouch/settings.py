"""Per-request settings: parsed from the request's JSON, validated, and echoed in every report.

Each operation declares its settings as a frozen dataclass whose field defaults are the documented
defaults. Unknown keys and out-of-range values are refused with a message naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from retouch.codecs import RESPONSE_FORMATS
from retouch.errors import InvalidInput

T = TypeVar("T")


def parse_settings(cls: type[T], raw: bytes | str | dict | None, base: T | None = None) -> T:
    """Build settings dataclass `cls` from JSON bytes (or a dict); what is not given keeps its
    default (the class's, or `base`'s when given)."""
    if raw is None or raw in (b"", ""):
        values: dict[str, Any] = {}
    elif isinstance(raw, dict):
        values = dict(raw)
    else:
        try:
            values = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"SETTINGS must be a JSON object: {exc}") from None
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
    try:
        values = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"SETTINGS must be a JSON object: {exc}") from None
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


@dataclass(frozen=True)
class UpscaleSettings:
    scale: int = 2
    mode: str = "conservative"  # conservative: waifu2x photo (faithful); creative: realesr-animevideov3
    tile: int = 256  # largest tile side (input px); fitted to the image (tiling.fit_tile), measured
    overlap: int = 16  # input pixels shared by neighbouring tiles
    blend: str = "cosine"  # cosine: raised-cosine weights over overlaps; none: hard cut at the midline
    format: str = "png"  # or jpeg, webp; raw returns the pixels in OUTPUT_PIXELS (shared memory)
    quality: int = 95  # JPEG/WebP only
    seam_threshold: float = 1.25

    def validate(self) -> None:
        one_of("scale", self.scale, (2, 4))
        one_of("mode", self.mode, ("conservative", "creative"))
        in_range("tile", self.tile, 32, 512)
        in_range("overlap", self.overlap, 0, self.tile // 2 - 1)
        one_of("blend", self.blend, ("cosine", "none"))
        check_output(self)
        in_range("seam_threshold", self.seam_threshold, 1.0, 100.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
