"""retouch_client: call the retouch service on Triton over gRPC."""

from retouch_client.client import RetouchClient, RetouchError, InvalidInputError, Result

__all__ = ["RetouchClient", "RetouchError", "InvalidInputError", "Result"]
