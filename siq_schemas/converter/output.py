"""The output of a run: a folder of Parquet tables with its manifest, replaced whole or not at all.

A run sees its output through :class:`Output` (see :func:`opened`): the
previous output's manifest, the local ``folder`` holding the previous output
(what the merge reads), :meth:`Output.prepare` (a fresh folder to build the new
output in) and :meth:`Output.commit` (put it in place). The readers are
:func:`read_manifest`, :func:`table_files` and :func:`read_table`.

A local output is built in a sibling folder and only then put in place, with
one atomic directory exchange where the system has one (Linux
``renameat2(RENAME_EXCHANGE)``), else two renames. A run that dies part-way
leaves the previous output as it was; the next run removes the leftovers.

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

import ctypes
import ctypes.util
import glob
import json
import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

from .. import _lock
from ..exceptions import OutputError, StorageError
from ..storage import filesystem, location
from ..tables import DRIFT, FORMAT, MANIFEST

_TEMP_MARK = ".siq-tmp-"
_OLD_MARK = ".siq-old-"


class Output:
    """A local output folder as a run replaces it (hold it with :func:`opened`)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name  # as the report names it
        self.folder = folder  # the folder that holds the previous output, and the new one once committed

    def previous(self) -> dict[str, Any] | None:
        """The manifest of the output as it is, or None when there is none yet."""
        return read_manifest(self.folder)

    def prepare(self) -> Path:
        """Check the folder can take a siq output, recover from an interrupted commit, and make a temp folder."""
        return prepare(self.folder)

    def commit(self, temp: Path) -> None:
        """Put the new output built in ``temp`` in place of the previous one, atomically."""
        commit(temp, self.folder)


class RemoteOutput(Output):
    """An output at a URL: the previous one downloaded into a local folder, the new one published from there."""

    def __init__(self, url: str, folder: Path) -> None:
        super().__init__(url, folder)
        self.fs, root = filesystem(url)
        self.root = root.rstrip("/")
        self.committed = False
        _fetch(self.fs, self.root, url, folder)

    def commit(self, temp: Path) -> None:
        """Commit locally; the output is published when the run ends (see :func:`opened`)."""
        super().commit(temp)
        self.committed = True

    def publish(self) -> None:
        """Upload the new output under new names, write its manifest (the commit point), delete the old files."""
        _publish(self.fs, self.root, self.folder)


@contextmanager
def opened(out: str | os.PathLike[str], wait: bool = False) -> Iterator[Output]:
    """The output at ``out`` (a folder, or a URL), held by this run alone while in the block.

    A local output is held by its lock (:mod:`siq_schemas._lock`; with ``wait``,
    waiting for another run to let it go); one at a URL is built in a local
    temporary folder that goes when the block ends, and published when the
    block ends without an error after a commit: a failed upload is the
    store's own error, not one of the local output.
    """
    where = location(out)
    if isinstance(where, Path):
        folder = target(where)
        with _lock.held(folder, wait):
            yield Output(str(where), folder)
        return
    with tempfile.TemporaryDirectory(prefix="siq-out-") as temp:
        remote = RemoteOutput(where, Path(temp) / "out")
        yield remote
        if remote.committed:
            remote.publish()


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


def read_table(out: str | os.PathLike[str], name: str) -> Any:
    """One output table of ``out`` (a folder, or a URL) as a pandas DataFrame."""
    import pyarrow.parquet as pq

    from ..tables import TABLES

    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    where = location(out)
    if isinstance(where, Path):
        return pq.read_table(where / name, schema=TABLES[name].schema).to_pandas()
    fs, _ = filesystem(where)
    paths = [fs._strip_protocol(file) for file in table_files(where, name)]  # the files its manifest lists
    return pq.read_table(paths, filesystem=fs, schema=TABLES[name].schema).to_pandas()


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


def write_manifest(
    temp: Path, inputs: dict[str, dict[str, Any]], settings: dict[str, Any], report: dict[str, Any]
) -> None:
    """Write the output's ``_manifest.json``: its format, the settings that decided its rows, its inputs, and
    ``report`` (a :class:`~siq_schemas.converter.report.Report` as a dict: the last run and the tables' counts).

    Each input is known by its bytes (``size``, ``sha256``) and by its last
    complete record: ``offset`` (in its decompressed data), ``lines`` and
    ``prefix_sha256`` (of the data up to there), with the ``pending`` bytes after it.
    """
    manifest = {
        "format": FORMAT,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {name: version(name) for name in ("siq-schemas", "pyarrow", "duckdb", "jsonschema-rs")},
        "settings": settings,
        "inputs": sorted(inputs.values(), key=lambda entry: entry["path"]),
        "last_run": {key: value for key, value in report.items() if key != "tables"},
        "tables": report["tables"],
    }
    (temp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- a local output


def target(out: Path) -> Path:
    """The folder a run writes for ``--out`` ``out``: ``out`` itself (absolute), or where it links to.

    The commit renames folders, and renaming a link would replace the link, not
    what it points to: a run writes at the link's target, and holds its lock
    and temporary folder beside that.
    """
    out = out.absolute()
    return Path(os.path.realpath(out)) if out.is_symlink() else out


def prepare(out: Path) -> Path:
    """Check ``out`` can take a siq output, recover from an interrupted commit, and make a temp folder."""
    out = out.absolute()
    parent = out.parent
    if "?" in str(out):  # DuckDB reads what follows a `?` in a database's path as options
        raise OutputError(f"{out}: the merge (DuckDB) cannot work in a path holding `?`; choose another --out")
    own = glob.escape(out.name)  # only this output's leftovers, whatever its name holds (`o*`, `out[1]`)
    for leftover in parent.glob(f"{own}{_OLD_MARK}*"):
        if not out.exists():  # died between the two renames of a commit: finish it
            leftover.rename(out)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in parent.glob(f"{own}{_TEMP_MARK}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MANIFEST).exists():
            raise OutputError(f"{out}: not empty and not a siq output (no {MANIFEST}); choose another --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temp = parent / f"{out.name}{_TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"  # a fresh name per run
        temp.mkdir()
    except OSError as error:
        raise OutputError(f"{out}: cannot write here ({error.strerror or error})") from None
    return temp


def commit(temp: Path, out: Path) -> None:
    """Put the finished output ``temp`` in place of ``out`` atomically, then remove the old one."""
    out = out.absolute()
    _fsync_tree(temp)
    if not out.exists():
        temp.rename(out)
    elif _exchange(temp, out):
        shutil.rmtree(temp, ignore_errors=True)
    else:
        old = out.parent / f"{out.name}{_OLD_MARK}{os.getpid()}"
        out.rename(old)
        temp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux), or say it cannot be done here."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _fsync_tree(folder: Path) -> None:
    for root, _, names in os.walk(folder):
        for name in names:
            with open(Path(root) / name, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
