"""Names and payload text made safe to write: to Parquet and JSON, and to a terminal.

A file name on POSIX is bytes; Python gives the bytes that are not UTF-8 as
lone surrogates (``os.fsdecode``), which no UTF-8 writer takes. A payload
string may hold a newline or an escape sequence, which a terminal obeys: an
event name holding ``"\\nforged.jsonl:1 ..."`` would print a line of its own.
"""

from __future__ import annotations

import os
import re

#: What a terminal obeys rather than shows: C0 and C1 controls, DEL, the line and paragraph separators,
#: and lone surrogates (the bytes of a file name that are not UTF-8).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as UTF-8 text: the bytes of its name that are not UTF-8 as ``\\xNN`` escapes."""
    text = os.fspath(path)
    return text if text.isascii() else os.fsencode(text).decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` for a terminal line: controls, separators and undecodable bytes of a name as escapes."""
    return _UNPRINTABLE.sub(_escape, text)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that os.fsdecode could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
