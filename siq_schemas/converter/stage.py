"""Staging: one file of an archive read, verified, parsed, validated, identified and flattened.

A worker of the local engine (a process of :func:`siq_schemas.convert`)
or a task of the Dask engine (:mod:`siq_schemas.converter._dask`) stages one file: each
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

from .. import storage
from ..dedupe import event_key
from ..drift import Drift
from ..exceptions import PayloadInvalid, SignatureMissing, SiqSchemasError, Unreadable
from ..keys import Keyring, load_keys
from ..read import LIMITS, Limits, Record, Tail, read_records
from ..tables import TABLES
from ..validate import validate
from ..verify import record_key
from .flatten import CONVERT, Delivery, Rows, received_at_ms
from .staging import Staging
from .tuning import Batch


@dataclass(frozen=True)
class Task:
    path: str
    index: int
    skip_lines: int
    keys: tuple[str, ...] | None
    allow_unsigned: bool
    stage: str
    size: int
    buckets: int = 1
    limits: Limits = LIMITS
    batch: Batch = field(default_factory=Batch)


@dataclass
class FileResult:
    input: str  # the file's key in the manifest's inputs
    tail: Tail = field(default_factory=Tail)  # where its complete records end: the next run resumes there
    counts: Counter[str] = field(default_factory=Counter)
    drift: Drift = field(default_factory=Drift)
    widest: int = 0  # bytes of the longest record read: how the merge sizes its sorts
    resumed: bool = False  # only the lines after the previous run's were read
    unopened: bool = False  # the file could not be opened: read it again next run


def stage_file(task: Task) -> FileResult:
    """Read, verify, parse, validate, identify and flatten one file into the staging area.

    The cyclic garbage collector is paused while a batch is built: parsed
    payloads make no reference cycles, and collecting young objects over and
    over cost about a tenth of the time. It runs once per batch instead.
    """
    keyring = load_keys(*task.keys) if task.keys else None
    result = FileResult(storage.key(storage.location(task.path)), resumed=task.skip_lines > 0)
    rows, rejects = Rows(entity_bytes=task.batch.entity_bytes), _Rejects()
    staging = Staging(task.stage, task.buckets)
    batch = raw_bytes = 0

    def flush() -> None:
        nonlocal rows, rejects, batch, raw_bytes
        tables = rows.tables()
        tables["rejects"] = rejects.table()
        staging.write(tables, f"{task.index:06d}-{batch:05d}")
        rows, rejects, batch, raw_bytes = Rows(entity_bytes=task.batch.entity_bytes), _Rejects(), batch + 1, 0
        gc.collect(1)  # the young generations only: a full collection costs ~35 ms, per file

    collecting = gc.isenabled()
    gc.disable()
    try:
        for record in _records(task, result):
            if 0 < record.line <= task.skip_lines:  # line 0: the file could not be opened
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
                rows.add(event_key(payload), payload, delivery, task.index << 32 | record.line, record.floats)
            if rows.count + len(rejects.rows) >= task.batch.records or raw_bytes >= task.batch.raw_bytes:
                flush()
        flush()
    finally:
        if collecting:
            gc.enable()
    return result


def _records(task: Task, result: FileResult) -> Iterator[Record]:
    """The records of a task's file, or one ``unreadable`` record when it cannot be opened (gone since planned)."""
    try:
        yield from read_records(task.path, task.limits, result.tail)
    except Unreadable as error:  # raised only when the file cannot be opened
        result.unopened = True
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
