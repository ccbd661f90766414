"""Metrics end to end: a real tritonserver, a real Prometheus (Debian's binary) scraping it every
second with docker/prometheus's rules loaded, a few small upscale edits, then Prometheus's HTTP API.
The Grafana dashboard's queries are checked against the same live scrape and Prometheus."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
import yaml

from retouch_client import InvalidInputError, RetouchClient
from scripts.local_server import free_port, local_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "retouch.json"
WAIT_S = 30


def rule_groups() -> list[dict]:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    return [g for f in config["rule_files"] for g in yaml.safe_load((PROMETHEUS_DIR / f).read_text())["groups"]]


RECORDED = sorted({r["record"] for g in rule_groups() for r in g["rules"] if "record" in r})
ALERTS = sorted({r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r})


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(server) -> dict[tuple, float]:
    """Triton's /metrics as {(sample name, sorted labels): value}, names exactly as exposed
    (prometheus_client's parser would rename counters to *_total)."""
    with urllib.request.urlopen(server["metrics"], timeout=10) as response:
        lines = response.read().decode().splitlines()
    samples = {}
    for line in lines:
        if match := SAMPLE.match(line):
            name, labels, value = match.groups()
            samples[(name, tuple(sorted(LABEL.findall(labels or ""))))] = float(value)
    return samples


def unix_time(rfc3339: str) -> float:
    """Prometheus's timestamps carry nanoseconds; Python's parser takes microseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")).timestamp()


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"gave up after {WAIT_S}s waiting for {what}")


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params) -> dict:
        body = get_json(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple, float]:
        """Instant query -> {sorted labels without __name__: value}."""
        return {
            tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(s["value"][1])
            for s in self.api("query", query=expr)["result"]
        }

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} series"
        return next(iter(result.values()), None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own, so every counter is still at zero when Prometheus first
    scrapes it. On the session's server, earlier modules' traffic leaves counters at different
    values, and rate() then extrapolates each series differently (it stops where a series would
    reach zero): ratios of rates drifted 15-20% from the true counts."""
    with local_server(tmp_path_factory.mktemp("tritonserver-observability")) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def client(server):
    with RetouchClient(server["grpc"], timeout_s=300) as c:
        yield c


@pytest.fixture(scope="module")
def triton(server):
    c = grpcclient.InferenceServerClient(server["grpc"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    """docker/prometheus/prometheus.yml with a 1 s interval, the test server as target, temporary storage."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh (apt package `prometheus`)")
    work = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [urllib.parse.urlsplit(server["metrics"]).netloc]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(work / "prometheus.log", "w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready():
        if process.poll() is not None:
            pytest.fail(f"prometheus exited:\n{(work / 'prometheus.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(ready, "prometheus to be ready")
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


SETTINGS = [  # 64x64 images: CPU is scarce. The last one tiles with no overlap or blending: seams.
    {"tile": 32, "overlap": 8},
    {"tile": 32, "overlap": 8, "mode": "creative"},
    {"tile": 48, "overlap": 8},
    {"tile": 32, "overlap": 0, "blend": "none", "scale": 4},
]


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after[key] - before.get(key, 0.0)


@pytest.fixture(scope="module")
def traffic(prometheus, server, client, triton, photos):
    """Edits sent between two scrapes Prometheus has seen; returns what the server counted."""
    # A baseline sample first: rate() needs one from before the edits.
    wait_for(lambda: prometheus.query('retouch_edits_total{operation="upscale"}'), "the first scrape")
    before, stats_before = scrape(server), triton.get_inference_statistics().model_stats
    image = photos["chelsea"][64:128, 64:128]
    for settings in SETTINGS:
        client.upscale(image, **settings)
    with pytest.raises(InvalidInputError):
        client.upscale(image, scale=3)
    after, stats_after = scrape(server), triton.get_inference_statistics().model_stats
    # Then until Prometheus has scraped the final counts (the rejection came last) and every rule
    # group has been evaluated since: groups run on their own schedules.
    rejected = 'retouch_edits_total{operation="upscale", outcome="rejected"}'
    final = after[("retouch_edits_total", (("operation", "upscale"), ("outcome", "rejected")))]
    wait_for(lambda: prometheus.value(rejected) == final, "prometheus to scrape the edits")
    scraped_at = prometheus.value(f"timestamp({rejected})")
    wait_for(
        lambda: all(unix_time(g["lastEvaluation"]) > scraped_at for g in prometheus.api("rules")["groups"]),
        "every rule group to be evaluated on the edits",
    )
    batches = {}
    for old, new in zip(stats_before, stats_after):
        assert old.name == new.name
        if new.execution_count > old.execution_count:
            batches[new.name] = (new.inference_count - old.inference_count) / (
                new.execution_count - old.execution_count
            )
    return {"before": before, "after": after, "batches": batches}


def test_the_server_counted_the_edits(traffic):
    after, before = traffic["after"], traffic["before"]
    edits = {
        o: delta(after, before, "retouch_edits_total", operation="upscale", outcome=o)
        for o in ("accepted", "rejected", "failed", "needs_review", "fallback")
    }
    assert edits == {"accepted": len(SETTINGS), "rejected": 1, "failed": 0, "needs_review": 0, "fallback": 0}
    checks = {
        o: delta(after, before, "retouch_seam_checks_total", operation="upscale", over_threshold=o)
        for o in ("true", "false")
    }
    assert checks["true"] + checks["false"] == len(SETTINGS)
    assert checks["true"] >= 1, "naive tiling should have scored over the seam threshold"
    assert delta(after, before, "retouch_tiles_per_request_count", operation="upscale") == len(SETTINGS)
    assert delta(after, before, "retouch_seam_score_count", operation="upscale") == len(SETTINGS)


def test_rules_loaded_and_healthy(prometheus, traffic):
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert sorted({r["name"] for r in rules if r["type"] == "recording"}) == RECORDED
    assert sorted({r["name"] for r in rules if r["type"] == "alerting"}) == ALERTS
    unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert unhealthy == {}


@pytest.mark.parametrize("record", RECORDED)
def test_every_recording_rule_has_a_value(prometheus, traffic, record):
    values = [v for v in prometheus.query(record).values() if math.isfinite(v)]
    assert values, f"{record} has no finite value after the edits"


def test_pipeline_ratios_match_the_server_counts(prometheus, traffic):
    after, before = traffic["after"], traffic["before"]
    total = len(SETTINGS) + 1
    ratios = prometheus.query('operation_outcome:retouch_edits:ratio_rate5m{operation="upscale"}')
    ratios = {dict(labels)["outcome"]: v for labels, v in ratios.items()}
    # rate() extrapolates at the window's edges: hence approx.
    assert ratios["rejected"] == pytest.approx(1 / total, rel=0.15)
    assert ratios["accepted"] == pytest.approx(len(SETTINGS) / total, rel=0.15)
    assert ratios["failed"] == ratios["needs_review"] == ratios["fallback"] == 0
    over = delta(after, before, "retouch_seam_checks_total", operation="upscale", over_threshold="true")
    seam_rate = prometheus.value('operation:retouch_seam_over_threshold:ratio_rate15m{operation="upscale"}')
    assert seam_rate == pytest.approx(over / len(SETTINGS), rel=0.15)
    tiles = delta(after, before, "retouch_tiles_per_request_sum", operation="upscale") / len(SETTINGS)
    recorded_tiles = prometheus.value('operation:retouch_tiles_per_request:avg_rate5m{operation="upscale"}')
    print(
        f"prometheus vs server: rejected {ratios['rejected']:.4f} vs {1 / total:.4f}, seam-rate "
        f"{seam_rate:.4f} vs {over / len(SETTINGS):.4f}, tiles {recorded_tiles:.3f} vs {tiles:.3f}"
    )
    assert recorded_tiles == pytest.approx(tiles, rel=0.15)


def test_average_batch_size_matches_triton_statistics(prometheus, traffic):
    upscalers = {m: b for m, b in traffic["batches"].items() if m.startswith("upscaler_")}
    assert upscalers and max(upscalers.values()) > 1  # each request sends its tiles as one batch
    for model, batch in upscalers.items():
        recorded = prometheus.value(f'model:nv_inference_batch_size:avg_rate5m{{model="{model}"}}')
        print(f"{model}: average batch size {recorded:.3f} (prometheus) vs {batch:.3f} (triton statistics)")
        assert recorded == pytest.approx(batch, rel=0.15), model


def test_latency_and_queue_time_are_recorded(prometheus, traffic):
    p95 = prometheus.value('model:nv_inference_request_latency_ms:p95{model="upscale"}')
    assert 0 < p95 < 120_000
    queue = prometheus.value('model:nv_inference_queue_ms:avg_rate5m{model="upscaler_waifu2x_photo_x2"}')
    compute = prometheus.value('model:nv_inference_compute_ms:avg_rate5m{model="upscaler_waifu2x_photo_x2"}')
    assert queue >= 0 and compute > 0


def test_alerts_follow_the_traffic(prometheus, traffic):
    """One edit in four had seams: the seam-rate alert is pending (it fires after 5 minutes).
    Nothing failed and latency is within budget: those alerts stay inactive."""
    alerts = {
        (a["labels"]["alertname"], a["labels"].get("operation")): a["state"]
        for a in wait_for(lambda: prometheus.api("alerts")["alerts"], "an active alert")
    }
    assert alerts.get(("RetouchSeamRateHigh", "upscale")) in ("pending", "firing")
    assert not {name for name, _ in alerts} & {
        "RetouchEditFailureRatioHigh",
        "RetouchLatencyP95OverBudget",
        "TritonDown",
    }


# PromQL words that are not metric names.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]*\s*\()", expr)
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_metric_name_extraction():
    assert metric_names('sum by (model) (rate(nv_inference_count{model="a"}[5m])) / on (model) b:c:d > 2') == {
        "nv_inference_count",
        "b:c:d",
    }


def test_dashboard_names_only_exported_or_recorded_metrics(server, prometheus, traffic):
    exported = {name for name, _ in scrape(server)}
    queries = dashboard_queries()
    assert len(queries) >= 8
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported | set(RECORDED), f"{expr}: unknown {names - exported - set(RECORDED)}"
        # And each query shows something for the edits just sent.
        assert prometheus.query(expr), f"dashboard query returns nothing: {expr}"
