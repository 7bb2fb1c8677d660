"""The Dask engine: the tasks of a run (files, or ranges of a file) are staged on a Dask cluster.

A Dask task does what a worker process of the local engine does with a task (read,
verify, parse, validate, identify, flatten: :func:`siq_schemas.converter.stage.stage_task`),
into a temporary folder of its worker. It returns the staged Parquet files, as
bytes, with each file's counts and drift; this process writes them into the run's
staging folder as they arrive. So the workers share no storage with this
process: they need the package and the sources (paths they can open, or URLs),
nothing else. The merge then runs here, as with the local engine: every staged
row meets every other in one DuckDB merge, so every duplicate is found, whichever
workers staged its copies.

Without a scheduler address (``--scheduler``, or Dask's own ``scheduler-address``
setting, e.g. ``DASK_SCHEDULER_ADDRESS``), a local cluster of ``workers``
single-threaded processes is started for the run and closed after it. A scheduler that
does not answer within Dask's ``distributed.comm.timeouts.connect`` setting (30 s unless set,
e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``) is a :class:`ClusterError`.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

from .. import _signals
from ..exceptions import ClusterError
from .stage import FileResult, Task, stage_task
from .staging import Staging

#: The workers of a local cluster do not sample their threads' stacks every 10 ms: that cost a
#: quarter of the staging time of pure-Python tasks like these.
PROFILE_OFF = {"distributed.worker.profile.enabled": False}


@contextmanager
def staged_on_cluster(
    tasks: list[Task], workers: int, scheduler: str | None
) -> Iterator[Iterator[tuple[Task, list[FileResult]]]]:
    """Stage ``tasks`` on a cluster; yields an iterator of ``(task, results)`` in the order they finish.

    A task's staged rows are in the run's staging folder when its pair is yielded.
    """
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ClusterError("the dask engine needs Dask: pip install 'siq-schemas[cluster]'") from None
    with ExitStack() as stack:
        address = scheduler or dask.config.get("scheduler-address", None)
        with _signals.held_back():  # a cluster stopped while it starts is left half made, never closed
            if address:
                try:
                    client = stack.enter_context(Client(address, set_as_default=False))
                except (OSError, TimeoutError) as error:
                    raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
            else:
                stack.enter_context(dask.config.set(PROFILE_OFF))
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=max(min(workers, len(tasks)), 1),
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                )
                client = stack.enter_context(Client(cluster, set_as_default=False))
        run = uuid.uuid4().hex[:12]
        keys = [f"siq-stage-{run}-{task.number}" for task in tasks]
        futures = client.map(_stage_elsewhere, tasks, key=keys, pure=False)
        by_key = dict(zip(keys, tasks, strict=True))

        def staged() -> Iterator[tuple[Task, list[FileResult]]]:
            for future, (results, files) in as_completed(futures, loop=client.loop, with_results=True):
                task = by_key[future.key]
                Staging(task.stage).unpack(files)
                future.release()
                yield task, results

        try:
            yield staged()
        except BaseException:  # an error or a stop signal: the run's tasks are cancelled, the cluster closed below
            client.cancel(futures)
            raise


def _stage_elsewhere(task: Task) -> tuple[list[FileResult], dict[str, bytes]]:
    """Stage one task into a temporary folder (on a worker); its results and its staged files by relative path."""
    with tempfile.TemporaryDirectory(prefix="siq-stage-") as folder:
        results = stage_task(replace(task, stage=folder))
        return results, Staging(folder).pack()
