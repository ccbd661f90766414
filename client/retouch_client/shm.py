"""System shared-memory regions for a client on the server's host: created and registered once,
reused by later calls, grown when an image needs more, unregistered and removed on close.

Regions come from the standard library (POSIX shm_open), so no compiled helper is needed; Triton
maps them by key. One slot (an input and an output region) serves one call at a time; concurrent
calls get slots of their own.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

MIN_REGION_BYTES = 1 << 20


def region_size(needed: int) -> int:
    """Powers of two, so a stream of similar images does not re-register on every call."""
    return max(MIN_REGION_BYTES, 1 << max(0, needed - 1).bit_length())


class Region:
    def __init__(self, size: int):
        # The name is also the region's name on the server, so it must be unique there.
        self._shm = shared_memory.SharedMemory(
            name=f"retouch_{os.getpid()}_{secrets.token_hex(6)}", create=True, size=size
        )
        self.name = self._shm.name
        self.key = "/" + self._shm.name  # what shm_open (and Triton) calls it
        self.size = size
        self.registered = False

    def write(self, array: np.ndarray) -> None:
        np.ndarray(array.shape, array.dtype, buffer=self._shm.buf)[...] = array

    def read(self, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        """A copy: the region is reused by the next call."""
        return np.ndarray(shape, dtype, buffer=self._shm.buf).copy()

    def destroy(self) -> None:
        self._shm.close()
        self._shm.unlink()


@dataclass
class Slot:
    input: Region | None = None
    output: Region | None = None

    @property
    def regions(self) -> list[Region]:
        return [r for r in (self.input, self.output) if r is not None]


class SharedMemoryPool:
    def __init__(self):
        self._free: list[Slot] = []
        self._slots: list[Slot] = []
        self._lock = threading.Lock()

    def checkout(self, input_bytes: int, output_bytes: int) -> tuple[Slot, list[Region]]:
        """A slot whose regions hold the sizes asked for, and the regions it outgrew. The caller
        unregisters and destroys the outgrown ones and registers the slot's unregistered ones."""
        with self._lock:
            slot = self._free.pop() if self._free else None
            if slot is None:
                slot = Slot()
                self._slots.append(slot)
        outgrown = []
        for role, needed in (("input", input_bytes), ("output", output_bytes)):
            region = getattr(slot, role)
            if region is None or region.size < needed:
                if region is not None:
                    outgrown.append(region)
                setattr(slot, role, Region(region_size(needed)))
        return slot, outgrown

    def checkin(self, slot: Slot) -> None:
        with self._lock:
            self._free.append(slot)

    def drain(self) -> list[Region]:
        """Every region, for close(); the pool is empty afterwards."""
        with self._lock:
            regions = [r for slot in self._slots for r in slot.regions]
            self._slots, self._free = [], []
        return regions
