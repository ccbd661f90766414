"""docs/http.md is the contract for callers in any language: its shell helper and its curl calls run
here, as written, against a real tritonserver's KServe v2 HTTP endpoint, and every REPORT they get
is checked against the committed JSON Schema (docs/schemas/<operation>.report.json)."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image
from skimage import data
from text_scenes import make_scene

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
HTTP_DOC = (ROOT / "docs" / "http.md").read_text()


def shell_blocks() -> dict[str, str]:
    """The doc's bash blocks: "helper" (the one defining retouch_infer), and the calls by the name
    their first comment gives ("# upscale: ..." -> "upscale")."""
    blocks = {}
    for block in re.findall(r"```bash\n(.*?)```", HTTP_DOC, re.S):
        if "retouch_infer() {" in block:
            blocks["helper"] = block
        else:
            blocks[re.match(r"# (\w+)", block).group(1)] = block
    return blocks


BLOCKS = shell_blocks()


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the doc's calls name: photo.jpg, mask.png (a block over it), sign.png (text)."""
    folder = tmp_path_factory.mktemp("http")
    photo = np.ascontiguousarray(data.coffee()[100:196, 150:278])  # 128x96: a quick upscale
    Image.fromarray(photo).save(folder / "photo.jpg", quality=92)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[30:50, 40:70] = 255
    (folder / "mask.png").write_bytes(png(mask))
    sign = make_scene("http-sign", np.ascontiguousarray(data.astronaut()[:256, :256]), seed=3, layout="sparse", lines=2)
    (folder / "sign.png").write_bytes(png(sign.rgb))
    return folder


def run_doc(block: str, server, folder: Path) -> subprocess.CompletedProcess:
    script = f"set -euo pipefail\n{BLOCKS['helper']}\n{block}"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "RETOUCH_HTTP": server["http"]},
    )


def schema(operation: str) -> dict:
    return json.loads((ROOT / "docs" / "schemas" / f"{operation}.report.json").read_text())


@pytest.mark.parametrize(
    "operation,image",
    [
        ("upscale", "upscaled.png"),
        ("detect_text", None),
        ("inpaint", "filled.png"),
        ("remove_text", "clean.png"),
        ("clean", "clean_x2.png"),
    ],
)
def test_documented_call_returns_a_report_that_meets_its_schema(server, workdir, operation, image):
    done = run_doc(BLOCKS[operation], server, workdir)
    assert done.returncode == 0, done.stderr
    report = json.loads((workdir / "report.json").read_text())
    jsonschema.validate(report, schema(operation))  # raises with the path of what does not match
    assert report["steps"][-1] == ("upscale" if operation == "clean" else operation)
    if image:
        out = Image.open(workdir / image)
        assert (out.width, out.height) == (report["output"]["width"], report["output"]["height"])
        source = Image.open(workdir / ("photo.jpg" if operation in ("upscale", "inpaint") else "sign.png"))
        factor = 2 if operation in ("upscale", "clean") else 1
        assert out.size == (source.width * factor, source.height * factor)
    else:  # detect_text: BOXES as JSON, N x 4 x 2 flat, one score per box
        outputs = {o["name"]: o for o in json.loads((workdir / "response.json").read_text())["outputs"]}
        boxes, scores = outputs["BOXES"], outputs["SCORES"]
        assert boxes["shape"][1:] == [4, 2] and len(boxes["data"]) == 8 * boxes["shape"][0]
        assert boxes["shape"][0] == len(scores["data"]) == report["detect_text"]["boxes"] >= 1


def test_documented_refusal_is_http_400_with_the_declared_message(server, workdir):
    done = run_doc(BLOCKS["refused"], server, workdir)
    assert done.returncode == 0 and "refused, as it should be" in done.stdout
    said = re.search(r"prints `([^`]*)`", HTTP_DOC).group(1)
    assert said in done.stderr, done.stderr
    assert "HTTP/1.1 400" in (workdir / "headers.txt").read_text()
