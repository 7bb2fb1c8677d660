"""Fold the history into one row per conversation, operator, department and visitor.

Conversations and visitors are folded in SQL (DuckDB, spilling to disk for
large archives); operators and departments by replaying their events in
``event_time`` order (ties broken by ``event_key``), which is how membership
works: an operator.* event carries the operator's full list of departments, a
department.created/updated the department's full list of operators, and a
``*.deleted`` event ends every membership of what it deletes. The definitions
are in the data dictionary (``docs/tables.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .tables import BY_EVENT, TABLES

#: conversation.* events whose visitor is flattened into a history table.
FLATTENED = frozenset(event for event in BY_EVENT if event.startswith("conversation."))


def _latest(column: str) -> str:
    """The value of the latest event that has one (ties broken by ``event_key``), as a streaming aggregate."""
    return f"arg_max({column}, (event_time, event_key)) FILTER (WHERE {column} IS NOT NULL AND {column} <> '')"


def conversations_sql(events: str, conversation_events: str, messages: str, ratings: str, part: str = "TRUE") -> str:
    """One row per conversation id of any conversation.* event (unordered).

    ``part`` selects a share of the conversations: a condition on ``{id}``,
    filled with each source's id column (e.g. ``hash({id}) % 4 = 1``).
    """
    created = "event = 'conversation.created'"
    attended = "event = 'conversation.attender.updated'"
    completed = "event = 'conversation.completed'"
    missed = "event = 'conversation.missed'"
    return f"""
        WITH ids AS (
            SELECT entity_id AS conversation_id, count(*) AS events
            FROM {events} WHERE event LIKE 'conversation.%' AND {part.format(id="entity_id")} GROUP BY entity_id
        ),
        c AS (
            SELECT conversation_id,
                bool_or({completed}) AS has_completed,
                bool_or({missed}) AS has_missed,
                coalesce(min(opened_time), min(event_time) FILTER (WHERE {created})) AS opened_time,
                coalesce(
                    min(attended_time) FILTER (WHERE {attended} OR {completed}),
                    min(event_time) FILTER (WHERE {attended})
                ) AS attended_time,
                coalesce(max(end_time) FILTER (WHERE {completed}), max(event_time) FILTER (WHERE {completed}))
                    AS end_time,
                coalesce(min(missed_time) FILTER (WHERE {missed}), min(event_time) FILTER (WHERE {missed}))
                    AS missed_time,
                {_latest("department_id")} AS department_id,
                {_latest("owner_id")} AS owner_id,
                {_latest("visitor_id")} AS visitor_id,
                {_latest("visitor_channel")} AS channel,
                {_latest("chat_initiated_url")} AS chat_initiated_url,
                {_latest("ended_by")} AS ended_by
            FROM {conversation_events} WHERE {part.format(id="conversation_id")} GROUP BY conversation_id
        ),
        m AS (
            SELECT conversation_id,
                count(*) FILTER (WHERE sender_role = 'visitor') AS visitor_messages,
                count(*) FILTER (WHERE sender_role = 'operator') AS operator_messages,
                count(*) FILTER (WHERE sender_role = 'bot') AS bot_messages,
                {_latest("owner_id")} AS owner_id,
                {_latest("visitor_id")} AS visitor_id
            FROM {messages} WHERE {part.format(id="conversation_id")} GROUP BY conversation_id
        ),
        fr AS (
            SELECT m.conversation_id, min(m.event_time) AS first_response_time
            FROM {messages} AS m JOIN c USING (conversation_id)
            WHERE m.sender_role = 'operator' AND m.event_time >= c.attended_time
            GROUP BY m.conversation_id
        ),
        r AS (
            SELECT conversation_id,
                arg_max(rating, (event_time, event_key)) FILTER (WHERE rating IS NOT NULL) AS rating,
                {_latest("feedback")} AS feedback,
                {_latest("owner_id")} AS owner_id,
                {_latest("visitor_id")} AS visitor_id
            FROM {ratings} WHERE {part.format(id="conversation_id")} GROUP BY conversation_id
        )
        SELECT ids.conversation_id,
            CASE WHEN c.has_completed THEN 'completed' WHEN c.has_missed THEN 'missed' ELSE 'open' END AS outcome,
            c.opened_time, c.attended_time, c.end_time, c.missed_time,
            c.department_id,
            coalesce(c.owner_id, m.owner_id, r.owner_id) AS owner_id,
            coalesce(c.visitor_id, m.visitor_id, r.visitor_id) AS visitor_id,
            c.channel, c.chat_initiated_url, c.ended_by,
            epoch_ms(c.attended_time) - epoch_ms(c.opened_time) AS wait_ms,
            epoch_ms(fr.first_response_time) - epoch_ms(c.attended_time) AS first_response_ms,
            epoch_ms(c.end_time) - epoch_ms(c.attended_time) AS duration_ms,
            coalesce(m.visitor_messages, 0) AS visitor_messages,
            coalesce(m.operator_messages, 0) AS operator_messages,
            coalesce(m.bot_messages, 0) AS bot_messages,
            r.rating, r.feedback, ids.events
        FROM ids
            LEFT JOIN c USING (conversation_id)
            LEFT JOIN m USING (conversation_id)
            LEFT JOIN fr USING (conversation_id)
            LEFT JOIN r USING (conversation_id)
    """


def visitors_sql(
    events: str, visitor_events: str, conversation_events: str, messages: str, ratings: str, part: str = "TRUE"
) -> str:
    """One row per visitor of a visitor.updated event or of a conversation.* event's entity (unordered).

    Visitors come from the flattened tables; only conversation.* events that
    have no table of their own are read from ``events.entity`` JSON. ``part``
    selects a share of the visitors, as for :func:`conversations_sql`.
    """
    flattened = ", ".join(f"'{event}'" for event in sorted(FLATTENED))
    mine = part.format(id="visitor_id")
    from_json = "json_extract_string(entity, '$.visitor.id')"
    visitor = "visitor_id, event_time, event_key, lower(trim(visitor_type)), visitor_email_id, visitor_phone, NULL"
    named = ", ".join(
        f"visitor_{name}" for name in ("name", "first_name", "last_name", "salutation", "channel", "customer_info")
    )
    extracted = ", ".join(
        f"json_extract_string(entity, '$.visitor.{name}') AS {name}"
        for name in ("type", "email_id", "phone", "name", "first_name", "last_name", "salutation", "channel")
    )
    extracted += ", json_extract(entity, '$.visitor.customer_info')::VARCHAR AS customer_info"
    return f"""
        WITH v AS (
            SELECT visitor_id, event_time, event_key, lower(trim(type)) AS type, email_id AS email, phone, lead_id,
                nullif(trim(concat_ws(' ', first_name, last_name)), '') AS name, first_name, last_name,
                NULL AS salutation, NULL AS channel, NULL AS customer_info
            FROM {visitor_events} WHERE {mine}
            UNION ALL
            SELECT {visitor}, {named} FROM {conversation_events} WHERE visitor_id IS NOT NULL AND {mine}
            UNION ALL
            SELECT {visitor}, {named} FROM {ratings} WHERE visitor_id IS NOT NULL AND {mine}
            UNION ALL
            SELECT visitor_id, event_time, event_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM {messages} WHERE visitor_id IS NOT NULL AND {mine}
            UNION ALL
            SELECT {from_json}, event_time, event_key, lower(trim(type)), email_id, phone, NULL, name, first_name,
                last_name, salutation, channel, customer_info
            FROM (
                SELECT entity, event_time, event_key, {extracted}
                FROM {events}
                WHERE event LIKE 'conversation.%' AND event NOT IN ({flattened}) AND {from_json} IS NOT NULL
                    AND {part.format(id=from_json)}
            )
        )
        SELECT visitor_id, {_latest("type")} AS type, {_latest("email")} AS email, {_latest("phone")} AS phone,
            {_latest("lead_id")} AS lead_id, {_latest("name")} AS name, {_latest("first_name")} AS first_name,
            {_latest("last_name")} AS last_name, {_latest("salutation")} AS salutation,
            {_latest("channel")} AS channel, {_latest("customer_info")} AS customer_info
        FROM v GROUP BY visitor_id
    """


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


def replay_admin(operator_events: pa.Table, department_events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The ``operators`` and ``departments`` tables, replayed from their events."""
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
    # Ids only named in another entity's list get no row of their own.
    seen_operators = set(operator_events.column("operator_id").to_pylist())
    seen_departments = set(department_events.column("department_id").to_pylist())
    operator_rows = [
        {
            "operator_id": key,
            "email": op.email,
            "name": op.name,
            "role": op.role,
            "created_time": op.created_time,
            "deleted_time": op.deleted_time,
            "is_active": op.deleted_time is None,
            "departments": sorted(op.departments),
        }
        for key, op in sorted(operators.items())
        if key in seen_operators
    ]
    department_rows = [
        {
            "department_id": key,
            "name": dept.name,
            "created_time": dept.created_time,
            "deleted_time": dept.deleted_time,
            "is_active": dept.deleted_time is None,
            "operators": sorted(dept.operators),
        }
        for key, dept in sorted(departments.items())
        if key in seen_departments
    ]
    return (
        pa.Table.from_pylist(operator_rows, schema=TABLES["operators"].schema),
        pa.Table.from_pylist(department_rows, schema=TABLES["departments"].schema),
    )


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
