#!/usr/bin/env python
"""Benchmark (not a test): the same request's round trip with raw pixels over plain gRPC versus
through system shared memory, both sent by RetouchClient, on a large image (4000x3000 RGB).

What runs on the server: by default `echo_pixels`, a Python-backend identity model that follows the
operations' I/O convention (PIXELS in, OUTPUT_PIXELS and REPORT out) and does no image work, so the
numbers are the transfer and Triton's handling alone. The real `upscale` at 12 MP takes minutes on
this CPU, which would drown the transfer; give --url and --operation to time a real operation on a
running server instead (the model's time is then in both numbers).

    .venv/bin/python scripts/bench_shm.py                  # starts its own server (scripts/serve.sh)
    .venv/bin/python scripts/bench_shm.py --size 2000x1500 --runs 21
    .venv/bin/python scripts/bench_shm.py --url 127.0.0.1:8001 --operation upscale --size 256x256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from local_server import local_server

from retouch_client import OPERATIONS, Operation, RetouchClient

ROOT = Path(__file__).resolve().parents[1]
ECHO = Operation("echo_pixels")
GOAL = 5.0

ECHO_CONFIG = """\
# Identity over the operations' I/O convention: transfer only, for scripts/bench_shm.py.
name: "echo_pixels"
backend: "python"
max_batch_size: 0
input [
  {
    name: "PIXELS"
    data_type: TYPE_UINT8
    dims: [ -1, -1, 3 ]
  },
  {
    name: "SETTINGS"
    data_type: TYPE_STRING
    dims: [ 1 ]
    optional: true
  }
]
output [
  {
    name: "OUTPUT_PIXELS"
    data_type: TYPE_UINT8
    dims: [ -1, -1, 3 ]
  },
  {
    name: "REPORT"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }
]
instance_group [
  {
    count: 1
    kind: KIND_CPU
  }
]
"""

ECHO_MODEL = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS").as_numpy()
            report = np.array([b'{"operation": "echo_pixels"}'], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT_PIXELS", pixels), pb_utils.Tensor("REPORT", report)]))
        return responses
"""


@contextmanager
def echo_server():
    """A tritonserver from scripts/serve.sh with shared memory allowed, loading only echo_pixels."""
    with tempfile.TemporaryDirectory(prefix="bench_shm_") as tmp:
        model = Path(tmp, "models", "echo_pixels")
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_text(ECHO_CONFIG)
        (model / "1" / "model.py").write_text(ECHO_MODEL)
        args = f"--model-repository={model.parent} --model-control-mode=explicit --load-model=echo_pixels"
        try:
            with local_server(Path(tmp, "run"), RETOUCH_ALLOW_SHM="1", RETOUCH_SERVER_ARGS=args) as server:
                yield server["grpc"]
        except RuntimeError as exc:
            sys.exit(f"bench_shm: {exc}")


def timed_calls(
    clients: dict[str, RetouchClient], operation: Operation, pixels: np.ndarray, settings: dict, runs: int, warmup: int
) -> dict[str, list[float]]:
    """Interleaved, so both paths see the same background load on a shared machine."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(warmup + runs):
        for name, client in clients.items():
            start = time.perf_counter()
            client.call(operation, pixels, **settings)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4000x3000", help="WxH of the random RGB image (%(default)s)")
    ap.add_argument("--runs", type=int, default=15, help="timed round trips per path (%(default)s)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed round trips per path first (%(default)s)")
    ap.add_argument("--url", help="a running server (started with RETOUCH_ALLOW_SHM=1); default: start one")
    ap.add_argument(
        "--operation",
        default=None,
        help="operation to time on --url (default echo_pixels on our own server, upscale on --url)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="integer settings for --operation, e.g. --set tile=256",
    )
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    settings = {k: int(v) for k, v in (item.split("=", 1) for item in args.set)}

    with echo_server() if args.url is None else _given(args.url) as url:
        if args.url is None:
            operation, what = (
                ECHO,
                (
                    "echo_pixels, a Python-backend identity model: transfer only, no image "
                    "work (upscale at 12 MP would take minutes of CPU and drown the transfer)"
                ),
            )
        else:
            name = args.operation or "upscale"
            operation = next((op for op in OPERATIONS if op.name == name), Operation(name))
            what = f"the {name} operation on {url}: its model time is in both numbers"
        clients = {
            "grpc": RetouchClient(url, raw_pixels=True, timeout_s=600),
            "shm": RetouchClient(url, shared_memory=True, timeout_s=600),
        }
        try:
            outputs = {name: c.call(operation, pixels, **settings).raw for name, c in clients.items()}
            assert outputs["grpc"].tobytes() == outputs["shm"].tobytes(), "the two paths disagree"
            times = timed_calls(clients, operation, pixels, settings, args.runs, args.warmup)
        finally:
            for client in clients.values():
                client.close()

    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    spread = {name: (min(t) * 1e3, max(t) * 1e3) for name, t in times.items()}
    ratio = ms["grpc"] / ms["shm"]
    out_shape = outputs["shm"].shape
    print(
        f"bench_shm: one RetouchClient call, {width}x{height}x3 uint8 raw pixels in "
        f"({pixels.nbytes / 2**20:.1f} MiB) and {out_shape[1]}x{out_shape[0]}x3 out "
        f"({outputs['shm'].nbytes / 2**20:.1f} MiB), same request on both paths"
    )
    print(f"  server side: {what}")
    print(f"  median of {args.runs} round trips each (after {args.warmup} warm-up), interleaved:")
    print(
        f"    plain gRPC, raw pixels in the messages  (raw_pixels=True):    {ms['grpc']:8.1f} ms "
        f"(min {spread['grpc'][0]:.1f}, max {spread['grpc'][1]:.1f})"
    )
    print(
        f"    system shared memory, regions reused    (shared_memory=True): {ms['shm']:8.1f} ms "
        f"(min {spread['shm'][0]:.1f}, max {spread['shm'][1]:.1f})"
    )
    print(f"  ratio gRPC / shared memory: {ratio:.1f}x (goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})")
    return 0


@contextmanager
def _given(url: str):
    yield url


if __name__ == "__main__":
    sys.exit(main())
