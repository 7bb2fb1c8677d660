"""Real traffic: what SalesIQ and the tools around it send today, beyond the vendor's payload document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import siq_schemas
from siq_schemas import _registry, metrics
from siq_schemas.cli import main
from siq_schemas.drift import Drift
from siq_schemas.parse import loads
from siq_schemas.tables import BY_EVENT, MESSAGE_EVENTS, TABLES
from tests.conftest import KEYS, ZOBOT_REQUEST, delivery, write_lines

KEY_A = KEYS / "key_a_public.pem"

# ---------------------------------------------------------------------------- Zobot requests


@pytest.mark.parametrize("handler", ["trigger", "message", "context", "failure"])
def test_a_zobot_request_is_named_as_such(handler):
    """validate() raises UnknownEvent saying "a Zobot request, not a webhook event" for every Zobot handler."""
    request = ZOBOT_REQUEST | {"handler": handler}
    with pytest.raises(siq_schemas.UnknownEvent) as raised:
        siq_schemas.validate(request)
    assert str(raised.value) == "a Zobot request, not a webhook event"
    assert raised.value.code == "unknown-event" and not siq_schemas.is_valid(request)


def test_a_payload_without_event_that_is_no_zobot_request_still_lacks_event():
    """Without event and without a Zobot handler (or with a webhook's "execution"), $.event is missing."""
    for payload in ({"visitor": {}}, ZOBOT_REQUEST | {"handler": "execution"}, ZOBOT_REQUEST | {"handler": ["x"]}):
        with pytest.raises(siq_schemas.PayloadInvalid) as raised:
            siq_schemas.validate(payload)
        assert raised.value.json_path == "$.event"


def test_validate_command_names_a_zobot_request(tmp_path, capsys):
    """`siq validate` prints the Zobot request as "a Zobot request, not a webhook event" and exits 1."""
    archive = write_lines(tmp_path / "mixed.jsonl", [delivery(ZOBOT_REQUEST)])
    assert main(["validate", str(archive)]) == 1
    out = capsys.readouterr().out
    assert out == f"{archive}:1 - $.event a Zobot request, not a webhook event\n"
    assert main(["validate", "--json", str(archive)]) == 1
    problem = json.loads(capsys.readouterr().out.splitlines()[0])
    assert problem["reason"] == "unknown-event" and problem["message"] == "a Zobot request, not a webhook event"


def test_convert_rejects_a_zobot_request_as_unknown_event(tmp_path):
    """A signed Zobot request in an archive is one `unknown-event` reject that says what it is, kept raw."""
    record = delivery(ZOBOT_REQUEST)
    archive = write_lines(tmp_path / "deliveries.jsonl", [record])
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A)
    assert report.rejected == 1 and report.events_written == 0
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert rejects.reason.tolist() == ["unknown-event"]
    assert rejects.detail.tolist() == ["a Zobot request, not a webhook event"]
    assert json.loads(rejects.raw[0]) == record


def test_drift_counts_a_zobot_request_as_an_unknown_event():
    """Drift reports a Zobot request as an unknown event seen as "a Zobot request", not a missing $.event."""
    drift = Drift()
    assert not drift.add(ZOBOT_REQUEST, "a.jsonl", 1)
    [finding] = drift.findings()
    assert (finding["event"], finding["kind"], finding["path"]) == (None, "unknown-event", "$.event")
    assert finding["seen"] == "a Zobot request" and "seen a Zobot request" in str(drift)


# ---------------------------------------------------------------------------- the leniency rule

EXAMPLES = Path(__file__).parent / "examples"


def _nested_id_paths(node: dict, defs: dict, path: tuple[str, ...] = ("entity",)) -> list[tuple[str, ...]]:
    """Paths of the ids of the objects nested in an entity's documented schema (``entity.owner.id`` ...)."""
    found = []
    for name, child in node.get("properties", {}).items():
        target = defs[child["$ref"].rpartition("/")[2]] if "$ref" in child else child
        if "properties" in target:
            if "id" in target["properties"]:
                found.append((*path, name, "id"))
            found += _nested_id_paths(target, defs, (*path, name))
    return found


def _entity_definition(event: str) -> str | None:
    entity = _registry.document(event, "documented").get("properties", {}).get("entity", {})
    return entity["$ref"].rpartition("/")[2] if "$ref" in entity else None


def _leniency_cases() -> list[Any]:
    defs = _registry.document("defs", "documented")["$defs"]
    cases = []
    for event in siq_schemas.EVENTS:
        definition = _entity_definition(event)
        paths = _nested_id_paths(defs[definition], defs) if definition else []
        if paths:
            cases.append(pytest.param(event, paths, id=event))
    return cases


def _examples_of(event: str) -> list[dict]:
    """The valid examples of ``event``, then those of the events sharing its entity (renamed ``event``)."""
    sharing = [e for e in siq_schemas.EVENTS if e != event and _entity_definition(e) == _entity_definition(event)]
    examples = []
    for name in (event, *sharing):
        for path in sorted((EXAMPLES / name / "valid").glob("*.json")):
            example = loads(path.read_bytes())
            if isinstance(example.get("entity"), dict):
                examples.append(example | {"event": event})
    return examples


def _at(payload: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        payload = payload.get(part) if isinstance(payload, dict) else None
    return payload


def _without(payload: dict, path: tuple[str, ...], value: Any = KeyError) -> dict:
    """A copy of ``payload`` with ``path`` removed (or set to ``value``)."""
    result = copy.deepcopy(payload)
    node = result
    for part in path[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return result


@pytest.mark.parametrize(("event", "paths"), _leniency_cases())
def test_the_leniency_rule_on_every_event_with_nested_ids(event, paths, tmp_path):
    """A missing nested id is accepted (column null, drift reports it); no event/time/entity id, a non-object
    entity or an id that cannot be read is `schema-invalid`: the rule of docs/schemas.md, per event."""
    examples = _examples_of(event)
    accepted, rejected = [], []
    for path in paths:
        base = next((e for e in examples if _at(e, path) is not None), None)
        assert base is not None, f"no example of {event} has {'.'.join(path)}"
        accepted.append((path, _without(base, path)))
        rejected.append(("$." + ".".join(path), _without(base, path, True)))
    base = accepted[0][1]
    rejected += [("$.event_time", _without(base, ("event_time",))), ("$.entity_id", _without(base, ("entity_id",)))]
    rejected += [("$.entity", _without(base, ("entity",), "a string")), ("$.event", _without(base, ("event",)))]
    payloads = [payload for _, payload in accepted] + [payload for _, payload in rejected]
    for number, payload in enumerate(payloads):  # one distinct event each
        if "event_time" in payload:
            payload["event_time"] = str(1769112912000 + number)
    for path, payload in accepted:
        assert siq_schemas.is_valid(payload), path
        found = Drift()
        assert found.add(payload)
        documented_required = _registry.validators(event, "documented").fast.is_valid(payload) is False
        reported = {(f["kind"], f["path"]) for f in found.findings()}
        assert not documented_required or ("missing-required", "$." + ".".join(path)) in reported, reported
    for json_path, payload in rejected:
        with pytest.raises(siq_schemas.PayloadInvalid) as raised:
            siq_schemas.validate(payload)
        assert raised.value.json_path == json_path
    archive = tmp_path / "payloads.json"
    archive.write_text(json.dumps(payloads))
    report = siq_schemas.convert(archive, tmp_path / "out")
    assert (report.events_written, report.rejected) == (len(accepted), len(rejected))
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert sorted(rejects.json_path) == sorted(path for path, _ in rejected)
    assert set(rejects.reason) == {"schema-invalid"}
    for table in BY_EVENT.get(event, []):
        rows = siq_schemas.read_table(tmp_path / "out", table.name)
        for number, (path, _) in enumerate(accepted):
            column = next((c.name for c in table.columns if c.path == path), None)
            if column is not None:
                row = rows[rows.event_time == pd.Timestamp(1769112912000 + number, unit="ms", tz="UTC")]
                assert len(row) == 1 and row[column].isna().all(), (table.name, column)


def test_a_whole_number_reads_from_digits_and_a_word_does_not(rated, tmp_path):
    """A rating of "5" is accepted and written as 5 (drift reports the string); "five" is `schema-invalid`."""
    five = copy.deepcopy(rated) | {"entity": rated["entity"] | {"rating": "5"}}
    word = copy.deepcopy(rated) | {"entity": rated["entity"] | {"rating": "five"}, "event_time": "1567065865618"}
    assert siq_schemas.is_valid(five) and not siq_schemas.is_valid(word)
    found = Drift()
    found.add(five)
    assert [(f["kind"], f["path"], f["seen"]) for f in found.findings()] == [
        ("type-mismatch", "$.entity.rating", "string")
    ]
    (tmp_path / "rated.json").write_text(json.dumps([five, word]))
    report = siq_schemas.convert(tmp_path / "rated.json", tmp_path / "out")
    assert (report.events_written, report.rejected) == (1, 1)
    assert siq_schemas.read_table(tmp_path / "out", "ratings").rating.tolist() == [5]


def test_a_value_outside_a_documented_set_is_kept_and_reported(tmp_path):
    """A visitor record of type "customer" (neither lead nor contact) is accepted, kept, and reported by drift."""
    payload = loads((EXAMPLES / "visitor.updated" / "valid" / "doc-case-3-contact-updated.json").read_bytes())
    payload["entity"]["type"] = "customer"
    assert siq_schemas.is_valid(payload)
    found = Drift()
    found.add(payload)
    assert [(f["kind"], f["path"]) for f in found.findings()] == [("invalid-value", "$.entity.type")]
    (tmp_path / "visitor.json").write_text(json.dumps(payload))
    siq_schemas.convert(tmp_path / "visitor.json", tmp_path / "out")
    assert siq_schemas.read_table(tmp_path / "out", "visitors").type.tolist() == ["customer"]


# ---------------------------------------------------------------------------- Workflows events

WORKFLOWS = [
    "contact.tag.action",
    "lead.tag.action",
    "brands.enabled",
    "brands.disabled",
    "tag.created",
    "tag.updated",
    "tag.deleted",
    "conversation.ended",
]


def test_workflows_events_are_accepted_kept_and_counted_as_unpublished(tmp_path, capsys):
    """The Workflows events validate, convert to `events` rows with their entity, and drift counts them unpublished."""
    payloads = [loads((EXAMPLES / e / "valid" / "synthetic-plausible-entity.json").read_bytes()) for e in WORKFLOWS]
    archive = write_lines(tmp_path / "workflows.jsonl", [delivery(payload) for payload in payloads])
    assert all(_registry.unpublished(event) for event in WORKFLOWS)
    assert main(["validate", str(archive)]) == 0
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A)
    assert (report.events_written, report.rejected) == (len(WORKFLOWS), 0)
    events = siq_schemas.read_table(tmp_path / "out", "events").set_index("event")
    for payload in payloads:
        assert json.loads(events.entity[payload["event"]]) == payload["entity"]
        assert events.entity_id[payload["event"]] == payload["entity_id"]
    findings = json.loads((tmp_path / "out" / "_drift.json").read_text())["findings"]
    assert sorted((f["event"], f["kind"], f["count"]) for f in findings) == [
        (event, "unpublished-event", 1) for event in sorted(WORKFLOWS)
    ]


# ---------------------------------------------------------------------------- real-shape fields

#: The columns real-shape fields and failed executions fill, with their exact Arrow types, per table.
REAL_SHAPE_COLUMNS = {
    "conversation_events": {
        "visitor_customer_info": pa.string(),
        "visitor_channel": pa.string(),
        "visitor_first_name": pa.string(),
        "visitor_last_name": pa.string(),
        "visitor_salutation": pa.string(),
        "entity_conversation_id": pa.string(),
        "thread_number": pa.int64(),
        "chat_initiated_url": pa.string(),
        "company_name": pa.string(),
        "company_id": pa.string(),
        "company_domain": pa.string(),
        "company_status": pa.string(),
        "ended_by": pa.string(),
        "_meta": pa.string(),
        "owner_type": pa.string(),
        "owner_email": pa.string(),
    },
    "messages": {"sender_type": pa.string()},
    "conversations": {"ended_by": pa.string(), "chat_initiated_url": pa.string(), "channel": pa.string()},
    "visitors": {
        "channel": pa.string(),
        "first_name": pa.string(),
        "last_name": pa.string(),
        "salutation": pa.string(),
        "customer_info": pa.string(),
    },
    "events": {
        "version": pa.string(),
        "recovered": pa.bool_(),
        "execution_id": pa.string(),
        "remote_server_status": pa.int64(),
        "number_of_retries": pa.int64(),
    },
}


def test_real_shape_columns_exist_with_exact_types_and_are_documented():
    """Each column real-shape fields and failed executions fill has its exact Arrow type and a row in docs/tables.md."""
    tables_md = (Path(__file__).parent.parent / "docs" / "tables.md").read_text(encoding="utf-8")
    for table, columns in REAL_SHAPE_COLUMNS.items():
        schema = TABLES[table].schema
        section = tables_md.partition(f"### `{table}`")[2].partition("### ")[0]
        for name, kind in columns.items():
            assert schema.field(name).type == kind, (table, name)
            assert f"| `{name}` | `{kind}` |" in section, (table, name)


def test_real_shape_fields_convert_to_their_columns_without_drift(tmp_path):
    """A Workflows-shape conversation converts without rejects or drift, its fields in their columns as received."""
    path = EXAMPLES / "conversation.completed" / "valid" / "notes-workflows-conversation-fields.json"
    payload = loads(path.read_bytes())
    documented = loads((EXAMPLES / "conversation.created" / "valid" / "doc-payload.json").read_bytes())
    found = Drift()
    assert found.add(payload) and len(found) == 0
    (tmp_path / "in.json").write_text(json.dumps([payload, documented]))
    report = siq_schemas.convert(tmp_path / "in.json", tmp_path / "out")
    assert (report.events_written, report.rejected, report.drift) == (2, 0, 0)
    entity = payload["entity"]
    rows = siq_schemas.read_table(tmp_path / "out", "conversation_events").set_index("conversation_id")
    row = rows.loc[payload["entity_id"]]
    assert json.loads(row.visitor_customer_info) == {"Branch": "California", "Band": "Premium"}
    assert (row.visitor_channel, row.visitor_first_name, row.visitor_last_name) == ("whatsapp", "Tricia", "Smith")
    assert (row.visitor_salutation, row.entity_conversation_id, row.thread_number) == ("Ms.", "40526000001808090", 2)
    assert (row.chat_initiated_url, row.ended_by) == (entity["chat_initiated_url"], "visitor")
    assert [row.company_name, row.company_id, row.company_domain, row.company_status] == list(
        entity["company"].values()
    )
    assert json.loads(row._meta) == entity["_meta"]
    assert (row.owner_type, row.owner_email) == ("operator", "patricia@zylker.com")
    conversation = siq_schemas.read_table(tmp_path / "out", "conversations").set_index("conversation_id")
    done = conversation.loc[payload["entity_id"]]
    assert (done.ended_by, done.chat_initiated_url, done.channel) == (
        "visitor",
        entity["chat_initiated_url"],
        "whatsapp",
    )
    visitor = siq_schemas.read_table(tmp_path / "out", "visitors").set_index("visitor_id").loc[entity["visitor"]["id"]]
    assert (visitor.channel, visitor.first_name, visitor.last_name, visitor.salutation) == (
        "whatsapp",
        "Tricia",
        "Smith",
        "Ms.",
    )
    assert json.loads(visitor.customer_info) == entity["visitor"]["customer_info"]


def test_events_version_keeps_an_integer_apart_from_a_string(department_deleted, tmp_path):
    """`events.version` is the version as JSON: the integer 1 reads back as 1, the string "1" as "1"."""
    as_integer = department_deleted | {"version": 1, "event_time": "1567065647512"}
    (tmp_path / "in.json").write_text(json.dumps([department_deleted, as_integer]))
    siq_schemas.convert(tmp_path / "in.json", tmp_path / "out")
    events = siq_schemas.read_table(tmp_path / "out", "events").sort_values("event_time")
    assert events.version.tolist() == ['"1"', "1"]
    assert [json.loads(version) for version in events.version] == ["1", 1]


# ---------------------------------------------------------------------------- failed executions

EXECUTIONS = Path(__file__).parent / "executions"


def _events(out: Path) -> pd.DataFrame:
    columns = ["event_key", "event", "entity_id", "event_time", "recovered", "execution_id", "number_of_retries"]
    events = siq_schemas.read_table(out, "events").sort_values(["event_time", "event_key"])
    return events[columns].reset_index(drop=True)


@pytest.mark.parametrize("wrapped", [True, False], ids=["api-answer", "its-list"])
def test_failed_executions_convert_to_the_events_they_hold(tmp_path, wrapped):
    """A file of failed executions ({"data": [...]} or its list) becomes the events it holds, marked recovered."""
    answer = json.loads((EXECUTIONS / "executions.json").read_text())
    source = tmp_path / "executions.json"
    source.write_text(json.dumps(answer if wrapped else answer["data"]))
    report = siq_schemas.convert(source, tmp_path / "out")
    assert (report.records_read, report.events_written, report.duplicates, report.rejected) == (6, 5, 1, 0)
    events = siq_schemas.read_table(tmp_path / "out", "events").set_index("execution_id")
    assert events.recovered.all() and events.org_id.isna().all() and set(events.signature) == {"unverified"}
    for record in answer["data"][:5]:
        row = events.loc[record["id"]]
        stored = {k: v for k, v in record["payload"].items() if k not in ("version", "event_time")}
        assert (row.event, row.entity_type, row.entity_id, row.app_id) == (
            record["event"],
            record["entity"],
            record["entity_id"],
            record["app_id"],
        )
        assert json.loads(row.entity) == stored and json.loads(row.version) == record["payload"]["version"]
        assert row.event_time == pd.Timestamp(int(record["payload"]["event_time"]), unit="ms", tz="UTC")
        assert (row.remote_server_status, row.webhook_id) == (record["remote_server_status"], record["webhook_id"])
    assert events.loc[answer["data"][1]["id"]].deliveries == 2  # listed twice: one event
    assert events.loc[answer["data"][1]["id"]].number_of_retries == 3  # the first listing read


def test_a_recovered_event_is_a_duplicate_of_its_normal_delivery(tmp_path):
    """By the second rule, a recovered event that was also delivered is a duplicate; in any run order, the same."""
    report = siq_schemas.convert(EXECUTIONS, tmp_path / "fresh")
    assert (report.records_read, report.events_written, report.duplicates) == (8, 5, 3)
    fresh = _events(tmp_path / "fresh")
    assert sorted(zip(fresh.event, fresh.recovered, strict=True)) == [
        ("conversation.attender.updated", False),  # delivered, and recovered: one event
        ("conversation.ended", True),
        ("conversation.operator.replied", False),  # delivered, and recovered: one event
        ("conversation.operator.replied", True),  # another message of the same millisecond
        ("conversation.visitor.replied", True),
    ]
    recovered = metrics.recovered_by_event(siq_schemas.read_table(tmp_path / "fresh", "events"))
    assert recovered.recovered.to_dict() == {e: 1 for e in ("conversation.ended", *MESSAGE_EVENTS)}
    assert recovered.statuses.to_dict()["conversation.visitor.replied"] == "503"
    messages = siq_schemas.read_table(tmp_path / "fresh", "messages")
    assert sorted(messages.msgid) == ["1769112919733", "1769112919734", "1769112931406"]
    for first, second in (("executions.json", "delivered.json"), ("delivered.json", "executions.json")):
        out = tmp_path / first
        siq_schemas.convert(EXECUTIONS / first, out)
        later = siq_schemas.convert([EXECUTIONS / first, EXECUTIONS / second], out)
        assert later.records_read == (2 if second == "delivered.json" else 6)
        pd.testing.assert_frame_equal(_events(out), fresh)
        assert sorted(siq_schemas.read_table(out, "messages").msgid) == sorted(messages.msgid)


def test_failed_executions_are_signed_like_bare_payloads(tmp_path):
    """With keys a failed execution is `signature-missing` unless --allow-unsigned, then `unsigned`."""
    rejected = siq_schemas.convert(EXECUTIONS / "executions.json", tmp_path / "keys", keys=KEY_A)
    assert rejected.rejected == 6 and rejected.rejected_by_reason["signature-missing"] == 6
    allowed = siq_schemas.convert(EXECUTIONS / "executions.json", tmp_path / "allowed", keys=KEY_A, allow_unsigned=True)
    assert allowed.events_written == 5
    assert set(siq_schemas.read_table(tmp_path / "allowed", "events").signature) == {"unsigned"}


def test_validate_and_drift_read_failed_executions(capsys):
    """`siq validate` takes failed executions as events; `siq drift` counts them and reports their missing org_id."""
    assert main(["validate", str(EXECUTIONS / "executions.json")]) == 0
    assert "6 records: 6 valid, 0 invalid" in capsys.readouterr().err
    assert main(["drift", "--json", str(EXECUTIONS / "executions.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 6 and report["events"]["conversation.ended"] == 1
    kinds = {(f["kind"], f["path"]) for f in report["findings"]}
    assert kinds == {("missing-required", "$.org_id"), ("unpublished-event", "$.entity")}


def test_a_failed_execution_without_a_payload_is_unreadable(tmp_path):
    """A record of an executions answer whose payload is not an object is one `unreadable` reject, kept raw."""
    answer = json.loads((EXECUTIONS / "executions.json").read_text())
    broken = answer["data"][1] | {"payload": "gone"}
    (tmp_path / "executions.json").write_text(json.dumps({"data": [answer["data"][0], broken]}))
    report = siq_schemas.convert(tmp_path / "executions.json", tmp_path / "out")
    assert (report.events_written, report.rejected) == (1, 1)
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert rejects.reason.tolist() == ["unreadable"] and "no 'payload' object" in rejects.detail[0]
    assert (rejects.line[0], json.loads(rejects.raw[0])) == (2, broken)
