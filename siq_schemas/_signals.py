"""The signals that stop a run: SIGINT (Ctrl-C), SIGTERM (`timeout`, systemd, docker) and SIGHUP.

:func:`siq_schemas.convert` handles them while it runs in the main
thread (:func:`handled`) and puts the previous handlers back after; importing
the package installs no handler. A stop signal raises ``KeyboardInterrupt``
(SIGINT) or :class:`~siq_schemas.exceptions.Terminated`, so the run unwinds as
on Ctrl-C: its worker processes are killed, its temporary folder removed, its
lock released, the previous output kept.

While worker processes or a cluster start (:func:`held_back`), a stop signal
waits for the end of that step: an exception raised in the middle of it (in the
callbacks of a fork, in a cluster's constructor) would be dropped, or leave
processes that nothing stops. One that arrives while the new output goes in
place is too late and dropped: the run has finished.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .exceptions import Terminated

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: The stop signals that arrived while held back (see :func:`held_back`); None when not holding them.
_held: list[int] | None = None
#: The stop signals that were ignored when :func:`handled` began (SIGHUP under ``nohup``): workers ignore them too.
ignored: frozenset[int] = frozenset()


@contextmanager
def handled() -> Iterator[list[int]]:
    """Note every stop signal during the block, and stop the block on it; yields the signals noted.

    A signal whose handler was a Python function calls it (SIGINT's default
    raises ``KeyboardInterrupt``); one that had the system's default raises
    :func:`stop`; an ignored one (``nohup``) stays ignored. Libraries that catch
    the exception (DuckDB in a query, pyarrow in an import) raise errors of
    their own: the note says what they were. Only the main thread can take
    signals; elsewhere nothing is noted.
    """
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    global ignored
    previous: dict[signal.Signals, Any] = {number: signal.getsignal(number) for number in STOPS}
    ignored = frozenset(number for number, handler in previous.items() if handler is signal.SIG_IGN)

    def note(number: int, frame: Any) -> None:
        handler = previous[signal.Signals(number)]
        if handler is signal.SIG_IGN:
            return
        if _held is not None:
            _held.append(number)
            return
        noted.append(number)
        if callable(handler):
            handler(number, frame)
        else:
            raise stop(number)

    for number in STOPS:
        signal.signal(number, note)
    try:
        yield noted
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        ignored = frozenset()


def stop(number: int) -> KeyboardInterrupt:
    """The exception a run stops with on signal ``number``."""
    return KeyboardInterrupt() if number == signal.SIGINT else Terminated(number)


@contextmanager
def held_back(drop: bool = False) -> Iterator[None]:
    """Let a stop signal that arrives during the block take effect only after it (with ``drop``, not at all)."""
    global _held
    if _held is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
        if held and not drop:
            signal.raise_signal(held[0])  # handled now, by the handler of handled()
