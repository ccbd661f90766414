"""retouch_client: call the retouch image-editing service on Triton over gRPC.

client = RetouchClient("localhost:8001")
result = client.upscale(Image.open("in.jpg"), scale=4)
result.image.save("out.png"); print(result.report)
"""

from retouch_client.aio import AsyncRetouchClient
from retouch_client.client import RetouchClient
from retouch_client.core import DEFAULT_URL, Health, Result, RetryPolicy
from retouch_client.errors import (
    DeadlineExceededError,
    InvalidInputError,
    RetouchError,
    ServerBusyError,
    ServerUnavailableError,
    SharedMemoryError,
)
from retouch_client.operations import OPERATIONS, Operation

__all__ = [
    "RetouchClient",
    "AsyncRetouchClient",
    "Result",
    "Health",
    "RetryPolicy",
    "Operation",
    "OPERATIONS",
    "DEFAULT_URL",
    "RetouchError",
    "InvalidInputError",
    "DeadlineExceededError",
    "ServerUnavailableError",
    "ServerBusyError",
    "SharedMemoryError",
]
