"""One base for the Python-backend steps that serve an operation: upscale_tiles, text_detect,
inpaint_regions, text_remove.

The base owns what every such step does around its work: the deployment parameters its
config.pbtxt declares (read and checked at load time, no fallbacks), the manifests of the models it
calls, the event loop its BLS calls run on, per-request isolation (respond_each), the report and
the metrics. A step declares what it reads and implements only `run`: the request's inputs and
parsed settings in, a StepResult out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.inpaint import FAST_FILL, REFINE, UNET
from retouch.settings import parse_settings
from retouch.text import served_detector
from retouch.triton import (
    add_step,
    fill_infer,
    input_bytes,
    json_tensor,
    model_parameters,
    read_manifest,
    read_report,
    report_tensor,
    respond_each,
    timed,
)
from retouch.triton.metrics import OUTCOMES, SERIES_BY_KIND, PipelineMetrics


class DeploymentError(ValueError):
    """A config.pbtxt lacks a parameter its step needs, or holds one it cannot use: the model fails
    to load with this message."""


# -- parameter types: each parses a config value and says in its docstring what it accepts ----------


def positive_int(text: str) -> int:
    """a positive integer"""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def sizes(text: str) -> tuple[int, ...]:
    """comma-separated positive integers (e.g. "640,960,1280")"""
    values = tuple(sorted(positive_int(v.strip()) for v in text.split(",")))
    if not values:
        raise ValueError(text)
    return values


def model_name(text: str) -> str:
    """the name of a model of this server"""
    if not text.strip() or text != text.strip():
        raise ValueError(text)
    return text


def deployment_parameters(args: dict, declared: dict[str, Callable[[str], Any]]) -> dict[str, Any]:
    """The `parameters { key: ... value { string_value: ... } }` of the model's config.pbtxt, each
    parsed by its declared type. Every declared key must be there and parse (so a misspelt key
    fails too: the one the step reads is missing). Other keys are left alone: Triton's own
    (EXECUTION_ENV_PATH) and an operator's, e.g. one changed to force a reload."""
    config_file = Path(args["model_repository"]) / "config.pbtxt"
    raw = model_parameters(args)
    missing = sorted(set(declared) - set(raw))
    if missing:
        raise DeploymentError(
            f"{config_file}: parameters {missing} missing; this step needs "
            + "; ".join(f"{k!r}: {declared[k].__doc__}" for k in missing)
        )
    values = {}
    for key, parse in declared.items():
        try:
            values[key] = parse(raw[key])
        except ValueError:
            raise DeploymentError(
                f"{config_file}: parameter {key!r} is {raw[key]!r}; it must be {parse.__doc__}"
            ) from None
    return values


# -- parameters that several steps declare ---------------------------------------------------------

# The text detector: square input sides (its dynamic batcher merges tiles of one size) and the tiles
# one request sends at once.
DETECTOR_PARAMETERS = {"buckets": sizes, "tiles_per_request_batch": positive_int}
# The fill models: their input side, the windows one request sends at once, and the model served
# behind each name retouch.inpaint routes to (a deployment may put a bring-your-own model that
# answers the same contract, such as inpaint_custom, behind "unet").
FILL_PARAMETERS = {
    "model_size": positive_int,
    "crops_per_request_batch": positive_int,
    "fast_fill_model": model_name,
    "unet_model": model_name,
    "refine_model": model_name,
}


def detector_options(args: dict, params: dict) -> dict:
    """retouch.text.detect_text's options: the detector export put in the slot (it decides the
    normalisation, so it is read from the slot's model.json), the buckets and the chunk size."""
    return {
        "detector": served_detector(Path(args["model_repository"]).parent),
        "buckets": params["buckets"],
        "max_batch": params["tiles_per_request_batch"],
    }


@dataclass
class StepResult:
    """What a step's run() hands back to the base, which writes the report and counts it."""

    outputs: dict[str, np.ndarray]  # output tensors other than REPORT
    figures: dict  # the step's section of the report
    models: list[str]  # models used, by the name run() called them (their manifests go in the report)
    verdict: str = "accepted"  # looked up in the step's OUTCOMES
    settings: Any = None  # the settings to echo, when they differ from the parsed ones
    # Observations for the operation's metric series (those its SERIES declares).
    seam: tuple[float, bool] | None = None  # (seam score, over the request's threshold)
    tiles: int | None = None
    mask_coverage: float | None = None
    gate: dict = field(default_factory=dict)  # ring_error, hf_ratio (when the quality gate ran)
    line_verdicts: dict[str, int] = field(default_factory=dict)  # detected lines by verdict (LINE_VERDICTS)


class OperationStep:
    """Base of the Triton Python models that serve an operation; see the module's docstring.

    A subclass declares:
      OPERATION   the operation's name (the report's section, the metrics' `operation` label)
      SETTINGS    the settings class SETTINGS is parsed into
      PARAMETERS  config.pbtxt parameter -> type (positive_int, sizes, model_name, ...)
      MODELS      the models it may call; their manifests are read at load time
      OUTCOMES    its verdicts -> what retouch_edits_total counts them as
      SERIES      the metric series it reports beyond edits ("tiled", "masked", "gated", "read")
      FINAL       True when no encode step follows it, so its REPORT is the finished one
    and implements `async run(request, settings) -> StepResult`. `setup(args)` may prepare more at
    load time; self.params holds the parsed parameters, self.served maps a model name to the model
    served under it (a deployment may put another model behind a name: see inpaint_regions).
    """

    OPERATION: str
    SETTINGS: type
    PARAMETERS: dict[str, Callable[[str], Any]] = {}
    MODELS: tuple[str, ...] = ()
    OUTCOMES: dict[str, str] = {"accepted": "accepted"}
    SERIES: tuple[str, ...] = ()
    FINAL = False  # its REPORT goes to the caller (no encode step after it): validated whole

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        bad = {v for v in cls.OUTCOMES.values() if v not in OUTCOMES} | (set(cls.SERIES) - set(SERIES_BY_KIND))
        if bad:
            raise TypeError(f"{cls.__name__}: unknown outcomes or series {sorted(bad)}")

    def initialize(self, args: dict) -> None:
        self.params = deployment_parameters(args, self.PARAMETERS)
        self.served = {m: m for m in self.MODELS}
        self.setup(args)
        self.manifests = {m: read_manifest(args["model_repository"], served) for m, served in self.served.items()}
        self.loop = asyncio.new_event_loop()
        self.metrics = PipelineMetrics([self.OPERATION], **{kind: True for kind in self.SERIES})

    def setup(self, args: dict) -> None:
        """Load-time preparation beyond parameters and manifests (none by default)."""

    async def run(self, request, settings) -> StepResult:
        raise NotImplementedError

    def execute(self, requests):
        return respond_each(requests, self.serve, on_error=partial(self.metrics.edit, self.OPERATION))

    def serve(self, request) -> list:
        report = read_report(request)
        settings = parse_settings(self.SETTINGS, input_bytes(request, "SETTINGS"))
        with timed(report, self.OPERATION):
            result = self.loop.run_until_complete(self.run(request, settings))
        add_step(
            report,
            self.OPERATION,
            result.settings or settings,
            result.figures,
            [self.manifests[m] for m in result.models],
        )
        self.observe(result)
        return [
            *(pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in result.outputs.items()),
            report_tensor(report) if self.FINAL else json_tensor("REPORT", report),
        ]

    def observe(self, result: StepResult) -> None:
        """The request's metrics: its observations, then its outcome."""
        outcome = self.OUTCOMES[result.verdict]  # a verdict the step did not declare fails here, uncounted
        if result.seam is not None:
            self.metrics.seam(self.OPERATION, *result.seam)
        if result.tiles is not None:
            self.metrics.tiles(self.OPERATION, result.tiles)
        if result.mask_coverage is not None:
            self.metrics.mask_coverage(self.OPERATION, result.mask_coverage)
        if result.gate:
            self.metrics.gate(self.OPERATION, result.gate["ring_error"], result.gate["hf_ratio"])
        for verdict, n in result.line_verdicts.items():
            self.metrics.text_lines(self.OPERATION, verdict, n)
        self.metrics.edit(self.OPERATION, outcome)

    def finalize(self) -> None:
        self.loop.close()


class FillingStep(OperationStep):
    """A step that fills holes through the fill models (retouch.inpaint's routes): their parameters
    (FILL_PARAMETERS) and `self.fill`, the `infer` retouch.inpaint.inpaint takes, sending each route's
    windows to the model the config puts behind it."""

    PARAMETERS = FILL_PARAMETERS
    MODELS = (FAST_FILL, UNET, REFINE)

    def setup(self, args: dict) -> None:
        self.served.update(
            {
                FAST_FILL: self.params["fast_fill_model"],
                UNET: self.params["unet_model"],
                REFINE: self.params["refine_model"],
            }
        )
        self.fill = fill_infer(self.params["crops_per_request_batch"], self.served)
