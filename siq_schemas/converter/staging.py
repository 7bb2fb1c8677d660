"""The staging folder of a run: the rows the workers staged, as the merge reads them.

Its layout is ``<folder>/<table>/bNN/<file>-<batch>.parquet``: one Parquet file
per batch of a staged file, per table (the staged tables of
:data:`siq_schemas.converter.flatten.Rows.TABLES` and ``rejects``), in bucket ``NN`` of
the rows' event keys. A worker writes batches (:meth:`Staging.write`), a
worker elsewhere (the Dask engine) packs its folder for the run to unpack
(:meth:`Staging.pack`, :meth:`Staging.unpack`), and the merge reads it through
DuckDB views (:meth:`Staging.views`).
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..tables import HISTORY, TABLES
from .flatten import DELIVERIES, STAGED_EVENTS, Rows, staged_schema
from .history import history_sql
from .write import empty

if TYPE_CHECKING:
    import duckdb

#: The staged tables and their schemas.
SCHEMAS: dict[str, pa.Schema] = {table.name: staged_schema(table.name) for table in Rows.TABLES} | {
    "rejects": TABLES["rejects"].schema
}


_HISTORY = {table.name: table for table in HISTORY}


class Staging:
    """The staging folder ``folder``, its rows split into ``buckets`` buckets of event keys."""

    def __init__(self, folder: Path | str, buckets: int = 1) -> None:
        self.folder = Path(folder)
        self.buckets = buckets

    def write(self, tables: dict[str, pa.Table], name: str) -> None:
        """Write one batch of staged tables as ``<table>/bNN/<name>.parquet`` (empty ones are skipped).

        Rows are split into the buckets by the first hex digit of their ``event_key``
        (see :meth:`bucket_sql`), so that the merge can take one bucket at a time.
        """
        for table, data in tables.items():
            if not data.num_rows:
                continue
            if self.buckets > 1 and "event_key" in data.column_names:
                keys = data.column("event_key").to_pylist()
                ids = pa.array([int(key[0], 16) % self.buckets for key in keys], pa.int64())
                parts = [(bucket, data.filter(pc.equal(ids, bucket))) for bucket in range(self.buckets)]
            else:
                parts = [(0, data)]
            for bucket, part in parts:
                if part.num_rows:
                    folder = self.folder / table / f"b{bucket:02d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    pq.write_table(part, folder / f"{name}.parquet", compression="zstd")

    def bucket_sql(self, bucket: int) -> str:
        """The SQL condition true for the rows of ``bucket`` (as split by :meth:`write`)."""
        if self.buckets == 1:
            return "TRUE"
        return f"(instr('0123456789abcdef', left(event_key, 1)) - 1) % {self.buckets} = {bucket}"

    def pack(self) -> dict[str, bytes]:
        """The staged files by path in the folder: what a worker elsewhere sends back."""
        return {path.relative_to(self.folder).as_posix(): path.read_bytes() for path in self.folder.rglob("*.parquet")}

    def unpack(self, files: dict[str, bytes]) -> None:
        """Put files that :meth:`pack` packed elsewhere into the folder."""
        for name, data in files.items():
            target = self.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def views(
        self,
        con: duckdb.DuckDBPyConnection,
        prefix: str,
        previous: Path | None,
        bucket: int | None = None,
        keyed: bool = False,
    ) -> None:
        """Views ``<prefix><table>`` over the staged rows (of ``bucket``; all without) and the previous output's.

        With ``keyed``, only the tables keyed by event (not ``rejects``). Rows
        already in the output get position -1, so they are the ones kept.
        ``<prefix>all_deliveries`` adds the previous events' delivery facts, weighted.
        """
        buckets = "*" if bucket is None else f"b{bucket:02d}"
        where = "TRUE" if bucket is None else self.bucket_sql(bucket)

        def staged(name: str) -> str:
            """The staged rows of table ``name`` (of the bucket), as a relation: no file, no rows."""
            if glob.glob(f"{glob.escape(str(self.folder / name))}/{buckets}/*.parquet"):
                return f"read_parquet('{parquet_glob(self.folder / name, buckets)}')"
            if not con.execute(f"SELECT 1 FROM duckdb_tables() WHERE table_name = 'empty_{name}'").fetchall():
                con.from_arrow(empty(SCHEMAS[name])).create(f"empty_{name}")  # every cursor sees a table
            return f'"empty_{name}"'

        events = staged(STAGED_EVENTS.name)
        for name, schema in SCHEMAS.items():
            if keyed and name == "rejects":
                continue
            staged_rows = staged(name)
            if name == STAGED_EVENTS.name:
                sources = [f"SELECT * EXCLUDE (_role, _flat) FROM {staged_rows}"]
            elif name in _HISTORY:  # the rows the workers flattened, and those flattened from the staged events
                sources = [f"SELECT * FROM {staged_rows}", history_sql(_HISTORY[name], events)]
            else:
                sources = [f"SELECT * FROM {staged_rows}"]
            if previous is not None and name != DELIVERIES.name and (previous / name).is_dir():
                names = [c for c in schema.names if c not in ("_role", "_flat")]
                columns = ", ".join("-1" if c == "_position" else f'"{c}"' for c in names)
                rows = f"read_parquet('{parquet_glob(previous / name)}')"
                sources.append(f"SELECT {columns} FROM {rows} WHERE {where}")
            con.execute(f'CREATE OR REPLACE VIEW "{prefix}{name}" AS {" UNION ALL ".join(sources)}')
        deliveries = f'SELECT *, 1 AS weight FROM "{prefix}{DELIVERIES.name}"'
        if previous is not None and (previous / "events").is_dir():
            deliveries += (
                " UNION ALL SELECT event_key, attempts AS attempt, signature, key_id, webhook_id, received_at, source,"
                f" deliveries AS weight FROM read_parquet('{parquet_glob(previous / 'events')}') WHERE {where}"
            )
        con.execute(f"CREATE OR REPLACE VIEW {prefix}all_deliveries AS {deliveries}")

    def remove(self) -> None:
        """Delete the folder and what it holds."""
        shutil.rmtree(self.folder, ignore_errors=True)


def sql_path(path: Path | str) -> str:
    """A path as the text of an SQL string literal."""
    return str(path).replace("'", "''")


def parquet_glob(folder: Path, buckets: str = "") -> str:
    """The SQL text of a glob of the Parquet files in ``folder`` (in its subfolders ``buckets``, a glob too).

    The folder's own path is escaped: a ``*`` or ``[`` in the output's name is part of a name, not a pattern.
    """
    return sql_path(f"{glob.escape(str(folder))}/{buckets + '/' if buckets else ''}*.parquet")
