"""perf_analyzer from the tritonclient wheel runs here against the real server (scripts/perf.py)."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_perf_script_measures_upscale(server, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "perf.py"),
            "--url",
            server["grpc"],
            "--model",
            "upscale",
            "--size",
            "64",
            "--csv",
            str(tmp_path / "perf.csv"),
            "--settings",
            '{"scale": 2, "tile": 32, "overlap": 8}',
            "--concurrency",
            "1:2",
            "--window-ms",
            "1500",
            "--stability",
            "1000",
        ],  # a shared CI machine is noisy: this checks it measures, not how stably
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)x", proc.stdout, re.M)
    assert [r[0] for r in rows] == ["1", "2"], proc.stdout
    assert all(float(r[1]) > 0 for r in rows)
    # 64 px with 32 px tiles and 8 px overlap: 3x3 tiles per request, sent as one chunk of 8 and one of 1.
    batch = re.search(r"upscaler_waifu2x_photo_x2: (\d+) inferences in (\d+) executions", proc.stdout)
    assert batch and int(batch.group(1)) % 9 == 0, proc.stdout
    with open(tmp_path / "perf.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["Concurrency"] for r in table] == ["1", "2"] and {r["Model"] for r in table} == {"upscale"}
    assert all(float(r["Inferences/Second"]) > 0 and int(r["p99 latency"]) > 0 for r in table)
