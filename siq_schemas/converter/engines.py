"""Engines: stage the files of a run in this process, in a pool of worker processes, or on a Dask cluster.

:func:`stage` yields every file's result whatever the engine: the local
engine's worker processes are :mod:`siq_schemas.converter._workers`, the Dask
engine's tasks :mod:`siq_schemas.converter._dask`.
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from typing import Any

from . import _workers
from .stage import FileResult, Task, stage_file
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
    """Stage every file, in parallel worker processes when there are several files and workers.

    The local engine stages archives smaller than ``parallel_bytes`` in this process.

    With the ``dask`` engine, each file is a task on a Dask cluster instead (:mod:`siq_schemas.converter._dask`).

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
            staged = ((task, stage_file(task)) for task in tasks)
        bar = stack.enter_context(_progress(total, progress))
        results: list[FileResult] = []
        for task, result in staged:
            results.append(result)
            if progress:
                records = sum(sum(done.counts.values()) - done.counts["blank"] for done in results)
                bar.set_postfix(files=len(results), records=f"{records:,}", refresh=False)
                bar.update(task.size)
    return results


def _progress(total: int, enabled: bool) -> Any:
    """A progress bar over ``total`` bytes of input, or a stand-in that shows nothing."""
    if not enabled:
        return nullcontext()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="siq convert", dynamic_ncols=True)
