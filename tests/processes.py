"""Helpers for tests that run `siq` as real processes: archives, outputs, the processes and their children."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DEPARTMENT_DELETED, write_lines

HAS_PROC = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def snapshot(out: Path) -> dict[str, str]:
    """Every file of an output with its SHA-256."""
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def big_archive(folder: Path, files: int = 2, events: int = 15_000) -> int:
    """``files`` files of ``events`` distinct events each in ``folder`` (past the size staged by workers); the total."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(files):
        payloads = [
            dict(DEPARTMENT_DELETED, entity_id=f"d{part}-{i}", event_time=str(1_772_000_000_000 + i))
            for i in range(events)
        ]
        write_lines(folder / f"{part}.jsonl", payloads)
    return files * events


def siq(*arguments: str, nohup: bool = False) -> subprocess.Popen:
    """`python -m siq_schemas ARGUMENTS` in its own session (so a signal to it reaches nothing else).

    With ``nohup``, SIGHUP ignored, as `nohup` starts a command.
    """
    command = [sys.executable, "-m", "siq_schemas", *arguments]
    hangup = signal.SIG_IGN if nohup else signal.SIG_DFL
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, hangup),
    )


#: Python that prints "ready", then runs `python -m siq_schemas` with its arguments: what follows the line is
#: siq's own code (before it, the interpreter starts, and nothing can handle a signal there).
READY_THEN_SIQ = (
    "import runpy, sys; print('ready', flush=True); sys.argv[0] = 'siq'; "
    "runpy.run_module('siq_schemas', run_name='__main__')"
)


def siq_ready(*arguments: str) -> subprocess.Popen:
    """`siq ARGUMENTS` as :func:`siq` starts it, returned once the command's own code runs."""
    command = [sys.executable, "-c", READY_THEN_SIQ, *arguments]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def until(condition: Callable[[], object], seconds: float = 60) -> object:
    """Poll ``condition`` until it is true (and return it), failing the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "the awaited condition never held"
        time.sleep(0.02)
    return value


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` and by them, as /proc shows them now."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):  # each thread's: Dask starts its from another
        try:
            listed = children.read_text().split()
        except OSError:  # the thread ended
            continue
        for child in listed:
            found += [int(child), *descendants(int(child))]
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_alive(processes: list[int]) -> None:
    """Kill what is left of ``processes``, so that a failing test leaves none behind."""
    for pid in processes:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def lock_holder(out: Path) -> int | None:
    """The pid that the lock file beside ``out`` names, or None (no lock file, or not written yet)."""
    try:
        return int(json.loads((out.parent / f"{out.name}.siq-lock").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def leftovers(out: Path) -> list[Path]:
    """What runs leave beside ``out``: temporary and old folders, the lock file."""
    return sorted(out.parent.glob(f"{glob.escape(out.name)}.siq-*"))
