"""Hostile input: every record ends as an event, a duplicate or a reject with its reason; nothing crashes.

Each case runs the whole convert job and checks the accounting identity
``records_read = events_written + duplicates + rejected`` and that every bad
record is a reject keeping its raw record.
"""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
import zstandard

import siq_schemas
from siq_schemas.read import RAW_PREFIX, Limits, read_records
from tests.archives import bomb, envelope
from tests.conftest import DEPARTMENT_DELETED, KEYS, delivery, sign, write_lines

KEY_A = KEYS / "key_a_public.pem"
SAMPLE = Path(__file__).parent.parent / "data" / "sample"
GOOD = json.dumps(DEPARTMENT_DELETED)


def convert(archive: Path, out: Path, **options) -> tuple[siq_schemas.Report, list[dict]]:
    """Convert, check the identity and that the rejects table holds one row with a raw record per reject."""
    report = siq_schemas.convert(archive, out, **options)
    assert report.balanced, report
    rejects = siq_schemas.read_table(out, "rejects").to_dict("records")
    assert len(rejects) == report.rejected
    assert all(row["raw"] is not None for row in rejects)
    return report, rejects


def nested(depth: int) -> object:
    """A value of ``depth`` nested arrays."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# ---------------------------------------------------------------------------- record size


def test_an_oversized_line_is_streamed_past_and_rejected_with_a_prefix(tmp_path):
    """A line over max_record_bytes is an `unreadable` reject keeping its first bytes; its neighbours are read."""
    path = tmp_path / "a.jsonl"
    big = b'{"event": "' + b"x" * (3 << 20) + b'"}'
    path.write_bytes(f"{GOOD}\n".encode() + big + f"\n{GOOD}\n".encode())
    report, rejects = convert(path, tmp_path / "out", max_record_bytes=1 << 20)
    assert (report.records_read, report.events_written, report.duplicates) == (3, 1, 1)
    (row,) = rejects
    assert (row["reason"], row["line"]) == ("unreadable", 2)
    assert row["detail"] == f"line of {len(big):,} bytes, over the limit of {1 << 20:,} (max_record_bytes)"
    assert row["raw"] == big[:RAW_PREFIX]


def test_an_oversized_line_is_never_held_in_memory(tmp_path):
    """Reading a 40 MiB line with a 1 MiB limit never holds more than a few MiB."""
    path = tmp_path / "a.jsonl"
    with path.open("wb") as handle:
        for _ in range(40):
            handle.write(b" " * (1 << 20))
        handle.write(b"x\n" + GOOD.encode() + b"\n")
    tracemalloc.start()
    try:
        kinds = [record.kind for record in read_records(path, Limits(max_record_bytes=1 << 20))]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kinds == ["unreadable", "bare"]
    assert peak < 8 << 20


def test_a_line_at_the_limit_is_read(tmp_path):
    """A record of exactly max_record_bytes is read; one byte more is rejected."""
    line = json.dumps(dict(DEPARTMENT_DELETED, note="x" * 1000))
    path = write_lines(tmp_path / "a.jsonl", [line])
    assert [r.kind for r in read_records(path, Limits(max_record_bytes=len(line)))] == ["bare"]
    assert [r.kind for r in read_records(path, Limits(max_record_bytes=len(line) - 1))] == ["unreadable"]


def test_an_oversized_json_document_is_one_reject(tmp_path):
    """A .json file larger than max_record_bytes is one `unreadable` reject, not read into memory whole."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps([DEPARTMENT_DELETED] * 200))
    report, rejects = convert(path, tmp_path / "out", max_record_bytes=4096)
    assert report.rejected_by_reason["unreadable"] == report.records_read == 1
    assert "over the limit of 4,096" in rejects[0]["detail"] and len(rejects[0]["raw"]) <= RAW_PREFIX


# ---------------------------------------------------------------------------- nesting


def test_nesting_deeper_than_the_limit_is_unreadable(tmp_path):
    """JSON nested deeper than max_depth (64) is `unreadable`, in a bare line as in a signed body, however deep."""
    records = []
    for depth in (65, 900, 100_000):
        text = f'{{"event": "department.deleted", "x": {deep_text(depth)}}}'
        records += [text, {"headers": {"x-siqsignature": sign(text.encode())}, "body": text}]
    report, rejects = convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out", keys=KEY_A)
    assert report.rejected_by_reason["unreadable"] == report.records_read == 6
    assert all(row["detail"] == "nested deeper than 64 levels (max_depth)" for row in rejects)


def test_nesting_up_to_the_limit_is_read(tmp_path):
    """A payload whose extra property nests 64 levels in all is accepted and kept in events.entity."""
    payload = dict(DEPARTMENT_DELETED, entity={"deep": nested(62)})
    report, _ = convert(write_lines(tmp_path / "a.jsonl", [payload]), tmp_path / "out")
    assert report.events_written == 1
    assert json.loads(siq_schemas.read_table(tmp_path / "out", "events")["entity"][0]) == payload["entity"]


# ---------------------------------------------------------------------------- compression


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_decompression_bomb_is_stopped_and_its_readable_part_kept(tmp_path, suffix):
    """A file expanding over max_ratio (past a floor) keeps its records, then one reject naming the offset."""
    packer = gzip.compress if suffix == ".gz" else zstandard.ZstdCompressor().compress
    head = packer(f"{GOOD}\n{GOOD}\n".encode())
    path = tmp_path / f"a.jsonl{suffix}"
    path.write_bytes(head + bomb(suffix, 64 << 20))
    records = list(read_records(path, Limits(ratio_floor=4 << 20)))
    assert [r.kind for r in records] == ["bare", "bare", "unreadable"]
    message = records[-1].error.message
    assert message.startswith("expands over 1,000 times its compressed size (a decompression bomb?) at byte ")
    assert message.endswith(": the rest of the file is not read")
    assert int(message.split("at byte ")[1].split(":")[0].replace(",", "")) > len(head)
    assert records[-1].raw == b"\0" * len(records[-1].raw) and len(records[-1].raw) <= RAW_PREFIX


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_bomb_in_a_convert_run_is_one_reject(tmp_path, suffix):
    """convert with the default limits stops a 128 MiB bomb at 64 MiB: one `unreadable` reject, the identity holds."""
    path = tmp_path / f"a.jsonl{suffix}"
    path.write_bytes(bomb(suffix, 128 << 20))
    report, rejects = convert(path, tmp_path / "out")
    assert report.rejected_by_reason["unreadable"] == report.records_read == 1
    assert "decompression bomb" in rejects[0]["detail"]


def test_signed_archives_are_far_from_the_ratio_guard():
    """Every compressed file of the shipped sample (signed deliveries) expands under 10 times: the guard is at 1000."""
    files = sorted(SAMPLE.glob("deliveries/*.jsonl.*"))
    assert files
    for path in files:
        expanded = sum(len(record.raw) + 1 for record in read_records(path))
        assert expanded < 10 * path.stat().st_size, path


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_broken_compressed_file_keeps_its_readable_part(tmp_path, suffix, damage):
    """A truncated .gz/.zst (still being written): whole lines read, the partial one pending; corrupt: one reject."""
    lines = [json.dumps(dict(DEPARTMENT_DELETED, entity_id=str(i))) for i in range(3000)]
    data = ("\n".join(lines) + "\n").encode()
    packed = gzip.compress(data) if suffix == ".gz" else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"a.jsonl{suffix}"
    at = len(packed) * 2 // 3
    flipped = bytes(byte ^ 0xFF for byte in packed[at : at + 64]) + packed[at + 64 :]
    path.write_bytes(packed[:at] + (flipped if damage == "corrupt" else b""))
    report, rejects = convert(path, tmp_path / "out")
    if damage == "truncated":
        whole = [record for record in read_records(path) if record.kind != "unreadable"]
        assert len(rejects) == report.rejected == 0 and report.pending == 1
        assert report.events_written == report.records_read == len(whole) > 1000
        return
    (row,) = rejects
    assert report.events_written == report.records_read - 1 == row["line"] - 1 and report.pending == 0
    assert row["source"] == str(path) and "at byte" in row["detail"]
    assert data.split(b"\n")[row["line"] - 1].startswith(row["raw"])


# ---------------------------------------------------------------------------- numbers and literals


def test_integers_with_hundreds_of_digits_stay_exact(tmp_path):
    """A 300-digit id is kept as the exact string; a 300-digit time is null, the event kept."""
    huge = int("9" * 300)
    payload = dict(DEPARTMENT_DELETED, entity_id=huge, app_id=huge)
    late = dict(DEPARTMENT_DELETED, entity_id="2", event_time="9" * 300)
    report, _ = convert(write_lines(tmp_path / "a.jsonl", [payload, late]), tmp_path / "out")
    assert report.events_written == 2
    events = siq_schemas.read_table(tmp_path / "out", "events").set_index("entity_id", drop=False)
    assert events.loc[str(huge), "app_id"] == "9" * 300
    assert events["event_time"].isna().sum() == 1


def test_integers_beyond_the_parser_limit_are_unreadable(tmp_path):
    """An integer of 5000 digits (over Python's 4300) is an `unreadable` reject, not a crash."""
    line = GOOD.replace('"40526000001808025"', "9" * 5000)
    report, rejects = convert(write_lines(tmp_path / "a.jsonl", [line]), tmp_path / "out")
    assert report.rejected_by_reason["unreadable"] == 1 and rejects[0]["raw"] == line.encode()


def test_times_beyond_the_calendar_are_null_not_a_crash(tmp_path):
    """Epoch milliseconds that fit 64 bits but no calendar (year > 9999) become null times; the run finishes."""
    t = 1_772_000_000_000
    records = [
        envelope("conversation.created", "c1", 9_223_372_036_854_775_807, {"id": "c1", "opened_time": str(2**62)}),
        envelope("conversation.completed", "c1", t, {"id": "c1", "end_time": "10000000000000000"}),
        envelope("conversation.missed", "c1", 0, {"id": "c1"}) | {"event_time": 2**62},  # a JSON integer too
    ]
    report, _ = convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out")
    assert report.events_written == 3
    assert siq_schemas.read_table(tmp_path / "out", "events")["event_time"].isna().sum() == 2
    conversation = siq_schemas.read_table(tmp_path / "out", "conversations").iloc[0]
    assert conversation["outcome"] == "completed" and pd.isna(conversation["opened_time"])
    assert conversation["end_time"] == pd.Timestamp(t, unit="ms", tz="UTC")  # the event's time stands in


def test_nan_and_infinity_are_unreadable(tmp_path):
    """NaN, Infinity and numbers out of the float range are not JSON: `unreadable`, bare or in a body."""
    records = []
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        text = GOOD.replace('"attempt": 1', f'"attempt": {literal}')
        records += [text, delivery(text, key=None)]
    report, _ = convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out")
    assert report.rejected_by_reason["unreadable"] == report.records_read == 8


def test_duplicate_keys_keep_the_last_value(tmp_path):
    """An object with a repeated key takes its last value, as JavaScript, Python's json and msgspec do."""
    text = GOOD[:-1] + ', "entity_id": "last"}'
    report, _ = convert(write_lines(tmp_path / "a.jsonl", [delivery(text)]), tmp_path / "out", keys=KEY_A)
    assert report.events_written == 1
    assert siq_schemas.read_table(tmp_path / "out", "events")["entity_id"].tolist() == ["last"]


def test_a_repeated_body_verifies_the_last_one(tmp_path):
    """A delivery line with two `body` keys is read with the last: a signature over the first does not verify it."""
    record = delivery(GOOD)
    line = json.dumps(record)[:-1] + ', "body": ' + json.dumps(GOOD.replace("department", "operator")) + "}"
    report, _ = convert(write_lines(tmp_path / "a.jsonl", [line]), tmp_path / "out", keys=KEY_A)
    assert report.rejected_by_reason["signature-invalid"] == 1


# ---------------------------------------------------------------------------- text


def test_invalid_utf8_is_unreadable_in_a_line_and_in_a_signed_body(tmp_path):
    """Bytes that are not UTF-8, in a line or in a validly signed base64 body, are `unreadable` rejects."""
    body = GOOD.encode().replace(b"department.deleted", b"department.\xff\xfe")
    signed = {"headers": {"x-siqsignature": sign(body)}, "body_base64": base64.b64encode(body).decode()}
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD.encode().replace(b"55778119", b"5577\xc3\x28") + b"\n" + json.dumps(signed).encode() + b"\n")
    report, rejects = convert(path, tmp_path / "out", keys=KEY_A, allow_unsigned=True)
    assert report.rejected_by_reason["unreadable"] == 2
    assert all("invalid UTF-8 at byte" in row["detail"] for row in rejects)


def test_lone_surrogates_are_unreadable(tmp_path):
    """A lone UTF-16 surrogate escape is not text: `unreadable`, bare or in a body, with a message that says so."""
    records = []
    for escape in ("\\ud800", "\\udfff", "\\ud800x", "\\ud800\\u0041"):
        text = GOOD.replace("55778119", escape)
        records += [text, delivery(text, key=None)]
    report, rejects = convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out")
    assert report.rejected_by_reason["unreadable"] == 8
    assert all("lone surrogate" in row["detail"] for row in rejects)


# ---------------------------------------------------------------------------- files


EMPTY = {
    "a.jsonl": b"",
    "b.json": b"",
    "c.json": b"[]",
    "d.jsonl": b"\n \n\r\n",
    "e.jsonl.gz": b"",
    "f.jsonl.gz": gzip.compress(b""),
    "g.jsonl.zst": b"",
    "h.jsonl.zst": zstandard.ZstdCompressor().compress(b""),
}


def test_empty_files_read_nothing(tmp_path):
    """Empty files, empty arrays, blank lines and empty compressed streams give no record and no error."""
    (tmp_path / "in").mkdir()
    for name, content in EMPTY.items():
        (tmp_path / "in" / name).write_bytes(content)
    report, _ = convert(tmp_path / "in", tmp_path / "out")
    assert (report.files, report.records_read, report.blank_lines) == (len(EMPTY), 0, 3)
