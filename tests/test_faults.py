"""Faults around a run: unreadable inputs, a source removed, an unwritable or full disk, Ctrl-C, a killed worker.

A run that cannot finish says why in one line, exits non-zero and leaves the
previous output exactly as it was; the next run completes normally.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import siq_schemas
from siq_schemas.cli import main
from siq_schemas.converter import merge, output, plan, write
from siq_schemas.converter.staging import Staging
from tests.archives import chat, envelope
from tests.conftest import write_lines
from tests.processes import snapshot

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def deny(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make files and folders unreadable: no permissions, and for root (who ignores them) opening refused."""
    denied = {str(path) for path in paths}
    for path in paths:
        os.chmod(path, 0)
    if os.geteuid() != 0:
        return

    def refuse(name: object) -> None:
        if isinstance(name, str | os.PathLike) and os.fspath(name) in denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(name))

    def guarded(real):
        def call(name, *args, **kwargs):
            refuse(name)
            return real(name, *args, **kwargs)

        return call

    monkeypatch.setattr(builtins, "open", guarded(builtins.open))
    monkeypatch.setattr(os, "open", guarded(os.open))
    monkeypatch.setattr(os, "scandir", guarded(os.scandir))
    monkeypatch.setattr(os, "listdir", guarded(os.listdir))


def allow(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Undo :func:`deny`."""
    monkeypatch.undo()
    for path in paths:
        os.chmod(path, 0o755)


def leftovers(out: Path) -> list[Path]:
    return list(out.parent.glob(f"{out.name}.siq-*"))


# ---------------------------------------------------------------------------- unreadable inputs


def test_unreadable_files_and_folders_are_rejects_and_read_once_readable(tmp_path, monkeypatch):
    """A file or folder that cannot be read is one `unreadable` reject; the next runs read it once it can be."""
    archive = tmp_path / "in"
    (archive / "sub").mkdir(parents=True)
    payloads = chat()
    write_lines(archive / "a.jsonl", payloads[:4])
    write_lines(archive / "b.jsonl", payloads[4:8])
    write_lines(archive / "sub" / "c.jsonl", payloads[8:])
    deny(monkeypatch, archive / "b.jsonl", archive / "sub")
    try:
        first = siq_schemas.convert(archive, tmp_path / "out")
        again = siq_schemas.convert(archive, tmp_path / "out")
    finally:
        allow(monkeypatch, archive / "b.jsonl", archive / "sub")
    assert (first.records_read, first.events_written, first.rejected_by_reason["unreadable"]) == (6, 4, 2)
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects").set_index("source")
    assert rejects.loc[str(archive / "b.jsonl"), "detail"] == "Permission denied"
    assert rejects.loc[str(archive / "sub"), "detail"] == "cannot list the folder (Permission denied)"
    assert (again.records_read, again.files_unchanged) == (0, 3), "still unreadable: nothing new"
    readable = siq_schemas.convert(archive, tmp_path / "out")
    assert (readable.records_read, readable.events_written, readable.rejected) == (7, 7, 0)
    assert len(siq_schemas.read_table(tmp_path / "out", "events")) == len(payloads)


def test_a_source_removed_mid_run_is_one_reject_and_read_when_back(tmp_path, monkeypatch):
    """A file that vanishes between planning and reading is an `unreadable` reject; it is read when it comes back."""
    archive = tmp_path / "in"
    archive.mkdir()
    write_lines(archive / "a.jsonl", chat()[:5])
    write_lines(archive / "b.jsonl", chat()[5:])
    plan_files = plan.plan_files

    def plan_then_remove(*args):
        planned = plan_files(*args)
        (archive / "b.jsonl").rename(tmp_path / "b.jsonl")
        return planned

    monkeypatch.setattr(plan, "plan_files", plan_then_remove)
    report = siq_schemas.convert(archive, tmp_path / "out")
    monkeypatch.undo()
    assert (report.records_read, report.events_written, report.rejected_by_reason["unreadable"]) == (6, 5, 1)
    (reject,) = siq_schemas.read_table(tmp_path / "out", "rejects").to_dict("records")
    assert (reject["source"], reject["line"], reject["detail"]) == (
        str(archive / "b.jsonl"),
        0,
        "No such file or directory",
    )
    (tmp_path / "b.jsonl").rename(archive / "b.jsonl")
    back = siq_schemas.convert(archive, tmp_path / "out")
    assert (back.records_read, back.events_written, back.files_unchanged) == (6, 6, 1)


# ---------------------------------------------------------------------------- the output


@pytest.fixture
def previous(tmp_path):
    """An output converted from one file, a second file to add, and the snapshot of the output."""
    archive = tmp_path / "in"
    archive.mkdir()
    write_lines(archive / "a.jsonl", chat()[:6])
    siq_schemas.convert(archive, tmp_path / "out")
    write_lines(archive / "b.jsonl", chat()[6:])
    return archive, tmp_path / "out", snapshot(tmp_path / "out")


def test_an_unwritable_output_folder_is_one_clean_line(previous, monkeypatch, capsys):
    """When the output's folder cannot be written, siq convert exits 2 with one line; the output is untouched."""
    archive, out, before = previous
    mkdir = os.mkdir

    def refuse(path, *args, **kwargs):
        if Path(path).parent == out.parent:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse)
    assert main(["convert", str(archive), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"siq: {out}: cannot write here (Permission denied)\n"
    assert snapshot(out) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_a_read_only_output_folder_is_one_clean_line(previous, capsys):
    """With the permissions of the output's parent folder taken away, siq convert exits 2 with one line."""
    archive, out, before = previous
    os.chmod(out.parent, 0o555)
    try:
        assert main(["convert", str(archive), "--out", str(out)]) == 2
    finally:
        os.chmod(out.parent, 0o755)
    assert capsys.readouterr().err == f"siq: {out}: cannot write here (Permission denied)\n"
    assert snapshot(out) == before


def full_disk(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Make the run fail with ENOSPC at one step: staging, DuckDB's merge, a table, the manifest, the commit."""

    def fail(*args, **kwargs):
        if where == "merge":
            raise duckdb.IOException(f'IO Error: Could not write file "merge.duckdb": {os.strerror(errno.ENOSPC)}')
        raise ENOSPC

    target = {
        "stage": (Staging, "write"),
        "merge": (merge.dedupe, "events_sql"),
        "table": (write, "write_table"),
        "manifest": (output, "write_manifest"),
        "commit": (output, "_fsync_tree"),
    }[where]
    monkeypatch.setattr(*target, fail)


@pytest.mark.parametrize("where", ["stage", "merge", "table", "manifest", "commit"])
def test_a_full_disk_leaves_the_previous_output(previous, monkeypatch, capsys, where):
    """A disk full at any step: exit 2 with one line, the previous output intact, no leftovers; then a rerun works."""
    archive, out, before = previous
    full_disk(monkeypatch, where)
    assert main(["convert", str(archive), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"siq: {out}: cannot write the new output (")
    assert "No space left on device" in line and line.endswith("; the previous output is unchanged")
    assert snapshot(out) == before and not leftovers(out)
    monkeypatch.undo()
    assert main(["convert", str(archive), "--out", str(out), "--quiet"]) == 0
    assert len(siq_schemas.read_table(out, "events")) == len(chat())


@pytest.mark.parametrize("kib", [16, 64])
def test_a_real_write_failure_is_one_clean_line(previous, kib):
    """A table over the process's file size limit (a real EFBIG from the OS): siq convert exits 2 with one line."""
    archive, out, before = previous
    write_lines(
        archive / "c.jsonl", [envelope("department.deleted", f"d{i}", 1_772_000_000_000 + i) for i in range(kib * 125)]
    )

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib << 10, kib << 10))

    command = [sys.executable, "-m", "siq_schemas", "convert", str(archive), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"siq: {out}: cannot write the new output (") and "File too large" in line
    assert snapshot(out) == before


# ---------------------------------------------------------------------------- interrupts and crashes


def test_an_interrupt_as_the_output_goes_in_place_is_too_late(previous, monkeypatch, capsys):
    """Ctrl-C while the new output replaces the previous one: the run finishes (exit 0), the new output in place."""
    archive, out, before = previous
    put_in_place = output.commit

    def commit(temp, folder):
        put_in_place(temp, folder)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the previous output is being removed

    monkeypatch.setattr(output, "commit", commit)
    assert main(["convert", str(archive), "--out", str(out), "--quiet"]) == 0
    assert len(siq_schemas.read_table(out, "events")) == len(chat())
    assert snapshot(out) != before and not leftovers(out)


def test_an_interrupt_in_the_merge_is_an_interrupt(previous, monkeypatch, capsys):
    """DuckDB's own Ctrl-C error becomes an interrupt: exit 130, `siq: interrupted`, the previous output intact."""
    archive, out, before = previous

    def interrupted(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while DuckDB runs a query ...
            time.sleep(5)
        except KeyboardInterrupt:
            raise RuntimeError("Query interrupted") from None  # ... which DuckDB reports as an error of its own

    monkeypatch.setattr(merge.dedupe, "events_sql", interrupted)
    assert main(["convert", str(archive), "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "siq: interrupted"
    assert snapshot(out) == before and not leftovers(out)


def test_an_interrupt_any_library_turns_into_its_own_error_is_an_interrupt(previous, monkeypatch, capsys):
    """Ctrl-C caught by a library (pyarrow importing zoneinfo) and raised as another error: still exit 130."""
    archive, out, before = previous

    def interrupted(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise pa.ArrowInvalid("The zoneinfo module or pytz package must be installed.") from None

    monkeypatch.setattr(merge.fold, "operators_sql", interrupted)
    assert main(["convert", str(archive), "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "siq: interrupted"
    assert snapshot(out) == before and not leftovers(out)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Two files of 15,000 events each (over the size that stages in worker processes), and an output of one."""
    folder = tmp_path_factory.mktemp("big")
    for part in range(2):
        events = [envelope("department.deleted", f"d{part}-{i}", 1_772_000_000_000 + i) for i in range(15_000)]
        write_lines(folder / f"{part}.jsonl", events)
    write_lines(folder / "first.jsonl", chat())
    return folder


def started(arguments: list[str]) -> subprocess.Popen:
    """`siq ARGUMENTS` in its own process group, as a terminal runs it."""
    command = [sys.executable, "-m", "siq_schemas", *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_ctrl_c_stops_cleanly_and_the_next_run_completes(big, tmp_path):
    """Ctrl-C (SIGINT to the process group) while staging or merging: exit 130, one line, the output as it was."""
    out = tmp_path / "out"
    siq_schemas.convert(big / "first.jsonl", out)
    before = snapshot(out)
    for delay in (0.0, 1.0):  # after the run's temporary folder appears: while it stages, or merges
        process = started(["convert", str(big), "--out", str(out), "--workers", "2"])
        deadline = time.monotonic() + 60
        while process.poll() is None and not leftovers(out) and time.monotonic() < deadline:
            time.sleep(0.01)  # an interpreter still starting up dies of SIGINT before any code of siq can run
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # finished already
            os.killpg(process.pid, signal.SIGINT)
        _, error = process.communicate(timeout=30)
        if process.returncode == 0:  # finished before the signal
            break
        assert process.returncode == 130, error
        assert error.strip().splitlines()[-1] == "siq: interrupted" and "Traceback" not in error
        assert snapshot(out) == before and not leftovers(out)
    report = siq_schemas.convert(big, out)
    assert report.balanced and len(siq_schemas.read_table(out, "events")) == 30_000 + len(chat())


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="needs /proc")
def test_a_killed_worker_is_one_clean_line(big, tmp_path):
    """A worker process killed (as by the out-of-memory killer): exit 2 with one line, the output as it was."""
    out = tmp_path / "out"
    siq_schemas.convert(big / "first.jsonl", out)
    before = snapshot(out)
    process = started(["convert", str(big / "0.jsonl"), str(big / "1.jsonl"), "--out", str(out), "--workers", "2"])
    deadline = time.monotonic() + 20
    while not (workers := children(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(workers[-1], signal.SIGKILL)
    _, error = process.communicate(timeout=30)
    assert process.returncode == 2, error
    assert error.strip() == "siq: a worker process died (killed, or out of memory?); the previous output is unchanged"
    assert snapshot(out) == before and not leftovers(out)
    shutil.rmtree(out)
