"""The batch job: archives of deliveries to Parquet tables.

read -> verify -> parse -> validate -> dedupe -> flatten -> write (and merge). Files are
staged in parallel (one process per file, up to ``workers``; :mod:`siq_schemas._stage`): each record is
read, its signature checked, its body parsed and validated, its identity
computed and its rows flattened into Arrow batches written to a staging area.
Then the staged rows are merged with the previous output, deduplicated and
folded in DuckDB (:mod:`siq_schemas.merge`), and the new output replaces the old one atomically.

Every input record ends as exactly one of: a new event, a duplicate, a
reject. ``records_read = events_written + duplicates + rejected`` is checked
at the end of every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from . import _lock, _signals, _workers, drift, merge, storage, write
from ._stage import FileResult, Task, stage_file
from .exceptions import SiqSchemasError, Unreadable
from .keys import Keyring, as_keyring
from .read import LIMITS, Limits, expand
from .tables import TABLES

#: Input (as JSON) merged per pass: above it, rows are bucketed by event key (see :func:`_buckets`).
BUCKET_BYTES = 256 << 20
#: Input (as JSON) per range of event times sorted on its own (see :func:`siq_schemas.merge.build`), in at most
#: :data:`RANGES` ranges (4 GB of JSON at most ranges of 64 MB).
RANGE_BYTES = 64 << 20
RANGES = 64
#: Archives smaller than this are staged in this process: starting workers would cost more.
PARALLEL_BYTES = 4 << 20
#: The engines that can stage the files: this machine's processes, or a Dask cluster.
ENGINES = ("local", "dask")
REASONS = ("unreadable", "signature-missing", "signature-invalid", "unknown-event", "schema-invalid")


class AccountingError(SiqSchemasError, AssertionError):
    """records_read != events_written + duplicates + rejected: a record went missing (a bug)."""

    code = "accounting"


class RunFailed(SiqSchemasError, RuntimeError):
    """The run stopped part-way for a reason outside it (a worker process was killed); the output is as it was."""

    code = "run-failed"


@dataclass
class Report:
    """What a run did. ``records_read = events_written + duplicates + rejected`` always holds."""

    out: str
    files: int = 0
    files_unchanged: int = 0
    records_read: int = 0
    events_written: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank_lines: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    drift: int = 0  # findings in the output's _drift.json
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.records_read == self.events_written + self.duplicates + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rate = self.records_read / self.seconds if self.seconds else 0.0
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in self.rejected_by_reason.items() if count)
        lines = [
            f"{self.files:,} files ({self.files_unchanged:,} unchanged, skipped), {self.records_read:,} records "
            f"in {self.seconds:.1f} s ({rate:,.0f} records/s)",
            f"  events written  {self.events_written:>10,}",
            f"  duplicates      {self.duplicates:>10,}",
            f"  rejected        {self.rejected:>10,}" + (f"  ({reasons})" if reasons else ""),
            f"  blank lines     {self.blank_lines:>10,}",
            f"  records_read = events_written + duplicates + rejected: {self.records_read:,} = "
            f"{self.events_written:,} + {self.duplicates:,} + {self.rejected:,}"
            + (" ok" if self.balanced else " FAILED"),
            f"tables in {self.out}:",
            *(f"  {name:<20}{rows:>10,}" for name, rows in self.tables.items()),
        ]
        if self.drift:
            lines.append(
                f"drift: {self.drift:,} findings the schemas do not describe, listed in "
                f"{self.out.rstrip('/')}/{drift.REPORT} (`siq drift SOURCE...` prints them)"
            )
        return "\n".join(lines)


def convert(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    keys: Any = None,
    allow_unsigned: bool = False,
    workers: int | None = None,
    progress: bool = False,
    max_record_bytes: int = LIMITS.max_record_bytes,
    max_depth: int = LIMITS.max_depth,
    max_ratio: int = LIMITS.max_ratio,
    engine: str = "local",
    scheduler: str | None = None,
    wait: bool = False,
) -> Report:
    """Convert an archive to the Parquet tables of ``out``; return the :class:`Report`.

    ``sources`` are files, directories or glob patterns. ``keys`` is a
    :class:`~siq_schemas.keys.Keyring` or what :func:`~siq_schemas.keys.load_keys`
    takes (one source or a list); without keys nothing is verified. Bare
    payloads need ``allow_unsigned=True`` when keys are given. Running again
    over the same or a grown archive adds only what is new; the result equals
    a fresh conversion of everything. ``workers`` defaults to the CPU count.

    A record longer than ``max_record_bytes``, nested deeper than ``max_depth``,
    or in a compressed file expanding more than ``max_ratio`` times is an
    ``unreadable`` reject (see :class:`~siq_schemas.read.Limits`). A file that
    cannot be opened is one ``unreadable`` reject, and is read again next run.

    Raises :class:`~siq_schemas.write.OutputError` when the output cannot be
    written (a full disk, a folder without write permission), ``KeyboardInterrupt``
    when interrupted (Ctrl-C) and :class:`~siq_schemas.exceptions.Terminated`
    on SIGTERM or SIGHUP (while it runs in the main thread, ``convert`` handles
    those signals, then puts the previous handlers back); the previous output is
    then as it was, and the run's worker processes are stopped.

    One run writes an output at a time: a run holds a lock beside it
    (``OUT.siq-lock``, see :mod:`siq_schemas._lock`) and raises
    :class:`~siq_schemas.exceptions.LockError` naming the holder when another
    run holds it, or with ``wait=True`` waits for it. ``out`` may be a link to
    a folder: the run writes where it points.

    ``engine="dask"`` stages the files as tasks on the Dask cluster at
    ``scheduler`` (a local cluster of ``workers`` processes without one; see
    :mod:`siq_schemas._dask`). Sources and ``out`` may be fsspec URLs
    (``s3://bucket/out``, see :mod:`siq_schemas.storage`).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise ValueError("a scheduler address needs engine='dask'")
    target = storage.location(out)
    if isinstance(target, str):  # built in a local folder, then published
        options = {"keys": keys, "allow_unsigned": allow_unsigned, "workers": workers, "progress": progress}
        options |= {"max_record_bytes": max_record_bytes, "max_depth": max_depth, "max_ratio": max_ratio}
        options |= {"engine": engine, "scheduler": scheduler, "wait": wait}
        return storage.convert_to(target, lambda local: convert(sources, local, **options))
    started = time.perf_counter()
    limits = Limits(max_record_bytes, max_depth, max_ratio)
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    paths = expand(sources)
    keyring = None if keys is None else as_keyring(keys)
    out_path = write.target(target)
    with _signals.handled() as interrupted, _lock.held(out_path, wait):
        previous = write.read_manifest(out_path)
        report = Report(out=str(target))
        temp = write.prepare(out_path)
        try:
            tasks, inputs = _plan(paths, previous, keyring, allow_unsigned, temp / "_stage", report)
            size = _merged_size(tasks, out_path if previous else None)
            buckets, ranges = _buckets(size), _ranges(size)
            tasks = [replace(task, buckets=buckets, limits=limits) for task in tasks]
            if previous is not None and not tasks:  # nothing new: the output stays as it is
                shutil.rmtree(temp)
                report.tables = dict(previous["tables"])
                report.drift = len(drift.merged(drift.read(out_path)))
                report.seconds = time.perf_counter() - started
                return report
            results = _run(tasks, workers or os.cpu_count() or 1, progress, engine, scheduler)
            _tally(results, inputs, report)
            found = ((result.input, result.drift, result.resumed) for result in results)
            report.drift = len(drift.save(temp, out_path if previous else None, found))
            if progress:
                print(f"siq convert: merging {report.records_read:,} records into the tables...", file=sys.stderr)
            report.tables = merge.build(
                temp, out_path if previous else None, workers or os.cpu_count() or 1, buckets, ranges
            )
            previous_events = (previous or {}).get("tables", {}).get("events", 0)
            accepted = report.records_read - report.rejected
            report.events_written = report.tables["events"] - previous_events
            report.duplicates = accepted - report.events_written
            if not report.balanced or report.duplicates < 0:
                raise AccountingError(f"records went missing: {report.to_dict()}")
            report.seconds = time.perf_counter() - started
            _write_manifest(temp, inputs, report)
            shutil.rmtree(temp / "_stage", ignore_errors=True)
            shutil.rmtree(temp / "_spill", ignore_errors=True)
            write.commit(temp, out_path)
        except BaseException as error:
            with _signals.held_back():  # a second Ctrl-C does not cut the cleanup short
                shutil.rmtree(temp, ignore_errors=True)
            failure = _failure(error, out_path, interrupted) if isinstance(error, Exception) else None
            if failure is not None:
                raise failure from error
            raise
    return report


def _failure(error: Exception, out: Path, stopped: list[int] | None = None) -> BaseException | None:
    """What a run that stopped part-way raises instead of ``error`` (None: ``error`` itself).

    After a stop signal (the first of ``stopped``) it is that signal's
    exception, whatever the error: DuckDB and pyarrow turn the interrupt into
    errors of their own. A full disk or a folder that cannot be written (an
    ``OSError``, or DuckDB's I/O, transaction, memory or fatal errors) is an
    :class:`~siq_schemas.write.OutputError`, a worker that died a
    :class:`RunFailed`: one clear line, not a traceback.
    """
    if stopped:
        return _signals.stop(stopped[0])
    if isinstance(error, SiqSchemasError):
        return None
    if isinstance(error, BrokenProcessPool):
        return RunFailed("a worker process died (killed, or out of memory?); the previous output is unchanged")
    if isinstance(error, OSError | duckdb.OperationalError | duckdb.FatalException | duckdb.PermissionException):
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip().splitlines()[0]
        return write.OutputError(f"{out}: cannot write the new output ({reason}); the previous output is unchanged")
    return None


def read_table(out: str | os.PathLike[str], name: str) -> Any:
    """One output table of ``out`` (a folder, or a URL) as a pandas DataFrame."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    where = storage.location(out)
    if isinstance(where, str):
        return storage.read_table(where, name, TABLES[name].schema)
    return pq.read_table(where / name, schema=TABLES[name].schema).to_pandas()


# ---------------------------------------------------------------------------- planning


def _plan(
    paths: list[Path | str],
    previous: dict[str, Any] | None,
    keyring: Keyring | None,
    allow_unsigned: bool,
    stage: Path,
    report: Report,
) -> tuple[list[Task], dict[str, dict[str, Any]]]:
    """Which files to read and from which line: unchanged files are skipped, grown ones resumed."""
    known = {entry["path"]: entry for entry in (previous or {}).get("inputs", [])}
    inputs = dict(known)
    pems = tuple(key.pem() for key in keyring) if keyring else None
    tasks = []
    report.files = len(paths)
    for index, path in enumerate(paths):
        key = storage.key(path)  # one key however the path was spelled (relative, .., links)
        old = known.get(key)
        try:
            size, digest, prefix_digest = _fingerprint(path, old["size"] if old else None)
        except Unreadable:  # staged as one reject, and not again while it stays unreadable
            if old and old["sha256"] is None:
                report.files_unchanged += 1
                continue
            size, digest, prefix_digest = 0, None, None
        entry = {"path": key, "size": size, "sha256": digest, "lines": 0}
        if old and old["size"] == size and old["sha256"] == digest:
            report.files_unchanged += 1
            continue
        skip = old["lines"] if old and size > old["size"] and prefix_digest == old["sha256"] else 0
        entry["lines"] = skip
        inputs[key] = entry
        tasks.append(Task(str(path), index, skip, pems, allow_unsigned, str(stage), size))
    return tasks, inputs


def _merged_size(tasks: list[Task], previous: Path | None) -> int:
    """About how much JSON the merge handles: what memory-bounded passes are sized by.

    Compressed inputs count eight times their size; the previous output's
    events (Parquet, compressed) count eight times theirs.
    """
    size = sum(task.size * (8 if task.path.endswith((".gz", ".zst")) else 1) for task in tasks)
    if previous is not None:
        size += 8 * sum(path.stat().st_size for path in (previous / "events").glob("*.parquet"))
    return size


def _buckets(size: int) -> int:
    """How many buckets of event keys to merge in: a power of two (at most 16) with about :data:`BUCKET_BYTES` each."""
    buckets = 1
    while buckets < 16 and size > buckets * BUCKET_BYTES:
        buckets *= 2
    return buckets


def _ranges(size: int) -> int:
    """How many ranges of event times to sort the tables in: one per :data:`RANGE_BYTES`, at most :data:`RANGES`."""
    return min(max(-(-size // RANGE_BYTES), 1), RANGES)


def _fingerprint(path: Path | str, prefix: int | None) -> tuple[int, str | None, str | None]:
    """Size and SHA-256 of a file, and the SHA-256 of its first ``prefix`` bytes."""
    digest = hashlib.sha256()
    prefix_digest = None
    done = 0
    try:
        with storage.open_input(path) as handle:
            while chunk := handle.read(1 << 20):
                if prefix is not None and done <= prefix < done + len(chunk):
                    digest.update(chunk[: prefix - done])
                    prefix_digest = digest.copy().hexdigest()
                    digest.update(chunk[prefix - done :])
                else:
                    digest.update(chunk)
                done += len(chunk)
    except OSError as error:
        raise Unreadable(error.strerror or str(error), str(path)) from None
    if prefix is not None and prefix == done:
        prefix_digest = digest.hexdigest()
    return done, digest.hexdigest(), prefix_digest


# ---------------------------------------------------------------------------- staging


def _run(
    tasks: list[Task], workers: int, progress: bool, engine: str = "local", scheduler: str | None = None
) -> list[FileResult]:
    """Stage every file, in parallel worker processes when there are several files and workers.

    With the ``dask`` engine, each file is a task on a Dask cluster instead (:mod:`siq_schemas._dask`).

    Workers (:mod:`siq_schemas._workers`) start before this process runs any
    thread (progress bar, DuckDB); on an error or a stop signal they are killed.
    """
    total = sum(task.size for task in tasks)
    with ExitStack() as stack:
        if engine == "dask":
            from ._dask import staged_on_cluster

            staged = stack.enter_context(staged_on_cluster(tasks, workers, scheduler))
        elif workers > 1 and len(tasks) > 1 and total >= PARALLEL_BYTES:
            staged = stack.enter_context(_workers.staged(tasks, min(workers, len(tasks))))
        else:
            staged = ((task, stage_file(task)) for task in tasks)
        bar = stack.enter_context(_progress(total, progress))
        results: list[FileResult] = []
        for task, result in staged:
            results.append(result)
            if progress:
                records = sum(sum(done.counts.values()) - done.counts["blank"] for done in results)
                bar.set_postfix(files=len(results), records=f"{records:,}", refresh=False)
                bar.update(task.size)
    return results


def _progress(total: int, enabled: bool) -> Any:
    """A progress bar over ``total`` bytes of input, or a stand-in that shows nothing."""
    if not enabled:
        return nullcontext()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="siq convert", dynamic_ncols=True)


def _tally(results: list[FileResult], inputs: dict[str, dict[str, Any]], report: Report) -> None:
    totals: Counter[str] = Counter()
    for result in results:
        totals.update(result.counts)
        inputs[result.input]["lines"] = result.lines
        if result.unopened:  # nothing of it was read: next run reads it whatever it holds
            inputs[result.input].update(size=0, sha256=None)
    report.blank_lines = totals["blank"]
    report.rejected_by_reason = {reason: totals[reason] for reason in REASONS}
    report.rejected = sum(report.rejected_by_reason.values())
    report.records_read = totals["accepted"] + report.rejected


def _write_manifest(temp: Path, inputs: dict[str, dict[str, Any]], report: Report) -> None:
    manifest = {
        "format": 1,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {name: version(name) for name in ("siq-schemas", "pyarrow", "duckdb", "jsonschema-rs")},
        "inputs": sorted(inputs.values(), key=lambda entry: entry["path"]),
        "last_run": {key: value for key, value in report.to_dict().items() if key != "tables"},
        "tables": report.tables,
    }
    (temp / write.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
