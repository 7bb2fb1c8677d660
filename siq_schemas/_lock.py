"""One writer per output: a run holds ``OUT.siq-lock``, beside the output, for its whole length.

The lock is an ``flock`` on that file, not the file's existence: the system
releases it when its holder ends, however it ends (``kill -9`` included), so a
killed run's lock is simply taken over. The file names the holder (pid, host,
start time) for the message a second run prints. It sits beside the output, not
inside it, because the commit swaps the output folder's contents. The holder
removes it at the end; a run that finds the file re-opened by another run after
it got the lock on the old one starts again (the inode check below), so two
runs never hold it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from . import _signals
from .exceptions import LockError, OutputError

LOCK_MARK = ".siq-lock"


def path_of(out: Path) -> Path:
    """The lock file of output folder ``out``."""
    return out.parent / f"{out.name}{LOCK_MARK}"


@contextmanager
def held(out: Path, wait: bool = False) -> Iterator[None]:
    """Hold the lock of ``out`` while the block runs.

    Raises :class:`~siq_schemas.exceptions.LockError`, naming the holder, when
    another run holds it; with ``wait``, says so on stderr and waits for it.
    """
    path = path_of(out)
    waiting, descriptor, acquired = False, -1, False
    try:
        while not acquired:
            with _signals.held_back():  # created and locked in one step: a Ctrl-C never leaves a file nobody holds
                try:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as error:
                    raise OutputError(f"{out}: cannot write here ({error.strerror or error})") from None
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    acquired = True
                except BlockingIOError:
                    holder = _holder(descriptor)
            if not acquired:
                if not wait:
                    raise LockError(
                        f"{out}: another run is writing this output ({holder}); wait for it, or run with --wait"
                    )
                if not waiting:
                    print(f"siq convert: waiting for the run writing {out} ({holder})", file=sys.stderr, flush=True)
                    waiting = True
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                acquired = True
            if not _same_file(descriptor, path):  # the holder removed the file before we got its lock: take the new one
                acquired = False
                os.close(descriptor)
                descriptor = -1
        started = datetime.now(UTC).isoformat(timespec="seconds")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(record) + "\n").encode(), 0)
        yield
    finally:
        if acquired:
            with suppress(OSError):
                path.unlink()
        if descriptor >= 0:
            os.close(descriptor)


def _holder(descriptor: int) -> str:
    """Who holds the lock, as its file says.

    Right after taking the lock, the holder has not yet replaced what the file
    says (nothing, or a killed run's record): that is read again for a moment.
    """
    for _ in range(20):
        try:
            record = json.loads(os.pread(descriptor, 4096, 0))
            if record["host"] != socket.gethostname() or _running(record["pid"]):
                return f"pid {record['pid']} on {record['host']}, started {record['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    return "a run that has not said who it is"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        pass
    return True


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except OSError:
        return False
