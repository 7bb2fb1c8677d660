"""Where the complete records of a file end (its :class:`Tail`), and the data chunks that tell it.

A reader takes a file's data as chunks through :class:`Hashed`, which hashes
them as they pass, or, for a byte range of a plain file, through
:class:`Ranged`, which is given the digests instead: the SHA-256 of a file's
data cannot be computed in parts, so the run's plan computes it once, over the
whole file, at the offsets where the last range's complete records can end.
It also computes the digests a run's plan compares with those the manifest
noted (:func:`lines_digest`, :func:`prefix_digest`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from . import storage
from ._decompress import Broken, Truncated, decompressed, read_chunk
from ._text import path_text
from .exceptions import Unreadable

#: The SHA-256 of no data: the digest of a file of which nothing is read yet.
EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass(slots=True)
class Tail:
    """How far the complete records of a file go: what the next run resumes after.

    ``offset`` is the position in the (decompressed) data just after the last
    complete record, ``lines`` the lines up to there and ``sha256`` the digest
    of the data up to there. ``pending`` counts the bytes after it that are not
    a record yet (left for the next run). ``broken``: the file broke part-way
    (corrupt data, a read error, a bomb) and its rest is one unreadable record.
    """

    offset: int = 0
    lines: int = 0
    sha256: str = EMPTY_SHA256
    pending: int = 0
    broken: bool = False


class Hashed:
    """A file's data chunks, hashed as they pass, with the digest at the end of the last line seen."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.digest = hashlib.sha256()
        self.size = self.line_end = 0  # bytes passed; bytes up to the last newline
        self.at_line_end = self.digest.copy()
        self.failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.chunks:
                self.passed(chunk, chunk.rfind(b"\n") + 1)
                yield chunk
        except Broken:
            self.failed = True
            raise

    def passed(self, chunk: bytes, end: int) -> None:
        """Count (and hash) a chunk that passes, whose last line ends at ``end`` (0: it holds no newline)."""
        if end:
            view = memoryview(chunk)
            self.digest.update(view[:end])
            self.at_line_end, self.line_end = self.digest.copy(), self.size + end
            self.digest.update(view[end:])
        else:
            self.digest.update(chunk)
        self.size += len(chunk)

    def ended(self, tail: Tail, offset: int, lines: int, broken: bool = False) -> None:
        """Set ``tail``: the complete records end at ``offset`` (the last newline, or every byte passed)."""
        digest = self.at_line_end if offset == self.line_end else self.digest
        tail.offset, tail.lines, tail.sha256 = offset, lines, digest.hexdigest()
        tail.pending, tail.broken = self.size - offset, broken


class Ranged(Hashed):
    """The chunks of bytes ``start`` to ``end`` of a plain file, counted from ``start``, and not hashed.

    ``digests`` holds the SHA-256 of the file's data up to the offsets where the
    complete records of the file's last range may end (none for another range).
    Records that end anywhere else mean that the file changed since those were
    computed: the tail is then ``broken``, so that the next run rebuilds rather than trust it.
    """

    def __init__(self, raw: IO[bytes], start: int, end: int, digests: dict[int, str]) -> None:
        super().__init__(self._range(raw, start, end))
        self.size = self.line_end = start  # ``start`` is a line start
        self.digests = digests

    @staticmethod
    def _range(raw: IO[bytes], start: int, end: int) -> Iterator[bytes]:
        raw.seek(start)
        while start < end and (chunk := read_chunk(raw, start)):
            chunk = chunk[: end - start]
            start += len(chunk)
            yield chunk

    def passed(self, chunk: bytes, end: int) -> None:
        if end:
            self.line_end = self.size + end
        self.size += len(chunk)

    def ended(self, tail: Tail, offset: int, lines: int, broken: bool = False) -> None:
        digest = self.digests.get(offset)
        tail.offset, tail.lines, tail.sha256 = offset, lines, digest or EMPTY_SHA256
        tail.pending, tail.broken = self.size - offset, broken or (digest is None and bool(self.digests))


# The digests the plan compares with a manifest's: of the data up to the last newline, or up to an offset.


def open_input(where: str) -> IO[bytes]:
    """A file (or URL) opened for reading; :class:`Unreadable` naming it when it cannot be."""
    try:
        return storage.open_input(where)
    except OSError as error:
        raise Unreadable(error.strerror or str(error), path_text(where)) from None


def lines_digest(path: str | os.PathLike[str], max_ratio: int, ratio_floor: int) -> tuple[int, str]:
    """The offset just after the last newline of a file's (decompressed) data, and the SHA-256 of the data up to it.

    Data after a break counts as not there; ``max_ratio`` and ``ratio_floor`` are the
    :class:`~siq_schemas.read.Limits` of decompression. Raises :class:`Unreadable` when the file cannot be opened.
    """
    raw = open_input(os.fspath(path))
    with raw:
        chunks = Hashed(decompressed(raw, path_text(os.fspath(path)), max_ratio, ratio_floor))
        try:
            for _ in chunks:
                pass
        except Broken:
            pass
    return chunks.line_end, chunks.at_line_end.hexdigest()


def prefix_digest(
    path: str | os.PathLike[str], offset: int, max_ratio: int, ratio_floor: int
) -> tuple[str | None, bool]:
    """The SHA-256 of the first ``offset`` bytes of a file's (decompressed) data, and whether more data follows.

    The digest is None when the data holds fewer bytes, or breaks before them
    (see :class:`Tail`); more data "follows" a break that is not a mere early
    end of compressed data. Raises :class:`Unreadable` when the file cannot be opened.
    """
    raw = open_input(os.fspath(path))
    digest, done = hashlib.sha256(), 0
    with raw:
        try:
            for chunk in decompressed(raw, path_text(os.fspath(path)), max_ratio, ratio_floor):
                if done + len(chunk) > offset:
                    digest.update(chunk[: offset - done])
                    return digest.hexdigest(), True
                digest.update(chunk)
                done += len(chunk)
        except Broken as error:
            return (digest.hexdigest() if done == offset else None), not isinstance(error, Truncated)
    return (digest.hexdigest() if done == offset else None), False
