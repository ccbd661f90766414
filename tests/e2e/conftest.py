"""A real tritonserver for the end-to-end tests, started and stopped with scripts/serve.sh on
free loopback ports, so a server you run by hand on the default ports is left alone."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient

from retouch.serving import local_server
from retouch_client import RetouchClient


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    try:
        # The client's shared-memory tests register regions, so this server allows them.
        with local_server(tmp_path_factory.mktemp("tritonserver"), RETOUCH_ALLOW_SHM="1") as endpoints:
            yield endpoints
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def client(server):
    with RetouchClient(server["grpc"], timeout_s=300) as c:
        yield c


@pytest.fixture(scope="session")
def triton(server):
    c = grpcclient.InferenceServerClient(server["grpc"])
    yield c
    c.close()
