"""The archive of the simulated events, and the files of a sample.

- ``deliveries/<YYYY-MM-DD>.jsonl.gz`` (a few days ``.jsonl.zst``, one plain ``.jsonl``): delivery
  records (contract section 1), with the quirks of real archives: retries (``attempt`` 2 and 3, the
  body re-serialised, a minute later, sometimes in the next day's file), events sent to two
  webhooks, header names in another case, ``body_base64``, blank lines, and an endpoint outage.
- ``bare/``: bare payloads, unsigned: the events of the outage exported from SalesIQ afterwards (an
  array, overlapping what was delivered) and one envelope saved by hand.
- ``keys/sample_public.pem``; the private key is never written.
- ``_expected.json``: what a conversion of the archive must count, computed from the simulation. Its
  leading underscore makes the readers skip it when they walk the folder (as pyarrow datasets do).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..exceptions import REASONS
from ._constants import (
    APP_ID,
    CONVERSATION_EVENTS,
    DAY,
    HOUR,
    MIN_EVENTS,
    MINUTE,
    START_MS,
    TRANSPORT,
    WEBHOOK_CRM,
)
from ._keys import sample_key
from ._model import Event
from ._portal import Portal

# --- deliveries, bare payloads, expected counts ------------------------------------------------


def _identity(payload: dict[str, Any]) -> str:
    """The event identity: canonical JSON of the payload minus its transport fields."""
    core = {key: value for key, value in payload.items() if key not in TRANSPORT}
    return json.dumps(core, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class _Record:
    """One archived record: a delivery line (or a bare payload) and what it stands for."""

    received: int
    line: str
    event: int | None  # index of the event it delivers; None for a rejected record
    reason: str | None = None


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class _Archive:
    """Turns the portal's events into signed delivery records, bare payloads and expected counts."""

    def __init__(self, portal: Portal, key: rsa.RSAPrivateKey, corrupt: bool) -> None:
        self.rng = portal.rng
        self.events = portal.events
        self.key = key
        self.records: list[_Record] = []
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
        record: dict[str, Any] = {"received_at": _iso(received), "headers": headers}
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
            self.records.append(_Record(received, line, index))
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
        self.records.append(_Record(when[0], cut[: len(cut) // 2], None, "unreadable"))
        # signature-missing: the header was not logged
        body = self.body(altered(rng.choice(replies), "Hello? Is anyone there?"), 0)
        self.records.append(_Record(when[1], self.line(when[1], body, None, False, False), None, "signature-missing"))
        # signature-invalid: a valid body, but the signature is over other bytes (a proxy rewrote it)
        original = rng.choice(replies)
        body = self.body(altered(original, "I want a refund NOW"), 0)
        signature = self.sign(self.body(original, 0).encode("utf-8"))
        self.records.append(
            _Record(when[2], self.line(when[2], body, signature, False, False), None, "signature-invalid")
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
            self.records.append(_Record(t, line, None, reason))

    def expected(self, blank_lines: int) -> dict[str, Any]:
        """What converting the archive must count, from the simulation (no converter involved)."""
        identities = [_identity(e.payload) for e in self.events]
        if len(set(identities)) != len(identities):
            raise AssertionError("two simulated events share an identity")
        accepted = sum(r.event is not None for r in self.records) + len(self.bare_events)
        rejected = Counter(r.reason for r in self.records if r.reason)
        payloads = [e.payload for e in self.events]
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
            "records_read": len(self.records) + len(self.bare_events),
            "blank_lines": blank_lines,
            "events_written": len(self.events),
            "duplicates": accepted - len(self.events),
            "rejected": {reason: rejected.get(reason, 0) for reason in REASONS},
            "tables": {
                "events": len(self.events),
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


# --- files ---------------------------------------------------------------------------------------

_EXPECTED = "_expected.json"
"""The expected counts; the leading underscore makes the readers skip it when they walk the folder."""
_OURS = {"deliveries", "bare", "keys", "README.md", _EXPECTED}


def write_sample(out: str | Path, seed: int = 7, events: int = 3000, corrupt: bool = False) -> dict[str, Any]:
    """Write a synthetic SalesIQ webhook archive to ``out`` and return the counts a conversion must give.

    ``events`` is the number of unique events (approximately; the counts are exact for what is
    written); ``corrupt`` adds one rejected record per reject reason. The counts are also written
    to ``out/_expected.json``. ``out`` must be empty, missing, or an earlier sample (replaced).
    Same arguments, same bytes.
    """
    if not isinstance(events, int) or events < MIN_EVENTS:
        raise ValueError(f"events must be an integer of at least {MIN_EVENTS}, not {events!r}")
    out = Path(out)
    _prepare(out)
    key = sample_key(seed)
    portal = Portal(random.Random(f"siq-sample/{seed}"), events)
    chats_from = portal.administration()
    for plan in portal.plans(chats_from):
        portal.conversation(plan)
    archive = _Archive(portal, key, corrupt)
    blank = _write_deliveries(out / "deliveries", archive)
    (out / "bare").mkdir()
    for name, content in sorted(archive.bare.items()):
        (out / "bare" / name).write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "keys").mkdir()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (out / "keys" / "sample_public.pem").write_bytes(pem)
    expected = archive.expected(blank)
    (out / _EXPECTED).write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(out, seed, events, corrupt, expected, archive.outage), encoding="utf-8")
    return expected


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        names = {entry.name for entry in out.iterdir()}
        if _EXPECTED not in names or not names <= _OURS:
            raise FileExistsError(f"{out} is not empty and is not an earlier sample; choose an empty directory")
        for name in names:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_deliveries(folder: Path, archive: _Archive) -> int:
    """One file per day (most gzip, a few zstd, one plain), records by time; return the blank lines."""
    rng = archive.rng
    by_day: dict[int, list[_Record]] = {}
    for record in sorted(archive.records, key=lambda record: record.received):  # stable: ties keep their order
        by_day.setdefault(record.received // DAY, []).append(record)
    days = sorted(by_day)
    zst = set(rng.sample(days[1:-1], 3))
    plain = min((day for day in days[1:-1] if day not in zst), key=lambda day: (len(by_day[day]), day))
    lines_by_day = {day: [record.line for record in records] for day, records in by_day.items()}
    blanks = 0
    for _ in range(3 + rng.randint(0, 3)):  # blank lines, somewhere in the middle of a file
        lines = lines_by_day[rng.choice(days)]
        lines.insert(rng.randint(1, len(lines) - 1) if len(lines) > 1 else 1, rng.choice(["", "   ", "\t"]))
        blanks += 1
    folder.mkdir()
    for day in days:
        data = ("\n".join(lines_by_day[day]) + "\n").encode("utf-8")
        name = datetime.fromtimestamp(day * DAY / 1000, UTC).strftime("%Y-%m-%d") + ".jsonl"
        if day == plain:
            (folder / name).write_bytes(data)
        elif day in zst:
            (folder / f"{name}.zst").write_bytes(zstandard.ZstdCompressor(level=10).compress(data))
        else:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return blanks


def _readme(out: Path, seed: int, events: int, corrupt: bool, expected: dict[str, Any], outage: tuple[int, int]) -> str:
    name = out.resolve().name or "DIR"
    command = f"siq sample --out {name} --seed {seed} --events {events}" + (" --corrupt" if corrupt else "")
    tables = expected["tables"]
    facts = expected["facts"]
    rejected = sum(expected["rejected"].values())
    conversations = " / ".join(str(n) for n in facts["conversations"].values())
    messages = " / ".join(str(n) for n in facts["messages"].values())
    lost = f"{_iso(outage[0])[:16]} to {_iso(outage[1])[:16]}".replace("T", " ") + " UTC"
    return f"""# Synthetic SalesIQ webhook archive

Four weeks (2026-03-02 to 2026-03-29 UTC) of webhook deliveries from a fictional Zoho SalesIQ portal
(Zylker), made by `siq sample`. Nothing in it is real: names, ids, chats and the signing key are all
simulated. It exercises every reader path and the quirks of real deliveries, so it serves the demo,
the notebooks and the tests.

Made with (deterministic: the same command writes the same bytes):

    {command}

## Layout

- `deliveries/YYYY-MM-DD.jsonl.gz`: one file per day of delivery records
  (`{{"received_at", "headers", "body"}}`), signed with RSASSA-PKCS1-v1_5 + SHA-256 in the
  `x-siqsignature` header. Three days are `.jsonl.zst` and one is a plain `.jsonl`.
  Quirks included: retries (`attempt` 2 and 3, the body re-serialised, a minute later, once across
  midnight into the next day's file), events sent to a second webhook, `X-SiqSignature` header
  case, `body_base64` instead of `body`, blank lines, an endpoint outage (nothing arrived from
  {lost}), the ten events that have no published payload, `operator.departments.disassociated`.{
        " Also one record per reject reason (`--corrupt`)." if corrupt else ""
    }
- `bare/outage-export.json`: the events of the outage as exported from SalesIQ afterwards (a JSON
  array of envelopes, unsigned); it overlaps deliveries that did arrive.
- `bare/saved-by-hand.json`: one envelope saved by hand (also delivered).
- `keys/sample_public.pem`: the public key (PEM SubjectPublicKeyInfo). The private key is not kept;
  `siq sample` derives it from the seed.
- `_expected.json`: what a conversion must count, computed by the generator from its simulation.
  Readers skip it when they walk the folder, as they skip every name starting with `_` or `.`.

## Converting it

From the directory that holds `{name}/`:

    siq convert {name} --out {name}-parquet --keys {name}/keys/sample_public.pem --allow-unsigned

`--allow-unsigned` accepts the bare payloads (marked `unsigned`). What the conversion must report:

| count | expected |
| --- | ---: |
| records read | {expected["records_read"]} |
| events written | {expected["events_written"]} |
| duplicates (retries, second webhook, bare copies) | {expected["duplicates"]} |
| rejected | {rejected} |
| blank lines (counted apart) | {expected["blank_lines"]} |
| conversations: completed / missed / open | {conversations} |
| messages (visitor / operator / bot) | {tables["messages"]} ({messages}) |
| ratings (with a rating / feedback only) | {tables["ratings"]} ({facts["ratings"]["count"]} / {
        facts["ratings"]["feedback_only"]
    }) |
| operators (active at the end) | {tables["operators"]} ({facts["operators_active"]}) |
| departments (not deleted) | {tables["departments"]} ({facts["departments_active"]}) |
| visitors | {tables["visitors"]} |

`_expected.json` has every count, by table and by reject reason.
"""
