"""Staging: the files of a task read, verified, parsed, validated, identified and flattened.

A worker of the local engine (a process of :func:`siq_schemas.convert`)
or a task of the Dask engine (:mod:`siq_schemas.converter._dask`) stages one
:class:`Task`: small files one after the other, or a range of lines of a large
one (:mod:`~siq_schemas.converter.tasks`), into the same batches. Each
record is read (:mod:`~siq_schemas.read`), its signature checked
(:mod:`~siq_schemas.verify`), its body parsed and validated
(:mod:`~siq_schemas.validate`, with the drift check of :mod:`~siq_schemas.drift`),
its identity computed (:mod:`~siq_schemas.dedupe`) and its rows flattened
(:mod:`~siq_schemas.converter.flatten`) into Arrow batches written to the staging folder
(:mod:`~siq_schemas.converter.write`). A record that fails a step becomes a row of
``rejects``. The merge (:mod:`~siq_schemas.converter.merge`) takes it from there.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..dedupe import event_key
from ..drift import Drift
from ..exceptions import PayloadInvalid, SignatureMissing, SiqSchemasError, Unreadable
from ..keys import Keyring, load_keys
from ..read import LIMITS, Limits, Record, Tail, read_range, read_records
from ..tables import TABLES
from ..validate import validate
from ..verify import record_key
from .flatten import CONVERT, Delivery, Rows, received_at_ms
from .staging import Staging
from .tuning import Batch


@dataclass(frozen=True)
class Part:
    """What a task reads of one file: all of it, or (plain JSON Lines) the lines that start in a byte range.

    ``end`` None: the file is read whole, from its start. Otherwise the lines that
    start from byte ``start`` (a line start, after ``lines`` lines) up to ``end``
    (a line start, or the end of the data planned) are read; the last range of a
    file carries ``ends``, the SHA-256 of the data up to each offset its complete
    records can end at (its last newline, its end), for its :class:`~siq_schemas.read.Tail`.
    Lines up to ``skip_lines`` were read by a previous run and are not staged again.
    """

    path: str
    input: str  # the file's key in the manifest's inputs
    index: int  # the file's place in the archive: its rows' positions follow it
    skip_lines: int
    size: int  # bytes of the file (of the range) to read
    start: int = 0
    lines: int = 0
    end: int | None = None
    ends: tuple[tuple[int, str], ...] = ()
    piece: int = 0  # the range's place in its file


@dataclass(frozen=True)
class Task:
    """Files, or ranges of a file, that one worker stages one after the other into the same batches."""

    parts: tuple[Part, ...]
    number: int  # the task's place in the plan: names its staged batches
    keys: tuple[str, ...] | None
    allow_unsigned: bool
    stage: str
    buckets: int = 1
    limits: Limits = LIMITS
    batch: Batch = field(default_factory=Batch)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


@dataclass
class FileResult:
    input: str  # the file's key in the manifest's inputs
    tail: Tail = field(default_factory=Tail)  # where its complete records end: the next run resumes there
    counts: Counter[str] = field(default_factory=Counter)
    drift: Drift = field(default_factory=Drift)
    widest: int = 0  # bytes of the longest record read: how the merge sizes its sorts
    resumed: bool = False  # only the lines after the previous run's were read
    unopened: bool = False  # the file could not be opened: read it again next run


def stage_task(task: Task) -> list[FileResult]:
    """Read, verify, parse, validate, identify and flatten a task's files into the staging area; a result per part.

    The parts are read one after the other into the same batches. The cyclic
    garbage collector is paused while a batch is built: parsed
    payloads make no reference cycles, and collecting young objects over and
    over cost about a tenth of the time. It runs once per batch instead.
    """
    keyring = load_keys(*task.keys) if task.keys else None
    rows, rejects = Rows(entity_bytes=task.batch.entity_bytes), _Rejects()
    staging = Staging(task.stage, task.buckets)
    results: list[FileResult] = []
    batch = raw_bytes = 0

    def flush() -> None:
        nonlocal rows, rejects, batch, raw_bytes
        tables = rows.tables()
        tables["rejects"] = rejects.table()
        staging.write(tables, f"{task.number:06d}-{batch:05d}")
        rows, rejects, batch, raw_bytes = Rows(entity_bytes=task.batch.entity_bytes), _Rejects(), batch + 1, 0
        gc.collect(1)  # the young generations only: a full collection costs ~35 ms, per file

    collecting = gc.isenabled()
    gc.disable()
    try:
        for part, result, record in _records(task, results):
            if 0 < record.line <= part.skip_lines:  # line 0: the file could not be opened
                continue
            if record.kind == "blank":
                result.counts["blank"] += 1
                continue
            raw_bytes += len(record.raw)
            result.widest = max(result.widest, len(record.raw))
            try:
                payload, delivery = _accept(record, keyring, task.allow_unsigned, task.limits.max_depth, result.drift)
            except SiqSchemasError as error:
                result.counts[error.code] += 1
                rejects.add(record, error)
            else:
                result.counts["accepted"] += 1
                rows.add(event_key(payload), payload, delivery, part.index << 32 | record.line, record.floats)
            if rows.count + len(rejects.rows) >= task.batch.records or raw_bytes >= task.batch.raw_bytes:
                flush()
        flush()
    finally:
        if collecting:
            gc.enable()
    return results


def _records(task: Task, results: list[FileResult]) -> Iterator[tuple[Part, FileResult, Record]]:
    """The records of a task's parts in order, each with its part and the part's result (added to ``results``)."""
    for part in task.parts:
        result = FileResult(part.input, resumed=part.skip_lines > 0)
        results.append(result)
        for record in _read(part, task.limits, result):
            yield part, result, record


def _read(part: Part, limits: Limits, result: FileResult) -> Iterator[Record]:
    """The records of a part, or one ``unreadable`` record when its file cannot be opened (gone since planned).

    Of a file read in ranges, only the first range yields that record: the file is one reject.
    """
    try:
        if part.end is None:
            yield from read_records(part.path, limits, result.tail)
        else:
            yield from read_range(part.path, part.start, part.end, part.lines, limits, result.tail, dict(part.ends))
    except Unreadable as error:  # raised only when the file cannot be opened
        result.unopened = True
        if part.piece == 0:
            yield Record(error.source, 0, b"", "unreadable", error=error)


def _accept(
    record: Record, keyring: Keyring | None, allow_unsigned: bool, max_depth: int, found: Drift
) -> tuple[dict[str, Any], Delivery]:
    """The payload and delivery facts of an acceptable record; raise the reject's error otherwise.

    Every payload that parses is checked for drift into
    ``found``, rejected or not; that check also judges it, so only an invalid payload is
    validated again, to be explained.
    """
    if record.error is not None:
        raise record.error
    key_id = None
    if record.kind == "delivery" and keyring is not None:
        key_id = record_key(record, keyring)
        status = "valid"
    elif record.kind == "delivery":
        status = "unverified"
    elif keyring is not None and not allow_unsigned:
        raise SignatureMissing("bare payload without a signature (use --allow-unsigned to accept it)")
    else:
        status = "unsigned" if keyring is not None else "unverified"
    payload = record.parse(max_depth)
    if not found.add(payload, record.source, record.line):
        validate(payload)  # raises the error that explains it
    webhook = payload.get("webhook")
    return payload, Delivery(
        _count(payload.get("attempt")),
        status,
        key_id,
        _id(webhook.get("id")) if isinstance(webhook, dict) else None,
        received_at_ms(record.received_at),
        f"{record.source}:{record.line}",
    )


_count, _id = CONVERT["int"], CONVERT["id"]


class _Rejects:
    """Rows of the ``rejects`` table for one batch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, record: Record, error: SiqSchemasError) -> None:
        json_path = error.json_path if isinstance(error, PayloadInvalid) else None
        event = getattr(error, "event", None)
        detail = error.message if isinstance(error, Unreadable | PayloadInvalid) else str(error)
        if isinstance(error, PayloadInvalid):
            detail = f"{error.json_path}: {error.message}"
        self.rows.append(
            {
                "source": record.source,
                "line": record.line,
                "reason": error.code,
                "detail": detail,
                "json_path": json_path,
                "event": event if isinstance(event, str) else None,
                "received_at": received_at_ms(record.received_at),
                "raw": record.raw,
            }
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=TABLES["rejects"].schema)
