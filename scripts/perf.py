"""Load-test the operations with perf_analyzer (from the tritonclient wheel) over gRPC.

    scripts/perf                                        # every ensemble, sizes 256,512, concurrency 1:8:
    scripts/perf --model upscale --sizes 128,256,512 --concurrency 1:8:1 --csv out/perf.csv
    scripts/perf --model upscale --size 128 --settings '{"scale": 2}' --concurrency 1:4

For each ensemble it writes perf_analyzer's input-data JSON: real photos (scikit-image) of each size
with a line of text on them, PNG encoded, b64 in Triton's BYTES wire format, plus a two-rectangle
mask where the operation takes one (scripts/workload.py). perf_analyzer cycles through the entries.
It sweeps the concurrency range, writes one CSV (perf_analyzer's columns plus the model and sizes),
and prints a table: throughput, p50/p95/p99 latency, and the server's time split into queue and
compute (input + infer + output), as perf_analyzer reports them from Triton's statistics; then, for
every model the run touched, the average executed batch (inference_count / execution_count) and its
queue and compute time per request, which show where an ensemble's time goes.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import tritonclient.grpc as grpcclient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from workload import OPERATIONS, request  # noqa: E402


def serialized_bytes(value: bytes) -> str:
    """One BYTES element in Triton's wire format (4-byte little-endian length, then the bytes)."""
    return base64.b64encode(struct.pack("<I", len(value)) + value).decode()


def input_data(model: str, sizes: list[int], settings: dict) -> dict:
    entries = []
    for i, size in enumerate(sizes):
        entry = {
            name: {"b64": serialized_bytes(value), "shape": [1]} for name, value in request(model, size, i).items()
        }
        if settings:
            entry["SETTINGS"] = {"b64": serialized_bytes(json.dumps(settings).encode()), "shape": [1]}
        entries.append(entry)
    return {"data": entries}


def batch_stats(url: str) -> dict[str, tuple[int, int, int, int, int]]:
    """model -> (inferences, executions, requests, queue ns, compute ns) so far."""
    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics().model_stats
    out = {}
    for s in stats:
        i = s.inference_stats
        compute = i.compute_input.ns + i.compute_infer.ns + i.compute_output.ns
        out[s.name] = (s.inference_count, s.execution_count, i.success.count, i.queue.ns, compute)
    return out


def perf_env() -> dict:
    env = dict(os.environ)
    # perf_analyzer needs the libraries scripts/env.sh puts on the path.
    env_sh = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/env.sh && env -0"], env=env, capture_output=True, check=True
    ).stdout
    env.update(kv.split("=", 1) for kv in env_sh.decode().split("\0") if "=" in kv)
    return env


def run(
    url: str,
    model: str,
    sizes: list[int],
    settings: dict,
    concurrency: str,
    window_ms: int,
    stability: int,
    max_trials: int = 4,
) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        data_file, report = Path(tmp, "input.json"), Path(tmp, "report.csv")
        data_file.write_text(json.dumps(input_data(model, sizes, settings)))
        cmd = [
            "perf_analyzer",
            "-m",
            model,
            "-i",
            "grpc",
            "-u",
            url,
            "--input-data",
            str(data_file),
            "--concurrency-range",
            concurrency,
            "--measurement-interval",
            str(window_ms),
            "--stability-percentage",
            str(stability),
            "--max-trials",
            str(max_trials),
            "--percentile",
            "95",
            "-f",
            str(report),
        ]
        proc = subprocess.run(cmd, env=perf_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            print(
                f"perf_analyzer failed ({proc.returncode}) on {model}:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}",
                file=sys.stderr,
            )
            return []
        with report.open() as f:
            rows = sorted(csv.DictReader(f), key=lambda row: int(row["Concurrency"]))
    for row in rows:
        row["Model"], row["Sizes"] = model, "+".join(map(str, sizes))
    return rows


def ms(row: dict, key: str) -> float:
    return int(row.get(key) or 0) / 1e3


def print_table(model: str, sizes: list[int], settings: dict, rows: list[dict]) -> None:
    base = float(rows[0]["Inferences/Second"])
    print(f"\n{model}, PNG {'+'.join(f'{s}²' for s in sizes)}, settings {json.dumps(settings)}")
    print(
        f"{'concurrency':>11} {'req/s':>8} {'vs first':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'queue ms':>9} {'compute ms':>10}"
    )
    for row in rows:
        rps = float(row["Inferences/Second"])
        compute = sum(ms(row, k) for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output"))
        print(
            f"{row['Concurrency']:>11} {rps:8.2f} {rps / base:7.2f}x {ms(row, 'p50 latency'):8.1f} "
            f"{ms(row, 'p95 latency'):8.1f} {ms(row, 'p99 latency'):8.1f} {ms(row, 'Server Queue'):9.1f} "
            f"{compute:10.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("RETOUCH_URL", "127.0.0.1:8001"))
    ap.add_argument(
        "--model", action="append", choices=OPERATIONS, help="ensemble to load (repeatable; default: all five)"
    )
    ap.add_argument("--sizes", default="256,512", help="image sides, comma-separated (one entry each)")
    ap.add_argument("--size", type=int, help="a single image side (same as --sizes N)")
    ap.add_argument("--settings", default="{}", help="SETTINGS JSON sent with every request")
    ap.add_argument("--concurrency", default="1:8:7", help="perf_analyzer --concurrency-range start:end:step")
    ap.add_argument("--window-ms", type=int, default=5000, help="measurement window per step")
    ap.add_argument(
        "--stability",
        type=int,
        default=50,
        help="perf_analyzer --stability-percentage: how far windows may differ (noisy hosts need more)",
    )
    ap.add_argument("--max-trials", type=int, default=4, help="windows per step (at least 3 for a stability check)")
    ap.add_argument(
        "--csv", type=Path, help="write every row here (default: out/perf.csv)", default=ROOT / "out" / "perf.csv"
    )
    args = ap.parse_args()
    sizes = [args.size] if args.size else [int(s) for s in args.sizes.split(",")]
    settings = json.loads(args.settings)

    all_rows, failed = [], []
    for model in args.model or OPERATIONS:
        before = batch_stats(args.url)
        rows = run(args.url, model, sizes, settings, args.concurrency, args.window_ms, args.stability, args.max_trials)
        after = batch_stats(args.url)
        if not rows:
            failed.append(model)
            continue
        print_table(model, sizes, settings, rows)
        print("  per step (the whole run, from Triton's statistics): queue and compute per request")
        for name, now in sorted(after.items()):
            d = [a - b for a, b in zip(now, before.get(name, (0,) * 5))]
            if d[1] and name != model:
                print(
                    f"  {name}: {d[0]} inferences in {d[1]} executions, average batch {d[0] / d[1]:.2f}; "
                    f"queue {d[3] / d[2] / 1e6:.1f} ms, compute {d[4] / d[2] / 1e6:.1f} ms"
                )
        all_rows += rows
    if not all_rows:
        sys.exit(f"perf_analyzer measured nothing (failed: {', '.join(failed)})")
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    fields = ["Model", "Sizes"] + [k for k in all_rows[0] if k not in ("Model", "Sizes")]
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(all_rows)
    print(f"\nCSV: {args.csv}")
    if failed:
        sys.exit(f"perf_analyzer failed on: {', '.join(failed)} (slow operations need a longer --window-ms)")


if __name__ == "__main__":
    main()
