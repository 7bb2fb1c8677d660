"""The output tables, as data: names, grain, columns with their Arrow types and meanings.

History tables take their entity columns from the JSON Schemas themselves:
every property of the entity's definition becomes a ``parent_child`` column
typed by its schema (``id`` -> string, ``epoch_ms`` -> ``timestamp[ms, UTC]``,
``boolean`` -> bool, ``id_list`` -> ``list<string>`` ...), described by the
schema's ``description``. Adding a property to a schema adds its column.
Folded tables are computed from the history (see :mod:`siq_schemas.converter.fold`).
The data dictionary in ``docs/tables.md`` is generated from these specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pyarrow as pa

from . import _registry
from .executions import FIELD

#: The files of an output beside its tables: what it holds and how it was made, and its schema drift.
MANIFEST = "_manifest.json"
DRIFT = "_drift.json"
#: The version of the output's tables and columns, recorded in ``_manifest.json`` ("format"): bump when tables or
#: columns change. A run over an output of another format rebuilds it from the sources.
FORMAT = 3

#: The Arrow type of each kind of column.
TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "text": pa.string(),
    "json": pa.string(),
    "time": pa.timestamp("ms", tz="UTC"),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "ids": pa.list_(pa.string()),
    "binary": pa.binary(),
}

#: Kinds of the shared scalar definitions of ``defs.json``.
_DEF_KINDS = {
    "id": "id",
    "id_list": "ids",
    "epoch_ms": "time",
    "boolean": "bool",
    "count": "int",
    "status_codes": "json",
    "version": "json",  # 1 and "1" both arrive: JSON text keeps which (`1` or `"1"`)
}


@dataclass(frozen=True)
class Column:
    """One column: its name, kind (see :data:`TYPES`), meaning, and where its value comes from.

    ``path`` is the location in the payload (``("entity", "owner", "id")``);
    an empty path means the value is computed (transport data, derivations, folds).
    """

    name: str
    kind: str
    description: str
    path: tuple[str, ...] = ()

    @property
    def type(self) -> pa.DataType:
        return TYPES[self.kind]


@dataclass(frozen=True)
class Table:
    """One output table: ``OUT/<name>/`` holds it as a Parquet dataset."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    events: frozenset[str] = field(default_factory=frozenset)
    folded: bool = False

    @cached_property
    def schema(self) -> pa.Schema:
        """The table's Arrow schema, the same in every file and every run."""
        return pa.schema([pa.field(column.name, column.type) for column in self.columns])

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _definitions() -> dict[str, Any]:
    return _registry.document("defs", "documented")["$defs"]


def _kind(node: dict[str, Any], defs: dict[str, Any]) -> str | dict[str, Any]:
    """The kind of a schema node, or the object definition to expand."""
    if "$ref" in node:
        name = node["$ref"].rpartition("/")[2]
        return _DEF_KINDS.get(name) or _kind(defs[name], defs)
    kinds = node.get("type")
    if kinds == "object":
        return node if "properties" in node else "json"
    if kinds == "array":
        return "ids" if node.get("items", {}).get("type") == "string" else "json"
    if isinstance(kinds, list):  # e.g. a number or "none": kept as text
        return "text"
    return {"string": "text", "integer": "int", "boolean": "bool"}.get(kinds or "", "text")


def schema_columns(definition: str, path: tuple[str, ...] = ("entity",), skip: tuple[str, ...] = ()) -> list[Column]:
    """Columns for every property of a ``defs.json`` definition, nested objects flattened to ``a_b``."""
    defs = _definitions()
    return list(_expand(defs[definition], path, "", skip, defs))


def _expand(node: dict[str, Any], path: tuple[str, ...], prefix: str, skip: tuple[str, ...], defs: dict) -> Any:
    for name, child in node.get("properties", {}).items():
        if name in skip:
            continue
        kind = _kind(child, defs)
        column_name = f"{prefix}{name}"
        if isinstance(kind, dict):
            yield from _expand(kind, (*path, name), f"{column_name}_", (), defs)
            continue
        target = defs.get(child.get("$ref", "").rpartition("/")[2], {})
        description = child.get("description") or target.get("description", "")
        yield Column(column_name, kind, description, (*path, name))


def _envelope(name: str, description: str) -> Column:
    node = _registry.document("envelope", "documented")["properties"][name]
    kind = _kind(node, _definitions())
    assert isinstance(kind, str)
    return Column(name, kind, description or node.get("description", ""), (name,))


def _history(name: str, grain: str, id_column: str, id_meaning: str, events: list[str], entity: list[Column]) -> Table:
    """A history table; an entity column named like one of the table's own is prefixed ``entity_``."""
    own = (
        Column("event_key", "id", "Identity of the event (joins with `events`)."),
        Column(id_column, "id", id_meaning, ("entity_id",)),
        _envelope("event", "The event name."),
        _envelope("event_time", "When the event happened."),
    )
    names = {column.name for column in own}
    entity = [replace(c, name=f"entity_{c.name}") if c.name in names else c for c in entity]
    return Table(name, grain, (*own, *entity), frozenset(events))


CONVERSATION_EVENTS = [
    "conversation.created",
    "conversation.attender.updated",
    "conversation.missed",
    "conversation.completed",
]
MESSAGE_EVENTS = ["conversation.visitor.replied", "conversation.operator.replied"]
OPERATOR_EVENTS = [
    "operator.created",
    "operator.updated",
    "operator.deleted",
    "operator.departments.associated",
    "operator.departments.dissociated",
    "operator.departments.disassociated",
]
DEPARTMENT_EVENTS = ["department.created", "department.updated", "department.deleted"]

EVENTS = Table(
    "events",
    "unique event (retries and copies delivered to several webhooks are one event)",
    (
        Column(
            "event_key",
            "id",
            "Identity of the event: a hash of the payload without `attempt`, `handler` and `webhook` "
            "(and a recovered event's `failed_execution`).",
        ),
        _envelope("event", "The event name."),
        _envelope("entity_type", ""),
        _envelope("entity_id", ""),
        _envelope("org_id", ""),
        _envelope("app_id", ""),
        _envelope("event_time", ""),
        _envelope("version", ""),
        _envelope("modified_fields", ""),
        Column(
            "entity",
            "json",
            "The entity exactly as received, as JSON: every field, known to the schemas or not.",
            ("entity",),
        ),
        Column(
            "extra",
            "json",
            "Top-level fields of the payload without a column of their own (fields the schemas do not know "
            "yet), as a JSON object; null when there are none. The transport fields `attempt`, `handler` and "
            "`webhook` describe deliveries: see `attempts` and `webhook_id`.",
        ),
        Column(
            "recovered",
            "bool",
            "True for an event rebuilt from a failed execution of the REST API (a delivery SalesIQ gave up on), "
            "false for one delivered or exported.",
        ),
        Column("execution_id", "id", "The failed execution's id (a UUID).", (FIELD, "id")),
        Column(
            "remote_server_status",
            "int",
            "The HTTP status the receiver last answered the failed execution with.",
            (FIELD, "remote_server_status"),
        ),
        Column(
            "number_of_retries", "int", "How often SalesIQ retried the failed execution.", (FIELD, "number_of_retries")
        ),
        Column("attempts", "int", "The highest delivery `attempt` seen for the event (1 when never retried)."),
        Column("deliveries", "int", "How many accepted records carried the event (retries and copies included)."),
        Column(
            "signature",
            "text",
            "`valid` (a delivery verified), `unsigned` (bare payload, `--allow-unsigned`) "
            "or `unverified` (no keys given).",
        ),
        Column("key_id", "id", "Id of the key that verified the first verified delivery."),
        Column("webhook_id", "id", "The webhook of the first delivery."),
        Column("received_at", "time", "When the first delivery was received (null for bare payloads)."),
        Column("source", "text", "`file:line` of the first delivery."),
    ),
)

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        EVENTS,
        _history(
            "conversation_events",
            "conversation.created, attender.updated, missed or completed event",
            "conversation_id",
            "The conversation (the envelope's `entity_id`).",
            CONVERSATION_EVENTS,
            schema_columns("conversation", skip=("id",)),
        ),
        _history(
            "messages",
            "visitor, operator or bot message (conversation.visitor.replied / operator.replied)",
            "conversation_id",
            "The conversation (the envelope's `entity_id`).",
            MESSAGE_EVENTS,
            [
                Column("msgid", "id", "Message id (absent for bot messages).", ("entity", "message", "msgid")),
                Column("sender_id", "id", "Who sent the message.", ("entity", "message", "sender", "id")),
                Column("sender_name", "text", "Sender name.", ("entity", "message", "sender", "name")),
                Column(
                    "sender_type",
                    "text",
                    "The sender type as delivered.",
                    ("entity", "message", "sender", "type"),
                ),
                Column(
                    "sender_role",
                    "text",
                    "`visitor` for conversation.visitor.replied; for operator.replied `bot` when the sender type is "
                    "neither operator nor visitor or the message is a bot form (meta/list without text), "
                    "else `operator`.",
                ),
                Column("text", "text", "Message text.", ("entity", "message", "text")),
                Column("meta", "json", "Bot message metadata, as JSON.", ("entity", "message", "meta")),
                Column("list", "json", "Bot message list, as JSON.", ("entity", "message", "list")),
                Column("visitor_id", "id", "The conversation's visitor.", ("entity", "visitor", "id")),
                Column("owner_id", "id", "The conversation's owner (operator).", ("entity", "owner", "id")),
                Column(
                    "visitor_conversation_id",
                    "text",
                    "The visitor-side conversation id.",
                    ("entity", "visitor_conversation_id"),
                ),
            ],
        ),
        _history(
            "ratings",
            "conversation.rated event",
            "conversation_id",
            "The conversation (the envelope's `entity_id`).",
            ["conversation.rated"],
            schema_columns("rating", skip=("id",)),
        ),
        _history(
            "operator_events",
            "operator.* event",
            "operator_id",
            "The operator (the envelope's `entity_id`).",
            OPERATOR_EVENTS,
            schema_columns("operator", skip=("id",)),
        ),
        _history(
            "department_events",
            "department.* event",
            "department_id",
            "The department (the envelope's `entity_id`).",
            DEPARTMENT_EVENTS,
            schema_columns("department", skip=("id",)),
        ),
        _history(
            "visitor_events",
            "visitor.updated event",
            "visitor_id",
            "The visitor (the envelope's `entity_id`).",
            ["visitor.updated"],
            schema_columns("visitor_record", skip=("id",)),
        ),
        Table(
            "conversations",
            "conversation (its folded history)",
            (
                Column("conversation_id", "id", "The conversation."),
                Column(
                    "outcome",
                    "text",
                    "`completed` if a conversation.completed event exists, else `missed` if a conversation.missed "
                    "event exists, else `open`.",
                ),
                Column(
                    "opened_time",
                    "time",
                    "`opened_time` of the entity, else the time of conversation.created.",
                ),
                Column(
                    "attended_time",
                    "time",
                    "Earliest `attended_time` of attender.updated/completed entities, else the time of the first "
                    "conversation.attender.updated.",
                ),
                Column(
                    "end_time",
                    "time",
                    "`end_time` of the completed entity, else the time of conversation.completed.",
                ),
                Column(
                    "missed_time",
                    "time",
                    "`missed_time` of the missed entity, else the time of conversation.missed.",
                ),
                Column("department_id", "id", "The department of the latest event that names one."),
                Column("owner_id", "id", "The owner of the latest event that names one."),
                Column("visitor_id", "id", "The visitor of the latest event that names one."),
                Column(
                    "channel",
                    "text",
                    "The visitor's channel (`website`, `whatsapp` ...) of the latest event that names one.",
                ),
                Column(
                    "chat_initiated_url",
                    "text",
                    "The page the chat started on, of the latest event that names one.",
                ),
                Column(
                    "ended_by",
                    "text",
                    "Who ended the chat (`agent`, `visitor`, `system`), of the latest event that names it.",
                ),
                Column("wait_ms", "int", "Waiting time: `attended_time - opened_time`, in milliseconds."),
                Column(
                    "first_response_ms",
                    "int",
                    "First response time: time of the first operator (not bot) message at or after `attended_time`, "
                    "minus `attended_time`, in milliseconds.",
                ),
                Column("duration_ms", "int", "Chat duration: `end_time - attended_time`, in milliseconds."),
                Column("visitor_messages", "int", "Number of visitor messages."),
                Column("operator_messages", "int", "Number of operator messages."),
                Column("bot_messages", "int", "Number of bot messages."),
                Column("rating", "int", "The latest rating given."),
                Column("feedback", "text", "The latest feedback text given."),
                Column("events", "int", "Number of conversation.* events of the conversation (all kinds)."),
            ),
            folded=True,
        ),
        Table(
            "operators",
            "operator (its folded history, replayed in `event_time` order)",
            (
                Column("operator_id", "id", "The operator."),
                Column("email", "text", "Latest `email_id`."),
                Column("name", "text", "Latest `nick_name`, else first and last name."),
                Column("role", "text", "Latest role."),
                Column("created_time", "time", "`created_time` of the entity, else the time of operator.created."),
                Column("deleted_time", "time", "Time of operator.deleted."),
                Column("is_active", "bool", "True unless the operator was deleted."),
                Column(
                    "departments",
                    "ids",
                    "Department ids at the end: operator.* events give the operator's full list, department.created/"
                    "updated the department's full list of operators; *.deleted ends memberships.",
                ),
            ),
            folded=True,
        ),
        Table(
            "departments",
            "department (its folded history, replayed in `event_time` order)",
            (
                Column("department_id", "id", "The department."),
                Column("name", "text", "Latest name."),
                Column(
                    "created_time",
                    "time",
                    "`created_time` of the entity, else the time of department.created.",
                ),
                Column("deleted_time", "time", "Time of department.deleted."),
                Column("is_active", "bool", "True unless the department was deleted."),
                Column("operators", "ids", "Operator ids at the end (same replay as `operators.departments`)."),
            ),
            folded=True,
        ),
        Table(
            "visitors",
            "visitor (from visitor.updated entities and the visitors of conversation events)",
            (
                Column("visitor_id", "id", "The visitor."),
                Column("type", "text", "`lead` or `contact` (latest, trimmed)."),
                Column("email", "text", "Latest email address."),
                Column("phone", "text", "Latest phone number."),
                Column("lead_id", "id", "The lead this contact was converted from (visitor.updated case 2)."),
                Column("name", "text", "Latest name."),
                Column("first_name", "text", "Latest first name."),
                Column("last_name", "text", "Latest last name."),
                Column("salutation", "text", "Latest salutation."),
                Column("channel", "text", "Latest channel (`website`, `whatsapp` ...)."),
                Column(
                    "customer_info",
                    "json",
                    "Latest custom information the site set for the visitor (conversation events), as JSON.",
                ),
            ),
            folded=True,
        ),
        Table(
            "rejects",
            "rejected record",
            (
                Column("source", "text", "The file."),
                Column("line", "int", "The line (or item of a .json array), from 1; 0 for a file that cannot be read."),
                Column(
                    "reason",
                    "text",
                    "`unreadable`, `signature-missing`, `signature-invalid`, `unknown-event` or `schema-invalid`.",
                ),
                Column("detail", "text", "What is wrong, with the JSON path for schema errors."),
                Column("json_path", "text", "Where in the payload (schema errors)."),
                Column("event", "text", "The event name, when it could be read."),
                Column("received_at", "time", "When the delivery was received, when it could be read."),
                Column(
                    "raw",
                    "binary",
                    "The record exactly as read, so nothing is lost (its first 64 KiB for a record over the size "
                    "limit, or the partial line where a file broke).",
                ),
            ),
        ),
    )
}

#: Tables that get one row per event of theirs.
HISTORY = [table for table in TABLES.values() if table.events]
#: The history tables of each event name.
BY_EVENT: dict[str, list[Table]] = {}
for _table in HISTORY:
    for _event in _table.events:
        BY_EVENT.setdefault(_event, []).append(_table)
