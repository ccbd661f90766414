"""Scale-out, simulated on one host: two real tritonservers, one client given both endpoints.

The client spreads calls over both (round-robin) and, when one server is stopped, keeps serving
from the other: the call that meets the stopped server fails over at once, and the stopped server
then stays out of the rotation. To keep it cheap each server loads only what `upscale` needs
(explicit model control), the same models and configs as the full repository.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from prometheus_client import CollectorRegistry

from retouch_client import AsyncRetouchClient, RetouchClient
from scripts.local_server import local_server

pytestmark = pytest.mark.e2e

UPSCALE_MODELS = ("upscale", "decode_image", "upscale_tiles", "encode_image", "upscaler_waifu2x_photo_x2")
LOAD_MODELS = " ".join(UPSCALE_MODELS)  # serve.sh's RETOUCH_LOAD_MODELS: only what upscale needs


def served(grpc_url: str, expected: int | None = None, wait_s: float = 10.0) -> int:
    """Successful `upscale` requests the server at grpc_url has answered, from its own statistics.
    Triton counts a request a moment after its response has gone, so with `expected` this polls
    until the count reaches it (or wait_s passes) and returns the last count."""
    deadline = time.monotonic() + wait_s
    while True:
        with grpcclient.InferenceServerClient(grpc_url) as triton:
            stats = triton.get_inference_statistics("upscale", as_json=True)
        count = int(stats["model_stats"][0]["inference_stats"]["success"].get("count", 0))
        if expected is None or count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def retries(registry: CollectorRegistry, code: str) -> float:
    return registry.get_sample_value("retouch_client_retries_total", {"operation": "upscale", "code": code}) or 0.0


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(7)
    return (rng.random((48, 64, 3)) * 255).astype(np.uint8)


def test_two_servers_share_the_load_and_one_can_stop(tmp_path, photo):
    with ExitStack() as first_stack, ExitStack() as second_stack:
        try:
            first = first_stack.enter_context(local_server(tmp_path / "a", RETOUCH_LOAD_MODELS=LOAD_MODELS))
            second = second_stack.enter_context(local_server(tmp_path / "b", RETOUCH_LOAD_MODELS=LOAD_MODELS))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        registry = CollectorRegistry()
        endpoints = [first["grpc"], second["grpc"]]
        with RetouchClient(",".join(endpoints), timeout_s=120, registry=registry, failover_cooldown_s=300) as client:
            # Spread: sequential calls alternate between the two servers.
            before = [client.upscale(photo, scale=2) for _ in range(6)]
            assert (served(first["grpc"], 3), served(second["grpc"], 3)) == (3, 3)
            assert len({r.data for r in before}) == 1  # the same bytes from either server
            assert retries(registry, "UNAVAILABLE") == 0

            second_stack.close()  # stops the second server (serve.sh stop)

            after = [client.upscale(photo, scale=2) for _ in range(5)]
            assert {r.data for r in after} == {before[0].data}
            # The one call that went to the stopped server was sent again to the live one at once;
            # after that the stopped server was left out of the rotation (cooldown).
            assert retries(registry, "UNAVAILABLE") == 1
            assert served(first["grpc"], 3 + 5) == 3 + 5

        # The asyncio client fails over the same way (its first call goes to the first endpoint,
        # so list the stopped one first).
        async def concurrent():
            async with AsyncRetouchClient(
                [second["grpc"], first["grpc"]], timeout_s=120, registry=CollectorRegistry()
            ) as aclient:
                return await asyncio.gather(*(aclient.upscale(photo, scale=2) for _ in range(4)))

        assert {r.data for r in asyncio.run(concurrent())} == {before[0].data}
        assert served(first["grpc"], 3 + 5 + 4) == 3 + 5 + 4
