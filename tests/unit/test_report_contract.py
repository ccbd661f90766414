"""What the pure operations return for their report sections is what retouch.reports declares:
validated the way the Triton glue validates it (add_step, report_tensor), with the same names."""

import asyncio
import json

import jsonschema
import numpy as np
import pytest
from pydantic import ValidationError
from test_inpaint_pipeline import telea

from retouch import __version__, reports, schemas
from retouch.inpaint import InpaintSettings, inpaint
from retouch.settings import UpscaleSettings, parse_settings
from retouch.upscale import UPSCALERS, upscale


async def nearest(model, batch):
    s = UPSCALERS[model]
    return batch.repeat(s, axis=2).repeat(s, axis=3)


INPUT = {
    "width": 64,
    "height": 48,
    "format": "PNG",
    "mode": "RGB",
    "bits": 8,
    "alpha": False,
    "grey": False,
    "icc_profile": False,
    "exif": False,
}
OUTPUT = {
    "format": "png",
    "quality": 95,
    "keep_metadata": True,
    "width": 128,
    "height": 96,
    "bytes": 1000,
    "mode": "RGB",
    "bits": 8,
    "alpha": False,
    "icc_profile": False,
    "exif": False,
}
MODEL = {"name": "upscaler_waifu2x_photo_x2", "version": "1", "onnx_sha256": "0" * 64}


def upscale_figures(**settings):
    s = parse_settings(UpscaleSettings, settings)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    _, figures, _, _ = asyncio.run(upscale(rgb, s, nearest))
    return s.resolved(), figures


def test_upscale_section_and_report_validate_against_the_schema():
    settings, figures = upscale_figures(outscale=3)
    assert figures.pop("models") == ["upscaler_waifu2x_photo_x2"] * 2  # the glue's `models` (ModelVersion)
    section = reports.section("upscale", settings.to_dict(), figures)
    assert section["settings"] == settings.to_dict() and section["output_scale"] == 3.0
    report = {
        "steps": ["upscale"],
        "input": INPUT,
        "upscale": section,
        "models": [MODEL],
        "output": OUTPUT,
        "timings_ms": {"decode": 1.0, "upscale": 2.0, "encode": 0.5},
        "retouch_version": __version__,
    }
    finished = reports.finished(report)
    assert finished == report  # nothing added, nothing lost
    jsonschema.validate(finished, json.loads(schemas.generate()["schemas/upscale.report.json"]))


@pytest.mark.parametrize("mask_box", [(10, 10, 20), None])
def test_inpaint_section_names_its_models_like_upscale(photos, mask_box):
    rgb = photos["coffee"][:96, :96]
    mask = np.zeros(rgb.shape[:2], np.uint8)
    if mask_box:
        y, x, n = mask_box
        mask[y : y + n, x : x + n] = 255
    settings = parse_settings(InpaintSettings, {"route": "fast"})
    _, figures = asyncio.run(inpaint(rgb, mask, settings, telea))
    models = figures.pop("models", [])
    assert models == (["inpaint_fast_fill"] if mask_box else [])
    section = reports.section("inpaint", settings.to_dict(), figures)
    assert section["verdict"] in ("accepted", "needs_review", "unchanged")
    assert "gate" in section if mask_box else "gate" not in section  # absent stays absent


def test_an_undeclared_figure_is_refused():
    settings, figures = upscale_figures()
    figures.pop("models")
    with pytest.raises(ValidationError, match="seam_colour"):
        reports.section("upscale", settings.to_dict(), {**figures, "seam_colour": "red"})
    with pytest.raises(ValidationError, match="seam_score"):
        reports.section("upscale", settings.to_dict(), {k: v for k, v in figures.items() if k != "seam_score"})
