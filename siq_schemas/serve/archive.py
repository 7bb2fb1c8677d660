"""The receiver's archive: where ``siq serve`` appends deliveries, durably.

Layout of ``ARCHIVE`` (the folder of ``siq serve --archive``)::

    deliveries/siq-deliveries-YYYY-MM-DD.jsonl          slot 0's file of a UTC day
    deliveries/siq-deliveries-YYYY-MM-DD-1.jsonl        slot 1's (a second worker process)
    deliveries/siq-deliveries-YYYY-MM-DD.jsonl.zst      a closed day, compressed
    deliveries/.siq-deliveries-YYYY-MM-DD.jsonl.zst.partial   a compression in progress
    _rejected/siq-rejected-YYYY-MM-DD[-N].jsonl         requests refused for their signature (bounded)
    _slots/slot-N.lock                                  the writer slot locks

Each process that writes holds one *slot* (an exclusive ``flock`` on its lock file), so two
processes never append to one file; the lock goes with the process, so a restart takes the same
slot back. Every line is a delivery record that ``siq convert`` reads unchanged; the names the
converter must not read start with ``_`` or ``.`` (its folder walk skips them).

Durability: :meth:`Slot.write` appends a batch of lines and ``fdatasync``s the file once; a
batch that fails part-way is cut off again, so a file never keeps a partial line. A line torn by
a crash (``kill -9``, power loss: it was never acknowledged) is cut off when a slot is taken,
before anything is appended. A day's file is compressed once the slot writes a later day.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import zstandard

from ..exceptions import ArchiveError

__all__ = ["REJECTED_BYTES", "SLOTS", "Archive", "Slot", "day_of", "timestamp"]

#: Writer slots an archive has: processes beyond them cannot write to it.
SLOTS = 64
#: Bytes of refused requests kept per slot and day in ``_rejected/``; past them they are only counted.
REJECTED_BYTES = 16 << 20
#: Days of refused requests kept.
REJECTED_DAYS = 7

_NAME = re.compile(r"siq-deliveries-(\d{4}-\d\d-\d\d)(?:-(\d+))?\.jsonl(\.zst)?")
_TAIL = 1 << 16


def day_of(now: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time in seconds since the epoch."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def timestamp(now: float) -> str:
    """A time in seconds since the epoch as UTC ISO-8601 to the millisecond (``2026-03-01T10:15:30.123Z``)."""
    millis = int(now * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"


class Archive:
    """The folders of an archive and the slots that write to it.

    ``rejected_bytes`` bounds the refused requests kept per slot and day in ``_rejected/``.
    """

    def __init__(self, root: str | os.PathLike[str], rejected_bytes: int = REJECTED_BYTES) -> None:
        self.root = Path(root)
        self.rejected_bytes = rejected_bytes
        self.deliveries = self.root / "deliveries"
        self.rejected = self.root / "_rejected"
        self.slots = self.root / "_slots"

    def delivery_file(self, day: str, slot: int, compressed: bool = False) -> Path:
        """The path of a slot's file of one day (slot 0 has no suffix)."""
        suffix = f"-{slot}" if slot else ""
        return self.deliveries / f"siq-deliveries-{day}{suffix}.jsonl{'.zst' if compressed else ''}"

    def days(self, slot: int) -> list[str]:
        """The days of a slot's uncompressed files, in order."""
        found = []
        for path in self._listing():
            match = _NAME.fullmatch(path.name)
            if match and int(match.group(2) or 0) == slot and not match.group(3):
                found.append(match.group(1))
        return sorted(found)

    def prepare(self) -> None:
        """Create the folders; raise :class:`ArchiveError` saying why when they cannot be made or written."""
        for folder in (self.deliveries, self.rejected, self.slots):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ArchiveError(f"{folder}: cannot create the folder ({error.strerror or error})") from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ArchiveError(f"{folder}: cannot write here")

    def take(self, now: float, busy: Callable[[int], None] | None = None) -> Slot:
        """Lock the first free slot, cut its torn tails, compress its closed days; return it.

        ``busy`` is told each slot found taken by another process. Raises :class:`ArchiveError`.
        """
        self.prepare()
        for number in range(SLOTS):
            lock = self._lock(number)
            if lock is not None:
                try:
                    return Slot(self, number, lock, now)
                except BaseException:
                    os.close(lock)
                    raise
            if busy is not None:
                busy(number)
        raise ArchiveError(f"{self.root}: all {SLOTS} writer slots are taken by other running receivers")

    def sweep(self, now: float) -> None:
        """Put the files of every slot no process holds in order: torn tails cut, closed days compressed."""
        self.prepare()
        numbers = {int(m.group(2) or 0) for p in self._listing() if (m := _NAME.fullmatch(p.name))}
        for number in sorted(numbers):
            lock = self._lock(number)
            if lock is not None:
                Slot(self, number, lock, now, compress_now=True).close()

    def _lock(self, number: int) -> int | None:
        """The fd of slot ``number``'s lock file, locked; ``None`` when another process holds it."""
        try:
            fd = os.open(self.slots / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ArchiveError(f"{self.slots}: cannot create a slot lock ({error.strerror or error})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _listing(self) -> list[Path]:
        try:
            return list(self.deliveries.iterdir())
        except FileNotFoundError:
            return []


class Slot:
    """One writer slot, locked by this process: appends lines to its file of each day.

    Not thread-safe: one thread writes (the receiver's commit thread). Compression of closed days
    runs in a background thread of its own.
    """

    def __init__(self, archive: Archive, number: int, lock: int, now: float, compress_now: bool = False) -> None:
        self.archive, self.number, self._lock = archive, number, lock
        self.fsyncs = 0
        self.rejected_dropped = 0
        self._fd: int | None = None
        self._size = 0
        days = archive.days(number)
        for day in days:
            _cut_torn_tail(archive.delivery_file(day, number))
        _remove_partials(archive, number)
        # A day never goes back: after a clock jump backwards lines still go to the latest day's file.
        self.day = max([day_of(now), *days])
        closed = [day for day in days if day < self.day]
        if compress_now:
            self._compress(closed)
        elif closed:
            threading.Thread(target=self._compress, args=(closed,), name="siq-compress", daemon=True).start()
        self._rejected_fd: int | None = None
        self._rejected_day = ""

    @property
    def path(self) -> Path:
        """The file lines go to now."""
        return self.archive.delivery_file(self.day, self.number)

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def write(self, lines: Iterable[tuple[str, bytes]]) -> None:
        """Append ``(day, line)`` pairs, each line ending in a newline, and ``fdatasync`` once per file.

        When the day moves on, the previous day's file is closed and compressed in the background.
        Raises ``OSError`` after cutting the file back to where it was (nothing of a failed batch stays).
        """
        by_day: dict[str, list[bytes]] = {}
        for day, line in lines:
            by_day.setdefault(max(day, self.day), []).append(line)
        for day, group in sorted(by_day.items()):
            if day != self.day:
                self._close_file()
                threading.Thread(target=self._compress, args=([self.day],), name="siq-compress", daemon=True).start()
                self.day = day
            self._append(b"".join(group))

    def reject(self, day: str, line: bytes) -> bool:
        """Keep a refused request in ``_rejected/`` (not synced); ``False`` when that day's file is full."""
        if day != self._rejected_day:
            if self._rejected_fd is not None:
                os.close(self._rejected_fd)
            suffix = f"-{self.number}" if self.number else ""
            path = self.archive.rejected / f"siq-rejected-{day}{suffix}.jsonl"
            self._rejected_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._rejected_day = day
            _prune_rejected(self.archive, day)
        fd = self._rejected_fd
        assert fd is not None
        if os.fstat(fd).st_size + len(line) > self.archive.rejected_bytes:
            self.rejected_dropped += 1
            return False
        _write_all(fd, line)
        return True

    def close(self) -> None:
        """Close the files and release the slot."""
        self._close_file()
        if self._rejected_fd is not None:
            os.close(self._rejected_fd)
            self._rejected_fd = None
        os.close(self._lock)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        try:
            _write_all(self._fd, data)
            os.fdatasync(self._fd)
        except OSError:
            self._undo()
            raise
        self.fsyncs += 1
        self._size += len(data)

    def _open_file(self) -> None:
        path = self.path
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if created:
                _sync_folder(path.parent)
            self._size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def _undo(self) -> None:
        """After a failed append: cut the file back to its last whole line, then close it (reopened next time)."""
        fd, self._fd = self._fd, None
        assert fd is not None
        try:
            os.ftruncate(fd, self._size)
            os.fdatasync(fd)
        except OSError:  # a device that cannot be cut (/dev/full): the next start cuts a torn tail
            pass
        finally:
            os.close(fd)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _compress(self, days: list[str]) -> None:
        """Compress closed days' files to ``.jsonl.zst`` (through a ``.partial`` the converter skips)."""
        for day in days:
            source = self.archive.delivery_file(day, self.number)
            target = self.archive.delivery_file(day, self.number, compressed=True)
            partial = target.with_name(f".{target.name}.partial")
            try:
                with open(source, "rb") as reader, open(partial, "wb") as writer:
                    zstandard.ZstdCompressor(level=3).copy_stream(reader, writer)
                    writer.flush()
                    os.fsync(writer.fileno())
                os.replace(partial, target)
                _sync_folder(target.parent)
                source.unlink()
                _sync_folder(target.parent)
            except OSError:  # a full disk: the day stays uncompressed, the next start tries again
                partial.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(path: Path) -> None:
    """Cut a file back to the end of its last whole line (a line a crash tore was never acknowledged)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ArchiveError(f"{path}: cannot open ({error.strerror or error})") from None
    try:
        size = end = os.fstat(fd).st_size
        while end > 0:
            start = max(end - _TAIL, 0)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end != size:
            os.ftruncate(fd, end)
            os.fsync(fd)
    except OSError as error:
        raise ArchiveError(f"{path}: cannot cut the torn last line ({error.strerror or error})") from None
    finally:
        os.close(fd)


def _remove_partials(archive: Archive, number: int) -> None:
    """Remove the compressions a stopped process left half-done (their source files are still there)."""
    for path in archive.deliveries.glob(".siq-deliveries-*.partial"):
        match = _NAME.fullmatch(path.name[1:].removesuffix(".partial"))
        if match and int(match.group(2) or 0) == number:
            path.unlink(missing_ok=True)


def _prune_rejected(archive: Archive, today: str) -> None:
    """Remove refused requests older than :data:`REJECTED_DAYS` days."""
    oldest = day_of(time.mktime(time.strptime(today, "%Y-%m-%d")) - REJECTED_DAYS * 86400 + 43200)
    for path in archive.rejected.glob("siq-rejected-*.jsonl"):
        if path.name[len("siq-rejected-") :][:10] < oldest:
            path.unlink(missing_ok=True)
