"""Build TensorRT plans from the exported ONNX models and check each against onnxruntime.

    python -m export.tensorrt [--repo model_repository] [--out build/trt] [--only NAME]
                              [--precision config|fp16|fp32]

Needs an NVIDIA GPU and the packages in requirements/gpu.txt (TensorRT 10.5 and onnxruntime 1.19,
as in nvcr.io/nvidia/tritonserver:24.10-py3). Without a GPU it says so and exits 0: there is
nothing to build on this machine.

The serving configs (model_repository/*/configs/gpu.pbtxt) let onnxruntime's TensorRT execution
provider build the engines when Triton loads the models. This builds the same engines offline, with
the optimisation profile, precision and workspace read from those configs, so that:
- parity is checked before serving: each plan runs at the profile's min and opt shapes and is
  compared with onnxruntime on the CPU in FP32 (FP16 tolerance: max |diff| <= 0.05, mean <= 0.005,
  on outputs in image units; FP32 plans, TF32 off: max <= 1e-3, mean <= 1e-5);
- scripts/bench_gpu.py can time the plans against onnxruntime's CUDA provider;
- a deployment that prefers `platform: "tensorrt_plan"` has plans to serve (`model.plan`).

Writes <out>/<model>/model.plan, <out>/timing.cache (reused by later builds) and <out>/report.json.
Exit status: 0 built and within tolerance (or no GPU), 1 a parity failure or a build error.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"FP16": {"max": 5e-2, "mean": 5e-3}, "FP32": {"max": 1e-3, "mean": 1e-5}}


@dataclass
class GpuConfig:
    """What a configs/gpu.pbtxt tells TensorRT: precision, workspace, one profile per input."""

    name: str
    precision: str  # FP16 or FP32
    workspace: int  # bytes
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def shapes(self, which: str) -> dict[str, tuple[int, ...]]:
        index = {"min": 0, "opt": 1, "max": 2}[which]
        return {name: shapes[index] for name, shapes in self.profile.items()}


def _parameters(text: str) -> dict[str, str]:
    return dict(re.findall(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value:\s*"([^"]*)"\s*\}', text))


def _shape_list(value: str) -> dict[str, tuple[int, ...]]:
    """ "IMAGE:1x3x256x256,MASK:1x1x256x256" -> {"IMAGE": (1, 3, 256, 256), ...}."""
    out = {}
    for item in value.split(","):
        name, dims = item.split(":")
        out[name] = tuple(int(d) for d in dims.split("x"))
    return out


def read_gpu_config(path: Path) -> GpuConfig:
    text = path.read_text()
    (name,) = re.findall(r'^name:\s*"([^"]+)"', text, re.M)
    params = _parameters(text)
    lo, opt, hi = (_shape_list(params[f"trt_profile_{k}_shapes"]) for k in ("min", "opt", "max"))
    return GpuConfig(
        name,
        params.get("precision_mode", "FP32").upper(),
        int(params.get("max_workspace_size_bytes", 1 << 30)),
        {n: (lo[n], opt[n], hi[n]) for n in lo},
    )


def warmup_shapes(path: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """The model_warmup entries of a config, {warm-up name: {input: (batch, *dims)}}: the fixed
    shapes the pipeline sends, which the benchmark times."""
    text = path.read_text()
    section = text[text.index("model_warmup") :]
    out = {}
    for block in re.split(r"\n\s*name:\s*", section)[1:]:
        name = re.match(r'"([^"]+)"', block).group(1)
        batch = int(re.search(r"batch_size:\s*(\d+)", block).group(1))
        dims = re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{[^}]*dims:\s*\[([^\]]*)\]', block)
        out[name] = {k: (batch, *(int(d) for d in v.split(","))) for k, v in dims}
    return out


def gpu_configs(repo: Path) -> list[GpuConfig]:
    return [read_gpu_config(p) for p in sorted(repo.glob("*/configs/gpu.pbtxt"))]


def gpu_name() -> str | None:
    """The first GPU's name from nvidia-smi, or None when there is no usable GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def sample_inputs(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Images uniform in [0, 1]; a MASK gets blocks and a line of holes (1) on known pixels (0)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if name == "MASK":
            mask = np.zeros(shape, np.float32)
            h, w = shape[-2:]
            mask[..., h // 4 : h // 2, w // 3 : 2 * w // 3] = 1.0
            mask[..., 3 * h // 4, :] = 1.0
            out[name] = mask
        else:
            out[name] = rng.random(shape, dtype=np.float32)
    return out


def compare(got: np.ndarray, want: np.ndarray, precision: str) -> dict:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    tol = TOLERANCE[precision]
    figures = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "finite": bool(np.isfinite(got).all())}
    figures["ok"] = figures["finite"] and figures["max_abs"] <= tol["max"] and figures["mean_abs"] <= tol["mean"]
    return figures


def ort_reference(onnx_path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# -- TensorRT (imported only when a GPU is there) ---------------------------------------------------


def build_plan(onnx_path: Path, config: GpuConfig, timing_cache: Path, precision: str) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{config.name}: TensorRT cannot parse {onnx_path}: {errors}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace)
    if precision == "FP16":
        builder_config.set_flag(trt.BuilderFlag.FP16)
    else:
        builder_config.clear_flag(trt.BuilderFlag.TF32)  # real FP32, to compare like with like
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in config.profile.items():
        profile.set_shape(name, lo, opt, hi)
    builder_config.add_optimization_profile(profile)
    cache = builder_config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    builder_config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, builder_config)
    if plan is None:
        raise RuntimeError(f"{config.name}: TensorRT could not build an engine (see the log above)")
    timing_cache.write_bytes(memoryview(builder_config.get_timing_cache().serialize()))
    return bytes(plan)


def _check(result) -> object:
    """cuda-python calls return (error, *values); raise on an error, return the value(s)."""
    from cuda import cudart

    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {error}")
    return values[0] if len(values) == 1 else values


class PlanRunner:
    """Runs a serialized plan on device buffers (cuda-python); `run` copies in and out, `execute`
    only launches and waits, for timing."""

    def __init__(self, plan: bytes):
        import tensorrt as trt
        from cuda import cudart

        self.trt, self.cudart = trt, cudart
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self.cudart.cudaFree(pointer))
            pointer = _check(self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def prepare(self, feeds: dict[str, np.ndarray]) -> None:
        kind = self.cudart.cudaMemcpyKind
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name])
            self.context.set_input_shape(name, array.shape)
            pointer = self._buffer(name, array.nbytes)
            _check(self.cudart.cudaMemcpy(pointer, array.ctypes.data, array.nbytes, kind.cudaMemcpyHostToDevice))
            self.context.set_tensor_address(name, pointer)
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._buffer(name, int(np.prod(shape)) * dtype.itemsize))

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        _check(self.cudart.cudaStreamSynchronize(self.stream))

    def fetch(self) -> list[np.ndarray]:
        kind = self.cudart.cudaMemcpyKind
        out = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            array = np.empty(shape, np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name))))
            pointer, _ = self.buffers[name]
            _check(self.cudart.cudaMemcpy(array.ctypes.data, pointer, array.nbytes, kind.cudaMemcpyDeviceToHost))
            out.append(array)
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.prepare(feeds)
        self.execute()
        return self.fetch()

    def close(self) -> None:
        for pointer, _ in self.buffers.values():
            self.cudart.cudaFree(pointer)
        self.buffers.clear()
        self.cudart.cudaStreamDestroy(self.stream)


def build_and_check(config: GpuConfig, repo: Path, out: Path, precision: str) -> dict:
    onnx_path = repo / config.name / "1" / "model.onnx"
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path} is missing: run `make setup` (or python -m export.*) first")
    started = time.perf_counter()
    plan = build_plan(onnx_path, config, out / "timing.cache", precision)
    build_s = time.perf_counter() - started
    (out / config.name).mkdir(parents=True, exist_ok=True)
    (out / config.name / "model.plan").write_bytes(plan)
    runner = PlanRunner(plan)
    parity = {}
    try:
        for which in ("min", "opt"):
            feeds = sample_inputs(config.shapes(which))
            got, want = runner.run(feeds), ort_reference(onnx_path, feeds)
            parity[which] = {
                "shapes": {k: list(v.shape) for k, v in feeds.items()},
                **compare(got[0], want[0], precision),
            }
    finally:
        runner.close()
    return {
        "name": config.name,
        "precision": precision,
        "build_s": round(build_s, 1),
        "plan_bytes": len(plan),
        "profile": {k: [list(s) for s in v] for k, v in config.profile.items()},
        "parity": parity,
        "tolerance": TOLERANCE[precision],
        "ok": all(p["ok"] for p in parity.values()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT / "model_repository", help="model repository root")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "trt", help="where plans and the report go")
    ap.add_argument("--only", action="append", help="build just these models")
    ap.add_argument(
        "--precision",
        choices=("config", "fp16", "fp32"),
        default="config",
        help="config: each model's precision_mode (default); fp16/fp32: all models",
    )
    args = ap.parse_args(argv)

    gpu = gpu_name()
    if gpu is None:
        print(
            "export.tensorrt: no NVIDIA GPU here (nvidia-smi finds none); no TensorRT plans built. "
            "Run it on a GPU host or in nvcr.io/nvidia/tritonserver:24.10-py3 with "
            "requirements/gpu.txt installed (scripts/gpu_check.sh)."
        )
        return 0
    try:
        import tensorrt as trt
        from cuda import cudart  # noqa: F401
    except ImportError as exc:
        print(
            f"export.tensorrt: a GPU is here ({gpu}) but {exc.name} is not installed: "
            f"pip install -r requirements/gpu.txt",
            file=sys.stderr,
        )
        return 1
    configs = [c for c in gpu_configs(args.repo) if not args.only or c.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"gpu": gpu, "tensorrt": trt.__version__, "models": []}
    failed = False
    for config in configs:
        precision = config.precision if args.precision == "config" else args.precision.upper()
        try:
            result = build_and_check(config, args.repo, args.out, precision)
        except Exception as exc:  # noqa: BLE001 - report every model, then fail
            result = {"name": config.name, "precision": precision, "ok": False, "error": str(exc)}
        report["models"].append(result)
        failed |= not result["ok"]
        if "error" in result:
            print(f"{config.name}: FAILED: {result['error']}")
        else:
            figures = ", ".join(
                f"{w} max {p['max_abs']:.2e} mean {p['mean_abs']:.2e}" for w, p in result["parity"].items()
            )
            print(
                f"{config.name}: {precision} plan in {result['build_s']} s; parity vs onnxruntime FP32: "
                f"{figures}; {'ok' if result['ok'] else 'OUT OF TOLERANCE'}"
            )
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"export.tensorrt: {gpu}, TensorRT {trt.__version__}; report in {args.out / 'report.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
