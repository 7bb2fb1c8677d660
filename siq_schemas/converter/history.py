"""History tables flattened in DuckDB: the staged events' entities to the columns of their history tables.

A worker stages one ``events`` row per accepted record, with the entity as
JSON text (:mod:`~siq_schemas.converter.flatten`). The merge derives the rows of
the history tables (``conversation_events``, ``messages`` ...) from those rows
with one ``json_transform`` per table, whose structure is generated from the
table's column paths (:mod:`siq_schemas.tables`), every leaf read as JSON and
converted by the column's kind in SQL exactly as :data:`~siq_schemas.converter.flatten.CONVERT`
converts it in Python: ids and text exact (integers of any width), epoch
milliseconds of the years 1 to 9999, ``"true"``/``"false"``, id lists, JSON text.

DuckDB writes some JSON text otherwise than the Python encoder: floats (``1e16``
as ``10000000000000000.0``) and control characters (``\\u001F``, not ``\\u001f``).
An entity with either is flattened in Python by the worker instead (``_flat``
true on its staged events row, its history rows staged beside it), so that
every table holds the same text whichever side flattened it.
"""

from __future__ import annotations

import json
from typing import Any

from ..tables import EVENTS, Column, Table
from .flatten import TIMES

#: The SQL of each kind, a converter of the JSON value ``{v}`` (SQL NULL when absent) to the column's type.
_INTEGER = (
    "CASE json_type({v}) WHEN 'BIGINT' THEN {v}::BIGINT WHEN 'UBIGINT' THEN TRY_CAST({v} AS BIGINT)"
    " WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({v}->>'$', '[0-9]+') THEN TRY_CAST({v}->>'$' AS BIGINT) END END"
)
#: A string as it is; an integer (DOUBLE: one beyond 64 bits, whose text DuckDB keeps) as its digits.
_ID = (
    "CASE json_type({v}) WHEN 'VARCHAR' THEN {v}->>'$' WHEN 'BIGINT' THEN {v}::VARCHAR"
    " WHEN 'UBIGINT' THEN {v}::VARCHAR WHEN 'DOUBLE' THEN {v}::VARCHAR END"
)
KINDS: dict[str, str] = {
    "id": _ID,
    "text": "{v}",  # read as VARCHAR: a string as it is, any other value as its JSON text, as in Python
    "json": "CASE WHEN json_type({v}) <> 'NULL' THEN {v}::VARCHAR END",
    "int": _INTEGER,  # BIGINT holds exactly the range of INT64
    "time": f"CASE WHEN ({_INTEGER}) BETWEEN {TIMES[0]} AND {TIMES[1]} THEN epoch_ms({_INTEGER})::TIMESTAMPTZ END",
    "bool": "CASE {v} WHEN 'true' THEN true WHEN 'false' THEN false END",  # read as VARCHAR: true and "true" alike
    "ids": "CASE WHEN json_type({v}) = 'ARRAY' THEN list_transform({v}::JSON[], lambda x: "
    + _ID.format(v="x")
    + ") END",
}

#: The staged events columns a history table takes as they are (converted there by the same kinds).
_OWN: dict[tuple[str, ...], Column] = {
    column.path: column for column in EVENTS.columns if column.path and len(column.path) == 1
}


def structure(table: Table) -> dict[str, Any]:
    """The ``json_transform`` structure of the table's entity columns: their paths under ``entity``.

    Text and booleans are read as VARCHAR (DuckDB gives a string as it is and any other value as its JSON
    text, which is what those kinds need); the other kinds as JSON, converted by their type.
    """
    tree: dict[str, Any] = {}
    for column in table.columns:
        if column.path[:1] == ("entity",):
            *parents, leaf = column.path[1:]
            node = tree
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = "VARCHAR" if column.kind in ("text", "bool") else "JSON"
    return tree


def history_sql(table: Table, events: str) -> str:
    """The rows of history ``table`` (and ``_position``) flattened from the staged events ``events`` not ``_flat``."""
    values = []
    for column in table.columns:
        if column.name == "event_key":
            values.append("event_key")
        elif column.name == "sender_role":
            values.append("_role")
        elif column.path[:1] == ("entity",):
            field = "j" + "".join(f"[{_literal(name)}]" for name in column.path[1:])
            values.append(f"CAST({KINDS[column.kind].format(v=field)} AS {_TYPES[column.kind]})")
        else:
            own = _OWN[column.path]
            assert own.kind == column.kind, column  # the same value, converted the same way
            values.append(f'"{own.name}"')
        values[-1] += f' AS "{column.name}"'
    names = ", ".join(_literal(event) for event in sorted(table.events))
    shape = _literal(json.dumps(structure(table)))
    return (
        f"SELECT {', '.join(values)}, _position FROM (SELECT *, json_transform(entity, {shape}) AS j"
        f" FROM {events} WHERE event IN ({names}) AND NOT _flat)"
    )


_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "json": "VARCHAR",
    "int": "BIGINT",
    "time": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
    "ids": "VARCHAR[]",
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
