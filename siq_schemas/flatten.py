"""Flatten stage: accepted events to columns of the output tables, batch by batch.

Values are converted by the column's kind, which comes from the schemas
(:mod:`siq_schemas.tables`): ids become exact strings (an integer id is
written with all its digits, never through a float), epoch-millisecond times
become ``timestamp[ms, UTC]``, ``"true"``/``"false"`` become booleans, id
lists become ``list<string>``, and objects without a column of their own
become JSON text. A value that does not fit its kind is written as null; the
``events.entity`` column keeps the entity exactly as received.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .parse import encode
from .tables import BY_EVENT, EVENTS, HISTORY, Column, Table

INT64 = (-(2**63), 2**63 - 1)


def _id(value: Any) -> str | None:
    if value.__class__ is str:
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


def _integers(low: int, high: int) -> Callable[[Any], int | None]:
    """The converter of integers (or strings of digits) from ``low`` to ``high``; None for anything else."""

    def convert(value: Any) -> int | None:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        return None

    return convert


#: Epoch milliseconds of years 1 to 9999: the times Python, pandas and DuckDB all represent.
TIMES = (-62_135_596_800_000, 253_402_300_799_999)
#: Integers that fit 64 bits; epoch milliseconds of the years 1 to 9999 (later ones fail the merge's arithmetic).
_int, _time = _integers(*INT64), _integers(*TIMES)


def _text(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value  # type: ignore[no-any-return]
    return (
        to_json(value)
        if isinstance(value, dict | list)
        else _id(value)
        if not isinstance(value, bool)
        else str(value).lower()
    )


def _ids(value: Any) -> list[str | None] | None:
    return [_id(item) for item in value] if isinstance(value, list) else None


def to_json(value: Any) -> str | None:
    """Compact JSON text of a value (integers of any width kept exact), or None for None."""
    return None if value is None else encode(value).decode()


def _json(value: Any) -> bytes | None:
    """Compact JSON of a value as UTF-8 bytes: Arrow takes bytes ten times faster than long str."""
    return None if value is None else encode(value)


CONVERT: dict[str, Callable[[Any], Any]] = {
    "id": _id,
    "text": _text,
    "json": _json,
    "time": _time,
    "bool": _bool,
    "int": _int,
    "ids": _ids,
}


def received_at_ms(value: str | None) -> int | None:
    """Epoch milliseconds of an ISO-8601 ``received_at`` (naive means UTC), or None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def sender_role(payload: dict[str, Any]) -> str:
    """`visitor`, `operator` or `bot`: who wrote a message (see the `messages` data dictionary)."""
    if payload.get("event") == "conversation.visitor.replied":
        return "visitor"
    message = (payload.get("entity") or {}).get("message") or {}
    kind = str((message.get("sender") or {}).get("type") or "").strip().lower()
    if kind and kind not in ("operator", "visitor"):
        return "bot"
    if not kind and "text" not in message and ("meta" in message or "list" in message):
        return "bot"
    return "operator"


DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {"sender_role": sender_role}

#: The columns of ``events`` that come from the payload; the rest are aggregated over deliveries.
EVENT_COLUMNS = tuple(column for column in EVENTS.columns if column.path or column.name == "event_key")

#: One row per accepted record: what the delivery itself says (staged, then aggregated into ``events``).
DELIVERIES = Table(
    "_deliveries",
    "accepted record",
    (
        Column("event_key", "id", ""),
        Column("attempt", "int", ""),
        Column("signature", "text", ""),
        Column("key_id", "id", ""),
        Column("webhook_id", "id", ""),
        Column("received_at", "time", ""),
        Column("source", "text", ""),
    ),
)
STAGED_EVENTS = Table("events", EVENTS.grain, EVENT_COLUMNS)


def _extractor(table: Table) -> Callable[[dict[str, Any], list[Callable[[Any], None]]], None]:
    """A function appending one payload's values to the table's columns (``appends``, in column order).

    It is generated from the column paths so that each nested object is looked
    up once per payload rather than once per column: flattening is the hot
    loop of the batch job. Column 0 (``event_key``) is appended by the caller.
    """
    namespace: dict[str, Any] = {"EMPTY": {}, "dict": dict}
    lines = ["def extract(p, appends):"]
    objects: dict[tuple[str, ...], str] = {(): "p"}
    for index, column in enumerate(table.columns):
        if index == 0:
            continue
        if column.name in DERIVED:
            namespace[f"derive{index}"] = DERIVED[column.name]
            lines.append(f"    appends[{index}](derive{index}(p))")
            continue
        *parents, leaf = column.path
        for depth in range(1, len(parents) + 1):
            prefix = tuple(parents[:depth])
            if prefix not in objects:
                name = objects[prefix] = f"o{len(objects)}"
                lines.append(f"    {name} = {objects[prefix[:-1]]}.get({prefix[-1]!r})")
                lines.append(f"    if {name}.__class__ is not dict: {name} = EMPTY")
        namespace[f"convert{index}"] = CONVERT[column.kind]
        lines.append(f"    v = {objects[tuple(parents)]}.get({leaf!r})")
        if column.kind in ("id", "text"):  # most values are already strings or absent: no call for them
            lines.append(f"    appends[{index}](v if v is None or v.__class__ is str else convert{index}(v))")
        else:
            lines.append(f"    appends[{index}](None if v is None else convert{index}(v))")
    exec("\n".join(lines), namespace)  # the code is built above from the table specs only
    return namespace["extract"]  # type: ignore[no-any-return]


_STAGED = (STAGED_EVENTS, *HISTORY)
_EXTRACTORS = {table.name: _extractor(table) for table in _STAGED}


class Rows:
    """Rows of the staged tables, column by column, for one batch of accepted records.

    Staged tables (all but ``_deliveries``) carry one more column, ``_position``:
    where the record was read, so that the merge can keep one record per event.
    """

    TABLES = (STAGED_EVENTS, DELIVERIES, *HISTORY)

    def __init__(self) -> None:
        self.count = 0
        self.columns: dict[str, dict[str, list[Any]]] = {
            table.name: {column.name: [] for column in table.columns} for table in self.TABLES
        }
        self.positions: dict[str, list[int]] = {table.name: [] for table in _STAGED}
        appends = {name: [values.append for values in columns.values()] for name, columns in self.columns.items()}
        self._by_event = {
            event: [self._plan(table, appends) for table in (STAGED_EVENTS, *tables)]
            for event, tables in BY_EVENT.items()
        }
        self._events_only = [self._plan(STAGED_EVENTS, appends)]
        self._deliveries = [(appends[DELIVERIES.name][i], column.name) for i, column in enumerate(DELIVERIES.columns)]

    def _plan(self, table: Table, appends: dict[str, list[Any]]) -> tuple[Any, ...]:
        return appends[table.name], _EXTRACTORS[table.name], self.positions[table.name].append

    def add(self, key: str, payload: dict[str, Any], delivery: dict[str, Any], position: int) -> None:
        """Add one accepted record: its event key, parsed payload, delivery facts, and where it was read."""
        self.count += 1
        for appends, extract, at in self._by_event.get(payload.get("event"), self._events_only):  # type: ignore[arg-type]
            appends[0](key)
            extract(payload, appends)
            at(position)
        for append, name in self._deliveries:
            append(key if name == "event_key" else delivery.get(name))

    def tables(self) -> dict[str, pa.Table]:
        """The batch as Arrow tables with the staged schemas."""
        return {
            table.name: _arrow(table, self.columns[table.name], self.positions.get(table.name)) for table in self.TABLES
        }


def staged_schema(table: Table) -> pa.Schema:
    """The schema of a staged table: the output schema and, but for ``_deliveries``, ``_position``."""
    return table.schema if table is DELIVERIES else table.schema.append(pa.field("_position", pa.int64()))


def _arrow(table: Table, columns: dict[str, list[Any]], positions: list[int] | None) -> pa.Table:
    arrays = [
        pa.array(columns[column.name], pa.binary()).cast(pa.string())
        if column.kind == "json"
        else pa.array(columns[column.name], column.type)
        for column in table.columns
    ]
    if positions is not None:
        arrays.append(pa.array(positions, pa.int64()))
    return pa.Table.from_arrays(arrays, schema=staged_schema(table))
