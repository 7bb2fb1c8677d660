"""The operators and departments folds: DuckDB SQL against a replay of the events one by one.

:func:`replay` is the definition of the fold (docs/tables.md) written as the
simplest program: every event applied to the state in replay order. The SQL
of :mod:`siq_schemas.converter.fold` must give the same tables on any history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import strategies as st

from siq_schemas.converter import fold
from siq_schemas.tables import TABLES
from tests.fuzzing import fuzz


@dataclass
class _Operator:
    email: str | None = None
    name: str | None = None
    role: str | None = None
    created_time: Any = None
    deleted_time: Any = None
    departments: set[str] = field(default_factory=set)


@dataclass
class _Department:
    name: str | None = None
    created_time: Any = None
    deleted_time: Any = None
    operators: set[str] = field(default_factory=set)


def replay(operator_events: pa.Table, department_events: pa.Table) -> tuple[list[dict], list[dict]]:
    """The rows of ``operators`` and ``departments``, sorted by id, from the events applied one after the other."""
    operators: dict[str, _Operator] = {}
    departments: dict[str, _Department] = {}
    history = [("operator", row) for row in operator_events.to_pylist()]
    history += [("department", row) for row in department_events.to_pylist()]
    history.sort(key=lambda item: (item[1]["event_time"] is None, item[1]["event_time"] or 0, item[1]["event_key"]))
    for kind, row in history:
        if kind == "operator":
            _operator_event(row, operators, departments)
        else:
            _department_event(row, operators, departments)
    return (
        _rows("operator", operators, operator_events, "departments"),
        _rows("department", departments, department_events, "operators"),
    )


def _rows(kind: str, entities: dict[str, Any], events: pa.Table, members: str) -> list[dict[str, Any]]:
    """The rows of the entities ``events`` name (ids only listed by others get none), sorted by id."""
    seen = set(events.column(f"{kind}_id").to_pylist())
    return [
        {f"{kind}_id": key, **vars(entity), "is_active": entity.deleted_time is None}
        | {members: sorted(getattr(entity, members))}
        for key, entity in sorted(entities.items())
        if key in seen
    ]


def _operator_event(row: dict[str, Any], operators: dict[str, _Operator], departments: dict[str, _Department]) -> None:
    key = row["operator_id"]
    op = operators.setdefault(key, _Operator())
    if row["event"] == "operator.deleted":
        op.deleted_time = op.deleted_time or row["event_time"]
        _set_membership(key, set(), operators, departments)
        return
    op.email = row["email_id"] or op.email
    op.role = row["role"] or op.role
    name = row["nick_name"] or " ".join(part for part in (row["first_name"], row["last_name"]) if part)
    op.name = name or op.name
    if op.created_time is None:
        op.created_time = row["created_time"] or (row["event_time"] if row["event"] == "operator.created" else None)
    if row["departments"] is not None:
        _set_membership(key, {d for d in row["departments"] if d}, operators, departments)


def _department_event(
    row: dict[str, Any], operators: dict[str, _Operator], departments: dict[str, _Department]
) -> None:
    key = row["department_id"]
    dept = departments.setdefault(key, _Department())
    if row["event"] == "department.deleted":
        dept.deleted_time = dept.deleted_time or row["event_time"]
        for op in operators.values():
            op.departments.discard(key)
        dept.operators = set()
        return
    dept.name = row["name"] or dept.name
    if dept.created_time is None:
        dept.created_time = row["created_time"] or (row["event_time"] if row["event"] == "department.created" else None)
    if row["operators"] is not None:
        listed = {o for o in row["operators"] if o}
        for gone in dept.operators - listed:
            if gone in operators:
                operators[gone].departments.discard(key)
        for member in listed:
            operators.setdefault(member, _Operator()).departments.add(key)
        dept.operators = listed


def _set_membership(
    key: str, listed: set[str], operators: dict[str, _Operator], departments: dict[str, _Department]
) -> None:
    op = operators[key]
    for gone in op.departments - listed:
        if gone in departments:
            departments[gone].operators.discard(key)
    for member in listed:
        departments.setdefault(member, _Department()).operators.add(key)
    op.departments = listed


def folded(operator_events: pa.Table, department_events: pa.Table, parts: int) -> tuple[list[dict], list[dict]]:
    """The rows of ``operators`` and ``departments`` as the SQL folds them, in ``parts`` passes, sorted by id."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("o_events", operator_events)
    con.register("d_events", department_events)
    tables = []
    for name, sql, key in (
        ("operators", fold.operators_sql, "operator_id"),
        ("departments", fold.departments_sql, "department_id"),
    ):
        conditions = [f"hash({{id}}) % {parts} = {part}" for part in range(parts)] if parts > 1 else ["TRUE"]
        passes = [con.sql(sql("o_events", "d_events", condition)).to_arrow_table() for condition in conditions]
        columns = TABLES[name].schema.names
        rows = [row for table in passes for row in table.select(columns).cast(TABLES[name].schema).to_pylist()]
        tables.append(sorted(rows, key=lambda row: row[key]))
    con.close()
    return tables[0], tables[1]


T0 = 1_772_000_000_000
OPERATORS, DEPARTMENTS = ("o1", "o2", "o3"), ("d1", "d2", "d3")
TEXT = st.sampled_from([None, "", "a", "b c"])
TIME = st.one_of(st.none(), st.integers(0, 4).map(lambda n: datetime.fromtimestamp((T0 + n) / 1000, UTC)))


def _lists(ids: tuple[str, ...]) -> st.SearchStrategy[list[str | None] | None]:
    return st.one_of(st.none(), st.lists(st.sampled_from([*ids, "", None]), max_size=4))


OPERATOR_EVENT = st.fixed_dictionaries(
    {
        "rank": st.integers(0, 3),
        "operator_id": st.sampled_from(OPERATORS),
        "event": st.sampled_from(
            ["operator.created", "operator.updated", "operator.deleted", "operator.departments.associated"]
        ),
        "event_time": TIME,
        "email_id": TEXT,
        "role": TEXT,
        "nick_name": TEXT,
        "first_name": TEXT,
        "last_name": TEXT,
        "created_time": TIME,
        "departments": _lists((*DEPARTMENTS, "d9")),
    }
)
DEPARTMENT_EVENT = st.fixed_dictionaries(
    {
        "rank": st.integers(0, 3),
        "department_id": st.sampled_from(DEPARTMENTS),
        "event": st.sampled_from(["department.created", "department.updated", "department.deleted"]),
        "event_time": TIME,
        "name": TEXT,
        "created_time": TIME,
        "operators": _lists((*OPERATORS, "o9")),
    }
)
HISTORY = st.tuples(
    st.lists(OPERATOR_EVENT, max_size=8), st.lists(DEPARTMENT_EVENT, max_size=8), st.sampled_from([1, 2])
)


def _table(name: str, rows: list[dict[str, Any]], first_key: int) -> pa.Table:
    """The history table ``name`` of ``rows`` (other columns null), each with its own event key (ordered by rank)."""
    schema = TABLES[name].schema
    keyed = [row | {"event_key": f"{row['rank']:02x}{first_key + n:04x}"} for n, row in enumerate(rows)]
    return pa.Table.from_pylist([{column: row.get(column) for column in schema.names} for row in keyed], schema=schema)


@fuzz(60, HISTORY)
def test_the_sql_fold_is_the_replay_of_the_events(history):
    """On any history of operator and department events, the SQL fold gives the replay's tables, in one pass or two."""
    operator_rows, department_rows, parts = history
    operator_events = _table("operator_events", operator_rows, 0)
    department_events = _table("department_events", department_rows, len(operator_rows))
    assert folded(operator_events, department_events, parts) == replay(operator_events, department_events)
