"""The REPORT every operation returns, declared as pydantic models: docs/schemas/ is generated from them
(`make schemas`), and the Triton glue validates every step's section and the finished report
through them (retouch.triton.add_step, report_tensor), so what a client reads is what is declared.

A report has the steps in order, one section per step (named by the step: its effective settings and
its figures), the models used (name, version, ONNX sha256), the decoded input, the encoded output
(image operations), wall times per stage in ms and the retouch version. The same names everywhere:
`models` for the models a step used, and `figures` for what a pure operation returns for its
section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from retouch.codecs import RESPONSE_FORMATS
from retouch.inpaint import InpaintSettings
from retouch.remove_text import RemoveTextSettings
from retouch.settings import UpscaleSettings
from retouch.text import DetectSettings


class Figures(BaseModel):
    """Base of every report part: nothing undeclared."""

    model_config = ConfigDict(extra="forbid")


class ModelVersion(Figures):
    name: str = Field(description="the model_repository folder")
    version: str = Field(description="the Triton model version")
    onnx_sha256: str = Field(description="sha256 of the ONNX file served (export/'s model.json)")


class Input(Figures):
    """What decode_image read."""

    width: int = Field(description="pixels, after EXIF orientation")
    height: int = Field(description="pixels, after EXIF orientation")
    format: str = Field(description="PNG, JPEG, WEBP, or raw (pixels sent as PIXELS)")
    mode: str = Field(description="the source's Pillow mode (RGB, RGBA, L, I;16, ...)")
    bits: int = Field(description="bits per channel of the source: 8 or 16")
    alpha: bool = Field(description="whether the source has an alpha channel (carried through)")
    grey: bool = Field(description="whether the source is greyscale (the output is too)")
    icc_profile: bool = Field(description="whether the source carries an ICC profile")
    exif: bool = Field(description="whether the source carries EXIF")


class Output(Figures):
    """What encode_image wrote, in the encoding the last step's settings asked for."""

    format: Literal[RESPONSE_FORMATS] = Field(description="the output encoding")  # type: ignore[valid-type]
    quality: int = Field(description="JPEG/WebP quality asked for")
    keep_metadata: bool = Field(description="whether the input's ICC profile and EXIF were asked for")
    width: int
    height: int
    bytes: int = Field(description="size of OUTPUT_IMAGE (or of OUTPUT_PIXELS for raw)")
    mode: str = Field(description="the written image's mode (RGB, RGBA, L, RGB;16, ...)")
    bits: int = Field(description="bits per channel written: 8 or 16")
    alpha: bool = Field(description="whether alpha was written")
    icc_profile: bool | None = Field(None, description="whether an ICC profile was written (encoded formats)")
    exif: bool | None = Field(None, description="whether EXIF was written (encoded formats)")
    alpha_dropped: str | None = Field(None, description="why the input's alpha is not in the output")
    reduced_to_8_bits: str | None = Field(None, description="why the input's 16 bits are not in the output")


class Step(Figures):
    """What a pure operation returns for its section, less the names of the models it used (the
    glue turns those into the report's `models`)."""


class UpscaleFigures(Step):
    chain_scale: int = Field(description="scale of the model chain run (product of its models' scales)")
    output_scale: float = Field(description="the factor asked for (outscale, else scale)")
    resized: str | None = Field(description="the Lanczos resize from the chain's scale to the output's, if any")
    tiles: int = Field(description="tiles sent to the models, all passes (alpha included)")
    seam_lines: int = Field(description="tile borders scored")
    seam_score: float = Field(description="seam visibility: about 1 means none")
    seam_over_threshold: bool = Field(description="seam_score over the request's seam_threshold")
    bits: Literal[8, 16] = Field(description="bits per channel the models ran on")
    alpha: Literal["model", "flat", "bicubic"] | None = Field(description="how alpha was upscaled; null: none")


class RouteFeatures(Figures):
    area: float = Field(description="hole pixels over image pixels")
    stroke_width_px: float
    rectangularity: float = Field(description="hole pixels over their components' boxes' area")
    edge_density: float = Field(description="share of edges in the ring around the hole")


class Gate(Figures):
    ring_error: float = Field(description="mean abs error of the probe fill on the ring of known pixels (0..1)")
    hf_ratio: float = Field(description="high-frequency power in the hole over the ring's")


class InpaintFigures(Step):
    mask_sha256: str = Field(description="sha256 of the mask as received (shape and bytes)")
    mask_coverage: float = Field(description="share of the image in the dilated mask")
    route: str = Field(description="the route of every window, 'mixed', or 'none' (empty mask)")
    verdict: Literal["accepted", "needs_review", "unchanged"]
    windows: int = Field(description="fill windows")
    routes: dict[str, int] | None = Field(None, description="windows per route")
    route_features: RouteFeatures | None = None
    review_reasons: list[Literal["quality_gate", "large_coverage"]] | None = None
    fallback: Literal["fast_fill"] | None = Field(None, description="the fill served after the gate failed")
    fallback_windows: int | None = Field(None, description="windows the fallback refilled")
    native_windows: int | None = Field(None, description="windows filled at native resolution")
    refined_windows: int | None = Field(
        None, description="windows whose classical fill inpaint_refine refined (setting refine)"
    )
    gate: Gate | None = None


class DetectTextFigures(Step):
    detector: str = Field(description="the detector in the text_detector slot")
    boxes: int = Field(description="text boxes found")
    mask_coverage: float = Field(description="share of the image in the text mask")
    bucket: int = Field(description="side of the square model inputs")
    tiles: int = Field(description="model inputs")
    scale: float = Field(description="model pixels per image pixel")


class Line(Figures):
    """One detected line's glyph segmentation (retouch.glyphs.segment_line)."""

    kind: Literal["glyph", "box", "texture", "uncertain"]
    pixels: int = Field(description="pixels painted for the line")
    score: float = Field(description="detector score")
    height_px: float
    reason: str | None = Field(
        None,
        description="why the line was painted as a box or left alone, or why a line that would be left alone was painted (rescued beside glyph lines)",
    )
    contrast: float | None = None
    background_spread: float | None = None
    separation: float | None = None
    glyph_fill: float | None = None
    stroke_cv: float | None = None
    halo_px: int | None = None
    outline_px: int | None = Field(
        None, description="rings of an outline joined to the halo (GlyphSettings.outline_px); absent when none"
    )
    letters_per_height: float | None = None
    letter_height_cv: float | None = None
    off_axis: float | None = None
    faint: bool | None = Field(
        None, description="split at the faint-watermark threshold (GlyphSettings.faint_contrast)"
    )
    mask: Literal["segmenter"] | None = Field(
        None,
        description="painted with the glyph segmenter's ink: a box line inside its box (GlyphSettings.box_mask), or "
        "a line the rule called texture among a caption's clean lines (segmenter_rescue)",
    )
    segmenter_confidence: float | None = Field(None, description="...the segmenter's ink confidence, for the latter")
    box_share: float | None = Field(None, description="...the share of the box that ink covers")
    trimmed: int | None = Field(
        None,
        description="pixels of a glyph line's mask left alone: farther than trim_px from the segmenter's ink, or "
        "under its trim_below ink probability",
    )
    faint_ink_added: int | None = Field(
        None, description="pixels of the segmenter's sure ink added to a faint glyph line's mask (faint_ink)"
    )
    read: str | None = Field(None, description="what the recogniser read in a line the rule would paint")
    read_confidence: float | None = Field(
        None, description="...its mean character confidence (min_read_chars, min_read_confidence)"
    )


class RepaintFigures(InpaintFigures):
    """The second fill: residual boxes (ghosts) and the lines the second look found, in one."""

    lines: int = Field(description="boxes found again over the painted mask and filled once more, whole")


class SecondLookFigures(Figures):
    """The second detector's look at the result (RemoveTextSettings.second_look)."""

    detector: str = Field(description="the detector in the text_detector_small slot")
    boxes: int = Field(description="text boxes it found in the result (those over the mask are residual text)")
    new_lines: int = Field(description="...off the painted mask: lines the first detector missed")
    read_as_text: int = Field(description="...that the recogniser read as text (promote_read_chars, _confidence)")
    boxes_read_as_text: list[list[list[float]]] | None = Field(None, description="their [N, 4, 2] corners")
    lines: list[Line] | None = Field(None, description="their glyph masks, as the first look's lines")
    painted: bool = Field(description="whether they were painted (not when empty or over max_text_coverage)")
    candidates_painted: list[int] | None = Field(
        None, description="lines (indices) the first look left for review that this look painted: no longer candidates"
    )
    segmented_lines: int | None = Field(None, description="lines the glyph segmenter shaped, when any read as text")


class RemoveTextFigures(Step):
    detection: DetectTextFigures
    boxes: list[list[list[float]]] = Field(description="[N, 4, 2] corners (x, y), clockwise from top-left")
    scores: list[float]
    lines: list[Line]
    line_kinds: dict[str, int]
    candidates: list[int] = Field(description="lines (indices) left for review (none the second look painted)")
    segmented_lines: int = Field(description="lines the glyph segmenter was asked to shape (glyph_segmenter)")
    read_lines: int = Field(description="lines the recogniser was asked to read (text_recognizer)")
    mask_sha256: str = Field(description="sha256 of the mask painted")
    mask_coverage: float = Field(description="share of the image in the mask (text, and the objects of `clean`)")
    text_coverage: float = Field(
        description="share of the image in the text mask, or in that mask before the recogniser's veto where "
        "that is larger (see max_text_coverage)"
    )
    residual_lines: int = Field(
        description="boxes found again over the painted mask: by the second look's detector, or by text_detector "
        "without one and after a repaint"
    )
    outcome: Literal["accepted", "needs_review", "no_text"]
    review_reasons: list[str]
    inpaint: InpaintFigures | None = Field(None, description="the fill's figures, when something was painted")
    repaint: RepaintFigures | None = Field(
        None,
        description="the second fill's figures, when boxes found again (repaint_residual) or lines the second look "
        "found were filled",
    )
    second_look: SecondLookFigures | None = Field(
        None, description="the second detector's look at the result, when text was painted (second_look)"
    )


# A section: the step's effective settings, then its figures.
class UpscaleSection(UpscaleFigures):
    settings: UpscaleSettings


class InpaintSection(InpaintFigures):
    settings: InpaintSettings


class DetectTextSection(DetectTextFigures):
    settings: DetectSettings


class RemoveTextSection(RemoveTextFigures):
    settings: RemoveTextSettings


SECTIONS: dict[str, type[Step]] = {
    "upscale": UpscaleSection,
    "inpaint": InpaintSection,
    "detect_text": DetectTextSection,
    "remove_text": RemoveTextSection,
}


class Report(Figures):
    steps: list[str] = Field(description="the operation's steps, in order; each has a section of its name")
    input: Input
    models: list[ModelVersion] = Field(description="every model the steps ran")
    timings_ms: dict[str, float] = Field(description="wall time per stage (decode, the steps, encode), ms")
    retouch_version: str


class ImageReport(Report):
    output: Output


class UpscaleReport(ImageReport):
    steps: list[Literal["upscale"]]
    upscale: UpscaleSection


class InpaintReport(ImageReport):
    steps: list[Literal["inpaint"]]
    inpaint: InpaintSection


class DetectTextReport(Report):
    steps: list[Literal["detect_text"]]
    detect_text: DetectTextSection


class RemoveTextReport(ImageReport):
    steps: list[Literal["remove_text"]]
    remove_text: RemoveTextSection


class CleanReport(ImageReport):
    steps: list[Literal["remove_text", "upscale"]]
    remove_text: RemoveTextSection
    upscale: UpscaleSection


# operation -> its REPORT; an operation is known by its steps (Report.steps).
REPORTS: dict[str, type[Report]] = {
    "upscale": UpscaleReport,
    "inpaint": InpaintReport,
    "detect_text": DetectTextReport,
    "remove_text": RemoveTextReport,
    "clean": CleanReport,
}
OPERATION_OF_STEPS = {
    ("upscale",): "upscale",
    ("inpaint",): "inpaint",
    ("detect_text",): "detect_text",
    ("remove_text",): "remove_text",
    ("remove_text", "upscale"): "clean",
}


def section(step: str, settings, figures: dict) -> dict:
    """A step's report section, validated: its settings and figures, as JSON values."""
    return SECTIONS[step].model_validate({"settings": settings, **figures}).model_dump(mode="json", exclude_unset=True)


def finished(report: dict) -> dict:
    """The whole report, validated against its operation's model (told by its steps)."""
    model = REPORTS[OPERATION_OF_STEPS[tuple(report.get("steps", ()))]]
    return model.model_validate(report).model_dump(mode="json", exclude_unset=True)
