"""Fold the history into one row per conversation, operator, department and visitor.

Every table is folded in SQL (DuckDB, spilling to disk for large archives).
Operators and departments are their events replayed in ``event_time`` order
(ties broken by ``event_key``), which is how membership works: an operator.*
event carries the operator's full list of departments, a
department.created/updated the department's full list of operators, and a
``*.deleted`` event ends every membership of what it deletes. The definitions
are in the data dictionary (``docs/tables.md``).
"""

from __future__ import annotations

from ..tables import BY_EVENT

#: conversation.* events whose visitor is flattened into a history table.
FLATTENED = frozenset(event for event in BY_EVENT if event.startswith("conversation."))


def _latest(column: str, where: str = "TRUE") -> str:
    """The value of the latest event (meeting ``where``) that has one, as a streaming aggregate.

    Events are ordered by ``event_time`` (nulls last), ties broken by ``event_key``.
    """
    return (
        f"arg_max({column}, (event_time, event_key)) FILTER (WHERE {column} IS NOT NULL AND {column} <> '' AND {where})"
    )


def _first(column: str, where: str) -> str:
    """The value of the first event (meeting ``where``) that has one, as a streaming aggregate."""
    return f"arg_min({column}, (event_time, event_key)) FILTER (WHERE {column} IS NOT NULL AND {where})"


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


def operators_sql(operator_events: str, department_events: str, part: str = "TRUE") -> str:
    """One row per operator id of an operator.* event (unordered); ``part`` as for :func:`conversations_sql`."""
    name = "coalesce(nullif(nick_name, ''), nullif(concat_ws(' ', nullif(first_name, ''), nullif(last_name, '')), ''))"
    latest = {"email": "email_id", "name": name, "role": "role"}
    return _admin_sql("operator", "department", latest, operator_events, department_events, part)


def departments_sql(operator_events: str, department_events: str, part: str = "TRUE") -> str:
    """One row per department id of a department.* event (unordered); ``part`` as for :func:`conversations_sql`."""
    return _admin_sql("department", "operator", {"name": "name"}, operator_events, department_events, part)


def _admin_sql(
    entity: str, other: str, latest: dict[str, str], operator_events: str, department_events: str, part: str
) -> str:
    """The folded rows of ``entity`` (operator or department): the ``latest`` columns, times, and its members.

    ``latest`` maps each column to the expression whose latest value (of an
    event that is not a deletion) it holds.
    """
    events, key = (operator_events if entity == "operator" else department_events), f"{entity}_id"
    live, mine = f"event <> '{entity}.deleted'", part.format(id=key)
    created = f"coalesce(created_time, CASE WHEN event = '{entity}.created' THEN event_time END)"
    columns = "".join(f"{_latest(expression, live)} AS {column}, " for column, expression in latest.items())
    return f"""{_members(operator_events, department_events, mine)},
        e AS (
            SELECT {key}, {columns}{_first(created, live)} AS created_time,
                min(event_time) FILTER (WHERE NOT ({live})) AS deleted_time
            FROM {events} WHERE {mine} GROUP BY {key}
        ),
        m AS (SELECT {key}, list({other}_id ORDER BY {other}_id) AS ids FROM members GROUP BY {key})
        SELECT e.*, deleted_time IS NULL AS is_active, coalesce(m.ids, []) AS {other}s
        FROM e LEFT JOIN m USING ({key})
    """


def _members(operator_events: str, department_events: str, mine: str) -> str:
    """A ``WITH`` clause ending in ``members``: the (operator_id, department_id) pairs at the end that meet ``mine``.

    Events count in the replay order, ``event_time`` (nulls last) then
    ``event_key``. An event that lists memberships, or ends them all by a
    deletion, speaks for every pair of its operator (or department) with any
    department (or operator); a pair is a member at the end if the latest event
    that speaks for it lists it. That is the replay of the events one after the
    other, computed by joins and aggregates that DuckDB spills to disk, so a
    department listing millions of operators takes no more memory than a few.
    Ids named only in another entity's list are in ``members`` but get no row
    of their own.
    """
    order = "(event_time, event_key)"
    live_operator, live_department = "event <> 'operator.deleted'", "event <> 'department.deleted'"
    return f"""
        WITH speaking AS (
            SELECT 'operator' AS side, operator_id AS id, {order} AS place,
                CASE WHEN {live_operator} THEN departments ELSE [] END AS listed
            FROM {operator_events} WHERE departments IS NOT NULL OR NOT ({live_operator})
            UNION ALL
            SELECT 'department', department_id, {order}, CASE WHEN {live_department} THEN operators ELSE [] END
            FROM {department_events} WHERE operators IS NOT NULL OR NOT ({live_department})
        ),
        latest AS (SELECT side, id, max(place) AS place FROM speaking GROUP BY side, id),
        listed AS (
            SELECT operator_id, department_id, max(place) AS place FROM (
                SELECT side, id AS operator_id, unnest(listed) AS department_id, place
                FROM speaking WHERE side = 'operator'
                UNION ALL
                SELECT side, unnest(listed), id, place FROM speaking WHERE side = 'department'
            )
            WHERE CASE side WHEN 'operator' THEN department_id ELSE operator_id END <> '' AND {mine}
            GROUP BY operator_id, department_id
        ),
        members AS (
            SELECT listed.operator_id, listed.department_id
            FROM listed
                LEFT JOIN latest AS o ON o.side = 'operator' AND o.id = listed.operator_id
                LEFT JOIN latest AS d ON d.side = 'department' AND d.id = listed.department_id
            WHERE coalesce(listed.place >= o.place, TRUE) AND coalesce(listed.place >= d.place, TRUE)
        )"""
