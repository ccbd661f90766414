"""Load-test an operation with perf_analyzer (from the tritonclient wheel) against a running server.

    scripts/perf.py --model upscale --size 128 --settings '{"scale": 2}' --concurrency 1:4

Writes perf_analyzer's input-data JSON for the ensemble (a real photo from scikit-image, PNG
encoded, cropped to --size), runs perf_analyzer over gRPC, and prints a summary per concurrency
with throughput relative to the lowest concurrency, plus the average executed batch of each
model the run touched (inference_count / execution_count from Triton's statistics).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]


def serialized_bytes(value: bytes) -> str:
    """One BYTES element in Triton's wire format (4-byte little-endian length, then the bytes)."""
    return base64.b64encode(struct.pack("<I", len(value)) + value).decode()


def input_data(size: int, settings: dict) -> dict:
    photo = data.astronaut()
    h, w = photo.shape[:2]
    crop = photo[(h - size) // 2:(h + size) // 2, (w - size) // 2:(w + size) // 2] if size <= min(h, w) \
        else np.asarray(Image.fromarray(photo).resize((size, size), Image.BICUBIC))
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="PNG")
    entry = {"IMAGE": {"b64": serialized_bytes(buf.getvalue()), "shape": [1]}}
    if settings:
        entry["SETTINGS"] = {"b64": serialized_bytes(json.dumps(settings).encode()), "shape": [1]}
    return {"data": [entry]}


def batch_stats(url: str) -> dict[str, tuple[int, int]]:
    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics().model_stats
    return {s.name: (s.inference_count, s.execution_count) for s in stats}


def run(url: str, model: str, size: int, settings: dict, concurrency: str, window_ms: int,
        stability: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        data_file, report = Path(tmp, "input.json"), Path(tmp, "report.csv")
        data_file.write_text(json.dumps(input_data(size, settings)))
        cmd = ["perf_analyzer", "-m", model, "-i", "grpc", "-u", url, "--input-data", str(data_file),
               "--concurrency-range", concurrency, "--measurement-interval", str(window_ms),
               "--stability-percentage", str(stability), "--max-trials", "4", "-f", str(report)]
        env = dict(os.environ)
        # perf_analyzer needs the libraries scripts/env.sh puts on the path.
        env_sh = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/env.sh && env -0"], env=env,
                                capture_output=True, check=True).stdout
        env.update(kv.split("=", 1) for kv in env_sh.decode().split("\0") if "=" in kv)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"perf_analyzer failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        with report.open() as f:
            return sorted(csv.DictReader(f), key=lambda row: int(row["Concurrency"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("RETOUCH_URL", "127.0.0.1:8001"))
    ap.add_argument("--model", default="upscale")
    ap.add_argument("--size", type=int, default=128, help="input image side, pixels")
    ap.add_argument("--settings", default="{}", help="SETTINGS JSON sent with every request")
    ap.add_argument("--concurrency", default="1:4", help="perf_analyzer --concurrency-range")
    ap.add_argument("--window-ms", type=int, default=5000, help="measurement window per step")
    ap.add_argument("--stability", type=int, default=50,
                    help="perf_analyzer --stability-percentage: how far windows may differ (noisy hosts need more)")
    args = ap.parse_args()

    before = batch_stats(args.url)
    rows = run(args.url, args.model, args.size, json.loads(args.settings), args.concurrency, args.window_ms,
               args.stability)
    after = batch_stats(args.url)

    base = float(rows[0]["Inferences/Second"])
    print(f"{args.model}, {args.size}x{args.size} PNG, settings {args.settings}")
    print(f"{'concurrency':>11} {'req/s':>8} {'vs first':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        rps = float(row["Inferences/Second"])
        print(f"{row['Concurrency']:>11} {rps:8.2f} {rps / base:7.2f}x "
              f"{int(row['p50 latency']) / 1e3:8.1f} {int(row['p95 latency']) / 1e3:8.1f}")
    for name, (inf, exe) in sorted(after.items()):
        d_inf, d_exe = inf - before.get(name, (0, 0))[0], exe - before.get(name, (0, 0))[1]
        if d_exe:
            print(f"  {name}: {d_inf} inferences in {d_exe} executions, average batch {d_inf / d_exe:.2f}")


if __name__ == "__main__":
    main()
