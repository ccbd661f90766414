"""The one error type the pipeline raises for bad requests.

Shims turn it into Triton's INVALID_ARGUMENT, so callers see the message and the server stays up.
"""


class InvalidInput(ValueError):
    """The request cannot be served as sent; the message says what to fix."""
