"""Engines: stage the files of a run in this process, in a pool of worker processes, or on a Dask cluster.

:func:`stage` yields every file's result whatever the engine: the local
engine's worker processes are :mod:`siq_schemas.converter._workers`, the Dask
engine's tasks :mod:`siq_schemas.converter._dask`.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack, nullcontext
from typing import Any

from . import _workers
from .stage import FileResult, Part, Task, stage_task
from .tuning import TUNING

#: The engines that can stage the files: this machine's processes, or a Dask cluster.
ENGINES = ("local", "dask")


def check(engine: str, scheduler: str | None) -> None:
    """Raise ``ValueError`` for an unknown engine, or a scheduler address without the Dask engine."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise ValueError("a scheduler address needs engine='dask'")


def stage(
    tasks: list[Task],
    workers: int,
    progress: bool,
    engine: str = "local",
    scheduler: str | None = None,
    parallel_bytes: int = TUNING.parallel_bytes,
) -> list[FileResult]:
    """Stage every task, in parallel worker processes when there are several tasks and workers; a result per file.

    The local engine stages archives smaller than ``parallel_bytes`` in this process.
    The results of a file read in ranges by several tasks are joined into one (see :func:`joined`).

    With the ``dask`` engine, the tasks run on a Dask cluster instead (:mod:`siq_schemas.converter._dask`).

    Workers (:mod:`siq_schemas.converter._workers`) start before this process runs any
    thread (progress bar, DuckDB); on an error or a stop signal they are killed.
    """
    total = sum(task.size for task in tasks)
    with ExitStack() as stack:
        if engine == "dask":
            from ._dask import staged_on_cluster

            staged = stack.enter_context(staged_on_cluster(tasks, workers, scheduler))
        elif workers > 1 and len(tasks) > 1 and total >= parallel_bytes:
            staged = stack.enter_context(_workers.staged(tasks, min(workers, len(tasks))))
        else:
            staged = ((task, stage_task(task)) for task in tasks)
        bar = stack.enter_context(_progress(total, progress))
        pieces: defaultdict[int, list[tuple[Part, FileResult]]] = defaultdict(list)
        records = 0
        for task, results in staged:
            for part, result in zip(task.parts, results, strict=True):
                pieces[part.index].append((part, result))
                records += sum(result.counts.values()) - result.counts["blank"]
            if progress:
                bar.set_postfix(files=len(pieces), records=f"{records:,}", refresh=False)
                bar.update(task.size)
    return [joined(pieces[index]) for index in sorted(pieces)]


def joined(pieces: list[tuple[Part, FileResult]]) -> FileResult:
    """The result of a file from those of its ranges: counts and drift added in the file's order, its tail the last's.

    Its longest record is the longest of any range.

    A file that could not be opened, or broke, in one range is so as a whole.
    """
    pieces.sort(key=lambda piece: piece[0].start)
    result = pieces[0][1]
    for _, later in pieces[1:]:
        result.counts.update(later.counts)
        result.drift.update(later.drift)
        result.unopened |= later.unopened
        result.widest = max(result.widest, later.widest)
        broken = result.tail.broken or later.tail.broken
        result.tail = later.tail
        result.tail.broken = broken
    return result


def _progress(total: int, enabled: bool) -> Any:
    """A progress bar over ``total`` bytes of input, or a stand-in that shows nothing."""
    if not enabled:
        return nullcontext()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="siq convert", dynamic_ncols=True)
