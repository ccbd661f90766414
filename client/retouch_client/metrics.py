"""Client-side Prometheus metrics for the calling service, in the registry it passes."""

from __future__ import annotations

import threading
import weakref

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# Seconds: from a small image on one host up to a large upscale on CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ClientMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.latency = Histogram(
            "retouch_client_request_duration_seconds",
            "Time of each call as the caller saw it, retries and backoff included, by operation",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "retouch_client_errors_total",
            "Calls that failed, by operation and gRPC status code",
            ["operation", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "retouch_client_retries_total",
            "Calls sent again after a retryable status, by operation and that status code",
            ["operation", "code"],
            registry=registry,
        )

    def observe(self, operation: str, seconds: float, error_code: str | None) -> None:
        self.latency.labels(operation).observe(seconds)
        if error_code is not None:
            self.errors.labels(operation, error_code).inc()


# A registry holds each metric name once, so every client sharing a registry shares its metrics.
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None) -> ClientMetrics:
    registry = REGISTRY if registry is None else registry
    with _lock:
        if registry not in _by_registry:
            _by_registry[registry] = ClientMetrics(registry)
        return _by_registry[registry]
