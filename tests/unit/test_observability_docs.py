"""The README lists every retouch metric family; docs/observability.md every recording rule and alert."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "observability.md").read_text()


def metric_families() -> list[str]:
    """FAMILIES' keys in retouch/triton/metrics.py, read without importing Triton's stub module."""
    tree = ast.parse((ROOT / "retouch" / "triton" / "metrics.py").read_text())
    (families,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FAMILIES" for t in node.targets)
    ]
    return [key.value for key in families.keys]


def rule_names() -> list[str]:
    rules = [
        r
        for path in sorted((ROOT / "docker" / "prometheus" / "rules").glob("*.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
    ]
    return sorted({r.get("record") or r["alert"] for r in rules})


def test_families_found():
    assert "retouch_edits_total" in metric_families() and len(rule_names()) > 10


README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", metric_families())
def test_metric_listed_in_readme(name):
    assert f"`{name}`" in README


@pytest.mark.parametrize("name", rule_names())
def test_rule_documented(name):
    assert f"`{name}`" in DOC
