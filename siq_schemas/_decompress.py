"""A file's data in bounded chunks, decompressed (gzip, zstd) with a bound on how much it expands."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import IO, Any

import zstandard

#: Bytes read from a file at a time, and the most a decompressed chunk holds, unless told otherwise.
CHUNK = 1 << 20
#: Compressed bytes given to a zstd decompressor at a time: zstd expands at most about 32,000 times.
ZSTD_SLICE = 1 << 10
#: Compressed bytes given to a gzip decompressor at a time (its output is bounded by :data:`CHUNK`).
GZIP_SLICE = 64 << 10
_NOT_NUL = re.compile(rb"[^\0]")


class Broken(Exception):
    """A file broke after ``offset`` bytes of input: the message says how."""


class Truncated(Broken):
    """Compressed data that ends before its end marker: a file still being written, or cut short."""


def read_chunk(raw: IO[bytes], offset: int, chunk: int = CHUNK) -> bytes:
    try:
        return raw.read(chunk)
    except OSError as error:
        raise Broken(f"read error at byte {offset}: {error.strerror or error}") from None


def decompressed(raw: IO[bytes], source: str, max_ratio: int, ratio_floor: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The file's data in chunks of at most ``chunk`` bytes, decompressed.

    Multi-member gzip and multi-frame zstd are read through (NUL padding
    between them allowed). Raises :class:`Broken` after the last good chunk
    when the data is corrupt, ends early, cannot be read, or expands more
    than ``max_ratio`` times past ``ratio_floor`` bytes.
    """
    if source.endswith(".gz"):
        new: Any = lambda: zlib.decompressobj(wbits=31)  # noqa: E731
        errors: tuple[type[Exception], ...] = (zlib.error,)
        size = GZIP_SLICE
    elif source.endswith(".zst"):
        new = lambda: zstandard.ZstdDecompressor().decompressobj()  # noqa: E731
        errors = (zstandard.ZstdError,)
        size = ZSTD_SLICE
    else:
        offset = 0
        while data := read_chunk(raw, offset, chunk):
            offset += len(data)
            yield data
        return
    gzip = size == GZIP_SLICE
    decompressor, fresh, more = new(), True, False  # ``more``: gzip output held back by the bound
    data, position, offset, produced = b"", 0, 0, 0  # ``offset``: input bytes before ``data``
    while True:
        if position == len(data) and not more:
            offset += len(data)
            data, position = read_chunk(raw, offset, chunk), 0
            if not data:
                break
        if fresh:  # between members NUL padding may stand
            found = _NOT_NUL.search(data, position)
            position = found.start() if found else len(data)
            if not found:
                continue
        piece = memoryview(data)[position : position + size]
        try:
            out = decompressor.decompress(piece, chunk) if gzip else decompressor.decompress(piece)
        except errors as error:
            raise Broken(f"corrupt or truncated file at byte {offset + position}: {error}") from None
        fresh, more = False, gzip and len(out) == chunk
        position += len(piece) - (len(decompressor.unconsumed_tail) if gzip else 0)
        if decompressor.eof:  # the next member, if any, starts in the unused data
            position -= len(decompressor.unused_data)
            decompressor, fresh, more = new(), True, False
        produced += len(out)
        if produced > ratio_floor and produced > max_ratio * (offset + position):
            raise Broken(
                f"expands over {max_ratio:,} times its compressed size (a decompression bomb?) "
                f"at byte {offset + position}: the rest of the file is not read"
            )
        for start in range(0, len(out), chunk):
            yield out[start : start + chunk]
    if not fresh:
        raise Truncated(f"corrupt or truncated file at byte {offset}: the compressed data ends before its end marker")
