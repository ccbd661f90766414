"""export/tensorrt.py and scripts/bench_gpu.py without a GPU: they read the serving configs the way
the protobuf does, their parity rule accepts FP16 rounding and rejects real drift, and on a machine
with no GPU they say so and exit 0. (The GPU runs themselves: scripts/gpu_check.sh, docs/gpu.md.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.tensorrt import compare, gpu_name, read_gpu_config, sample_inputs, warmup_shapes

ROOT = Path(__file__).resolve().parents[2]
GPU_CONFIGS = sorted(ROOT.glob("model_repository/*/configs/gpu.pbtxt"))


def proto(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.parents[1].name)
def test_configs_read_as_the_protobuf_reads_them(path):
    config, parsed = proto(path), read_gpu_config(path)
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    params = dict(trt.parameters)
    assert parsed.name == config.name and parsed.precision == params["precision_mode"]
    assert parsed.workspace == int(params["max_workspace_size_bytes"])
    for which in ("min", "opt", "max"):
        value = ",".join(f"{n}:{'x'.join(map(str, s))}" for n, s in parsed.shapes(which).items())
        assert value == params[f"trt_profile_{which}_shapes"]
    assert warmup_shapes(path) == {
        w.name: {k: (w.batch_size, *v.dims) for k, v in w.inputs.items()} for w in config.model_warmup
    }
    # The provider options the benchmark gives onnxruntime are the config's.
    options = bench_module().trt_provider_options(path, Path("/tmp/cache"))
    assert options["trt_fp16_enable"] is (params["precision_mode"] == "FP16")
    assert options["trt_profile_opt_shapes"] == params["trt_profile_opt_shapes"]


def test_parity_rule_accepts_fp16_rounding_and_rejects_drift():
    reference = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    assert compare(reference.astype(np.float16).astype(np.float32), reference, "FP16")["ok"]
    assert not compare(reference + 0.01, reference, "FP16")["ok"]  # a mean shift of 0.01
    assert not compare(reference.astype(np.float16).astype(np.float32), reference, "FP32")["ok"]
    nan = reference.copy()
    nan[0, 0, 0, 0] = np.nan
    assert not compare(nan, reference, "FP16")["ok"]


def test_sample_inputs_have_the_profile_shapes_and_a_binary_mask():
    feeds = sample_inputs({"IMAGE": (2, 3, 32, 48), "MASK": (2, 1, 32, 48)})
    assert feeds["IMAGE"].shape == (2, 3, 32, 48) and feeds["MASK"].shape == (2, 1, 32, 48)
    assert set(np.unique(feeds["MASK"])) == {0.0, 1.0}


@pytest.mark.skipif(gpu_name() is not None, reason="a GPU is here: scripts/gpu_check.sh runs the real thing")
@pytest.mark.parametrize("command", [["-m", "export.tensorrt"], ["scripts/bench_gpu.py"]], ids=["export", "bench"])
def test_without_a_gpu_they_say_so_and_exit_0(command, tmp_path):
    done = subprocess.run(
        [sys.executable, *command, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU" in done.stdout
    assert not any(tmp_path.iterdir())


def test_benchmark_timing_and_report_on_the_cpu(tmp_path):
    """The benchmark's onnxruntime path (I/O binding, timing) and its markdown, run with the CPU
    provider on a real exported model; only the device differs on a GPU."""
    bench = bench_module()
    onnx_path = ROOT / "model_repository" / "inpaint_fast_fill" / "1" / "model.onnx"
    if not onnx_path.exists():
        pytest.skip("run make setup first: model.onnx is generated")
    feeds = sample_inputs({"IMAGE": (2, 3, 64, 64), "MASK": (2, 1, 64, 64)})
    session = bench.ort_session(onnx_path, ["CPUExecutionProvider"])
    run, outputs = bench.ort_on_device(session, feeds, device="cpu")
    ms = bench.median_ms(run, runs=3, warmup=1)
    (out,) = outputs()
    assert ms > 0 and out.shape == (2, 3, 64, 64)
    np.testing.assert_array_equal(out, session.run(None, feeds)[0])
    row = {
        "model": "inpaint_fast_fill",
        "shape": "crop64_batch2",
        "inputs": {"IMAGE": [2, 3, 64, 64]},
        "ort_cuda_ms": 2.0,
        "trt_fp16_ms": 0.5,
        "ort_trt_ms": 0.6,
        "ort_trt_precision": "FP32",
        "fp16_max_abs_diff": 1e-3,
        "speedup": 4.0,
    }
    body = bench.table("CPU stand-in", [row], 3, {"tensorrt": "-", "onnxruntime": "-"})
    doc = tmp_path / "gpu.md"
    doc.write_text((ROOT / "docs" / "gpu.md").read_text())
    bench.write_section(doc, body)
    text = doc.read_text()
    assert "| inpaint_fast_fill | crop64_batch2 (IMAGE 2x3x64x64) | 2.000 | 0.500 | 4.00x |" in text
    assert "Not measured yet" not in text and text.count(bench.START) == 1
