"""Tasks of similar size: a file read in ranges of lines by several workers, small files packed into shared tasks.

Each is compared with the same files converted as one task per file: the outputs are the same, every column,
line number, count, manifest entry and drift finding included.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import random
from pathlib import Path

import pytest

import siq_schemas
from siq_schemas.converter import Tuning, plan
from siq_schemas.converter.stage import Part
from siq_schemas.converter.tasks import CHUNK, fingerprint, ranges
from tests.archives import chat, envelope, output_of, planned
from tests.conftest import KEYS, delivery, write_lines

KEY_A = KEYS / "key_a_public.pem"
#: Ranges of about 4 KB (a few lines each), staged by two worker processes.
SPLIT = Tuning(task_bytes=4 << 10, parallel_bytes=0)
WHOLE = Tuning()
T = 1_772_000_000_000


def department(number: int, **extra) -> dict:
    return envelope("department.deleted", f"d{number:04d}", T + number, **extra)


def mixed(count: int = 120) -> list:
    """Signed deliveries with every kind of line a file may hold, spread over its length.

    A conversation's events (folded into one row), a retry and a copy of earlier
    lines (the first stays the event's source), drift (unknown fields, first seen
    early), and rejects of each kind: bad JSON, an oversized line, a schema error,
    a bad signature; blank, CRLF and byte-order-marked lines.
    """
    records: list = [delivery(department(number)) for number in range(count)]
    for number, payload in enumerate(chat()):
        records[2 + 10 * number] = delivery(payload, received_at=f"2026-03-01T10:{number:02d}:00Z")
    records[3] = "{broken"
    records[9] = ""
    records[14] = json.dumps(delivery(department(14))) + "\r"
    records[17] = "\ufeff" + json.dumps(delivery(department(17)))
    records[20] = delivery(department(20, surprise=True))
    records[60] = delivery(department(60, surprise=False, other=1))
    records[70] = delivery(department(30), received_at="2026-03-02T00:00:00Z")  # a copy of line 31's event
    records[80] = delivery({**department(40), "attempt": 2}, received_at="2026-03-02T00:00:00Z")  # a retry
    records[90] = delivery(department(90, padding="x" * 6000))  # over max_record_bytes
    records[100] = delivery(department(100, event_time="soon"))
    records[110] = delivery(department(110), key="b")
    return records


def convert(sources, out: Path, tuning: Tuning = WHOLE, workers: int = 1, **options) -> siq_schemas.Report:
    return siq_schemas.convert(
        sources, out, keys=KEY_A, max_record_bytes=4000, workers=workers, tuning=tuning, **options
    )


def test_a_file_read_in_ranges_gives_the_output_of_the_file_read_whole(tmp_path):
    """Ranges read by two workers: the same tables, rejects and line numbers, report, manifest and drift."""
    archive = write_lines(tmp_path / "a.jsonl", mixed())
    with archive.open("a") as handle:
        handle.write('{"received_at": "2026-03-01T1')  # a line still being written
    parts = [part for task in planned([archive], 2, SPLIT, tmp_path) for part in task]
    assert len(parts) > 10 and (parts[0][1], parts[-1][2]) == (0, archive.stat().st_size)
    assert all(before[2] == after[1] for before, after in itertools.pairwise(parts))  # ranges one after the other
    whole = convert(archive, tmp_path / "whole")
    split = convert(archive, tmp_path / "split", SPLIT, workers=2)
    assert output_of(tmp_path / "split") == output_of(tmp_path / "whole")
    assert (split.records_read, split.rejected, split.duplicates, split.blank_lines, split.pending) == (119, 4, 2, 1, 1)
    assert split.to_dict() | {"out": "", "seconds": 0} == whole.to_dict() | {"out": "", "seconds": 0}
    rejects = siq_schemas.read_table(tmp_path / "split", "rejects").set_index("line")
    assert rejects["reason"].to_dict() == {
        4: "unreadable",
        91: "unreadable",
        101: "schema-invalid",
        111: "signature-invalid",
    }
    events = siq_schemas.read_table(tmp_path / "split", "events").set_index("entity_id")
    assert events.loc["d0030", "source"] == f"{archive}:31" and events.loc["d0030", "deliveries"] == 2
    assert events.loc["d0040", "attempts"] == 2
    drift = json.loads((tmp_path / "split" / "_drift.json").read_text())
    assert {finding["first"] for finding in drift["findings"]} == {f"{archive}:{line}" for line in (21, 61, 101)}


@pytest.mark.parametrize("tail", ["being written", "complete, no newline", "torn, then cut off"])
def test_a_file_read_in_ranges_resumes_after_its_last_complete_record(tmp_path, tail):
    """A grown file read in ranges is resumed after its last complete record; the output is that of a fresh run."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    lines = [record if isinstance(record, str) else json.dumps(record) for record in mixed(200)]
    first, rest = "\n".join(lines[:100]), "\n".join(lines[100:]) + "\n"
    torn = '{"received_at": "2026-03-01T1'
    archive.write_text(first + ("\n" + torn if tail != "complete, no newline" else ""), encoding="utf-8")
    report = convert(archive, out, SPLIT, workers=2)
    assert (report.records_read, report.pending) == (99, tail != "complete, no newline")
    if tail == "torn, then cut off":  # as a receiver that restarts cuts its torn last line
        archive.write_text(first + "\n", encoding="utf-8")
        again = convert(archive, out, SPLIT, workers=2)
        assert (again.files_unchanged, again.records_read, again.rebuilt, again.pending) == (1, 0, "", 0)
    archive.write_text(first + "\n" + rest, encoding="utf-8")
    grown = convert(archive, out, SPLIT, workers=2)
    assert (grown.records_read, grown.rebuilt, grown.pending) == (100, "", 0)
    assert len(planned([archive], 2, SPLIT, tmp_path)) > 10
    convert(archive, tmp_path / "fresh")
    assert output_of(out)["tables"] == output_of(tmp_path / "fresh")["tables"]
    assert output_of(out)["manifest"]["inputs"] == output_of(tmp_path / "fresh")["manifest"]["inputs"]
    assert output_of(out)["drift"] == output_of(tmp_path / "fresh")["drift"]


def test_a_file_read_in_ranges_that_is_gone_before_it_is_read_is_one_reject(tmp_path, monkeypatch):
    """A file cut in ranges that vanishes after planning is one `unreadable` reject; it is read whole when back."""
    archive = write_lines(tmp_path / "a.jsonl", [delivery(department(number)) for number in range(60)])
    plan_files = plan.plan_files

    def plan_then_remove(*args):
        planned = plan_files(*args)
        archive.rename(tmp_path / "away.jsonl")
        return planned

    monkeypatch.setattr(plan, "plan_files", plan_then_remove)
    report = convert(archive, tmp_path / "out", SPLIT, workers=2)
    monkeypatch.undo()
    assert (report.records_read, report.rejected_by_reason["unreadable"], report.events_written) == (1, 1, 0)
    (tmp_path / "away.jsonl").rename(archive)
    back = convert(archive, tmp_path / "out", SPLIT, workers=2)
    assert (back.records_read, back.events_written, back.rejected) == (60, 60, 0)


def small_files(folder: Path) -> list[Path]:
    """Twenty small files as a receiver writes them: duplicates across files, rejects, an empty file, a
    torn tail, a compressed file and a JSON document among them."""
    folder.mkdir()
    payloads = chat()
    files = []
    for number in range(20):
        records: list = [delivery(department(number * 10 + line)) for line in range(4)]
        records[number % 4] = delivery(payloads[number % len(payloads)])
        files.append(write_lines(folder / f"{number:02d}.jsonl", records))
    write_lines(files[3], [delivery(department(1)), "{broken", delivery(department(33, surprise=True))])
    files[7].write_text("")
    with files[9].open("a") as handle:
        handle.write('{"received_at": "2026-03-01T1')
    files[12].unlink()
    files[12] = folder / "12.jsonl.gz"
    files[12].write_bytes(gzip.compress("".join(json.dumps(delivery(department(c))) + "\n" for c in (1, 121)).encode()))
    files[15].unlink()
    files[15] = folder / "15.json"
    files[15].write_text(json.dumps([department(151), department(2)]))
    return files


def test_small_files_packed_into_shared_tasks_give_the_output_of_a_task_each(tmp_path):
    """Small files read one after the other by one task, or by a few on two workers: the output of a task each."""
    files = small_files(tmp_path / "archive")
    smallest = min(size * (8 if path.suffix == ".gz" else 1) for path in files if (size := path.stat().st_size))
    apart = Tuning(task_bytes=smallest - 1, parallel_bytes=0)
    assert all(len({part[0] for part in task}) == 1 for task in planned(files, 2, apart, tmp_path))
    few = Tuning(task_bytes=sum(path.stat().st_size for path in files) // 3, parallel_bytes=0)
    assert [len(task) for task in planned(files, 1, WHOLE, tmp_path)] == [20]
    assert 3 <= len(planned(files, 2, few, tmp_path)) <= 6
    report = convert(tmp_path / "archive", tmp_path / "apart", apart, workers=2, allow_unsigned=True)
    assert (report.records_read, report.rejected, report.pending, report.duplicates) == (71, 1, 1, 8)
    for name, tuning, workers in (("one", WHOLE, 1), ("few", few, 2)):
        packed = convert(tmp_path / "archive", tmp_path / name, tuning, workers=workers, allow_unsigned=True)
        assert packed.to_dict() | {"out": "", "seconds": 0} == report.to_dict() | {"out": "", "seconds": 0}
        assert output_of(tmp_path / name) == output_of(tmp_path / "apart")
    events = siq_schemas.read_table(tmp_path / "one", "events").set_index("entity_id")
    assert events.loc["d0001", "source"] == f"{files[0]}:2"  # its first delivery, in the first file


def test_a_scan_notes_line_starts_with_the_lines_before_them_and_the_digests(tmp_path):
    """The plan's one pass over a file: each noted cut is a line start with its line count; digests at the mark."""
    rng = random.Random(16)
    lines = [b"x" * rng.choice([0, 1, 50, 3000, CHUNK + 7]) for _ in range(60)]
    data = b"\n".join(lines) + b"\r\n" + b'{"tail'
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    for every in (1, 100, 5000, CHUNK):
        for mark in (0, 1, 51, len(data) // 2, data.rfind(b"\n") + 1, len(data), len(data) + 1):
            found = fingerprint(path, every, mark)
            assert (found.size, found.sha256) == (len(data), hashlib.sha256(data).hexdigest())
            line_end = data.rfind(b"\n") + 1
            assert dict(found.ends) == {line_end: hashlib.sha256(data[:line_end]).hexdigest(), len(data): found.sha256}
            assert found.prefix == (hashlib.sha256(data[:mark]).hexdigest() if mark <= len(data) else None)
            start = data.rfind(b"\n", 0, mark) + 1 if mark <= len(data) else 0
            assert (found.start, found.lines) == (start, data[:start].count(b"\n"))
            assert (found.cuts or start > 0) and all(data[cut - 1] == ord("\n") for cut, _ in found.cuts)
            assert all(lines == data[:cut].count(b"\n") and start < cut < len(data) for cut, lines in found.cuts)
            whole = Part(str(path), str(path), 0, 0, len(data) - start, start, found.lines, len(data), found.ends)
            pieces = ranges(whole, found.cuts, max(every, 4000) * 2)
            assert [piece.start for piece in pieces[1:]] == [piece.end for piece in pieces[:-1]]
            assert (pieces[0].start, pieces[-1].end, pieces[-1].ends) == (start, len(data), found.ends)
            assert all(not piece.ends for piece in pieces[:-1]) and [p.piece for p in pieces] == [*range(len(pieces))]
