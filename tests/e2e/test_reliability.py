"""Reliability and security against a real tritonserver (docs/reliability.md):

- a corpus of malformed requests (tests/malformed.py), every one INVALID_ARGUMENT with a short
  message, and the same bytes for a normal request afterwards;
- a flood: queue policies shed it with fast UNAVAILABLE, nothing crashes, and the backlog drains;
- a reload under load (explicit model control) loses no request, and a broken new version leaves
  the old one serving;
- a stub killed under load: the watchdog model reloads it, the failures in the gap are counted, and
  the alert fires in a real Prometheus;
- the soak script, for a few seconds (its full run is `python scripts/soak.py`);
- the admin and shared-memory APIs are locked by default.

Figures are printed (pytest -s) and written to the run directory as reliability.json; timings are
reported, never asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from retouch.errors import MAX_MESSAGE_CHARS
from scripts.local_server import local_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import malformed
from test_observability import Prometheus, prometheus, scrape, wait_for  # noqa: F401

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Triton puts "in ensemble 'name', " (and sometimes a request id) before a step's message.
TRITON_PREFIX_CHARS = 80
FIGURES: dict = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own: stubs get killed and models reloaded here. The admin API is
    open (RETOUCH_ADMIN_API=1) for the reload tests."""
    run_dir = tmp_path_factory.mktemp("tritonserver-reliability")
    with local_server(run_dir, RETOUCH_ADMIN_API="1") as endpoints:
        endpoints["pid"] = int((run_dir / "tritonserver.pid").read_text())
        yield endpoints
    (run_dir / "reliability.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
    print(json.dumps(FIGURES, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def triton(server):
    c = grpcclient.InferenceServerClient(server["grpc"])
    yield c
    c.close()


def infer(triton, operation: str, inputs: list, timeout: float = 300.0):
    tensors = []
    for name, array, datatype in inputs:
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return triton.infer(operation, tensors, client_timeout=timeout)


def status_of(call) -> tuple[str, str]:
    try:
        call()
        return "OK", ""
    except InferenceServerException as exc:
        return (exc.status() or "").rsplit(".", 1)[-1], exc.message() or ""


def watchdog(triton) -> dict:
    return json.loads(triton.infer("watchdog", []).as_numpy("STATUS")[0])


def upscale_inputs(side: int = 64, settings: bytes = b'{"tile": 32, "overlap": 8}') -> list:
    png = malformed.encode(
        malformed.image(1)[:side, :side] if side <= 64 else np.resize(malformed.image(1), (side, side, 3)), "PNG"
    )
    return [malformed.bytes_input("IMAGE", png), malformed.bytes_input("SETTINGS", settings)]


# --- security defaults: a server loading no models, so it starts in seconds ----------------------


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    with local_server(
        tmp_path_factory.mktemp("tritonserver-locked"),
        RETOUCH_LOAD_MODELS="",
        RETOUCH_ALLOW_SHM=None,
        RETOUCH_ADMIN_API=None,
    ) as endpoints:
        endpoints["pid"] = int((Path(endpoints["log"]).parent / "tritonserver.pid").read_text())
        yield endpoints


def test_admin_and_shared_memory_apis_are_locked_by_default(locked_server):
    c = grpcclient.InferenceServerClient(locked_server["grpc"])
    for call in (
        lambda: c.load_model("upscale"),
        lambda: c.unload_model("upscale"),
        lambda: c.register_system_shared_memory("probe", "/retouch_probe_absent", 64),
        lambda: c.update_log_settings({"log_verbose_level": 1}),
        lambda: c.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}),
    ):
        code, message = status_of(call)
        assert code == "UNAVAILABLE" and "restricted" in message, message
    # The header the lock expects cannot be sent: gRPC refuses upper-case metadata keys, and the
    # lower-case spelling (allowed) is not the key Triton compares.
    code, _ = status_of(lambda: c.load_model("upscale", headers={"triton-grpc-protocol-retouch-locked": "never"}))
    assert code == "UNAVAILABLE"
    code, _ = status_of(lambda: c.load_model("upscale", headers={"triton-grpc-protocol-Retouch-Locked": "never"}))
    assert code != "OK"
    for path, body in (
        ("/v2/logging", b'{"log_verbose_level": 1}'),
        ("/v2/trace/setting", b"{}"),
        ("/v2/repository/models/upscale/load", b"{}"),
    ):
        request = urllib.request.Request(
            locked_server["http"] + path, data=body, method="POST", headers={"Retouch-Locked": "never"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (403, 503), path
    # Nothing secret on the command line any more: the lock's value is not something to steal.
    argv = Path(f"/proc/{locked_server['pid']}/cmdline").read_bytes().split(b"\0")
    assert not any(b"shm-key" in a for a in argv)
    assert c.is_server_live()


# --- malformed requests --------------------------------------------------------------------------


def test_every_malformed_request_gets_invalid_argument(server, triton):
    cases = malformed.corpus()
    normal = upscale_inputs()
    before = infer(triton, "upscale", normal).as_numpy("OUTPUT_IMAGE")[0]
    statuses, longest, slow = Counter(), 0, []
    wrong = []
    for case in cases:
        start = time.monotonic()
        code, message = status_of(lambda: infer(triton, case.operation, case.inputs))
        slow.append(time.monotonic() - start)
        statuses[code] += 1
        longest = max(longest, len(message))
        if code != "INVALID_ARGUMENT" or len(message) > MAX_MESSAGE_CHARS + TRITON_PREFIX_CHARS:
            wrong.append((case.operation, case.kind, code, message[:200]))
    assert wrong == []
    after = infer(triton, "upscale", normal).as_numpy("OUTPUT_IMAGE")[0]
    assert after == before
    assert watchdog(triton)["deaths"] == []  # no stub crashed
    kinds = {c.kind for c in cases}
    FIGURES["malformed"] = {
        "requests": len(cases),
        "kinds": len(kinds),
        "operations": sorted({c.operation for c in cases}),
        "statuses": dict(statuses),
        "longest_message_chars": longest,
        "slowest_s": round(max(slow), 2),
        "median_s": round(float(np.median(slow)), 3),
    }
    assert len(cases) >= 90 and statuses == {"INVALID_ARGUMENT": len(cases)}


def test_decode_rejections_are_counted_by_their_operation(server, triton):
    before = scrape(server)
    bad = malformed.bad_images()["jpeg cut at 100 bytes"]
    for operation in ("upscale", "detect_text"):
        code, _ = status_of(lambda: infer(triton, operation, [malformed.bytes_input("IMAGE", bad)]))
        assert code == "INVALID_ARGUMENT"
    after = scrape(server)
    for operation in ("upscale", "detect_text"):
        key = ("retouch_edits_total", (("operation", operation), ("outcome", "rejected")))
        assert after[key] - before.get(key, 0) == 1


# --- overload ------------------------------------------------------------------------------------


def test_a_flood_is_shed_quickly_and_the_backlog_drains(server, triton):
    """Three times the requests the upscale path can hold (4 instances + 16 queued, a decode queue
    in front), half of them with a 2 s deadline the client gives up at."""
    flood, inputs = 60, upscale_inputs(side=128)

    def one(i):
        start = time.monotonic()
        code, message = status_of(lambda: infer(triton, "upscale", inputs, timeout=2.0 if i % 2 else 120.0))
        return code, message, time.monotonic() - start

    start = time.monotonic()
    with ThreadPoolExecutor(flood) as pool:
        results = list(pool.map(one, range(flood)))
    flood_s = time.monotonic() - start
    codes = Counter(r[0] for r in results)
    rejected = [r for r in results if r[0] == "UNAVAILABLE"]
    assert rejected, codes
    assert all("queue" in r[1] or "timeout" in r[1] for r in rejected), rejected[0][1]
    assert set(codes) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, codes
    # The backlog: requests whose clients gave up still run (Triton 2.51 cancels only an ensemble's
    # later steps); the bounded queues keep it short. Drained = no request waits in any queue
    # (nv_inference_pending_request_count), then a new request is served.
    drain_start = time.monotonic()
    while sum(v for (name, _), v in scrape(server).items() if name == "nv_inference_pending_request_count"):
        time.sleep(0.25)
        assert time.monotonic() - drain_start < 300, "the queues did not drain"
    queues_empty_s = time.monotonic() - drain_start
    while True:
        code, _ = status_of(lambda: infer(triton, "upscale", upscale_inputs(), timeout=120.0))
        if code == "OK":
            break
        time.sleep(0.25)
        assert time.monotonic() - drain_start < 300, "no request was served after the flood"
    drained_s = time.monotonic() - drain_start
    stats = triton.get_inference_statistics("encode_image", as_json=True)
    assert triton.is_server_ready()
    FIGURES["flood"] = {
        "requests": flood,
        "statuses": dict(codes),
        "flood_s": round(flood_s, 2),
        "rejection_median_s": round(float(np.median([r[2] for r in rejected])), 3),
        "queues_empty_s_after_flood": round(queues_empty_s, 2),
        "served_s_after_flood": round(drained_s, 2),
        "encode_image_stats": stats["model_stats"][0]["inference_stats"].get("fail", {}),
    }


# --- reloads -------------------------------------------------------------------------------------


class Traffic:
    """Upscale requests in a loop on a few threads, recording every status and when."""

    def __init__(self, triton, threads: int = 3):
        self.triton, self.stop, self.results = triton, threading.Event(), []
        self.go, self.lock, self.in_flight = threading.Event(), threading.Lock(), 0
        self.go.set()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]

    def loop(self):
        inputs = upscale_inputs()
        while not self.stop.is_set():
            self.go.wait()
            with self.lock:
                self.in_flight += 1
            code, message = status_of(lambda: infer(self.triton, "upscale", inputs, timeout=120.0))
            with self.lock:
                self.in_flight -= 1
            self.results.append((time.monotonic(), code, message))

    def pause(self, timeout: float = 120.0):
        """Let the requests in flight finish and send no new ones until resume()."""
        self.go.clear()
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def resume(self):
        self.go.set()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)


def test_a_reload_under_load_loses_no_request(server, triton):
    with Traffic(triton) as traffic:
        time.sleep(2)
        start = time.monotonic()
        # A load of the unchanged model would be a no-op: a changed config makes it a real reload.
        config = triton.get_model_config("upscale_tiles", as_json=True)["config"]
        config["parameters"]["reloaded_by_test"] = {"string_value": str(time.time())}
        triton.load_model("upscale_tiles", config=json.dumps(config))
        reload_s = time.monotonic() - start
        time.sleep(2)
    codes = Counter(code for _, code, _ in traffic.results)
    assert codes == {"OK": len(traffic.results)}, [m for _, c, m in traffic.results if c != "OK"][:3]
    FIGURES["reload_under_load"] = {
        "requests": len(traffic.results),
        "statuses": dict(codes),
        "reload_s": round(reload_s, 2),
    }


def test_a_broken_new_version_leaves_the_old_one_serving(server, triton):
    config = triton.get_model_config("upscale_tiles", as_json=True)["config"]
    config["parameters"]["tiles_per_request_batch"] = {"string_value": "not a number"}  # initialize fails
    with Traffic(triton, threads=2) as traffic:
        time.sleep(1)
        with pytest.raises(InferenceServerException, match="not a number"):
            triton.load_model("upscale_tiles", config=json.dumps(config))
        time.sleep(2)
    codes = Counter(code for _, code, _ in traffic.results)
    assert codes == {"OK": len(traffic.results)}, [m for _, c, m in traffic.results if c != "OK"][:3]
    assert triton.is_model_ready("upscale_tiles")
    FIGURES["broken_reload"] = {"requests_meanwhile": len(traffic.results), "statuses": dict(codes)}


# --- a stub killed under load --------------------------------------------------------------------


def stub_pids(server_pid: int, instance: str) -> list[int]:
    """Live stubs of this server only (never another server's: the machine is shared), newest
    first: a version an earlier reload replaced may still be shutting down."""
    out = subprocess.run(["pgrep", "-P", str(server_pid), "-f", f" {instance} "], capture_output=True, text=True)

    def started(pid: int) -> int:  # /proc/PID/stat field 22, clock ticks after boot
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            return 0

    return sorted((int(p) for p in out.stdout.split()), key=started, reverse=True)


def test_a_dead_stub_is_healed_counted_and_alerted(server, triton, prometheus):  # noqa: F811 - the fixture
    wait_for(lambda: prometheus.query("retouch_stub_deaths_total"), "the watchdog's series in Prometheus")
    before = scrape(server)
    pid = stub_pids(server["pid"], "upscale_tiles_0_1")[0]
    with Traffic(triton) as traffic:
        time.sleep(2)
        # Killed between requests: a stub killed while it holds the Python backend's shared-memory
        # mutex can abort the whole tritonserver 2.51 (boost lock_exception, seen here; then only an
        # orchestrator's liveness probe helps: docs/reliability.md). The load resumes at once.
        traffic.pause()
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        traffic.resume()
        wait_for(lambda: watchdog(triton)["reloads"], "the watchdog to reload upscale_tiles")
        healed_at = time.monotonic()
        time.sleep(3)
    status = watchdog(triton)
    assert len(status["deaths"]) == 1, status["deaths"]  # retired stubs of earlier reloads are not deaths
    (death,) = status["deaths"]
    assert death["model"] == "upscale_tiles" and death["pid"] == pid
    failures = [(t, m) for t, code, m in traffic.results if code != "OK"]
    assert all("not healthy" in m for _, m in failures), failures[:3]
    last_failure = max((t for t, _ in failures), default=killed_at)
    after_heal = [code for t, code, _ in traffic.results if t > healed_at + 0.5]
    assert after_heal and set(after_heal) == {"OK"}
    # The failures in the gap are counted as failed upscale edits (Triton failed them before any
    # retouch code ran; the watchdog counts them from Triton's own counters).
    after = scrape(server)
    key = ("retouch_edits_total", (("operation", "upscale"), ("outcome", "failed")))
    counted = after[key] - before.get(key, 0)
    # At least every failure the traffic saw; requests abandoned earlier that fail in the window
    # (a flood's leftovers) are counted too.
    assert counted >= len(failures), (counted, len(failures))
    alert = 'ALERTS{alertname="RetouchStubDied", alertstate="firing", model="upscale_tiles"}'
    wait_for(lambda: prometheus.query(alert), "RetouchStubDied to fire in Prometheus")
    failed_ratio = prometheus.value(
        'operation_outcome:retouch_edits:ratio_rate5m{operation="upscale", outcome="failed"}'
    )
    FIGURES["dead_stub"] = {
        "requests": len(traffic.results),
        "failed": len(failures),
        "counted_failed": counted,
        "failure_window_s": round(last_failure - killed_at, 2) if failures else 0.0,
        "healed_s_after_kill": round(healed_at - killed_at, 2),
        "watchdog_reload_s": status["reloads"][0]["reload_s"],
        "alert": "RetouchStubDied firing",
        "failed_ratio_5m": failed_ratio,
    }


# --- soak ----------------------------------------------------------------------------------------


def test_soak_smoke(server, tmp_path):
    """scripts/soak.py for a few seconds against this server (its full run takes 10 minutes)."""
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "soak.py"),
            "--url",
            server["grpc"],
            "--server-pid",
            str(server["pid"]),
            "--duration",
            "15",
            "--warmup",
            "5",
            "--concurrency",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["unexplained_failures"] == 0
    assert report["requests"] > 0 and "tritonserver" in report["rss_kib"]["end"]
    assert any(k.startswith("upscale_tiles") for k in report["rss_kib"]["end"])
    FIGURES["soak_smoke"] = {
        k: report[k] for k in ("requests", "duration_s", "rss_growth_percent_total", "unexplained_failures")
    }
