#!/usr/bin/env bash
# Benchmarks (not tests): start a server on its own ports, measure side by side, stop it.
# Every figure printed is a ratio or a median from one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export RETOUCH_RUN_DIR=${RETOUCH_RUN_DIR:-$PWD/.run/bench}
export RETOUCH_HTTP_PORT=${RETOUCH_HTTP_PORT:-18000} RETOUCH_GRPC_PORT=${RETOUCH_GRPC_PORT:-18001}
export RETOUCH_METRICS_PORT=${RETOUCH_METRICS_PORT:-18002}
URL=127.0.0.1:$RETOUCH_GRPC_PORT
scripts/serve.sh start
trap 'scripts/serve.sh stop' EXIT

echo "== upscale throughput vs concurrency (tiles of concurrent requests share batches)"
.venv/bin/python scripts/perf.py --url "$URL" --size 256 --settings '{"scale": 2, "tile": 128}' \
  --concurrency 1:4:3 --window-ms 8000

echo
echo "== raw pixels over gRPC vs system shared memory, 4000x3000 RGB (transfer only; own server)"
.venv/bin/python scripts/bench_shm.py
