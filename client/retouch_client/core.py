"""The one call path, written once for the sync and the asyncio client.

Each call is a generator of steps: it yields `Rpc` (a tritonclient method, by name: the sync and
the aio clients share the names) and `Sleep` steps and receives their results; the sync client runs
them directly, the async client awaits them. Request building, deadlines, retries, shared memory,
errors and metrics therefore live here and nowhere else.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional, Union

import numpy as np
from PIL import Image
from prometheus_client import CollectorRegistry
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from retouch_client.errors import DeadlineExceededError, RetouchError, SharedMemoryError, error_from_status
from retouch_client.images import ImageInput, encode_png, to_encoded, to_mask, to_pixels
from retouch_client.metrics import metrics_for
from retouch_client.operations import OPERATIONS, Operation, Operations
from retouch_client.shm import SharedMemoryPool, Slot

DEFAULT_URL = "127.0.0.1:8001"
# Deadline of each call (retries and backoff included), for the library and the CLI alike: long
# enough for a large photo-mode upscale on CPU.
DEFAULT_TIMEOUT_S = 300.0
RAW_FORMAT = "raw"


def default_url() -> str:
    return os.environ.get("RETOUCH_URL", DEFAULT_URL)


Urls = Union[str, Sequence[str]]


def parse_urls(url: Urls) -> list[str]:
    """One endpoint or several: a list, or one string of host:port separated by commas."""
    urls = [u.strip() for u in (url.split(",") if isinstance(url, str) else url)]
    urls = [u for u in urls if u]
    if not urls:
        raise ValueError("no server address: pass url= or set RETOUCH_URL (host:port[,host:port...])")
    if len(set(urls)) != len(urls):
        raise ValueError(f"an endpoint is listed twice: {urls}")
    return urls


class Endpoints:
    """Where each call goes when there are several servers: round-robin over the ones not known to
    be down. An endpoint that answered UNAVAILABLE (refused, reset, shutting down) is skipped for
    `cooldown_s`, unless every endpoint is, then the one that failed longest ago is tried."""

    def __init__(self, urls: list[str], cooldown_s: float):
        self.urls, self.cooldown_s = urls, cooldown_s
        self._down_until = [0.0] * len(urls)
        self._next = 0
        self._lock = threading.Lock()

    def pick(self, tried: set[int]) -> int:
        """The next endpoint for an attempt, not one already tried in this round if avoidable."""
        now = time.monotonic()
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.urls)
            order = [(start + i) % len(self.urls) for i in range(len(self.urls))]
            fresh = [i for i in order if i not in tried] or order
            up = [i for i in fresh if self._down_until[i] <= now]
            return up[0] if up else min(fresh, key=lambda i: self._down_until[i])

    def down(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = time.monotonic() + self.cooldown_s

    def up(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = 0.0


@dataclass(frozen=True)
class Rpc:
    method: str  # a method of tritonclient.grpc(.aio).InferenceServerClient
    kwargs: dict
    endpoint: int = 0  # which server (index into the client's urls)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Steps = Generator[Any, Any, Any]


def run_steps(steps: Steps, perform: Callable[[Any], Any]) -> Any:
    """Drive a call's steps synchronously: perform(step) answers each Rpc or Sleep; an
    InferenceServerException it raises is thrown into the call (which may retry). The asyncio client
    drives them the same way, awaiting instead."""
    value, error = None, None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as done:
            return done.value
        value, error = None, None
        try:
            value = perform(step)
        except InferenceServerException as exc:
            error = exc


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, only on retryable statuses."""

    attempts: int = 4  # in all, the first one included
    backoff_s: float = 0.2  # before the second attempt; doubles after each
    max_backoff_s: float = 5.0

    def delay(self, retry: int) -> float:
        """Pause before retry number `retry` (1, 2, ...); jitter spreads callers that failed together."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Result:
    """What an operation returned: the output image (encoded by the server, or raw pixels when the
    call went through shared memory or raw_pixels), the report, and the operation's own outputs."""

    report: dict
    encoded: Optional[bytes] = None
    raw: Optional[np.ndarray] = None
    outputs: dict = field(default_factory=dict)

    @cached_property
    def data(self) -> bytes:
        """Encoded image bytes: the server's, or (for raw results) PNG encoded here."""
        return self.encoded if self.encoded is not None else encode_png(Image.fromarray(self.raw))

    @cached_property
    def pixels(self) -> np.ndarray:
        """HxWx3 uint8 RGB."""
        if self.raw is not None:
            return self.raw
        return np.asarray(Image.open(io.BytesIO(self.encoded)).convert("RGB"))

    @property
    def image(self) -> Image.Image:
        if self.raw is not None:
            return Image.fromarray(self.raw)
        return Image.open(io.BytesIO(self.encoded))


@dataclass(frozen=True)
class Health:
    url: str
    live: bool
    ready: bool
    operations: dict  # operation name -> ready

    @property
    def ok(self) -> bool:
        return self.live and self.ready and all(self.operations.values())


def _bytes_input(name: str, value: bytes) -> InferInput:
    tensor = InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value], dtype=np.object_))
    return tensor


class ClientCore(Operations):
    """Settings and steps shared by RetouchClient and AsyncRetouchClient.

    url: host:port of Triton's gRPC endpoint (default: $RETOUCH_URL, else 127.0.0.1:8001), or several
        (a list, or "host1:8001,host2:8001"): calls are spread round-robin over them and fail over
        to the next one on UNAVAILABLE or RESOURCE_EXHAUSTED, without waiting.
    timeout_s: deadline of each call, retries, failover and backoff included.
    retry: RetryPolicy; RetryPolicy(attempts=1) turns retries off (failover to another endpoint stays).
    failover_cooldown_s: how long an endpoint that answered UNAVAILABLE is left out of the rotation.
    shared_memory: send and receive raw pixels through system shared memory (client and server on
        one host; the server must allow it, see docs/client.md).
    raw_pixels: send and receive raw pixels over gRPC instead of encoded bytes.
    registry: prometheus_client registry for the client metrics (default: the global one).
    headers: extra gRPC metadata sent with every request.
    ssl, root_certificates, private_key, certificate_chain: TLS, passed to tritonclient as is.
    """

    def __init__(
        self,
        url: Optional[Urls] = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        shared_memory: bool = False,
        raw_pixels: bool = False,
        registry: Optional[CollectorRegistry] = None,
        headers: Optional[dict] = None,
        ssl: bool = False,
        root_certificates: Optional[str] = None,
        private_key: Optional[str] = None,
        certificate_chain: Optional[str] = None,
        failover_cooldown_s: float = 5.0,
    ):
        self.urls = parse_urls(url or default_url())
        self.url = ",".join(self.urls)
        if shared_memory and len(self.urls) > 1:
            raise ValueError("shared_memory=True needs one server on this host, not several endpoints")
        self.endpoints = Endpoints(self.urls, failover_cooldown_s)
        self.timeout_s = timeout_s
        self.retry = retry
        self.shared_memory = shared_memory
        self.raw_pixels = raw_pixels or shared_memory
        self.headers = headers
        self.metrics = metrics_for(registry)
        self._tls = dict(
            ssl=ssl, root_certificates=root_certificates, private_key=private_key, certificate_chain=certificate_chain
        )
        self._shm = SharedMemoryPool()

    # -- the call path ---------------------------------------------------------------------------

    def _call_steps(self, operation: Operation, image: ImageInput, mask: Optional[ImageInput], settings: dict) -> Steps:
        started = time.monotonic()
        error_code = None
        slot = None
        try:
            settings = self._effective_settings(operation, settings)
            inputs, outputs = [], [InferRequestedOutput("REPORT")]
            if self.shared_memory:
                pixels = to_pixels(image)
                scale = operation.output_scale(settings)
                out_shape = (pixels.shape[0] * scale, pixels.shape[1] * scale, 3)
                out_bytes = int(np.prod(out_shape)) if operation.returns_image else 1
                slot = yield from self._checkout(pixels.nbytes, out_bytes)
                slot.input.write(pixels)
                inputs.append(InferInput("PIXELS", list(pixels.shape), "UINT8"))
                inputs[-1].set_shared_memory(slot.input.name, pixels.nbytes)
                if operation.returns_image:
                    outputs.append(InferRequestedOutput("OUTPUT_PIXELS"))
                    outputs[-1].set_shared_memory(slot.output.name, slot.output.size)
            elif self.raw_pixels:
                pixels = to_pixels(image)
                inputs.append(InferInput("PIXELS", list(pixels.shape), "UINT8"))
                inputs[-1].set_data_from_numpy(pixels)
                if operation.returns_image:
                    outputs.append(InferRequestedOutput("OUTPUT_PIXELS"))
            else:
                inputs.append(_bytes_input("IMAGE", to_encoded(image)))
                if operation.returns_image:
                    outputs.append(InferRequestedOutput("OUTPUT_IMAGE"))
            if mask is not None:
                inputs.append(_bytes_input("MASK", to_mask(mask)))
            if settings:
                inputs.append(_bytes_input("SETTINGS", json.dumps(settings).encode()))
            outputs += [InferRequestedOutput(name) for name in operation.outputs]

            response = yield from self._infer_with_retries(operation, inputs, outputs, started)
            return self._result(operation, response, slot)
        except RetouchError as exc:
            error_code = exc.code
            raise
        finally:
            if slot is not None:
                self._shm.checkin(slot)
            self.metrics.observe(operation.name, time.monotonic() - started, error_code)

    def _effective_settings(self, operation: Operation, settings: dict) -> dict:
        if not self.raw_pixels or not operation.returns_image:
            return dict(settings)
        # The output encoding sits in the settings part of the step that returns the image.
        part = settings.get(operation.output_part, {}) if operation.output_part else settings
        if part.get("format", RAW_FORMAT) != RAW_FORMAT:
            raise ValueError(
                f"format={part['format']!r} asks for encoded output, but this client "
                f"moves raw pixels (shared_memory/raw_pixels); encode Result.image yourself"
            )
        part = {**part, "format": RAW_FORMAT}
        return {**settings, operation.output_part: part} if operation.output_part else part

    def _infer_with_retries(self, operation: Operation, inputs: list, outputs: list, started: float) -> Steps:
        """Attempts until one succeeds, an error is not retryable, the retries are spent or the
        deadline passes. A retryable error moves on to an endpoint not yet tried in this round at
        once (failover); only when all have been tried does it back off, and the round starts again."""
        deadline = started + self.timeout_s
        sent, retries, tried = 0, 0, set()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # preparing the request (or backing off) took it all
                raise DeadlineExceededError(
                    self._deadline_message(operation, sent), "StatusCode.DEADLINE_EXCEEDED", sent
                )
            index = self.endpoints.pick(tried) if len(self.urls) > 1 else 0
            sent += 1
            try:
                response = yield Rpc(
                    "infer",
                    dict(
                        model_name=operation.name,
                        inputs=inputs,
                        outputs=outputs,
                        client_timeout=remaining,
                        headers=self.headers,
                    ),
                    index,
                )
                self.endpoints.up(index)
                return response
            except InferenceServerException as exc:
                error = self._error(operation, exc, sent, self.urls[index])
            if not error.retryable:
                raise error
            if error.code == "UNAVAILABLE":
                self.endpoints.down(index)
            tried.add(index)
            if len(tried) < len(self.urls):  # another server has not been asked yet: go now
                self.metrics.retries.labels(operation.name, error.code).inc()
                continue
            retries += 1
            delay = self.retry.delay(retries)
            if retries >= self.retry.attempts or time.monotonic() + delay >= deadline:
                raise error
            self.metrics.retries.labels(operation.name, error.code).inc()
            tried = set()
            yield Sleep(delay)

    def _error(
        self, operation: Operation, exc: InferenceServerException, attempt: int, url: Optional[str] = None
    ) -> RetouchError:
        status, message = exc.status(), exc.message()
        code = (status or "").rsplit(".", 1)[-1]
        if code == "DEADLINE_EXCEEDED":
            message = self._deadline_message(operation, attempt)
        elif code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
            message = f"{operation.name} at {url or self.url}: {code} after {attempt} attempt(s): {message}"
        return error_from_status(message, status, attempt)

    def _deadline_message(self, operation: Operation, attempts: int) -> str:
        return f"{operation.name} did not finish within the {self.timeout_s}s deadline ({attempts} attempt(s))"

    def _result(self, operation: Operation, response, slot: Optional[Slot]) -> Result:
        report = json.loads(response.as_numpy("REPORT")[0])
        outputs = {name: response.as_numpy(name) for name in operation.outputs}
        if not operation.returns_image:
            return Result(report, outputs=outputs)
        if slot is not None:
            shape = tuple(response.get_output("OUTPUT_PIXELS").shape)
            return Result(report, raw=slot.output.read(shape), outputs=outputs)
        if self.raw_pixels:
            return Result(report, raw=response.as_numpy("OUTPUT_PIXELS"), outputs=outputs)
        return Result(report, encoded=bytes(response.as_numpy("OUTPUT_IMAGE")[0]), outputs=outputs)

    # -- shared memory ---------------------------------------------------------------------------

    def _checkout(self, input_bytes: int, output_bytes: int) -> Steps:
        slot, outgrown = self._shm.checkout(input_bytes, output_bytes)
        yield from self._release_regions(outgrown)
        try:
            for region in slot.regions:
                if not region.registered:
                    yield Rpc(
                        "register_system_shared_memory",
                        dict(
                            name=region.name,
                            key=region.key,
                            byte_size=region.size,
                            headers=self.headers,
                            client_timeout=self.timeout_s,
                        ),
                    )
                    region.registered = True
        except InferenceServerException as exc:
            self._shm.checkin(slot)  # unregistered regions are registered again on the next call
            # Triton answers a locked API with UNAVAILABLE, which reads as "retry": it is a refusal.
            status = "StatusCode.PERMISSION_DENIED" if "restricted" in str(exc.message()) else exc.status()
            raise SharedMemoryError(
                f"the server at {self.url} refused to register shared memory ({exc.message()}); it "
                f"must run on this host with client shared memory allowed (RETOUCH_ALLOW_SHM=1)",
                status,
            ) from None
        return slot

    def _release_regions(self, regions: list) -> Steps:
        for region in regions:
            # Triton releases a region a moment after the response that used it; until then it
            # refuses to unregister it ("currently in use"), so that is retried briefly.
            for wait in (0.01, 0.05, 0.2, 0.5, 1.0, None):
                if not region.registered:
                    break
                try:
                    yield Rpc(
                        "unregister_system_shared_memory",
                        dict(name=region.name, headers=self.headers, client_timeout=self.timeout_s),
                    )
                    region.registered = False
                except InferenceServerException as exc:
                    if "in use" not in str(exc.message()) or wait is None:
                        break  # the server is gone (and its mapping with it), or will not let go
                    yield Sleep(wait)
            region.destroy()

    def _close_steps(self) -> Steps:
        yield from self._release_regions(self._shm.drain())

    # -- health ----------------------------------------------------------------------------------

    def _health_steps(self) -> Steps:
        """Health of the first endpoint that answers, in the order given."""
        timeout = dict(headers=self.headers, client_timeout=min(self.timeout_s, 10.0))
        for index, url in enumerate(self.urls):
            try:
                live = yield Rpc("is_server_live", timeout, index)
                ready = yield Rpc("is_server_ready", timeout, index)
                operations = {}
                for operation in OPERATIONS:
                    operations[operation.name] = yield Rpc(
                        "is_model_ready", dict(model_name=operation.name, **timeout), index
                    )
            except InferenceServerException as exc:
                error = error_from_status(f"{url}: {exc.message()}", exc.status())
                if index == len(self.urls) - 1:
                    raise error from None
                continue
            return Health(url, live, ready, operations)
