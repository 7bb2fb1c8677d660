"""Read stage: archives of deliveries to a stream of records.

An archive is files, directories (walked recursively) and glob patterns. A file
is JSON Lines (``.jsonl``/``.ndjson``) or JSON (``.json``), optionally
compressed (``.gz``, ``.zst``). Each line of a JSON Lines file is either a
*delivery record* (``{"received_at", "headers", "body" | "body_base64"}``) or a
*bare payload* (an envelope: it has ``event`` and no ``body``). A ``.json``
file holds one envelope or an array of them, or the failed executions the REST
API lists (see :mod:`siq_schemas.executions`).

Everything is streamed: one line is in memory at a time. Lines split on
``\\n`` only, so a raw U+2028 inside a JSON string never breaks a line. A
record that cannot be read becomes a record carrying an :class:`Unreadable`
error, so the caller can reject it without losing it.

Hostile input meets :class:`Limits` instead of exhausting memory: a line
over ``max_record_bytes`` is streamed past (its first :data:`RAW_PREFIX`
bytes kept), JSON nested deeper than ``max_depth`` is not taken, and a
compressed file that expands more than ``max_ratio`` times is a
decompression bomb, whose rest is one unreadable record naming the offset.

A run of ``siq convert`` reads a file with a :class:`Tail`: then the file is
known by its last complete record (the offset just after it, its line count and
the SHA-256 of the data up to there), and what follows that is not a record yet
is left *pending* for the next run instead of rejected: an unterminated last
line that does not parse (a receiver still writing it), or the partial line of
a ``.gz``/``.zst`` that ends before its end marker (still being compressed).
:func:`read_range` reads the lines of a plain JSON Lines file that start in a
byte range, numbered as in the whole file: several processes can read one file.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from . import executions
from ._decompress import CHUNK, Broken, Truncated, decompressed
from ._tail import EMPTY_SHA256 as EMPTY_SHA256  # the readers' names, as before
from ._tail import Hashed, Ranged, open_input
from ._tail import Tail as Tail
from ._text import path_text
from .exceptions import Unreadable
from .inputs import JSON_SUFFIXES
from .inputs import LINE_SUFFIXES as LINE_SUFFIXES  # the readers' names, as before
from .inputs import SUFFIXES as SUFFIXES
from .inputs import expand as expand
from .parse import DEPTH_CEILING, FLOATS, MAX_DEPTH, check_depth, encode, loads

Kind = Literal["delivery", "bare", "recovered", "blank", "unreadable"]

#: Bytes of an oversized or broken record kept as its ``raw``.
RAW_PREFIX = 64 << 10


@dataclass(frozen=True, slots=True)
class Limits:
    """What input may be before it is rejected as ``unreadable`` rather than read.

    ``max_record_bytes`` bounds a line of JSON Lines and a whole ``.json``
    document; ``max_depth`` bounds how deeply JSON arrays and objects nest; a
    compressed file whose output grows past ``max_ratio`` times the input read
    so far, once beyond ``ratio_floor`` bytes, is a decompression bomb (gzip
    and zstd archives of JSON expand 5 to 50 times). ``max_depth`` is at most
    :data:`~siq_schemas.parse.DEPTH_CEILING` (``ValueError`` beyond it).
    """

    max_record_bytes: int = 8 << 20
    max_depth: int = MAX_DEPTH
    max_ratio: int = 1000
    ratio_floor: int = 64 << 20

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= DEPTH_CEILING:
            raise ValueError(f"max_depth must be from 1 to {DEPTH_CEILING}, not {self.max_depth}")


@dataclass(slots=True)
class Record:
    """One input record: where it was read, what was read, and what it holds.

    ``kind`` is ``delivery`` (``body`` holds the raw request body bytes),
    ``bare`` (``payload`` holds the parsed envelope), ``recovered`` (a failed
    execution of the REST API: ``payload`` holds the event it stands for, see
    :mod:`~siq_schemas.executions`; signed no more than a bare payload), ``blank``
    (a blank line, counted apart) or ``unreadable`` (``error`` says why).
    """

    source: str
    line: int
    raw: bytes
    kind: Kind
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    received_at: str | None = None
    payload: Any = None
    error: Unreadable | None = None
    floats: bool = False  # the payload holds a float (known once parsed)

    def parse(self, max_depth: int = MAX_DEPTH) -> Any:
        """The record's payload: parsed from the body of a delivery, as read for a bare payload.

        Raises :class:`Unreadable` for a record that could not be read or whose body is not JSON
        (or nests deeper than ``max_depth``).
        """
        if self.error is not None:
            raise self.error
        if self.kind == "delivery":
            payload = loads(self.body or b"", self.source, self.line, max_depth)
            self.floats = FLOATS.seen
            return payload
        return self.payload


#: The limits of a run that sets none.
LIMITS = Limits()


def read_records(
    path: str | os.PathLike[str], limits: Limits = LIMITS, tail: Tail | None = None, *, chunk_bytes: int = CHUNK
) -> Iterator[Record]:
    """Every record of one file, in order.

    Raises :class:`Unreadable` only when the file cannot be opened at all; a
    file that breaks part-way (truncated, corrupt, a read error, a
    decompression bomb) yields every record before the break, then one
    ``unreadable`` record naming the offset of the break. ``limits`` bounds
    what is read (see :class:`Limits`).

    With a ``tail``, a JSON Lines file's unterminated last line that does not
    parse, and the partial line of a compressed file that ends before its end
    marker, are left pending instead of yielded as unreadable; ``tail`` then
    says where the complete records end (see :class:`Tail`).

    The file is read and decompressed ``chunk_bytes`` at a time: that bounds memory, and never changes the records.
    """
    where = os.fspath(path)
    source = path_text(where)  # the name records carry: UTF-8 text whatever bytes the file name holds
    name = where.removesuffix(".gz").removesuffix(".zst")
    if os.path.isdir(where):  # a folder that :func:`expand` could not list
        raise Unreadable(_unlisted(where), source)
    raw = open_input(where)  # closed below, also when the consumer stops early
    with raw:
        chunks = Hashed(decompressed(raw, source, limits.max_ratio, limits.ratio_floor, chunk_bytes))
        if not name.endswith(JSON_SUFFIXES):
            yield from _lines_file(chunks, source, limits, tail)
            return
        count = 0
        for record in _json_file(chunks, source, limits):
            count = record.line
            yield record
        if tail is not None:  # a document is read whole: its records are complete, or the file is broken
            chunks.ended(tail, chunks.size, count, broken=chunks.failed)


def read_range(
    path: str | os.PathLike[str], start: int, end: int, lines: int, limits: Limits, tail: Tail, digests: dict[int, str]
) -> Iterator[Record]:
    """The records of a plain JSON Lines file whose lines start from byte ``start`` up to ``end``, in order.

    ``start`` and ``end`` are line starts (``end`` may also be where the data
    ends), ``lines`` the lines before ``start``: each record has its line number
    in the file, as :func:`read_records` reads it. ``tail`` is set as it does
    for a whole file, its digest taken from ``digests`` (the SHA-256 of the
    data up to each offset where the records may end, see :class:`~siq_schemas._tail.Ranged`).
    """
    where = os.fspath(path)
    raw = open_input(where)
    with raw:
        yield from _lines_file(Ranged(raw, start, end, digests), path_text(where), limits, tail, lines)


def _unlisted(folder: str) -> str:
    """Why a folder that :func:`expand` could not list is unreadable."""
    try:
        os.listdir(folder)
    except OSError as error:
        return f"cannot list the folder ({error.strerror or error})"
    return "a folder, not a file"


def _lines_file(
    chunks: Hashed, source: str, limits: Limits, tail: Tail | None = None, before: int = 0
) -> Iterator[Record]:
    """The records of a JSON Lines file (after its first ``before`` lines); a line over the size limit is streamed past.

    With a ``tail``, an unterminated last line that is not a record, and the partial line of
    compressed data that ends early, are left pending (see :func:`read_records`).
    """
    limit = limits.max_record_bytes
    number = before
    rest = b""  # the start of the line being read
    over = 0  # the length so far of a line over the limit (``rest`` then holds its first bytes)
    try:
        for chunk in chunks:
            if over:
                end = chunk.find(b"\n")
                part = chunk if end < 0 else chunk[:end]
                rest += part[: max(RAW_PREFIX - len(rest), 0)]
                over += len(part)
                if end < 0:
                    continue
                number += 1
                yield _oversized(rest, over, source, number, limit)
                rest, over, chunk = b"", 0, chunk[end + 1 :]
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                if _over(line, limit):
                    yield _oversized(line, len(line), source, number, limit)
                else:
                    yield _line_record(line, source, number, limits.max_depth)
            if _over(rest, limit):
                over, rest = len(rest), rest[:RAW_PREFIX]
    except Broken as error:
        if tail is not None and isinstance(error, Truncated):
            chunks.ended(tail, chunks.line_end, number)
            return
        yield _broken(source, number + 1, error, rest)
        if tail is not None:
            chunks.ended(tail, chunks.size, number + 1, broken=True)
        return
    last = None
    if over:
        last = _oversized(rest, over, source, number + 1, limit)
    elif rest:
        last = _line_record(rest, source, number + 1, limits.max_depth)
    whole = last is not None and (tail is None or last.kind not in ("unreadable", "blank"))
    if last is not None and whole:  # a finished file without a final newline
        yield last
    if tail is not None:
        chunks.ended(tail, chunks.size if whole else chunks.line_end, number + whole)


def _json_file(chunks: Iterable[bytes], source: str, limits: Limits) -> Iterator[Record]:
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > limits.max_record_bytes:
                message = f"document over the limit of {limits.max_record_bytes:,} bytes (max_record_bytes)"
                head = b"".join(parts)[:RAW_PREFIX]
                yield Record(source, 1, head, "unreadable", error=Unreadable(message, source, 1))
                return
    except Broken as error:
        yield _broken(source, 1, error, b"".join(parts))
        return
    data = b"".join(parts).removeprefix(BOM)
    if not data.strip():
        return
    try:
        document = loads(data, source, 1, limits.max_depth)
    except Unreadable as error:
        yield Record(source, 1, data, "unreadable", error=error)
        return
    floats = FLOATS.seen
    failed = executions.records(document)
    if failed is not None:
        records = (_recovered(item, source, number) for number, item in enumerate(failed, 1))
    else:
        items = document if isinstance(document, list) else [document]
        records = (_object_record(item, None, source, number) for number, item in enumerate(items, 1))
    for record in records:
        record.floats = floats
        yield record


def _recovered(item: Any, source: str, number: int) -> Record:
    """The record of one failed execution: the event it stands for, or unreadable when it is none."""
    raw = encode(item)
    try:
        return Record(source, number, raw, "recovered", payload=executions.event(item, source, number))
    except Unreadable as error:
        return Record(source, number, raw, "unreadable", error=error)


def _broken(source: str, line: int, error: Broken, partial: bytes) -> Record:
    """The unreadable record for the rest of a file that broke, keeping the start of its partial line."""
    return Record(source, line, partial[:RAW_PREFIX], "unreadable", error=Unreadable(str(error), source, line))


def _oversized(start: bytes, size: int, source: str, number: int, limit: int) -> Record:
    message = f"line of {size:,} bytes, over the limit of {limit:,} (max_record_bytes)"
    return Record(source, number, start[:RAW_PREFIX], "unreadable", error=Unreadable(message, source, number))


def _over(line: bytes, limit: int) -> bool:
    """Whether a line (or the start of one) is over ``limit`` bytes, the ``\\r`` of a CRLF line not counted."""
    return len(line) - line.endswith(b"\r") > limit


#: The UTF-8 byte order mark, which some tools write at the start of a file: not part of a record.
BOM = b"\xef\xbb\xbf"


def _line_record(line: bytes, source: str, number: int, max_depth: int) -> Record:
    line = line.removeprefix(BOM)  # at the start of a file, or of a line where files were joined
    if not line.strip():
        return Record(source, number, line, "blank")
    line = line.rstrip(b"\r\n")
    try:
        value = loads(line, source, number, max_depth, checked=False)
        if not _is_delivery(value):  # a delivery's body is checked when it is parsed; its headers are not used
            check_depth(line, value, max_depth, source, number)
    except Unreadable as error:
        return Record(source, number, line, "unreadable", error=error)
    record = _object_record(value, line, source, number)
    record.floats = FLOATS.seen
    return record


def _object_record(value: Any, raw: bytes | None, source: str, number: int) -> Record:
    """A delivery record when ``value`` has a body, else a bare payload."""
    if raw is None:
        raw = encode(value)
    if not _is_delivery(value):
        return Record(source, number, raw, "bare", payload=value)
    headers = value.get("headers") or {}
    received_at = value.get("received_at")
    try:
        if not isinstance(headers, dict):
            raise Unreadable("'headers' is not an object", source, number)
        if received_at is not None and not isinstance(received_at, str):
            raise Unreadable("'received_at' is not a string", source, number)
        body = _body(value, source, number)
    except Unreadable as error:
        return Record(source, number, raw, "unreadable", error=error)
    headers = {str(key).lower(): value for key, value in headers.items()}
    return Record(source, number, raw, "delivery", body=body, headers=headers, received_at=received_at)


def _is_delivery(value: Any) -> bool:
    """Whether a value read is a delivery record (it has a body), not a bare payload."""
    return isinstance(value, dict) and ("body" in value or "body_base64" in value)


def _body(record: dict[str, Any], source: str, number: int) -> bytes:
    if "body" in record:
        body = record["body"]
        if not isinstance(body, str):
            raise Unreadable("'body' is not a string (the raw request body text)", source, number)
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise Unreadable("'body' holds a lone surrogate, not UTF-8 text", source, number) from None
    encoded = record["body_base64"]
    try:
        if not isinstance(encoded, str):
            raise ValueError
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise Unreadable("'body_base64' is not valid base64", source, number) from None
