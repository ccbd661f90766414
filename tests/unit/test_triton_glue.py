"""The Triton glue without a server: respond_each's per-request isolation and status codes, BLS
errors keeping their meaning, and the operation-step base, on a stand-in for pb_utils."""

from __future__ import annotations

import asyncio
import json

import fake_pb_utils
import numpy as np
import pytest
from fake_pb_utils import METRICS, InferenceResponse, Request, Tensor, TritonError
from pydantic import BaseModel

fake_pb_utils.install()
from retouch import reports  # noqa: E402
from retouch.errors import MAX_MESSAGE_CHARS, Cancelled, InvalidInput, Overloaded  # noqa: E402
from retouch.text import DetectSettings  # noqa: E402
from retouch.triton import bls, carried_error, current_request, downstream_error, respond_each  # noqa: E402
from retouch.triton.step import OperationStep, StepResult, positive_int  # noqa: E402


def failing_with(exc: Exception):
    def handle(request):
        if request.inputs.get("FAIL") is not None:
            raise exc
        return [Tensor("OUTPUT", np.array([1]))]

    return handle


@pytest.mark.parametrize(
    ("exc", "code", "outcome"),
    [
        (InvalidInput("MASK is 3x2 but the image is 4x4"), TritonError.INVALID_ARG, "rejected"),
        (Cancelled("the client went away"), TritonError.CANCELLED, None),
        (Overloaded("server busy"), TritonError.UNAVAILABLE, None),
        (KeyError("boom"), TritonError.INTERNAL, "failed"),
    ],
)
def test_an_error_fails_only_its_request_with_its_code(exc, code, outcome):
    heard = []
    requests = [Request(), Request(FAIL=np.array([1])), Request()]
    responses = respond_each(requests, failing_with(exc), on_error=heard.append)
    assert [r.has_error() for r in responses] == [False, True, False]
    error = responses[1].error()
    assert error.code() == code
    assert str(exc).strip("'") in error.message()
    assert heard == ([outcome] if outcome else [])  # cancelled and shed work are not the edit's outcome


def test_internal_errors_say_so_and_are_capped_and_logged():
    fake_pb_utils.LOG.clear()
    responses = respond_each([Request()], lambda r: (_ for _ in ()).throw(RuntimeError("x" * 5000)))
    message = responses[0].error().message()
    assert message.startswith("internal error: xxx") and len(message) <= MAX_MESSAGE_CHARS
    assert "5016 characters" in message
    assert fake_pb_utils.LOG and fake_pb_utils.LOG[-1][0] == "error" and "Traceback" in fake_pb_utils.LOG[-1][1]


def test_carry_turns_errors_into_outputs_for_the_next_step():
    """A decode step hands a request's error on in its REPORT instead of failing it."""
    responses = respond_each(
        [Request(FAIL=np.array([1]))],
        failing_with(InvalidInput("not an image")),
        carry=lambda outcome, message: carried_error(outcome, message, PIXELS=np.zeros(0)),
    )
    assert not responses[0].has_error()
    report = {t.name(): t for t in responses[0].output_tensors()}["REPORT"].as_numpy()[0]
    assert json.loads(report) == {"error": {"outcome": "rejected", "message": "not an image"}}


def test_the_request_being_served_is_current_only_while_it_is_served():
    seen = []
    respond_each([Request(), Request()], lambda r: seen.append(current_request.get()) or [])
    assert len(seen) == 2 and seen[0] is not seen[1] and current_request.get() is None


# -- BLS errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "raised"),
    [
        (TritonError.INVALID_ARG, "IMAGE (1, 3, 32, 32) and MASK (1, 1, 16, 32) differ", InvalidInput),
        # What 2.51 really hands on (tests/e2e/test_bls_errors.py): INTERNAL, and the refusal's message,
        # from a Python model (respond_each's) or from Triton's own check of the input's shape.
        (TritonError.INTERNAL, "invalid input: IMAGE (1, 3, 32, 32) and MASK (1, 1, 16, 32) differ", InvalidInput),
        (
            TritonError.INTERNAL,
            "Model inpaint_fixed - Error when running inference: [request id: <id_unknown>] "
            "unexpected shape for input 'IMAGE' for model 'inpaint_fixed'. Expected [-1,3,512,512], "
            "got [2,3,256,256]. ",
            InvalidInput,
        ),
        (TritonError.UNAVAILABLE, "queue full", Overloaded),
        # 2.51 may hand a shed request on as INTERNAL: the scheduler's message still says what happened.
        (TritonError.INTERNAL, "Exceeds maximum queue size", Overloaded),
        (TritonError.INTERNAL, "Request timeout expired", Overloaded),
        (TritonError.CANCELLED, "cancelled", Cancelled),
        (TritonError.INTERNAL, "onnxruntime: out of memory", RuntimeError),
    ],
)
def test_a_downstream_error_keeps_its_meaning(code, message, raised):
    exc = downstream_error("inpaint_custom", TritonError(message, code))
    assert type(exc) is raised
    assert str(exc).startswith("inpaint_custom: ") or str(exc).startswith("server busy")
    assert message.removeprefix("invalid input: ") in str(exc) and "invalid input" not in str(exc)


def test_a_downstream_refusal_reaches_the_caller_as_invalid_argument_and_counts_rejected():
    """A bring-your-own model refusing its input: the step's caller gets INVALID_ARGUMENT."""
    # As it arrives through BLS in 2.51: the refusal's message, the code lost.
    fake_pb_utils.DOWNSTREAM["inpaint_custom"] = lambda inputs: InferenceResponse(
        error=TritonError("invalid input: IMAGE and MASK differ in N, H or W", TritonError.INTERNAL)
    )
    loop = asyncio.new_event_loop()
    heard = []
    responses = respond_each(
        [Request()],
        lambda r: loop.run_until_complete(bls("inpaint_custom", {"IMAGE": np.zeros((1, 3, 4, 4), np.float32)})),
        on_error=heard.append,
    )
    loop.close()
    assert responses[0].error().code() == TritonError.INVALID_ARG
    assert responses[0].error().message() == "invalid input: inpaint_custom: IMAGE and MASK differ in N, H or W"
    assert heard == ["rejected"]


def test_no_bls_call_is_sent_for_a_request_whose_client_has_gone():
    fake_pb_utils.DOWNSTREAM["echo"] = lambda inputs: pytest.fail("sent after the client went away")
    loop = asyncio.new_event_loop()
    responses = respond_each([Request(cancelled=True)], lambda r: loop.run_until_complete(bls("echo", {})))
    loop.close()
    assert responses[0].error().code() == TritonError.CANCELLED


# -- the operation-step base --------------------------------------------------------------------------


class Doubler(OperationStep):
    """A step whose work is one BLS call; its verdict comes from the request."""

    OPERATION = "double"
    SETTINGS = DetectSettings  # any settings class: its defaults go in the report
    PARAMETERS = {"factor": positive_int}
    OUTCOMES = {"fine": "accepted", "unsure": "needs_review"}
    SERIES = ("masked",)

    async def run(self, request, settings):
        out = await bls("twice", {"INPUT": request.inputs["PIXELS"]})
        verdict = request.inputs["VERDICT"][0].decode()
        return StepResult(
            {"PIXELS": out * (self.params["factor"] // 2)},
            {"verdict": verdict},
            models=[],
            verdict=verdict,
            mask_coverage=0.25,
        )


def edits(operation: str) -> dict[str, float]:
    return {
        dict(k[1:])["outcome"]: m.value
        for k, m in METRICS.items()
        if k[0] == "retouch_edits_total" and dict(k[1:])["operation"] == operation
    }


class DoubleSection(BaseModel):
    """The Doubler's report section (every section is declared in retouch.reports)."""

    settings: dict
    verdict: str


def test_the_base_serves_reports_and_counts_each_request_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setitem(reports.SECTIONS, "double", DoubleSection)
    fake_pb_utils.DOWNSTREAM["twice"] = lambda inputs: InferenceResponse([Tensor("OUTPUT", inputs["INPUT"] * 2)])
    config = {"parameters": {"factor": {"string_value": "4"}}}
    step = Doubler()
    step.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path)})
    assert edits("double") == dict.fromkeys(("accepted", "needs_review", "fallback", "rejected", "failed"), 0.0)

    def request(verdict: str, report: dict | None = None):
        return Request(
            PIXELS=np.array([1, 2], np.uint8),
            VERDICT=np.array([verdict.encode()], dtype=object),
            REPORT=np.array([json.dumps(report or {}).encode()], dtype=object),
        )

    carried = {"error": {"outcome": "rejected", "message": "IMAGE is not an image"}}
    responses = step.execute([request("fine"), request("unsure"), request("fine", carried), request("odd")])
    step.finalize()

    outputs = {t.name(): t.as_numpy() for t in responses[0].output_tensors()}
    np.testing.assert_array_equal(outputs["PIXELS"], [4, 8])
    report = json.loads(outputs["REPORT"][0])
    assert report["steps"] == ["double"] and report["double"]["verdict"] == "fine"
    assert "double" in report["timings_ms"]
    assert responses[2].error().code() == TritonError.INVALID_ARG  # the decode step's refusal, carried
    assert responses[3].error().code() == TritonError.INTERNAL  # a verdict the step did not declare
    assert edits("double") == {"accepted": 1, "needs_review": 1, "fallback": 0, "rejected": 1, "failed": 1}
    coverage = METRICS[("retouch_mask_coverage_ratio", ("operation", "double"))].observations
    assert coverage == [0.25, 0.25]


def test_a_step_declaring_an_outcome_the_metrics_do_not_know_is_refused():
    with pytest.raises(TypeError, match="unknown outcomes or series"):
        type("Bad", (OperationStep,), {"OUTCOMES": {"fine": "great"}})


def test_text_line_verdicts_are_counted_from_zero_and_bounded():
    """retouch_text_lines_total: every verdict's series exists at zero once a reading step loads,
    counts what a result reports, and refuses a verdict it does not know (bounded labels)."""
    from retouch.reading import LINE_VERDICTS
    from retouch.triton.metrics import PipelineMetrics

    metrics = PipelineMetrics(["reads"], read=True)

    def lines() -> dict[str, float]:
        return {
            dict(k[1:])["verdict"]: m.value
            for k, m in METRICS.items()
            if k[0] == "retouch_text_lines_total" and dict(k[1:])["operation"] == "reads"
        }

    assert lines() == dict.fromkeys(LINE_VERDICTS, 0.0)
    metrics.text_lines("reads", "unreadable", 2)
    metrics.text_lines("reads", "painted", 3)
    assert lines()["unreadable"] == 2 and lines()["painted"] == 3 and lines()["texture"] == 0
    with pytest.raises(ValueError, match="verdict must be one of"):
        metrics.text_lines("reads", "maybe", 1)
