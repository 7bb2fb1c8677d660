"""Read stage: archives of deliveries to a stream of records.

An archive is files, directories (walked recursively) and glob patterns. A file
is JSON Lines (``.jsonl``/``.ndjson``) or JSON (``.json``), optionally
compressed (``.gz``, ``.zst``). Each line of a JSON Lines file is either a
*delivery record* (``{"received_at", "headers", "body" | "body_base64"}``) or a
*bare payload* (an envelope: it has ``event`` and no ``body``). A ``.json``
file holds one envelope or an array of them.

Everything is streamed: one line is in memory at a time. Lines split on
``\\n`` only, so a raw U+2028 inside a JSON string never breaks a line. A
record that cannot be read becomes a record carrying an :class:`Unreadable`
error, so the caller can reject it without losing it.
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Any, Literal

import zstandard

from . import storage
from .exceptions import Unreadable
from .parse import encode, loads

LINE_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
COMPRESSIONS = ("", ".gz", ".zst")
#: Every file name ending the readers take.
SUFFIXES = tuple(kind + compression for kind in LINE_SUFFIXES + JSON_SUFFIXES for compression in COMPRESSIONS)

Kind = Literal["delivery", "bare", "blank", "unreadable"]


@dataclass(slots=True)
class Record:
    """One input record: where it was read, what was read, and what it holds.

    ``kind`` is ``delivery`` (``body`` holds the raw request body bytes),
    ``bare`` (``payload`` holds the parsed envelope), ``blank`` (a blank line,
    counted apart) or ``unreadable`` (``error`` says why).
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

    def parse(self) -> Any:
        """The record's payload: parsed from the body of a delivery, as read for a bare payload.

        Raises :class:`Unreadable` for a record that could not be read or whose body is not JSON.
        """
        if self.error is not None:
            raise self.error
        if self.kind == "delivery":
            return loads(self.body or b"", self.source, self.line)
        return self.payload


def expand(sources: Iterable[str | os.PathLike[str]]) -> list[Path | str]:
    """The files of an archive, in a stable order, each once: paths, and URLs for sources at URLs.

    Directories are walked recursively for files with one of :data:`SUFFIXES`
    (skipping names that start with ``_`` or ``.``); a source that does not
    exist is taken as a glob pattern. Raises
    :class:`Unreadable` for a source that matches nothing. A source may be an
    fsspec URL (``s3://bucket/archive/``, see :mod:`siq_schemas.storage`).
    """
    files: dict[Path | str, None] = {}
    for source in sources:
        path = storage.location(source)
        if isinstance(path, str):  # a URL: its files, as URLs
            found: list[Path] | list[str] = storage.expand_url(path, _wanted)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p.relative_to(path)))
        elif path.exists():
            found = [path]
        elif glob.has_magic(str(source)):
            found = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
        else:
            found = []
        if not found:
            raise Unreadable(
                "no such file or directory" if not glob.has_magic(str(source)) else "no file matches",
                str(source),
            )
        files.update(dict.fromkeys(found))
    return list(files)


def _wanted(relative: PurePath) -> bool:
    """Whether a file found by walking a directory is input: a known suffix, and no part named ``_*`` or ``.*``.

    Like pyarrow datasets, a walk skips ``_manifest.json``, ``_expected.json``,
    ``.git/`` and the like; name such a file explicitly to read it.
    """
    return relative.name.endswith(SUFFIXES) and not any(part.startswith(("_", ".")) for part in relative.parts)


def read_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every record of one file, in order.

    Raises :class:`Unreadable` only when the file cannot be opened at all; a
    file that breaks part-way (truncated, corrupt) yields every record before
    the break, then one ``unreadable`` record naming the offset of the break.
    """
    source = str(path)
    name = source.removesuffix(".gz").removesuffix(".zst")
    try:
        raw = storage.open_input(source)  # closed below, also when the consumer stops early
    except OSError as error:
        raise Unreadable(error.strerror or str(error), source) from None
    with raw:
        chunks = _decompressed(raw, source)
        yield from (_json_file if name.endswith(JSON_SUFFIXES) else _lines_file)(chunks, source)


CHUNK = 1 << 20


class _Broken(Exception):
    """A compressed stream broke after ``offset`` bytes of input."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"corrupt or truncated file at byte {offset}: {reason}")


def _decompressed(raw: IO[bytes], source: str) -> Iterator[bytes]:
    """The file's data in chunks, decompressed; multi-member gzip and multi-frame zstd read through.

    Raises :class:`_Broken` after the last good chunk when the data is corrupt or ends early.
    """
    if source.endswith(".gz"):
        new: Any = lambda: zlib.decompressobj(wbits=31)  # noqa: E731
        errors: tuple[type[Exception], ...] = (zlib.error,)
    elif source.endswith(".zst"):
        new = lambda: zstandard.ZstdDecompressor().decompressobj()  # noqa: E731
        errors = (zstandard.ZstdError,)
    else:
        while chunk := raw.read(CHUNK):
            yield chunk
        return
    decompressor, fresh = new(), True
    offset = 0
    data = b""
    while data or (data := raw.read(CHUNK)):
        if fresh:  # between members NUL padding may stand
            stripped = data.lstrip(b"\0")
            offset += len(data) - len(stripped)
            data = stripped
            if not data:
                continue
        try:
            out = decompressor.decompress(data)
        except errors as error:
            raise _Broken(offset, str(error)) from None
        fresh = False
        offset += len(data)
        data = b""
        if decompressor.eof:  # the next member, if any, starts in the unused data
            data = decompressor.unused_data
            offset -= len(data)
            decompressor, fresh = new(), True
        yield out
    if not fresh:
        raise _Broken(offset, "the compressed data ends before its end marker")


def _lines_file(chunks: Iterator[bytes], source: str) -> Iterator[Record]:
    number = 0
    rest = b""
    try:
        for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                yield _line_record(line, source, number)
    except _Broken as error:
        yield _broken(source, number + 1, error)
        return
    if rest:
        yield _line_record(rest, source, number + 1)


def _json_file(chunks: Iterator[bytes], source: str) -> Iterator[Record]:
    try:
        data = b"".join(chunks)
    except _Broken as error:
        yield _broken(source, 1, error)
        return
    if not data.strip():
        return
    try:
        document = loads(data, source, 1)
    except Unreadable as error:
        yield Record(source, 1, data, "unreadable", error=error)
        return
    items = document if isinstance(document, list) else [document]
    for number, item in enumerate(items, 1):
        yield _object_record(item, None, source, number)


def _broken(source: str, line: int, error: _Broken) -> Record:
    return Record(source, line, b"", "unreadable", error=Unreadable(str(error), source, line))


def _line_record(line: bytes, source: str, number: int) -> Record:
    if not line.strip():
        return Record(source, number, line, "blank")
    line = line.rstrip(b"\r\n")
    try:
        value = loads(line, source, number)
    except Unreadable as error:
        return Record(source, number, line, "unreadable", error=error)
    return _object_record(value, line, source, number)


def _object_record(value: Any, raw: bytes | None, source: str, number: int) -> Record:
    """A delivery record when ``value`` has a body, else a bare payload."""
    if raw is None:
        raw = encode(value)
    if not isinstance(value, dict) or ("body" not in value and "body_base64" not in value):
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
