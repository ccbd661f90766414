"""The synchronous client. Thread-safe: concurrent calls share one gRPC channel."""

from __future__ import annotations

import time
from typing import Any, Optional

import tritonclient.grpc as grpcclient

from retouch_client.core import ClientCore, Health, Result, Sleep, Steps, Urls, run_steps
from retouch_client.images import ImageInput
from retouch_client.operations import Operation


class RetouchClient(ClientCore):
    __doc__ = ClientCore.__doc__

    def __init__(self, url: Optional[Urls] = None, **options: Any):
        super().__init__(url, **options)
        # One channel per endpoint; calls pick one (core.Endpoints).
        self._tritons = [grpcclient.InferenceServerClient(url, **self._tls) for url in self.urls]

    def call(
        self, operation: Operation, image: ImageInput, mask: Optional[ImageInput] = None, /, **settings: Any
    ) -> Result:
        """Run `operation` on `image` (PIL image, HxWx3 uint8 array, or encoded bytes)."""
        return self._run(self._call_steps(operation, image, mask, settings))

    def health(self) -> Health:
        return self._run(self._health_steps())

    def close(self) -> None:
        """Unregister and remove the shared-memory regions, then close the channel."""
        try:
            self._run(self._close_steps())
        finally:
            for triton in self._tritons:
                triton.close()

    def __enter__(self) -> RetouchClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, steps: Steps):
        return run_steps(steps, self._perform)

    def _perform(self, step):
        if isinstance(step, Sleep):
            return time.sleep(step.seconds)
        return getattr(self._tritons[step.endpoint], step.method)(**step.kwargs)
