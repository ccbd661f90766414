"""A real tritonserver for the end-to-end tests, started and stopped with scripts/serve.sh on
free loopback ports, so a server you run by hand on the default ports is left alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from retouch_client import RetouchClient
from scripts.local_server import local_server

ROOT = Path(__file__).resolve().parents[2]
BYO_MODEL = "inpaint_migan"


def byo_repository(root: Path) -> Path:
    """A third model repository holding what a user drops in for their own inpainting ONNX: the
    inpaint_custom config and shim under a new name, and a model.onnx with its spec, here our UNet
    exported in MI-GAN's conventions (docs/specs/migan.json: uint8 NCHW, 255 = known, any size)."""
    from export.inpainters import export
    from retouch.inpaint_adapter import SPEC_FILENAME

    staging = root / "staging" / "inpaint_custom" / "1"
    staging.mkdir(parents=True)
    shutil.copy(ROOT / "docs/specs/migan.json", staging / SPEC_FILENAME)
    export("inpaint_custom", staging.parents[1])
    slot = root / "repository" / BYO_MODEL
    shutil.copytree(staging, slot / "1")
    shutil.copy(ROOT / "model_repository/inpaint_custom/1/model.py", slot / "1")
    config = (ROOT / "model_repository/inpaint_custom/config.pbtxt").read_text()
    (slot / "config.pbtxt").write_text(config.replace('name: "inpaint_custom"', f'name: "{BYO_MODEL}"'))
    return slot.parent


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    extra = f"--model-repository={byo_repository(tmp_path_factory.mktemp('byo'))}"
    try:
        # The client's shared-memory tests register regions, so this server allows them.
        with local_server(
            tmp_path_factory.mktemp("tritonserver"), RETOUCH_ALLOW_SHM="1", RETOUCH_SERVER_ARGS=extra
        ) as endpoints:
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
