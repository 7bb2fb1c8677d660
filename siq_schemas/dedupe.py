"""Dedupe stage: the identity of an event, and the merge of staged rows into unique events.

An event's identity is its payload minus the transport fields (``attempt``,
``handler``, ``webhook``), in canonical JSON (keys sorted at every level), so
a retry re-serialised with another key order or spacing, or the same event
delivered to a second webhook, has the same key. Two different messages at
the same ``event_time`` differ in their payload and stay two events.

Across files and runs the merge happens in DuckDB, which spills to disk, so
memory does not grow with the archive: history rows are kept once per key,
and each event's delivery facts are aggregated (``attempts`` = highest
attempt, ``deliveries`` = count, ``signature`` = best status, the first
delivery by ``received_at`` then ``source``).

A second rule covers events recovered from failed executions (see
:mod:`siq_schemas.executions`): their payload was stored without ``org_id``, so
their identity never equals the normal delivery's. A recovered event is a
duplicate of a normally delivered one with the same ``event``, ``entity_id`` and
``event_time``, and for replies the same ``message.msgid`` (:data:`RECOVERED_SQL`).
What it cannot match: a delivery whose event time differs from the stored one; two
different events of one entity in the same millisecond (the recovered one is
dropped as a duplicate of the other); bot messages, which have no ``msgid``, at the
same millisecond of one conversation; and a normal delivery that was rejected (a
bad signature) or is not in the archive, which is what recovery is for.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .executions import FIELD
from .parse import encode_sorted

#: Envelope fields that describe a delivery, not the event (and a rebuilt event's failed execution).
TRANSPORT = frozenset({"attempt", "handler", "webhook", FIELD})


def event_key(payload: dict[str, Any]) -> str:
    """The identity of an event: 32 hex digits of a BLAKE2b hash of its canonical JSON."""
    identity = payload.copy()  # then three pops: cheaper than a filtering comprehension
    for name in TRANSPORT:
        identity.pop(name, None)
    return hashlib.blake2b(encode_sorted(identity), digest_size=16).hexdigest()


#: Order of delivery statuses: the best one seen is the event's.
_SIGNATURE_RANK = "CASE signature WHEN 'valid' THEN 3 WHEN 'unsigned' THEN 2 ELSE 1 END"
#: The first delivery: earliest ``received_at`` (unknown last), then ``source``.
_FIRST = "(received_at, source)"

# The merge never aggregates or sorts wide rows while deduplicating: it picks one record per event
# from the narrow (event_key, _position) pairs, then filters the wide staged rows by that set, so
# DuckDB can spill to disk and memory does not grow with the archive.

#: One record per event key: the first read (rows already in the output have position -1).
KEEP_SQL = "SELECT event_key, min(_position) AS _position FROM {events} GROUP BY event_key"


def history_sql(source: str, keep: str) -> str:
    """Rows of a history table, once per event key (unordered)."""
    return f"SELECT * EXCLUDE (_position) FROM {source} SEMI JOIN {keep} USING (event_key, _position)"


#: An event's delivery facts from ``{deliveries}``: one row per accepted record (``weight`` 1), or per event
#: already in the output (``weight`` = its ``deliveries``).
FACTS_SQL = f"""
    SELECT event_key,
        max(coalesce(attempt, 1)) AS attempts,
        sum(weight) AS deliveries,
        CASE max({_SIGNATURE_RANK}) WHEN 3 THEN 'valid' WHEN 2 THEN 'unsigned' ELSE 'unverified' END AS signature,
        arg_min(key_id, {_FIRST}) FILTER (WHERE key_id IS NOT NULL) AS key_id,
        arg_min(webhook_id, {_FIRST}) AS webhook_id,
        min(received_at) AS received_at,
        arg_min(source, {_FIRST}) AS source
    FROM {{deliveries}} GROUP BY event_key
"""


def events_sql(staged_events: str, keep: str, facts: str) -> str:
    """The ``events`` table, unordered: payload columns once per key, with their delivery facts (:data:`FACTS_SQL`)."""
    return f"""
        SELECT e.* EXCLUDE (_position), facts.* EXCLUDE (event_key)
        FROM (SELECT * FROM {staged_events} SEMI JOIN {keep} USING (event_key, _position)) AS e
            JOIN {facts} AS facts USING (event_key)
    """


#: The second rule: drop from ``keep`` the recovered events a normally delivered event holds (see above), returning
#: their keys: each is one more duplicate, whether it was read in this run or is already in the output.
RECOVERED_SQL = """
    DELETE FROM keep WHERE event_key IN (
        WITH r AS (
            SELECT event_key, event, entity_id, event_time, json_extract_string(entity, '$.message.msgid') AS msgid
            FROM {events} WHERE recovered
        )
        SELECT r.event_key
        FROM r JOIN {events} AS n USING (event, entity_id, event_time)
        WHERE NOT n.recovered AND json_extract_string(n.entity, '$.message.msgid') IS NOT DISTINCT FROM r.msgid
    ) RETURNING event_key
"""
