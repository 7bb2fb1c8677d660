"""Write stage: the final Parquet tables of an output (staged batches are :mod:`siq_schemas.converter.staging`'s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Data per row group of a final table.
ROW_GROUP_BYTES = 32 << 20


def write_table(batches: Iterator[pa.RecordBatch], schema: pa.Schema, folder: Path, rows_per_file: int) -> int:
    """Write ``batches`` (cast to ``schema``) as ``folder/part-NNNNN.parquet``; return the row count.

    A file is closed at the first row group past ``rows_per_file`` rows.

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
        if writer is None or in_file >= rows_per_file:
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
        pq.write_table(empty(schema), folder / "part-00000.parquet", compression="zstd")
    else:
        writer.close()
    return rows


def empty(schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` with no rows (``schema.empty_table()`` converts Python values: it imports pandas)."""
    return pa.Table.from_batches([], schema=schema)


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [batch.column(field.name).cast(field.type) for field in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
