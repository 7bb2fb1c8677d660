"""Write stage: staged batches, final Parquet tables, the manifest, and the atomic commit.

A run builds the complete new output in a sibling folder and only then puts
it in place, with one atomic directory exchange where the system has one
(Linux ``renameat2(RENAME_EXCHANGE)``), else two renames. A run that dies
part-way leaves the previous output as it was; the next run removes the
leftovers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .exceptions import OutputError
from .storage import MANIFEST

#: Rows per Parquet file of a final table (a file is closed at the first row group past it).
ROWS_PER_FILE = 1_000_000
#: Data per row group of a final table.
ROW_GROUP_BYTES = 32 << 20
_TEMP_MARK = ".siq-tmp-"
_OLD_MARK = ".siq-old-"


def write_staged(tables: dict[str, pa.Table], stage: Path, name: str, buckets: int = 1) -> None:
    """Write one batch of staged tables as ``stage/<table>/bNN/<name>.parquet`` (empty ones are skipped).

    Rows are split into ``buckets`` by the first hex digit of their ``event_key``
    (see :func:`bucket_sql`), so that the merge can take one bucket at a time.
    """
    for table, data in tables.items():
        if not data.num_rows:
            continue
        if buckets > 1 and "event_key" in data.column_names:
            ids = pa.array([int(key[0], 16) % buckets for key in data.column("event_key").to_pylist()])
            parts = [(bucket, data.filter(pc.equal(ids, bucket))) for bucket in range(buckets)]
        else:
            parts = [(0, data)]
        for bucket, part in parts:
            if part.num_rows:
                folder = stage / table / f"b{bucket:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, folder / f"{name}.parquet", compression="zstd")


def bucket_sql(bucket: int, buckets: int) -> str:
    """The SQL condition true for the rows of ``bucket`` (as split by :func:`write_staged`)."""
    return f"(instr('0123456789abcdef', left(event_key, 1)) - 1) % {buckets} = {bucket}"


def write_table(batches: Iterator[pa.RecordBatch], schema: pa.Schema, folder: Path) -> int:
    """Write ``batches`` (cast to ``schema``) as ``folder/part-NNNNN.parquet``; return the row count.

    Batches are gathered into row groups of about :data:`ROW_GROUP_BYTES`, so
    memory stays bounded whatever the table's size. A table with no rows
    still gets one file holding its schema, so every table can be read, with
    the same columns, in every run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = part = in_file = 0
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []

    def flush() -> None:
        nonlocal writer, part, in_file
        if writer is None or in_file >= ROWS_PER_FILE:
            if writer is not None:
                writer.close()
            writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema, compression="zstd")
            part += 1
            in_file = 0
        group = pa.Table.from_batches(pending, schema=schema)
        writer.write_table(group, row_group_size=group.num_rows)
        in_file += group.num_rows
        pending.clear()

    for batch in batches:
        if batch.num_rows:
            pending.append(_cast(batch, schema))
            rows += batch.num_rows
            if sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES:
                flush()
    if pending:
        flush()
    if writer is None:
        pq.write_table(schema.empty_table(), folder / "part-00000.parquet", compression="zstd")
    else:
        writer.close()
    return rows


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [batch.column(field.name).cast(field.type) for field in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


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
