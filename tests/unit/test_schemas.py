"""docs/schemas/ and docs/settings.md are what the declarations give: a stale schema fails here with the command that fixes it."""

import json

from retouch import schemas


def test_committed_schemas_are_current():
    outdated = schemas.stale()
    assert not outdated, f"stale under docs/: {outdated}; regenerate with {schemas.FIX}"


def test_every_operation_has_both_schemas_with_defaults_and_meanings():
    files = schemas.generate()
    for operation in ("upscale", "detect_text", "inpaint", "remove_text", "clean"):
        settings = json.loads(files[f"schemas/{operation}.settings.json"])
        assert settings["additionalProperties"] is False
        assert all("default" in p and "description" in p for p in settings["properties"].values()), operation
        assert json.loads(files[f"schemas/{operation}.report.json"])["required"][:2] == ["steps", "input"]


def test_a_stale_schema_is_found(tmp_path):
    for name, text in schemas.generate().items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "schemas/upscale.settings.json").write_text("{}\n")
    (tmp_path / "schemas/clean.report.json").unlink()
    assert sorted(schemas.stale(tmp_path)) == ["schemas/clean.report.json", "schemas/upscale.settings.json"]
