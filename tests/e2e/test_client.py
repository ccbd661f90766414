"""retouch_client (sync and asyncio) and the `retouch` CLI against a real tritonserver."""

from __future__ import annotations

import asyncio
import glob
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image, ImageDraw, ImageFont
from prometheus_client import CollectorRegistry
from tritonclient.utils import InferenceServerException

from retouch_client import (
    AsyncRetouchClient,
    DeadlineExceededError,
    InvalidInputError,
    RetouchClient,
    RetryPolicy,
    ServerUnavailableError,
    SharedMemoryError,
)
from scripts.local_server import ROOT, free_port, local_server

pytestmark = pytest.mark.e2e
KINDS = ["sync", "async"]
RETOUCH = Path(sys.executable).with_name("retouch")  # the installed console script


def run(kind: str, url: str, use, **options):
    """use(client) in a fresh RetouchClient or AsyncRetouchClient (awaiting what it returns)."""
    if kind == "sync":
        with RetouchClient(url, **options) as client:
            return use(client)

    async def main():
        async with AsyncRetouchClient(url, **options) as client:
            out = use(client)
            return await out if inspect.isawaitable(out) else out

    return asyncio.run(main())


def metric(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, {"operation": "upscale", **labels}) or 0.0


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small(photos) -> np.ndarray:
    return photos["chelsea"][:48, :64]


@pytest.fixture(scope="module")
def plain(client, small):
    """The reference: encoded bytes both ways, sync client."""
    return client.upscale(small, scale=2)


@pytest.mark.parametrize("kind", KINDS)
def test_upscale_gives_typed_results(server, small, plain, kind):
    registry = CollectorRegistry()
    result = run(kind, server["grpc"], lambda c: c.upscale(small, scale=2), registry=registry)
    assert result.data == plain.data  # deterministic server, same request
    assert result.image.size == (128, 96) and result.pixels.shape == (96, 128, 3)
    assert result.report["output"]["width"] == 128 and result.report["output"]["format"] == "png"
    assert metric(registry, "retouch_client_request_duration_seconds_count") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_pil_array_and_encoded_inputs_give_the_same_output(server, small, plain, kind):
    def three(c):
        return [c.upscale(x, scale=2) for x in (Image.fromarray(small), small, png(small))]

    async def three_async(c):
        return await asyncio.gather(*three(c))

    results = run(kind, server["grpc"], three if kind == "sync" else three_async)
    assert [r.data for r in results] == [plain.data] * 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", [{"shared_memory": True}, {"raw_pixels": True}], ids=["shm", "raw-grpc"])
def test_raw_transports_give_the_same_pixels_as_encoded_bytes(server, small, plain, kind, transport):
    result = run(kind, server["grpc"], lambda c: c.upscale(png(small), scale=2), **transport)
    assert result.encoded is None and result.raw.dtype == np.uint8
    assert result.report["input"]["format"] == "raw" and result.report["output"]["format"] == "raw"
    assert result.raw.tobytes() == plain.pixels.tobytes()


def our_regions(triton) -> dict[str, int]:
    status = triton.get_system_shared_memory_status(as_json=True).get("regions", {})
    return {name: int(r["byte_size"]) for name, r in status.items() if name.startswith(f"retouch_{os.getpid()}_")}


def test_shared_memory_regions_are_registered_once_reused_grown_and_removed(server, triton, photos):
    image = photos["coffee"][:64, :64]
    with RetouchClient(server["grpc"], shared_memory=True) as client:
        first = client.upscale(image, scale=2)
        registered = our_regions(triton)
        assert len(registered) == 2  # one input and one output region
        assert sorted(glob.glob(f"/dev/shm/retouch_{os.getpid()}_*")) == sorted(f"/dev/shm/{n}" for n in registered)
        again = client.upscale(image, scale=2)
        assert our_regions(triton) == registered  # reused: nothing registered again
        assert again.raw.tobytes() == first.raw.tobytes()
        big = client.upscale(np.ascontiguousarray(photos["coffee"]), scale=4)  # 1024x1024x3 out: grows
        assert big.raw.shape == (1024, 1024, 3)
        grown = our_regions(triton)
        assert len(grown) == 2 and max(grown.values()) >= 1024 * 1024 * 3 and grown != registered
    assert our_regions(triton) == {}
    assert glob.glob(f"/dev/shm/retouch_{os.getpid()}_*") == []


def test_concurrent_async_shared_memory_calls_get_their_own_regions(server, photos):
    crops = [np.ascontiguousarray(photos[name][:40, :40]) for name in ("astronaut", "coffee", "chelsea")]

    async def main():
        async with AsyncRetouchClient(server["grpc"], shared_memory=True) as client:
            return await asyncio.gather(*(client.upscale(c, scale=2) for c in crops))

    results = asyncio.run(main())
    with RetouchClient(server["grpc"]) as client:
        expected = [client.upscale(c, scale=2).pixels for c in crops]
    assert all(r.raw.tobytes() == e.tobytes() for r, e in zip(results, expected))


@pytest.mark.parametrize("kind", KINDS)
def test_too_short_deadline_raises_the_timeout_error(server, photos, kind):
    registry = CollectorRegistry()
    started = time.monotonic()
    image = png(photos["coffee"])  # encoded up front: the deadline covers the whole call
    with pytest.raises(DeadlineExceededError, match=r"did not finish within the 0.2s deadline \(1 attempt") as info:
        run(kind, server["grpc"], lambda c: c.upscale(image, scale=4), timeout_s=0.2, registry=registry)
    assert isinstance(info.value, TimeoutError) and info.value.attempts == 1
    assert time.monotonic() - started < 5  # did not wait for the upscale to finish
    assert metric(registry, "retouch_client_errors_total", code="DEADLINE_EXCEEDED") == 1
    assert metric(registry, "retouch_client_retries_total", code="DEADLINE_EXCEEDED") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_bad_image_raises_invalid_input_with_the_servers_message_and_is_not_retried(server, kind):
    registry = CollectorRegistry()
    with pytest.raises(InvalidInputError, match="not a PNG, JPEG or WebP file") as info:
        run(kind, server["grpc"], lambda c: c.upscale(b"definitely not an image"), registry=registry)
    assert info.value.status == "StatusCode.INVALID_ARGUMENT" and info.value.code == "INVALID_ARGUMENT"
    assert info.value.attempts == 1
    assert metric(registry, "retouch_client_errors_total", code="INVALID_ARGUMENT") == 1
    assert metric(registry, "retouch_client_retries_total", code="INVALID_ARGUMENT") == 0


def test_bad_image_with_shared_memory_is_invalid_input_too(server):
    with RetouchClient(server["grpc"], shared_memory=True) as client:
        with pytest.raises(InvalidInputError, match="not a readable PNG, JPEG or WebP file"):
            client.upscale(b"definitely not an image")
    assert glob.glob(f"/dev/shm/retouch_{os.getpid()}_*") == []


@pytest.mark.parametrize("kind", KINDS)
def test_request_while_the_server_is_down_is_retried_then_fails_clearly(small, kind):
    registry = CollectorRegistry()
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=f"upscale at {url}: UNAVAILABLE after 3 attempt") as info:
        run(kind, url, lambda c: c.upscale(small), registry=registry, retry=RetryPolicy(attempts=3, backoff_s=0.2))
    assert info.value.attempts == 3 and isinstance(info.value, ConnectionError)
    assert time.monotonic() - started >= 0.3  # backed off: at least 0.1 s, then at least 0.2 s
    assert metric(registry, "retouch_client_retries_total", code="UNAVAILABLE") == 2
    assert metric(registry, "retouch_client_errors_total", code="UNAVAILABLE") == 1


def test_retries_stop_at_the_deadline(small):
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError) as info:
        with RetouchClient(
            f"127.0.0.1:{free_port()}", timeout_s=1.0, retry=RetryPolicy(attempts=50, backoff_s=0.4)
        ) as client:
            client.upscale(small)
    assert 1 < info.value.attempts < 50
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("kind", KINDS)
def test_health(server, kind):
    health = run(kind, server["grpc"], lambda c: c.health())
    assert health.ok and health.operations == {name: True for name in OPERATION_CALLS}


@pytest.fixture(scope="module")
def server_without_shm(tmp_path_factory):
    """A second tritonserver started by serve.sh without RETOUCH_ALLOW_SHM, loading no models (fast)."""
    with local_server(
        tmp_path_factory.mktemp("tritonserver-no-shm"), RETOUCH_ALLOW_SHM=None, RETOUCH_LOAD_MODELS=""
    ) as endpoints:
        yield endpoints["grpc"]


def test_shared_memory_is_refused_unless_the_server_allows_it(server_without_shm, small):
    with RetouchClient(server_without_shm, shared_memory=True) as client:
        with pytest.raises(SharedMemoryError, match="RETOUCH_ALLOW_SHM=1") as refused:
            client.upscale(small)
    assert refused.value.code == "PERMISSION_DENIED" and not refused.value.retryable
    assert glob.glob(f"/dev/shm/retouch_{os.getpid()}_*") == []  # close() removed the refused regions
    # The same refusal for any client: the shared-memory protocol needs a header only serve.sh knows.
    triton = grpcclient.InferenceServerClient(server_without_shm)
    with pytest.raises(InferenceServerException, match="protocol is restricted"):
        triton.register_system_shared_memory("probe", "/retouch_probe_absent", 1024)
    assert triton.is_server_live()


def retouch(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(RETOUCH), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def folder(tmp_path, photos) -> Path:
    """Four images of three formats and sizes."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photos["astronaut"][:40, :56]).save(folder / "astronaut.png")
    Image.fromarray(photos["coffee"][:48, :48]).save(folder / "coffee.jpg", quality=95)
    Image.fromarray(photos["chelsea"][:32, :64]).save(folder / "chelsea.webp", lossless=True)
    Image.fromarray(photos["chelsea"][100:136, 100:140]).save(folder / "chelsea2.jpeg")
    (folder / "notes.txt").write_text("not an image: skipped")
    return folder


def test_cli_processes_a_folder_and_writes_every_output(server, folder, tmp_path):
    out = tmp_path / "out"
    done = retouch(
        "upscale",
        str(folder),
        "-o",
        str(out),
        "--scale",
        "2",
        "--jobs",
        "3",
        "--json",
        env={**os.environ, "RETOUCH_URL": server["grpc"]},
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 4 and "4 written, 0 failed" in done.stderr
    for source in folder.glob("*.[pjw]*"):
        written = Image.open(out / f"{source.stem}.png")
        assert written.size == tuple(2 * s for s in Image.open(source).size)
    reports = {Path(line["input"]).name: line["report"] for line in lines}
    assert reports["coffee.jpg"]["input"]["format"] == "JPEG" and reports["coffee.jpg"]["output"]["width"] == 96


def test_cli_one_file_format_from_suffix_and_glob(server, folder, tmp_path):
    one = retouch("upscale", str(folder / "coffee.jpg"), "-o", str(tmp_path / "one.webp"), "--url", server["grpc"])
    assert one.returncode == 0, one.stderr
    assert Image.open(tmp_path / "one.webp").format == "WEBP"
    globbed = retouch(
        "upscale", str(folder / "chelsea*"), "-o", str(tmp_path / "g"), "--format", "jpeg", "--url", server["grpc"]
    )
    assert globbed.returncode == 0, globbed.stderr
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["chelsea.jpg", "chelsea2.jpg"]


def test_cli_exit_codes(server, folder, tmp_path):
    (folder / "broken.png").write_bytes(b"not a png")
    some_invalid = retouch("upscale", str(folder), "-o", str(tmp_path / "a"), "--url", server["grpc"])
    assert some_invalid.returncode == 3
    assert "broken.png: INVALID_ARGUMENT" in some_invalid.stderr and "4 written, 1 failed" in some_invalid.stderr
    bad_setting = retouch(
        "upscale", str(folder / "coffee.jpg"), "-o", str(tmp_path / "b.png"), "--scale", "3", "--url", server["grpc"]
    )
    assert bad_setting.returncode == 3 and "'scale' must be one of [2, 4]" in bad_setting.stderr
    nothing = retouch("upscale", str(tmp_path / "missing"), "-o", str(tmp_path / "c"), "--url", server["grpc"])
    assert nothing.returncode == 2 and "no such file" in nothing.stderr
    down = retouch(
        "upscale",
        str(folder / "coffee.jpg"),
        "-o",
        str(tmp_path / "d.png"),
        "--retries",
        "1",
        "--url",
        f"127.0.0.1:{free_port()}",
    )
    assert down.returncode == 4 and "UNAVAILABLE after 2 attempt(s)" in down.stderr


def test_cli_inpaint_with_one_mask_or_a_folder_of_masks(server, folder, tmp_path):
    url = ["--url", server["grpc"]]
    mask = np.zeros((48, 48), np.uint8)
    mask[14:26, 16:26] = 255  # about 5% of each image, under the 12% coverage limit
    Image.fromarray(mask).save(tmp_path / "mask.png")
    one = retouch(
        "inpaint",
        str(folder / "coffee.jpg"),
        "--mask",
        str(tmp_path / "mask.png"),
        "-o",
        str(tmp_path / "filled.png"),
        "--route",
        "fast",
        "--json",
        *url,
    )
    assert one.returncode == 0, one.stderr
    report = json.loads(one.stdout)["report"]["inpaint"]
    assert report["route"] == "fast" and report["settings"]["route"] == "fast"
    filled, source = np.asarray(Image.open(tmp_path / "filled.png")), np.asarray(Image.open(folder / "coffee.jpg"))
    assert filled.shape == source.shape and (filled[mask > 0] != source[mask > 0]).any()
    masks = tmp_path / "masks"
    masks.mkdir()
    for image in ("astronaut.png", "chelsea.webp"):
        w, h = Image.open(folder / image).size
        Image.fromarray(np.pad(mask, 16)[:h, :w]).save(masks / (Path(image).stem + ".png"))
    both = retouch(
        "inpaint",
        str(folder / "astronaut.png"),
        str(folder / "chelsea.webp"),
        "--mask",
        str(masks),
        "-o",
        str(tmp_path / "many"),
        *url,
    )
    assert both.returncode == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["astronaut.png", "chelsea.png"]
    unmatched = retouch("inpaint", str(folder), "--mask", str(masks), "-o", str(tmp_path / "x"), *url)
    assert unmatched.returncode == 2 and "no mask for" in unmatched.stderr and not (tmp_path / "x").exists()
    wrong_size = retouch(
        "inpaint",
        str(folder / "chelsea2.jpeg"),
        "--mask",
        str(tmp_path / "mask.png"),
        "-o",
        str(tmp_path / "y.png"),
        *url,
    )
    assert wrong_size.returncode == 3 and "INVALID_ARGUMENT" in wrong_size.stderr


def test_cli_clean_and_detect_text(server, folder, tmp_path):
    url = ["--url", server["grpc"]]
    cleaned = retouch(
        "clean",
        str(folder / "coffee.jpg"),
        "-o",
        str(tmp_path / "clean.webp"),
        "--scale",
        "2",
        "--set",
        'upscale={"tile": 64}',
        "--json",
        *url,
    )
    assert cleaned.returncode == 0, cleaned.stderr
    report = json.loads(cleaned.stdout)["report"]
    assert report["upscale"]["settings"]["tile"] == 64 and report["upscale"]["settings"]["scale"] == 2
    assert report["upscale"]["settings"]["format"] == "webp" and "remove_text" in report
    assert Image.open(tmp_path / "clean.webp").size == (96, 96)
    sign = Image.new("RGB", (360, 140), "white")
    ImageDraw.Draw(sign).text((20, 40), "OPEN 24h", fill="black", font=ImageFont.load_default(48))
    sign.save(folder / "sign.png")
    found = retouch(
        "detect-text",
        str(folder / "sign.png"),
        str(folder / "coffee.jpg"),
        "-o",
        str(tmp_path / "boxes"),
        "--box-thresh",
        "0.6",
        *url,
    )
    assert found.returncode == 0, found.stderr
    sign_boxes = json.loads((tmp_path / "boxes" / "sign.json").read_text())
    assert len(sign_boxes["boxes"]) >= 1 and len(sign_boxes["scores"]) == len(sign_boxes["boxes"])
    assert sign_boxes["report"]["detect_text"]["settings"]["box_thresh"] == 0.6
    assert json.loads((tmp_path / "boxes" / "coffee.json").read_text())["boxes"] == []


def test_cli_health(server):
    up = retouch("health", "--json", "--url", server["grpc"])
    assert up.returncode == 0 and json.loads(up.stdout)["operations"] == {name: True for name in OPERATION_CALLS}
    down = retouch("health", "--url", f"127.0.0.1:{free_port()}")
    assert down.returncode == 4 and "failed to connect" in down.stderr


def test_client_installs_and_imports_in_a_clean_venv_without_torch_or_onnx(tmp_path):
    source = tmp_path / "client"
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(source), "-c", str(ROOT / "client" / "constraints.txt")],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean,
    )
    assert install.returncode == 0, install.stderr
    check = (
        "import importlib.util, retouch_client\n"
        "from retouch_client import RetouchClient, AsyncRetouchClient\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if importlib.util.find_spec(m)]\n"
        "assert not heavy, heavy\n"
        "print(retouch_client.__file__)"
    )
    imported = subprocess.run([str(python), "-c", check], capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert imported.returncode == 0, imported.stderr
    assert str(venv) in imported.stdout  # the installed copy, not the repository's
    helped = subprocess.run([str(venv / "bin" / "retouch"), "--help"], capture_output=True, text=True, env=clean)
    assert helped.returncode == 0 and "upscale" in helped.stdout


# Every operation on the server, as a caller writes it: (client, image, mask) -> Result.
OPERATION_CALLS = {
    "upscale": lambda c, image, mask: c.upscale(image, scale=2),
    "detect_text": lambda c, image, mask: c.detect_text(image),
    "inpaint": lambda c, image, mask: c.inpaint(image, mask),
    "remove_text": lambda c, image, mask: c.remove_text(image),
    "clean": lambda c, image, mask: c.clean(image, mask, upscale={"scale": 2}),
}


@pytest.fixture(scope="module")
def captioned():
    """A photo with two high-contrast captions, and a mask of one 'object'."""
    from skimage import data
    from text_scenes import make_scene

    scene = make_scene(
        "coffee-client",
        np.ascontiguousarray(data.coffee()[:192, :256]),
        seed=5,
        layout="sparse",
        sizes=(20, 28),
        contrasts=("high",),
        max_angle=0,
        lines=2,
    )
    mask = np.zeros(scene.rgb.shape[:2], np.uint8)
    mask[150:170, 30:60] = 255
    return scene.rgb, mask


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", list(OPERATION_CALLS))
def test_every_operation_sync_async_and_through_shared_memory(server, captioned, operation, kind):
    image, mask = captioned
    call = OPERATION_CALLS[operation]
    plain = run(kind, server["grpc"], lambda c: call(c, image, mask))
    shm = run(kind, server["grpc"], lambda c: call(c, image, mask), shared_memory=True)
    steps = ["remove_text", "upscale"] if operation == "clean" else [operation]
    assert plain.report["steps"] == shm.report["steps"] == steps
    for name, value in plain.outputs.items():  # boxes, scores, masks
        np.testing.assert_array_equal(value, shm.outputs[name])
    if operation == "detect_text":
        assert plain.encoded is None and shm.raw is None and len(plain.outputs["SCORES"]) == 2
    else:
        assert shm.raw.tobytes() == plain.pixels.tobytes()
