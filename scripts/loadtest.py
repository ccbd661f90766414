"""Load-test a running retouch server through the retouch client, with a mix of operations and sizes.

    scripts/loadtest --concurrency 8 --duration 60                     # closed loop
    scripts/loadtest --rate 2 --duration 60 --mix upscale:3,remove_text:1 --sizes 256:3,512:1   # open loop
    scripts/loadtest --requests 20 --out out/loadtest                  # bounded by count

Closed loop (--concurrency N): N callers, each sending its next request when the last one returns.
Open loop (--rate R): requests arrive at R per second on a fixed schedule whatever the server does;
latency is measured from each request's scheduled arrival, so a backlog shows up as latency (no
coordinated omission); at most --max-in-flight are outstanding (later arrivals wait in the client).
The run stops at --duration seconds or --requests requests, whichever comes first; a progress bar
shows it. Requests are drawn with --seed from --mix (operation:weight) and --sizes (side:weight):
real photos with a line of text (scripts/workload.py), PNG-encoded; inpaint and clean get a mask.

Writes into --out: report.json and report.md (per operation: count, throughput, latency p50/p90/
p95/p99/max, errors by gRPC status, seam-rate: the share of upscale/clean responses whose seam score
is over threshold), latency_over_time.png and latency_histogram.png. Retries are off: every failure
is counted under its status.

It is written on the retouch client (threads, one client each) rather than on locust: the client is
what production callers use (error mapping, shared memory, deadlines), and a thread per caller
carries the tens of requests in flight this service sees per host. locust's gRPC users run under
gevent, which grpcio supports only with its own gevent mode; that was not tried here.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from workload import request  # noqa: E402

from retouch_client import OPERATIONS, RetouchClient, RetouchError, RetryPolicy  # noqa: E402

BY_NAME = {op.name: op for op in OPERATIONS}
PERCENTILES = (50, 90, 95, 99)


def weighted(spec: str, cast=str) -> list[tuple]:
    """'a:3,b:1' -> [(a, 3.0), (b, 1.0)]; a bare name weighs 1."""
    out = []
    for part in spec.split(","):
        name, _, weight = part.partition(":")
        out.append((cast(name.strip()), float(weight or 1)))
    return out


class Workload:
    def __init__(self, mix: str, sizes: str, seed: int, settings: dict):
        self.ops = weighted(mix)
        for name, _ in self.ops:
            if name not in BY_NAME:
                raise SystemExit(f"unknown operation {name!r}: one of {sorted(BY_NAME)}")
        self.sizes = weighted(sizes, int)
        self.rng = random.Random(seed)
        self.settings = settings
        self.cache: dict = {}
        self.lock = threading.Lock()

    def draw(self) -> tuple[str, int, dict]:
        with self.lock:
            op = self.rng.choices([o for o, _ in self.ops], [w for _, w in self.ops])[0]
            size = self.rng.choices([s for s, _ in self.sizes], [w for _, w in self.sizes])[0]
            variant = self.rng.randrange(4)
            key = (op, size, variant)
            if key not in self.cache:
                self.cache[key] = request(op, size, variant)
        return op, size, self.cache[key]


def seam_flag(op: str, report: dict):
    section = report.get("upscale") if op in ("upscale", "clean") else None
    if isinstance(section, dict) and "seam_over_threshold" in section:
        return bool(section["seam_over_threshold"]), section.get("seam_score")
    return None, None


def call(clients: threading.local, url: str, timeout_s: float, op: str, inputs: dict, settings: dict):
    if not hasattr(clients, "client"):
        clients.client = RetouchClient(url, timeout_s=timeout_s, retry=RetryPolicy(attempts=1))
    result = clients.client.call(BY_NAME[op], inputs["IMAGE"], inputs.get("MASK"), **settings.get(op, {}))
    return result.report


def run(args) -> tuple[list[dict], float]:
    workload = Workload(args.mix, args.sizes, args.seed, json.loads(args.settings))
    clients = threading.local()
    records: list[dict] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.duration
    limit = args.requests or float("inf")
    bar = tqdm(
        total=args.requests or int(args.duration),
        unit="req" if args.requests else "s",
        desc="loadtest",
        disable=args.quiet,
        mininterval=1.0,
    )
    started = time.monotonic()
    issued = 0

    def one(op: str, size: int, inputs: dict, scheduled: float) -> None:
        status, flag, score = "OK", None, None
        try:
            report = call(clients, args.url, args.timeout, op, inputs, workload.settings)
            flag, score = seam_flag(op, report)
        except RetouchError as exc:
            status = exc.code
        except Exception as exc:  # noqa: BLE001 - a load test counts every failure
            status = type(exc).__name__
        done = time.monotonic()
        with lock:
            records.append(
                {
                    "op": op,
                    "size": size,
                    "start_s": round(scheduled - started, 4),
                    "latency_s": round(done - scheduled, 4),
                    "status": status,
                    "seam_over_threshold": flag,
                    "seam_score": score,
                }
            )
            if args.requests:
                bar.update(1)

    def tick() -> None:
        if not args.requests:
            now = min(int(time.monotonic() - started), int(args.duration))
            if now != bar.n:
                bar.n = now
                bar.refresh()

    if args.rate:  # open loop: a fixed schedule, at most max_in_flight outstanding
        with cf.ThreadPoolExecutor(args.max_in_flight) as pool:
            futures = []
            while issued < limit:
                scheduled = started + issued / args.rate
                if scheduled >= stop_at:
                    break
                while time.monotonic() < scheduled:
                    time.sleep(min(0.05, scheduled - time.monotonic()) if scheduled > time.monotonic() else 0)
                    tick()
                op, size, inputs = workload.draw()
                futures.append(pool.submit(one, op, size, inputs, scheduled))
                issued += 1
            for f in futures:
                while not f.done():
                    tick()
                    time.sleep(0.05)
    else:  # closed loop
        counter = iter(range(10**12))
        counter_lock = threading.Lock()

        def caller() -> None:
            while time.monotonic() < stop_at:
                with counter_lock:
                    n = next(counter)
                if n >= limit:
                    return
                op, size, inputs = workload.draw()
                one(op, size, inputs, time.monotonic())

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            tick()
            time.sleep(0.1)
    tick()
    bar.close()
    return records, time.monotonic() - started


def summarize(records: list[dict], elapsed: float) -> dict:
    def stats(rows: list[dict]) -> dict:
        ok = [r["latency_s"] for r in rows if r["status"] == "OK"]
        flags = [r["seam_over_threshold"] for r in rows if r["seam_over_threshold"] is not None]
        out = {
            "requests": len(rows),
            "ok": len(ok),
            "throughput_rps": round(len(ok) / elapsed, 3) if elapsed else 0.0,
            "errors_by_status": dict(Counter(r["status"] for r in rows if r["status"] != "OK")),
        }
        if ok:
            out["latency_s"] = {f"p{p}": round(float(np.percentile(ok, p)), 4) for p in PERCENTILES}
            out["latency_s"]["max"] = round(max(ok), 4)
            out["latency_s"]["mean"] = round(float(np.mean(ok)), 4)
        if flags:
            out["seam_rate"] = round(sum(flags) / len(flags), 4)
            out["seam_checked"] = len(flags)
        return out

    by_op = defaultdict(list)
    for r in records:
        by_op[r["op"]].append(r)
    return {
        "elapsed_s": round(elapsed, 3),
        "total": stats(records),
        "operations": {op: stats(rows) for op, rows in sorted(by_op.items())},
    }


def markdown(summary: dict, args) -> str:
    mode = f"open loop at {args.rate} req/s" if args.rate else f"closed loop, concurrency {args.concurrency}"
    lines = [
        f"# Load test: {mode}",
        "",
        f"Server {args.url}; mix `{args.mix}`; sizes `{args.sizes}`; {summary['elapsed_s']} s; seed {args.seed}.",
        "",
        "| operation | requests | ok | req/s | p50 s | p90 s | p95 s | p99 s | max s | errors | seam-rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = list(summary["operations"].items()) + [("**all**", summary["total"])]
    for op, s in rows:
        lat = s.get("latency_s", {})
        errs = ", ".join(f"{k} {v}" for k, v in s["errors_by_status"].items()) or "0"
        seam = f"{s['seam_rate']:.1%} of {s['seam_checked']}" if "seam_rate" in s else "–"
        lines.append(
            f"| {op} | {s['requests']} | {s['ok']} | {s['throughput_rps']} | "
            + " | ".join(str(lat.get(k, "–")) for k in ("p50", "p90", "p95", "p99", "max"))
            + f" | {errs} | {seam} |"
        )
    lines += ["", "![latency over time](latency_over_time.png)", "", "![latency histogram](latency_histogram.png)", ""]
    return "\n".join(lines)


def plots(records: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_op = defaultdict(list)
    for r in records:
        by_op[r["op"]].append(r)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for op, rows in sorted(by_op.items()):
        ok = [r for r in rows if r["status"] == "OK"]
        bad = [r for r in rows if r["status"] != "OK"]
        ax.scatter([r["start_s"] for r in ok], [r["latency_s"] for r in ok], s=10, label=op)
        if bad:
            ax.scatter(
                [r["start_s"] for r in bad], [r["latency_s"] for r in bad], s=18, marker="x", label=f"{op} errors"
            )
    ax.set_xlabel("request start (s into the run)")
    ax.set_ylabel("latency (s)")
    ax.set_title("latency over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_over_time.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    data = {op: [r["latency_s"] for r in rows if r["status"] == "OK"] for op, rows in sorted(by_op.items())}
    data = {op: v for op, v in data.items() if v}
    if data:
        ax.hist(list(data.values()), bins=30, label=list(data.keys()), stacked=True)
        ax.legend(fontsize=8)
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("requests")
    ax.set_title("latency histogram (successful requests)")
    fig.tight_layout()
    fig.savefig(out / "latency_histogram.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="gRPC address (default: RETOUCH_URL or 127.0.0.1:8001)")
    loop = ap.add_mutually_exclusive_group()
    loop.add_argument("--concurrency", type=int, default=8, help="closed loop: callers in flight")
    loop.add_argument("--rate", type=float, help="open loop: requests per second")
    ap.add_argument("--max-in-flight", type=int, default=32, help="open loop: cap on outstanding requests")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds (upper bound)")
    ap.add_argument("--requests", type=int, help="requests (upper bound)")
    ap.add_argument(
        "--mix", default="upscale:4,detect_text:2,inpaint:2,remove_text:1,clean:1", help="operation:weight,..."
    )
    ap.add_argument("--sizes", default="256:3,512:1", help="image side:weight,...")
    ap.add_argument("--settings", default="{}", help='per-operation settings JSON, e.g. {"upscale": {"scale": 4}}')
    ap.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "loadtest")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.url is None:
        import os

        args.url = os.environ.get("RETOUCH_URL", "127.0.0.1:8001")

    records, elapsed = run(args)
    summary = summarize(records, elapsed)
    summary["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(summary | {"requests": records}, indent=1))
    (args.out / "report.md").write_text(markdown(summary, args))
    plots(records, args.out)
    print(markdown(summary, args).split("\n![")[0])
    print(f"report: {args.out}/report.md, report.json, latency_over_time.png, latency_histogram.png")
    return 0 if summary["total"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
