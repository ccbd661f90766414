"""The client's endpoint list and failover, without a server: addresses parse, the rotation skips an
endpoint that went down, and a call to endpoints where nothing listens fails over, then gives up
with ServerUnavailableError after the retries (real gRPC channels to closed loopback ports)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from retouch_client import RetouchClient
from retouch_client.core import Endpoints, RetryPolicy, parse_urls
from retouch_client.errors import ServerUnavailableError
from scripts.local_server import free_port


def test_urls_parse_from_a_string_or_a_list():
    assert parse_urls("a:1") == ["a:1"]
    assert parse_urls(" a:1, b:2 ,") == ["a:1", "b:2"]
    assert parse_urls(["a:1", "b:2"]) == ["a:1", "b:2"]
    for bad in ("", " , ", ["a:1", "a:1"]):
        with pytest.raises(ValueError):
            parse_urls(bad)


def test_round_robin_skips_an_endpoint_that_is_down():
    endpoints = Endpoints(["a", "b", "c"], cooldown_s=60)
    assert [endpoints.pick(set()) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    endpoints.down(1)
    assert [endpoints.pick(set()) for _ in range(4)] == [0, 2, 2, 0]
    assert endpoints.pick({0}) == 2  # not one already tried in this round
    endpoints.down(0), endpoints.down(2)
    # All down: the one that went down first is tried (it has had the longest to come back).
    assert endpoints.pick(set()) == 1
    endpoints.up(1)
    assert endpoints.pick(set()) == 1


def test_shared_memory_needs_a_single_endpoint():
    with pytest.raises(ValueError, match="one server"):
        RetouchClient("127.0.0.1:1,127.0.0.1:2", shared_memory=True)


def test_every_endpoint_down_fails_over_then_gives_up():
    urls = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nothing listens there
    registry = CollectorRegistry()
    with RetouchClient(urls, timeout_s=30, registry=registry, retry=RetryPolicy(attempts=2, backoff_s=0.01)) as client:
        with pytest.raises(ServerUnavailableError, match="UNAVAILABLE after 4 attempt") as info:
            client.upscale(b"not sent anywhere useful", scale=2)
    assert info.value.attempts == 4  # two rounds over both endpoints
    # Three sends after a failure: two failovers and one retry after backoff.
    assert (
        registry.get_sample_value("retouch_client_retries_total", {"operation": "upscale", "code": "UNAVAILABLE"}) == 3
    )


def test_remove_texts_mask_settings_are_not_taken_for_an_image():
    """remove_text's `mask` settings section reaches `call` as settings: every client's image of
    what to remove is positional only (remove_text(img, mask={...}) once bound it as an image)."""
    import inspect

    from retouch_client import AsyncRetouchClient
    from retouch_client.operations import Operations

    for cls in (Operations, RetouchClient, AsyncRetouchClient):
        assert inspect.signature(cls.call).parameters["mask"].kind is inspect.Parameter.POSITIONAL_ONLY, cls
