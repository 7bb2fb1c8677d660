"""Plan a run: which inputs to read and from where, and how the merge is sized.

An output knows each input by its last complete record (see
:class:`~siq_schemas.read.Tail`), so a grown file is resumed after it, and the
settings that decide the rows (keys, signature policy, limits, the output
:data:`~siq_schemas.tables.FORMAT`). When those differ, or an input changed
other than by growing, the run rebuilds the output from the sources: those of
the run and the inputs the manifest knows that still exist. The plan is a
:class:`Plan`: the tasks (:class:`~siq_schemas.converter.stage.Task`) that read the files,
of similar size (:mod:`~siq_schemas.converter.tasks`), the manifest's inputs
after the run, and the previous output to merge with.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .. import storage
from .._tail import lines_digest, prefix_digest
from ..exceptions import Unreadable
from ..inputs import LINE_SUFFIXES, expand
from ..keys import Keyring
from ..read import EMPTY_SHA256, Limits
from ..tables import FORMAT, TABLES
from .report import Report, count_pending
from .stage import Part, Task
from .tasks import fingerprint, granule, target_size, tasks_of, work
from .tuning import TUNING, Tuning

#: Where a run says that it rebuilds the output, and which known inputs are gone (a warning each).
log = logging.getLogger("siq_schemas")


@dataclass
class Plan:
    """What a run reads and merges with: its tasks, the manifest's inputs after it, and the previous output."""

    tasks: list[Task]
    inputs: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    report: Report
    base: Path | None  # the previous output the new rows are merged with (None: a fresh or rebuilt output)
    before: dict[str, int]  # the row counts of that output's tables
    buckets: int = 1  # of event keys the staged rows are split in (see :class:`.staging.Staging`)
    size: int = 0  # about how much JSON the merge handles (see :func:`merged_size`)

    @property
    def unchanged(self) -> bool:
        """Nothing new to read: the output stays as it is."""
        return self.base is not None and not self.tasks


def plan_run(
    paths: list[Path | str],
    out: Path,
    previous: dict[str, Any] | None,
    report: Report,
    keyring: Keyring | None,
    allow_unsigned: bool,
    limits: Limits,
    stage: Path,
    rebuild: bool = False,
    tuning: Tuning = TUNING,
    workers: int = 1,
) -> Plan:
    """The plan of a run over ``paths`` into output folder ``out`` (``previous`` its manifest), sized by ``tuning``.

    Its tasks are of similar size, for ``workers`` workers (see :mod:`~siq_schemas.converter.tasks`).
    """
    settings = settings_of(keyring, allow_unsigned, limits)
    reason = "rebuild asked for" if rebuild and previous else outdated(previous, settings, out)
    every = granule(tuning)
    if not reason:
        known = {entry["path"]: entry for entry in (previous or {}).get("inputs", [])}
        parts, cuts, inputs, changed = plan_files(paths, known, report, limits, every)
        reason = f"{changed}: changed other than by growing" if changed else ""
    if reason:  # only an existing output is rebuilt
        log.warning("siq convert: %s: rebuilding from the sources", reason)
        paths, gone = rebuild_sources(paths, previous or {})
        report = Report(out=report.out, rebuilt=reason, gone=gone)
        parts, cuts, inputs, _ = plan_files(paths, {}, report, limits, every)
    base = out if previous is not None and not reason else None
    size = merged_size(parts, base)
    buckets = buckets_for(size, tuning)
    pems = tuple(key.pem() for key in keyring) if keyring else None
    inline = workers <= 1 or sum(part.size for part in parts) < tuning.parallel_bytes
    target = target_size(sum(work(part) for part in parts), workers, inline, tuning)
    tasks = tasks_of(
        parts,
        cuts,
        target,
        lambda of, number: Task(of, number, pems, allow_unsigned, str(stage), buckets, limits, tuning.batch),
    )
    report.pending = count_pending(inputs)
    before = dict(previous["tables"]) if base is not None and previous else {}
    return Plan(tasks, inputs, settings, report, base, before, buckets, size)


def settings_of(keyring: Keyring | None, allow_unsigned: bool, limits: Limits) -> dict[str, Any]:
    """What decides the rows a file yields, as the manifest records it (``allow_unsigned`` counts only with keys)."""
    return {
        "keys": sorted(keyring.ids) if keyring else None,
        "allow_unsigned": allow_unsigned and bool(keyring),
        "max_record_bytes": limits.max_record_bytes,
        "max_depth": limits.max_depth,
        "max_ratio": limits.max_ratio,
    }


def outdated(previous: dict[str, Any] | None, settings: dict[str, Any], out: Path) -> str:
    """Why the output cannot take this run's rows incrementally ("" when it can): another format or other settings."""
    if previous is None:
        return ""
    if previous.get("format") != FORMAT or not isinstance(previous.get("settings"), dict):
        return f"output format {previous.get('format')}, this version writes {FORMAT}"
    changed = [name for name, value in settings.items() if previous["settings"].get(name) != value]
    if changed:
        return f"settings changed ({', '.join(changed)})"
    for name, table in TABLES.items():  # a table written by another version of the columns
        files = sorted((out / name).glob("*.parquet"))
        if not files or pq.read_schema(files[0]) != table.schema:
            return f"table {name} differs from this version's"
    return ""


def rebuild_sources(paths: list[Path | str], previous: dict[str, Any]) -> tuple[list[Path | str], list[str]]:
    """What a rebuild reads: this run's files and the previous output's inputs that still exist; and those gone."""
    keys = {storage.key(path) for path in paths}
    union, gone = list(paths), []
    for entry in previous.get("inputs", []):
        if entry["path"] in keys or {entry["path"] + ".gz", entry["path"] + ".zst"} & keys:  # read, or its copy
            continue
        try:
            union += expand([entry["path"]])
        except Unreadable:
            gone.append(entry["path"])
            log.warning("siq convert: %s: gone, its rows leave the output", entry["path"])
    return union, gone


def plan_files(
    paths: list[Path | str],
    known: dict[str, dict[str, Any]],
    report: Report,
    limits: Limits,
    every: int,
) -> tuple[list[Part], dict[int, tuple[tuple[int, int], ...]], dict[str, dict[str, Any]], str | None]:
    """Which files to read and from where, the manifest's inputs after the run, and a file that changed.

    A file whose bytes are as before is skipped. Otherwise it is resumed after
    its last complete record when the digest of its data up to there is as
    before (nothing after it: skipped too). The compressed copy of an input
    (``a.jsonl.gz`` of ``a.jsonl``) goes on from where that input was when its
    data starts the same way, and takes its place; a plain file whose complete
    lines its compressed copy among ``paths`` holds is not read. A known file
    that changed otherwise is returned: the output must then be rebuilt.

    A plain JSON Lines file is read as a range of lines, from the line start at
    or before where its complete records ended: its line starts about every
    ``every`` bytes are returned by its index, for it to be cut in smaller ranges.
    """
    inputs = dict(known)
    parts: list[Part] = []
    cuts: dict[int, tuple[tuple[int, int], ...]] = {}
    report.files = len(paths)
    keys = [storage.key(path) for path in paths]  # one key however a path was spelled (relative, .., links)
    copied, present = _copied(paths, keys, limits), set(keys)
    for index, (path, key) in enumerate(zip(paths, keys, strict=True)):
        old = known.get(key)
        if key in copied:  # its compressed copy holds all its complete lines: that copy is read instead
            report.files_unchanged += 1
            inputs.pop(key, None)
            continue
        stat = _stat(path)  # taken before the file is read: a change while it is read shows next run
        if old and stat is not None and old.get("stat") == stat:  # as git does: same size, mtime and inode
            report.files_unchanged += 1
            continue
        lines = key.endswith(LINE_SUFFIXES)  # plain JSON Lines: read in ranges of lines
        mark = old["offset"] if lines and old and old["sha256"] is not None else 0
        try:
            found = fingerprint(path, every if lines else 0, mark)
        except Unreadable:  # staged as one reject, and not again while it stays unreadable
            if old and old["sha256"] is None:
                report.files_unchanged += 1
                continue
            found, lines = None, False
        size, digest = (found.size, found.sha256) if found else (0, None)
        if old and old["size"] == size and old["sha256"] == digest:
            report.files_unchanged += 1
            inputs[key] = old | {"stat": stat}
            continue
        entry: dict[str, Any] = {
            "path": key,
            "size": size,
            "sha256": digest,
            "offset": 0,
            "lines": 0,
            "prefix_sha256": EMPTY_SHA256,
            "stat": stat,
        }
        base = old or _copy_of(key, known, copied, present)  # a compressed copy goes on from where its input was
        if digest is not None and base is not None and base["sha256"] is not None:
            prefix, more = (
                (found.prefix, found.size > mark)
                if found and lines
                else prefix_digest(path, base["offset"], limits.max_ratio, limits.ratio_floor)
            )
            if old is not None and (prefix != base["prefix_sha256"] or base.get("broken")):
                return parts, cuts, inputs, key
            if prefix == base["prefix_sha256"]:
                entry |= {name: base[name] for name in ("offset", "lines", "prefix_sha256")}
                inputs.pop(base["path"], None)
                if not more:  # nothing after its complete records (a torn tail cut off): nothing to read
                    inputs[key] = entry | {"pending": 0}
                    report.files_unchanged += 1
                    continue
        inputs[key] = entry
        part = Part(str(path), key, index, entry["lines"], size)
        if found and lines:  # the lines from the line start at or before its last complete record's end
            part = replace(
                part, size=size - found.start, start=found.start, lines=found.lines, end=size, ends=found.ends
            )
            cuts[index] = found.cuts
        parts.append(part)
    return parts, cuts, inputs, None


#: A file modified this close to the run (in nanoseconds) is hashed again next run whatever its
#: mtime says: another write in the same tick of the file system's clock would not change it.
RACY_NS = 2_000_000_000


def _stat(path: Path | str) -> list[int] | None:
    """Size, mtime (ns) and inode of a local file, the manifest's note to skip it unread next run; None for a URL.

    None too for a file modified within :data:`RACY_NS` of now, as git treats a "racily clean" file.
    """
    if not isinstance(path, Path):
        return None
    try:
        found = path.stat()
    except OSError:
        return None
    if found.st_mtime_ns > time.time_ns() - RACY_NS:
        return None
    return [found.st_size, found.st_mtime_ns, found.st_ino]


def _plain(key: str) -> str:
    """The name of the plain file a compressed one is the copy of (``a.jsonl`` for ``a.jsonl.gz``)."""
    return key.removesuffix(".gz").removesuffix(".zst")


def _copy_of(key: str, known: dict[str, dict[str, Any]], copied: set[str], keys: set[str]) -> dict[str, Any] | None:
    """The known input that file ``key`` may be the compressed copy of: one not read on its own in this run."""
    plain = _plain(key)
    if plain == key or plain not in known:
        return None
    return known[plain] if plain in copied or plain not in keys else None


def _copied(paths: list[Path | str], keys: list[str], limits: Limits) -> set[str]:
    """The plain JSON Lines files of ``paths`` whose complete lines a compressed copy among ``paths`` holds."""
    compressed = {_plain(key): path for path, key in zip(paths, keys, strict=True) if key != _plain(key)}
    copied = set()
    for path, key in zip(paths, keys, strict=True):
        if key.endswith(LINE_SUFFIXES) and key in compressed:
            try:
                offset, digest = lines_digest(path, limits.max_ratio, limits.ratio_floor)
                if prefix_digest(compressed[key], offset, limits.max_ratio, limits.ratio_floor)[0] == digest:
                    copied.add(key)
            except Unreadable:
                continue
    return copied


def merged_size(parts: list[Part], previous: Path | None) -> int:
    """About how much JSON the merge handles: what memory-bounded passes are sized by.

    Compressed inputs count eight times their size; the previous output's
    events (Parquet, compressed) count eight times theirs.
    """
    size = sum(work(part) for part in parts)
    if previous is not None:
        size += 8 * sum(path.stat().st_size for path in (previous / "events").glob("*.parquet"))
    return size


def buckets_for(size: int, tuning: Tuning = TUNING) -> int:
    """How many buckets of event keys to merge in: a power of two (at most 16) of about ``tuning.bucket_bytes`` each."""
    buckets = 1
    while buckets < 16 and size > buckets * tuning.bucket_bytes:
        buckets *= 2
    return buckets


def ranges_for(size: int, tuning: Tuning = TUNING, widest: int = 0) -> int:
    """How many ranges of event times to sort the tables in: one per ``tuning.range_bytes``, up to ``tuning.ranges``.

    One for an archive up to ``tuning.sort_bytes`` whose longest record (``widest``) is at most
    ``tuning.wide_record_bytes``: DuckDB sorts that at once within its memory limit, but not as many
    rows of megabytes each.
    """
    if size <= tuning.sort_bytes and widest <= tuning.wide_record_bytes:
        return 1
    return min(max(-(-size // tuning.range_bytes), 1), tuning.ranges)
