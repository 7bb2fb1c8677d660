"""The batch job: archives of deliveries to Parquet tables.

read -> verify -> parse -> validate -> dedupe -> flatten -> write (and merge). Files are
staged in parallel (one process per file, up to ``workers``; :mod:`siq_schemas._stage`): each record is
read, its signature checked, its body parsed and validated, its identity
computed and its rows flattened into Arrow batches written to a staging area.
Then the staged rows are merged with the previous output, deduplicated and
folded in DuckDB (:mod:`siq_schemas.merge`), and the new output replaces the old one atomically.

Every input record ends as exactly one of: a new event, a duplicate, a
reject. ``records_read = events_written + duplicates + rejected`` is checked
at the end of every run, from independent counts: records read and rejected
as the workers counted them, events written as the tables hold them,
duplicates as the merge found them, and the reject rows the run added.

A run is incremental: the manifest knows each input by its last complete
record (see :class:`~siq_schemas.read.Tail`), so a grown file is resumed
after it, and the settings that decide the rows (keys, signature policy,
limits, the output :data:`~siq_schemas.tables.FORMAT`). When those differ,
or an input changed other than by growing, the run rebuilds the output from
the sources: those of the run and the inputs the manifest knows that still exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

from . import _signals, _workers, drift, merge, output, storage
from ._stage import FileResult, Task, stage_file
from .exceptions import REASONS, AccountingError, OutputError, RunFailed, SiqSchemasError, Unreadable
from .keys import Keyring, as_keyring
from .read import EMPTY_SHA256, LIMITS, LINE_SUFFIXES, Limits, expand, lines_digest, prefix_digest
from .staging import Staging
from .tables import FORMAT, TABLES

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
#: Where a run says that it rebuilds the output, and which known inputs are gone (a warning each).
log = logging.getLogger("siq_schemas")


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
    pending: int = 0  # unterminated last lines left for the next run (one per file at most)
    rebuilt: str = ""  # why the output was rebuilt from the sources ("" when it was not)
    gone: list[str] = field(default_factory=list)  # known inputs that no longer exist, left out of a rebuild
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
        lines = [f"{self.rebuilt}: rebuilt from the sources"] if self.rebuilt else []
        lines += [
            f"{self.files:,} files ({self.files_unchanged:,} unchanged, skipped), {self.records_read:,} records "
            f"in {self.seconds:.1f} s ({rate:,.0f} records/s)",
            f"  events written  {self.events_written:>10,}",
            f"  duplicates      {self.duplicates:>10,}",
            f"  rejected        {self.rejected:>10,}" + (f"  ({reasons})" if reasons else ""),
            f"  blank lines     {self.blank_lines:>10,}",
            *[f"  {self.pending:,} unterminated line{'s' * (self.pending != 1)} left for the next run"][: self.pending],
            f"  records_read = events_written + duplicates + rejected: {self.records_read:,} = "
            f"{self.events_written:,} + {self.duplicates:,} + {self.rejected:,}"
            + (" ok" if self.balanced else " FAILED"),
            f"tables in {self.out}:",
            *(f"  {name:<20}{rows:>10,}" for name, rows in self.tables.items()),
        ]
        if self.drift:
            lines.append(
                f"drift: {self.drift:,} findings the schemas do not describe, listed in "
                f"{self.out.rstrip('/')}/{output.DRIFT} (`siq drift SOURCE...` prints them)"
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
    rebuild: bool = False,
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

    ``engine="dask"`` stages the files as tasks on the Dask cluster at
    ``scheduler`` (a local cluster of ``workers`` processes without one; see
    :mod:`siq_schemas._dask`). Sources and ``out`` may be fsspec URLs
    (``s3://bucket/out``, see :mod:`siq_schemas.storage` and :mod:`siq_schemas.output`).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise ValueError("a scheduler address needs engine='dask'")
    started = time.perf_counter()
    limits = Limits(max_record_bytes, max_depth, max_ratio)
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    paths = expand(sources)
    keyring = None if keys is None else as_keyring(keys)
    settings = _settings(keyring, allow_unsigned, limits)
    with _signals.handled() as interrupted, output.opened(out, wait) as held:
        out_path = held.folder
        previous = held.previous()
        report = Report(out=held.name)
        temp = held.prepare()
        try:
            reason = "rebuild asked for" if rebuild and previous else _outdated(previous, settings, out_path)
            if not reason:
                known = {entry["path"]: entry for entry in (previous or {}).get("inputs", [])}
                tasks, inputs, changed = _plan(paths, known, keyring, allow_unsigned, temp / "_stage", report, limits)
                reason = f"{changed}: changed other than by growing" if changed else ""
            if reason:  # only an existing output is rebuilt
                log.warning("siq convert: %s: rebuilding from the sources", reason)
                paths, gone = _rebuild_sources(paths, previous or {})
                report = Report(out=held.name, rebuilt=reason, gone=gone)
                tasks, inputs, _ = _plan(paths, {}, keyring, allow_unsigned, temp / "_stage", report, limits)
            base = out_path if previous is not None and not reason else None  # the output merged with
            size = _merged_size(tasks, base)
            buckets, ranges = _buckets(size), _ranges(size)
            tasks = [replace(task, buckets=buckets, limits=limits) for task in tasks]
            report.pending = _pending(inputs)
            if previous is not None and base is not None and not tasks:  # nothing new: the output stays as it is
                shutil.rmtree(temp)
                report.tables = dict(previous["tables"])
                report.drift = len(drift.merged(drift.read(out_path)))
                report.seconds = time.perf_counter() - started
                return report
            results = _run(tasks, workers or os.cpu_count() or 1, progress, engine, scheduler)
            _tally(results, inputs, report)
            found = ((result.input, result.drift, result.resumed) for result in results)
            report.drift = len(drift.save(temp, base, found))
            if progress:
                print(f"siq convert: merging {report.records_read:,} records into the tables...", file=sys.stderr)
            staging = Staging(temp / "_stage", buckets)
            report.tables, report.duplicates = merge.build(staging, temp, base, workers or os.cpu_count() or 1, ranges)
            _account(report, previous["tables"] if base is not None and previous else {})
            report.seconds = time.perf_counter() - started
            _write_manifest(temp, inputs, settings, report)
            staging.remove()
            shutil.rmtree(temp / "_spill", ignore_errors=True)
            held.commit(temp)
        except BaseException as error:
            with _signals.held_back():  # a second Ctrl-C does not cut the cleanup short
                shutil.rmtree(temp, ignore_errors=True)
            failure = _failure(error, out_path, interrupted) if isinstance(error, Exception) else None
            if failure is not None:
                raise failure from error
            raise
    return report


def _account(report: Report, before: dict[str, int]) -> None:
    """Check the run's counts against each other; raise :class:`AccountingError` when rows went missing.

    Records read and rejected are the workers' counts, events written the rows
    the events table gained, duplicates the merge's count, and the reject rows
    added what the rejects table gained: each counted apart, so a staged row
    that is lost on the way shows.
    """
    report.events_written = report.tables["events"] - before.get("events", 0)
    added = report.tables["rejects"] - before.get("rejects", 0)
    if not report.balanced or added != report.rejected:
        raise AccountingError(f"rows went missing ({added:,} reject rows added): {report.to_dict()}")


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


# ---------------------------------------------------------------------------- planning


def _settings(keyring: Keyring | None, allow_unsigned: bool, limits: Limits) -> dict[str, Any]:
    """What decides the rows a file yields, as the manifest records it (``allow_unsigned`` counts only with keys)."""
    return {
        "keys": sorted(keyring.ids) if keyring else None,
        "allow_unsigned": allow_unsigned and bool(keyring),
        "max_record_bytes": limits.max_record_bytes,
        "max_depth": limits.max_depth,
        "max_ratio": limits.max_ratio,
    }


def _outdated(previous: dict[str, Any] | None, settings: dict[str, Any], out: Path) -> str:
    """Why the output cannot take this run's rows incrementally ("" when it can): another format or other settings."""
    if previous is None:
        return ""
    if previous.get("format") != FORMAT or not isinstance(previous.get("settings"), dict):
        return f"output format {previous.get('format')}, this version writes {FORMAT}"
    changed = [name for name, value in settings.items() if previous["settings"].get(name) != value]
    if changed:
        return f"settings changed ({', '.join(changed)})"
    for name, table in TABLES.items():  # a table written by another version of the columns
        files = sorted((out / name).glob("*.parquet"))
        if not files or pq.read_schema(files[0]) != table.schema:
            return f"table {name} differs from this version's"
    return ""


def _rebuild_sources(paths: list[Path | str], previous: dict[str, Any]) -> tuple[list[Path | str], list[str]]:
    """What a rebuild reads: this run's files and the previous output's inputs that still exist; and those gone."""
    keys = {storage.key(path) for path in paths}
    union, gone = list(paths), []
    for entry in previous.get("inputs", []):
        if entry["path"] in keys or {entry["path"] + ".gz", entry["path"] + ".zst"} & keys:  # read, or its copy
            continue
        try:
            union += expand([entry["path"]])
        except Unreadable:
            gone.append(entry["path"])
            log.warning("siq convert: %s: gone, its rows leave the output", entry["path"])
    return union, gone


def _plan(
    paths: list[Path | str],
    known: dict[str, dict[str, Any]],
    keyring: Keyring | None,
    allow_unsigned: bool,
    stage: Path,
    report: Report,
    limits: Limits,
) -> tuple[list[Task], dict[str, dict[str, Any]], str | None]:
    """Which files to read and from which line, the manifest's inputs after the run, and a file that changed.

    A file whose bytes are as before is skipped. Otherwise it is resumed after
    its last complete record when the digest of its data up to there is as
    before (nothing after it: skipped too). The compressed copy of an input
    (``a.jsonl.gz`` of ``a.jsonl``) goes on from where that input was when its
    data starts the same way, and takes its place; a plain file whose complete
    lines its compressed copy among ``paths`` holds is not read. A known file
    that changed otherwise is returned: the output must then be rebuilt.
    """
    inputs = dict(known)
    pems = tuple(key.pem() for key in keyring) if keyring else None
    tasks: list[Task] = []
    report.files = len(paths)
    keys = [storage.key(path) for path in paths]  # one key however a path was spelled (relative, .., links)
    copied, present = _copied(paths, keys, limits), set(keys)
    for index, (path, key) in enumerate(zip(paths, keys, strict=True)):
        old = known.get(key)
        if key in copied:  # its compressed copy holds all its complete lines: that copy is read instead
            report.files_unchanged += 1
            inputs.pop(key, None)
            continue
        try:
            size, digest = _fingerprint(path)
        except Unreadable:  # staged as one reject, and not again while it stays unreadable
            if old and old["sha256"] is None:
                report.files_unchanged += 1
                continue
            size, digest = 0, None
        if old and old["size"] == size and old["sha256"] == digest:
            report.files_unchanged += 1
            continue
        entry: dict[str, Any] = {
            "path": key,
            "size": size,
            "sha256": digest,
            "offset": 0,
            "lines": 0,
            "prefix_sha256": EMPTY_SHA256,
        }
        base = old or _copy_of(key, known, copied, present)  # a compressed copy goes on from where its input was
        if digest is not None and base is not None and base["sha256"] is not None:
            prefix, more = prefix_digest(path, base["offset"], limits)
            if old is not None and (prefix != base["prefix_sha256"] or base.get("broken")):
                return tasks, inputs, key
            if prefix == base["prefix_sha256"]:
                entry |= {name: base[name] for name in ("offset", "lines", "prefix_sha256")}
                inputs.pop(base["path"], None)
                if not more:  # nothing after its complete records (a torn tail cut off): nothing to read
                    inputs[key] = entry | {"pending": 0}
                    report.files_unchanged += 1
                    continue
        inputs[key] = entry
        tasks.append(Task(str(path), index, entry["lines"], pems, allow_unsigned, str(stage), size))
    return tasks, inputs, None


def _plain(key: str) -> str:
    """The name of the plain file a compressed one is the copy of (``a.jsonl`` for ``a.jsonl.gz``)."""
    return key.removesuffix(".gz").removesuffix(".zst")


def _copy_of(key: str, known: dict[str, dict[str, Any]], copied: set[str], keys: set[str]) -> dict[str, Any] | None:
    """The known input that file ``key`` may be the compressed copy of: one not read on its own in this run."""
    plain = _plain(key)
    if plain == key or plain not in known:
        return None
    return known[plain] if plain in copied or plain not in keys else None


def _copied(paths: list[Path | str], keys: list[str], limits: Limits) -> set[str]:
    """The plain JSON Lines files of ``paths`` whose complete lines a compressed copy among ``paths`` holds."""
    compressed = {_plain(key): path for path, key in zip(paths, keys, strict=True) if key != _plain(key)}
    copied = set()
    for path, key in zip(paths, keys, strict=True):
        if key.endswith(LINE_SUFFIXES) and key in compressed:
            try:
                offset, digest = lines_digest(path, limits)
                if prefix_digest(compressed[key], offset, limits)[0] == digest:
                    copied.add(key)
            except Unreadable:
                continue
    return copied


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


def _fingerprint(path: Path | str) -> tuple[int, str]:
    """Size and SHA-256 of a file's bytes: a file whose bytes are as before needs no other look."""
    digest = hashlib.sha256()
    size = 0
    try:
        with storage.open_input(path) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise Unreadable(error.strerror or str(error), str(path)) from None
    return size, digest.hexdigest()


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
        tail, entry = result.tail, inputs[result.input]
        entry.update(offset=tail.offset, lines=tail.lines, prefix_sha256=tail.sha256, pending=tail.pending)
        entry.pop("broken", None)
        if tail.broken:  # any change to it rebuilds: its rest was one reject
            entry["broken"] = True
        if result.unopened:  # nothing of it was read: next run reads it whatever it holds
            entry.update(size=0, sha256=None, offset=0, lines=0, prefix_sha256=EMPTY_SHA256, pending=0)
    report.blank_lines = totals["blank"]
    report.rejected_by_reason = {reason: totals[reason] for reason in REASONS}
    report.rejected = sum(report.rejected_by_reason.values())
    report.records_read = totals["accepted"] + report.rejected
    report.pending = _pending(inputs)


def _pending(inputs: dict[str, dict[str, Any]]) -> int:
    """How many inputs end in a line left for the next run."""
    return sum(1 for entry in inputs.values() if entry.get("pending"))


def _write_manifest(temp: Path, inputs: dict[str, dict[str, Any]], settings: dict[str, Any], report: Report) -> None:
    """The output's ``_manifest.json``: its format, the settings that decided its rows, its inputs and counts.

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
        "last_run": {key: value for key, value in report.to_dict().items() if key != "tables"},
        "tables": report.tables,
    }
    (temp / output.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
