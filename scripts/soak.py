#!/usr/bin/env python
"""Soak: a bounded run of mixed traffic at fixed concurrency, reporting failures by status and the
memory (RSS) of tritonserver and of each Python stub after a warm-up and at the end.

    python scripts/soak.py                          # its own server, 10 min after a 1 min warm-up
    python scripts/soak.py --duration 30 --warmup 10  # the CI smoke test's length
    python scripts/soak.py --url 127.0.0.1:8001 --server-pid $(cat .run/tritonserver.pid)

Goal (docs/reliability.md): no failure but the ones explained (INVALID_ARGUMENT the mix sends on
purpose), and RSS growth under 5% from the end of the warm-up to the end. The client retries
UNAVAILABLE (queue full) with backoff, as production callers do; a request still refused after its
retries counts as a failure. Prints a summary and writes it as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "client"))

from local_server import local_server  # noqa: E402

from retouch.watchdog import stub_identity  # noqa: E402
from retouch_client import RetouchClient, RetouchError  # noqa: E402

SIDE = 96  # small images: the point is many requests over time, not big ones


def images() -> dict[str, np.ndarray]:
    crops = [
        data.astronaut()[40 : 40 + SIDE, 180 : 180 + SIDE],
        data.coffee()[150 : 150 + SIDE, 200 : 200 + SIDE],
        data.chelsea()[60 : 60 + SIDE, 150 : 150 + SIDE],
    ]
    return {f"photo{i}": np.ascontiguousarray(c) for i, c in enumerate(crops)}


def mask() -> np.ndarray:
    m = np.zeros((SIDE, SIDE), np.uint8)
    m[30:42, 20:70] = 255
    return m


def mix(photos: dict[str, np.ndarray]):
    """(operation, call) pairs the workers cycle through; one in 20 is malformed on purpose."""
    pics, m = list(photos.values()), mask()
    calls = [
        ("upscale", lambda c, i: c.upscale(pics[i % 3], tile=48, overlap=8)),
        ("detect_text", lambda c, i: c.detect_text(pics[i % 3])),
        ("inpaint", lambda c, i: c.inpaint(pics[i % 3], m)),
        ("remove_text", lambda c, i: c.remove_text(pics[i % 3])),
        ("clean", lambda c, i: c.clean(pics[i % 3], upscale={"tile": 48, "overlap": 8})),
        ("upscale", lambda c, i: c.upscale(pics[i % 3], scale=4, tile=48, overlap=8, mode="creative")),
    ]
    bad = ("upscale (malformed)", lambda c, i: c.upscale(pics[i % 3], scale=3))
    return calls, bad


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory(server_pid: int) -> dict[str, int]:
    """RSS in KiB of tritonserver and of each live stub, by instance name (stable across reloads)."""
    out = {"tritonserver": rss_kib(server_pid) or 0}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(stat[1]) != server_pid or stat[0] == "Z":
                continue
            identity = stub_identity((entry / "cmdline").read_bytes().decode(errors="replace").split("\0"))
        except (OSError, ValueError, IndexError):
            continue
        if identity and (kib := rss_kib(int(entry.name))):
            out[identity[1]] = kib
    return out


class Load:
    """Workers that keep `concurrency` requests in flight, recording status and latency."""

    def __init__(self, url: str, concurrency: int, photos):
        self.url, self.concurrency = url, concurrency
        self.calls, self.bad = mix(photos)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reset()

    def reset(self):
        with self.lock:
            self.statuses: dict[str, Counter] = defaultdict(Counter)
            self.latency: dict[str, list[float]] = defaultdict(list)
            self.messages: Counter = Counter()

    def worker(self, w: int):
        with RetouchClient(self.url, timeout_s=120) as client:
            i = w
            while not self.stop.is_set():
                name, call = self.bad if i % 20 == 19 else self.calls[i % len(self.calls)]
                start = time.monotonic()
                try:
                    call(client, i)
                    status = "OK"
                except RetouchError as exc:
                    status = exc.code
                    if not name.endswith("(malformed)"):
                        with self.lock:
                            self.messages[f"{name}: {exc.code}: {str(exc)[:160]}"] += 1
                with self.lock:
                    self.statuses[name][status] += 1
                    self.latency[name].append(time.monotonic() - start)
                i += self.concurrency

    def run(self):
        self.threads = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(self.concurrency)]
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)


def soak(url: str, server_pid: int, duration: float, warmup: float, concurrency: int) -> dict:
    load = Load(url, concurrency, images())
    load.run()
    time.sleep(warmup)
    load.reset()
    start_mem, started = memory(server_pid), time.monotonic()
    time.sleep(duration)
    end_mem = memory(server_pid)
    elapsed = time.monotonic() - started
    load.join()  # the requests in flight when the time was up still count
    with load.lock:
        statuses = {k: dict(v) for k, v in load.statuses.items()}
        latency = {
            k: {"median_s": round(statistics.median(v), 3), "p95_s": round(float(np.percentile(v, 95)), 3), "n": len(v)}
            for k, v in load.latency.items()
            if v
        }
        messages = dict(load.messages.most_common(10))
    total = sum(sum(v.values()) for v in statuses.values())
    unexplained = sum(
        n
        for name, v in statuses.items()
        for s, n in v.items()
        if s != "OK" and not (name.endswith("(malformed)") and s == "INVALID_ARGUMENT")
    )
    growth = {
        k: round(100.0 * (end_mem[k] - start_mem[k]) / start_mem[k], 2)
        for k in start_mem
        if k in end_mem and start_mem[k]
    }
    total_start = sum(start_mem.values())
    total_end = sum(v for k, v in end_mem.items() if k in start_mem)
    return {
        "duration_s": round(elapsed, 1),
        "warmup_s": warmup,
        "concurrency": concurrency,
        "requests": total,
        "requests_per_s": round(total / elapsed, 2),
        "statuses": statuses,
        "unexplained_failures": unexplained,
        "failure_messages": messages,
        "latency": latency,
        "rss_kib": {"start": start_mem, "end": end_mem},
        "rss_growth_percent": growth,
        "rss_growth_percent_total": round(100.0 * (total_end - total_start) / total_start, 2),
        "rss_growth_percent_max": max(growth.values(), default=0.0),
    }


def summary(report: dict) -> str:
    lines = [
        f"soak: {report['requests']} requests in {report['duration_s']} s after a {report['warmup_s']} s "
        f"warm-up, concurrency {report['concurrency']} ({report['requests_per_s']}/s)",
        f"  unexplained failures: {report['unexplained_failures']}",
    ]
    for name, statuses in sorted(report["statuses"].items()):
        lat = report["latency"].get(name, {})
        lines.append(f"  {name:22s} {statuses}  median {lat.get('median_s')} s, p95 {lat.get('p95_s')} s")
    start, end = report["rss_kib"]["start"], report["rss_kib"]["end"]
    lines.append(
        f"  RSS total {sum(start.values()) / 1024:.0f} -> {sum(end.values()) / 1024:.0f} MiB "
        f"({report['rss_growth_percent_total']:+.2f}%), worst process "
        f"{report['rss_growth_percent_max']:+.2f}%"
    )
    for name in sorted(start):
        if name in end:
            lines.append(
                f"    {name:32s} {start[name] / 1024:8.1f} -> {end[name] / 1024:8.1f} MiB "
                f"({report['rss_growth_percent'][name]:+.2f}%)"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="gRPC address of a running server (default: start one)")
    parser.add_argument("--server-pid", type=int, help="tritonserver's pid, for RSS (with --url)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured (%(default)s)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of traffic first (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (%(default)s)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        url, pid = args.url, args.server_pid
        if url is None:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
            url = stack.enter_context(local_server(run_dir))["grpc"]
            pid = int((run_dir / "tritonserver.pid").read_text())
        if pid is None:
            parser.error("--server-pid is needed with --url (for the RSS figures)")
        report = soak(url, pid, args.duration, args.warmup, args.concurrency)
    print(summary(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0 if report["unexplained_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
