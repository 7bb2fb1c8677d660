"""The worker processes of the local engine, which stop with the run however it stops.

Workers are forked where the system can (they start at once, with the package
loaded, and ``convert`` works from any script); elsewhere spawned. A worker
ignores Ctrl-C and dies on SIGTERM and SIGHUP (unless the run ignores them, as
SIGHUP under ``nohup``): the run that started it decides
(:mod:`siq_schemas._signals`), and on any error or stop signal kills its
workers at once rather than waiting for the files they stage. On
Linux a worker is also killed by the system when the run's process dies
(``kill -9``), so none is left behind, blocked, holding memory.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_all_start_methods, get_context
from typing import Any

import pyarrow as pa

from .. import _signals
from .stage import FileResult, Task, stage_task

_PR_SET_PDEATHSIG = 1


@contextmanager
def staged(tasks: list[Task], size: int) -> Iterator[Iterator[tuple[Task, list[FileResult]]]]:
    """Stage ``tasks`` on a pool of ``size`` worker processes; yields ``(task, results)`` pairs as tasks finish.

    When the block raises anything (an error, a stop signal), the workers are
    killed at once and the queued tasks dropped.
    """
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    context = get_context(method)
    executor = ProcessPoolExecutor(size, context, initializer=_started, initargs=(os.getpid(), _signals.ignored))
    try:
        with _signals.held_back():  # a signal in a fork's callbacks would be dropped
            futures = {executor.submit(stage_task, task): task for task in tasks}
        yield ((futures[future], future.result()) for future in as_completed(futures))
    except BaseException:
        with _signals.held_back():  # a second signal does not cut this short
            for process in list((executor._processes or {}).values()):  # no public way before Python 3.14
                process.kill()
            executor.shutdown(cancel_futures=True)
        raise
    executor.shutdown()


def _started(parent: int, ignored: frozenset[int]) -> None:
    """Set up a new worker: the run's signal handlers undone, and (Linux) death with its parent.

    The signals the run ignores (SIGHUP under ``nohup``) the worker ignores too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN if number in ignored else signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # libc's, already loaded: no lookup
    if os.getppid() != parent:  # the run died before the line above
        os._exit(1)
    without_pandas()


def without_pandas() -> None:
    """Have pyarrow take pandas as absent in this process, so that it never imports it (about 0.4 s of CPU).

    pyarrow imports pandas the first time it converts Python values to an array, to tell
    a pandas object from a sequence, and remembers what it found. The converter gives it
    typed Python sequences only, so in the processes the package owns (its worker
    processes, ``siq convert``) pandas is refused to that first look. It stays importable:
    what needs it (``to_pandas``) imports it then. Nothing changes once pandas is imported.
    """
    if "pandas" in sys.modules:
        return
    refuse = _Refuse()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([], pa.int64())  # the first conversion: the look for pandas
    finally:
        sys.meta_path.remove(refuse)


class _Refuse(importlib.abc.MetaPathFinder):
    """A finder that refuses to import pandas."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas is not used here")
