"""Parse stage: raw body bytes to a JSON value.

msgspec decodes as fast as the fastest JSON libraries and keeps every
integer exact at any width, so an id such as ``40526000000002040`` (above
2**53) or one of 30 digits is never a float. ``NaN``/``Infinity`` literals,
numbers out of the float range, invalid UTF-8 and lone surrogate escapes are
not JSON and are rejected.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .exceptions import Unreadable

_decode = msgspec.json.Decoder().decode
#: Encodes canonical JSON: keys sorted at every level, no spaces, integers exact.
encode_sorted = msgspec.json.Encoder(order="sorted").encode
#: Encodes compact JSON, keys in their order.
encode = msgspec.json.Encoder().encode


def loads(data: bytes | str, source: str = "", line: int = 0) -> Any:
    """Parse one JSON document; raise :class:`Unreadable` naming ``source:line`` if it is not JSON."""
    try:
        return _decode(data)
    except UnicodeEncodeError:
        raise Unreadable("text holds a lone surrogate, not UTF-8", source, line) from None
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as error:
        if isinstance(data, bytes):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise Unreadable(f"invalid UTF-8 at byte {bad.start}", source, line) from None
        reason = str(error).removeprefix("JSON is malformed: ")
        raise Unreadable(f"invalid JSON: {reason}", source, line) from None
