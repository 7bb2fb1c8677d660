"""Fuzzing: the parser, the readers and the whole convert job on generated hostile archives.

Each property runs a few examples in ``make test``; ``make fuzz`` runs them
for as long as it is given (see :mod:`tests.fuzzing`). The properties: no
exception but the package's own, every line one record, records numbered
from 1 without gaps, the accounting identity, every reject kept with its raw
record, nothing unverified in a table when keys are given, a second run adds
nothing.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import strategies as st

import siq_schemas
import siq_schemas.tables
from siq_schemas.converter import Tuning, merge
from siq_schemas.dedupe import event_key
from siq_schemas.exceptions import REASONS, PayloadInvalid, UnknownEvent, Unreadable
from siq_schemas.parse import loads
from siq_schemas.read import BOM, RAW_PREFIX, Limits, read_records
from tests import fuzzing
from tests.archives import bomb, chat, envelope, output_of
from tests.conftest import KEYS, sign, write_lines
from tests.fuzzing import fuzz
from tests.processes import siq_ready, snapshot

KEY_A = KEYS / "key_a_public.pem"
POOL = [
    *chat(),
    envelope("department.created", "d1", 1_772_000_000_000, {"id": "d1", "name": "Support", "operators": ["o1"]}),
    envelope("operator.created", "o1", 1_772_000_000_001, {"id": "o1", "email_id": "a@x", "departments": ["d1"]}),
    envelope("department.deleted", "d1", 1_772_000_000_002),
]
POOL += [dict(payload, attempt=2) for payload in POOL[:4]]  # retries: duplicates of the first four
BODIES = [json.dumps(payload) for payload in POOL]
SIGNATURES = [sign(body.encode()) for body in BODIES]

HUGE = st.integers(min_value=-(10**300), max_value=10**300)
JSON = st.recursive(
    st.none() | st.booleans() | HUGE | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
TOKENS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"9" * 5000,
    b'"\\ud800"',
    b'"\\udc00x"',
    b"\xff\xfe",
    b"\xed\xa0\x80",
    b"{",
    b"]",
    b'{"a": 1, "a": 2}',
    b"null",
    b"[]",
    b'""',
    b"\r",
    b" \t",
]
NESTED = st.integers(0, 1500).map(lambda depth: b"[" * depth + b"]" * depth)
LONG = st.integers(0, 5000).map(lambda size: b'{"event": "' + b"x" * size + b'"}')


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid payload's JSON with one value replaced by something hostile."""
    payload = draw(st.sampled_from(POOL))
    key = draw(st.sampled_from(sorted(payload)))
    hostile = draw(st.one_of(st.sampled_from(TOKENS), NESTED, JSON.map(lambda value: json.dumps(value).encode())))
    return json.dumps(payload).encode().replace(json.dumps(payload[key]).encode(), hostile, 1)


BODY = st.one_of(mutated(), st.binary(max_size=80), st.sampled_from(TOKENS), NESTED)


@st.composite
def hostile_delivery(draw: st.DrawFn) -> bytes:
    """A delivery record around a hostile body, with odd headers and times."""
    body = draw(BODY)
    record: dict[str, Any] = {}
    if draw(st.booleans()):
        record["body"] = body.decode("utf-8", "replace")
    else:
        record["body_base64"] = draw(st.sampled_from([base64.b64encode(body).decode(), "not base64!"]))
    record["headers"] = draw(
        st.one_of(
            st.just({"x-siqsignature": sign(body)}),
            st.dictionaries(st.sampled_from(["x-siqsignature", "X-SIQSIGNATURE", "other"]), JSON, max_size=2),
            JSON,
        )
    )
    if draw(st.booleans()):
        record["received_at"] = draw(st.one_of(st.text(max_size=30), JSON, st.just("9999-12-31T23:59:59-23:59")))
    return json.dumps(record).encode()


HOSTILE = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(TOKENS),
    JSON.map(lambda value: json.dumps(value).encode()),
    mutated(),
    LONG,
    NESTED,
    hostile_delivery(),
)


def good(index: int) -> bytes:
    """A delivery of ``POOL[index]`` signed by key A."""
    record = {"received_at": "2026-03-01T10:00:00Z", "headers": {"x-siqsignature": SIGNATURES[index]}}
    return json.dumps(record | {"body": BODIES[index]}).encode()


ITEM = st.one_of(
    st.integers(0, len(POOL) - 1).map(good),
    st.integers(0, len(POOL) - 1).map(lambda index: BODIES[index].encode()),  # bare payloads
    st.integers(0, len(POOL) - 1).map(lambda index: good(index).replace(b'"x-siqsignature"', b'"x-other"')),
    HOSTILE,
    st.just(b""),
)

BOMB = {suffix: bomb(suffix, 1 << 20) for suffix in (".gz", ".zst")}


def pack(data: bytes, suffix: str, members: int) -> bytes:
    """``data`` compressed as ``suffix`` says, in ``members`` gzip members or zstd frames."""
    if not suffix.endswith((".gz", ".zst")):
        return data
    step = -(-len(data) // members) or 1
    parts = [data[start : start + step] for start in range(0, len(data), step)] or [b""]
    compress = gzip.compress if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress
    return b"".join(compress(part) for part in parts)


@st.composite
def archive_file(draw: st.DrawFn, items: st.SearchStrategy[bytes], json_files: bool) -> dict[str, Any]:
    """One file: its name suffix, the plain bytes, the bytes written (compressed, maybe damaged) and the damage."""
    kinds = [".jsonl", ".ndjson", ".jsonl.gz", ".jsonl.zst"] + ([".json", ".json.gz"] if json_files else [])
    suffix = draw(st.sampled_from(kinds))
    if suffix.startswith(".json") and not suffix.startswith(".jsonl"):
        plain = draw(
            st.one_of(
                st.lists(st.sampled_from(BODIES), max_size=5).map(lambda bodies: f"[{', '.join(bodies)}]".encode()),
                st.sampled_from(BODIES).map(str.encode),
                HOSTILE,
            )
        )
    else:
        plain = b"".join(line + b"\n" for line in draw(st.lists(items, max_size=12)))
        if plain and draw(st.booleans()):
            plain = plain[:-1]  # no newline at the end
    data = pack(plain, suffix, draw(st.integers(1, 3)))
    damage = draw(st.sampled_from(["none", "none", "cut", "garbage", "flip", "bomb"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "garbage":
        data += draw(st.binary(min_size=1, max_size=20))
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    elif damage == "bomb" and suffix.endswith((".gz", ".zst")):
        data += BOMB[suffix[suffix.rindex(".") :]]
    else:
        damage = "none"
    return {"suffix": suffix, "plain": plain, "data": data, "damage": damage}


LIMITS = st.builds(
    Limits,
    max_record_bytes=st.integers(16, 4096),
    max_depth=st.integers(1, 80),
    max_ratio=st.integers(50, 2000),
    ratio_floor=st.sampled_from([64 << 10, 1 << 20]),
)


def expected_raw(line: bytes, limits: Limits) -> bytes:
    """The raw of the record a line of a JSON Lines file becomes (the \\r of CRLF and a leading BOM not its own)."""
    if len(line) - line.endswith(b"\r") > limits.max_record_bytes:
        return line[:RAW_PREFIX]
    line = line.removeprefix(BOM)
    return line if not line.strip() else line.rstrip(b"\r")


def payload_checks(record: Any, limits: Limits) -> None:
    """Parsing, validating and identifying a record raise nothing but the package's own errors."""
    try:
        payload = record.parse(limits.max_depth)
        siq_schemas.validate(payload)
    except (Unreadable, PayloadInvalid, UnknownEvent):
        return
    event_key(payload)


@fuzz(400, st.one_of(st.binary(max_size=200), HOSTILE, JSON.map(lambda value: json.dumps(value).encode())))
def test_the_parser_takes_any_bytes(data: bytes) -> None:
    """loads() returns the JSON value of any bytes, or raises Unreadable: never another error."""
    try:
        value = loads(data)
    except Unreadable as error:
        assert error.code == "unreadable" and error.message
    else:
        assert value == json.loads(data)


@fuzz(100, st.tuples(archive_file(HOSTILE | st.just(b""), json_files=True), LIMITS))
def test_the_readers_take_any_file(case: tuple[dict[str, Any], Limits]) -> None:
    """Any file, compressed, truncated, corrupt or a bomb: one record per line numbered from 1, within the limits."""
    file, limits = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{file['suffix']}"
        path.write_bytes(file["data"])
        records = list(read_records(path, limits))
    assert [record.line for record in records] == list(range(1, len(records) + 1))
    for record in records:
        assert record.kind in ("delivery", "bare", "blank", "unreadable")
        assert (record.kind == "unreadable") == (record.error is not None)
        if record.error is not None:
            assert (record.error.code, record.error.line) == ("unreadable", record.line)
        payload_checks(record, limits)
    if ".jsonl" not in file["suffix"] and ".ndjson" not in file["suffix"]:
        assert records[:1] == records or records[0].kind != "unreadable"
        return
    for record in records:
        assert len(record.raw) <= max(limits.max_record_bytes, RAW_PREFIX)
    compressed = file["suffix"].endswith((".gz", ".zst"))
    lines = lines_of(file["plain"] if compressed else file["data"])
    broken = records and records[-1].kind == "unreadable" and "at byte" in records[-1].error.message
    if (file["damage"] == "none" or not compressed) and not broken:
        assert [record.raw for record in records] == [expected_raw(line, limits) for line in lines]
    elif file["damage"] in ("cut", "garbage", "bomb"):  # whole lines as written, then what was left of the next
        *whole, last = records or [None]
        assert [record.raw for record in whole] == [expected_raw(line, limits) for line in lines[: len(whole)]]
        if last is not None and len(whole) < len(lines):
            size = min(len(last.raw), len(lines[len(whole)]))
            assert last.raw[:size] == lines[len(whole)][:size] or last.kind != "unreadable"


def lines_of(text: bytes) -> list[bytes]:
    """The lines of a JSON Lines text (a last line needs no newline)."""
    lines = text.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


@fuzz(10, st.tuples(st.lists(archive_file(ITEM, json_files=False), min_size=1, max_size=3), st.booleans(), LIMITS))
def test_convert_accounts_for_every_record(case: tuple[list[dict[str, Any]], bool, Limits]) -> None:
    """A hostile archive converts: the identity holds, rejects keep their records, only verified events, reruns idle;
    its plain files read in ranges of a few lines give the same output."""
    files, allow_unsigned, limits = case
    options = {"keys": KEY_A, "allow_unsigned": allow_unsigned, "workers": 1}
    options |= {"max_record_bytes": limits.max_record_bytes, "max_depth": limits.max_depth}
    with tempfile.TemporaryDirectory() as folder:
        archive, out = Path(folder) / "in", Path(folder) / "out"
        archive.mkdir()
        for index, file in enumerate(files):
            (archive / f"{index}{file['suffix']}").write_bytes(file["data"])
        report = siq_schemas.convert(archive, out, **options)
        assert report.balanced and report.duplicates >= 0
        rejects = siq_schemas.read_table(out, "rejects")
        assert len(rejects) == report.rejected and set(rejects["reason"]) <= set(REASONS)
        assert rejects["raw"].notna().all()
        events = siq_schemas.read_table(out, "events")
        assert set(events["signature"]) <= ({"valid", "unsigned"} if allow_unsigned else {"valid"})
        signed = {event_key(copy.deepcopy(payload)) for payload in POOL} | signed_hostile(files)
        assert set(events[events["signature"] == "valid"]["event_key"]) <= signed
        if all(file["damage"] == "none" for file in files):
            lines = [line for file in files for line in lines_of(file["plain"])]
            assert report.records_read + report.blank_lines + report.pending == len(lines)  # a torn last line waits
        again = siq_schemas.convert(archive, out, **options)
        assert (again.records_read, again.files_unchanged) == (0, len(files))
        siq_schemas.convert(archive, Path(folder) / "ranges", **options, tuning=Tuning(task_bytes=300))
        assert output_of(Path(folder) / "ranges") == output_of(out)


def signed_hostile(files: list[dict[str, Any]]) -> set[str]:
    """The event keys of every body in the archive that is a payload (only those signed by key A may verify)."""
    keys = set()
    for file in files:
        for line in lines_of(file["plain"]):
            try:
                record = json.loads(line)
                body = record["body"].encode() if "body" in record else base64.b64decode(record["body_base64"])
                keys.add(event_key(loads(body)))
            except (ValueError, TypeError, KeyError, AttributeError, Unreadable):
                continue
    return keys


fuzzing.TARGETS.append("test_random_kills_leave_the_previous_output")


@pytest.mark.fuzz
def test_random_kills_leave_the_previous_output(tmp_path):
    """kill -9, Ctrl-C, SIGTERM or SIGHUP at random moments: the previous or the new output, whole; a rerun works."""
    if not fuzzing.SECONDS:
        pytest.skip("`make fuzz` only; tests/test_runs.py and tests/test_faults.py stop runs at fixed points")
    archive, out, pristine = tmp_path / "in", tmp_path / "out", tmp_path / "pristine"
    archive.mkdir()
    write_lines(archive / "a.jsonl", chat())
    siq_schemas.convert(archive, pristine)
    for part in range(2):
        events = [envelope("department.deleted", f"d{part}-{i}", 1_772_000_000_000 + i) for i in range(15_000)]
        write_lines(archive / f"{part}.jsonl", events)
    before = snapshot(pristine)
    command = [sys.executable, "-m", "siq_schemas", "convert", str(archive), "--out", str(out), "--workers", "2"]
    started = time.monotonic()
    shutil.copytree(pristine, out)
    subprocess.run(command, check=True, capture_output=True)
    whole = time.monotonic() - started
    kills = 0
    while not kills or time.monotonic() - started < fuzzing.SECONDS / len(fuzzing.TARGETS):
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        how = random.choice([signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        process = siq_ready(*command[3:])
        time.sleep(random.uniform(0, whole))
        os.killpg(process.pid, how)
        _, error = process.communicate(timeout=60)
        for name in siq_schemas.tables.TABLES:
            pq.read_table(out / name)
        if snapshot(out) != before:  # the run committed before the signal: all of it is there
            assert json.loads((out / "_manifest.json").read_text())["tables"]["events"] == 30_000 + len(chat())
        elif process.returncode == -how and how != signal.SIGINT:  # before the run handles it: nothing to clean
            assert error == "", error
        elif how != signal.SIGKILL and process.returncode != 0:
            line = {signal.SIGINT: "siq: interrupted", signal.SIGTERM: "siq: terminated", signal.SIGHUP: "siq: hung up"}
            assert process.returncode == 128 + how and error.strip().endswith(line[how]), error
            assert "Traceback" not in error, error
        kills += 1
    report = siq_schemas.convert(archive, out)
    assert report.balanced and len(siq_schemas.read_table(out, "events")) == 30_000 + len(chat())
    fuzzing.RESULTS.append((test_random_kills_leave_the_previous_output.__name__, kills, time.monotonic() - started))


LONG_BODY = json.dumps(envelope("department.deleted", "long", 1_772_000_000_100, note="x" * 3000))
#: Lines of a growing archive: deliveries signed by key A, by key B, bare payloads, and one long delivery.
GROWING = [
    *(good(index) for index in range(8)),
    *(
        json.dumps({"headers": {"x-siqsignature": sign(body.encode(), "b")}, "body": body}).encode()
        for body in BODIES[8:]
    ),
    *(body.encode() for body in BODIES[4:7]),
    json.dumps({"headers": {"x-siqsignature": sign(LONG_BODY.encode())}, "body": LONG_BODY}).encode(),
]
STEP = st.one_of(
    st.tuples(st.just("grow"), st.integers(0, 1), st.floats(0, 1)),  # a file grows, maybe to mid-line
    st.tuples(st.just("complete"), st.integers(0, 1)),  # its torn tail completed
    st.tuples(st.just("compress"), st.integers(0, 1)),  # a closed plain day compressed, the plain file removed
    st.tuples(st.just("keys"), st.sampled_from(["", "a", "ab"])),  # a key added or dropped
    st.tuples(st.just("allow_unsigned"), st.booleans()),
    st.tuples(st.just("max_record_bytes"), st.sampled_from([2048, 8 << 20])),  # a limit raised or lowered
    st.tuples(st.just("task_bytes"), st.sampled_from([1500, 64 << 20])),  # plain files read in ranges, or whole
    st.tuples(st.just("run"), st.booleans()),  # a run, maybe interrupted before it commits
)
RUNS = st.tuples(
    st.lists(
        st.tuples(st.sampled_from([".jsonl", ".jsonl.gz"]), st.lists(st.sampled_from(GROWING), max_size=8)),
        min_size=2,
        max_size=2,
    ),
    st.lists(STEP, min_size=1, max_size=10),
)


@fuzz(6, RUNS)
def test_any_sequence_of_runs_ends_as_one_fresh_conversion(case: tuple[list[Any], list[tuple[Any, ...]]]) -> None:
    """Any runs over growing, torn, compressed files (read whole or in ranges) with changing keys and limits end as
    one fresh conversion."""
    files, steps = case
    contents = [b"".join(line + b"\n" for line in written) for _, written in files]
    suffixes = [suffix for suffix, _ in files]
    written = [0.0, 0.0]
    settings: dict[str, Any] = {"keys": "", "allow_unsigned": False, "max_record_bytes": 8 << 20, "task_bytes": 1500}
    with tempfile.TemporaryDirectory() as folder:
        archive, out = Path(folder) / "in", Path(folder) / "out"
        archive.mkdir()

        def write(index: int) -> None:
            data = pack(contents[index], suffixes[index], 3)
            (archive / f"day{index}{suffixes[index]}").write_bytes(data[: int(written[index] * len(data))])

        def options() -> dict[str, Any]:
            keys = {"": None, "a": KEY_A, "ab": [KEY_A, KEYS / "key_b_public.pem"]}[settings["keys"]]
            return {"keys": keys, "workers": 1, "tuning": Tuning(task_bytes=settings["task_bytes"])} | {
                name: settings[name] for name in ("allow_unsigned", "max_record_bytes")
            }

        for index in range(2):
            write(index)
        for step in [*steps, ("run", False)]:
            kind, *values = step
            if kind == "grow":
                written[values[0]] = max(written[values[0]], values[1])
                write(values[0])
            elif kind == "complete":
                written[values[0]] = 1.0
                write(values[0])
            elif kind == "compress" and suffixes[values[0]] == ".jsonl":
                written[values[0]] = 1.0
                write(values[0])
                suffixes[values[0]] = ".jsonl.gz"
                write(values[0])
                (archive / f"day{values[0]}.jsonl").unlink()
            elif kind == "run" and values[0]:  # interrupted at the merge, when it gets that far
                interrupt = mock.patch.object(merge, "build", side_effect=KeyboardInterrupt)
                with interrupt, contextlib.suppress(KeyboardInterrupt):
                    siq_schemas.convert(archive, out, **options())
            elif kind == "run":
                report = siq_schemas.convert(archive, out, **options())
                assert report.balanced and report.duplicates >= 0
            elif kind in settings:
                settings[kind] = values[0]
        siq_schemas.convert(archive, Path(folder) / "fresh", **options() | {"tuning": Tuning()})
        assert output_tables(out) == output_tables(Path(folder) / "fresh")


def output_tables(out: Path) -> dict[str, Any]:
    """Every table of an output, without the columns that name the files read."""
    tables = {name: pq.read_table(out / name) for name in siq_schemas.tables.TABLES}
    return {
        name: data.drop_columns([c for c in ("source",) if c in data.column_names]) for name, data in tables.items()
    }
