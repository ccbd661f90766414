"""A small synchronous client: encoded image in, encoded image and JSON report out."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

ImageInput = Union[bytes, Image.Image, np.ndarray]
DEFAULT_URL = "127.0.0.1:8001"


class RetouchError(Exception):
    """The server refused or failed the request; `status` is the gRPC status name."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


class InvalidInputError(RetouchError):
    """INVALID_ARGUMENT: the request was wrong (bad image, setting out of range); do not retry."""


@dataclass
class Result:
    data: bytes  # the encoded output image
    report: dict[str, Any]

    @property
    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.data))


def to_bytes(image: ImageInput) -> bytes:
    """Encoded bytes pass through untouched; arrays and PIL images are sent as lossless PNG."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _bytes_input(name: str, value: bytes) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value], dtype=np.object_))
    return tensor


class RetouchClient:
    def __init__(self, url: str = DEFAULT_URL, timeout_s: float = 120.0):
        self.url = url
        self.timeout_s = timeout_s
        self._grpc = grpcclient.InferenceServerClient(url)

    def close(self) -> None:
        self._grpc.close()

    def __enter__(self) -> "RetouchClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def upscale(self, image: ImageInput, **settings: Any) -> Result:
        """Upscale x2 or x4. Settings: scale, mode, tile, overlap, blend, format, quality."""
        return self._call("upscale", image, settings)

    def _call(self, model: str, image: ImageInput, settings: dict) -> Result:
        inputs = [_bytes_input("IMAGE", to_bytes(image))]
        if settings:
            inputs.append(_bytes_input("SETTINGS", json.dumps(settings).encode()))
        outputs = [grpcclient.InferRequestedOutput("OUTPUT_IMAGE"), grpcclient.InferRequestedOutput("REPORT")]
        try:
            response = self._grpc.infer(model, inputs, outputs=outputs, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            status = exc.status()
            cls = InvalidInputError if status == "StatusCode.INVALID_ARGUMENT" else RetouchError
            raise cls(exc.message(), status) from None
        return Result(data=bytes(response.as_numpy("OUTPUT_IMAGE")[0]),
                      report=json.loads(response.as_numpy("REPORT")[0]))
