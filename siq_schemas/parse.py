"""Parse stage: raw body bytes to a JSON value.

msgspec decodes as fast as the fastest JSON libraries and keeps every
integer exact at any width, so an id such as ``40526000000002040`` (above
2**53) or one of 300 digits is never a float. ``NaN``/``Infinity`` literals,
numbers out of the float range, integers over Python's 4,300 digits, invalid
UTF-8 and lone surrogate escapes are not JSON and are rejected, and so is
JSON nested deeper than :data:`MAX_DEPTH`. An object that repeats a key takes
the last value, as JavaScript, Python's ``json`` and msgspec do.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

import msgspec

from .exceptions import Unreadable

#: How deeply arrays and objects may nest (SalesIQ payloads nest about six levels).
MAX_DEPTH = 64
#: The largest ``max_depth`` the package can take: parsing, the drift check and writing walk a
#: payload recursively, within Python's 1,000 frames (the drift check takes two a level).
DEPTH_CEILING = 256


class _Floats(threading.local):
    """Whether the last document this thread parsed held a float (a number with a fraction or an exponent)."""

    seen = False


FLOATS = _Floats()


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # out of the float range: the plain decoder's error says so
        raise OverflowError(text)
    FLOATS.seen = True
    return value


_marking = msgspec.json.Decoder(float_hook=_float).decode
_plain = msgspec.json.Decoder().decode


def _decode(data: bytes | str) -> Any:
    """The parsed document, marking in :data:`FLOATS` whether it holds floats; the plain decoder's error if not JSON."""
    FLOATS.seen = False
    try:
        return _marking(data)
    except (msgspec.DecodeError, msgspec.ValidationError, OverflowError, ValueError):
        return _plain(data)  # raises the parser's own error, which names the problem


#: Encodes canonical JSON: keys sorted at every level, no spaces, integers exact.
encode_sorted = msgspec.json.Encoder(order="sorted").encode
#: Encodes compact JSON, keys in their order.
encode = msgspec.json.Encoder().encode

_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
#: A ``\uD800``-``\uDFFF`` escape that is not half of a surrogate pair.
_LONE_SURROGATE = re.compile(rb"%s(?!%s)|(?<!%s)%s" % (_HIGH, _LOW, _HIGH, _LOW))


def loads(
    data: bytes | str, source: str = "", line: int = 0, max_depth: int | None = MAX_DEPTH, *, checked: bool = True
) -> Any:
    """Parse one JSON document; raise :class:`Unreadable` naming ``source:line`` if it is not JSON.

    JSON nested deeper than ``max_depth`` arrays and objects is unreadable too
    (``None`` or ``checked=False``: not checked, see :func:`check_depth`, but for
    what the parser itself cannot take, about 1,000 levels, whose message
    names ``max_depth``).
    """
    try:
        value = _decode(data)
    except UnicodeEncodeError:
        raise Unreadable("text holds a lone surrogate, not UTF-8", source, line) from None
    except RecursionError:
        raise Unreadable(_too_deep(max_depth or MAX_DEPTH), source, line) from None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
        raise Unreadable(_why(data, error), source, line) from None
    if max_depth is not None and checked:
        check_depth(data, value, max_depth, source, line)
    return value


def check_depth(data: bytes | str, value: Any, max_depth: int, source: str = "", line: int = 0) -> None:
    """Raise :class:`Unreadable` when ``value``, parsed from ``data``, nests deeper than ``max_depth``."""
    brackets = data.count(b"{") + data.count(b"[") if isinstance(data, bytes) else data.count("{") + data.count("[")
    if brackets > max_depth and _deeper(value, max_depth):  # fewer brackets cannot nest deeper
        raise Unreadable(_too_deep(max_depth), source, line)


def _why(data: bytes | str, error: Exception) -> str:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    lone = _LONE_SURROGATE.search(raw)
    if lone is not None:
        return f"invalid JSON: lone surrogate {lone.group().decode()} at byte {lone.start()}, not text"
    return "invalid JSON: " + str(error).removeprefix("JSON is malformed: ")


def _too_deep(max_depth: int) -> str:
    return f"nested deeper than {max_depth} levels (max_depth)"


def _deeper(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels in ``value`` (a scalar is level 0)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return bool(level)
