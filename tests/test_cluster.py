"""The Dask engine: files staged as tasks on a cluster give the tables of the local engine."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import siq_schemas
from siq_schemas.converter import Tuning, plan
from siq_schemas.read import expand
from tests.archives import chat, envelope, output_of, planned, tables_of
from tests.conftest import KEYS, delivery, write_lines

distributed = pytest.importorskip("distributed")

KEY_A = KEYS / "key_a_public.pem"


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of two single-threaded worker processes, for the module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as running:
        yield running.scheduler_address


def split_archive(folder):
    """Four files whose duplicates (a retry, a copy to a second webhook, a repeat) sit in other files than the first."""
    folder.mkdir()
    payloads = chat()
    retry = {**payloads[2], "attempt": 2}
    other_webhook = {**payloads[4], "webhook": {"id": "w2"}}
    extra = [delivery(envelope("department.deleted", f"d{i}", 1_772_000_000_000 + i)) for i in range(40)]
    files = [
        [delivery(p) for p in payloads[0::4]] + [delivery(retry), *extra[:20]],
        [delivery(p) for p in payloads[1::4]] + [delivery(payloads[0]), delivery(other_webhook)],
        [delivery(p) for p in payloads[2::4]] + [*extra, "{broken"],
        [delivery(p) for p in payloads[3::4]] + [delivery(payloads[8], key="b"), delivery(payloads[5])],
    ]
    for index, records in enumerate(files):
        write_lines(folder / f"part-{index}.jsonl", records)
    return folder


def same(report, other):
    """Two reports say the same, but for where and how long."""
    return report.to_dict() | {"out": "", "seconds": 0} == other.to_dict() | {"out": "", "seconds": 0}


def test_dask_engine_gives_the_tables_of_the_local_engine(tmp_path, cluster):
    """Files staged by two Dask workers give the local engine's tables; duplicates across files are all found."""
    archive = split_archive(tmp_path / "archive")
    local = siq_schemas.convert(archive, tmp_path / "local", keys=KEY_A, workers=1)
    dask = siq_schemas.convert(archive, tmp_path / "dask", keys=KEY_A, engine="dask", scheduler=cluster)
    assert local.duplicates == 24 and local.rejected == 2 and local.balanced
    assert same(local, dask)
    assert tables_of(tmp_path / "local") == tables_of(tmp_path / "dask")
    events = siq_schemas.read_table(tmp_path / "dask", "events").set_index("entity_id")
    assert events.loc["d0", "deliveries"] == 2  # delivered in part-0 and part-2, staged by either worker


def test_dask_engine_runs_incrementally_like_the_local_engine(tmp_path, cluster):
    """A re-run on the cluster adds nothing; a new file adds only its events; the result equals a fresh run."""
    archive = split_archive(tmp_path / "archive")
    out = tmp_path / "out"
    siq_schemas.convert(archive, out, keys=KEY_A, engine="dask", scheduler=cluster)
    again = siq_schemas.convert(archive, out, keys=KEY_A, engine="dask", scheduler=cluster)
    assert (again.records_read, again.events_written, again.files_unchanged) == (0, 0, 4)
    write_lines(archive / "part-4.jsonl", [delivery(envelope("department.deleted", "d99", 1_772_000_100_000))])
    grown = siq_schemas.convert(archive, out, keys=KEY_A, engine="dask", scheduler=cluster)
    assert (grown.records_read, grown.events_written) == (1, 1)
    siq_schemas.convert(archive, tmp_path / "fresh", keys=KEY_A)
    assert tables_of(out) == tables_of(tmp_path / "fresh")


def test_dask_engine_reads_a_file_in_ranges_and_small_files_in_shared_tasks(tmp_path, cluster):
    """Dask tasks that read ranges of a large file, and several small files each: the local engine's output."""
    archive = split_archive(tmp_path / "archive")
    events = [envelope("department.deleted", f"large-{i}", 1_772_000_000_000 + i) for i in range(100)]
    write_lines(archive / "large.jsonl", [delivery(e) for e in events[:60]] + ["{broken", delivery(chat()[3])])
    for number in range(6):  # a receiver's file per delivery, the last a retry of one in the large file
        write_lines(archive / f"small-{number}.jsonl", [delivery(events[60 + number] if number < 5 else events[7])])
    tuning = Tuning(task_bytes=8 << 10)
    sources = expand([archive])
    tasks = planned(sources, 2, tuning, tmp_path)
    large = sources.index(archive / "large.jsonl")
    assert sum(part[0] == large for task in tasks for part in task) > 3  # in ranges
    assert max(len(task) for task in tasks) >= 6  # the small files share a task
    local = siq_schemas.convert(archive, tmp_path / "local", keys=KEY_A, workers=1)
    dask = siq_schemas.convert(archive, tmp_path / "dask", keys=KEY_A, engine="dask", scheduler=cluster, tuning=tuning)
    assert same(local, dask) and dask.duplicates == local.duplicates == 26
    assert output_of(tmp_path / "dask") == output_of(tmp_path / "local")


def test_a_file_gone_before_its_task_runs_is_one_reject_and_read_when_back(tmp_path, cluster, monkeypatch):
    """A file removed between planning and its Dask task is one `unreadable` reject, read by the next run that can."""
    archive = split_archive(tmp_path / "archive")
    siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A, engine="dask", scheduler=cluster)
    before = tables_of(tmp_path / "out")
    record = delivery(chat()[0], received_at="2026-03-01T12:00:00Z")
    gone = write_lines(archive / "part-5.jsonl", [record])
    fingerprint = plan.fingerprint

    def fingerprint_then_remove(path, *scan):
        found = fingerprint(path, *scan)
        if str(path) == str(gone):
            gone.unlink()  # gone between planning and staging: the worker cannot open it
        return found

    monkeypatch.setattr(plan, "fingerprint", fingerprint_then_remove)
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A, engine="dask", scheduler=cluster)
    assert (report.records_read, report.rejected_by_reason["unreadable"], report.events_written) == (1, 1, 0)
    assert tables_of(tmp_path / "out")["events"] == before["events"]
    monkeypatch.undo()
    write_lines(gone, [record])
    back = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A, engine="dask", scheduler=cluster)
    assert (back.records_read, back.duplicates, back.rejected) == (1, 1, 0)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    """A scheduler that does not answer within Dask's connect timeout raises ClusterError naming its address."""
    import dask

    write_lines(tmp_path / "a.jsonl", chat()[:1])
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(siq_schemas.ClusterError, match=r"tcp://127\.0\.0\.1:9"),
    ):
        siq_schemas.convert(tmp_path / "a.jsonl", tmp_path / "out", engine="dask", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_engine_and_scheduler_are_checked(tmp_path):
    """An unknown engine, or a scheduler without the dask engine, is refused before anything is read."""
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        siq_schemas.convert(tmp_path, tmp_path / "out", engine="spark")
    with pytest.raises(ValueError, match="engine='dask'"):
        siq_schemas.convert(tmp_path, tmp_path / "out", scheduler="tcp://127.0.0.1:8786")


def test_convert_command_with_the_dask_engine_on_its_own_local_cluster(tmp_path):
    """`siq convert --engine dask --workers 2` starts a local cluster and prints the local engine's summary."""
    archive = split_archive(tmp_path / "archive")
    command = [sys.executable, "-m", "siq_schemas", "convert", str(archive), "--keys", str(KEY_A), "--json"]
    dask = subprocess.run([*command, "--out", str(tmp_path / "dask"), "--engine", "dask", "-j", "2"],
                          capture_output=True, text=True)  # fmt: skip
    assert dask.returncode == 0, dask.stderr
    local = siq_schemas.convert(archive, tmp_path / "local", keys=KEY_A)
    assert dask.stdout.count('"events_written": ') == 1 and f'"events_written": {local.events_written},' in dask.stdout
    assert tables_of(tmp_path / "local") == tables_of(tmp_path / "dask")


def test_convert_command_documents_and_checks_the_engine_options():
    """`siq convert --help` explains --engine and --scheduler; --scheduler without --engine dask exits 2."""
    from siq_schemas.cli import main

    result = subprocess.run([sys.executable, "-m", "siq_schemas", "convert", "--help"], capture_output=True, text=True)
    assert "--engine [local|dask]" in result.stdout and "--scheduler ADDRESS" in result.stdout
    assert main(["convert", "x.jsonl", "--out", "o", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
