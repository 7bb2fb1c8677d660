"""Failed executions: deliveries SalesIQ gave up on, as its REST API lists them.

``GET /api/v2/{screenname}/webhooks/{id}/executions`` answers ``{"data": [...]}``,
one record per delivery that failed after its retries::

    {"event": "conversation.operator.replied", "remote_server_status": 400,
     "id": "<uuid>", "number_of_retries": 3, "entity_id": "...", "entity": "conversation",
     "entity_label": {"id": "..."}, "app_id": "...", "webhook_id": "...",
     "payload": {"version": 1, "event_time": "...", "message": {...}, "id": "..."},
     "last_execution_time": "..."}

A ``.json`` file holding that answer (or its list) is an input of its own, told apart
by its shape (records with ``payload`` and ``webhook_id``). Each record becomes the
event it stands for: the envelope is rebuilt from the record's fields, ``version``
and ``event_time`` are taken out of the stored payload and the rest is the entity.
The stored payload has no envelope and no ``org_id``. What the execution itself
says is kept under :data:`FIELD`, a transport field (not part of the event's identity).
"""

from __future__ import annotations

from typing import Any

from .exceptions import Unreadable

#: The top-level field of a rebuilt event that holds its failed execution's facts.
FIELD = "failed_execution"
#: The facts of an execution kept under :data:`FIELD`.
FACTS = ("id", "remote_server_status", "number_of_retries", "last_execution_time", "entity_label")
#: The fields of the stored payload that belong to the envelope.
ENVELOPE = ("version", "event_time")


def records(document: Any) -> list[Any] | None:
    """The execution records of a parsed ``.json`` document, or None when it holds no failed executions.

    The document is the API's answer (``{"data": [...]}``) or its list; it holds
    executions when its first record has ``payload`` and ``webhook_id``.
    """
    items = document.get("data") if isinstance(document, dict) and set(document) <= {"data", "info"} else document
    if not isinstance(items, list) or not items:
        return None
    first = items[0]
    return items if isinstance(first, dict) and "payload" in first and "webhook_id" in first else None


def event(record: Any, source: str, line: int) -> dict[str, Any]:
    """The event payload a failed execution stands for; :class:`Unreadable` when it is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
        raise Unreadable("not a failed execution: no 'payload' object", source, line)
    stored = record["payload"]
    payload: dict[str, Any] = {name: stored[name] for name in ENVELOPE if name in stored}
    fields = {"event": "event", "app_id": "app_id", "entity_type": "entity", "entity_id": "entity_id"}
    payload |= {name: record[key] for name, key in fields.items() if key in record}
    payload["entity"] = {name: value for name, value in stored.items() if name not in ENVELOPE}
    payload["webhook"] = {"id": record.get("webhook_id")}
    payload[FIELD] = {name: record[name] for name in FACTS if name in record}
    return payload
