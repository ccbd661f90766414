"""The Prometheus config, recording and alert rules pass promtool's checks and unit tests.

promtool comes from Debian's `prometheus` package, which scripts/setup.sh installs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))


def promtool(*args: str) -> str:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: run scripts/setup.sh (apt package `prometheus`)")
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_rule_files_exist():
    assert {p.name for p in RULE_FILES} == {"recording.yml", "alerts.yml"}


def test_check_config():
    assert "SUCCESS" in promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_check_rules():
    promtool("check", "rules", *map(str, RULE_FILES))


def test_rules_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", str(PROMETHEUS / "rules.test.yml"))


def test_every_alert_is_tested_firing_and_silent():
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    cases = [
        case
        for test in yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - fires == set(), "alerts without a case where they fire"
    assert alerts - silent == set(), "alerts without a case where they stay silent"
