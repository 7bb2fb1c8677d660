"""Security: nothing unverified reaches a table, secrets stay out of logs, nothing is fetched or evaluated."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import referencing.exceptions

import siq_schemas
import siq_schemas.tables
from siq_schemas import _registry
from siq_schemas.cli import main
from siq_schemas.dedupe import event_key
from tests.archives import chat, envelope
from tests.conftest import KEYS, delivery, sign, write_lines

KEY_A = KEYS / "key_a_public.pem"


def hostile_signatures() -> tuple[list, set[str]]:
    """Records whose signatures fail in every way, a few good ones, and the event keys of the good ones."""
    good = [envelope("department.deleted", f"good{i}", 1_772_000_000_000 + i) for i in range(3)]
    bad = [envelope("department.deleted", f"bad{i}", 1_772_000_000_000 + i) for i in range(12)]
    tampered = delivery(bad[0])
    tampered["body"] = tampered["body"].replace("bad0", "bad1")
    reserialised = delivery(bad[2], indent=2)
    reserialised["headers"]["x-siqsignature"] = sign(json.dumps(bad[2]).encode())
    signed_but_invalid = {"headers": {"x-siqsignature": sign(b"{}")}, "body_base64": base64.b64encode(b"{}").decode()}
    records = [
        *(delivery(payload) for payload in good),
        delivery(bad[1], key="b"),  # a real key, but not one given
        delivery(bad[3], key="unknown"),
        tampered,
        reserialised,
        delivery(bad[4], key=None),
        {**delivery(bad[5]), "headers": {"x-siqsignature": ""}},
        {**delivery(bad[6]), "headers": {"x-siqsignature": "not base64!"}},
        {**delivery(bad[7]), "headers": {"x-siqsignature": sign(b"x")[:-8]}},
        {**delivery(bad[8]), "headers": {"x-siqsignature": [sign(b"{}")]}},  # a list of values, none right
        signed_but_invalid,
        bad[9],  # bare payloads never had a signature
        {"headers": {}, "body": json.dumps(bad[10])},
        {"received_at": "2026-03-01T10:00:00Z", "body": json.dumps(bad[11])},
    ]
    return records, {event_key(payload) for payload in good}


def test_with_keys_only_verified_records_reach_the_tables(tmp_path):
    """With keys, every row of every event table comes from a record whose signature verified: the rest are rejects."""
    records, good = hostile_signatures()
    report = siq_schemas.convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out", keys=KEY_A)
    events = siq_schemas.read_table(tmp_path / "out", "events")
    assert set(events["event_key"]) == good and set(events["signature"]) == {"valid"}
    assert report.rejected == len(records) - len(good) and report.balanced
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert rejects["reason"].value_counts().to_dict() == {
        "signature-invalid": 7,
        "signature-missing": 5,
        "schema-invalid": 1,
    }
    for table in ("department_events", "operator_events", "conversation_events", "messages", "ratings"):
        assert set(siq_schemas.read_table(tmp_path / "out", table).get("event_key", [])) <= good


def test_bare_payloads_reach_the_tables_only_when_allowed(tmp_path):
    """With keys, bare payloads are rejected unless --allow-unsigned; then they are `unsigned`, never `valid`."""
    bare = [envelope("department.deleted", f"d{i}", 1_772_000_000_000 + i) for i in range(3)]
    archive = write_lines(tmp_path / "a.jsonl", bare)
    (tmp_path / "b.json").write_text(json.dumps(bare))
    refused = siq_schemas.convert([archive, tmp_path / "b.json"], tmp_path / "refused", keys=KEY_A)
    assert (refused.events_written, refused.rejected_by_reason["signature-missing"]) == (0, 6)
    allowed = siq_schemas.convert(archive, tmp_path / "allowed", keys=KEY_A, allow_unsigned=True)
    assert allowed.events_written == 3
    assert set(siq_schemas.read_table(tmp_path / "allowed", "events")["signature"]) == {"unsigned"}


def leaked(text: str, secret: str, width: int = 16) -> bool:
    """Whether any ``width`` characters in a row of ``secret`` appear in ``text``."""
    return any(secret[start : start + width] in text for start in range(len(secret) - width + 1))


def test_keys_and_signatures_are_never_printed_in_full(tmp_path, capsys):
    """What siq verify, validate and convert print, the rejects' details and the manifest hold no signature or key."""
    records, _ = hostile_signatures()
    archive = write_lines(tmp_path / "a.jsonl", records)
    signatures = [
        value
        for record in records
        if isinstance(record, dict)
        for value in (record.get("headers") or {}).values()
        if isinstance(value, str) and len(value) > 16
    ]
    secrets = signatures + [
        line for name in ("key_a_public.pem", "key_b_private.pem") for line in (KEYS / name).read_text().splitlines()
    ]
    main(["verify", "--keys", str(KEY_A), str(archive)])
    main(["validate", str(archive)])
    main(["convert", str(archive), "--out", str(tmp_path / "out"), "--keys", str(KEY_A)])
    main(["convert", str(archive), "--out", str(tmp_path / "out2"), "--keys", str(KEYS / "key_b_private.pem")])
    private = (KEYS / "key_b_private.pem").read_text()
    for source in (private, private.replace("\n", "\\n"), private[: len(private) // 2]):
        main(["verify", "--keys", source, str(archive)])
    captured = capsys.readouterr()
    details = "\n".join(siq_schemas.read_table(tmp_path / "out", "rejects")["detail"])
    manifest = (tmp_path / "out" / "_manifest.json").read_text()
    printed = "\n".join((captured.out, captured.err, details, manifest))
    unknown = records[4]["headers"]["x-siqsignature"]
    assert f"signature '{unknown[:8]}…' does not verify" in printed  # what is printed: 8 characters and an ellipsis
    assert "does not verify" in printed and "PRIVATE key" in printed
    assert not [secret for secret in secrets if len(secret) >= 16 and leaked(printed, secret)]


def refs(node: object) -> list[str]:
    """Every ``$ref`` value in a schema document."""
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_every_ref_of_the_shipped_schemas_resolves_offline():
    """Every `$ref` in the shipped schemas resolves to a shipped document: nothing needs fetching."""
    registry = _registry.registry()
    documents = _registry._documents(False)
    count = 0
    for document in documents.values():
        resolver = registry.resolver(base_uri=document["$id"])
        for ref in refs(document):
            resolver.lookup(ref)
            count += 1
    assert count > 50


def test_a_remote_ref_is_never_fetched():
    """A `$ref` to a URL fails without any request: both validators refuse to retrieve it."""
    with pytest.raises(Exception, match="remote references are never fetched"):
        _registry.Validators({"$ref": "https://example.com/schema.json"}, strict=False)
    with pytest.raises(referencing.exceptions.Unresolvable):
        _registry.registry().resolver().lookup("https://example.com/schema.json")


HOSTILE_TEXT = [
    "../../../../tmp/pwned",
    "/etc/passwd",
    "$(touch pwned)",
    "`touch pwned`",
    "{__import__('os').system('touch pwned')}",
    "__import__('os').system('touch pwned')",
    "'; DROP TABLE events; --",
    "read_parquet('/etc/passwd')",
    "%s%n%x{0}{}",
    "${jndi:ldap://example.com/a}",
    "nul\x00byte",
    "line\u2028separator",
]


def test_payload_text_is_data_never_code_or_a_path(tmp_path, monkeypatch):
    """Hostile strings in ids, names, texts, keys, event names and file names come out as the same text."""
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "in'; DROP TABLE x; --"
    archive.mkdir()
    t = 1_772_000_000_000
    records = []
    for i, text in enumerate(HOSTILE_TEXT):
        records.append(envelope("department.created", text, t + i, {"id": text, "name": text, text: text}))
        records.append(envelope(text, f"x{i}", t + i))  # an event named so is an unknown event
    base = chat()[2]
    base["entity"]["message"]["text"] = HOSTILE_TEXT[4]
    records.append(base)
    write_lines(archive / "it's $(x).jsonl", records)
    out = tmp_path / "out '\""
    report = siq_schemas.convert(archive, out)
    assert report.events_written == len(HOSTILE_TEXT) + 1
    assert report.rejected_by_reason["unknown-event"] == len(HOSTILE_TEXT)
    departments = siq_schemas.read_table(out, "department_events")
    assert sorted(departments["department_id"]) == sorted(HOSTILE_TEXT)
    assert sorted(departments["name"]) == sorted(HOSTILE_TEXT)
    assert siq_schemas.read_table(out, "messages")["text"].tolist() == [HOSTILE_TEXT[4]]
    assert sorted(siq_schemas.read_table(out, "rejects")["event"]) == sorted(HOSTILE_TEXT)
    assert not [path for path in Path("/tmp").glob("pwned*")] and not list(tmp_path.rglob("pwned*"))
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [*siq_schemas.tables.TABLES, "_manifest.json", "_drift.json"]
    )
