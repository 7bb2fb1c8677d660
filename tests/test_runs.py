"""Runs as processes: the siq convert command, and a run killed part-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

import siq_schemas
from siq_schemas.tables import TABLES
from tests.archives import chat, envelope
from tests.conftest import KEYS, delivery, write_lines
from tests.processes import snapshot


def siq(*arguments: str, **options) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "siq_schemas", *arguments]
    return subprocess.run(command, capture_output=True, text=True, **options)


def test_convert_command_prints_the_summary_and_writes_tables(tmp_path):
    """`siq convert` with keys prints the accounting identity and the table counts; exit 0 with rejects."""
    write_lines(tmp_path / "a.jsonl", [delivery(p) for p in chat()] + ["{broken"])
    result = siq(
        "convert", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "out"), "--keys", str(KEYS / "key_a_public.pem")
    )
    assert result.returncode == 0, result.stderr
    assert "records_read = events_written + duplicates + rejected: 12 = 11 + 0 + 1 ok" in result.stdout
    assert "rejected                 1  (unreadable 1)" in result.stdout
    assert "Traceback" not in result.stderr
    assert len(siq_schemas.read_table(tmp_path / "out", "conversations")) == 3


def test_convert_command_json_summary(tmp_path):
    """`siq convert --json` prints the report as JSON."""
    write_lines(tmp_path / "a.jsonl", chat())
    result = siq("convert", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "out"), "--json")
    report = json.loads(result.stdout)
    assert report["events_written"] == 11 and report["tables"]["messages"] == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.jsonl", "--out", "OUT"], "missing.jsonl: no such file or directory"),
        (["a.jsonl", "--out", "OUT", "--keys", str(KEYS / "key_a_private.pem")], "PRIVATE key"),
        (["a.jsonl", "--out", "a.jsonl"], "'a.jsonl' is a file"),
    ],
)
def test_convert_command_usage_errors_are_one_clean_line(tmp_path, arguments, message):
    """Missing sources, private keys and unusable output folders exit 2 with a message and no traceback."""
    write_lines(tmp_path / "a.jsonl", chat()[:1])
    result = siq("convert", *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


def test_a_killed_run_leaves_the_previous_output_intact(tmp_path):
    """kill -9 at several points of a run leaves the previous output, or the finished new one; a rerun completes."""
    first = tmp_path / "first.jsonl"
    write_lines(first, chat())
    siq_schemas.convert(first, tmp_path / "out")
    before = snapshot(tmp_path / "out")
    big = tmp_path / "big.jsonl"
    write_lines(big, [envelope("department.deleted", f"d{i}", 1_772_000_000_000 + i) for i in range(30_000)])
    command = [sys.executable, "-m", "siq_schemas", "convert", str(first), str(big), "--out", str(tmp_path / "out")]
    for delay in (0.5, 1.0, 1.5, 2.0, 3.0):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        for name in TABLES:
            pq.read_table(tmp_path / "out" / name)
        if snapshot(tmp_path / "out") != before:  # the run committed before the kill: all of it is there
            assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["tables"]["events"] == 30_011
            break
    report = siq_schemas.convert([first, big], tmp_path / "out")
    assert report.events_written + report.duplicates == 30_000 or report.records_read == 0
    assert siq_schemas.read_table(tmp_path / "out", "events").shape[0] == 30_011
    assert not list(tmp_path.glob("out.siq-*")), "leftovers of the killed runs are removed"
