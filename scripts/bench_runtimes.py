"""Per-tile speed of each CPU runtime on the same upscaler weights, interleaved (the runtime choice
in retouch/runtimes.py rests on this).

    .venv/bin/python scripts/bench_runtimes.py [--model upscaler_waifu2x_photo_x2] [--tile 128] [--rounds 4]

Candidates: onnxruntime on model.onnx (batch 8; 2 and 1 intra-op threads), ncnn on the source
.param/.bin (one tile at a time, as it runs; 2 threads and 1), and OpenVINO on model.onnx when the
`openvino` package is importable (it is not a dependency: pip install openvino==2024.6.0 to include
it). Prints the median ms per tile and each output's max difference from onnxruntime's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from retouch.runtimes import NcnnRunner, load_runner, read_export_manifest

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="upscaler_waifu2x_photo_x2")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    version_dir = ROOT / "model_repository" / args.model / "1"
    x = np.random.default_rng(0).random((8, 3, args.tile, args.tile), dtype=np.float32)
    manifest = read_export_manifest(version_dir)
    cands = {}
    for threads in (2, 1):
        run = load_runner(version_dir, "onnxruntime", threads)[1]
        cands[f"onnxruntime {threads}t batch 8"] = lambda run=run: run({"INPUT": x})[0]
    for threads in (2, 1):
        net = NcnnRunner(manifest, threads)
        cands[f"ncnn {threads}t tile by tile"] = lambda net=net: net({"INPUT": x})[0]
    try:
        import openvino as ov

        for threads in (2, 1):
            compiled = ov.Core().compile_model(
                str(version_dir / "model.onnx"),
                "CPU",
                {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"},
            )
            req = compiled.create_infer_request()
            cands[f"openvino {threads}t batch 8"] = lambda req=req: req.infer({0: x})[0]
    except ImportError:
        print("openvino: not installed, skipped")
    ref = cands["onnxruntime 2t batch 8"]()
    diffs = {k: float(np.abs(np.asarray(f()) - ref).max()) for k, f in cands.items()}
    times = {k: [] for k in cands}
    for _ in range(args.rounds):
        for k, f in cands.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) / len(x) * 1e3)
    base = times["onnxruntime 2t batch 8"]
    print(f"{args.model}, {args.tile}^2 tiles, median of {args.rounds} interleaved rounds")
    print(f"{'runtime':28s} {'ms/tile':>8s} {'vs ort 2t':>9s} {'max |diff|':>10s}")
    for k, v in times.items():
        ratio = statistics.median(b / a for a, b in zip(v, base))
        print(f"{k:28s} {statistics.median(v):8.1f} {ratio:8.2f}x {diffs[k]:10.1e}")


if __name__ == "__main__":
    main()
