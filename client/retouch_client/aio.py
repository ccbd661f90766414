"""The asyncio client (tritonclient.grpc.aio): the same methods as RetouchClient, awaited.
Use it from one event loop."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import tritonclient.grpc.aio as aiogrpcclient
from tritonclient.utils import InferenceServerException

from retouch_client.core import ClientCore, Health, Result, Sleep, Steps, Urls
from retouch_client.images import ImageInput
from retouch_client.operations import Operation


class AsyncRetouchClient(ClientCore):
    __doc__ = ClientCore.__doc__

    def __init__(self, url: Optional[Urls] = None, **options: Any):
        super().__init__(url, **options)
        # One channel per endpoint; calls pick one (core.Endpoints).
        self._tritons = [aiogrpcclient.InferenceServerClient(url, **self._tls) for url in self.urls]

    async def call(
        self, operation: Operation, image: ImageInput, mask: Optional[ImageInput] = None, /, **settings: Any
    ) -> Result:
        """Run `operation` on `image` (PIL image, HxWx3 uint8 array, or encoded bytes)."""
        return await self._run(self._call_steps(operation, image, mask, settings))

    async def health(self) -> Health:
        return await self._run(self._health_steps())

    async def close(self) -> None:
        """Unregister and remove the shared-memory regions, then close the channel."""
        try:
            await self._run(self._close_steps())
        finally:
            for triton in self._tritons:
                await triton.close()

    async def __aenter__(self) -> AsyncRetouchClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _run(self, steps: Steps):
        value, error = None, None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as done:
                return done.value
            value, error = None, None
            try:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    value = await getattr(self._tritons[step.endpoint], step.method)(**step.kwargs)
            except InferenceServerException as exc:
                error = exc
