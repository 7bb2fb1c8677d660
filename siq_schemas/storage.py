"""Object storage: archives and outputs at fsspec URLs (``s3://``, ``gs://``, ``memory://`` ...).

A source or an output is a local path or a URL. Paths stay paths and ``file://``
URLs become paths; any other URL is read and written through fsspec, which is
imported only then. Credentials and options come from each filesystem's usual
places (``AWS_*`` variables and ``~/.aws`` for S3, Google application default
credentials for GCS) and from fsspec's own configuration
(``FSSPEC_<PROTOCOL>_<OPTION>`` variables, ``~/.config/fsspec/``).

An object store has no atomic rename, so an output at a URL is committed by its
manifest instead. The run builds the new output in a local folder, as for a
local output (after downloading the previous one, for an incremental run), then
publishes it:

1. every file is uploaded under a new name, unique to the run
   (``events/part-00000-<run>.parquet``), next to the files of the previous output;
2. ``_manifest.json`` is written: its ``objects`` map lists the output's current
   files. Writing one object is atomic, so this is the commit point;
3. ``_drift.json`` is copied for plain readers, then the files that no manifest
   lists any more (the previous output's, or those of a run that died before its
   manifest) are deleted.

:func:`read_table`, :func:`table_files` and the next run read the manifest, so they see
one whole output, never a mix. A reader that lists ``OUT/<table>/*.parquet``
itself can see the new files next to the old ones between steps 1 and 3.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from ._text import path_text
from .exceptions import OutputError, StorageError

if TYPE_CHECKING:
    from .pipeline import Report

#: The files of an output beside its tables: what it holds and how it was made, and its schema drift.
MANIFEST = "_manifest.json"
DRIFT = "_drift.json"
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
    """Open a local file for reading bytes; raise :class:`OSError` for one that :func:`special` names."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # a FIFO's open never blocks
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        kind = special(mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
        return open(descriptor, "rb")  # reading a regular file never blocks, O_NONBLOCK or not
    except BaseException:
        os.close(descriptor)
        raise


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


# ---------------------------------------------------------------------------- outputs at a URL


def convert_to(url: str, build: Callable[[Path], Report]) -> Report:
    """Run ``build`` on a local folder holding the output at ``url``, then publish what it wrote there."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="siq-out-") as folder:
        local = Path(folder) / "out"
        before = _fetch(fs, root, url, local)
        report = build(local)
        if (local / MANIFEST).read_bytes() != before:  # the run wrote a new output
            _publish(fs, root, local)
    report.out = url
    return report


def read_manifest(out: Path | str) -> dict[str, Any] | None:
    """The manifest of the output at ``out`` (a folder, or a URL), or None when there is no output yet."""
    where: Path | str = out / MANIFEST if isinstance(out, Path) else f"{out.rstrip('/')}/{MANIFEST}"
    failure: type[OutputError | StorageError] = OutputError if isinstance(out, Path) else StorageError
    read = (out / MANIFEST).read_bytes if isinstance(out, Path) else _remote_file(out, MANIFEST)
    try:
        data = read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise failure(f"{where}: unreadable manifest ({error}); remove the folder to start again") from None
    try:
        manifest: dict[str, Any] = json.loads(data)
    except ValueError as error:
        raise failure(f"{where}: unreadable manifest ({error}); remove the folder to start again") from None
    return manifest


def _remote_file(url: str, name: str) -> Callable[[], bytes]:
    """What reads file ``name`` of the output at ``url`` afresh (not from fsspec's cache of listings)."""
    fs, root = filesystem(url)
    fs.invalidate_cache()
    return lambda: fs.cat_file(f"{root.rstrip('/')}/{name}")


def table_files(out: str | os.PathLike[str], name: str) -> list[str]:
    """The Parquet files of table ``name`` of output ``out``, as paths or URLs (what DuckDB and Spark take).

    For an output at a URL, the files its manifest lists: those of one whole, committed run.
    """
    where = location(out)
    if isinstance(where, Path):
        return sorted(str(path) for path in (where / name).glob("*.parquet"))
    manifest = read_manifest(where)
    if manifest is None:
        raise StorageError(f"{where}: no siq output here (no {MANIFEST})")
    base = where.rstrip("/")
    objects = manifest.get("objects")
    if objects is None:  # an output copied up as it was written locally: its folders are as listed
        fs, root = filesystem(base)
        return sorted(fs.unstrip_protocol(path) for path in fs.glob(f"{root.rstrip('/')}/{name}/*.parquet"))
    return sorted(f"{base}/{remote}" for local, remote in objects.items() if local.startswith(f"{name}/"))


def read_table(url: str, name: str, schema: Any) -> Any:
    """Table ``name`` of the output at ``url`` as a pandas DataFrame, from the files its manifest lists."""
    import pyarrow.parquet as pq

    fs, _ = filesystem(url)
    paths = [fs._strip_protocol(file) for file in table_files(url, name)]
    return pq.read_table(paths, filesystem=fs, schema=schema).to_pandas()


def _fetch(fs: Any, root: str, url: str, local: Path) -> bytes | None:
    """Download the output at ``root`` (its manifest and the files it lists) into ``local``; the manifest's bytes."""
    manifest = read_manifest(url)
    if manifest is None:
        if fs.exists(root) and fs.find(root):
            raise StorageError(f"{url}: not empty and not a siq output (no {MANIFEST}); choose another --out")
        return None
    objects = manifest.get("objects") or {
        path[len(root) + 1 :]: path[len(root) + 1 :] for path in fs.find(root) if not path.endswith(f"/{MANIFEST}")
    }
    targets = [local / name for name in objects]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    if objects:
        fs.get([f"{root}/{remote}" for remote in objects.values()], [str(target) for target in targets])
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    (local / MANIFEST).write_bytes(data)
    return data


def _publish(fs: Any, root: str, local: Path) -> None:
    """Upload the output in ``local`` to ``root`` under new names, commit it by its manifest, delete the old files."""
    run = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    files = sorted(path.relative_to(local).as_posix() for path in local.rglob("*") if path.is_file())
    objects = {name: _unique(name, run) for name in files if name != MANIFEST}
    if objects:
        fs.put([str(local / name) for name in objects], [f"{root}/{remote}" for remote in objects.values()])
    manifest = json.loads((local / MANIFEST).read_text(encoding="utf-8")) | {"objects": objects}
    fs.pipe_file(f"{root}/{MANIFEST}", json.dumps(manifest, indent=2).encode() + b"\n")  # the commit point
    if DRIFT in objects:
        fs.put_file(str(local / DRIFT), f"{root}/{DRIFT}")
    _collect(fs, root, set(objects.values()) | {MANIFEST, DRIFT})


def _unique(name: str, run: str) -> str:
    """``events/part-00000.parquet`` as ``events/part-00000-<run>.parquet``."""
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.name.split('.')[0]}-{run}{''.join(path.suffixes)}"))


def _collect(fs: Any, root: str, keep: Iterable[str]) -> None:
    """Delete the files under ``root`` that the committed manifest does not list."""
    kept = set(keep)
    fs.invalidate_cache()
    stale = [path for path in fs.find(root) if path[len(root) + 1 :] not in kept]
    if stale:
        fs.rm(stale)
