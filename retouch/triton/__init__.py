"""Thin glue between Triton's Python backend and the pure operations.

Imported only inside the Python backend stub, where triton_python_backend_utils exists.
"""

from __future__ import annotations

import contextvars
import json
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch import __version__, reports
from retouch.batching import in_chunks
from retouch.codecs import decode_mask
from retouch.errors import Cancelled, InvalidInput, Overloaded, short
from retouch.glyphs import SEGMENTER
from retouch.reading import RECOGNIZER
from retouch.settings import OutputSettings
from retouch.text import MODEL_NAME


def model_parameters(args: dict) -> dict[str, str]:
    """The `parameters { key: ... value { string_value: ... } }` block of config.pbtxt."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def read_manifest(model_repository: str, model: str, version: str = "1") -> dict:
    """model.json written by export/ beside a model's weights: sources, sha256s, license."""
    path = Path(model_repository).parent / model / version / "model.json"
    manifest = json.loads(path.read_text())
    return {"name": model, "version": version, "onnx_sha256": manifest["onnx_sha256"]}


def input_bytes(request, name: str) -> bytes | None:
    """First element of a BYTES input, or None when the optional input was not sent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise InvalidInput(f"input {name} must hold exactly one element, got {values.size}")
    value = values[0]
    return value if isinstance(value, bytes) else str(value).encode()


def input_array(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise InvalidInput(f"missing input {name}")
    return tensor.as_numpy()


def decode_image_mask(data: bytes, image_shape: tuple[int, ...], max_pixels: int) -> np.ndarray:
    """An encoded mask sent with an image (clean's MASK): decoded, and refused unless it has the
    image's size, as inpaint refuses one (a 1x1 or 320x1 mask would otherwise broadcast)."""
    mask = decode_mask(data, max_pixels)
    if mask.shape != tuple(image_shape[:2]):
        raise InvalidInput(
            f"MASK is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{image_shape[1]}x{image_shape[0]}; send a mask of the image's size"
        )
    return mask


def bytes_tensor(name: str, value: bytes) -> pb_utils.Tensor:
    return pb_utils.Tensor(name, np.array([value], dtype=np.object_))


def json_tensor(name: str, value: dict) -> pb_utils.Tensor:
    return bytes_tensor(name, json.dumps(value, sort_keys=True).encode())


def read_report(request) -> dict:
    """The report the previous step wrote. A decode step that could not decode the request hands
    its error on in the report (see carried_error), and it is raised here, in the operation's own
    step, so that the operation counts it (retouch_edits_total) and the caller gets its message."""
    raw = input_bytes(request, "REPORT")
    report = json.loads(raw) if raw else {}
    error = report.get("error")
    if error:
        if error.get("outcome") == "rejected":
            raise InvalidInput(error["message"])
        raise RuntimeError(error["message"])
    return report


def carried_error(outcome: str, message: str, **outputs) -> list:
    """A decode step's response for a request it could not decode: empty outputs and a report that
    carries the error on to the operation's step (read_report raises it there)."""
    return [
        *(pb_utils.Tensor(name, value) for name, value in outputs.items()),
        json_tensor("REPORT", {"error": {"outcome": outcome, "message": message}}),
    ]


def add_step(report: dict, step: str, settings, figures: dict, models: list[dict]) -> None:
    """Record one pipeline step in the request's report.

    The report has a section per step (its effective settings and figures, validated against
    retouch.reports), the steps in order, every model version used, and the output encoding the
    last step asked for, which encode_image reads."""
    report.setdefault("steps", []).append(step)
    report[step] = reports.section(step, settings.to_dict(), figures)
    report.setdefault("models", []).extend(models)
    if isinstance(settings, OutputSettings):  # steps that return no image (detect_text) have no encoding
        report["output"] = {
            "format": settings.format,
            "quality": settings.quality,
            "keep_metadata": settings.keep_metadata,
        }
    report["retouch_version"] = __version__


def report_tensor(report: dict) -> pb_utils.Tensor:
    """The finished REPORT an operation returns, validated against its declared model."""
    return json_tensor("REPORT", reports.finished(report))


@contextmanager
def timed(report: dict, step: str):
    """Adds the step's wall time, in ms, to report['timings_ms']."""
    start = time.perf_counter()
    yield
    report.setdefault("timings_ms", {})[step] = round((time.perf_counter() - start) * 1e3, 2)


# The request a shim is serving right now (respond_each sets it), so that BLS calls made for it can
# check whether its client is still there (request.is_cancelled()) before sending more work.
current_request: contextvars.ContextVar = contextvars.ContextVar("current_request", default=None)


def check_cancelled() -> None:
    """Raise Cancelled if the client of the request being served has gone (deadline passed or call
    cancelled): the remaining BLS calls are not sent, so abandoned work stops early."""
    request = current_request.get()
    if request is not None and request.is_cancelled():
        raise Cancelled("the client cancelled the request or its deadline passed; work stopped")


def respond_each(
    requests: Iterable,
    handle: Callable,
    on_error: Callable[[str], None] | None = None,
    carry: Callable[[str, str], list] | None = None,
) -> list:
    """Run handle(request) -> list of output tensors for each request.

    A request's InvalidInput becomes INVALID_ARGUMENT with its message; Cancelled becomes CANCELLED;
    Overloaded becomes UNAVAILABLE (retryable);
    anything else becomes INTERNAL. Either way only that request fails, and the model keeps
    serving. Messages are capped (retouch.errors.MAX_MESSAGE_CHARS). on_error, if given, hears
    "rejected" or "failed" for each, so the shim can count it (PipelineMetrics.edit). carry, if
    given, turns an error into outputs instead (carry(outcome, message) -> tensors): a decode step
    hands the error on to the operation's step, which counts it (see read_report).
    """
    responses = []
    for request in requests:
        token = current_request.set(request)
        try:
            responses.append(pb_utils.InferenceResponse(output_tensors=handle(request)))
        except InvalidInput as exc:
            responses.append(error_response(carry, "rejected", str(exc), pb_utils.TritonError.INVALID_ARG))
            if on_error:
                on_error("rejected")
        except Cancelled as exc:
            responses.append(error_response(None, "cancelled", str(exc), pb_utils.TritonError.CANCELLED))
        except Overloaded as exc:
            responses.append(error_response(None, "overloaded", str(exc), pb_utils.TritonError.UNAVAILABLE))
        except Exception as exc:  # noqa: BLE001 - reported to the caller, logged for on-call
            pb_utils.Logger.log_error(short(traceback.format_exc(), 4000))
            responses.append(error_response(carry, "failed", f"internal error: {exc}", pb_utils.TritonError.INTERNAL))
            if on_error:
                on_error("failed")
        finally:
            current_request.reset(token)
    return responses


def error_response(carry, outcome: str, message: str, code) -> pb_utils.InferenceResponse:
    """The request's error, its message capped; a refusal's starts with REFUSED (see bls)."""
    if carry is not None:
        return pb_utils.InferenceResponse(output_tensors=carry(outcome, short(message)))
    if code == pb_utils.TritonError.INVALID_ARG:
        message = REFUSED + message
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(short(message), code))


# What Triton's scheduler says when it sheds work: the model's queue was full, or the work waited
# past the queue's timeout.
SHED_MESSAGES = ("Exceeds maximum queue size", "Request timeout expired")
# How a refusal's message starts (respond_each writes it), and what Triton itself says when a model
# refuses an input's shape: Triton 2.51 hands every BLS error on as INTERNAL (checked with a real
# server), so a refusal by a model this step calls is recognised by its message.
REFUSED = "invalid input: "
REFUSAL_MESSAGES = ("unexpected shape for input",)


def downstream_error(model: str, error) -> Exception:
    """The exception a failed BLS call raises in this step, keeping what the error means for the
    caller: the model refused its input (INVALID_ARGUMENT, counted as rejected), shed the work
    (UNAVAILABLE, retryable), the client went away (CANCELLED), or anything else (INTERNAL). By the
    error's code, or, as 2.51 loses BLS codes, by its message."""
    text = error.message()
    code = error.code()
    if code == pb_utils.TritonError.UNAVAILABLE or any(m in text for m in SHED_MESSAGES):
        return Overloaded(f"server busy, retry later ({model}: {short(text, 200)})")
    if code == pb_utils.TritonError.INVALID_ARG or any(m in text for m in (REFUSED, *REFUSAL_MESSAGES)):
        return InvalidInput(f"{model}: {short(text.partition(REFUSED)[2] or text, 200)}")
    if code == pb_utils.TritonError.CANCELLED:
        return Cancelled(f"{model}: {short(text, 200)}")
    return RuntimeError(f"{model}: {short(text, 200)}")


async def bls(model: str, inputs: dict[str, np.ndarray], output: str = "OUTPUT") -> np.ndarray:
    """Call another model of this server (async BLS) and return one output."""
    check_cancelled()
    request = pb_utils.InferenceRequest(
        model_name=model, requested_output_names=[output], inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()]
    )
    response = await request.async_exec()
    if response.has_error():
        raise downstream_error(model, response.error())
    return pb_utils.get_output_tensor_by_name(response, output).as_numpy()


def fill_infer(max_batch: int, served: dict[str, str]):
    """Inference for the inpainting models: (model, images, masks[, bases]) -> filled images, sent in
    chunks the models accept, to the model `served` puts behind each name retouch.inpaint uses."""

    async def infer(model: str, images: np.ndarray, masks: np.ndarray, bases: np.ndarray | None = None) -> np.ndarray:
        named = {"IMAGE": images, "MASK": masks} | ({} if bases is None else {"BASE": bases})

        async def call(*arrays):
            return await bls(served[model], dict(zip(named, arrays)))

        return await in_chunks(call, tuple(named.values()), max_batch)

    return infer


def model_infer(model: str):
    """Inference on a model of this server that maps INPUT to OUTPUT (the detectors, the glyph
    segmenter, the recogniser): batch -> its output."""

    async def infer(batch: np.ndarray) -> np.ndarray:
        return await bls(model, {"INPUT": batch})

    return infer


detector_infer = model_infer(MODEL_NAME)
segmenter_infer = model_infer(SEGMENTER)
recognizer_infer = model_infer(RECOGNIZER)
