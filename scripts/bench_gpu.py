"""GPU benchmark: TensorRT FP16 plans vs onnxruntime's CUDA provider, per model, at the shapes the
pipeline sends (each config's model_warmup: 128 px upscaler tiles, the detector's 640/960/1280
buckets, 256 px inpainting crops, at batch 1 and 8).

    python scripts/bench_gpu.py [--runs 50] [--write docs/gpu.md] [--json build/bench_gpu.json]

Three columns per shape, all timed on device buffers (no host copies), median of --runs after
warm-up runs:
- ORT CUDA: onnxruntime-gpu, CUDAExecutionProvider, FP32 (the baseline);
- TRT FP16: a TensorRT plan built by export/tensorrt.py with the config's profile, FP16;
- ORT-TRT: onnxruntime's TensorRT provider with the config's own settings (what Triton serves
  with configs/gpu.pbtxt).
Also the FP16 plan's max |diff| against ORT CUDA. The goal in issue 16 is TRT FP16 >= 2x ORT CUDA.

--write replaces the block between the gpu-bench markers of that file with the table and the GPU.
Without a GPU it says so and exits 0 (nothing is written). Needs requirements/gpu.txt.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.tensorrt import PlanRunner, build_plan, gpu_configs, gpu_name, read_gpu_config, sample_inputs, warmup_shapes  # noqa: E402

START, END = "<!-- gpu-bench:start -->", "<!-- gpu-bench:end -->"


def median_ms(run, runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def ort_session(onnx_path: Path, providers: list):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), options, providers=providers)


def ort_on_device(session, feeds: dict[str, np.ndarray], device: str = "cuda"):
    """A callable running `session` on inputs already on the device, and one returning its outputs."""
    import onnxruntime as ort

    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, device)

    def run():
        session.run_with_iobinding(binding)

    def outputs():
        return binding.copy_outputs_to_cpu()

    return run, outputs


def trt_provider_options(config_path: Path, cache: Path) -> dict:
    """The TensorRT provider options configs/gpu.pbtxt gives Triton, in onnxruntime's names."""
    params = dict(re.findall(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value:\s*"([^"]*)"\s*\}', config_path.read_text()))
    options = {k: v for k, v in params.items() if k.startswith("trt_")}
    options["trt_fp16_enable"] = params.get("precision_mode", "FP32").upper() == "FP16"
    options["trt_max_workspace_size"] = int(params.get("max_workspace_size_bytes", 1 << 30))
    options["trt_engine_cache_path"] = options["trt_timing_cache_path"] = str(cache)
    for key in ("trt_engine_cache_enable", "trt_timing_cache_enable"):
        options[key] = options.get(key, "0") in ("1", "true")
    return options


def bench_model(config_path: Path, out: Path, runs: int) -> list[dict]:
    config = read_gpu_config(config_path)
    onnx_path = config_path.parents[1] / "1" / "model.onnx"
    fp16 = PlanRunner(build_plan(onnx_path, config, out / "timing.cache", "FP16"))
    cuda = ort_session(onnx_path, [("CUDAExecutionProvider", {"device_id": 0})])
    (out / "ort_trt").mkdir(parents=True, exist_ok=True)
    served = ort_session(
        onnx_path,
        [
            ("TensorrtExecutionProvider", trt_provider_options(config_path, out / "ort_trt")),
            ("CUDAExecutionProvider", {"device_id": 0}),
        ],
    )
    rows = []
    try:
        for label, shapes in warmup_shapes(config_path).items():
            feeds = sample_inputs(shapes)
            cuda_run, cuda_outputs = ort_on_device(cuda, feeds)
            served_run, _ = ort_on_device(served, feeds)
            fp16.prepare(feeds)
            row = {
                "model": config.name,
                "shape": label,
                "inputs": {k: list(v) for k, v in shapes.items()},
                "ort_cuda_ms": median_ms(cuda_run, runs),
                "trt_fp16_ms": median_ms(fp16.execute, runs),
                "ort_trt_ms": median_ms(served_run, runs),
                "ort_trt_precision": config.precision,
            }
            cuda_run()
            (reference, *_), (got, *_) = cuda_outputs(), fp16.fetch()
            row["fp16_max_abs_diff"] = float(np.abs(got.astype(np.float64) - reference).max())
            row["speedup"] = row["ort_cuda_ms"] / row["trt_fp16_ms"]
            rows.append(row)
            print(
                f"{config.name} {label}: ORT CUDA {row['ort_cuda_ms']:.3f} ms, TRT FP16 {row['trt_fp16_ms']:.3f} ms "
                f"({row['speedup']:.2f}x), ORT-TRT {row['ort_trt_ms']:.3f} ms; FP16 max |diff| "
                f"{row['fp16_max_abs_diff']:.2e}",
                flush=True,
            )
    finally:
        fp16.close()
    return rows


def versions() -> dict:
    import onnxruntime
    import tensorrt

    return {
        "tensorrt": tensorrt.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def table(gpu: str, rows: list[dict], runs: int, env: dict) -> str:
    lines = [
        f"GPU: **{gpu}**; TensorRT {env['tensorrt']}, onnxruntime {env['onnxruntime']}; median of {runs} "
        f"runs on device buffers (`python scripts/bench_gpu.py --runs {runs} --write docs/gpu.md`, "
        f"{time.strftime('%Y-%m-%d')}).",
        "",
        "| model | shape | ORT CUDA FP32 ms | TRT FP16 ms | TRT FP16 vs ORT CUDA | ORT-TRT (served) ms | FP16 max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        shape = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["inputs"].items())
        lines.append(
            f"| {r['model']} | {r['shape']} ({shape}) | {r['ort_cuda_ms']:.3f} | {r['trt_fp16_ms']:.3f} | "
            f"{r['speedup']:.2f}x | {r['ort_trt_ms']:.3f} ({r['ort_trt_precision']}) | "
            f"{r['fp16_max_abs_diff']:.1e} |"
        )
    speedups = [r["speedup"] for r in rows]
    lines += [
        "",
        f"Median speed-up of TRT FP16 over ORT CUDA: {statistics.median(speedups):.2f}x "
        f"(range {min(speedups):.2f}x to {max(speedups):.2f}x); goal 2x.",
    ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{body}\n{END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "trt-bench", help="plans and engine caches")
    ap.add_argument("--only", action="append", help="just these models")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--write", type=Path, help="markdown file with gpu-bench markers to update (docs/gpu.md)")
    ap.add_argument("--json", type=Path, default=ROOT / "build" / "bench_gpu.json")
    args = ap.parse_args(argv)

    gpu = gpu_name()
    if gpu is None:
        print("bench_gpu: no NVIDIA GPU here (nvidia-smi finds none); nothing measured, nothing written.")
        return 0
    try:
        env = versions()
        from cuda import cudart  # noqa: F401
    except ImportError as exc:
        print(
            f"bench_gpu: a GPU is here ({gpu}) but {exc.name} is not installed: pip install -r requirements/gpu.txt",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for config in gpu_configs(args.repo):
        if not args.only or config.name in args.only:
            rows += bench_model(args.repo / config.name / "configs" / "gpu.pbtxt", args.out, args.runs)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"gpu": gpu, **env, "runs": args.runs, "rows": rows}, indent=2) + "\n")
    body = table(gpu, rows, args.runs, env)
    print(body)
    if args.write:
        write_section(args.write, body)
        print(f"bench_gpu: wrote the table into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
