"""The batch job: archives of deliveries to Parquet tables, as plan -> stage -> merge -> account -> commit.

A run plans what to read (:mod:`~siq_schemas.converter.plan`), stages each file
(read, verify, parse, validate, identify and flatten it, :mod:`~siq_schemas.converter.stage`)
on an engine (:mod:`~siq_schemas.converter.engines`) into the staging folder
(:mod:`~siq_schemas.converter.staging`), merges the staged rows with the previous
output, deduplicated and folded in DuckDB (:mod:`~siq_schemas.converter.merge`),
checks the counts (:mod:`~siq_schemas.converter.report`), and commits the new
output atomically (:mod:`~siq_schemas.converter.output`).

Every input record ends as exactly one of: a new event, a duplicate, a
reject. ``records_read = events_written + duplicates + rejected`` is checked
at the end of every run, from independent counts: records read and rejected
as the workers counted them, events written as the tables hold them,
duplicates as the merge found them, and the reject rows the run added.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import duckdb

from .. import _signals, drift
from ..exceptions import OutputError, RunFailed, SiqSchemasError
from ..inputs import expand
from ..keys import as_keyring
from ..read import LIMITS, Limits
from . import engines, merge, output
from .plan import plan_run, ranges_for
from .report import Report, account, tally
from .staging import Staging
from .tuning import TUNING, Tuning


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
    rebuild: bool = False,
    wait: bool = False,
    tuning: Tuning = TUNING,
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

    A file is known by its last complete record: a grown file is resumed after
    it, an unterminated last line that does not parse is left for the next run
    (``Report.pending``), and the compressed copy of a file already read
    (``a.jsonl.gz`` of ``a.jsonl``) is read only past what was read of it. When
    the keys, ``allow_unsigned``, the limits or the output format differ from
    the previous run's, or a file changed other than by growing (or
    ``rebuild=True``), the output is rebuilt from the sources: ``sources`` and
    the inputs the output knows that still exist (those gone are left out, with
    a warning on the ``siq_schemas`` logger, and named in ``Report.gone``).

    Raises :class:`~siq_schemas.exceptions.OutputError` when the output cannot be
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

    ``tuning`` (a :class:`~siq_schemas.converter.tuning.Tuning`) sizes the run's
    passes and batches: it changes speed and memory, never the tables.

    ``engine="dask"`` stages the files as tasks on the Dask cluster at
    ``scheduler`` (a local cluster of ``workers`` processes without one; see
    :mod:`siq_schemas.converter._dask`). Sources and ``out`` may be fsspec URLs
    (``s3://bucket/out``, see :mod:`siq_schemas.storage` and :mod:`siq_schemas.converter.output`).
    """
    engines.check(engine, scheduler)
    started = time.perf_counter()
    limits = Limits(max_record_bytes, max_depth, max_ratio)
    paths = expand([sources] if isinstance(sources, str | os.PathLike) else sources)
    keyring = None if keys is None else as_keyring(keys)
    workers = workers or os.cpu_count() or 1
    with _signals.handled() as interrupted, output.opened(out, wait) as held:
        previous, report = held.previous(), Report(out=held.name)
        temp = held.prepare()
        try:
            run = plan_run(
                paths,
                held.folder,
                previous,
                report,
                keyring,
                allow_unsigned,
                limits,
                temp / "_stage",
                rebuild,
                tuning,
                workers,
            )
            report = run.report
            if run.unchanged:  # nothing new: the output stays as it is
                shutil.rmtree(temp)
                report.tables, report.drift = dict(run.before), len(drift.merged(drift.read(held.folder)))
                report.seconds = time.perf_counter() - started
                return report
            results = engines.stage(run.tasks, workers, progress, engine, scheduler, tuning.parallel_bytes)
            tally(results, run.inputs, report)
            report.drift = len(drift.save(temp, run.base, ((r.input, r.drift, r.resumed) for r in results)))
            if progress:
                print(f"siq convert: merging {report.records_read:,} records into the tables...", file=sys.stderr)
            staging = Staging(temp / "_stage", run.buckets)
            ranges = ranges_for(run.size, tuning, max((result.widest for result in results), default=0))
            report.tables, report.duplicates = merge.build(staging, temp, run.base, workers, ranges, tuning)
            account(report, run.before)
            report.seconds = time.perf_counter() - started
            output.write_manifest(temp, run.inputs, run.settings, report.to_dict())
            staging.remove()
            with _signals.held_back(drop=True):  # a stop signal now is too late: the new output is going in place
                held.commit(temp)
        except BaseException as error:
            with _signals.held_back():  # a second Ctrl-C does not cut the cleanup short
                shutil.rmtree(temp, ignore_errors=True)
            failure = _failure(error, held.folder, interrupted) if isinstance(error, Exception) else None
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
    :class:`~siq_schemas.exceptions.OutputError`, a worker that died a
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
        return OutputError(f"{out}: cannot write the new output ({reason}); the previous output is unchanged")
    return None
