"""siq sample: a deterministic, signed archive with real-world quirks whose expected counts hold.

Every check reads the files back (``read_records``, the written public key, the shipped schemas)
and recomputes what it needs on its own; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siq_schemas.exceptions import PayloadInvalid, SignatureInvalid, UnknownEvent
from siq_schemas.keys import load_keys
from siq_schemas.parse import loads
from siq_schemas.read import read_records
from siq_schemas.sample import MIN_EVENTS, sample_key, write_sample
from siq_schemas.validate import validate
from siq_schemas.verify import signature_header, verify_signature

EVENTS = 400
TRANSPORT = ("attempt", "handler", "webhook")
UNPUBLISHED = {
    "conversation.transfer.initiated",
    "conversation.transfer.accepted",
    "conversation.transfer.rejected",
    "conversation.participants.added",
    "conversation.participants.deleted",
    "conversation.supervisor.added",
    "conversation.message.edited",
    "conversation.message.deleted",
    "conversation.reopened",
    "conversation.metrics",
}
REPLIES = ("conversation.visitor.replied", "conversation.operator.replied")


@dataclass
class Item:
    """One record read back: where, what, and what a conversion must make of it."""

    source: str
    line: int
    kind: str  # delivery / bare / unreadable
    raw: Any = None  # the record object as written (delivery records)
    body: bytes = b""
    payload: Any = None
    reason: str | None = None  # the reject reason, None when accepted

    @property
    def identity(self) -> str:
        core = {k: v for k, v in self.payload.items() if k not in TRANSPORT}
        return json.dumps(core, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def day(self) -> str:
        return Path(self.source).name[:10]


@dataclass
class Sample:
    """A written sample, its returned counts and every record read back."""

    out: Path
    expected: dict[str, Any]
    items: list[Item]
    blank: int

    @property
    def accepted(self) -> list[Item]:
        return [item for item in self.items if item.reason is None]

    def unique(self) -> dict[str, dict[str, Any]]:
        """The first payload of each identity, in reading order."""
        seen: dict[str, dict[str, Any]] = {}
        for item in self.accepted:
            seen.setdefault(item.identity, item.payload)
        return seen

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.unique().values() if name is None or p["event"] == name]


def judge(item: Item, keys: Any) -> None:
    """Set the reject reason of ``item`` the way section 2 and 6 of the contract say."""
    if item.kind == "delivery":
        signature = signature_header(item.raw["headers"])
        if signature is None:
            item.reason = "signature-missing"
            return
        try:
            verify_signature(item.body, signature, keys)
        except SignatureInvalid:
            item.reason = "signature-invalid"
            return
        item.payload = loads(item.body)
    try:
        validate(item.payload)
    except UnknownEvent:
        item.reason = "unknown-event"
    except PayloadInvalid:
        item.reason = "schema-invalid"


def scan(out: Path, expected: dict[str, Any]) -> Sample:
    keys = load_keys(out / "keys" / "sample_public.pem")
    items, blank = [], 0
    files = sorted((out / "deliveries").iterdir()) + sorted((out / "bare").iterdir())
    for path in files:
        for record in read_records(path):
            if record.kind == "blank":
                blank += 1
                continue
            item = Item(record.source, record.line, record.kind)
            if record.kind == "unreadable":
                item.reason = "unreadable"
            elif record.kind == "delivery":
                item.raw, item.body = json.loads(record.raw), record.body or b""
                judge(item, keys)
            else:
                item.payload = record.payload
                judge(item, keys)
            items.append(item)
    return Sample(out, expected, items, blank)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    out = tmp_path_factory.mktemp("clean") / "sample"
    return scan(out, write_sample(out, seed=5, events=EVENTS))


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    out = tmp_path_factory.mktemp("corrupt") / "sample"
    return scan(out, write_sample(out, seed=11, events=EVENTS, corrupt=True))


@pytest.fixture(params=["clean", "corrupt"])
def sample(request: pytest.FixtureRequest) -> Sample:
    return request.getfixturevalue(request.param)


def hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_writes_byte_identical_files(tmp_path):
    """Two runs with the same arguments write the same files with the same bytes, keys included."""
    first = write_sample(tmp_path / "a" / "sample", seed=3, events=MIN_EVENTS, corrupt=True)
    second = write_sample(tmp_path / "b" / "sample", seed=3, events=MIN_EVENTS, corrupt=True)
    assert first == second
    one, two = hashes(tmp_path / "a" / "sample"), hashes(tmp_path / "b" / "sample")
    assert one == two
    assert "keys/sample_public.pem" in one and "_expected.json" in one and "README.md" in one


def test_another_seed_writes_other_files(tmp_path, clean):
    """Another seed gives another key and other deliveries."""
    write_sample(tmp_path / "sample", seed=6, events=EVENTS)
    other, mine = hashes(tmp_path / "sample"), hashes(clean.out)
    assert other["keys/sample_public.pem"] != mine["keys/sample_public.pem"]
    shared = set(other) & set(mine)
    assert not {name for name in shared if name.startswith("deliveries/") and other[name] == mine[name]}


def test_sample_key_is_deterministic_2048_bit_and_fast():
    """The signing key is a 2048-bit RSA key with e = 65537, derived from the seed in under 2 s."""
    started = time.perf_counter()
    key = sample_key(7)
    elapsed = time.perf_counter() - started
    numbers = key.private_numbers()
    assert key.key_size == 2048 and numbers.public_numbers.e == 65537
    assert numbers.public_numbers.n == sample_key(7).private_numbers().public_numbers.n
    assert numbers.public_numbers.n != sample_key(8).private_numbers().public_numbers.n
    assert elapsed < 2


def test_gzip_headers_carry_no_time_and_no_name(clean):
    """gzip members have mtime 0 and no file name, so they do not depend on when or where they were made."""
    for path in (clean.out / "deliveries").glob("*.gz"):
        header = path.read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08" and header[3] & 0x08 == 0 and header[4:8] == b"\0\0\0\0"


# --- signatures and schemas ----------------------------------------------------------------------


def test_every_record_verifies_and_validates(clean):
    """Without --corrupt every delivery verifies with the written public key and every payload validates."""
    assert [item for item in clean.items if item.reason] == []
    assert sum(item.kind == "delivery" for item in clean.items) > EVENTS * 0.9


def test_corrupt_adds_exactly_one_record_per_reject_reason(corrupt):
    """With --corrupt exactly five records fail, one per reject reason; all others verify and validate."""
    reasons = Counter(item.reason for item in corrupt.items if item.reason)
    assert reasons == dict.fromkeys(
        ["unreadable", "signature-missing", "signature-invalid", "unknown-event", "schema-invalid"], 1
    )
    assert all(item.source.endswith((".gz", ".zst", ".jsonl")) for item in corrupt.items if item.reason)
    bad = next(item for item in corrupt.items if item.reason == "signature-invalid")
    validate(loads(bad.body))  # a valid body, signed over other bytes
    strange = next(item for item in corrupt.items if item.reason == "unknown-event")
    assert strange.payload["event"] == "conversation.exploded"
    invalid = next(item for item in corrupt.items if item.reason == "schema-invalid")
    assert invalid.payload["entity"]["rating"] == "five"


def test_bare_files_are_valid_unsigned_payloads(clean):
    """bare/ holds a JSON array of envelopes and a single-envelope file, all valid, none signed."""
    documents = {path.name: json.loads(path.read_text()) for path in (clean.out / "bare").iterdir()}
    assert any(isinstance(doc, list) and len(doc) > 1 for doc in documents.values())
    assert any(isinstance(doc, dict) for doc in documents.values())
    bare = [item for item in clean.items if item.kind == "bare"]
    assert bare and all(item.reason is None for item in bare)
    delivered = {item.identity for item in clean.items if item.kind == "delivery"}
    assert {item.identity in delivered for item in bare} == {True, False}  # some duplicates, some new


def test_public_key_is_pem_and_no_private_key_is_written(clean):
    """keys/ holds only the public key, as PEM SubjectPublicKeyInfo."""
    assert [path.name for path in (clean.out / "keys").iterdir()] == ["sample_public.pem"]
    text = (clean.out / "keys" / "sample_public.pem").read_text()
    assert text.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in text
    plain = [path for path in clean.out.rglob("*") if path.is_file() and path.suffix in (".md", ".json", ".pem")]
    assert plain and not [path for path in plain if b"PRIVATE KEY" in path.read_bytes()]


# --- expected counts -----------------------------------------------------------------------------


def test_expected_json_is_the_returned_dict_and_balances(sample):
    """_expected.json (sorted keys, indent 2) equals the returned counts and records_read balances."""
    text = (sample.out / "_expected.json").read_text()
    assert json.loads(text) == sample.expected
    assert text == json.dumps(sample.expected, indent=2, sort_keys=True) + "\n"
    e = sample.expected
    assert e["records_read"] == e["events_written"] + e["duplicates"] + sum(e["rejected"].values())
    assert e["tables"]["events"] == e["events_written"] and e["tables"]["rejects"] == sum(e["rejected"].values())


def test_counts_recomputed_from_the_files_match(sample):
    """Re-reading every record and deduplicating by identity gives exactly the generator's counts."""
    e = sample.expected
    unique = sample.unique()
    payloads = list(unique.values())
    names = Counter(p["event"] for p in payloads)
    assert len(sample.items) == e["records_read"]
    assert sample.blank == e["blank_lines"]
    assert len(unique) == e["events_written"]
    assert len(sample.accepted) - len(unique) == e["duplicates"]
    assert Counter(i.reason for i in sample.items if i.reason) == {k: v for k, v in e["rejected"].items() if v}
    conversation = [p for p in payloads if p["event"].startswith("conversation.")]
    replies = [p for p in payloads if p["event"] in REPLIES]
    visitors = {p["entity"]["id"] for p in payloads if p["event"] == "visitor.updated"}
    visitors |= {p["entity"]["visitor"]["id"] for p in conversation if "visitor" in p.get("entity", {})}
    tables = {
        "events": len(payloads),
        "conversation_events": sum(
            names[f"conversation.{n}"] for n in ("created", "attender.updated", "missed", "completed")
        ),
        "messages": len(replies),
        "ratings": names["conversation.rated"],
        "conversations": len({p["entity_id"] for p in conversation}),
        "operator_events": sum(n for name, n in names.items() if name.startswith("operator.")),
        "department_events": sum(n for name, n in names.items() if name.startswith("department.")),
        "visitor_events": names["visitor.updated"],
        "operators": len({p["entity_id"] for p in payloads if p["event"].startswith("operator.")}),
        "departments": len({p["entity_id"] for p in payloads if p["event"].startswith("department.")}),
        "visitors": len(visitors),
        "rejects": sum(1 for i in sample.items if i.reason),
    }
    assert tables == e["tables"]
    ended = {p["entity_id"] for p in payloads if p["event"] == "conversation.completed"}
    missed = {p["entity_id"] for p in payloads if p["event"] == "conversation.missed"} - ended
    ids = {p["entity_id"] for p in conversation}
    rated = [p["entity"] for p in payloads if p["event"] == "conversation.rated"]
    scores = [r["rating"] for r in rated if "rating" in r]
    roles = Counter(
        "visitor" if p["event"] == "conversation.visitor.replied" else p["entity"]["message"]["sender"]["type"]
        for p in replies
    )
    operators = {p["entity_id"] for p in payloads if p["event"] == "operator.created"}
    operators -= {p["entity_id"] for p in payloads if p["event"] == "operator.deleted"}
    departments = {p["entity_id"] for p in payloads if p["event"].startswith("department.")}
    departments -= {p["entity_id"] for p in payloads if p["event"] == "department.deleted"}
    facts = {
        "conversations": {"completed": len(ended), "missed": len(missed), "open": len(ids - ended - missed)},
        "ratings": {
            "count": len(scores),
            "mean": round(sum(scores) / len(scores), 4) if scores else None,
            "feedback_only": len(rated) - len(scores),
        },
        "messages": {role: roles[role] for role in ("visitor", "operator", "bot")},
        "operators_active": len(operators),
        "departments_active": len(departments),
    }
    assert facts == e["facts"]
    assert sum(roles.values()) == len(replies)  # no sender type but visitor/operator/bot


def test_events_is_roughly_the_number_of_unique_events(clean):
    """--events N gives about N unique events (within 10 %)."""
    assert abs(clean.expected["events_written"] - EVENTS) <= EVENTS * 0.1


def test_too_few_events_is_refused(tmp_path):
    """Fewer events than MIN_EVENTS (too few to show every quirk) raise ValueError."""
    with pytest.raises(ValueError, match="at least"):
        write_sample(tmp_path / "sample", events=MIN_EVENTS - 1)


def test_an_earlier_sample_is_replaced_but_other_folders_are_refused(tmp_path):
    """Writing over an earlier sample replaces it; a non-empty folder that is not a sample is refused."""
    out = tmp_path / "sample"
    write_sample(out, seed=1, events=MIN_EVENTS)
    expected = write_sample(out, seed=2, events=MIN_EVENTS)
    assert json.loads((out / "_expected.json").read_text()) == expected
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_sample(other, events=MIN_EVENTS)
    assert (other / "notes.txt").read_text() == "mine"


def test_readme_gives_the_command_and_how_to_convert(clean):
    """README.md names the exact command that made the archive and the convert command for it."""
    text = (clean.out / "README.md").read_text()
    assert f"siq sample --out sample --seed 5 --events {EVENTS}" in text
    assert "siq convert sample --out sample-parquet" in text and "--allow-unsigned" in text
    assert str(clean.expected["records_read"]) in text


# --- retries and duplicates ----------------------------------------------------------------------


def test_retries_are_reserialised_a_minute_later_with_the_same_identity(sample):
    """Retries carry attempt 2 or 3, a differently serialised body and the same identity, >= 60 s later."""
    first = {i.identity: i for i in sample.accepted if i.kind == "delivery" and i.payload["attempt"] == 1}
    retries = [i for i in sample.accepted if i.kind == "delivery" and i.payload["attempt"] > 1 and i.identity in first]
    assert {i.payload["attempt"] for i in retries} == {2, 3}
    for retry in retries:
        original = first[retry.identity]
        assert retry.body != original.body
        assert (
            retry.body.replace(b'"attempt":' + str(retry.payload["attempt"]).encode(), b'"attempt":1') != original.body
        )
        assert retry.raw["received_at"] > original.raw["received_at"]
    assert any(i.day > first[i.identity].day for i in retries)  # a retry in the next day's file
    assert any(set(i.body.split(b",")) != set(first[i.identity].body.split(b",")) for i in retries)


def test_some_events_reach_two_webhooks(sample):
    """A few events are delivered to two webhooks: same identity, another webhook.id."""
    hooks = defaultdict(set)
    for item in sample.accepted:
        if item.kind == "delivery":
            hooks[item.identity].add(item.payload["webhook"]["id"])
    assert any(len(ids) == 2 for ids in hooks.values())


# --- quirks --------------------------------------------------------------------------------------


def test_reader_paths_and_record_quirks_are_all_present(sample):
    """gz, zst and plain day files, X-SiqSignature case, body_base64, blank lines."""
    suffixes = Counter("".join(path.suffixes) for path in (sample.out / "deliveries").iterdir())
    assert suffixes[".jsonl.gz"] > 10 and suffixes[".jsonl.zst"] == 3 and suffixes[".jsonl"] == 1
    names = sorted(path.name for path in (sample.out / "deliveries").iterdir())
    assert names[0] >= "2026-03-02" and names[-1] < "2026-03-30"  # a file per day (with deliveries)
    deliveries = [i for i in sample.items if i.kind == "delivery"]
    assert any("X-SiqSignature" in i.raw["headers"] for i in deliveries)
    assert any("x-siqsignature" in i.raw["headers"] for i in deliveries)
    assert any("body_base64" in i.raw for i in deliveries)
    assert all(i.raw["received_at"].endswith("Z") and len(i.raw["received_at"]) == 24 for i in deliveries)
    assert sample.blank >= 2


def test_envelopes_look_like_real_deliveries(sample):
    """handler/webhook, version 1 and "1", event_time as string and int, ids as strings, one app_id number."""
    payloads = [i.payload for i in sample.accepted]
    assert all(p.get("handler", "execution") == "execution" for p in payloads)
    assert {type(p["version"]) for p in payloads} == {int, str}
    assert {type(p["event_time"]) for p in payloads} == {int, str}
    assert all(isinstance(p["org_id"], str) and isinstance(p["entity_id"], str) for p in payloads)
    numbers = {i.identity for i in sample.accepted if isinstance(i.payload.get("app_id"), int)}
    assert len(numbers) == 1
    raw = next(i.body for i in sample.accepted if isinstance(i.payload.get("app_id"), int) and i.body)
    assert b'"app_id":40526000000002040' in raw.replace(b" ", b"")


def test_entities_carry_the_observed_shapes(sample):
    """Owners with email_id/email/type, visitors with channel, both chat_status shapes, string booleans."""
    attended = ("conversation.completed", "conversation.attender.updated")
    conv = [p["entity"] for p in sample.events() if p["event"] in attended and "owner" in p["entity"]]
    assert all({"email_id", "email"} <= set(c["owner"]) and c["owner"]["type"] == "operator" for c in conv)
    assert all("channel" in c["visitor"] for c in conv)
    statuses = [p["entity"]["chat_status"] for p in sample.events() if "chat_status" in p.get("entity", {})]
    shapes = {isinstance(status["status_code"], list) for status in statuses}
    assert shapes == {True, False}
    observed = next(status for status in statuses if not isinstance(status["status_code"], list))
    assert isinstance(observed["state"], int) and "state_key" in observed and "status_key" in observed
    admin = [
        p["entity"] for p in sample.events() if p["event"].startswith(("operator.", "department.")) and "entity" in p
    ]
    flags = {v for e in admin for k, v in e.items() if k in ("enabled", "is_enabled", "chat_enabled")}
    assert {True, "true"} <= flags


def test_the_portal_lives_through_every_admin_event(sample):
    """Departments created, updated, deleted; operators created, moved (both spellings), re-roled, deleted."""
    names = Counter(p["event"] for p in sample.events())
    for name in (
        "department.created",
        "department.updated",
        "department.deleted",
        "operator.created",
        "operator.updated",
        "operator.deleted",
        "operator.departments.associated",
        "operator.departments.dissociated",
        "operator.departments.disassociated",
    ):
        assert names[name] >= 1, name
    assert all("entity" not in p for p in sample.events("operator.deleted"))
    assert all("entity" not in p for p in sample.events("department.deleted"))
    roles = {p["entity"]["role"] for p in sample.events() if p["event"].startswith("operator.") and "entity" in p}
    assert roles == {"Associate", "Supervisor", "Administrator"}
    assert any(p["modified_fields"] == ["role"] for p in sample.events("operator.updated"))
    deleted = min(int(p["event_time"]) for p in sample.events("department.deleted"))
    assert deleted > 1772409600000 + 20 * 86_400_000  # late in the period
    assert all(isinstance(p["entity"]["operators"], list) for p in sample.events("department.created"))


def test_visitors_turn_from_leads_into_contacts(sample):
    """visitor.updated shows case 1 (lead), case 2 (contact with lead.id) and case 3 (contact)."""
    updates = [p["entity"] for p in sample.events("visitor.updated")]
    assert any(u["type"].strip() == "lead" for u in updates)
    converted = [u for u in updates if u["type"] == "contact" and "lead" in u]
    assert converted and all(u["lead"]["id"] != u["id"] for u in converted)
    assert any(u["type"] == "contact" and "lead" not in u for u in updates)
    assert all(u["modifier"]["type"] == "operator" for u in updates)


def test_conversations_have_every_outcome_and_message_kind(sample):
    """Completed, missed and open chats; visitor, operator and bot messages; ratings and feedback-only."""
    facts = sample.expected["facts"]
    assert all(n > 0 for n in facts["conversations"].values())
    assert all(n > 0 for n in facts["messages"].values())
    assert facts["ratings"]["count"] > 0 and facts["ratings"]["feedback_only"] > 0
    rated = [p["entity"] for p in sample.events("conversation.rated")]
    assert all(isinstance(r["rating"], int) and 1 <= r["rating"] <= 5 for r in rated if "rating" in r)
    bots = [
        p["entity"]["message"]
        for p in sample.events("conversation.operator.replied")
        if p["entity"]["message"]["sender"]["type"] == "bot"
    ]
    assert bots and all("meta" in m and "list" in m and "msgid" not in m and "text" not in m for m in bots)
    completed = [p["entity"] for p in sample.events("conversation.completed")]
    assert all("ended_by" in c and "end_time" in c for c in completed)
    assert any("attended_time" not in c and "owner" in c for c in completed)  # observed: may lack it
    missed = [p["entity"] for p in sample.events("conversation.missed")]
    assert all("missed_time" in m and "attended_time" not in m and "owner" not in m for m in missed)


def test_bot_only_conversations_exist(sample):
    """Some conversations have only bot replies, no operator, and end completed or missed (or stay open)."""
    history = defaultdict(list)
    for p in sample.events():
        if p["event"].startswith("conversation."):
            history[p["entity_id"]].append(p)
    bot_only = [
        events
        for events in history.values()
        if any(p["event"] in REPLIES for p in events)
        and all(p["entity"]["message"]["sender"]["type"] == "bot" for p in events if p["event"] in REPLIES)
        and not any(p["event"] == "conversation.attender.updated" for p in events)
    ]
    assert bot_only
    assert any(any(p["event"] in ("conversation.completed", "conversation.missed") for p in e) for e in bot_only)


def test_the_ten_unpublished_events_appear(sample):
    """Every event named by the vendor without a published payload appears at least once."""
    assert UNPUBLISHED - {p["event"] for p in sample.events()} == set()


def test_messages_keep_distinct_msgids_and_may_share_a_millisecond(sample):
    """Within a conversation msgids never repeat; two messages at the same event_time stay two events."""
    seen: dict[str, set[str]] = defaultdict(set)
    times: Counter[tuple[str, int]] = Counter()
    for p in sample.events():
        if p["event"] in REPLIES and "msgid" in p["entity"]["message"]:
            msgid = p["entity"]["message"]["msgid"]
            assert msgid not in seen[p["entity_id"]]
            seen[p["entity_id"]].add(msgid)
            times[(p["entity_id"], int(p["event_time"]))] += 1
    assert max(times.values()) >= 2


# --- a consistent history ------------------------------------------------------------------------


def test_histories_are_ordered_and_entity_times_agree(sample):
    """event_time follows each entity's life; opened/attended/end/missed/created times agree with it."""
    start, end = 1772409600000, 1772409600000 + 28 * 86_400_000
    histories = defaultdict(list)
    for p in sample.events():
        t = int(p["event_time"])
        assert start <= t < end
        histories[(p["entity_type"], p["entity_id"])].append((t, p["event"].split(".", 1)[1], p.get("entity", {})))
        entity = p.get("entity", {})
        for name in ("opened_time", "attended_time", "end_time", "missed_time", "created_time", "modified_time"):
            if name in entity:
                assert int(entity[name]) <= t, (p["event"], name)
        own = {"created": "opened_time", "attender.updated": "attended_time", "completed": "end_time"}
        own["missed"] = "missed_time"
        name = own.get(p["event"].split(".", 1)[1]) if p["entity_type"] == "conversation" else None
        if name and name in entity:
            assert t - int(entity[name]) < 1_000  # the event follows the fact within a second
    for (kind, _), history in histories.items():
        names = [name for _, name, _ in sorted(history, key=lambda item: item[0])]
        if kind == "conversation":
            assert names[0] == "created"
            for later, earlier in (
                ("completed", "attender.updated"),
                ("rated", "completed"),
                ("reopened", "completed"),
            ):
                if later in names and earlier in names:
                    assert names.index(later) > names.index(earlier), (later, names)
            assert not ({"missed", "attender.updated"} <= set(names))
            assert not ({"missed", "rated"} <= set(names))
        elif kind in ("operator", "department"):
            assert names[0] == "created" and "created" not in names[1:]
            assert "deleted" not in names[:-1]
        if kind == "conversation" and "attender.updated" in names:
            opened = int(history[0][2].get("opened_time", 0)) or min(t for t, _, _ in history)
            assert all(t >= opened for t, _, _ in history)


def test_operator_lists_are_full_and_owners_are_members(sample):
    """operator.* events carry the full department list; owners belong to the chat's department then."""
    current: dict[str, list[str]] = {}
    timeline = sorted(
        (int(p["event_time"]), p["event"], p)
        for p in sample.events()
        if p["event"].startswith(("operator.", "department.", "conversation.attender"))
    )
    for _, name, p in timeline:
        if name == "operator.deleted":
            current.pop(p["entity_id"])
        elif name.startswith("operator."):
            new, old = p["entity"]["departments"], current.get(p["entity_id"], [])
            if name.endswith(".associated"):
                assert set(old) < set(new)
            elif name.endswith("ssociated"):
                assert set(new) < set(old)
            current[p["entity_id"]] = new
        elif name == "department.updated":
            members = {op for op, deps in current.items() if p["entity_id"] in deps}
            assert set(p["entity"]["operators"]) == members
        elif name == "conversation.attender.updated":
            owner = p["entity"]["owner"]["id"]
            assert p["entity"]["department_id"] in current[owner]
