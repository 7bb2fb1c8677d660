"""Parse stage: raw body bytes to a JSON value.

orjson is the fast path. It turns integers wider than 64 bits into floats and
huge exponents into ``inf``, so a document holding a run of 20+ digits or a
3-digit exponent takes the standard library path instead, which keeps every
integer exact and here rejects non-finite numbers. ``NaN`` and ``Infinity``
are not JSON and are rejected on both paths.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from .exceptions import Unreadable

_NEEDS_EXACT = re.compile(rb"\d{20}|[eE][+-]?\d{3}")


def loads(data: bytes | str, source: str = "", line: int = 0) -> Any:
    """Parse one JSON document; raise :class:`Unreadable` naming ``source:line`` if it is not JSON."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not _NEEDS_EXACT.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the exact path below says what is wrong
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(f"invalid UTF-8 at byte {error.start}", source, line) from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise Unreadable("JSON nested too deeply", source, line) from None
    except ValueError as error:
        raise Unreadable(f"invalid JSON: {error}", source, line) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value
