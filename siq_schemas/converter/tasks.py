"""Tasks of similar size: large plain JSON Lines files cut into ranges of lines, small files packed together.

The plan reads a plain JSON Lines file once (:func:`scan`): its size and
SHA-256, the digest at its last newline and at where the previous run's
records ended, and line starts about every few hundred kilobytes with the
lines before each. :func:`tasks_of` then cuts such a file, when it is larger
than a task, into ranges of about the same size at those line starts, each
staged by a task of its own (its records keep their line numbers, and the last
range has the digests its :class:`~siq_schemas.read.Tail` needs), and packs
consecutive small files into one task each, up to the same size: one worker
reads them one after the other into the same batches.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .. import storage
from ..exceptions import Unreadable
from ..read import EMPTY_SHA256
from .stage import Part, Task
from .tuning import TUNING, Tuning

#: Bytes read at a time.
CHUNK = 1 << 20
#: How many line starts a scan notes per smallest task (see :func:`granule`).
CUTS_PER_TASK = 4


@dataclass(frozen=True)
class Scan:
    """What one pass over a file finds (see :func:`fingerprint`); the line facts only of a plain JSON Lines file."""

    size: int
    sha256: str
    ends: tuple[tuple[int, str], ...] = ()  # the SHA-256 of the data up to its last newline, and up to its end
    prefix: str | None = None  # the SHA-256 of the data up to the mark (None: the data is shorter)
    start: int = 0  # the line start at or before the mark
    lines: int = 0  # the lines before ``start``
    cuts: tuple[tuple[int, int], ...] = ()  # line starts after ``start``, with the lines before each


def fingerprint(path: Path | str, every: int = 0, mark: int = 0) -> Scan:
    """Size and SHA-256 of a file's bytes: a file whose bytes are as before needs no other look.

    With ``every``, the file is plain JSON Lines, and the same pass notes a
    line start about every ``every`` bytes, the digest at its last newline, and
    at ``mark``, where the previous run's records ended (the ``prefix``):
    reading resumes at the line start at or before it. Raises
    :class:`~siq_schemas.exceptions.Unreadable` when the file cannot be read.
    """
    digest = hashlib.sha256()
    size = newlines = line_end = start = start_lines = 0
    at_line_end, prefix = EMPTY_SHA256, EMPTY_SHA256 if mark == 0 else None
    cuts: list[tuple[int, int]] = []
    target = every
    try:
        with storage.open_input(path) as handle:
            while chunk := handle.read(CHUNK):
                if not every:
                    digest.update(chunk)
                    size += len(chunk)
                    continue
                view, last = memoryview(chunk), chunk.rfind(b"\n") + 1
                inside = mark - size if prefix is None and size < mark <= size + len(chunk) else -1
                if inside >= 0:  # the line start at or before the mark: this chunk's last before it, or the last seen
                    before = chunk.rfind(b"\n", 0, inside) + 1
                    start, start_lines = size + before, newlines + chunk.count(b"\n", 0, before)
                    if not before:
                        start = line_end
                done = 0
                for point in sorted({inside, last} - {-1, 0}):
                    digest.update(view[done:point])
                    done = point
                    if point == inside:
                        prefix = digest.hexdigest()
                    if point == last:
                        at_line_end, line_end = digest.hexdigest(), size + last
                digest.update(view[done:])
                counted = counted_to = 0
                while target < size + len(chunk) and (found := chunk.find(b"\n", max(target - size, 0))) >= 0:
                    counted += chunk.count(b"\n", counted_to, found + 1)
                    counted_to = found + 1
                    cuts.append((size + found + 1, newlines + counted))
                    target = size + found + 1 + every
                newlines += counted + chunk.count(b"\n", counted_to)
                size += len(chunk)
    except OSError as error:
        raise Unreadable(error.strerror or str(error), str(path)) from None
    whole = digest.hexdigest()
    if not every:
        return Scan(size, whole)
    kept = tuple(cut for cut in cuts if start < cut[0] < size)
    return Scan(size, whole, ((line_end, at_line_end), (size, whole)), prefix, start, start_lines, kept)


def granule(tuning: Tuning) -> int:
    """How far apart the line starts a scan notes are: a few per smallest task."""
    return max(min(tuning.task_bytes, tuning.min_task_bytes) // CUTS_PER_TASK, 1)


def work(part: Part) -> int:
    """About how much JSON a part holds: compressed input counts eight times its size."""
    return part.size * (8 if part.path.endswith((".gz", ".zst")) else 1)


def target_size(total: int, workers: int, inline: bool, tuning: Tuning = TUNING) -> int:
    """The input a task takes: the run's shared out in ``tuning.tasks_per_worker`` tasks per worker, within bounds.

    A run staged in one process (``inline``) takes tasks of ``tuning.task_bytes``; a task takes a byte at least.
    """
    share = -(-total // max(workers * tuning.tasks_per_worker, 1))
    return max(tuning.task_bytes if inline else min(tuning.task_bytes, max(share, tuning.min_task_bytes)), 1)


def tasks_of(
    parts: list[Part],
    cuts: dict[int, tuple[tuple[int, int], ...]],
    size: int,
    task: Callable[[tuple[Part, ...], int], Task],
) -> list[Task]:
    """The tasks that stage ``parts``: ranges of about ``size`` bytes of the larger files, the small ones packed.

    ``cuts`` holds the line starts (and the lines before each) of the files
    that may be read in ranges, by their index; ``task(parts, number)`` makes a task.
    """
    tasks: list[Task] = []
    packed: list[Part] = []
    held = 0
    for piece in (piece for part in parts for piece in ranges(part, cuts.get(part.index, ()), size)):
        if packed and held + work(piece) > size:
            tasks.append(task(tuple(packed), len(tasks)))
            packed, held = [], 0
        packed.append(piece)
        held += work(piece)
    if packed:
        tasks.append(task(tuple(packed), len(tasks)))
    return tasks


def ranges(part: Part, cuts: tuple[tuple[int, int], ...], size: int) -> list[Part]:
    """A plain file's part cut at line starts into ranges of about ``size`` bytes (as few as the cuts allow)."""
    if part.end is None or part.size <= size or not cuts:
        return [part]
    count = -(-part.size // size)
    offsets = [offset for offset, _ in cuts]
    chosen: list[tuple[int, int]] = []
    for number in range(1, count):
        at = bisect.bisect_left(offsets, part.start + part.size * number // count)
        if at < len(cuts) and (not chosen or cuts[at][0] > chosen[-1][0]):
            chosen.append(cuts[at])
    starts = [(part.start, part.lines), *chosen]
    ends = [start for start, _ in chosen] + [part.end]
    pieces = [
        replace(part, start=start, lines=lines, end=end, size=end - start, ends=(), piece=number)
        for number, ((start, lines), end) in enumerate(zip(starts, ends, strict=True))
    ]
    pieces[-1] = replace(pieces[-1], ends=part.ends)  # the last range: the digests its tail needs
    return pieces
