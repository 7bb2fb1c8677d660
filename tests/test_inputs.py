"""What an archive is made of: file names, links, globs, special files, key files, and the text they hold.

A source names files, folders or glob patterns; whatever it reaches, each file is
read once, no name crashes a run, no special file hangs one, and no text read
from a payload or a file name can forge a line of the terminal output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import siq_schemas
from siq_schemas._decompress import CHUNK
from siq_schemas.parse import DEPTH_CEILING
from siq_schemas.read import Limits, expand, read_records
from tests.conftest import DEPARTMENT_DELETED, KEYS, delivery, sign, siq, write_lines

KEY_A = KEYS / "key_a_public.pem"
GOOD = json.dumps(DEPARTMENT_DELETED)


def department(number: int) -> str:
    """A valid bare `department.deleted` payload of its own entity."""
    return json.dumps(dict(DEPARTMENT_DELETED, entity_id=str(number)))


def one_line(result) -> str:
    """The stderr of a run that must exit 2 with one line and no traceback."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


# ---------------------------------------------------------------------------- file names


def test_a_file_name_that_is_not_utf8_is_read_under_an_escaped_name(tmp_path):
    """A name holding bytes that are not UTF-8 is read; `source` (tables, manifest, terminal) shows them as \\xNN."""
    archive = tmp_path / "in"
    archive.mkdir()
    odd = os.fsencode(archive) + b"/\xff\xfe.jsonl"
    with open(odd, "w") as handle:
        handle.write(f"{department(1)}\n{{bad\n")
    write_lines(archive / "ok.jsonl", [department(2)])
    shown = f"{archive}/\\xff\\xfe.jsonl"
    first = siq_schemas.convert(archive, tmp_path / "out")
    assert (first.files, first.events_written, first.rejected) == (2, 2, 1)
    (reject,) = siq_schemas.read_table(tmp_path / "out", "rejects").to_dict("records")
    assert (reject["source"], reject["line"]) == (shown, 2)
    sources = siq_schemas.read_table(tmp_path / "out", "events")["source"]
    assert sorted(sources) == [f"{shown}:1", f"{archive / 'ok.jsonl'}:1"]
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert [entry["path"] for entry in manifest["inputs"]] == [shown, str(archive / "ok.jsonl")]
    again = siq_schemas.convert(archive, tmp_path / "out")
    assert (again.files_unchanged, again.records_read) == (2, 0)
    cli = siq("convert", archive, "--out", tmp_path / "cli")
    assert cli.returncode == 0 and "Traceback" not in cli.stderr
    validate = siq("validate", archive)
    assert validate.returncode == 1 and "Traceback" not in validate.stderr
    assert validate.stdout.startswith(f"{shown}:2 - $ invalid JSON")
    drift = siq("drift", archive)
    assert drift.returncode == 0 and "Traceback" not in drift.stderr


# ---------------------------------------------------------------------------- nesting


def nested_payloads(depth: int) -> list[str]:
    """Payloads nesting ``depth`` levels in all: in an extra field, in a field of the wrong type, in a signed body."""
    value = "[" * (depth - 1) + "1" + "]" * (depth - 1)
    extra = GOOD[:-1] + f', "x": {value}}}'
    typed = GOOD.replace('"entity_id": "40526000001808025"', f'"entity_id": {value}')
    body = department(3)[:-1] + f', "x": {value}}}'
    return [extra, typed, json.dumps({"headers": {"x-siqsignature": sign(body.encode())}, "body": body})]


def test_max_depth_up_to_its_ceiling_is_taken_by_every_stage(tmp_path):
    """At --max-depth 256 (the ceiling), payloads 256 deep are read, checked for drift, validated and written."""
    archive = write_lines(tmp_path / "a.jsonl", nested_payloads(DEPTH_CEILING))
    result = siq("convert", archive, "--out", tmp_path / "out", "--max-depth", DEPTH_CEILING, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["events_written"], report["rejected_by_reason"]["schema-invalid"]) == (2, 1)
    deeper = write_lines(tmp_path / "b.jsonl", nested_payloads(DEPTH_CEILING + 1))
    report = siq_schemas.convert(deeper, tmp_path / "deeper", max_depth=DEPTH_CEILING)
    assert report.rejected_by_reason["unreadable"] == report.records_read == 3
    details = set(siq_schemas.read_table(tmp_path / "deeper", "rejects")["detail"])
    assert details == {f"nested deeper than {DEPTH_CEILING} levels (max_depth)"}


def test_max_depth_beyond_its_ceiling_is_refused(tmp_path):
    """--max-depth over 256 is a usage error (exit 2); convert() and Limits raise ValueError naming the ceiling."""
    archive = write_lines(tmp_path / "a.jsonl", [GOOD])
    result = siq("convert", archive, "--out", tmp_path / "out", "--max-depth", "1000")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"1000 is not in the range 1<=x<={DEPTH_CEILING}" in result.stderr
    with pytest.raises(ValueError, match=f"max_depth must be from 1 to {DEPTH_CEILING}, not 1000"):
        siq_schemas.convert(archive, tmp_path / "out", max_depth=1000)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        Limits(max_depth=0)


def test_the_depth_reject_names_the_limit_in_force_however_deep(tmp_path):
    """A payload nested 100,000 levels, read with max_depth 100, is rejected naming 100, bare or in a body."""
    value = "[" * 100_000 + "]" * 100_000
    text = GOOD[:-1] + f', "x": {value}}}'
    archive = write_lines(tmp_path / "a.jsonl", [text, delivery(text, key=None)])
    report = siq_schemas.convert(archive, tmp_path / "out", max_depth=100)
    assert report.rejected_by_reason["unreadable"] == report.records_read == 2
    details = set(siq_schemas.read_table(tmp_path / "out", "rejects")["detail"])
    assert details == {"nested deeper than 100 levels (max_depth)"}


# ---------------------------------------------------------------------------- special files


@pytest.fixture
def fifo(tmp_path) -> Path:
    """A FIFO with no writer: opening it for reading would block forever."""
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["convert", "validate", "drift"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_fifo_or_a_device_named_as_a_source_is_refused_at_once(tmp_path, fifo, command, special):
    """A FIFO or /dev/zero named as a source is refused: one line, exit 2, never a hang."""
    source = fifo if special == "fifo" else Path(special)
    arguments = [command, source, *(["--out", tmp_path / "out"] if command == "convert" else [])]
    kind = "a FIFO" if special == "fifo" else "a character device"
    assert one_line(siq(*arguments, timeout=60)) == f"siq: {source}: {kind}, not a regular file"


def test_a_fifo_read_directly_is_unreadable_without_blocking(fifo):
    """read_records on a FIFO (one that replaced a planned file, say) raises Unreadable at once."""
    code = f"from siq_schemas.read import read_records; list(read_records({str(fifo)!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Unreadable" in result.stderr and "a FIFO, not a regular file" in result.stderr


@pytest.mark.parametrize("key", ["fifo", "/dev/zero", "big"])
def test_a_key_file_that_is_special_or_huge_is_refused_at_once(tmp_path, fifo, key):
    """--keys naming a FIFO, /dev/zero or a file over 1 MiB is refused in one line (exit 2), read no further."""
    path = {"fifo": fifo, "/dev/zero": Path("/dev/zero"), "big": tmp_path / "big.pem"}[key]
    if key == "big":
        path.write_bytes(KEY_A.read_bytes() * ((2 << 20) // len(KEY_A.read_bytes())))
    archive = write_lines(tmp_path / "a.jsonl", [GOOD])
    line = one_line(siq("convert", archive, "--out", tmp_path / "out", "--keys", path, timeout=60))
    expected = {
        "fifo": "cannot read key file (a FIFO, not a regular file)",
        "/dev/zero": "cannot read key file (a character device, not a regular file)",
        "big": "over 1 MiB, not a key file",
    }[key]
    assert line == f"siq: {path}: {expected}"


# ---------------------------------------------------------------------------- files reached twice


def test_a_file_reached_twice_is_read_once(tmp_path, monkeypatch):
    """A file reached by a symlink, a hard link, its relative and absolute names is read once, under its own name."""
    archive = tmp_path / "in"
    archive.mkdir()
    write_lines(archive / "b.jsonl", [department(1), department(2), "{bad"])
    (archive / "a.jsonl").symlink_to("b.jsonl")
    os.link(archive / "b.jsonl", archive / "c.jsonl")
    monkeypatch.chdir(tmp_path)
    sources = ["in", str(archive / "b.jsonl"), "in/b.jsonl", "in/../in/a.jsonl"]
    assert expand(sources) == [Path("in/b.jsonl")]
    report = siq_schemas.convert(sources, tmp_path / "out")
    assert (report.files, report.records_read, report.events_written, report.rejected) == (1, 3, 2, 1)
    events = siq_schemas.read_table(tmp_path / "out", "events")
    assert events["deliveries"].tolist() == [1, 1]


# ---------------------------------------------------------------------------- folders


def test_a_glob_walks_the_folders_it_matches(tmp_path):
    """'arch/2024-*' matching folders reads the input files in them, and the files it matches."""
    archive = tmp_path / "arch"
    for number, name in enumerate(["2024-01/a.jsonl", "2024-02/deep/b.jsonl", "2023-12/c.jsonl", "2024-03.jsonl"]):
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        write_lines(archive / name, [department(number)])
    (archive / "2024-01" / "notes.txt").write_text("not input")
    pattern = str(archive / "2024-*")
    found = [path.relative_to(archive).as_posix() for path in expand([pattern])]
    assert found == ["2024-01/a.jsonl", "2024-02/deep/b.jsonl", "2024-03.jsonl"]
    report = siq_schemas.convert(pattern, tmp_path / "out")
    assert (report.files, report.events_written) == (3, 3)


def test_links_to_folders_are_walked_once_and_loops_end(tmp_path):
    """A symlinked folder in a source folder is walked; a loop of links ends; each file is listed once."""
    archive, outside = tmp_path / "arch", tmp_path / "outside"
    (archive / "real").mkdir(parents=True)
    (outside / "more").mkdir(parents=True)
    write_lines(archive / "real" / "a.jsonl", [department(1)])
    write_lines(outside / "more" / "b.jsonl", [department(2)])
    (archive / "linked").symlink_to(outside)
    (archive / "again").symlink_to(outside / "more")
    (archive / "self").symlink_to(".")
    (archive / "real" / "up").symlink_to("..")
    (outside / "back").symlink_to(archive)
    (archive / "a-link").symlink_to("real")
    found = expand([archive])
    assert [path.relative_to(archive).as_posix() for path in found] == ["again/b.jsonl", "real/a.jsonl"]
    report = siq_schemas.convert(archive, tmp_path / "out")
    assert (report.files, report.events_written) == (2, 2)


def test_a_folder_without_input_files_says_so(tmp_path):
    """An existing folder holding no input files is named as such, with the file names taken, not as missing."""
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    write_lines(folder / "_skipped.jsonl", [GOOD])
    expected = (
        f"siq: {folder}: the folder holds no input files "
        "(.jsonl, .ndjson or .json files, plain, .gz or .zst; names starting with _ or . skipped)"
    )
    assert one_line(siq("validate", folder)) == expected
    assert one_line(siq("convert", folder, "--out", tmp_path / "out")) == expected


# ---------------------------------------------------------------------------- times


def test_received_at_beyond_the_calendar_is_null(tmp_path):
    """A received_at outside the years 1-9999 once in UTC is null; one at the edge is kept to the millisecond."""
    times = {
        "1": "9999-12-31T23:59:59.999-00:01",
        "2": "0001-01-01T00:00:00+00:01",
        "3": "9999-12-31T23:59:59.999+00:00",
        "4": "2026-03-01T10:15:30.123+02:00",
    }
    records = [delivery(dict(DEPARTMENT_DELETED, entity_id=number), received_at=at) for number, at in times.items()]
    records.append(delivery("{bad", received_at=times["1"]))
    report = siq_schemas.convert(write_lines(tmp_path / "a.jsonl", records), tmp_path / "out")
    assert (report.events_written, report.rejected) == (4, 1)
    events = siq_schemas.read_table(tmp_path / "out", "events").set_index("entity_id")["received_at"]
    assert events[["1", "2"]].isna().all()
    assert events["3"] == pd.Timestamp("9999-12-31T23:59:59.999", tz="UTC")
    assert events["4"] == pd.Timestamp("2026-03-01T08:15:30.123", tz="UTC")
    assert siq_schemas.read_table(tmp_path / "out", "rejects")["received_at"].isna().all()
    str(siq_schemas.read_table(tmp_path / "out", "events"))  # pandas can print every time


# ---------------------------------------------------------------------------- text


BOM = b"\xef\xbb\xbf"


def test_a_byte_order_mark_is_skipped(tmp_path):
    """A UTF-8 byte order mark at the start of a file or of a line (files joined) is not part of the record."""
    archive = tmp_path / "in"
    archive.mkdir()
    lines = archive / "a.jsonl"
    lines.write_bytes(BOM + department(1).encode() + b"\n" + BOM + department(2).encode() + b"\r\n" + BOM + b"\n")
    (archive / "b.json").write_bytes(BOM + json.dumps([json.loads(department(3))]).encode())
    assert [record.kind for record in read_records(lines)] == ["bare", "bare", "blank"]
    report = siq_schemas.convert(archive, tmp_path / "out")
    assert (report.records_read, report.events_written, report.rejected, report.blank_lines) == (3, 3, 0, 1)


def test_the_cr_of_a_crlf_line_does_not_count_against_the_limit(tmp_path):
    """A CRLF line of max_record_bytes (before \\r) is read, also across a read boundary; one byte more is not."""
    line = department(1).encode()
    longer = department(22).encode()
    path = tmp_path / "a.jsonl"
    # blank lines place the first CRLF line so that a read ends just after its \r
    path.write_bytes(b"\n" * (CHUNK - len(line) - 1) + line + b"\r\n" + line + b"\r\n" + longer + b"\r\n")
    records = [record for record in read_records(path, Limits(max_record_bytes=len(line))) if record.kind != "blank"]
    assert [record.kind for record in records] == ["bare", "bare", "unreadable"]
    assert "over the limit" in records[-1].error.message


FORGED = "x\nforged.jsonl:1 - $ ok\x1b[2K"


def test_payload_text_and_file_names_are_printed_escaped(tmp_path):
    """Event and file names holding a newline or an escape print escaped: no forged line in validate or drift."""
    archive = tmp_path / "in"
    archive.mkdir()
    write_lines(archive / "a\nb.jsonl", [dict(DEPARTMENT_DELETED, event=FORGED), "{bad"])
    validate = siq("validate", archive)
    assert validate.returncode == 1
    shown = f"{archive}/a\\nb.jsonl"
    assert validate.stdout.splitlines() == [
        f"{shown}:1 x\\nforged.jsonl:1 - $ ok\\x1b[2K $.event unknown event {FORGED!r}",
        f"{shown}:2 - $ invalid JSON: object keys must be strings (byte 1)",
    ]
    drift = siq("drift", archive)
    (finding,) = [line for line in drift.stdout.splitlines() if "unknown-event" in line]
    assert "x\\nforged.jsonl:1 - $ ok\\x1b[2K" in finding and f"{shown}:1" in finding
    assert not any(line.startswith("forged") or "\x1b" in line for line in drift.stdout.splitlines())
    verify = siq("verify", "--keys", KEY_A, archive)
    assert verify.returncode == 1 and all(line.startswith(shown) for line in verify.stdout.splitlines())
