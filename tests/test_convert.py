"""The convert job on real archives: tables, types, dedupe, signatures, accounting, incremental runs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import siq_schemas
from siq_schemas.converter import Tuning
from siq_schemas.converter.plan import ranges_for
from siq_schemas.tables import TABLES
from tests.archives import chat, envelope, tables_of
from tests.conftest import DEPARTMENT_DELETED, KEYS, RATED, delivery, write_lines
from tests.processes import big_archive

KEY_A = KEYS / "key_a_public.pem"

FIXED = {
    "events": "event_key event entity_type entity_id org_id app_id event_time attempts deliveries signature "
    "received_at source",
    "conversation_events": "conversation_id event event_time status department_id owner_id visitor_id",
    "messages": "conversation_id msgid sender_id sender_name sender_role text event_time",
    "ratings": "conversation_id rating feedback owner_id visitor_id event_time",
    "conversations": "conversation_id outcome opened_time attended_time end_time missed_time department_id owner_id "
    "visitor_id wait_ms first_response_ms duration_ms visitor_messages operator_messages bot_messages rating feedback",
    "operator_events": "operator_id event event_time",
    "department_events": "department_id event event_time",
    "visitor_events": "visitor_id event event_time",
    "operators": "operator_id email role created_time deleted_time is_active departments",
    "departments": "department_id name created_time deleted_time operators",
    "visitors": "visitor_id type email phone lead_id",
    "rejects": "source line reason detail raw",
}


def convert(tmp_path: Path, records: list, out: str = "out", **options) -> siq_schemas.Report:
    archive = tmp_path / f"archive-{out}"
    archive.mkdir()
    write_lines(archive / "part0.jsonl", records)
    return siq_schemas.convert(archive, tmp_path / out, **options)


def table(tmp_path: Path, name: str, out: str = "out") -> pd.DataFrame:
    return siq_schemas.read_table(tmp_path / out, name)


def test_every_fixed_table_and_column_exists_with_its_type(tmp_path):
    """Every table of the contract is a Parquet dataset with its fixed columns; ids strings, times ms UTC."""
    convert(tmp_path, [delivery(p) for p in chat()], keys=KEY_A)
    for name, columns in FIXED.items():
        schema = pq.read_schema(next((tmp_path / "out" / name).glob("*.parquet")))
        assert set(columns.split()) <= set(schema.names), name
        assert schema == TABLES[name].schema
    events = pq.read_table(tmp_path / "out" / "events").schema
    assert events.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert events.field("app_id").type == pa.string()
    assert pq.read_table(tmp_path / "out" / "operators").schema.field("departments").type == pa.list_(pa.string())
    assert (tmp_path / "out" / "_manifest.json").exists()


def test_big_app_id_comes_out_exactly(tmp_path):
    """`"app_id": 40526000000002040` (a JSON number above 2^53) is the string "40526000000002040"."""
    payload = copy.deepcopy(RATED)
    assert payload["app_id"] == 40526000000002040
    convert(tmp_path, [delivery(payload)], keys=KEY_A)
    assert table(tmp_path, "events")["app_id"].tolist() == ["40526000000002040"]


def test_retries_are_duplicates_and_recorded_on_the_event(tmp_path):
    """Retries re-serialised with other key order and spacing, and copies to a second webhook, are one event."""
    first = envelope("department.deleted", "d9", 1_772_000_000_000)
    retry = dict(reversed(list({**first, "attempt": 3}.items())))
    copy_to_other_webhook = {**first, "webhook": {"id": "w2"}}
    records = [
        delivery(first),
        delivery(retry, indent=2, received_at="2026-03-01T10:03:00Z"),
        delivery(copy_to_other_webhook, received_at="2026-03-01T10:00:01Z"),
    ]
    report = convert(tmp_path, records, keys=KEY_A)
    assert (report.records_read, report.events_written, report.duplicates, report.rejected) == (3, 1, 2, 0)
    (row,) = table(tmp_path, "events").to_dict("records")
    assert (row["attempts"], row["deliveries"], row["webhook_id"], row["signature"]) == (3, 3, "w1", "valid")
    assert row["source"].endswith("part0.jsonl:1")


def test_two_messages_at_the_same_time_are_two_events(tmp_path):
    """Different messages with the same event_time stay two events (and two message rows)."""
    report = convert(tmp_path, [delivery(p) for p in chat()], keys=KEY_A)
    assert report.duplicates == 0
    messages = table(tmp_path, "messages")
    assert sorted(messages["text"].dropna()) == ["hello", "hi", "how can I help"]


def test_signature_policy_and_reject_reasons(tmp_path):
    """Missing and invalid signatures, unknown events, schema errors and bad JSON are rejects with raw records."""
    good = envelope("department.deleted", "d1", 1_772_000_000_000)
    unknown = envelope("conversation.exploded", "c1", 1_772_000_000_000)
    bad_rating = {**RATED, "entity": {**RATED["entity"], "rating": "five"}}
    tampered = delivery(good)
    tampered["body"] = tampered["body"].replace("d1", "d2")
    records = [
        delivery(good),
        delivery(good, key=None),
        tampered,
        delivery(unknown),
        delivery(bad_rating),
        "{not json",
        good,
    ]
    report = convert(tmp_path, records, keys=KEY_A)
    assert report.rejected_by_reason == {
        "unreadable": 1,
        "signature-missing": 2,
        "signature-invalid": 1,
        "unknown-event": 1,
        "schema-invalid": 1,
    }
    assert (report.records_read, report.events_written, report.duplicates) == (7, 1, 0)
    rejects = table(tmp_path, "rejects")
    assert rejects["line"].tolist() == [2, 3, 4, 5, 6, 7]
    schema_invalid = rejects[rejects.reason == "schema-invalid"].iloc[0]
    assert schema_invalid["json_path"] == "$.entity.rating" and schema_invalid["event"] == "conversation.rated"
    assert rejects[rejects.reason == "unreadable"].iloc[0]["raw"] == b"{not json"
    assert json.loads(rejects[rejects.reason == "signature-invalid"].iloc[0]["raw"])["body"] == tampered["body"]


def test_bare_payloads_need_allow_unsigned_when_keys_are_given(tmp_path):
    """With keys, bare payloads are rejected unless allowed; then `unsigned`, or `valid` if also delivered signed."""
    one, two = envelope("department.deleted", "d1", 1), envelope("department.deleted", "d2", 2)
    assert convert(tmp_path, [one], out="a", keys=KEY_A).rejected_by_reason["signature-missing"] == 1
    report = convert(tmp_path, [one, two, delivery(one)], out="b", keys=KEY_A, allow_unsigned=True)
    assert (report.events_written, report.duplicates) == (2, 1)
    statuses = table(tmp_path, "events", out="b").set_index("entity_id")["signature"].to_dict()
    assert statuses == {"d1": "valid", "d2": "unsigned"}


def test_without_keys_everything_is_unverified(tmp_path):
    """With no keys nothing is verified: deliveries and bare payloads are accepted as `unverified`."""
    report = convert(tmp_path, [delivery(chat()[0], key=None), chat()[1]])
    assert report.rejected == 0
    assert set(table(tmp_path, "events")["signature"]) == {"unverified"}


def test_conversations_are_folded_from_their_history(tmp_path):
    """Outcome, times, wait/first response (operator, not bot)/duration, message counts and rating per conversation."""
    convert(tmp_path, [delivery(p) for p in chat()], keys=KEY_A)
    rows = table(tmp_path, "conversations").set_index("conversation_id")
    c1, c2, c3 = rows.loc["c1"], rows.loc["c2"], rows.loc["c3"]
    assert (c1.outcome, c2.outcome, c3.outcome) == ("completed", "missed", "open")
    assert (c1.wait_ms, c1.first_response_ms, c1.duration_ms) == (10_000, 5_000, 90_000)
    assert (c1.visitor_messages, c1.operator_messages, c1.bot_messages) == (1, 2, 1)
    assert (c1.rating, c1.feedback, c1.owner_id, c1.department_id) == (4, "ok", "o1", "d1")
    assert pd.isna(c2.attended_time) and c2.missed_time == pd.Timestamp(1_772_000_060_000, unit="ms", tz="UTC")
    assert c3.opened_time == pd.Timestamp(1_772_000_002_000, unit="ms", tz="UTC")
    senders = table(tmp_path, "messages").set_index("text", drop=False)
    assert senders.loc["hi", "sender_id"] == "$2463902591169630574"


def test_membership_is_replayed_from_operator_and_department_events(tmp_path):
    """Operators' full lists, departments' full lists and deletions give the final memberships."""
    t = 1_772_000_000_000
    history = [
        envelope("department.created", "d1", t, {"id": "d1", "name": "Support", "operators": []}),
        envelope("department.created", "d2", t + 1, {"id": "d2", "name": "Sales", "operators": []}),
        envelope(
            "operator.created", "o1", t + 2, {"id": "o1", "email_id": "a@x", "role": "Associate", "departments": ["d1"]}
        ),
        envelope("operator.created", "o2", t + 3, {"id": "o2", "email_id": "b@x", "departments": ["d1", "d2"]}),
        envelope("operator.departments.disassociated", "o2", t + 4, {"id": "o2", "departments": ["d2"]}),
        envelope("department.updated", "d2", t + 5, {"id": "d2", "name": "Sales EU", "operators": ["o1", "o2"]}),
        envelope("operator.updated", "o1", t + 6, {"id": "o1", "role": "Supervisor", "departments": ["d1", "d2"]}),
        envelope("operator.deleted", "o2", t + 7),
        envelope("department.deleted", "d1", t + 8),
    ]
    convert(tmp_path, [delivery(p) for p in history], keys=KEY_A)
    operators = table(tmp_path, "operators").set_index("operator_id")
    assert list(operators.loc["o1", "departments"]) == ["d2"] and operators.loc["o1", "role"] == "Supervisor"
    assert list(operators.loc["o2", "departments"]) == [] and not operators.loc["o2", "is_active"]
    assert operators.loc["o1", "is_active"] and operators.loc["o2", "email"] == "b@x"
    departments = table(tmp_path, "departments").set_index("department_id")
    assert list(departments.loc["d2", "operators"]) == ["o1"] and departments.loc["d2", "name"] == "Sales EU"
    assert list(departments.loc["d1", "operators"]) == [] and not pd.isna(departments.loc["d1", "deleted_time"])


def test_converting_twice_or_in_halves_equals_converting_once(tmp_path):
    """Re-running adds nothing; two halves into one output equal one run over everything."""
    records = [delivery(p) for p in chat()]
    records += [delivery(chat()[0], received_at="2026-03-01T09:00:00Z"), "{bad"]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    write_lines(first / "1.jsonl", records[:6])
    write_lines(second / "2.jsonl", records[6:])
    once = siq_schemas.convert([first, second], tmp_path / "once", keys=KEY_A)
    siq_schemas.convert(first, tmp_path / "halves", keys=KEY_A)
    siq_schemas.convert(second, tmp_path / "halves", keys=KEY_A)
    again = siq_schemas.convert([first, second], tmp_path / "once", keys=KEY_A)
    assert (again.records_read, again.events_written, again.files_unchanged) == (0, 0, 2)
    assert once.duplicates == 1 and once.rejected == 1
    assert tables_of(tmp_path / "once") == tables_of(tmp_path / "halves")


def test_a_grown_file_adds_only_its_new_lines(tmp_path):
    """Lines appended to an archive file are read on the next run; the old ones are not read again."""
    archive = tmp_path / "a.jsonl"
    records = [delivery(p) for p in chat()]
    write_lines(archive, records[:5])
    siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A)
    with archive.open("a") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records[5:])
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A)
    assert (report.records_read, report.events_written) == (len(records) - 5, len(records) - 5)
    fresh = siq_schemas.convert(archive, tmp_path / "fresh", keys=KEY_A)
    assert fresh.events_written == len(records)
    assert tables_of(tmp_path / "out") == tables_of(tmp_path / "fresh")


def test_output_does_not_depend_on_the_number_of_workers(tmp_path):
    """Several files staged by two worker processes give the same tables as one process."""
    tuning = Tuning(parallel_bytes=0)  # worker processes even for a small archive
    payloads = chat()
    for index in range(4):
        write_lines(tmp_path / f"{index}.jsonl", [delivery(p) for p in payloads[index::4]] + [delivery(payloads[0])])
    files = sorted(tmp_path.glob("*.jsonl"))
    one = siq_schemas.convert(files, tmp_path / "one", keys=KEY_A, workers=1, tuning=tuning)
    two = siq_schemas.convert(files, tmp_path / "two", keys=KEY_A, workers=2, tuning=tuning)
    assert one.to_dict() | {"out": "", "seconds": 0} == two.to_dict() | {"out": "", "seconds": 0}
    assert tables_of(tmp_path / "one") == tables_of(tmp_path / "two")


def test_output_folder_that_is_not_a_siq_output_is_refused(tmp_path):
    """A non-empty folder without a manifest is never replaced: a clear error, nothing touched."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(siq_schemas.SiqSchemasError, match="not a siq output"):
        convert(tmp_path, [DEPARTMENT_DELETED])
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "tuning",
    [Tuning(bucket_bytes=1, range_bytes=1, sort_bytes=0), Tuning(range_bytes=1, sort_bytes=0)],
    ids=["buckets and ranges", "ranges of one bucket"],
)
def test_merging_in_buckets_gives_the_same_tables(tmp_path, tuning):
    """Large archives are merged one bucket of event keys and sorted one range of times at a time: same tables."""
    records = [delivery(p) for p in chat()] + [delivery(chat()[4], received_at="2026-03-01T11:00:00Z")]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    write_lines(first / "1.jsonl", records[:7])
    write_lines(second / "2.jsonl", records[7:])
    siq_schemas.convert([first, second], tmp_path / "single", keys=KEY_A)  # joined and sorted at once
    bucketed = siq_schemas.convert([first, second], tmp_path / "bucketed", keys=KEY_A, tuning=tuning)
    siq_schemas.convert(first, tmp_path / "halves", keys=KEY_A)
    siq_schemas.convert(second, tmp_path / "halves", keys=KEY_A)
    assert bucketed.duplicates == 1 and bucketed.events_written == 11
    assert tables_of(tmp_path / "bucketed") == tables_of(tmp_path / "single") == tables_of(tmp_path / "halves")


def test_an_archive_is_sorted_at_once_unless_large_or_with_records_of_megabytes():
    """One range up to `sort_bytes` of records up to 1 MiB; else ranges of `range_bytes` each."""
    tuning = Tuning()
    assert ranges_for(tuning.sort_bytes, tuning, widest=tuning.wide_record_bytes) == 1
    assert ranges_for(tuning.sort_bytes, tuning, widest=tuning.wide_record_bytes + 1) == 4
    assert ranges_for(tuning.sort_bytes + 1, tuning) == 5
    assert ranges_for(1 << 40, tuning) == tuning.ranges


def test_a_file_named_another_way_is_still_unchanged(tmp_path, monkeypatch):
    """An archive converted by absolute path, then by a relative path with `..`, is skipped as unchanged."""
    write_lines(tmp_path / "a.jsonl", chat())
    siq_schemas.convert(tmp_path / "a.jsonl", tmp_path / "out")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    again = siq_schemas.convert("../a.jsonl", "../out")
    assert (again.files_unchanged, again.records_read) == (1, 0)


def test_top_level_fields_without_a_column_are_kept_in_extra(tmp_path):
    """A new top-level field lands in events.extra as JSON; transport fields never do; null when none."""
    known = envelope("department.deleted", "1", 1_700_000_000_000)
    new = envelope("department.deleted", "2", 1_700_000_000_000, region="eu", trace={"id": 40526000000002040})
    convert(tmp_path, [known, new])
    extra = table(tmp_path, "events").set_index("entity_id")["extra"]
    assert json.loads(extra["2"]) == {"region": "eu", "trace": {"id": 40526000000002040}}
    assert '"id":40526000000002040' in extra["2"]
    assert pd.isna(extra["1"])


_PANDAS_WATCH = """
import os, sys
def note(text):
    with open(sys.argv[1], "a") as notes:
        notes.write(text + "\\n")
class Watch:  # notes each import of pandas, by any process (forked workers inherit it)
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            note(f"pandas imported by {'the run' if os.getpid() == run else 'a worker'}")
run = os.getpid()
sys.meta_path.insert(0, Watch())
from siq_schemas.cli import main
code = main(sys.argv[2:])
note("run done")
import pandas, pyarrow as pa  # pandas stays importable, and pyarrow converts it
assert pa.Table.from_pandas(pandas.DataFrame({"a": [1]})).num_rows == 1
sys.exit(code)
"""


def test_siq_convert_never_imports_pandas_and_leaves_it_usable(tmp_path):
    """pyarrow imports pandas (0.4 s) when it first converts Python values; no process of ``siq convert`` needs it."""
    notes = tmp_path / "notes"
    count = big_archive(tmp_path / "archive")
    command = ["convert", str(tmp_path / "archive"), "--out", str(tmp_path / "out"), "--workers", "2", "--quiet"]
    done = subprocess.run([sys.executable, "-c", _PANDAS_WATCH, str(notes), *command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "out" / "events").num_rows == count
    assert notes.read_text().splitlines() == ["run done", "pandas imported by the run"]
