"""The files of an archive: sources (paths, folders, globs, URLs) expanded into input files, each once."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path, PurePath

from . import storage
from .exceptions import Unreadable

LINE_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
COMPRESSIONS = ("", ".gz", ".zst")
#: Every file name ending the readers take.
SUFFIXES = tuple(kind + compression for kind in LINE_SUFFIXES + JSON_SUFFIXES for compression in COMPRESSIONS)


def expand(sources: Iterable[str | os.PathLike[str]]) -> list[Path | str]:
    """The files of an archive, in a stable order, each once: paths, and URLs for sources at URLs.

    Directories, and those a glob pattern matches, are walked recursively for
    files with one of :data:`SUFFIXES` (see :func:`walk`); a folder in them that
    cannot be listed is kept in the list, so that reading it says why rather
    than its files being skipped unseen. A source that does not exist is taken
    as a glob pattern. A file reached twice (by a link, a hard link, or named
    twice) is listed once: under the first name that reached it without a
    link if there is one, else under the first name. Raises
    :class:`Unreadable` for a source that matches nothing, a folder without
    input files, and a named source that is neither a file nor a folder (a
    FIFO, ``/dev/zero``: see :func:`siq_schemas.storage.special`).
    A source may be an fsspec URL (``s3://bucket/archive/``, see :mod:`siq_schemas.storage`).
    """
    files: dict[object, Path | str] = {}
    for source in sources:
        path = storage.location(source)
        if isinstance(path, str):  # a URL: its files, as URLs
            found: list[Path] | list[str] = storage.expand_url(path, wanted)
        elif path.is_dir():
            found = walk(path)
        elif path.exists():
            found = [_named(path)]
        elif glob.has_magic(str(source)):
            found = _globbed(str(source))
        else:
            found = []
        if not found:
            raise Unreadable(_nothing(source, path), str(source))
        for file in found:
            identity = _identity(file)
            known = files.setdefault(identity, file)
            if known is not file and _linked(known) and not _linked(file):
                files[identity] = file
    return list(files.values())


#: The input files a folder may hold, for messages.
TAKEN = ".jsonl, .ndjson or .json files, plain, .gz or .zst"


def _nothing(source: str | os.PathLike[str], path: Path | str) -> str:
    """Why ``source`` gave no input file."""
    if isinstance(path, Path) and path.is_dir():
        return f"the folder holds no input files ({TAKEN}; names starting with _ or . skipped)"
    return "no file matches" if glob.has_magic(str(source)) else "no such file or directory"


def _globbed(pattern: str) -> list[Path]:
    """The files a glob pattern matches and the input files of the folders it matches (walked), sorted."""
    found: list[Path] = []
    for match in map(Path, glob.glob(pattern, recursive=True)):
        found += walk(match) if match.is_dir() else [match] if match.is_file() else []
    return sorted(found)


def _named(path: Path) -> Path:
    """A source named as a file; :class:`Unreadable` when it is no file to read (a FIFO, a device)."""
    kind = storage.special(path.stat().st_mode)
    if kind is not None:
        raise Unreadable(f"{kind}, not a regular file", str(path))
    return path


def _identity(file: Path | str) -> object:
    """What tells one file from another: its device and inode (a URL: itself; a path that cannot be seen: itself)."""
    if isinstance(file, str):
        return file
    try:
        info = file.stat()
    except OSError:
        return storage.key(file)
    return info.st_dev, info.st_ino


def _linked(file: Path | str) -> bool:
    """Whether a path reaches its file through a symbolic link."""
    return isinstance(file, Path) and os.path.realpath(file) != os.path.abspath(file)


#: Walking a source folder skips the names that start with these (see :func:`walk`).
SKIPPED = ("_", ".")


def wanted(relative: PurePath) -> bool:
    """Whether a file found below a source folder or URL is input: see :func:`walk`."""
    return relative.name.endswith(SUFFIXES) and not any(part.startswith(SKIPPED) for part in relative.parts)


def walk(root: Path) -> list[Path]:
    """The input files below ``root`` and the folders that could not be listed, sorted.

    Like pyarrow datasets, a walk skips names that start with ``_`` or ``.``
    (``_manifest.json``, ``_expected.json``, ``.git/``); name such a file
    explicitly to read it. Links to folders are followed once the folders
    themselves are walked, so a file keeps its own name where it has one; a
    folder reached again (by a second link, or by a link to a folder above it:
    a loop) is not walked again.
    """
    found: list[Path] = []
    walked: set[tuple[int, int]] = set()

    def unlisted(error: OSError) -> None:
        found.append(Path(error.filename))

    def first(folder: str) -> bool:
        try:
            info = os.stat(folder)
        except OSError:
            return True  # walking it says why it cannot be listed
        identity = info.st_dev, info.st_ino
        fresh = identity not in walked
        walked.add(identity)
        return fresh

    tops = [str(root)]
    for top in tops:  # the root, then each folder linked from a folder walked
        if not first(top):
            continue
        for folder, folders, names in os.walk(top, onerror=unlisted):
            kept = []
            for name in sorted(folders):
                path = os.path.join(folder, name)
                if name.startswith(SKIPPED):
                    continue
                if os.path.islink(path):
                    tops.append(path)
                elif first(path):
                    kept.append(name)
            folders[:] = kept
            inputs = (Path(folder, name) for name in names if wanted(PurePath(name)))
            found.extend(path for path in inputs if path.is_file())
    return sorted(found)
