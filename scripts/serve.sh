#!/usr/bin/env bash
# Start, wait for, and stop a real tritonserver over model_repository/ and ensembles/.
#
#   scripts/serve.sh start   # background; returns once ready and prints the endpoints
#   scripts/serve.sh stop    # stops it and removes the Python backend's leftover /dev/shm regions
#   scripts/serve.sh run     # foreground (containers, debugging)
#
# Settings (environment): RETOUCH_HOST (127.0.0.1: loopback unless you say otherwise),
# RETOUCH_HTTP_PORT (8000), RETOUCH_GRPC_PORT (8001), RETOUCH_METRICS_PORT (8002),
# RETOUCH_RUN_DIR (.run: log and pid file), RETOUCH_READY_TIMEOUT (180 s),
# RETOUCH_SERVER_ARGS (extra tritonserver flags), RETOUCH_ALLOW_SHM (0; 1 lets clients on this
# host register system shared memory), RETOUCH_CACHE_BYTES (size of Triton's response cache,
# which the inpaint ensemble uses; unset = no cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
HOST=${RETOUCH_HOST:-127.0.0.1}
HTTP_PORT=${RETOUCH_HTTP_PORT:-8000}
GRPC_PORT=${RETOUCH_GRPC_PORT:-8001}
METRICS_PORT=${RETOUCH_METRICS_PORT:-8002}
RUN_DIR=${RETOUCH_RUN_DIR:-$ROOT/.run}
LOG=$RUN_DIR/tritonserver.log
PIDFILE=$RUN_DIR/tritonserver.pid
mkdir -p "$RUN_DIR"

if [ ! -x .triton/bin/tritonserver ]; then
  echo "serve: tritonserver is not assembled; run scripts/setup.sh (or make setup) first" >&2
  exit 1
fi
# shellcheck source=scripts/env.sh
source scripts/env.sh

server_args=(
  --model-repository="$ROOT/model_repository"
  --model-repository="$ROOT/ensembles"
  --backend-directory="$ROOT/.triton/backends"
  --cache-directory="$ROOT/.triton/caches"
  --http-address="$HOST" --http-port="$HTTP_PORT"
  --grpc-address="$HOST" --grpc-port="$GRPC_PORT"
  --metrics-address="$HOST" --metrics-port="$METRICS_PORT"
  --allow-gpu-metrics=false
  --metrics-config=summary_latencies=true
  --pinned-memory-pool-byte-size=0
  --cuda-memory-pool-byte-size=0:0
  # Room for large images between the server and the Python stubs, grown in big steps.
  --backend-config=python,shm-default-byte-size=67108864
  --backend-config=python,shm-growth-byte-size=67108864
  --strict-readiness=true
  --exit-timeout-secs=10
)
# Explicit model control: every model is loaded at start, and the watchdog model reloads one whose
# Python stub died (Triton 2.51 neither restarts it nor turns readiness red; docs/reliability.md).
# RETOUCH_LOAD_MODELS: the models loaded at start (default all; empty = none).
server_args+=(--model-control-mode=explicit)
read -r -a load_models <<<"${RETOUCH_LOAD_MODELS-*}"  # read -a: no glob expansion
for model in "${load_models[@]}"; do server_args+=(--load-model="$model"); done
# Triton cannot switch an API off, only restrict it to requests carrying a header. The header named
# here cannot be sent: gRPC and HTTP/2 carry lower-case header names only, and a value cannot hold a
# line break in HTTP/1 or gRPC. So nothing secret is on the command line (which `ps` shows every
# local user) and nobody can use what is locked:
#   - client shared memory, unless RETOUCH_ALLOW_SHM=1 (then any local user who can reach the port
#     may register regions: trusted hosts only);
#   - the model repository (load/unload), logging and trace settings, unless RETOUCH_ADMIN_API=1.
#     The watchdog reloads models from inside the server, without the API.
lock=$'Retouch-Locked=never\nsent'
locked=()
[ "${RETOUCH_ALLOW_SHM:-0}" = 1 ] || locked+=(shared-memory)
[ "${RETOUCH_ADMIN_API:-0}" = 1 ] || locked+=(model-repository logging trace)
if [ ${#locked[@]} -gt 0 ]; then
  groups=$(IFS=,; echo "${locked[*]}")
  server_args+=(--grpc-restricted-protocol="$groups:$lock" --http-restricted-api="$groups:$lock")
fi
# Triton's local response cache, for the ensembles that enable it (inpaint); off unless sized.
if [ -n "${RETOUCH_CACHE_BYTES:-}" ]; then
  server_args+=(--cache-config="local,size=$RETOUCH_CACHE_BYTES")
fi
# shellcheck disable=SC2206
extra=(${RETOUCH_SERVER_ARGS:-})

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# Something already listening there would answer our readiness probe, or take our gRPC port.
port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_ready() {
  local deadline=$((SECONDS + ${RETOUCH_READY_TIMEOUT:-180}))
  # Ready over HTTP, and the gRPC service (what clients use) started too.
  until curl -sf "http://$HOST:$HTTP_PORT/v2/health/ready" >/dev/null \
        && grep -q "Started GRPCInferenceService" "$LOG"; do
    if ! running; then
      echo "serve: tritonserver exited during start-up; last log lines:" >&2
      tail -n 40 "$LOG" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "serve: not ready after ${RETOUCH_READY_TIMEOUT:-180}s; see $LOG" >&2
      return 1
    fi
    sleep 0.5
  done
}

case "${1:-start}" in
  start)
    if running; then
      echo "serve: already running (pid $(cat "$PIDFILE"))"
      exit 0
    fi
    for port in "$HTTP_PORT" "$GRPC_PORT" "$METRICS_PORT"; do
      if port_in_use "$port"; then
        echo "serve: $HOST:$port is already in use; stop that server or set RETOUCH_HTTP_PORT," \
             "RETOUCH_GRPC_PORT and RETOUCH_METRICS_PORT" >&2
        exit 1
      fi
    done
    setsid tritonserver "${server_args[@]}" "${extra[@]}" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    if ! wait_ready; then
      "$0" stop >/dev/null 2>&1 || true
      exit 1
    fi
    echo "serve: tritonserver ready (pid $(cat "$PIDFILE"), log $LOG)"
    echo "  gRPC     $HOST:$GRPC_PORT"
    echo "  HTTP     http://$HOST:$HTTP_PORT"
    echo "  metrics  http://$HOST:$METRICS_PORT/metrics"
    ;;
  stop)
    if running; then
      pid=$(cat "$PIDFILE")
      kill -TERM "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      # The whole process group: the Python backend stubs too.
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "serve: stopped pid $pid"
    fi
    rm -f "$PIDFILE"
    python scripts/clean_shm.py
    ;;
  run)
    trap 'python scripts/clean_shm.py' EXIT
    tritonserver "${server_args[@]}" "${extra[@]}"
    ;;
  *)
    echo "usage: $0 start|stop|run" >&2
    exit 2
    ;;
esac
