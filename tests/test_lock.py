"""One writer per output: a second run exits 2 naming the first or waits for it; a killed run's lock is taken over.

Also what a run may touch beside its output: only its own leftovers, whatever
the output's name holds (`o*`, `out[1]`), and a symlinked --out writes where
the link points.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import siq_schemas
from tests.conftest import DEPARTMENT_DELETED, write_lines
from tests.processes import big_archive, leftovers, lock_holder, siq, snapshot, until


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """An archive of two files of 20,000 events (a run of a few seconds), and its event count."""
    folder = tmp_path_factory.mktemp("lock") / "in"
    return folder, big_archive(folder, files=2, events=20_000)


def holding(archive: Path, out: Path, *arguments: str) -> subprocess.Popen:
    """A `siq convert` run into ``out``, once it holds the output's lock."""
    process = siq("convert", str(archive), "--out", str(out), "--workers", "2", "--quiet", *arguments)
    until(lambda: lock_holder(out) == process.pid or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    return process


def event_keys(out: Path) -> list[str]:
    return sorted(siq_schemas.read_table(out, "events")["event_key"])


def test_a_second_run_exits_2_at_once_naming_the_holder(archive, tmp_path):
    """A run into an output that another run is writing exits 2 with one line naming it (pid, host, start)."""
    folder, total = archive
    out = tmp_path / "out"
    first = holding(folder, out)
    command = [sys.executable, "-m", "siq_schemas", "convert", str(folder), "--out", str(out)]
    second = subprocess.run(command, capture_output=True, text=True)
    with pytest.raises(siq_schemas.LockError, match=f"pid {first.pid} on") as raised:
        siq_schemas.convert(folder, out)
    assert first.poll() is None, "the first run still runs: the runs overlapped"
    assert second.returncode == 2, second.stderr
    (line,) = second.stderr.splitlines()
    holder = f"pid {first.pid} on {socket.gethostname()}, started "
    assert line.startswith(f"siq: {out}: another run is writing this output ({holder}")
    assert line.endswith("); wait for it, or run with --wait") and raised.value.code == "locked"
    assert first.wait(timeout=120) == 0, first.communicate()
    assert len(event_keys(out)) == total and not leftovers(out)


def test_wait_waits_and_both_runs_end_with_the_output_of_a_fresh_conversion(archive, tmp_path):
    """`--wait` says it waits for the holder, runs after it, and the output is that of one fresh conversion."""
    folder, total = archive
    out = tmp_path / "out"
    first = holding(folder, out)
    second = siq("convert", str(folder), "--out", str(out), "--wait", "--json")
    waiting = second.stderr.readline()
    assert waiting.startswith(f"siq convert: waiting for the run writing {out} (pid {first.pid} on "), waiting
    assert first.wait(timeout=120) == 0, first.communicate()
    output, error = second.communicate(timeout=120)
    assert second.returncode == 0, error
    report = json.loads(output)
    assert (report["files_unchanged"], report["records_read"]) == (2, 0), "it planned after the first run's commit"
    siq_schemas.convert(folder, tmp_path / "fresh")
    assert event_keys(out) == event_keys(tmp_path / "fresh") and len(event_keys(out)) == total
    assert not leftovers(out)


def test_the_lock_of_a_killed_run_is_taken_over(archive, tmp_path):
    """After kill -9 of a run its lock file still names it; the next run takes the lock, names itself, completes."""
    folder, total = archive
    out = tmp_path / "out"
    first = holding(folder, out)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert lock_holder(out) == first.pid
    second = siq("convert", str(folder), "--out", str(out), "--quiet")
    seen = until(lambda: {lock_holder(out)} & {second.pid} or second.poll() is not None)
    _, error = second.communicate(timeout=120)
    assert second.returncode == 0 and error == "", error
    assert seen == {second.pid}, "while it ran, the lock file named the second run"
    assert len(event_keys(out)) == total and not leftovers(out)


def small_archive(folder: Path, part: int) -> Path:
    """A file of 20 events, distinct for each ``part``."""
    folder.mkdir(exist_ok=True)
    payloads = [dict(DEPARTMENT_DELETED, entity_id=f"p{part}-{i}") for i in range(20)]
    return write_lines(folder / f"{part}.jsonl", payloads)


def siblings(parent: Path) -> dict[str, str]:
    """Leftovers of other outputs whose names a glob of `o*`, `out[1]` or `o?` matches, and another output."""
    for sibling in ("oA", "out1", "oB", "o1"):
        for leftover in (f"{sibling}.siq-tmp-1-0123abcd", f"{sibling}.siq-old-1"):
            (parent / leftover).mkdir(parents=True)
            (parent / leftover / "kept").write_text(sibling)
    (parent / "oA").mkdir()
    (parent / "oA" / "_manifest.json").write_text("{}")
    return snapshot(parent)


@pytest.mark.parametrize("name", ["o*", "out[1]"])
def test_an_output_named_like_a_glob_touches_only_its_own_leftovers(tmp_path, name):
    """An output named `o*` or `out[1]` is written and updated; its siblings' leftovers stay untouched."""
    parent = tmp_path / "outputs"
    before = siblings(parent)
    own = parent / f"{name}.siq-tmp-9-0123abcd"
    own.mkdir()
    out = parent / name
    first = siq_schemas.convert(small_archive(tmp_path / "in", 0), out)
    second = siq_schemas.convert([tmp_path / "in" / "0.jsonl", small_archive(tmp_path / "in", 1)], out)
    assert (first.events_written, second.events_written, second.files_unchanged) == (20, 20, 1)
    assert len(siq_schemas.read_table(out, "events")) == 40
    assert not own.exists(), "the output's own leftover is removed"
    assert {path: digest for path, digest in snapshot(parent).items() if not path.startswith(name)} == before


def test_an_output_path_holding_a_question_mark_is_refused_in_one_line(tmp_path):
    """`o?` is refused (DuckDB reads a `?` in a path as options) with one line; the siblings stay untouched."""
    parent = tmp_path / "outputs"
    before = siblings(parent)
    command = [sys.executable, "-m", "siq_schemas", "convert", str(small_archive(tmp_path / "in", 0))]
    result = subprocess.run([*command, "--out", str(parent / "o?")], capture_output=True, text=True)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"siq: {parent / 'o?'}: the merge (DuckDB) cannot work in a path holding `?`; choose another --out\n"
    )
    assert snapshot(parent) == before and not (parent / "o?").exists()


def test_out_a_symlink_writes_where_it_points(tmp_path):
    """--out a link to a folder: the link stays a link, the output is in its target, nothing is left beside either."""
    target = tmp_path / "data" / "tables"
    target.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(target)
    siq_schemas.convert(small_archive(tmp_path / "in", 0), link)
    report = siq_schemas.convert(tmp_path / "in", link)
    assert report.files_unchanged == 1 and report.events_written == 0
    siq_schemas.convert([small_archive(tmp_path / "in", 1)], link)
    assert link.is_symlink() and link.resolve() == target
    assert len(siq_schemas.read_table(target, "events")) == 40
    assert not leftovers(link) and not leftovers(target)
