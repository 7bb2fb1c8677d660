"""Helpers of the receiver's tests: `siq serve` as a real process on a loopback port, and its clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import DEPARTMENT_DELETED, KEYS, sign

KEY_A, KEY_B = KEYS / "key_a_public.pem", KEYS / "key_b_public.pem"


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def event(number: int, attempt: int = 1) -> bytes:
    """The body of a distinct department.deleted event (``attempt`` > 1: a retry of the same event)."""
    payload = dict(DEPARTMENT_DELETED, entity_id=str(40526000001808025 + number), attempt=attempt)
    payload["event_time"] = str(1567065647511 + number)
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(body: bytes, key: str = "a") -> dict[str, str]:
    """The headers SalesIQ sends with ``body``, signed by test key ``key``."""
    return {"content-type": "application/json", "x-siqsignature": sign(body, key)}


class Server:
    """`siq serve` on a free loopback port; stopped (SIGTERM, then SIGKILL) by :meth:`stop`."""

    def __init__(
        self,
        archive: Path,
        *args: str,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        command: list[str] | None = None,
        prefix: str = "",
    ) -> None:
        """Start ``siq serve --archive archive *args`` (or ``command`` followed by ``--port``), wait for /healthz.

        ``prefix`` is where the receiver is mounted (its /healthz is then ``prefix/healthz``).
        """
        self.archive, self.port, self.prefix = archive, free_port(), prefix
        command = command or [sys.executable, "-m", "siq_schemas", "serve", "--archive", str(archive), *args]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env={**os.environ, **(env or {})},
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("the server did not answer within 30 s")

    def request(self, method: str, path: str = "/", body: bytes | None = None, headers: dict | None = None) -> Any:
        """One request on a new connection: ``(status, body bytes)``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post(self, body: bytes, headers: dict | None = None, path: str = "/") -> int:
        return self.request("POST", path, body, headers)[0]

    def health(self) -> tuple[int, dict]:
        status, text = self.request("GET", f"{self.prefix}/healthz")
        return status, json.loads(text)

    def stop(self, number: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Stop the server with signal ``number``; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(number)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"siq serve did not stop within {timeout} s of signal {number}") from None
        finally:
            self.process.stderr.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.stop()


class Load:
    """Clients posting signed distinct events on keep-alive connections, in threads, until stopped.

    ``acked`` holds every body answered 200 (a connection error, e.g. the server gone, ends a client).
    """

    def __init__(self, port: int, clients: int = 8, start: int = 0) -> None:
        self.port, self.acked, self.statuses = port, [], []
        self._next, self._lock, self._stop = start, threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while not self._stop.is_set():
                with self._lock:
                    number, self._next = self._next, self._next + 1
                body = event(number)
                connection.request("POST", "/", body=body, headers=signed(body))
                response = connection.getresponse()
                response.read()
                with self._lock:
                    self.statuses.append(response.status)
                    if response.status == 200:
                        self.acked.append(body)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acked) >= count, f"only {len(self.acked)} deliveries acknowledged in {timeout} s"

    def finish(self, timeout: float = 20) -> list[bytes]:
        """Stop the clients (each after its request in flight) and return the bodies acknowledged."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        return list(self.acked)


def set_clock(path: Path, when: str) -> None:
    """Set the time a receiver started with ``SIQ_SERVE_CLOCK=path`` reads as now (replaced atomically)."""
    path.with_suffix(".new").write_text(when)
    path.with_suffix(".new").replace(path)


def archived(archive: Path) -> list[dict]:
    """Every delivery record in the archive's uncompressed files, in file then line order."""
    records = []
    for path in sorted((archive / "deliveries").glob("*.jsonl")):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name} ends with a partial line"
        records.extend(json.loads(line) for line in data.splitlines())
    return records


def bodies(archive: Path) -> list[bytes]:
    """The raw bodies of the archive's delivery records."""
    return [record["body"].encode() for record in archived(archive)]


def wait_compressed(archive: Path, day: str) -> None:
    """Wait until the receiver has replaced slot 0's file of ``day`` by its .jsonl.zst."""
    plain = archive / "deliveries" / f"siq-deliveries-{day}.jsonl"
    deadline = time.monotonic() + 20
    while plain.exists() or not plain.with_name(plain.name + ".zst").exists():
        assert time.monotonic() < deadline, f"{plain.name} not compressed within 20 s"
        time.sleep(0.05)
