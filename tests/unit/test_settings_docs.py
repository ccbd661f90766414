"""The README's settings table and defaults, the CLI's settings flags and the client's one settings
default agree with the declarations (the client package itself stays free of pydantic)."""

import json
import re
from pathlib import Path

import pytest

from retouch.schemas import SETTINGS
from retouch.settings import MODE_TILING, Settings, UpscaleSettings
from retouch_client.cli import OPERATION_OPTIONS
from retouch_client.operations import OPERATIONS, upscale_factor

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def flat_defaults(settings: Settings) -> dict:
    """Every setting's default, by name; a nested section's by its own name too (inpaint's
    max_coverage is 0.5, remove_text's inpaint.max_coverage 0.6: the top-level operation wins)."""
    out = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, Settings):
            out.update({k: v for k, v in flat_defaults(value).items() if k not in out})
        else:
            out[name] = value
    return out


def literal(text: str):
    text = text.strip().strip("`")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def upscale_table() -> list[tuple[list[str], str]]:
    table = README[README.index("| setting | default | meaning |") :]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names, default = line.split(" | ")[:2]
        rows.append((re.findall(r"`(\w+)`", names), default))
    return rows


def test_readme_upscale_table_matches_the_declaration():
    declared = UpscaleSettings()
    rows = upscale_table()
    assert sorted(n for names, _ in rows for n in names) == sorted(UpscaleSettings.model_fields)
    for names, default in rows:
        if default.startswith("mode's:"):  # tile, overlap, margin: MODE_TILING's, per mode in its order
            field = ("tile", "overlap", "margin").index(names[0])
            cell = re.sub(r"\[[^]]*\]\([^)]*\)", "", default)
            assert [int(n) for n in re.findall(r"\b\d+\b", cell)] == [t[field] for t in MODE_TILING.values()]
            continue
        values = [literal(v.split(" (")[0]) for v in default.split(", ")]
        assert [getattr(declared, n) for n in names] == values, names


def test_readme_prose_defaults_match_the_declarations():
    defaults = {}
    for model in SETTINGS.values():
        defaults.update({k: v for k, v in flat_defaults(model()).items() if k not in defaults})
    quoted = re.findall(r"`(\w+)` \((?:default )?(-?[\d.]+)", README)
    checked = [(name, value) for name, value in quoted if name in defaults]
    assert {"max_coverage", "review_coverage", "thin_stroke_px"} <= {name for name, _ in checked}
    for name, value in checked:
        assert float(value) == defaults[name], name


def test_client_operations_are_the_declared_ones():
    assert [op.name for op in OPERATIONS] == list(SETTINGS)
    assert upscale_factor({}) == UpscaleSettings().scale  # the client's one copy of a default


@pytest.mark.parametrize("operation", list(OPERATION_OPTIONS), ids=lambda op: op.name)
def test_cli_flags_are_declared_settings_with_their_defaults(operation):
    model = SETTINGS[operation.name]
    if operation.output_part:  # chained operations: the flags go to the part that returns the image
        model = model.model_fields[operation.output_part].annotation
    declared = model()
    for flag, options in OPERATION_OPTIONS[operation]:
        name = flag.lstrip("-").replace("-", "_")
        assert name in model.model_fields, f"{flag} is not a {operation.name} setting"
        help_text = options.get("help", "")
        for said in re.findall(r"(\S+) \(default\)|\(server default (\S+)\)", help_text):
            assert literal(said[0] or said[1]) == getattr(declared, name), (flag, help_text)
        if options.get("type"):
            assert isinstance(getattr(declared, name), options["type"]), flag
