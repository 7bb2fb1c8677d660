"""The webhook receiver: an ASGI application that archives every authentic delivery, durably.

:func:`create_app` makes it; ``siq serve`` runs it on uvicorn, and any ASGI server or framework
(Starlette's ``Mount``, FastAPI's ``app.mount``) can run it too. Answers:

- ``HEAD PATH`` -> 200 (SalesIQ checks the URL when a webhook is created or changed);
- ``POST PATH`` whose ``x-siqsignature`` verifies (any POST when no keys are given) -> the raw
  request is appended to the archive as a delivery record and fsynced, then 200, whatever the
  payload holds (invalid JSON and unknown events too: the converter rejects them, SalesIQ must
  not retry them); a missing or bad signature -> 401, the request kept apart in ``_rejected/``;
  a body over ``max_body_bytes`` -> 413 without reading it; the archive not writable -> 503;
- ``GET /healthz`` -> 200 and JSON when the archive can be written, 503 and the reason when not;
- other methods -> 405, other paths -> 404.

Group commit: a request's line is queued; one thread writes the queue and fsyncs it once, and
the requests that arrive meanwhile make the next batch, so a disk flush serves many deliveries.
The archive (slots, files, compression) is :mod:`siq_schemas.serve.archive`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..exceptions import ArchiveError, KeyInvalid, SignatureError, SignatureMissing
from ..keys import Keyring, KeySource, load_keys
from ..parse import encode
from ..read import LIMITS
from ..verify import SIGNATURE_HEADER, signature_header, verify_signature
from .archive import Archive, Slot, day_of, timestamp

__all__ = ["HEADER_BYTES", "MAX_BODY_BYTES", "Receiver", "create_app", "largest_body"]

#: The default limit of a request body.
MAX_BODY_BYTES = 1 << 20
#: The most a request's kept headers may take as JSON (a larger request answers 431).
HEADER_BYTES = 64 << 10
#: Headers never archived: they carry credentials.
CREDENTIALS = frozenset({"authorization", "proxy-authorization", "cookie"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
log = logging.getLogger("siq_schemas.serve")


def largest_body(max_record_bytes: int = LIMITS.max_record_bytes) -> int:
    """The largest ``max_body_bytes`` whose archived line stays within the converter's ``max_record_bytes``.

    A body is archived as text, or as base64 (4/3 of its size) when its text would be longer.
    """
    return (max_record_bytes - HEADER_BYTES - 256) * 3 // 4


def create_app(
    archive: str | os.PathLike[str],
    keys: KeySource | Iterable[KeySource] | None = None,
    *,
    path: str = "/",
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> Receiver:
    """The receiver as an ASGI application writing to the archive folder ``archive``.

    ``keys``: what :func:`~siq_schemas.keys.load_keys` takes (key files are re-read by
    :meth:`Receiver.reload_keys`); without keys every POST is archived. ``path`` is where SalesIQ
    posts; ``max_body_bytes`` the largest body taken (at most :func:`largest_body`); ``clock``
    the time in seconds since the epoch (the day of a delivery's file and its ``received_at``).
    Raises :class:`~siq_schemas.exceptions.KeyInvalid` for a bad key and ``ValueError`` for a bad setting.
    """
    if keys is None:
        sources: tuple[KeySource, ...] = ()
    elif isinstance(keys, str | bytes | os.PathLike) or not isinstance(keys, Iterable):
        sources = (keys,)
    else:
        sources = tuple(keys)
    return Receiver(Archive(archive), sources, path, max_body_bytes, clock)


class Receiver:
    """The ASGI application :func:`create_app` makes. ``stats`` counts what it did since it started."""

    def __init__(
        self, archive: Archive, sources: tuple[KeySource, ...], path: str, max_body: int, clock: Callable[[], float]
    ) -> None:
        if not 0 < max_body <= largest_body():
            raise ValueError(f"max_body_bytes must be between 1 and {largest_body():,} (the converter's line limit)")
        path = "/" + path.strip("/")
        if path == "/healthz":
            raise ValueError("path /healthz is the health check's")
        self.archive, self.path, self.max_body, self.clock = archive, path, max_body, clock
        self._sources = sources
        self.keys: Keyring | None = load_keys(*sources) if sources else None
        self.stats = {"deliveries": 0, "rejected": 0, "unavailable": 0}
        self.reason: str | None = None  # why the archive cannot be written now
        self._slot: Slot | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._opening: asyncio.Lock | None = None
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._committing = False
        self._task: asyncio.Task[None] | None = None

    def reload_keys(self) -> None:
        """Load the keys again from their sources (key files re-read); on a bad key keep the old ones."""
        if not self._sources:
            return
        try:
            self.keys = load_keys(*self._sources)
        except KeyInvalid as error:
            log.error("siq serve: keys not reloaded, still using %s: %s", self._ids(), error)
            return
        log.warning("siq serve: keys reloaded: %s", self._ids())

    def _ids(self) -> str:
        return ", ".join(self.keys.ids) if self.keys else "none"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        """Close the archive files and release the writer slot (the requests answered are already durable)."""
        slot, self._slot = self._slot, None
        if slot is not None:
            await self._run(slot.close)
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return await _answer(send, 405, b"", allow="GET, HEAD")
            return await self._health(send)
        if path.rstrip("/") != self.path.rstrip("/"):
            return await _answer(send, 404, b"not found\n")
        if method == "HEAD":
            return await _answer(send, 200, b"")
        if method != "POST":
            return await _answer(send, 405, b"", allow="HEAD, POST")
        await self._post(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        now = self.clock()
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _answer(send, 413, b"body over the limit\n", close=True)
        try:
            body = await _body(receive, self.max_body)
        except _Disconnected:  # the client left before its body was whole: nothing to keep or answer
            return
        if body is None:
            return await _answer(send, 413, b"body over the limit\n", close=True)
        headers = _kept_headers(scope["headers"])
        if len(encode(headers)) > HEADER_BYTES:
            return await _answer(send, 431, b"request headers too large\n", close=True)
        line = _record(now, headers, body)
        day = day_of(now)
        keys = self.keys
        if keys is not None:
            try:
                signature = signature_header(headers)
                if signature is None:
                    raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
                verify_signature(body, signature, keys)
            except SignatureError as error:
                await self._reject(day, line, error)
                return await _answer(send, 401, f"{error.code}\n".encode())
        try:
            await self._append(day, line)
        except OSError as error:
            self.stats["unavailable"] += 1
            return await _answer(send, 503, f"archive not writable: {self.reason or error}\n".encode())
        self.stats["deliveries"] += 1
        await _answer(send, 200, b"")

    async def _append(self, day: str, line: bytes) -> None:
        """Queue a line and return once it is written and fsynced (raises ``OSError`` when it could not be)."""
        await self._open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((day, line, future))
        if not self._committing:
            self._committing = True
            self._task = loop.create_task(self._commit())
        await future

    async def _commit(self) -> None:
        """Write and fsync the queue, batch after batch, until no request waits."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                slot = self._slot
                try:
                    if slot is None:
                        raise OSError(self.reason or "the archive is closed")
                    await self._run(slot.write, [(day, line) for day, line, _ in batch])
                except OSError as error:
                    self.reason = _why(error, slot.path if slot else self.archive.deliveries)
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(error)
                else:
                    self.reason = None
                    for *_, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._committing = False

    async def _reject(self, day: str, line: bytes, error: SignatureError) -> None:
        self.stats["rejected"] += 1
        await self._open()
        slot = self._slot
        if slot is None:
            return
        record = line[:-2] + b',"reason":' + encode(error.code) + b"}\n"
        try:
            await self._run(slot.reject, day, record)
        except OSError as problem:
            log.warning("siq serve: a refused request was not kept: %s", problem)

    async def _open(self) -> None:
        """Take a writer slot if none is held; on failure keep the reason for /healthz and 503s."""
        if self._slot is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._slot is not None:
                return
            try:
                self._slot = await self._run(self.archive.take, self.clock())
                self.reason = None
                slot = self._slot
                log.warning("siq serve: process %d writes %s (slot %d)", os.getpid(), slot.path, slot.number)
            except OSError as error:
                self.reason = _why(error, self.archive.root)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run file work on the receiver's one I/O thread (so writes never interleave)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="siq-archive")
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def _health(self, send: Send) -> None:
        await self._open()
        slot = self._slot
        state = {
            "status": "unavailable" if self.reason else "ok",
            "reason": self.reason,
            "archive": str(self.archive.root),
            "writable": self.reason is None,
            "slot": slot.number if slot else None,
            "files_open": [str(slot.path)] if slot and slot.is_open else [],
            "deliveries": self.stats["deliveries"],
            "rejected": self.stats["rejected"],
            "rejected_not_kept": slot.rejected_dropped if slot else 0,
            "unavailable": self.stats["unavailable"],
            "fsyncs": slot.fsyncs if slot else 0,
            "keys": list(self.keys.ids) if self.keys else None,
            "pid": os.getpid(),
        }
        await _answer(send, 503 if self.reason else 200, json.dumps(state).encode(), "application/json")


def _why(error: OSError, where: Path) -> str:
    if isinstance(error, ArchiveError):
        return str(error)
    return f"{error.filename or where}: {error.strerror or error}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _kept_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers as a dict (names lowercase, repeated ones joined by ``, ``), credentials left out."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = bytes(key).decode("latin-1").lower()
        if name in CREDENTIALS:
            continue
        text = bytes(value).decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


class _Disconnected(Exception):
    """The client closed the connection before the request body was whole."""


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it grows past ``limit`` (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _record(now: float, headers: dict[str, str], body: bytes) -> bytes:
    """A delivery record line: ``body`` as text when it is UTF-8 and as short as base64, else ``body_base64``."""
    record: dict[str, Any] = {"received_at": timestamp(now), "headers": headers}
    try:
        record["body"] = body.decode("utf-8")
        line = encode(record)
        if len(line) <= len(body) * 4 // 3 + HEADER_BYTES + 256:
            return line + b"\n"
        del record["body"]
    except UnicodeDecodeError:
        pass
    record["body_base64"] = base64.b64encode(body).decode("ascii")
    return encode(record) + b"\n"


async def _answer(
    send: Send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", *, allow: str = "",
    close: bool = False,
) -> None:  # fmt: skip
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", allow.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
