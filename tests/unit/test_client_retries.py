"""The client's retry, deadline and failover logic without a server: a call is a generator of Rpc and
Sleep steps (retouch_client.core), driven here by a scripted fake server on a fake clock."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tritonclient.utils import InferenceServerException

import retouch_client.core as core
from retouch_client.core import ClientCore, RetryPolicy, Rpc, Sleep, run_steps
from retouch_client.errors import DeadlineExceededError, InvalidInputError, ServerBusyError, ServerUnavailableError
from retouch_client.operations import UPSCALE


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Response:
    """What tritonclient's infer returns, as far as the client reads it."""

    def __init__(self, report: dict):
        self.outputs = {
            "REPORT": np.array([json.dumps(report).encode()], object),
            "OUTPUT_IMAGE": np.array([b"png bytes"], object),
        }

    def as_numpy(self, name: str) -> np.ndarray:
        return self.outputs[name]


def status(code: str) -> InferenceServerException:
    return InferenceServerException(f"the server says {code}", status=f"StatusCode.{code}")


class FakeServer:
    """Answers each Rpc with the next entry of `script`: an exception is raised into the call, anything
    else is the response. Each answer takes `latency_s` on the clock, or the call's client_timeout
    and then DEADLINE_EXCEEDED if that is shorter (as gRPC does); a Sleep advances the clock."""

    def __init__(self, clock: Clock, script: list, latency_s: float = 0.05):
        self.clock, self.script, self.latency_s = clock, list(script), latency_s
        self.rpcs: list[Rpc] = []
        self.sleeps: list[float] = []

    def run(self, steps):
        return run_steps(steps, self.perform)

    def perform(self, step):
        if isinstance(step, Sleep):
            self.sleeps.append(step.seconds)
            self.clock.now += step.seconds
            return None
        self.rpcs.append(step)
        timeout = step.kwargs.get("client_timeout", float("inf"))
        self.clock.now += min(self.latency_s, timeout)
        answer = self.script.pop(0) if self.latency_s <= timeout else status("DEADLINE_EXCEEDED")
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(core, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(core, "random", types.SimpleNamespace(uniform=lambda low, high: high))  # no jitter
    return clock


def client(urls="a:1", **options) -> ClientCore:
    return ClientCore(urls, registry=CollectorRegistry(), **options)


def retries(c: ClientCore, code: str) -> float:
    return c.metrics.retries.labels("upscale", code)._value.get()


def upscale(c: ClientCore, server: FakeServer):
    return server.run(c._call_steps(UPSCALE, b"an encoded image", None, {"scale": 2}))


def test_unavailable_is_retried_after_a_backoff_then_succeeds(clock):
    c = client(retry=RetryPolicy(attempts=4, backoff_s=0.2))
    server = FakeServer(clock, [status("UNAVAILABLE"), status("UNAVAILABLE"), Response({"steps": ["upscale"]})])
    result = upscale(c, server)
    assert result.report == {"steps": ["upscale"]} and result.data == b"png bytes"
    assert server.sleeps == [0.2, 0.4]  # doubling
    assert [r.method for r in server.rpcs] == ["infer"] * 3
    assert retries(c, "UNAVAILABLE") == 2


def test_each_attempt_gets_what_is_left_of_the_deadline_and_backoff_stops_short_of_it(clock):
    c = client(timeout_s=2.0, retry=RetryPolicy(attempts=50, backoff_s=0.2, max_backoff_s=0.5))
    server = FakeServer(clock, [status("UNAVAILABLE")] * 50, latency_s=0.3)
    start = clock.now
    with pytest.raises((ServerUnavailableError, DeadlineExceededError)) as info:
        upscale(c, server)  # given up before a backoff would cross the deadline, or cut off at it
    timeouts = [r.kwargs["client_timeout"] for r in server.rpcs]
    assert timeouts[0] == pytest.approx(2.0)
    assert all(a > b for a, b in zip(timeouts, timeouts[1:]))  # the deadline covers the whole call
    assert clock.now - start <= 2.0 + 1e-9  # never past the deadline
    assert info.value.attempts == len(server.rpcs) >= 3


def test_a_deadline_exceeded_answer_is_final(clock):
    c = client(timeout_s=5.0)
    server = FakeServer(clock, [status("DEADLINE_EXCEEDED")])
    with pytest.raises(DeadlineExceededError, match="did not finish within the 5.0s deadline"):
        upscale(c, server)
    assert len(server.rpcs) == 1 and server.sleeps == []


def test_an_attempt_cut_off_by_the_deadline_is_not_retried(clock):
    c = client(timeout_s=1.0)
    server = FakeServer(clock, [status("UNAVAILABLE"), Response({})], latency_s=0.7)
    with pytest.raises(DeadlineExceededError, match="2 attempt"):
        upscale(c, server)
    assert server.rpcs[1].kwargs["client_timeout"] == pytest.approx(0.1)


def test_a_call_whose_deadline_passed_before_sending_is_not_sent(clock, monkeypatch):
    def slow_encode(image):
        clock.now += 1.5
        return bytes(image)

    monkeypatch.setattr(core, "to_encoded", slow_encode)
    server = FakeServer(clock, [Response({})])
    with pytest.raises(DeadlineExceededError, match="0 attempt"):
        upscale(client(timeout_s=1.0), server)
    assert server.rpcs == []


def test_invalid_argument_is_not_retried(clock):
    c = client()
    server = FakeServer(clock, [status("INVALID_ARGUMENT"), Response({})])
    with pytest.raises(InvalidInputError) as info:
        upscale(c, server)
    assert info.value.attempts == 1 and len(server.rpcs) == 1 and server.sleeps == []
    assert c.metrics.errors.labels("upscale", "INVALID_ARGUMENT")._value.get() == 1


def test_a_full_queue_is_retried_until_the_attempts_are_spent(clock):
    c = client(retry=RetryPolicy(attempts=3, backoff_s=0.1))
    server = FakeServer(clock, [status("RESOURCE_EXHAUSTED")] * 3)
    with pytest.raises(ServerBusyError) as info:
        upscale(c, server)
    assert info.value.attempts == 3 and server.sleeps == [0.1, 0.2]


def test_failover_goes_to_the_next_endpoint_at_once_and_leaves_the_down_one_out(clock):
    c = client(["a:1", "b:2", "c:3"], failover_cooldown_s=30)
    server = FakeServer(clock, [status("UNAVAILABLE"), Response({"n": 1}), Response({"n": 2}), Response({"n": 3})])
    assert upscale(c, server).report == {"n": 1}
    assert [r.endpoint for r in server.rpcs] == [0, 1] and server.sleeps == []  # no backoff between servers
    assert retries(c, "UNAVAILABLE") == 1
    upscale(c, server), upscale(c, server)
    assert [r.endpoint for r in server.rpcs[2:]] == [2, 1]  # the rotation skips a:1 while it cools down


def test_when_every_endpoint_failed_the_round_backs_off_then_starts_again(clock):
    c = client(["a:1", "b:2"], retry=RetryPolicy(attempts=3, backoff_s=0.2))
    server = FakeServer(clock, [status("UNAVAILABLE")] * 4 + [Response({"ok": True})])
    assert upscale(c, server).report == {"ok": True}
    assert [r.endpoint for r in server.rpcs] == [0, 1, 0, 1, 0]
    assert server.sleeps == [0.2, 0.4]  # one backoff per round, not per endpoint
