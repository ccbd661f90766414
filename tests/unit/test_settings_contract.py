"""The settings contract: refusals are worded from the declaration (name, range or choices, meaning),
the values JSON can send are taken as declared, and nested sections keep their own defaults."""

import pytest
from pydantic import ValidationError

from retouch.errors import MAX_MESSAGE_CHARS, InvalidInput
from retouch.inpaint import InpaintSettings
from retouch.remove_text import CleanSettings, RemoveTextSettings
from retouch.settings import UpscaleSettings, parse_settings
from retouch.text import DetectSettings


@pytest.mark.parametrize(
    "cls,raw,message",
    [
        # range: dotted name, declared bounds, what was sent, the field's description
        (
            RemoveTextSettings,
            {"inpaint": {"max_coverage": 0.95}},
            "setting 'inpaint.max_coverage' must be between 0 and 0.9 (got 0.95): largest share of the image a mask may "
            "cover; larger masks are refused",
        ),
        (
            DetectSettings,
            {"thresh": 1.5},
            "setting 'thresh' must be between 0.01 and 0.99 (got 1.5): probability over which a pixel is text",
        ),
        # choices
        (
            InpaintSettings,
            {"route": "magic"},
            "setting 'route' must be one of ['auto', 'fast', 'unet', 'telea', 'fsr', 'patchmatch'] (got 'magic'): the fill: auto "
            "(per window, choose_route), fast, unet, telea, fsr or patchmatch",
        ),
        (
            RemoveTextSettings,
            {"mask": {"mode": "blob"}},
            "setting 'mask.mode' must be one of ['glyph', 'box'] (got 'blob')",
        ),
        # types: a bool is not a number, a string is not a number, a fraction is not an int
        (DetectSettings, {"unclip_ratio": "big"}, "setting 'unclip_ratio' must be float (got 'big'): how far"),
        (DetectSettings, {"max_candidates": True}, "setting 'max_candidates' must be int (got True)"),
        (DetectSettings, {"max_candidates": 2.5}, "setting 'max_candidates' must be int (got 2.5)"),
        (UpscaleSettings, {"keep_metadata": 1}, "setting 'keep_metadata' must be bool (got 1)"),
        # a range that depends on another setting (a model_validator), still named and described
        (
            RemoveTextSettings,
            {"mask": {"min_fill": 0.5, "max_fill": 0.3}},
            "setting 'mask.max_fill' must be between 0.5 and 1 (got 0.3): glyph share of the box",
        ),
        (UpscaleSettings, {"overlap": 64, "tile": 128}, "setting 'overlap' must be between 0 and 63 (got 64)"),
        # a section that is not an object
        (RemoveTextSettings, {"detect": [1]}, "setting 'detect' must be a JSON object of detect settings (got [1])"),
        (CleanSettings, {"upscale": {"scale": 3}}, "setting 'upscale.scale' must be one of [2, 4] (got 3)"),
    ],
)
def test_refusals_are_worded_from_the_declaration(cls, raw, message):
    with pytest.raises(InvalidInput) as refused:
        parse_settings(cls, raw)
    assert str(refused.value).startswith(message), str(refused.value)


def test_unknown_keys_list_the_known_ones():
    with pytest.raises(InvalidInput) as refused:
        parse_settings(RemoveTextSettings, {"inpaint": {"radius": 3}})
    known = ", ".join(sorted(InpaintSettings.model_fields))
    assert str(refused.value) == f"unknown setting 'inpaint.radius'; known inpaint settings: {known}"
    with pytest.raises(InvalidInput, match=r"^unknown setting 'thresold'; known settings: box_thresh, "):
        parse_settings(DetectSettings, b'{"thresold": 0.3}')


def test_the_longest_list_of_known_settings_fits_a_message():
    """A section with too many settings to list names the nearest ones and where the rest are."""
    with pytest.raises(InvalidInput) as refused:
        parse_settings(RemoveTextSettings, {"mask": {"min_contrasts": 1}})
    message = str(refused.value)
    assert len(message) <= MAX_MESSAGE_CHARS
    assert "did you mean min_contrast" in message and "docs/settings.md" in message
    with pytest.raises(InvalidInput) as refused:
        parse_settings(DetectSettings, {"colour": 1})
    assert str(refused.value).endswith("unclip_ratio")  # a short list is given whole


def test_several_errors_say_how_many_more():
    with pytest.raises(InvalidInput, match=r"\(and 1 more\)$"):
        parse_settings(DetectSettings, {"thresh": 2, "box_thresh": -1})


def test_json_numbers_are_taken_as_declared():
    s = parse_settings(DetectSettings, b'{"max_candidates": 20.0, "min_size": 2, "max_side": 1024}')
    assert s.max_candidates == 20 and type(s.max_candidates) is int
    assert s.min_size == 2.0 and type(s.min_size) is float
    assert parse_settings(UpscaleSettings, b'{"scale": 4.0}').scale == 4


def test_sections_keep_their_own_defaults_and_echo_whole():
    s = parse_settings(RemoveTextSettings, {"inpaint": {"route": "fast"}})
    assert s.inpaint.max_coverage == 0.6 and s.inpaint.route == "fast"  # remove_text's own inpaint default
    assert s.to_dict()["inpaint"] == {**RemoveTextSettings().inpaint.to_dict(), "route": "fast"}
    assert parse_settings(RemoveTextSettings, None) == RemoveTextSettings()


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        DetectSettings().thresh = 0.5  # type: ignore[misc]
