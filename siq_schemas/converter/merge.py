"""Merge stage: staged rows and the previous output to deduplicated, folded tables.

DuckDB does the merge, out of core: it spills joins, sorts and its in-memory
tables to disk, so memory does not grow with the archive. A small archive (one
bucket of event keys and one range of event times, see
:class:`~siq_schemas.converter.tuning.Tuning`) is joined and sorted in one query
per table, two tables at a time. A larger one never holds a join
and a sort of wide rows in one query (DuckDB handles that badly): it is
merged one bucket of event keys at a time (the workers wrote the staged rows
in buckets), so every join's hash table stays small, and each table is then
sorted as a whole, one range of event times after the other. See :mod:`siq_schemas.dedupe` for what counts as the same
event and :mod:`siq_schemas.converter.fold` for the folded tables.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa

from .. import dedupe
from ..tables import HISTORY, TABLES
from . import fold, write
from .flatten import DELIVERIES
from .staging import Staging, parquet_glob, sql_path
from .tuning import TUNING, Tuning

#: Bytes per row group of a pass DuckDB writes (at most ``Tuning.batch_rows`` rows).
ROW_GROUP_BYTES = "16MB"


def build(
    staging: Staging, temp: Path, previous: Path | None, threads: int, ranges: int = 1, tuning: Tuning = TUNING
) -> tuple[dict[str, int], int]:
    """Merge the rows of ``staging`` with the previous output, dedupe, fold, and write every table into ``temp``.

    The staged rows are merged one bucket of event keys after the other
    (as the workers staged them), and the tables sorted by
    ``event_time`` one range of times after the other (``ranges``), so that
    no join or sort grows with the archive. Returns the row count of each
    table, and the duplicates: the staged deliveries whose event is already in
    ``previous`` or was delivered earlier in this run (counted from the staged
    deliveries alone, so the caller can check them against the tables).
    """
    spill = temp / "_spill"
    spill.mkdir()
    con = duckdb.connect(  # in memory: its tables, like its joins and sorts, go to temp_directory past the limit
        ":memory:",
        config={
            "threads": max(threads, 1),
            "memory_limit": tuning.memory_limit,
            "preserve_insertion_order": False,
            # A pass split by time ranges (PARTITION_BY) buffers this many rows per thread before writing them
            # out; DuckDB's default (524,288 wide rows) outgrows the memory limit.
            "partitioned_write_flush_threshold": 4 * tuning.batch_rows,
        },
    )
    _session(con)
    con.execute(f"SET temp_directory = '{sql_path(spill)}'")
    passes = _Passes(con, temp, tuning)
    try:
        staging.views(con, "s_", previous)
        duplicates = _duplicates(con, f'"s_{DELIVERIES.name}"', previous)
        con.execute(f"CREATE TABLE keep AS {dedupe.KEEP_SQL.format(events='s_events')}")
        if con.execute("SELECT count(*) FROM s_events WHERE recovered").fetchone() != (0,):
            # A recovered event its normal delivery holds is a duplicate, whichever run read which copy.
            duplicates += len(con.execute(dedupe.RECOVERED_SQL.format(events="s_events")).fetchall())
        merged = ("events", *(table.name for table in HISTORY))
        times = _time_ranges(con, ranges) if ranges > 1 else ["TRUE"]
        split = " ".join(f"WHEN {condition} THEN {n}" for n, condition in enumerate(times))
        con.execute(f"CREATE TABLE facts AS {dedupe.FACTS_SQL.format(deliveries='s_all_deliveries')}")
        # Every join of these passes has its narrow side (the keep set, the aggregated deliveries) on the
        # right: DuckDB must build its hash table from that side, never from the wide staged rows.
        con.execute("SET disabled_optimizers = 'build_side_probe_side'")
        buckets = staging.buckets
        direct = buckets == 1 and len(times) == 1  # one bucket and one range: each table joined and sorted at once
        for bucket in range(buckets):  # one bucket of event keys at a time: each join's hash table stays small
            if buckets == 1:  # the views of all the staged rows are the bucket's
                p, keep, facts = "s_", "keep", "facts"
            else:
                p, keep, facts = "p_", "p_keep", "p_facts"
                staging.views(con, p, previous, bucket, keyed=True)
                for table in ("keep", "facts"):
                    con.execute(f"CREATE OR REPLACE VIEW p_{table} AS FROM {table} WHERE {staging.bucket_sql(bucket)}")
            queries = {"events": dedupe.events_sql(f"{p}events", keep, facts)}
            queries |= {table.name: dedupe.history_sql(f'"{p}{table.name}"', keep) for table in HISTORY}
            if direct:
                passes.together(
                    [(f"FROM ({queries[name]}) ORDER BY event_time, event_key", name) for name in merged], threads
                )
            for name in merged if not direct else ():
                passes.copy(queries[name], spill / name, bucket, f"CASE {split} END" if len(times) > 1 else None)
        con.execute("RESET disabled_optimizers")
        for name in merged if not direct else ():  # then each table sorted, one range of event times after the other
            passes.sorted(name, "event_time, event_key", ranges)
        passes.write("SELECT * FROM s_rejects ORDER BY source, line", "rejects")
        for name in TABLES:
            if name in passes.counts:
                con.execute(f"CREATE VIEW \"t_{name}\" AS SELECT * FROM read_parquet('{parquet_glob(temp / name)}')")
        chats = ("t_events", "t_conversation_events", "t_messages", "t_ratings")
        visits = ("t_events", "t_visitor_events", "t_conversation_events", "t_messages", "t_ratings")
        admin = ("t_operator_events", "t_department_events")
        folds = [
            (partial(fold.conversations_sql, *chats), "conversations", "conversation_id"),
            (partial(fold.visitors_sql, *visits), "visitors", "visitor_id"),
            (partial(fold.operators_sql, *admin), "operators", "operator_id"),
            (partial(fold.departments_sql, *admin), "departments", "department_id"),
        ]
        if direct:  # each folded table joined and sorted in one query too
            passes.together([(f"FROM ({sql('TRUE')}) ORDER BY {order}", name) for sql, name, order in folds], threads)
        for sql, name, order in folds if not direct else ():
            passes.joined(sql, name, buckets, order)
    finally:
        con.close()
    shutil.rmtree(spill, ignore_errors=True)  # DuckDB's database and the passes: not part of the output
    return {name: passes.counts[name] for name in TABLES}, duplicates


def _session(con: duckdb.DuckDBPyConnection) -> None:
    """Set what each connection (or cursor) of the merge's database sets for itself: times are in UTC."""
    con.execute("SET TimeZone = 'UTC'")


def _duplicates(con: duckdb.DuckDBPyConnection, deliveries: str, previous: Path | None) -> int:
    """The staged deliveries (one row per accepted record) of an event already in ``previous`` or seen before."""
    new = f"SELECT DISTINCT event_key FROM {deliveries}"
    if previous is not None and (previous / "events").is_dir():
        known = f"SELECT event_key FROM read_parquet('{parquet_glob(previous / 'events')}')"
        new = f"SELECT DISTINCT event_key FROM {deliveries} ANTI JOIN ({known}) USING (event_key)"
    row = con.execute(f"SELECT (SELECT count(*) FROM {deliveries}) - (SELECT count(*) FROM ({new}))").fetchone()
    return int(row[0]) if row else 0


def _time_ranges(con: duckdb.DuckDBPyConnection, ranges: int) -> list[str]:
    """SQL conditions on ``event_time``, in its order: ``ranges`` ranges of about as many staged rows each.

    Rows without a time are in the last range, as they sort last. Sorting a
    table one range after the other, each range on its own, is sorting it
    whole, with a sort that does not grow with the archive.
    """
    quantiles = ", ".join(str(n / ranges) for n in range(1, ranges))
    query = f"SELECT quantile_disc(epoch_ms(event_time), [{quantiles}]) FROM s_events"
    bounds = [int(bound) for bound in (con.execute(query).fetchone() or [None])[0] or []]  # none: no times at all
    if not bounds:
        return ["TRUE"]
    ms = "epoch_ms(event_time)"
    middle = [f"{ms} >= {low} AND {ms} < {high}" for low, high in itertools.pairwise(bounds)]
    return [f"{ms} < {bounds[0]}", *middle, f"({ms} >= {bounds[-1]} OR event_time IS NULL)"]


class _Passes:
    """The passes of a merge on DuckDB connection ``con``: tables written into output folder ``temp``, counted."""

    def __init__(self, con: duckdb.DuckDBPyConnection, temp: Path, tuning: Tuning) -> None:
        self.con, self.temp, self.tuning = con, temp, tuning
        self.counts: dict[str, int] = {}

    def joined(self, sql: Callable[[str], str], name: str, parts: int, order: str) -> None:
        """Write a table computed by joins in ``parts`` passes, then sort the passes together.

        ``sql(part)`` is the query for the rows whose id meets condition ``part``
        (``hash({id}) % parts = n``). DuckDB spills a join or a sort of wide rows
        to disk, but not both in one query, and a join's hash table must fit in
        memory: one pass per bucket keeps every step bounded whatever the archive's size.
        """
        for part in range(parts):
            self.copy(
                sql(f"hash({{id}}) % {parts} = {part}" if parts > 1 else "TRUE"), self.temp / "_spill" / name, part
            )
        self.sorted(name, order)

    def copy(self, sql: str, folder: Path, part: int, split: str | None = None) -> None:
        """Write one pass of a table to ``folder/bNN.parquet`` (small row groups: wide rows stay cheap to read).

        A row group ends at ``Tuning.batch_rows`` rows or :data:`ROW_GROUP_BYTES` bytes: DuckDB holds one per
        thread, and a few rows of megabytes each would otherwise outgrow its memory limit.

        With ``split`` (an SQL expression numbering the ranges of :func:`_time_ranges`), the rows go to
        ``folder/_range=R/bNN_*.parquet`` by range instead.
        """
        folder.mkdir(parents=True, exist_ok=True)
        groups = f"ROW_GROUP_SIZE {self.tuning.batch_rows}, ROW_GROUP_SIZE_BYTES '{ROW_GROUP_BYTES}'"
        if split is None:
            self.con.execute(f"COPY ({sql}) TO '{sql_path(folder / f'b{part:02d}.parquet')}' ({groups})")
            return
        self.con.execute(
            f"COPY (SELECT *, {split} AS _range FROM ({sql})) TO '{sql_path(folder)}' (FORMAT parquet,"
            f" PARTITION_BY (_range), OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'b{part:02d}_{{i}}', {groups})"
        )

    def sorted(self, name: str, order: str, ranges: int = 1) -> None:
        """Write table ``name`` from its passes, sorted by ``order``, one range after the other (see :meth:`copy`)."""
        folder = self.temp / "_spill" / name
        if ranges == 1:
            sqls = [f"SELECT * FROM read_parquet('{parquet_glob(folder)}') ORDER BY {order}"]
        else:
            parts = [folder / f"_range={n}" for n in range(ranges)]
            sqls = [
                f"SELECT * FROM read_parquet('{parquet_glob(part)}', hive_partitioning = false) ORDER BY {order}"
                for part in parts
                if part.is_dir()
            ]
        self.write(sqls, name)

    def together(self, passes: list[tuple[str, str]], threads: int) -> None:
        """Write tables ``(sql, name)`` as :meth:`write` does, up to ``threads`` at a time, each on its own cursor.

        One table's pass leaves cores idle (its final sort, pyarrow's writer); passes side by side fill them.
        """
        if threads <= 1:
            for sql, name in passes:
                self.write(sql, name)
            return
        cursors = [self.con.cursor() for _ in passes]
        try:
            with ThreadPoolExecutor(threads) as pool:
                for cursor in cursors:
                    _session(cursor)
                running = [pool.submit(self.write, *job, cursor) for job, cursor in zip(passes, cursors, strict=True)]
                try:
                    for done in running:
                        done.result()
                except BaseException:  # an error or a stop signal: the other passes stop at once too
                    for future in running:
                        future.cancel()
                    for cursor in cursors:
                        cursor.interrupt()
                    raise
        finally:
            for cursor in cursors:
                cursor.close()

    def write(self, sql: str | list[str], name: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Write table ``name`` as the rows of ``sql``, or of several queries one after the other."""
        con = con or self.con
        schema = TABLES[name].schema
        columns = ", ".join(f'"{c}"' for c in schema.names)
        rows = self.tuning.batch_rows

        def batches() -> Iterator[pa.RecordBatch]:
            for query in [sql] if isinstance(sql, str) else sql:
                yield from con.sql(f"SELECT {columns} FROM ({query})").to_arrow_reader(rows)

        self.counts[name] = write.write_table(batches(), schema, self.temp / name, self.tuning.rows_per_file)
