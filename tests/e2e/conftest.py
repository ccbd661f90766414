"""A real tritonserver for the end-to-end tests, started and stopped with scripts/serve.sh on
free loopback ports, so a server you run by hand on the default ports is left alone."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from retouch_client import RetouchClient

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tritonserver")
    env = dict(os.environ, RETOUCH_RUN_DIR=str(run_dir), RETOUCH_HTTP_PORT=str(free_port()),
               RETOUCH_GRPC_PORT=str(free_port()), RETOUCH_METRICS_PORT=str(free_port()),
               RETOUCH_ALLOW_SHM="1")  # the client's shared-memory tests register regions
    serve = [str(ROOT / "scripts" / "serve.sh")]
    started = subprocess.run([*serve, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"tritonserver did not start:\n{started.stdout}\n{started.stderr}")
    try:
        yield {
            "grpc": f"127.0.0.1:{env['RETOUCH_GRPC_PORT']}",
            "metrics": f"http://127.0.0.1:{env['RETOUCH_METRICS_PORT']}/metrics",
            "log": run_dir / "tritonserver.log",
        }
    finally:
        subprocess.run([*serve, "stop"], env=env, capture_output=True)


@pytest.fixture(scope="session")
def client(server):
    with RetouchClient(server["grpc"], timeout_s=300) as c:
        yield c


@pytest.fixture(scope="session")
def triton(server):
    c = grpcclient.InferenceServerClient(server["grpc"])
    yield c
    c.close()
