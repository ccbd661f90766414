#!/usr/bin/env bash
# make bench: benchmarks (not tests). Starts a server on its own ports (explicit model control, so
# the batching section can reload models with a config override), measures side by side, stops it.
# Every figure printed is a median or a ratio within one run on this machine; JSON under out/bench/.
#   BENCH_ROUNDS (3), BENCH_IMAGES (16), BENCH_SECTIONS (upscale,detect,batching,second_look,codec,4k,transport)
set -euo pipefail
cd "$(dirname "$0")/.."
export RETOUCH_RUN_DIR=${RETOUCH_RUN_DIR:-$PWD/.run/bench}
export RETOUCH_HTTP_PORT=${RETOUCH_HTTP_PORT:-18000} RETOUCH_GRPC_PORT=${RETOUCH_GRPC_PORT:-18001}
export RETOUCH_METRICS_PORT=${RETOUCH_METRICS_PORT:-18002}
export RETOUCH_SERVER_ARGS="${RETOUCH_SERVER_ARGS:-} --model-control-mode=explicit --load-model=*"
ROUNDS=${BENCH_ROUNDS:-3} IMAGES=${BENCH_IMAGES:-16}
SECTIONS=${BENCH_SECTIONS:-upscale,detect,batching,second_look,codec,4k,transport}
URL=127.0.0.1:$RETOUCH_GRPC_PORT
OUT=out/bench
mkdir -p "$OUT"
has() { [[ ",$SECTIONS," == *",$1,"* ]]; }
scripts/serve.sh start
trap 'scripts/serve.sh stop' EXIT

if has upscale; then
  echo "== upscale x2: served vs in-process limit vs the ncnn tile loop vs a naive tiler (concurrency 8)"
  .venv/bin/python scripts/bench_upscale.py --url "$URL" --rounds "$ROUNDS" --images "$IMAGES" \
    --json "$OUT/upscale.json"
fi
rest=$(echo "$SECTIONS" | tr ',' '\n' | grep -E '^(detect|batching|second_look|codec|4k)$' | paste -sd, || true)
if [ -n "$rest" ]; then
  echo
  .venv/bin/python scripts/bench.py --url "$URL" --pid-file "$RETOUCH_RUN_DIR/tritonserver.pid" \
    --rounds "$ROUNDS" --requests "$IMAGES" --sections "$rest" --json "$OUT/bench.json"
fi
scripts/serve.sh stop
trap - EXIT

if has transport; then
  echo
  echo "== raw pixels over gRPC vs system shared memory, 4000x3000 RGB (transfer only; own server)"
  .venv/bin/python scripts/bench_shm.py
fi
