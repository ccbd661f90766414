"""JSON Schemas of every operation's SETTINGS and REPORT, generated from their declarations
(retouch.settings and the operations' settings, retouch.reports) into docs/schemas/:

  python -m retouch.schemas --write    # or: make schemas
  python -m retouch.schemas --check    # exit 1 when a committed schema is stale

tests/unit/test_schemas.py fails when one is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from retouch.inpaint import InpaintSettings
from retouch.remove_text import CleanSettings, RemoveTextSettings
from retouch.reports import REPORTS
from retouch.settings import UpscaleSettings
from retouch.text import DetectSettings

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"
SETTINGS: dict[str, type[BaseModel]] = {"upscale": UpscaleSettings, "detect_text": DetectSettings,
                                        "inpaint": InpaintSettings, "remove_text": RemoveTextSettings,
                                        "clean": CleanSettings}
DIALECT = "https://json-schema.org/draft/2020-12/schema"
FIX = "python -m retouch.schemas --write (make schemas)"


def _text(model: type[BaseModel], mode: str, title: str) -> str:
    schema = {"$schema": DIALECT, **model.model_json_schema(mode=mode), "title": title}
    return json.dumps(schema, indent=2) + "\n"


def generate() -> dict[str, str]:
    """file name -> schema text, for every operation."""
    files = {}
    for operation, settings in SETTINGS.items():
        files[f"{operation}.settings.json"] = _text(settings, "validation", f"{operation} SETTINGS")
        files[f"{operation}.report.json"] = _text(REPORTS[operation], "serialization", f"{operation} REPORT")
    return files


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Schema files missing or different from what the declarations give."""
    return [name for name, text in generate().items()
            if not (directory / name).is_file() or (directory / name).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"write the schemas into {SCHEMA_DIR}")
    action.add_argument("--check", action="store_true", help="exit 1 when a committed schema is stale")
    args = parser.parse_args(argv)
    if args.write:
        SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
        for name, text in generate().items():
            (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {len(generate())} schemas to {SCHEMA_DIR}")
        return 0
    outdated = stale()
    if outdated:
        print(f"stale schemas in {SCHEMA_DIR}: {outdated}; regenerate with {FIX}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
