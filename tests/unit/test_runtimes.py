"""The CPU runtime choice (retouch/runtimes.py): ncnn serves the upscalers' source weights with the
same outputs as their ONNX exports, and every other model stays on onnxruntime."""

from pathlib import Path

import numpy as np
import pytest

from export.upscalers import MODELS, export
from retouch.runtimes import choose_runtime, load_runner

TOL = 1e-4  # as the export's own parity check: fp32 on both sides, only summation order differs


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_repository")
    for name in MODELS:
        export(name, root)
    return root


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ncnn_runner_matches_onnx_export(repository, name):
    version_dir = repository / name / "1"
    chosen, ncnn_run = load_runner(version_dir, "auto", threads=1)
    assert chosen == "ncnn"
    assert load_runner(version_dir, "onnxruntime", threads=1)[0] == "onnxruntime"
    _, ort_run = load_runner(version_dir, "onnxruntime", threads=1)
    x = np.random.default_rng(3).random((2, 3, 40, 52), dtype=np.float32)
    (got,), (want,) = ncnn_run({"INPUT": x}), ort_run({"INPUT": x}, ["OUTPUT"])
    assert got.shape == want.shape == (2, 3, 40 * MODELS[name].scale, 52 * MODELS[name].scale)
    assert got.dtype == np.float32 and np.abs(got - want).max() < TOL


def test_auto_is_onnxruntime_without_ncnn_weights(monkeypatch):
    monkeypatch.delenv("RETOUCH_CPU_RUNTIME", raising=False)
    assert choose_runtime("auto", {"onnx_sha256": "x"}) == "onnxruntime"
    assert choose_runtime("ncnn", {}) == "onnxruntime"
    assert choose_runtime("auto", {"ncnn": {}}) == "ncnn"
    monkeypatch.setenv("RETOUCH_CPU_RUNTIME", "onnxruntime")
    assert choose_runtime("auto", {"ncnn": {}}) == "onnxruntime"
    assert choose_runtime("ncnn", {"ncnn": {}}) == "ncnn"  # a config's explicit choice wins
    with pytest.raises(ValueError):
        choose_runtime("tensorrt", {})


def test_served_models_inherit_the_choice():
    """Every ONNX shim in the repository goes through retouch/runtimes.py (no model picks its own)."""
    root = Path(__file__).resolve().parents[2] / "model_repository"
    shims = [p for p in root.glob("*/1/model.py") if "OnnxRuntimeModel" in p.read_text()]
    assert {p.parts[-3] for p in shims} >= set(MODELS)
