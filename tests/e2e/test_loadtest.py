"""scripts/loadtest runs against the real server and writes a report that parses (not how fast)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("loop", [["--concurrency", "2"], ["--rate", "2"]], ids=["closed", "open"])
def test_loadtest_writes_a_parseable_report(server, tmp_path, loop):
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "loadtest.py"),
            "--url",
            server["grpc"],
            *loop,
            "--requests",
            "4",
            "--duration",
            "60",
            "--mix",
            "upscale:1,detect_text:1",
            "--sizes",
            "64:1,96:1",
            "--settings",
            '{"upscale": {"tile": 32, "overlap": 8}}',
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["total"]["requests"] == 4 and len(report["requests"]) == 4
    assert report["total"]["ok"] + sum(report["total"]["errors_by_status"].values()) == 4
    for stats in report["operations"].values():
        if stats["ok"]:
            lat = stats["latency_s"]
            assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    if "upscale" in report["operations"] and report["operations"]["upscale"]["ok"]:
        assert 0.0 <= report["operations"]["upscale"]["seam_rate"] <= 1.0
    assert "| operation | requests |" in (out / "report.md").read_text()
    for png in ("latency_over_time.png", "latency_histogram.png"):
        with Image.open(out / png) as img:
            assert img.format == "PNG" and img.width > 100
