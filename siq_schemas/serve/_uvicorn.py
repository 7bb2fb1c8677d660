"""Running the receiver on uvicorn (``siq serve``): the worker factory, its signals, the supervisor watch.

``siq serve`` hands its settings to uvicorn's worker processes through ``SIQ_SERVE_CONFIG``; each
worker calls :func:`app_from_environment` to make its :class:`~siq_schemas.serve.Receiver`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import uvicorn

from .archive import Archive, Slot
from .receiver import Receiver, create_app

#: The environment variable through which ``siq serve`` configures its worker processes.
CONFIG_VARIABLE = "SIQ_SERVE_CONFIG"
#: A file holding the UTC time the receiver takes as now (ISO-8601 or epoch seconds): for tests of a day change.
CLOCK_VARIABLE = "SIQ_SERVE_CLOCK"


def app_from_environment() -> Receiver:
    """The receiver ``siq serve`` configures through ``SIQ_SERVE_CONFIG`` (a uvicorn factory, one per worker).

    In a worker process it also reloads the keys on SIGHUP, and stops (as on SIGTERM) when the
    process that started it is gone.
    """
    config = json.loads(os.environ[CONFIG_VARIABLE])
    clock = _file_clock(os.environ[CLOCK_VARIABLE]) if os.environ.get(CLOCK_VARIABLE) else time.time
    app = create_app(
        config["archive"], config["keys"] or None, path=config["path"], max_body_bytes=config["max_body_bytes"],
        clock=clock,
    )  # fmt: skip
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda number, frame: app.reload_keys())
    # A lost supervisor would leave this worker serving alone: stop as on SIGTERM.
    if config.get("supervisor"):
        threading.Thread(target=_watch_parent, args=(config["supervisor"],), name="siq-parent", daemon=True).start()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file size limit fails the write (EFBIG), never kills
    return app


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _file_clock(path: str) -> Callable[[], float]:
    """A clock reading the time from a file: ISO-8601 (``2026-03-01T23:59:59Z``) or seconds since the epoch."""

    def now() -> float:
        text = Path(path).read_text().strip()
        try:
            return float(text)
        except ValueError:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return now


def run(archive: str, keys: list[str], *, host: str, port: int, path: str, workers: int, max_body_bytes: int) -> int:
    """Run the receiver on uvicorn until SIGTERM or SIGINT (``siq serve``): 0, or non-zero if it could not start.

    The archive is put in order first (torn tails cut, closed days compressed, for every slot no
    running receiver holds); raises :class:`~siq_schemas.exceptions.ArchiveError` when it cannot be
    used or has fewer free writer slots than ``workers``.
    """
    clock = _file_clock(os.environ[CLOCK_VARIABLE]) if os.environ.get(CLOCK_VARIABLE) else time.time
    store = Archive(archive)
    store.sweep(clock())
    held: list[Slot] = []
    try:  # as many free slots as workers, or one clean line now rather than 503s later
        held.extend(store.take(clock()) for _ in range(workers))
    finally:
        for slot in held:
            slot.close()
    config = {"archive": str(Path(archive).resolve()), "keys": keys, "path": path, "max_body_bytes": max_body_bytes}
    os.environ[CONFIG_VARIABLE] = json.dumps({**config, "supervisor": os.getpid() if workers > 1 else None})
    # uvicorn re-raises the signal that stopped it once it has shut down: make that a no-op, so the exit is 0.
    previous = {number: signal.signal(number, lambda *_: None) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.run(
            "siq_schemas.serve._uvicorn:app_from_environment", factory=True, host=host, port=port, workers=workers,
            lifespan="on", access_log=False, log_level="warning", timeout_graceful_shutdown=30,
        )  # fmt: skip
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0
