"""A local tritonserver for tests and benchmarks: scripts/serve.sh on free loopback ports.

Each server gets its own ports and run directory, so several can run beside a server started by
hand on the default ports. Scripts import it as `local_server` (their folder is on sys.path), tests
as `scripts.local_server` (pytest runs from the repository root).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE = str(ROOT / "scripts" / "serve.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(run_dir: Path, **settings: str | None) -> Iterator[dict]:
    """Start a server (serve.sh's RETOUCH_* settings as keyword arguments; None unsets one), yield
    its endpoints, stop it. Raises RuntimeError with serve.sh's output when it does not start."""
    ports = {k: str(free_port()) for k in ("RETOUCH_HTTP_PORT", "RETOUCH_GRPC_PORT", "RETOUCH_METRICS_PORT")}
    env = dict(os.environ, RETOUCH_RUN_DIR=str(run_dir), **ports)
    for key, value in settings.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    started = subprocess.run([SERVE, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(f"tritonserver did not start:\n{started.stdout}\n{started.stderr}")
    try:
        yield {
            "grpc": f"127.0.0.1:{ports['RETOUCH_GRPC_PORT']}",
            "http": f"http://127.0.0.1:{ports['RETOUCH_HTTP_PORT']}",
            "metrics": f"http://127.0.0.1:{ports['RETOUCH_METRICS_PORT']}/metrics",
            "log": Path(run_dir) / "tritonserver.log",
        }
    finally:
        subprocess.run([SERVE, "stop"], env=env, capture_output=True)
