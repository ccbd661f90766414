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
    assert warmup_shapes(path) == {w.name: {k: (w.batch_size, *v.dims) for k, v in w.inputs.items()}
                                   for w in config.model_warmup}
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
    done = subprocess.run([sys.executable, *command, "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU" in done.stdout
    assert not any(tmp_path.iterdir())
