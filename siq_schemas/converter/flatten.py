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
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa

from ..dedupe import TRANSPORT
from ..executions import FIELD
from ..parse import encode
from ..tables import BY_EVENT, EVENTS, HISTORY, TABLES, Column, Table

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
        if isinstance(value, str) and value.isascii() and value.isdigit():  # the digits 0-9 only, as in SQL
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


_EPOCH, _MS = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)


def received_at_ms(value: str | None) -> int | None:
    """Epoch milliseconds of an ISO-8601 ``received_at`` (naive means UTC), exact.

    None when absent, unreadable, or outside the years 1 to 9999 once in UTC (:data:`TIMES`, as the time columns).
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _time((moment - _EPOCH) // _MS)


def sender_role(payload: dict[str, Any]) -> str:
    """`visitor`, `operator` or `bot`: who wrote a message (see the `messages` data dictionary)."""
    if payload.get("event") == "conversation.visitor.replied":
        return "visitor"
    entity = payload.get("entity")
    message = entity.get("message") if isinstance(entity, dict) else None
    message = message if isinstance(message, dict) else {}
    sender = message.get("sender")
    kind = str((sender if isinstance(sender, dict) else {}).get("type") or "").strip().lower()
    if kind and kind not in ("operator", "visitor"):
        return "bot"
    if not kind and "text" not in message and ("meta" in message or "list" in message):
        return "bot"
    return "operator"


#: The top-level fields that ``events`` keeps in columns of their own, or that describe a delivery.
_ENVELOPE = frozenset(column.path[0] for column in EVENTS.columns if column.path) | TRANSPORT


def extra_fields(payload: dict[str, Any]) -> bytes | None:
    """The payload's other top-level fields as a JSON object (see ``events.extra``), or None when there are none."""
    names = payload.keys() - _ENVELOPE
    return encode({name: value for name, value in payload.items() if name in names}) if names else None


def recovered(payload: dict[str, Any]) -> bool:
    """Whether the payload was rebuilt from a failed execution (see :mod:`siq_schemas.executions`)."""
    return FIELD in payload


DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "sender_role": sender_role,
    "extra": extra_fields,
    "recovered": recovered,
}

#: The columns of ``events`` that come from the payload; the rest are aggregated over deliveries.
EVENT_COLUMNS = tuple(column for column in EVENTS.columns if column.path or column.name in ("event_key", *DERIVED))
#: Where a staged row was read (see :class:`Rows`).
POSITION = Column("_position", "int", "")
#: Staged with each ``events`` row for the merge, which flattens the history tables (see
#: :mod:`~siq_schemas.converter.history`): the sender role of a message, and whether the
#: worker flattened the event's history rows itself.
ROLE, FLAT = Column("_role", "text", ""), Column("_flat", "bool", "")

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
#: The columns each staged table is written with.
STAGED_COLUMNS: dict[str, tuple[Column, ...]] = {
    DELIVERIES.name: DELIVERIES.columns,
    STAGED_EVENTS.name: (*EVENT_COLUMNS, POSITION, ROLE, FLAT),
} | {table.name: (*table.columns, POSITION) for table in HISTORY}


class Delivery(NamedTuple):
    """What one accepted record says of its delivery: the ``_deliveries`` columns after ``event_key``."""

    attempt: int | None
    signature: str  # valid, unverified or unsigned
    key_id: str | None
    webhook_id: str | None
    received_at: int | None  # ms since the epoch
    source: str  # file:line


def _extractor(table: Table) -> Callable[[dict[str, Any], str, int], tuple[Any, ...]]:
    """A function returning one payload's row of the table: ``(event_key, *values, position)``.

    It is generated from the column paths so that each nested object is looked
    up once per payload rather than once per column, and the row is built as
    one tuple (columns are made by transposing rows): flattening is the hot
    loop of the batch job. Column 0 (``event_key``) is the caller's ``key``.
    """
    namespace: dict[str, Any] = {"EMPTY": {}, "dict": dict, "int": int, "str": str}
    lines = ["def extract(p, key, position):"]
    values = ["key"]
    objects: dict[tuple[str, ...], str] = {(): "p"}
    for index, column in enumerate(table.columns):
        if index == 0:
            continue
        if column.name in DERIVED:
            namespace[f"derive{index}"] = DERIVED[column.name]
            values.append(f"derive{index}(p)")
            continue
        *parents, leaf = column.path
        for depth in range(1, len(parents) + 1):
            prefix = tuple(parents[:depth])
            if prefix not in objects:
                name = objects[prefix] = f"o{len(objects)}"
                lines.append(f"    {name} = {objects[prefix[:-1]]}.get({prefix[-1]!r})")
                lines.append(f"    if {name}.__class__ is not dict: {name} = EMPTY")
        namespace[f"convert{index}"] = CONVERT[column.kind]
        lines.append(f"    v{index} = {objects[tuple(parents)]}.get({leaf!r})")
        if column.kind in ("id", "text"):  # most values are already strings or absent: no call for them
            values.append(f"(v{index} if v{index} is None or v{index}.__class__ is str else convert{index}(v{index}))")
        elif column.kind in ("int", "time"):  # integers in range need no call either
            low, high = INT64 if column.kind == "int" else TIMES
            values.append(
                f"(v{index} if v{index}.__class__ is int and {low} <= v{index} <= {high}"
                f" else None if v{index} is None else convert{index}(v{index}))"
            )
        else:
            values.append(f"(None if v{index} is None else convert{index}(v{index}))")
    values.append("position")
    lines.append(f"    return ({', '.join(values)})")
    exec("\n".join(lines), namespace)  # the code is built above from the table specs only
    return namespace["extract"]  # type: ignore[no-any-return]


_EXTRACTORS = {table.name: _extractor(table) for table in HISTORY}
_EXTRACT_EVENTS = _extractor(STAGED_EVENTS)


_ENTITY = next(index for index, column in enumerate(EVENT_COLUMNS) if column.name == "entity")
_MESSAGES = frozenset(TABLES["messages"].events)


class Rows:
    """Rows of the staged tables for one batch of accepted records, one tuple per row.

    Staged tables (all but ``_deliveries``) carry one more column, ``_position``:
    where the record was read, so that the merge can keep one record per event.
    The merge flattens the history rows of an event from its staged ``events`` row
    (:mod:`~siq_schemas.converter.history`), but for an entity whose JSON text DuckDB
    writes otherwise than Python: one with floats (``floats``) or escaped control
    characters. Those are flattened here, and so are entities over ``entity_bytes`` (see
    :class:`~siq_schemas.converter.tuning.Batch`), and all of them with ``python`` (the reference
    the merge's SQL is tested against).
    """

    TABLES = (STAGED_EVENTS, DELIVERIES, *HISTORY)

    def __init__(self, python: bool = False, entity_bytes: int = 16 << 10) -> None:
        self.count, self.python, self.entity_bytes = 0, python, entity_bytes
        self.rows: dict[str, list[tuple[Any, ...]]] = {table.name: [] for table in self.TABLES}
        plans = {table.name: (self.rows[table.name].append, _EXTRACTORS[table.name]) for table in HISTORY}
        self._by_event = {event: [plans[table.name] for table in tables] for event, tables in BY_EVENT.items()}
        self._event = self.rows[STAGED_EVENTS.name].append
        self._delivery = self.rows[DELIVERIES.name].append

    def add(self, key: str, payload: dict[str, Any], delivery: Delivery, position: int, floats: bool = False) -> None:
        """Add one accepted record: its event key, payload, delivery facts, where it was read, whether it has floats."""
        self.count += 1
        row = _EXTRACT_EVENTS(payload, key, position)
        entity, event = row[_ENTITY], payload.get("event")
        flat = self.python or floats or (entity is not None and (len(entity) > self.entity_bytes or b"\\u00" in entity))
        self._event((*row, sender_role(payload) if event in _MESSAGES else None, flat))
        if flat:
            for append, extract in self._by_event.get(event, ()):  # type: ignore[arg-type]
                append(extract(payload, key, position))
        self._delivery((key, *delivery))

    def tables(self) -> dict[str, pa.Table]:
        """The batch as Arrow tables with the staged schemas."""
        return {table.name: _arrow(table.name, self.rows[table.name]) for table in self.TABLES}


def staged_schema(name: str) -> pa.Schema:
    """A staged table's schema: its output columns and ``_position`` (and for ``events``, ``_role`` and ``_flat``)."""
    return pa.schema([pa.field(column.name, column.type) for column in STAGED_COLUMNS[name]])


def _arrow(name: str, rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = staged_schema(name)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [
        pa.array(values, pa.binary()).cast(pa.string()) if column.kind == "json" else pa.array(values, field.type)
        for values, field, column in zip(columns, schema, STAGED_COLUMNS[name], strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
