"""What converting a sample must count, computed from the simulation (no converter involved)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..exceptions import REASONS
from ._constants import CONVERSATION_EVENTS, TRANSPORT
from ._deliveries import Archive


def identity(payload: dict[str, Any]) -> str:
    """The event identity: canonical JSON of the payload minus its transport fields."""
    core = {key: value for key, value in payload.items() if key not in TRANSPORT}
    return json.dumps(core, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def expected_counts(archive: Archive, blank_lines: int) -> dict[str, Any]:
    """What converting the archive must count, from the simulation (no converter involved)."""
    identities = [identity(e.payload) for e in archive.events]
    if len(set(identities)) != len(identities):
        raise AssertionError("two simulated events share an identity")
    accepted = sum(r.event is not None for r in archive.records) + len(archive.bare_events)
    rejected = Counter(r.reason for r in archive.records if r.reason)
    payloads = [e.payload for e in archive.events]
    names = Counter(p["event"] for p in payloads)
    conversation = [p for p in payloads if p["event"].startswith("conversation.")]
    replies = [
        p for p in conversation if p["event"] in ("conversation.visitor.replied", "conversation.operator.replied")
    ]
    rated = [p["entity"] for p in payloads if p["event"] == "conversation.rated"]
    ratings = [r["rating"] for r in rated if "rating" in r]
    roles = Counter(
        "visitor"
        if p["event"] == "conversation.visitor.replied"
        else "bot"
        if p["entity"]["message"]["sender"].get("type") == "bot"
        else "operator"
        for p in replies
    )
    outcome: dict[str, str] = {}
    for p in conversation:
        kind = {"conversation.completed": "completed", "conversation.missed": "missed"}.get(p["event"], "open")
        old = outcome.get(p["entity_id"], "open")
        outcome[p["entity_id"]] = (
            "completed" if "completed" in (old, kind) else "missed" if "missed" in (old, kind) else "open"
        )
    visitors = {p["entity"]["id"] for p in payloads if p["event"] == "visitor.updated"}
    visitors |= {p["entity"]["visitor"]["id"] for p in conversation if "visitor" in p.get("entity", {})}
    created = {p["entity_id"] for p in payloads if p["event"] == "operator.created"}
    gone = {p["entity_id"] for p in payloads if p["event"] == "operator.deleted"}
    departments = {p["entity_id"] for p in payloads if p["event"].startswith("department.")}
    closed = {p["entity_id"] for p in payloads if p["event"] == "department.deleted"}
    total_rejected = sum(rejected.values())
    return {
        "records_read": len(archive.records) + len(archive.bare_events),
        "blank_lines": blank_lines,
        "events_written": len(archive.events),
        "duplicates": accepted - len(archive.events),
        "rejected": {reason: rejected.get(reason, 0) for reason in REASONS},
        "tables": {
            "events": len(archive.events),
            "conversation_events": sum(names[name] for name in CONVERSATION_EVENTS),
            "messages": len(replies),
            "ratings": len(rated),
            "conversations": len({p["entity_id"] for p in conversation}),
            "operator_events": sum(n for name, n in names.items() if name.startswith("operator.")),
            "department_events": sum(n for name, n in names.items() if name.startswith("department.")),
            "visitor_events": names["visitor.updated"],
            "operators": len({p["entity_id"] for p in payloads if p["event"].startswith("operator.")}),
            "departments": len(departments),
            "visitors": len(visitors),
            "rejects": total_rejected,
        },
        "facts": {
            "conversations": {
                kind: sum(v == kind for v in outcome.values()) for kind in ("completed", "missed", "open")
            },
            "ratings": {
                "count": len(ratings),
                "mean": round(sum(ratings) / len(ratings), 4) if ratings else None,
                "feedback_only": len(rated) - len(ratings),
            },
            "messages": {role: roles[role] for role in ("visitor", "operator", "bot")},
            "operators_active": len(created - gone),
            "departments_active": len(departments - closed),
        },
    }
