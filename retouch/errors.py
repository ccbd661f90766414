"""The one error type the pipeline raises for bad requests, and the mapping of the errors that parsing
a client's bytes can raise onto it.

Shims turn InvalidInput into Triton's INVALID_ARGUMENT, so callers see the message and the server
stays up. Messages are capped (MAX_MESSAGE_CHARS): they may quote the client's input, and a gRPC
status message over 16 KiB overflows the trailer, which the caller then sees as RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_MESSAGE_CHARS = 300
# JSON this deep is not a settings object; refusing it up front keeps the parser far from Python's
# recursion limit (a RecursionError half-way through a parse is slow and noisy).
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 64 * 1024

# What decoders raise on bytes they cannot make sense of: Pillow raises OSError (truncated or
# corrupt data), SyntaxError (bad headers), ValueError (e.g. an iCCP or text chunk that inflates past
# its limit), EOFError, struct.error and zlib.error from the container parsers, and the odd
# IndexError/TypeError/KeyError from a malformed table. DecompressionBombError is an Exception.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    TypeError,
    KeyError,
    RecursionError,
    MemoryError,
)


class InvalidInput(ValueError):
    """The request cannot be served as sent; the message says what to fix."""


class Cancelled(Exception):
    """The client went away (deadline passed or call cancelled): the rest of the work is dropped."""


class Overloaded(Exception):
    """A model this step calls refused the work because its queue is full or the work waited too
    long in it: the caller gets UNAVAILABLE, which clients retry with backoff."""


def short(message: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    """str(message) cut to `limit` characters, saying how much was left out."""
    text = str(message)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}... ({len(text)} characters)"


@contextmanager
def client_data(what: str) -> Iterator[None]:
    """Inside, a decoder's error on the client's bytes becomes InvalidInput naming `what`."""
    try:
        yield
    except InvalidInput:
        raise
    except DECODE_ERRORS as exc:
        detail = short(exc, 120) or type(exc).__name__
        raise InvalidInput(
            f"{what} data is corrupt or truncated ({detail}); send a complete PNG, JPEG or WebP file"
        ) from None


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets nest deeper than `limit` (strings skipped), without parsing."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(raw: bytes | str, what: str = "SETTINGS") -> Any:
    """json.loads with every way it can fail on client bytes mapped to InvalidInput: syntax, bad
    UTF-8, integers over Python's digit limit, nesting deeper than MAX_JSON_DEPTH, NaN/Infinity
    (not JSON), and a payload over MAX_JSON_BYTES."""
    if len(raw) > MAX_JSON_BYTES:
        raise InvalidInput(f"{what} is {len(raw)} bytes, over the limit of {MAX_JSON_BYTES}; send a small JSON object")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} must be UTF-8 JSON: {short(exc, 120)}") from None
    if json_depth_exceeds(text):
        raise InvalidInput(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; send a flat JSON object")

    def no_constants(name: str):
        raise InvalidInput(f"{what} holds {name}, which is not JSON; send finite numbers")

    try:
        return json.loads(text, parse_constant=no_constants)
    except InvalidInput:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} must be a JSON object: {short(exc, 120)}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 5000 digits
        raise InvalidInput(f"{what} is not usable JSON ({short(exc, 120)}); send numbers of ordinary size") from None
