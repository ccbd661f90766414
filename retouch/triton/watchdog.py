"""The watchdog model (model_repository/watchdog): a thread that notices dead Python-backend stubs and
reloads their model. Detection is retouch.watchdog (pure); this is the Triton glue."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.errors import short
from retouch.triton import model_parameters, respond_each
from retouch.triton.metrics import PipelineMetrics
from retouch.watchdog import ENSEMBLE_FAILURE_INCREMENT, StubTracker, server_urls, stub_processes, unexplained_failures

RETRY_S = 10.0  # a reload that failed is tried again this often


class Watchdog:
    def initialize(self, args):
        params = model_parameters(args)
        self.interval = float(params.get("interval_s", "1"))
        self.operations = [o.strip() for o in params.get("operations", "").split(",") if o.strip()]
        self.increment = float(params.get("ensemble_failure_increment", ENSEMBLE_FAILURE_INCREMENT))
        self.name = args["model_name"]
        self.server = os.getppid()
        with open(f"/proc/{self.server}/cmdline", "rb") as f:
            urls = server_urls(f.read().decode(errors="replace").split("\0"))
        self.metrics_url, self.http_url = urls.get("metrics"), urls.get("http")
        # Every operation's failed-edit series exists from the start (the watchdog adds to it).
        self.metrics = PipelineMetrics(self.operations)
        self.watched: set[str] = set()
        self.tracker = StubTracker()
        self.lock = threading.Lock()
        self.status = {"deaths": [], "reloads": [], "down": {}}
        self.down: dict[str, float] = {}  # model -> when its death was noticed (monotonic)
        self.last_try: dict[str, float] = {}
        # Counting goes on for a few looks after a reload: Triton updates its failure counters a
        # moment after the response, and the old instances serve until they are retired.
        self.count_until = 0.0
        self.failures = self.read_failures()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="retouch-watchdog", daemon=True)
        self.thread.start()

    def execute(self, requests):
        def answer(_request):
            with self.lock:
                status = json.dumps(self.status, sort_keys=True).encode()
            return [pb_utils.Tensor("STATUS", np.array([status], dtype=np.object_))]

        return respond_each(requests, answer)

    def finalize(self):
        self.stop.set()
        self.thread.join(timeout=5)

    # --- the thread -------------------------------------------------------------------------
    def run(self):
        while not self.stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the watchdog must outlive its own bugs
                pb_utils.Logger.log_error(f"watchdog: check failed: {short(exc)}")

    def check(self):
        died = self.tracker.observe(stub_processes(self.server))
        for model in {m for m, _ in self.tracker.known.values()} - self.watched:
            self.metrics.watch(model)
            self.watched.add(model)
        for pid, model, instance in died:
            if model == self.name:
                continue
            pb_utils.Logger.log_error(
                f"watchdog: the stub of {instance} (pid {pid}) died; "
                f"requests routed to it fail until {model} is reloaded"
            )
            self.metrics.stub_died(model)
            with self.lock:
                self.status["deaths"].append({"model": model, "instance": instance, "pid": pid, "time": time.time()})
                self.status["down"][model] = time.time()
            self.down.setdefault(model, time.monotonic())
        # Requests that failed since the last look, while a model was down: Triton failed them
        # before any retouch code ran, so they are counted here, by operation.
        self.count_failures(bool(self.down) or time.monotonic() < self.count_until)
        for model in sorted(self.down):
            if time.monotonic() - self.last_try.get(model, -RETRY_S) >= RETRY_S:
                self.reload(model)

    def reload(self, model: str):
        self.last_try[model] = time.monotonic()
        start = time.monotonic()
        try:
            # A load of an unchanged, loaded model is a no-op. Its config with one parameter
            # changed (when it was reloaded) is new to Triton, which then loads the model afresh
            # (new instances, so new stubs) and retires the old ones once they are idle.
            with urllib.request.urlopen(f"{self.http_url}/v2/models/{model}/config", timeout=10) as r:
                config = json.load(r)
            config.setdefault("parameters", {})["watchdog_reloaded_at"] = {"string_value": f"{time.time():.3f}"}
            pb_utils.load_model(model_name=model, config=json.dumps(config))
        except Exception as exc:  # noqa: BLE001 - logged, counted, retried
            pb_utils.Logger.log_error(f"watchdog: reloading {model} failed: {short(exc)}; retrying in {RETRY_S:.0f} s")
            self.metrics.reloaded(model, ok=False)
            return
        took = time.monotonic() - start
        down_for = time.monotonic() - self.down.pop(model)
        self.count_failures(True)
        self.count_until = time.monotonic() + 3 * self.interval
        pb_utils.Logger.log_warn(
            f"watchdog: reloaded {model} in {took:.1f} s ({down_for:.1f} s after its stub's death was noticed)"
        )
        self.metrics.reloaded(model, ok=True)
        with self.lock:
            self.status["down"].pop(model, None)
            self.status["reloads"].append(
                {"model": model, "reload_s": round(took, 2), "down_s": round(down_for, 2), "time": time.time()}
            )

    def read_failures(self) -> dict[str, float]:
        if not self.metrics_url:
            return {}
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                return unexplained_failures(response.read().decode(), self.increment)
        except OSError:
            return {}

    def count_failures(self, counting: bool):
        now = self.read_failures()
        if not now:
            return
        if counting:
            for operation in self.operations:
                failed = int(now.get(operation, 0.0) - self.failures.get(operation, 0.0))
                if failed > 0:
                    self.metrics.edit(operation, "failed", failed)
                    now[operation] = now.get(operation, 0.0) - failed  # what we counted ourselves
        self.failures = now
