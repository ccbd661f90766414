#!/usr/bin/env bash
# The GPU checks of issue 16 in one short run: TensorRT plans from every exported ONNX with their
# parity against onnxruntime (export/tensorrt.py), then TensorRT FP16 vs onnxruntime CUDA at the
# pipeline's fixed shapes (scripts/bench_gpu.py, which writes its table into docs/gpu.md).
#
# Where: a host with an NVIDIA GPU, CUDA 12 and cuDNN 9, or the serving image's base:
#   docker run --rm --gpus 1 -v "$PWD":/src -w /src nvcr.io/nvidia/tritonserver:24.10-py3 \
#     bash scripts/gpu_check.sh
# The ONNX models must exist first (make setup, or python -m export.upscalers/text_detectors/inpainters).
# Settings: PYTHON (python3), GPU_CHECK_INSTALL (1: pip install requirements/gpu.txt when a module is
# missing), RUNS (30 timed runs per shape), OUT (also copy the logs and reports there).
# Without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); nothing to do"
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
missing=$("$PY" -c '
import importlib.util as u
print(" ".join(m for m in ("numpy", "onnxruntime", "tensorrt", "cuda") if u.find_spec(m) is None))')
if [ -n "$missing" ]; then
  if [ "${GPU_CHECK_INSTALL:-1}" = 1 ]; then
    echo "gpu_check: installing requirements/gpu.txt (missing: $missing)"
    "$PY" -m pip install -q -r requirements/gpu.txt
  else
    echo "gpu_check: missing Python modules: $missing (pip install -r requirements/gpu.txt)" >&2
    exit 1
  fi
fi
"$PY" -c 'import onnxruntime as o; print("onnxruntime providers:", o.get_available_providers())'
for model in model_repository/*/configs/gpu.pbtxt; do
  onnx="$(dirname "$(dirname "$model")")/1/model.onnx"
  [ -f "$onnx" ] || { echo "gpu_check: $onnx is missing: export the models first" >&2; exit 1; }
done

mkdir -p build
status=0
timeout "${GPU_CHECK_EXPORT_TIMEOUT:-420}" "$PY" -m export.tensorrt --out build/trt 2>&1 | tee build/gpu_export.log \
  || status=$?
timeout "${GPU_CHECK_BENCH_TIMEOUT:-420}" "$PY" scripts/bench_gpu.py --runs "${RUNS:-30}" --write docs/gpu.md \
  --json build/bench_gpu.json 2>&1 | tee build/gpu_bench.log || status=$?
if [ -n "${OUT:-}" ]; then
  cp build/gpu_export.log build/gpu_bench.log "$OUT"/ 2>/dev/null || true
  cp build/trt/report.json "$OUT"/trt_report.json 2>/dev/null || true
  cp build/bench_gpu.json docs/gpu.md "$OUT"/ 2>/dev/null || true
fi
exit $status
