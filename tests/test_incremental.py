"""Incremental runs over an archive that a receiver keeps writing: growing files, torn tails,
compressed copies, settings that change, and accounting that can fail."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import siq_schemas
from siq_schemas import AccountingError
from siq_schemas.converter import merge
from siq_schemas.converter.staging import Staging
from siq_schemas.tables import TABLES
from tests.archives import tables_of
from tests.conftest import DEPARTMENT_DELETED, KEYS, delivery

KEY_A, KEY_B = KEYS / "key_a_public.pem", KEYS / "key_b_public.pem"


def lines(count: int, start: int = 0, key: str | None = "a") -> list[str]:
    """``count`` deliveries of distinct events signed by test ``key``, as JSON Lines lines (with newlines)."""
    payloads = [
        dict(DEPARTMENT_DELETED, entity_id=f"d{start + i}", event_time=str(1_772_000_000_000 + start + i))
        for i in range(count)
    ]
    return [json.dumps(delivery(payload, key=key)) + "\n" for payload in payloads]


def fresh(tmp_path: Path, sources: list[Path], **options) -> dict[str, pa.Table]:
    """The tables of one fresh conversion of ``sources`` with ``options``."""
    out = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    siq_schemas.convert(sources, out, **options)
    return tables_of(out)


def siq(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siq_schemas", *arguments], capture_output=True, text=True)


def pack(data: bytes, suffix: str, block: int = 16 << 10) -> bytes:
    """``data`` compressed as a streaming writer does: ``.gz`` or ``.zst``, flushed every ``block`` bytes."""
    if suffix == ".gz":
        gz = zlib.compressobj(wbits=31)
        flush, end = (lambda: gz.flush(zlib.Z_SYNC_FLUSH)), gz.flush
        compress = gz.compress
    else:
        zst = zstandard.ZstdCompressor().compressobj()
        flush, end = (lambda: zst.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)), zst.flush
        compress = zst.compress
    parts = [compress(data[start : start + block]) + flush() for start in range(0, len(data), block)]
    return b"".join(parts) + end()


# ---------------------------------------------------------------------------- growing files and torn tails


def test_a_line_still_being_written_is_left_for_the_next_run(tmp_path):
    """A half-written last line is neither read nor rejected, the summary says so; the next run reads it whole."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    written = lines(8)
    archive.write_text("".join(written[:5]) + written[5][:40])
    result = siq("convert", str(archive), "--out", str(out), "--keys", str(KEY_A))
    assert result.returncode == 0, result.stderr
    assert "1 unterminated line left for the next run" in result.stdout
    assert "records_read = events_written + duplicates + rejected: 5 = 5 + 0 + 0 ok" in result.stdout
    archive.write_text("".join(written))
    report = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (report.records_read, report.events_written, report.rejected, report.pending) == (3, 3, 0, 0)
    assert tables_of(out) == fresh(tmp_path, [archive], keys=KEY_A)


def test_an_unterminated_last_line_that_parses_is_a_record(tmp_path):
    """A finished file without a final newline: its last line is a record; lines appended later are read once."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    written = lines(6)
    archive.write_text("".join(written[:3]).rstrip("\n"))
    report = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (report.records_read, report.pending) == (3, 0)
    archive.write_text("".join(written))
    report = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (report.records_read, report.events_written, report.duplicates) == (3, 3, 0)
    assert set(siq_schemas.read_table(out, "events")["deliveries"]) == {1}


def test_a_torn_tail_cut_off_does_not_make_the_file_look_changed(tmp_path):
    """A receiver cutting a torn last line: the file is unchanged (nothing read, no rebuild), then resumed."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    written = lines(6)
    archive.write_text("".join(written[:4]) + '{"received_at": "2026-03-01T1')
    assert siq_schemas.convert(archive, out, keys=KEY_A).pending == 1
    archive.write_text("".join(written[:4]))
    again = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (again.files_unchanged, again.records_read, again.rebuilt, again.pending) == (1, 0, "", 0)
    archive.write_text("".join(written))
    grown = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (grown.records_read, grown.events_written, grown.rebuilt) == (2, 2, "")
    assert tables_of(out) == fresh(tmp_path, [archive], keys=KEY_A)


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_compressed_file_still_being_written_is_read_once_complete(tmp_path, suffix):
    """A .gz/.zst cut before its end marker gives its whole lines; complete later, only the rest is read."""
    archive, out = tmp_path / f"a.jsonl{suffix}", tmp_path / "out"
    data = "".join(lines(400)).encode()
    packed = pack(data, suffix)
    archive.write_bytes(packed[: len(packed) // 2])
    first = siq_schemas.convert(archive, out, keys=KEY_A)
    assert first.rejected == 0 and first.pending == 1 and 0 < first.records_read < 400
    archive.write_bytes(packed)
    second = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (second.records_read, second.duplicates, second.rejected, second.rebuilt) == (
        400 - first.records_read,
        0,
        0,
        "",
    )
    assert set(siq_schemas.read_table(out, "events")["deliveries"]) == {1}
    assert tables_of(out) == fresh(tmp_path, [archive], keys=KEY_A)


# ---------------------------------------------------------------------------- compressed copies


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("partly", [False, True], ids=["whole", "partly-read"])
@pytest.mark.parametrize("both", [False, True], ids=["plain-removed", "both-present"])
def test_the_compressed_copy_of_a_day_read_before_is_not_read_again(tmp_path, suffix, partly, both):
    """convert -> compress the day -> convert: only what was not read before is read, also with both files there."""
    folder, out = tmp_path / "archive", tmp_path / "out"
    folder.mkdir()
    day = folder / "siq-deliveries-2026-03-01-0.jsonl"
    written = lines(10)
    day.write_text("".join(written[:6] if partly else written) + (written[6][:30] if partly else ""))
    first = siq_schemas.convert(folder, out, keys=KEY_A)
    day.write_text("".join(written))  # the day is closed ...
    (folder / f"{day.name}{suffix}").write_bytes(pack(day.read_bytes(), suffix))  # ... and compressed
    if not both:
        day.unlink()
    second = siq_schemas.convert(folder, out, keys=KEY_A)
    assert (first.records_read, second.records_read) == ((6, 4) if partly else (10, 0))
    assert second.rebuilt == "" and second.duplicates == 0
    events = siq_schemas.read_table(out, "events")
    assert len(events) == 10 and set(events["deliveries"]) == {1}
    third = siq_schemas.convert(folder, out, keys=KEY_A)  # the plain file removed at last, or not
    day.unlink(missing_ok=True)
    fourth = siq_schemas.convert(folder, out, keys=KEY_A)
    assert third.records_read == fourth.records_read == 0 and not fourth.rebuilt
    assert tables_of(out) == fresh(tmp_path, [folder], keys=KEY_A)


def test_a_fresh_run_reads_a_day_and_its_compressed_copy_once(tmp_path):
    """With a plain day and its compressed copy both in the archive, a fresh conversion reads the day once."""
    folder = tmp_path / "archive"
    folder.mkdir()
    day = folder / "siq-deliveries-2026-03-01-0.jsonl"
    day.write_text("".join(lines(7)))
    (folder / f"{day.name}.gz").write_bytes(gzip.compress(day.read_bytes()))
    report = siq_schemas.convert(folder, tmp_path / "out", keys=KEY_A)
    assert (report.files, report.files_unchanged, report.records_read, report.duplicates) == (2, 1, 7, 0)


# ---------------------------------------------------------------------------- settings that change the rows


def archive_of_two_keys(tmp_path: Path) -> Path:
    """A file of deliveries signed by key A, by key B, unsigned, bare, one long and one deeply nested."""
    path = tmp_path / "a.jsonl"
    bare = json.dumps(dict(DEPARTMENT_DELETED, entity_id="bare")) + "\n"
    long = json.dumps(delivery(dict(DEPARTMENT_DELETED, entity_id="long", note="x" * 3000))) + "\n"
    deep = json.dumps(delivery(dict(DEPARTMENT_DELETED, entity_id="deep", extra=[[[[[[1]]]]]]))) + "\n"
    path.write_text("".join([*lines(3), *lines(2, 10, key="b"), *lines(1, 20, key=None), bare, long, deep]))
    return path


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"keys": KEY_A}, {"keys": [KEY_A, KEY_B]}),  # the rotated key added
        ({"keys": [KEY_A, KEY_B]}, {"keys": KEY_A}),  # a key dropped
        ({}, {"keys": KEY_A}),  # keys given to an output built without them
        ({"keys": KEY_A}, {}),  # keys dropped: unverified rows, as a fresh run
        ({"keys": KEY_A}, {"keys": KEY_A, "allow_unsigned": True}),
        ({"max_record_bytes": 2048}, {"max_record_bytes": 8192}),
        ({"max_depth": 4}, {"max_depth": 64}),
        ({"max_ratio": 50}, {"max_ratio": 1000}),
    ],
    ids=[
        "key-added",
        "key-dropped",
        "keys-given",
        "keys-dropped",
        "allow-unsigned",
        "max-record-bytes",
        "max-depth",
        "max-ratio",
    ],
)
def test_other_settings_rebuild_the_output_as_a_fresh_run_would(tmp_path, before, after):
    """A run whose keys, signature policy or limits differ from the output's rebuilds it: a fresh run's tables."""
    archive, out = archive_of_two_keys(tmp_path), tmp_path / "out"
    siq_schemas.convert(archive, out, **before)
    report = siq_schemas.convert(archive, out, **after)
    assert report.rebuilt.startswith("settings changed (") and report.balanced
    assert report.records_read == 9 and report.events_written + report.duplicates + report.rejected == 9
    assert tables_of(out) == fresh(tmp_path, [archive], **after)
    assert siq_schemas.convert(archive, out, **after).records_read == 0  # then runs are incremental again


def test_the_command_says_it_rebuilds_and_rebuild_forces_it(tmp_path):
    """`siq convert` with another key says why it rebuilds on stderr; `--rebuild` rebuilds unasked-for settings too."""
    archive, out = archive_of_two_keys(tmp_path), str(tmp_path / "out")
    assert siq("convert", str(archive), "--out", out, "--keys", str(KEY_A)).returncode == 0
    added = siq("convert", str(archive), "--out", out, "--keys", str(KEY_A), "--keys", str(KEY_B), "--json")
    assert added.returncode == 0, added.stderr
    assert "settings changed (keys): rebuilding from the sources" in added.stderr
    assert json.loads(added.stdout)["rejected_by_reason"]["signature-invalid"] == 0
    forced = siq("convert", str(archive), "--out", out, "--keys", str(KEY_A), "--keys", str(KEY_B), "--rebuild")
    assert forced.returncode == 0 and "rebuild asked for: rebuilding from the sources" in forced.stderr
    assert "records_read = events_written + duplicates + rejected: 9 = " in forced.stdout
    idle = siq("convert", str(archive), "--out", out, "--keys", str(KEY_A), "--keys", str(KEY_B))
    assert "rebuilding" not in idle.stderr and "0 records" in idle.stdout


def test_a_rebuild_reads_the_known_inputs_and_names_those_gone(tmp_path, caplog):
    """A rebuild reads this run's files and the known ones still there; a known file gone is warned about."""
    first, second, out = tmp_path / "1.jsonl", tmp_path / "2.jsonl", tmp_path / "out"
    first.write_text("".join(lines(3, key="b")))
    second.write_text("".join(lines(3, 10)))
    siq_schemas.convert(first, out, keys=KEY_A)
    siq_schemas.convert(second, out, keys=KEY_A)
    report = siq_schemas.convert(second, out, keys=[KEY_A, KEY_B])
    assert (report.files, report.records_read, report.events_written, report.gone) == (2, 6, 6, [])
    assert tables_of(out) == fresh(tmp_path, [first, second], keys=[KEY_A, KEY_B])
    first.unlink()
    with caplog.at_level(logging.WARNING, logger="siq_schemas"):
        gone = siq_schemas.convert(second, out, keys=KEY_A, rebuild=True)
    assert gone.gone == [str(first)] and f"{first}: gone" in caplog.text
    assert tables_of(out) == fresh(tmp_path, [second], keys=KEY_A)


def test_a_file_changed_other_than_by_growing_is_rebuilt(tmp_path):
    """A file whose lines were replaced, not appended to: the output is rebuilt, its old rows gone, nothing twice."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    archive.write_text("".join(lines(5)))
    siq_schemas.convert(archive, out, keys=KEY_A)
    archive.write_text("".join(lines(4, 100) + lines(3)))
    report = siq_schemas.convert(archive, out, keys=KEY_A)
    assert report.rebuilt == f"{archive}: changed other than by growing"
    assert (report.records_read, report.events_written) == (7, 7)
    assert tables_of(out) == fresh(tmp_path, [archive], keys=KEY_A)


def drop_a_column(out: Path) -> None:
    """Rewrite the output's events table without its `extra` column (an output of an older version)."""
    for path in (out / "events").glob("*.parquet"):
        data = pq.read_table(path)
        pq.write_table(data.drop_columns(["extra"]), path)


def call_it_format_1(out: Path) -> None:
    """Make the output's manifest one of the first format (no settings recorded)."""
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["format"] = 1
    del manifest["settings"]
    (out / "_manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("age", [call_it_format_1, drop_a_column], ids=["format-1", "missing-column"])
def test_an_output_of_an_older_format_is_rebuilt_not_a_crash(tmp_path, age):
    """An output whose manifest says an older format, or whose table lacks a column: rebuilt, exit 0, no traceback."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    archive.write_text("".join(lines(3)))
    siq_schemas.convert(archive, out, keys=KEY_A)
    with archive.open("a") as handle:
        handle.writelines(lines(2, 10))
    age(out)
    result = siq("convert", str(archive), "--out", str(out), "--keys", str(KEY_A))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "rebuilding from the sources" in result.stderr
    assert tables_of(out) == fresh(tmp_path, [archive], keys=KEY_A)


# ---------------------------------------------------------------------------- accounting that can fail


@pytest.mark.parametrize("staged", ["events", "_deliveries", "rejects"])
def test_staged_rows_that_go_missing_fail_the_run(tmp_path, monkeypatch, staged):
    """A staged Parquet file removed before the merge: AccountingError, and the previous output stays as it was."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    archive.write_text("".join(lines(3)))
    siq_schemas.convert(archive, out, keys=KEY_A)
    before = tables_of(out)
    with archive.open("a") as handle:
        handle.writelines([*lines(4, 10), *lines(2), "{broken\n"])
    build = merge.build

    def losing(staging: Staging, *arguments):
        files = sorted((staging.folder / staged).rglob("*.parquet"))
        files[0].unlink()
        return build(staging, *arguments)

    monkeypatch.setattr(merge, "build", losing)
    with pytest.raises(AccountingError, match="rows went missing"):
        siq_schemas.convert(archive, out, keys=KEY_A)
    assert tables_of(out) == before


def test_duplicates_are_counted_by_the_merge(tmp_path):
    """Retries within a run and of events already in the output are duplicates; the identity holds."""
    archive, out = tmp_path / "a.jsonl", tmp_path / "out"
    archive.write_text("".join(lines(3) + lines(1)))
    first = siq_schemas.convert(archive, out, keys=KEY_A)
    with archive.open("a") as handle:
        handle.writelines(lines(2) + lines(1, 50))
    second = siq_schemas.convert(archive, out, keys=KEY_A)
    assert (first.events_written, first.duplicates, second.events_written, second.duplicates) == (3, 1, 1, 2)


def test_an_object_store_archive_grows_and_rebuilds_like_a_folder(tmp_path):
    """memory:// sources and output: a torn tail waits, a grown file resumes, another key rebuilds; as a fresh run."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    source, out = f"memory://{tmp_path.name}/archive/a.jsonl", f"memory://{tmp_path.name}/out"
    written = "".join(lines(4) + lines(3, 10, key="b"))
    fs.pipe_file(source, written[: len(written) - 50].encode())
    first = siq_schemas.convert(source, out, keys=KEY_A)
    assert (first.records_read, first.pending) == (6, 1)
    fs.pipe_file(source, written.encode())
    grown = siq_schemas.convert(source, out, keys=KEY_A)
    assert (grown.records_read, grown.rejected, grown.rebuilt) == (1, 1, "")
    rebuilt = siq_schemas.convert(source, out, keys=[KEY_A, KEY_B])
    assert rebuilt.rebuilt == "settings changed (keys)" and (rebuilt.records_read, rebuilt.rejected) == (7, 0)
    local = tmp_path / "a.jsonl"
    local.write_text(written)
    expected = fresh(tmp_path, [local], keys=[KEY_A, KEY_B])
    for name, table in expected.items():
        files = [fs._strip_protocol(file) for file in siq_schemas.table_files(out, name)]
        remote = pq.read_table(files, filesystem=fs, schema=TABLES[name].schema)
        assert remote.drop_columns([c for c in ("source",) if c in remote.column_names]) == table, name


def test_a_file_whose_size_mtime_and_inode_are_as_recorded_is_not_read_again(tmp_path):
    """As git does, a file with the size, mtime and inode of the last run is trusted unread; another mtime is hashed."""
    path = tmp_path / "a.jsonl"
    path.write_text("".join(lines(3)))
    hour_ago = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))  # written long before the run: its mtime can be trusted
    assert siq_schemas.convert(path, tmp_path / "out", keys=KEY_A).events_written == 3
    with path.open("r+b") as file:  # the same size, the same inode, and the mtime put back: trusted, not read
        file.write(b" ")
    os.utime(path, ns=(hour_ago, hour_ago))
    again = siq_schemas.convert(path, tmp_path / "out", keys=KEY_A)
    assert (again.files_unchanged, again.records_read) == (1, 0)
    os.utime(path, ns=(hour_ago + 10**9, hour_ago + 10**9))  # another mtime: hashed, and the change seen
    assert siq_schemas.convert(path, tmp_path / "out", keys=KEY_A).rebuilt


def test_a_file_written_just_before_a_run_is_hashed_again_next_run(tmp_path):
    """A file modified within the clock's tick of a run is not trusted by its mtime: a same-size rewrite is seen."""
    path = tmp_path / "a.jsonl"
    path.write_text("".join(lines(3)))
    written = path.stat().st_mtime_ns
    siq_schemas.convert(path, tmp_path / "out", keys=KEY_A)
    path.write_text("".join(lines(3, start=3)))  # other events, the same length
    os.utime(path, ns=(written, written))
    again = siq_schemas.convert(path, tmp_path / "out", keys=KEY_A)
    assert again.rebuilt and again.events_written == 3
