"""The read stage: files, directories, globs, compression, and broken input."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import zstandard

from siq_schemas import Unreadable
from siq_schemas.read import expand, read_records
from tests.conftest import DEPARTMENT_DELETED, write_lines

BODY = json.dumps(DEPARTMENT_DELETED)


def delivery(body: str = BODY, **headers: str) -> dict:
    return {
        "received_at": "2026-03-01T10:15:30.123Z",
        "headers": headers or {"x-siqsignature": "c2ln"},
        "body": body,
    }


def test_delivery_records_and_bare_payloads_in_one_file(tmp_path):
    """A line with a body is a delivery (raw body bytes kept); a line with event and no body is bare."""
    path = write_lines(tmp_path / "a.jsonl", [delivery(), DEPARTMENT_DELETED])
    first, second = read_records(path)
    assert first.kind == "delivery" and first.body == BODY.encode() and first.received_at.startswith("2026")
    assert first.headers == {"x-siqsignature": "c2ln"}
    assert second.kind == "bare" and second.payload == DEPARTMENT_DELETED
    assert (first.source, first.line, second.line) == (str(path), 1, 2)


def test_header_names_are_case_insensitive(tmp_path):
    """Header names are lower-cased, so X-SiqSignature is found as x-siqsignature."""
    path = write_lines(tmp_path / "a.jsonl", [delivery(**{"X-SiqSignature": "c2ln"})])
    (record,) = read_records(path)
    assert record.headers["x-siqsignature"] == "c2ln"


def test_body_base64_gives_the_raw_bytes(tmp_path):
    """`body_base64` replaces `body` and yields the exact bytes, even when they are not UTF-8."""
    raw = b"\xff\xfe not utf-8"
    path = write_lines(tmp_path / "a.ndjson", [{"headers": {}, "body_base64": base64.b64encode(raw).decode()}])
    (record,) = read_records(path)
    assert record.kind == "delivery" and record.body == raw


def test_blank_lines_are_counted_apart(tmp_path):
    """Blank and whitespace-only lines are `blank` records, not errors, and keep line numbers right."""
    path = write_lines(tmp_path / "a.jsonl", [DEPARTMENT_DELETED, "", "   ", DEPARTMENT_DELETED])
    kinds = [(r.line, r.kind) for r in read_records(path)]
    assert kinds == [(1, "bare"), (2, "blank"), (3, "blank"), (4, "bare")]


def test_u2028_inside_a_string_is_not_a_line_break(tmp_path):
    """Lines split on \\n only: a raw U+2028 or \\r inside a JSON string stays in its record."""
    payload = dict(DEPARTMENT_DELETED, note="one\u2028two\rthree")
    path = tmp_path / "a.jsonl"
    path.write_bytes(json.dumps(payload, ensure_ascii=False).encode() + b"\r\n")
    (record,) = read_records(path)
    assert record.payload["note"] == "one\u2028two\rthree"


def test_bad_lines_are_unreadable_records_naming_the_line(tmp_path):
    """Bad JSON, bad UTF-8 and a non-string body become `unreadable` records with file and line."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"event": \n\xff\xfe\n{"headers": {}, "body": 5}\n')
    records = list(read_records(path))
    assert [r.kind for r in records] == ["unreadable"] * 3
    assert [r.error.line for r in records] == [1, 2, 3]
    assert "invalid JSON" in records[0].error.message
    assert "UTF-8" in records[1].error.message
    assert records[2].raw == b'{"headers": {}, "body": 5}'


def test_json_file_with_an_array_or_one_object(tmp_path):
    """A .json file holds one envelope or an array of them; items are numbered from 1."""
    (tmp_path / "one.json").write_text(json.dumps(DEPARTMENT_DELETED))
    (tmp_path / "many.json").write_text(json.dumps([DEPARTMENT_DELETED, DEPARTMENT_DELETED]))
    assert [r.line for r in read_records(tmp_path / "one.json")] == [1]
    assert [(r.line, r.kind) for r in read_records(tmp_path / "many.json")] == [(1, "bare"), (2, "bare")]


def test_gzip_multi_member_and_zstd_multi_frame(tmp_path):
    """A gzip file of several members and a zstd file of several frames are read through."""
    part = (BODY + "\n").encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(part * 2) + gzip.compress(part * 3))
    compressor = zstandard.ZstdCompressor()
    (tmp_path / "a.jsonl.zst").write_bytes(compressor.compress(part * 2) + compressor.compress(part * 4))
    assert len(list(read_records(tmp_path / "a.jsonl.gz"))) == 5
    assert len(list(read_records(tmp_path / "a.jsonl.zst"))) == 6


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_file_keeps_the_readable_part(tmp_path, suffix):
    """A truncated compressed file yields its readable records, then one unreadable record with the offset."""
    lines = [json.dumps(dict(DEPARTMENT_DELETED, entity_id=str(i * 7919 % 100003))) for i in range(20000)]
    data = ("\n".join(lines) + "\n").encode()
    packed = gzip.compress(data) if suffix == ".gz" else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"a.jsonl{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    records = list(read_records(path))
    *good, last = records
    assert len(good) > 1000 and all(r.kind == "bare" for r in good)
    assert [r.payload["entity_id"] for r in good] == [json.loads(line)["entity_id"] for line in lines[: len(good)]]
    assert last.kind == "unreadable" and last.line == len(good) + 1
    assert "truncated" in last.error.message and "at byte" in last.error.message


def test_garbage_after_gzip_stream_is_reported(tmp_path):
    """Bytes after the last gzip member that are not a member are an unreadable record, not a crash."""
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress((BODY + "\n").encode()) + b"not gzip")
    kinds = [r.kind for r in read_records(path)]
    assert kinds == ["bare", "unreadable"]


def test_expand_walks_directories_and_globs_in_stable_order(tmp_path):
    """Directories are walked for known suffixes, skipping `_*` and `.*` names; globs expand; files listed once."""
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ["b/2.jsonl", "b/c/1.json.gz", "a.ndjson", "notes.txt", "_expected.json", ".git/x.json"]:
        (tmp_path / name).write_text("")
    found = expand([tmp_path, str(tmp_path / "*.ndjson")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.ndjson", "b/2.jsonl", "b/c/1.json.gz"]


def test_missing_source_is_a_clear_error(tmp_path):
    """A path that does not exist, or a glob that matches nothing, raises Unreadable naming it."""
    with pytest.raises(Unreadable, match="no such file"):
        expand([tmp_path / "nope.jsonl"])
    with pytest.raises(Unreadable, match="no file matches"):
        expand([str(tmp_path / "*.jsonl")])


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_members_ending_on_a_chunk_boundary_and_nul_padding(tmp_path, suffix):
    """A member starting exactly at a read boundary is read; NUL padding between members is fine."""
    part = (BODY + "\n").encode()
    pack = gzip.compress if suffix == ".gz" else zstandard.ZstdCompressor().compress
    first = pack(part)
    path = tmp_path / f"a.jsonl{suffix}"
    path.write_bytes(first + pack(part * 2) + b"\0" * 10)
    assert [r.kind for r in read_records(path, chunk_bytes=len(first))] == ["bare"] * 3
    assert [r.kind for r in read_records(path)] == ["bare"] * 3
