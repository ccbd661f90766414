"""The pure parts of the reliability work: error mapping and capping (retouch/errors.py) and the
watchdog's detection of dead stubs (retouch/watchdog.py), without Triton."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retouch.errors import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_CHARS,
    InvalidInput,
    client_data,
    json_depth_exceeds,
    parse_json,
    short,
)
from retouch.watchdog import Stub, StubTracker, server_urls, stub_identity, stub_processes, unexplained_failures


def test_short_caps_and_says_how_much_was_cut():
    assert short("abc") == "abc"
    capped = short("x" * 20_000)
    assert len(capped) <= MAX_MESSAGE_CHARS and "20000 characters" in capped


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"scale": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "over the limit"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nests deeper"),
        (b'{"a": NaN}', "not JSON"),
        (b'{"a": -Infinity}', "not JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"{nope", "must be a JSON object"),
    ],
)
def test_parse_json_maps_every_failure(raw, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        parse_json(raw)
    assert len(str(refused.value)) <= MAX_MESSAGE_CHARS


def test_json_depth_ignores_brackets_in_strings():
    assert not json_depth_exceeds('{"a": "' + "[" * 100 + '"}')
    assert json_depth_exceeds("[" * 40, limit=32)
    assert parse_json('{"a": [[1]], "b": "[[[["}') == {"a": [[1]], "b": "[[[["}


@pytest.mark.parametrize(
    "error",
    [
        OSError("Truncated File Read"),
        ValueError("Decompressed data too large"),
        SyntaxError("broken PNG file"),
        EOFError(),
        RecursionError(),
    ],
)
def test_client_data_maps_decoder_errors(error):
    with pytest.raises(InvalidInput, match="image data is corrupt or truncated"):
        with client_data("image"):
            raise error


def test_client_data_leaves_our_own_errors_alone():
    with pytest.raises(InvalidInput, match="already clear"):
        with client_data("image"):
            raise InvalidInput("already clear")
    with pytest.raises(ZeroDivisionError):  # a bug stays a bug (INTERNAL), not the caller's fault
        with client_data("image"):
            _ = 1 / 0


ARGV = [
    "/x/backends/python/triton_python_backend_stub",
    "/repo/model_repository/upscale_tiles/1/model.py",
    "triton_python_backend_shm_region_1",
    "67108864",
    "67108864",
    "123",
    "/x/backends/python",
    "336",
    "upscale_tiles_0_1",
    "DEFAULT",
]


def test_stub_identity_from_its_command_line():
    assert stub_identity(ARGV) == ("upscale_tiles", "upscale_tiles_0_1")
    assert stub_identity(["/usr/bin/python", "x"]) is None
    assert stub_identity([""]) is None  # a zombie's empty command line


def test_tracker_tells_a_death_from_an_unload():
    tracker = StubTracker()
    alive = {
        10: Stub(10, "S", "upscale_tiles", "upscale_tiles_0_0"),
        11: Stub(11, "S", "decode_image", "decode_image_0_0"),
    }
    assert tracker.observe(alive) == []
    # 10 killed (a zombie, never reaped in Triton 2.51); 11 unloaded (reaped: gone from /proc).
    killed = Stub(10, "Z", None, None, exit_status=9)
    assert tracker.observe({10: killed}) == [(10, "upscale_tiles", "upscale_tiles_0_0")]
    assert tracker.observe({10: killed}) == []  # reported once
    assert tracker.known == {}


def test_tracker_ignores_a_retired_stub_caught_before_it_is_reaped():
    """A reload retires the old stubs: each exits cleanly and is a zombie for a moment."""
    tracker = StubTracker()
    tracker.observe({10: Stub(10, "S", "upscale_tiles", "upscale_tiles_0_0")})
    assert tracker.observe({10: Stub(10, "Z", None, None, exit_status=0)}) == []
    assert tracker.known == {}
    # A stub that exits with an error is a death too, not only a killed one.
    tracker.observe({11: Stub(11, "S", "decode_image", "decode_image_0_0")})
    assert tracker.observe({11: Stub(11, "Z", None, None, exit_status=1 << 8)}) == [
        (11, "decode_image", "decode_image_0_0")
    ]


def test_stub_processes_reads_proc(tmp_path):
    """A real child process posing as a stub (its argv), then killed: alive, then a zombie."""
    script = "import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", script, *ARGV[1:]])
    try:
        fake = tmp_path / "proc"
        (fake / str(child.pid)).mkdir(parents=True)
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        (fake / str(child.pid) / "stat").write_text(stat)
        (fake / str(child.pid) / "cmdline").write_bytes("\0".join(ARGV).encode() + b"\0")
        found = stub_processes(os.getpid(), fake)
        assert found[child.pid].model == "upscale_tiles" and found[child.pid].state != "Z"
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The real /proc: our killed child is a zombie until we reap it, as a dead stub is.
        real = stub_processes(os.getpid())
        assert real[child.pid].state == "Z" and real[child.pid].model is None
        assert real[child.pid].exit_status == signal.SIGKILL  # as waitpid would report it
    finally:
        child.kill()
        child.wait()


def test_stub_processes_reads_a_clean_exit():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        assert stub_processes(os.getpid())[child.pid].exit_status == 0
    finally:
        child.wait()


def test_unexplained_failures_subtract_what_retouch_counted():
    text = "\n".join(
        [
            'nv_inference_request_failure{model="upscale",reason="BACKEND",version="1"} 14',
            'nv_inference_request_failure{model="upscale",reason="OTHER",version="1"} 6',
            'nv_inference_request_failure{model="upscale",reason="CANCELED",version="1"} 5',
            'retouch_edits_total{operation="upscale",outcome="rejected"} 4',
            'retouch_edits_total{operation="upscale",outcome="failed"} 1',
            'retouch_edits_total{operation="upscale",outcome="accepted"} 100',
        ]
    )
    assert unexplained_failures(text) == {"upscale": 5.0}  # (14 + 6) / 2 - 4 - 1
    assert unexplained_failures(text, increment=1) == {"upscale": 15.0}


def test_server_urls_from_tritonservers_command_line():
    argv = [
        "tritonserver",
        "--http-address=127.0.0.1",
        "--http-port=18000",
        "--metrics-address=0.0.0.0",
        "--metrics-port=18002",
    ]
    assert server_urls(argv) == {"http": "http://127.0.0.1:18000", "metrics": "http://127.0.0.1:18002/metrics"}
    assert server_urls(["tritonserver", "--allow-metrics=false"]) == {"http": "http://127.0.0.1:8000"}


def test_in_chunks_waits_for_every_chunk_before_raising():
    """A failed chunk must not leave the others pending (their BLS responses would never be read)."""
    import asyncio

    import numpy as np

    from retouch.batching import in_chunks

    finished = []

    async def call(chunk):
        if chunk[0] == 0:
            raise RuntimeError("first chunk failed")
        await asyncio.sleep(0.05)
        finished.append(int(chunk[0]))
        return chunk

    with pytest.raises(RuntimeError, match="first chunk failed"):
        asyncio.run(in_chunks(call, (np.arange(12),), 4))
    assert sorted(finished) == [4, 8]
