"""How a run is sized: values that change its speed and memory, never its tables.

A :class:`Tuning` is passed to :func:`siq_schemas.converter.convert` (``tuning=``)
and carried down: the plan sizes the merge by it, the engines choose to start
workers by it, and each task carries its :class:`Batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Batch:
    """How much of a file a worker holds before it writes the staged rows out: this bounds its memory.

    A batch ends at ``records`` records or once the records read for it pass
    ``raw_bytes`` bytes, whichever comes first: a few records of megabytes each
    weigh as much as many small ones.
    """

    records: int = 20_000
    raw_bytes: int = 16 << 20
    #: An entity longer than this (as JSON) is flattened by the worker, not by the merge: DuckDB flattens
    #: 2,048 rows at a time, and rows of megabytes each would outgrow its memory limit.
    entity_bytes: int = 16 << 10


@dataclass(frozen=True)
class Tuning:
    """The sizes a run works in; the defaults suit archives from kilobytes to gigabytes.

    ``parallel_bytes``: archives smaller than this are staged in this process (starting workers would cost more).
    ``bucket_bytes``: input (as JSON) merged per pass; above it, rows are bucketed by event key (at most 16 buckets).
    ``range_bytes``: input (as JSON) per range of event times sorted on its own, in at most ``ranges`` ranges
    (4 GB of JSON at most ranges of 64 MB); ``sort_bytes``: input sorted in one range when no record is over
    ``wide_record_bytes`` (an archive of one bucket and one range is joined and sorted in one query per table).
    ``batch``: how much of a file a worker holds before writing it out.
    ``memory_limit``: DuckDB's memory budget for the merge (beyond it, it spills to disk). ``batch_rows``: rows per
    batch the merge hands to the Parquet writer (and at most per row group of its passes). ``rows_per_file``: rows
    per Parquet file of a final table (a file is closed at the first row group past it).

    Files are staged in tasks of similar size: ``tasks_per_worker`` tasks per worker, of at least
    ``min_task_bytes`` and at most ``task_bytes`` of input each (compressed input counting eight times;
    a run staged in this process, one task of ``task_bytes``). A plain JSON Lines file larger than a
    task is read in ranges of lines by several tasks at once; smaller files share a task, read one
    after the other into the same batches.
    """

    parallel_bytes: int = 4 << 20
    task_bytes: int = 64 << 20
    min_task_bytes: int = 1 << 20
    tasks_per_worker: int = 4
    bucket_bytes: int = 256 << 20
    range_bytes: int = 64 << 20
    sort_bytes: int = 256 << 20
    wide_record_bytes: int = 1 << 20
    ranges: int = 64
    batch: Batch = field(default_factory=Batch)
    memory_limit: str = "512MB"
    batch_rows: int = 16_384
    rows_per_file: int = 1_000_000


TUNING = Tuning()
