"""Signals to a running `siq convert`: SIGTERM and SIGHUP stop it as Ctrl-C does, and no process outlives it.

Each run is a real process with real worker processes, stopped by a real
signal; what is checked is what a user (or systemd, docker, `timeout`) sees:
the exit code, one line, no process left, no leftovers, the previous output.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import siq_schemas
from siq_schemas import storage
from tests.processes import (
    HAS_PROC,
    alive,
    big_archive,
    descendants,
    kill_alive,
    leftovers,
    siq,
    siq_ready,
    snapshot,
    until,
)

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="needs /proc to see the worker processes")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two files of 15,000 events (staged by worker processes), and a small file for a previous output."""
    folder = tmp_path_factory.mktemp("signals")
    big_archive(folder / "big")
    big_archive(folder / "small", files=1, events=10)
    return folder


@pytest.fixture
def previous(archive, tmp_path):
    """An output of the small file, and its snapshot."""
    out = tmp_path / "out"
    siq_schemas.convert(archive / "small", out)
    return out, snapshot(out)


def staging(
    archive, out, *arguments: str, processes: int = 2, nohup: bool = False
) -> tuple[subprocess.Popen, list[int]]:
    """A run of the big archive into ``out`` once it has started ``processes`` processes, and those processes."""
    process = siq("convert", str(archive / "big"), "--out", str(out), *arguments, nohup=nohup)
    until(lambda: len(descendants(process.pid)) >= processes or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    return process, descendants(process.pid)


def gone(processes: list[int]) -> bool:
    return not any(alive(pid) for pid in processes)


@pytest.mark.parametrize(
    ("number", "code", "message"), [(signal.SIGTERM, 143, "siq: terminated"), (signal.SIGHUP, 129, "siq: hung up")]
)
def test_sigterm_and_sighup_stop_a_run_with_its_workers(archive, previous, number, code, message):
    """SIGTERM/SIGHUP to a 2-worker run: exit 143/129, one line, workers gone, no leftovers, the output as it was."""
    out, before = previous
    process, workers = staging(archive, out, "--workers", "2")
    try:
        os.kill(process.pid, number)  # to the run alone, as systemd, docker and `timeout` send it
        _, error = process.communicate(timeout=60)
        assert process.returncode == code, error
        assert error.strip() == message
        until(lambda: gone(workers), seconds=10)
    finally:
        kill_alive(workers)
    assert snapshot(out) == before and not leftovers(out)
    report = siq_schemas.convert(archive / "big", out)
    assert report.balanced and len(siq_schemas.read_table(out, "events")) == 30_000


def test_under_nohup_a_hangup_changes_nothing_and_sigterm_still_stops_the_run(archive, previous, tmp_path):
    """With SIGHUP ignored (nohup), a hangup of the whole group leaves the run and its workers; SIGTERM stops it."""
    out, _ = previous
    process, workers = staging(archive, out, "--workers", "2", nohup=True)
    os.killpg(process.pid, signal.SIGHUP)  # the terminal hangs up: to every process of the group
    _, error = process.communicate(timeout=120)
    assert process.returncode == 0, error  # a worker killed by the hangup would make it exit 2
    assert len(siq_schemas.read_table(out, "events")) == 30_000
    other = tmp_path / "other"
    process, workers = staging(archive, other, "--workers", "2", nohup=True)
    try:
        os.kill(process.pid, signal.SIGTERM)
        _, error = process.communicate(timeout=60)
        assert process.returncode == 143 and error.strip() == "siq: terminated", error
        until(lambda: gone(workers), seconds=10)
    finally:
        kill_alive(workers)
    assert not other.exists() and not leftovers(other)


def test_workers_die_with_a_killed_run(archive, previous):
    """kill -9 of a 2-worker run (its workers get no signal): the workers end too, and the next run completes."""
    out, before = previous
    process, workers = staging(archive, out, "--workers", "2")
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        until(lambda: gone(workers), seconds=10)
    finally:
        kill_alive(workers)
    assert snapshot(out) == before
    report = siq_schemas.convert(archive / "big", out)
    assert report.balanced and not leftovers(out)


def test_sigterm_cancels_a_dask_run_and_closes_its_local_cluster(archive, previous):
    """SIGTERM to a run on a local Dask cluster: exit 143, one line, the cluster's processes gone, no leftovers."""
    pytest.importorskip("distributed")
    out, before = previous
    process, started = staging(archive, out, "--engine", "dask", "--workers", "2", processes=3)
    try:
        os.kill(process.pid, signal.SIGTERM)
        _, error = process.communicate(timeout=60)
        assert process.returncode == 143, error
        assert error.strip().splitlines()[-1] == "siq: terminated" and "Traceback" not in error, error
        until(lambda: gone(started), seconds=20)
    finally:
        kill_alive(started)
    assert snapshot(out) == before and not leftovers(out)


def test_sigterm_cancels_the_runs_tasks_on_a_dask_scheduler(archive, previous):
    """SIGTERM to a run on a running Dask cluster: exit 143, one line, and the scheduler holds none of its tasks."""
    distributed = pytest.importorskip("distributed")
    out, before = previous
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):

        def tasks() -> int:
            return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

        command = ["convert", str(archive / "big"), "--out", str(out), "--engine", "dask"]
        process = siq(*command, "--scheduler", cluster.scheduler_address)
        until(lambda: tasks() or process.poll() is not None)
        assert process.poll() is None, process.communicate()
        os.kill(process.pid, signal.SIGTERM)
        _, error = process.communicate(timeout=60)
        assert process.returncode == 143, error
        assert error.strip() == "siq: terminated", error
        until(lambda: tasks() == 0, seconds=20)
    assert snapshot(out) == before and not leftovers(out)


def test_ctrl_c_while_the_command_loads_is_an_interrupt(archive, tmp_path):
    """Ctrl-C at any moment once siq's code runs (click and the package still loading): exit 130, one line."""
    out = tmp_path / "out"
    for step in range(10):
        process = siq_ready("convert", str(archive / "big"), "--out", str(out))
        time.sleep(0.1 + 0.05 * step)
        os.killpg(process.pid, signal.SIGINT)
        _, error = process.communicate(timeout=60)
        assert process.returncode == 130, error
        assert error.strip() == "siq: interrupted", error
        assert not leftovers(out), [sorted(left.rglob("*")) for left in leftovers(out)]


class Stopped(Exception):
    """What the handler of the test below raises, as SIGINT's raises KeyboardInterrupt."""


def test_a_signal_while_an_input_opens_comes_out_as_itself(archive):
    """A signal landing at any point of opening an input raises the handler's exception, never an OSError.

    Regression guard: the descriptor was closed twice when the signal landed inside
    ``open()``, and the EBADF that came out made a Ctrl-C a file "unreadable" and the run go on.
    """
    armed = False

    def handler(number: int, frame: object) -> None:
        if armed:
            raise Stopped

    def pester() -> None:
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.00005)

    previous = signal.signal(signal.SIGUSR1, handler)
    done = threading.Event()
    thread = threading.Thread(target=pester)
    thread.start()
    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(40_000):
            try:
                armed = True
                with storage.open_file(archive / "small" / "0.jsonl"):
                    armed = False
                outcomes["opened"] += 1
            except Stopped:
                outcomes["stopped"] += 1
            except OSError as error:
                outcomes[f"OSError {error}"] += 1
            armed = False
    finally:
        done.set()
        thread.join()
        signal.signal(signal.SIGUSR1, previous)
    assert set(outcomes) == {"opened", "stopped"}, outcomes


def test_importing_the_package_installs_no_signal_handler():
    """`import siq_schemas` (and its converter) leaves every signal's handler as it was, and loads no heavy module."""
    code = (
        "import signal, sys; before = {n: signal.getsignal(n) for n in signal.valid_signals()}; "
        "import siq_schemas, siq_schemas.converter; "
        "print(before == {n: signal.getsignal(n) for n in signal.valid_signals()})"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "True\n"
    lazy = "import sys, siq_schemas; print(sorted({'click', 'cryptography', 'pyarrow', 'duckdb'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
