"""Faults around a run: unreadable inputs, a source removed."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import pytest

import siq_schemas
from siq_schemas import pipeline
from tests.conftest import write_lines
from tests.test_convert import chat


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
    monkeypatch.setattr(os, "scandir", guarded(os.scandir))
    monkeypatch.setattr(os, "listdir", guarded(os.listdir))


def allow(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Undo :func:`deny`."""
    monkeypatch.undo()
    for path in paths:
        os.chmod(path, 0o755)


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
    plan = pipeline._plan

    def plan_then_remove(*args):
        planned = plan(*args)
        (archive / "b.jsonl").rename(tmp_path / "b.jsonl")
        return planned

    monkeypatch.setattr(pipeline, "_plan", plan_then_remove)
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
