"""Paths and URLs: where archives and outputs are, locally or at fsspec URLs (``s3://``, ``gs://``, ``memory://`` ...).

A source or an output is a local path or a URL. Paths stay paths and ``file://``
URLs become paths; any other URL is read and written through fsspec, which is
imported only then. Credentials and options come from each filesystem's usual
places (``AWS_*`` variables and ``~/.aws`` for S3, Google application default
credentials for GCS) and from fsspec's own configuration
(``FSSPEC_<PROTOCOL>_<OPTION>`` variables, ``~/.config/fsspec/``).

How an output at a URL is written and read is :mod:`siq_schemas.converter.output`'s.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ._text import path_text
from .exceptions import StorageError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a URL with a scheme (``s3://bucket/key``), ``file://`` included."""
    return isinstance(source, str) and _URL.match(source) is not None


def location(source: str | os.PathLike[str]) -> Path | str:
    """``source`` as a local :class:`~pathlib.Path`, or as a URL (a string) for a remote filesystem."""
    if not is_url(source):
        return Path(source)
    text = str(source)
    if text.startswith("file://"):
        return Path(text.removeprefix("file://") or "/")
    return text


def key(source: Path | str) -> str:
    """The name of an input in the manifest: its resolved path (as UTF-8 text, see :func:`path_text`), or its URL."""
    return source if isinstance(source, str) else path_text(source.resolve())


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def special(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is when it is neither a regular file nor a folder, else None.

    Such a file is never input: a FIFO blocks the reader, ``/dev/zero`` never ends.
    """
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "a socket" if stat.S_ISSOCK(mode) else "a special file")


def open_input(source: str | os.PathLike[str]) -> IO[bytes]:
    """Open an input file (a path or a URL) for reading bytes.

    A local path that is not a regular file or a folder (see :func:`special`) raises
    :class:`OSError`, without blocking on a FIFO that has no writer.
    """
    where = location(source)
    if isinstance(where, Path):
        return open_file(where)
    fs, path = filesystem(where)
    return fs.open(path, "rb")  # type: ignore[no-any-return]


def open_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a local file for reading bytes; raise :class:`OSError` for one that :func:`special` names.

    The file object owns the descriptor from the moment it is open, so an error or a signal
    at any point closes it once and comes out as itself.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # a FIFO's open never blocks
    handle = open(path, "rb", opener=lambda name, _: os.open(name, flags))  # noqa: SIM115 (returned)
    try:
        kind = special(os.fstat(handle.fileno()).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
    except BaseException:
        handle.close()
        raise
    return handle  # reading a regular file never blocks, O_NONBLOCK or not


def expand_url(url: str, wanted: Callable[[PurePosixPath], bool]) -> list[str]:
    """The files at ``url`` as URLs, sorted: the file, a folder's files that are ``wanted``, or a glob's matches."""
    fs, root = filesystem(url)
    fs.invalidate_cache()
    root = root.rstrip("/")
    if glob.has_magic(root):
        found = [path for path, info in fs.glob(root, detail=True).items() if info["type"] == "file"]
    elif fs.isdir(root):
        found = [path for path in fs.find(root) if wanted(PurePosixPath(path[len(root) :].lstrip("/")))]
    elif fs.isfile(root):
        found = [root]
    else:
        found = []
    return sorted(fs.unstrip_protocol(path) for path in found)


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path in it; a clear error when its implementation is missing."""
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"{url}: URLs need fsspec: pip install 'siq-schemas[cluster]'") from None
    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as error:  # e.g. "Install s3fs to access S3"; an unknown protocol
        raise StorageError(f"{url}: {error}") from None
