"""A small stand-in for triton_python_backend_utils, which exists only inside Triton's Python stub,
so the glue in retouch.triton can be unit tested. It mirrors the parts of the 2.51 API the glue uses
(TritonError's codes have the stub's values); `install()` puts it in sys.modules.

Downstream models (BLS) are scripted: set DOWNSTREAM[model] = callable(inputs) -> InferenceResponse.
Metrics land in METRICS[(family name, sorted labels)], shared as Triton shares them between models.
"""

from __future__ import annotations

import sys
import types

import numpy as np


class TritonError(Exception):
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, message: str, code: int = INTERNAL):
        super().__init__(message)
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    def __init__(self, name: str, value: np.ndarray):
        self._name, self._value = name, np.asarray(value)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._value


class InferenceResponse:
    def __init__(self, output_tensors=None, error: TritonError | None = None):
        self._outputs, self._error = list(output_tensors or []), error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs


class Request:
    """What Triton hands execute(): inputs by name; cancelled when the client has gone."""

    def __init__(self, cancelled: bool = False, **inputs: np.ndarray):
        self.inputs, self.cancelled = inputs, cancelled

    def is_cancelled(self) -> bool:
        return self.cancelled


DOWNSTREAM: dict = {}
METRICS: dict = {}
LOG: list[tuple[str, str]] = []


class InferenceRequest:
    def __init__(self, model_name: str, requested_output_names: list[str], inputs: list[Tensor]):
        self.model_name, self.inputs = model_name, {t.name(): t.as_numpy() for t in inputs}

    async def async_exec(self) -> InferenceResponse:
        return DOWNSTREAM[self.model_name](self.inputs)


def get_input_tensor_by_name(request: Request, name: str) -> Tensor | None:
    return Tensor(name, request.inputs[name]) if name in request.inputs else None


def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
    return next((t for t in response.output_tensors() if t.name() == name), None)


class Logger:
    @staticmethod
    def log_error(message: str) -> None:
        LOG.append(("error", message))

    @staticmethod
    def log_info(message: str) -> None:
        LOG.append(("info", message))

    @staticmethod
    def log_warn(message: str) -> None:
        LOG.append(("warn", message))


class Metric:
    def __init__(self):
        self.value, self.observations = 0.0, []

    def increment(self, n: float) -> None:
        self.value += n

    def observe(self, value: float) -> None:
        self.observations.append(value)


class MetricFamily:
    COUNTER, GAUGE, HISTOGRAM = "COUNTER", "GAUGE", "HISTOGRAM"

    def __init__(self, name: str, description: str, kind: str):
        self.name = name

    def Metric(self, labels: dict, buckets=None) -> Metric:  # the stub spells it so
        return METRICS.setdefault((self.name, *sorted(labels.items())), Metric())


def install() -> types.ModuleType:
    """This module as triton_python_backend_utils (idempotent)."""
    return sys.modules.setdefault("triton_python_backend_utils", sys.modules[__name__])
