"""Split a batch into chunks a model accepts and send them all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np


async def in_chunks(
    call: Callable[..., Awaitable[np.ndarray]], arrays: tuple[np.ndarray, ...], max_batch: int
) -> np.ndarray:
    """call(*chunk) on slices of at most max_batch along axis 0, concurrently; results concatenated.

    All chunks go out together, so the model's dynamic batcher can merge them with other
    requests' work.
    """
    n = len(arrays[0])
    # Every chunk is awaited even when one fails: a BLS call left pending would keep its response
    # (and the model instance that made it) alive after the request was answered, which blocked
    # unloading at shutdown. The first error is raised once all are back.
    parts = await asyncio.gather(
        *(call(*(a[i : i + max_batch] for a in arrays)) for i in range(0, n, max_batch)), return_exceptions=True
    )
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    return np.concatenate(parts)
