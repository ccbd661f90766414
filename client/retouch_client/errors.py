"""The client's exceptions. Each carries the server's message and the gRPC status it came with."""

from __future__ import annotations

# Worth another try: the server is restarting or its queue is full. Anything else would fail again.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})


class RetouchError(Exception):
    """A call failed. `status` is tritonclient's status string ("StatusCode.INTERNAL"), `code` its
    short name ("INTERNAL"), `attempts` how many times the call was sent."""

    def __init__(self, message: str, status: str | None = None, attempts: int = 1):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = status.rsplit(".", 1)[-1] if status else "UNKNOWN"
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class InvalidInputError(RetouchError):
    """INVALID_ARGUMENT: the request was wrong (bad image, setting out of range). Never retried:
    the message says what to fix."""


class DeadlineExceededError(RetouchError, TimeoutError):
    """The call did not finish within the client's deadline (`timeout_s`)."""


class ServerUnavailableError(RetouchError, ConnectionError):
    """UNAVAILABLE after every retry: the server is down, unreachable or restarting."""


class ServerBusyError(RetouchError):
    """RESOURCE_EXHAUSTED after every retry: the server's queues stayed full."""


class SharedMemoryError(RetouchError):
    """The server refused to register the client's shared-memory regions. Never retried: a server
    that locks shared memory keeps refusing."""

    @property
    def retryable(self) -> bool:
        return False


_BY_CODE = {
    "INVALID_ARGUMENT": InvalidInputError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "UNAVAILABLE": ServerUnavailableError,
    "RESOURCE_EXHAUSTED": ServerBusyError,
}


def error_from_status(message: str, status: str | None, attempts: int = 1) -> RetouchError:
    """The exception class that matches a gRPC status."""
    code = status.rsplit(".", 1)[-1] if status else "UNKNOWN"
    return _BY_CODE.get(code, RetouchError)(message, status, attempts)
