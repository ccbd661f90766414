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


async def in_width_batches(
    call: Callable[[np.ndarray], Awaitable[np.ndarray]],
    inputs: list[np.ndarray | None],
    step: int,
    max_batch: int,
) -> list[np.ndarray | None]:
    """Line crops of different widths (C x H x W float32 each, None to skip) through one model: each
    is zero-padded on the right to a multiple of `step`, crops of one padded width go out as one
    batch (in_chunks), all widths at once. -> each input's output row (None where the input was)."""
    by_width: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        if x is not None:
            by_width.setdefault(-(-x.shape[2] // step) * step, []).append(i)
    outputs: list[np.ndarray | None] = [None] * len(inputs)

    async def run(width: int, members: list[int]) -> None:
        first = inputs[members[0]]
        batch = np.zeros((len(members), first.shape[0], first.shape[1], width), np.float32)
        for row, i in enumerate(members):
            batch[row, :, :, : inputs[i].shape[2]] = inputs[i]
        out = await in_chunks(call, (batch,), max_batch)
        for row, i in enumerate(members):
            outputs[i] = out[row]

    await asyncio.gather(*(run(w, m) for w, m in by_width.items()))
    return outputs
