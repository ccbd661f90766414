"""Per-request settings: declared once, as pydantic models, and echoed in every report.

Each operation declares its settings as a frozen model whose fields carry the documented default,
the allowed range or choices and a one-line meaning; docs/schemas/ is generated from them
(`make schemas`), and a refused setting's message is built from the same declaration
(setting_error). Unknown keys are refused. JSON has one number type: a whole 2.0 is taken for an
int, but a bool is never a number and a string is never anything else.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, TypeVar, get_args

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError, model_validator

from retouch.codecs import RESPONSE_FORMATS
from retouch.errors import MAX_MESSAGE_CHARS, InvalidInput, parse_json

T = TypeVar("T", bound="Settings")


def _whole_number(value: Any) -> Any:
    """JSON has one number type: 2.0 is an int's value when it is whole."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Field types: strict (a bool is not a number, "2" is not 2), but an int's value may come as 2.0
# and a float's as 2.
Int = Annotated[int, Strict(), BeforeValidator(_whole_number)]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


class SettingError(ValueError):
    """A cross-field rule refused `field` (a model_validator's verdict): `detail` says why."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"setting {field!r} {detail}")
        self.field, self.detail = field, detail


class Settings(BaseModel):
    """Base of every operation's settings: frozen, unknown keys refused, and a nested section
    (remove_text.inpaint) given in part keeps its own defaults for the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _sections_keep_their_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for name, field in cls.model_fields.items():
                if isinstance(field.default, Settings) and isinstance(values.get(name), dict):
                    values = {**values, name: {**field.default.model_dump(), **values[name]}}
        return values

    def to_dict(self) -> dict:
        return self.model_dump()


class OutputSettings(Settings):
    """The output encoding every image-returning operation takes."""

    format: Literal[RESPONSE_FORMATS] = Field(  # type: ignore[valid-type]
        "png", description="output encoding; raw returns the pixels in OUTPUT_PIXELS (shared memory)"
    )
    quality: Int = Field(95, ge=1, le=100, description="JPEG/WebP quality")
    keep_metadata: Bool = Field(True, description="write the input's ICC profile and EXIF into the output")


def parse_settings(cls: type[T], raw: bytes | str | dict | None) -> T:
    """Build settings model `cls` from JSON bytes (or a dict); what is not given keeps its default.
    A refused value raises InvalidInput with a message made from the declaration (setting_error)."""
    if raw is None or raw in (b"", ""):
        values: Any = {}
    elif isinstance(raw, dict):
        values = raw
    else:
        values = parse_json(raw)
    if not isinstance(values, dict):
        raise InvalidInput(f"SETTINGS must be a JSON object, got {type(values).__name__}")
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(setting_error(cls, errors[0]) + more) from None


def _section(cls: type[Settings], path: tuple) -> type[Settings] | None:
    """The settings model at `path` (a nested section's), or None past a plain field."""
    for name in path:
        field = cls.model_fields.get(name) if isinstance(name, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, Settings)):
            return None
        cls = field.annotation
    return cls


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed(field) -> str:
    """What a field's declaration allows, in words: choices, a range, or a type."""
    if getattr(field.annotation, "__origin__", None) is Literal:
        return f"one of {list(get_args(field.annotation))}"
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    if low is not None and high is not None:
        return f"between {_number(low)} and {_number(high)}"
    if low is not None:
        return f"at least {_number(low)}"
    if high is not None:
        return f"at most {_number(high)}"
    return getattr(field.annotation, "__name__", str(field.annotation))


TYPE_NAMES = {"int": "int", "float": "float", "bool": "bool", "string": "str"}


def setting_error(cls: type[Settings], error: dict) -> str:
    """One pydantic error on settings `cls` in the caller's words: the setting's dotted name, what
    its declaration allows, what was sent, and the setting's meaning."""
    loc, kind = tuple(error["loc"]), error["type"]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), SettingError):
        rule = error["ctx"]["error"]  # a cross-field rule, raised in the section at loc
        section = _section(cls, loc)
        field = section.model_fields.get(rule.field) if section else None
        name = ".".join([*map(str, loc), rule.field])
        meaning = f": {field.description}" if field is not None and field.description else ""
        return f"setting {name!r} {rule.detail}{meaning}"
    name = ".".join(map(str, loc))
    section = _section(cls, loc[:-1])
    if kind == "extra_forbidden":
        where = ".".join(map(str, loc[:-1]))
        fields = sorted(section.model_fields) if section else []
        message = f"unknown setting {name!r}; known {where + ' ' if where else ''}settings: {', '.join(fields)}"
        if len(message) <= MAX_MESSAGE_CHARS:
            return message
        # Too many to list in one message: the nearest names, and where the rest are.
        near = difflib.get_close_matches(str(loc[-1]), fields, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        return (
            f"unknown setting {name!r}; {hint}the {len(fields)} known {where + ' ' if where else ''}"
            "settings are in docs/settings.md"
        )
    field = section.model_fields.get(loc[-1]) if section and loc else None
    if field is None:
        return f"setting {name!r}: {error['msg']}"
    got = error.get("input")
    meaning = f": {field.description}" if field.description else ""
    if isinstance(field.annotation, type) and issubclass(field.annotation, Settings):
        return f"setting {name!r} must be a JSON object of {loc[-1]} settings (got {got!r})"
    base = kind.split("_")[0]
    if kind.endswith("_type") and base in TYPE_NAMES and not allowed(field).startswith("one of"):
        return f"setting {name!r} must be {TYPE_NAMES[base]} (got {got!r}){meaning}"
    if kind == "int_from_float":
        return f"setting {name!r} must be a whole number (got {got!r}){meaning}"
    return f"setting {name!r} must be {allowed(field)} (got {got!r}){meaning}"


def check_range(name: str, value: float, low: float, high: float) -> None:
    """A range that depends on other settings (checked in a model_validator)."""
    if not low <= value <= high:
        raise SettingError(name, f"must be between {_number(low)} and {_number(high)} (got {value!r})")


def split_sections(raw: bytes | str | None, parts: list[str]) -> dict[str, dict]:
    """{"part": {...}, ...} -> one settings object per part ({} when absent); unknown parts refused."""
    values = parse_json(raw) if raw else {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise InvalidInput(f"SETTINGS must be a JSON object of parts {parts}, each a JSON object")
    unknown = sorted(set(values) - set(parts))
    if unknown:
        raise InvalidInput(f"unknown settings part(s) {unknown}; this operation takes {parts}")
    return {part: values.get(part, {}) for part in parts}


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


class UpscaleSettings(OutputSettings):
    """SETTINGS of `upscale` (and clean's `upscale` part)."""

    scale: Annotated[Literal[2, 4], BeforeValidator(_whole_number)] = Field(
        2, description="upscaling factor; outscale overrides it"
    )
    outscale: Float = Field(
        0.0, ge=0, le=8, description="any output factor from 1 to 8 (Real-ESRGAN's --outscale); 0: use scale"
    )
    mode: Literal[UPSCALE_MODES + tuple(MODE_ALIASES)] = Field(  # type: ignore[valid-type]
        "faithful",
        description="faithful: waifu2x photo; photo: RealESRGAN_x4plus; anime: realesr-animevideov3 "
        "(conservative, creative: aliases of faithful, anime)",
    )
    denoise: Int = Field(
        0, ge=0, le=3, description="faithful only: 0 off, 1-3 the waifu2x photo noise-reduction models (JPEG damage)"
    )
    tile: Int = Field(
        0,
        ge=0,
        le=512,
        description="input pixels per tile side (32-512); 0: the mode's default; all tiles share it so they batch",
    )
    overlap: Int = Field(
        -1,
        ge=-1,
        le=510,
        description="input pixels shared by neighbouring tiles (under half "
        "a tile, plus the margin); -1: the mode's default",
    )
    margin: Int = Field(
        -1,
        ge=-1,
        le=255,
        description="input pixels at each shared tile edge kept out of the blend; -1: the mode's default",
    )
    blend: Literal["cosine", "none"] = Field(
        "cosine", description="cosine: raised-cosine weights over overlaps; none: hard cut at the midline"
    )
    alpha: Literal["model", "bicubic"] = Field(
        "model", description="alpha upscaler: model (the mode's models; a flat alpha is resized) or bicubic"
    )
    seam_threshold: Float = Field(
        1.25, ge=1, le=100, description="seam score above which the report flags visible seams"
    )

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
        return self.model_copy(update=dict(mode=mode, tile=tile, overlap=overlap, margin=margin))

    @model_validator(mode="after")
    def _consistent(self) -> UpscaleSettings:
        if 0 < self.outscale < 1:
            raise SettingError("outscale", f"must be 0 or between 1 and 8 (got {self.outscale!r})")
        if 0 < self.tile < 32:
            raise SettingError("tile", f"must be between 32 and 512, or 0 (got {self.tile!r})")
        r = self.resolved()
        if self.denoise and r.mode != "faithful":
            raise SettingError(
                "denoise",
                f"applies to mode 'faithful' (the waifu2x photo noise-reduction models); "
                f"mode {r.mode!r} has no denoise model: set denoise 0 or mode 'faithful'",
            )
        # Past half a tile, three tiles would share pixels; the margin's unweighted edges allow that much more.
        check_range("overlap", r.overlap, 0, r.tile // 2 - 1 + r.margin)
        if r.margin and not 2 * r.margin < r.overlap:
            raise SettingError(
                "margin", f"({r.margin}) must be under half the overlap ({r.overlap}); lower it or raise 'overlap'"
            )
        return self
