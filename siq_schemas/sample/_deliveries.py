"""The portal's events as an endpoint would have archived them: signed delivery records, bare payloads, rejects.

Retries (``attempt`` 2 and 3, the body re-serialised, a minute later), events sent to two webhooks,
header names in another case, ``body_base64``, an endpoint outage whose events SalesIQ exported
afterwards (the bare payloads), one envelope saved by hand and, with ``corrupt``, one record per
reject reason. :mod:`._archive` writes them to files.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..exceptions import REASONS
from ._constants import APP_ID, DAY, HOUR, MINUTE, START_MS, TRANSPORT, WEBHOOK_CRM
from ._model import Event
from ._portal import Portal


@dataclass
class Record:
    """One archived record: a delivery line (or a bare payload) and what it stands for."""

    received: int
    line: str
    event: int | None  # index of the event it delivers; None for a rejected record
    reason: str | None = None


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Archive:
    """Turns the portal's events into signed delivery records and bare payloads."""

    def __init__(self, portal: Portal, key: rsa.RSAPrivateKey, corrupt: bool) -> None:
        self.rng = portal.rng
        self.events = portal.events
        self.key = key
        self.records: list[Record] = []
        self.bare: dict[str, list[dict[str, Any]] | dict[str, Any]] = {}  # file name -> content
        self.force_quirks()
        self.deliver(portal.retry)
        if corrupt:
            self.corrupt()

    def force_quirks(self) -> None:
        """Make sure each envelope quirk shows at least once, whatever the dice said."""
        data = [e for e in self.events if e.payload["entity_type"] == "conversation"]
        if not any(e.payload["version"] == "1" for e in self.events):
            self.events[len(self.events) // 2].payload["version"] = "1"
        if not any(isinstance(e.payload["event_time"], int) for e in self.events):
            self.events[len(self.events) // 3].payload["event_time"] = self.events[len(self.events) // 3].time
        # the document's app_id: once as a JSON number beyond 2**53 (on a feedback if there is one)
        rated = [e for e in data if e.payload["event"] == "conversation.rated"]
        (rated or data)[0].payload["app_id"] = int(APP_ID)
        completed = [e for e in data if e.payload["event"] == "conversation.completed"]
        if not any("attended_time" not in e.payload["entity"] and "owner" in e.payload["entity"] for e in completed):
            next(e for e in completed if "owner" in e.payload["entity"]).payload["entity"].pop("attended_time")

    def body(self, payload: dict[str, Any], variant: int) -> str:
        """The request body: compact as sent first; re-serialised differently on a retry."""
        if variant == 0:
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        items = list(payload.items())
        if variant == 1:
            items.sort()
        elif variant == 2:
            items.reverse()
        else:
            self.rng.shuffle(items)
        spacing = self.rng.choice([(",", ":"), (", ", ": ")])
        return json.dumps(dict(items), ensure_ascii=self.chance(0.5), separators=spacing)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")

    def line(self, received: int, body: str, signature: str | None, shout: bool, encode: bool) -> str:
        raw = body.encode("utf-8")
        names = (
            ("Content-Type", "Content-Length", "X-SiqSignature")
            if shout
            else ("content-type", "content-length", "x-siqsignature")
        )
        headers = {names[0]: "application/json", names[1]: str(len(raw))}
        if signature is not None:
            headers[names[2]] = signature
        record: dict[str, Any] = {"received_at": iso(received), "headers": headers}
        if encode:
            record["body_base64"] = base64.b64encode(raw).decode("ascii")
        else:
            record["body"] = body
        return json.dumps(record, ensure_ascii=False)

    def deliver(self, midnight: Event | None) -> None:
        rng = self.rng
        plans: list[tuple[int, int, int, str]] = []  # received, event index, attempt, webhook
        first: list[int] = []
        for index, event in enumerate(self.events):
            received = event.time + rng.randint(80, 1_500)
            first.append(received)
            plans.append((received, index, 1, event.payload["webhook"]["id"]))
            if self.chance(0.03) or event is midnight:
                for attempt in range(2, 4 if self.chance(0.35) or event is midnight else 3):
                    received += MINUTE + rng.randint(0, 2_500)
                    plans.append((received, index, attempt, event.payload["webhook"]["id"]))
        # an outage: the endpoint lost every delivery for a while; SalesIQ's export of those events
        # (overlapping what did arrive) is in bare/
        order = sorted(range(len(self.events)), key=lambda i: (first[i], i))
        start = START_MS + 15 * DAY + 13 * HOUR + rng.randint(0, 2 * HOUR)
        i0 = next(n for n, i in enumerate(order) if first[i] >= start)
        size = max(3, round(0.015 * len(self.events)))
        window = self.outage = (first[order[i0]], first[order[i0 + size - 1]])
        data = [i for i, e in enumerate(self.events) if e.payload["entity_type"] == "conversation"]
        early = [i for i in data if first[i] < window[0]]
        crm = [i for i in early if self.chance(0.012)] or early[len(early) // 4 : len(early) // 4 + 1]
        plans += [(first[i] + rng.randint(5, 400), i, 1, WEBHOOK_CRM) for i in crm]  # a second webhook
        plans = [plan for plan in plans if not window[0] <= plan[0] <= window[1]]
        margin = max(2, size // 4)
        exported = sorted(order[i0 - margin : i0 + size + margin], key=lambda i: (self.events[i].time, i))
        assert {p[1] for p in plans} | set(exported) == set(range(len(self.events)))
        plans.sort()
        shout = {rng.randrange(len(plans)) for _ in range(max(1, len(plans) // 25))}
        encode = {rng.randrange(len(plans)) for _ in range(max(1, len(plans) // 70))}
        for number, (received, index, attempt, webhook) in enumerate(plans):
            payload = dict(self.events[index].payload, attempt=attempt, webhook={"id": webhook})
            body = self.body(payload, 0 if attempt == 1 else rng.randint(1, 3))
            line = self.line(received, body, self.sign(body.encode("utf-8")), number in shout, number in encode)
            self.records.append(Record(received, line, index))
        self.bare["outage-export.json"] = [self.bare_payload(i) for i in exported]
        delivered = sorted({p[1] for p in plans} - set(exported))
        rated = [i for i in delivered if self.events[i].payload["event"] == "conversation.rated"]
        single = rng.choice(rated or delivered)
        saved = {k: v for k, v in self.events[single].payload.items() if k not in TRANSPORT}
        self.bare["saved-by-hand.json"] = saved
        self.bare_events = [*exported, single]

    def bare_payload(self, index: int) -> dict[str, Any]:
        """An exported payload: transport fields as the export has them (or not at all)."""
        payload = dict(self.events[index].payload)
        r = self.rng.random()
        if r < 0.3:
            payload = {k: v for k, v in payload.items() if k not in ("handler", "webhook")}
        elif r < 0.5:
            payload["attempt"] = self.rng.randint(2, 4)
        return payload

    def corrupt(self) -> None:
        """One record per reject reason, each in another day."""
        rng = self.rng
        days = sorted({r.received // DAY for r in self.records})
        when = [day * DAY + rng.randint(9 * HOUR, 17 * HOUR) for day in rng.sample(days, len(REASONS))]
        events = [e.payload for e in self.events if e.payload["entity_type"] == "conversation"]
        replies = [p for p in events if p["event"] == "conversation.visitor.replied"]
        completed = [p for p in events if p["event"] == "conversation.completed" and "owner" in p["entity"]]

        def altered(payload: dict[str, Any], text: str) -> dict[str, Any]:
            payload = copy.deepcopy(payload)
            payload["entity"]["message"]["text"] = text
            payload["entity"]["message"]["msgid"] = str(int(payload["entity"]["message"]["msgid"]) + 7)
            return payload

        # unreadable: the logger died mid-line
        cut = self.line(when[0], self.body(events[0], 0), self.sign(b"x"), False, False)
        self.records.append(Record(when[0], cut[: len(cut) // 2], None, "unreadable"))
        # signature-missing: the header was not logged
        body = self.body(altered(rng.choice(replies), "Hello? Is anyone there?"), 0)
        self.records.append(Record(when[1], self.line(when[1], body, None, False, False), None, "signature-missing"))
        # signature-invalid: a valid body, but the signature is over other bytes (a proxy rewrote it)
        original = rng.choice(replies)
        body = self.body(altered(original, "I want a refund NOW"), 0)
        signature = self.sign(self.body(original, 0).encode("utf-8"))
        self.records.append(
            Record(when[2], self.line(when[2], body, signature, False, False), None, "signature-invalid")
        )
        # unknown-event and schema-invalid: signed, valid JSON, but no schema / breaking one
        source = rng.choice(completed)
        strange = dict(copy.deepcopy(source), event="conversation.exploded")
        entity = source["entity"]
        rated = dict(copy.deepcopy(source), event="conversation.rated")
        rated["entity"] = {
            "id": entity["id"],
            "rating": "five",
            "feedback": "Five stars!",
            "status": "Ended",
            "owner": entity["owner"],
            "visitor": entity["visitor"],
        }
        for t, payload, reason in ((when[3], strange, "unknown-event"), (when[4], rated, "schema-invalid")):
            body = self.body(payload, 0)
            line = self.line(t, body, self.sign(body.encode("utf-8")), False, False)
            self.records.append(Record(t, line, None, reason))
