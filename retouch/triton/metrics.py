"""retouch's pipeline metrics, defined once for every Python-backend shim.

Triton serves them on its metrics port beside its own nv_inference_* families; docs/observability.md
says what each means and docker/prometheus/ builds the SLO rules on them. Every series carries an
`operation` label (upscale, inpaint, remove_text, clean, detect_text), so a new operation shows up in
the rules and the dashboard without editing them.
"""

from __future__ import annotations

from collections.abc import Iterable

import triton_python_backend_utils as pb_utils

from retouch.inpaint import InpaintSettings
from retouch.reading import LINE_VERDICTS
from retouch.settings import UpscaleSettings

# accepted: served as asked. needs_review: served, but the quality gate wants a human to look.
# fallback: the gate refused the edit and a safer one was served. rejected: INVALID_ARGUMENT (the
# caller's fault). failed: any other error (ours).
OUTCOMES = ("accepted", "needs_review", "fallback", "rejected", "failed")

# The settings' default thresholds are bucket edges, so the share over them reads straight off the
# histograms; taken from the declarations, so the buckets follow a changed default.
SEAM_THRESHOLD = UpscaleSettings.model_fields["seam_threshold"].default
GATE_RING_ERROR = InpaintSettings.model_fields["gate_ring_error"].default
SEAM_SCORE_BUCKETS = sorted({1.0, 1.1, SEAM_THRESHOLD, 1.5, 2.0, 3.0, 5.0})
TILES_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
MASK_COVERAGE_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0]
# Mean absolute error on [0, 1] pixels of the probe ring (known pixels the probe fill hid and
# predicted); the inpaint gate accepts up to gate_ring_error.
RECONSTRUCTION_ERROR_BUCKETS = sorted({0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, GATE_RING_ERROR, 0.16, 0.32})
# High-frequency power of the filled region over its surroundings' (1 = same texture).
HF_RATIO_BUCKETS = [0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0, 4.0]

# name -> (kind, description, histogram buckets). Kinds are names: pb_utils.MetricFamily exists only
# once the stub has set up the model, not when this module is imported for auto-complete.
COUNTER, HISTOGRAM = "COUNTER", "HISTOGRAM"
FAMILIES = {
    "retouch_edits_total": (
        COUNTER,
        "Edit requests by operation and outcome (accepted, needs_review, fallback, rejected, failed)",
        None,
    ),
    "retouch_stub_deaths_total": (
        COUNTER,
        "Python-backend stub processes found dead (the watchdog reloads their model)",
        None,
    ),
    "retouch_model_reloads_total": (
        COUNTER,
        "Reloads of a model by the watchdog after a stub died, by outcome (ok, failed)",
        None,
    ),
    "retouch_seam_score": (HISTOGRAM, "Seam score of each tiled response (about 1 = invisible)", SEAM_SCORE_BUCKETS),
    "retouch_seam_checks_total": (
        COUNTER,
        "Tiled responses, by whether the seam score exceeded the request's threshold",
        None,
    ),
    "retouch_tiles_per_request": (HISTOGRAM, "Tiles sent to the upscaler models per request", TILES_BUCKETS),
    "retouch_mask_coverage_ratio": (
        HISTOGRAM,
        "Fraction of the image's pixels inside the edit mask",
        MASK_COVERAGE_BUCKETS,
    ),
    "retouch_gate_reconstruction_error": (
        HISTOGRAM,
        "Quality gate input: mean absolute error predicting known pixels in a ring around the hole, pixels in [0, 1]",
        RECONSTRUCTION_ERROR_BUCKETS,
    ),
    "retouch_gate_high_frequency_ratio": (
        HISTOGRAM,
        "Quality gate input: high-frequency power of the filled region over its surroundings'",
        HF_RATIO_BUCKETS,
    ),
    "retouch_text_lines_total": (
        COUNTER,
        "Detected text lines by verdict: painted, read_as_text (painted because the recogniser read it), "
        "unreadable (the recogniser vetoed it), uncertain (left for review), texture (left alone)",
        None,
    ),
}


# The series each kind of operation reports, beyond edits (labels other than operation).
SERIES_BY_KIND = {
    "tiled": [
        ("retouch_seam_score", {}),
        ("retouch_seam_checks_total", {"over_threshold": "true"}),
        ("retouch_seam_checks_total", {"over_threshold": "false"}),
        ("retouch_tiles_per_request", {}),
    ],
    "masked": [("retouch_mask_coverage_ratio", {})],
    "gated": [("retouch_gate_reconstruction_error", {}), ("retouch_gate_high_frequency_ratio", {})],
    "read": [("retouch_text_lines_total", {"verdict": verdict}) for verdict in LINE_VERDICTS],
}


class PipelineMetrics:
    """Owns the metric families and their labelled series; create one in a shim's initialize().

    Triton shows a series only once its Metric exists, and Prometheus's rate() misses the first
    increment of a series that appears already counted. So the series of the operations the shim
    serves are created at zero up front: edits for every outcome, and the series of what the
    operation does (tiled, masked, gated, read: see SERIES_BY_KIND).
    """

    def __init__(
        self,
        operations: Iterable[str],
        tiled: bool = False,
        masked: bool = False,
        gated: bool = False,
        read: bool = False,
    ):
        # A Metric is only valid while its family lives: both are kept on self.
        self._families = {
            name: pb_utils.MetricFamily(name=name, description=description, kind=getattr(pb_utils.MetricFamily, kind))
            for name, (kind, description, _) in FAMILIES.items()
        }
        self._series: dict[tuple, object] = {}
        wanted = {"tiled": tiled, "masked": masked, "gated": gated, "read": read}
        kinds = [kind for kind, on in wanted.items() if on]
        for operation in operations:
            for outcome in OUTCOMES:
                self._get("retouch_edits_total", operation=operation, outcome=outcome)
            for kind in kinds:
                for name, labels in SERIES_BY_KIND[kind]:
                    self._get(name, operation=operation, **labels)

    def _get(self, name: str, **labels: str):
        key = (name, *sorted(labels.items()))
        if key not in self._series:
            buckets = FAMILIES[name][2]
            family = self._families[name]
            self._series[key] = (
                family.Metric(labels=labels, buckets=buckets) if buckets else family.Metric(labels=labels)
            )
        return self._series[key]

    def edit(self, operation: str, outcome: str, n: int = 1) -> None:
        if outcome not in OUTCOMES:  # keeps the label's values, and so the series, bounded
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self._get("retouch_edits_total", operation=operation, outcome=outcome).increment(n)

    def watch(self, model: str) -> None:
        """The watchdog's series of a model, created at zero (see the class's note on rate())."""
        self._get("retouch_stub_deaths_total", model=model)
        for outcome in ("ok", "failed"):
            self._get("retouch_model_reloads_total", model=model, outcome=outcome)

    def stub_died(self, model: str) -> None:
        self._get("retouch_stub_deaths_total", model=model).increment(1)

    def reloaded(self, model: str, ok: bool) -> None:
        self._get("retouch_model_reloads_total", model=model, outcome="ok" if ok else "failed").increment(1)

    def seam(self, operation: str, score: float, over: bool) -> None:
        self._get("retouch_seam_score", operation=operation).observe(score)
        self._get("retouch_seam_checks_total", operation=operation, over_threshold=str(bool(over)).lower()).increment(1)

    def tiles(self, operation: str, n: int) -> None:
        self._get("retouch_tiles_per_request", operation=operation).observe(n)

    def mask_coverage(self, operation: str, fraction: float) -> None:
        self._get("retouch_mask_coverage_ratio", operation=operation).observe(fraction)

    def text_lines(self, operation: str, verdict: str, n: int) -> None:
        if verdict not in LINE_VERDICTS:  # keeps the label's values, and so the series, bounded
            raise ValueError(f"verdict must be one of {LINE_VERDICTS}, got {verdict!r}")
        self._get("retouch_text_lines_total", operation=operation, verdict=verdict).increment(n)

    def gate(self, operation: str, recon_error: float, hf_ratio: float) -> None:
        self._get("retouch_gate_reconstruction_error", operation=operation).observe(recon_error)
        self._get("retouch_gate_high_frequency_ratio", operation=operation).observe(hf_ratio)
