"""A model that an operation's step calls (BLS) refusing its input, on a real tritonserver: the
caller gets INVALID_ARGUMENT, not INTERNAL, and retouch_edits_total counts the request rejected.

The deployment: the bring-your-own slot's demo model (fixed at 512x512, its config saying so) put
behind the inpaint step's "unet" route (config parameter unet_model). The step sends its 256-px windows; Triton refuses their
shape, and in 2.51 hands that refusal back to the step as INTERNAL with Triton's message, which
retouch.triton.bls recognises. A small server of its own: the three models involved."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from scripts.local_server import local_server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FIXED_MODEL, FAST_MODEL, STEP = "inpaint_fixed512", "inpaint_fast_fill_byo", "inpaint_regions_byo"
REFINE_MODEL = "inpaint_refine_byo"


def copy_model(model: str, root: Path, name: str) -> str:
    """model_repository/<model> as root/<name>; its config.pbtxt's text."""
    shutil.copytree(ROOT / "model_repository" / model, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return (root / name / "config.pbtxt").read_text().replace(f'name: "{model}"', f'name: "{name}"')


def deployment(root: Path) -> Path:
    """A third model repository, everything the step reads in it: the custom slot as a fixed-size
    model, the fast fill, the refine net, and the inpaint step with those models behind its unet and
    fast routes."""
    config = copy_model("inpaint_custom", root, FIXED_MODEL)
    config = config.replace("dims: [ 3, -1, -1 ]", "dims: [ 3, 512, 512 ]").replace(
        "dims: [ 1, -1, -1 ]", "dims: [ 1, 512, 512 ]"
    )
    assert config.count("512, 512") == 3
    (root / FIXED_MODEL / "config.pbtxt").write_text(config)
    (root / FAST_MODEL / "config.pbtxt").write_text(copy_model("inpaint_fast_fill", root, FAST_MODEL))
    (root / REFINE_MODEL / "config.pbtxt").write_text(copy_model("inpaint_refine", root, REFINE_MODEL))
    config = copy_model("inpaint_regions", root, STEP)
    config = config.replace('string_value: "inpaint_unet"', f'string_value: "{FIXED_MODEL}"')
    config = config.replace('string_value: "inpaint_fast_fill"', f'string_value: "{FAST_MODEL}"')
    config = config.replace('string_value: "inpaint_refine"', f'string_value: "{REFINE_MODEL}"')
    config = re.sub(r"count: \d+", "count: 1", config)
    assert FIXED_MODEL in config and FAST_MODEL in config and REFINE_MODEL in config
    (root / STEP / "config.pbtxt").write_text(config)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repository = deployment(tmp_path_factory.mktemp("byo-step"))
    with local_server(
        tmp_path_factory.mktemp("tritonserver"),
        RETOUCH_SERVER_ARGS=f"--model-repository={repository}",
        RETOUCH_LOAD_MODELS=f"{FAST_MODEL} {FIXED_MODEL} {REFINE_MODEL} {STEP}",
    ) as endpoints:
        yield endpoints


def inpaint(server, route: str):
    """The step called directly, as the inpaint ensemble calls it: pixels, a mask, settings."""
    ramp = np.linspace(0, 255, 128, dtype=np.float32)
    pixels = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, 255 - ramp) / 2, np.broadcast_to(ramp, (128, 128))], axis=2
    ).astype(np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    mask[40:80, 50:70] = 255
    tensors = {
        "PIXELS": pixels,
        "MASK": mask,
        "SETTINGS": np.array([json.dumps({"route": route}).encode()], object),
        "REPORT": np.array([b"{}"], object),
    }
    inputs = []
    for name, value in tensors.items():
        inputs.append(grpcclient.InferInput(name, list(value.shape), "BYTES" if value.dtype == object else "UINT8"))
        inputs[-1].set_data_from_numpy(value)
    with grpcclient.InferenceServerClient(server["grpc"]) as client:
        return client.infer(STEP, inputs)


def edits(server) -> dict[str, float]:
    with urllib.request.urlopen(server["metrics"], timeout=10) as response:
        text = response.read().decode()
    return {
        m[0]: float(m[1]) for m in re.findall(r'retouch_edits_total\{operation="inpaint",outcome="(\w+)"\} (\S+)', text)
    }


def test_a_refusal_by_the_model_behind_a_route_is_the_callers_invalid_argument(server):
    assert edits(server)["rejected"] == 0
    with pytest.raises(InferenceServerException) as refused:
        inpaint(server, "unet")
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    message = refused.value.message()
    assert f"{FIXED_MODEL}" in message and "unexpected shape for input" in message, message
    assert edits(server)["rejected"] == 1 and edits(server)["failed"] == 0

    # The step keeps serving: the fast route needs no refusing model.
    report = json.loads(inpaint(server, "fast").as_numpy("REPORT")[0])
    assert report["inpaint"]["route"] == "fast"
    assert [m["name"] for m in report["models"]] == [FAST_MODEL]
    assert edits(server)["accepted"] == 1
