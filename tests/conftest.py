"""Shared fixtures: payloads and archives written to real files."""

from __future__ import annotations

import base64
import copy
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEYS = Path(__file__).parent / "keys"


def _private(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((KEYS / f"key_{name}_private.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


PRIVATE = {name: _private(name) for name in ("a", "b", "unknown")}


def sign(body: bytes, key: str = "a") -> str:
    """Base64 RSASSA-PKCS1-v1_5 SHA-256 signature of ``body`` by test key ``key``."""
    return base64.b64encode(PRIVATE[key].sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def delivery(
    payload: dict[str, Any] | str, key: str | None = "a", received_at: str = "2026-03-01T10:00:00Z", **dumps: Any
) -> dict[str, Any]:
    """A delivery record of ``payload`` (serialised with ``json.dumps(**dumps)``), signed by test ``key``."""
    body = payload if isinstance(payload, str) else json.dumps(payload, **dumps)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-siqsignature"] = sign(body.encode(), key)
    return {"received_at": received_at, "headers": headers, "body": body}


DEPARTMENT_DELETED = {
    "entity_type": "department",
    "org_id": "55778119",
    "event": "department.deleted",
    "entity_id": "40526000001808025",
    "attempt": 1,
    "version": "1",
    "event_time": "1567065647511",
}

RATED = {
    "entity_type": "conversation",
    "org_id": "55778119",
    "event": "conversation.rated",
    "entity_id": "40526000001808033",
    "attempt": 1,
    "version": "1",
    "app_id": 40526000000002040,
    "entity": {
        "id": "40526000001808033",
        "rating": 4,
        "feedback": "Good support",
        "owner": {"id": "40526000000002001", "name": "Patricia", "email_id": "patricia@zylker.com"},
        "visitor": {"id": "30000000090034", "name": "Tricia", "type": "contact"},
    },
    "event_time": "1567065865617",
}


@pytest.fixture
def rated() -> dict[str, Any]:
    """A valid conversation.rated payload (a fresh copy)."""
    return copy.deepcopy(RATED)


@pytest.fixture
def department_deleted() -> dict[str, Any]:
    """A valid department.deleted payload (a fresh copy)."""
    return copy.deepcopy(DEPARTMENT_DELETED)


def write_lines(path: Path, values: list[Any]) -> Path:
    """Write ``values`` as JSON Lines (strings are written as they are)."""
    path.write_text("".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in values), encoding="utf-8")
    return path


def siq(*arguments: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `siq` in a real process; one that does not end within ``timeout`` seconds is killed (the test fails)."""
    command = [sys.executable, "-m", "siq_schemas", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, errors="backslashreplace")


def pytest_configure(config: Any) -> None:
    """Ctrl-C reaches the suite as a terminal sends it, however the suite was started.

    A script that starts the suite in the background (`make test &`) leaves it SIGINT
    ignored, and every `siq` process the tests start would inherit that: the Ctrl-C
    tests would then test a background job, not a command interrupted at a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After a fuzzing session (`make fuzz`), how many examples each target ran."""
    from tests import fuzzing

    for line in fuzzing.report():
        terminalreporter.write_line(line)


#: A Zobot (bot platform) request as it reaches a webhook URL: ``handler``, ``visitor``, ``request``,
#: ``message`` and no ``event`` (shape from the vendor's Zobot webhook pages, values made up).
ZOBOT_REQUEST = {
    "handler": "message",
    "operation": "chat",
    "visitor": {"id": "$2463902591169630574", "name": "Tricia", "channel": "website", "email": "t@example.com"},
    "request": {"id": "30000000090111", "time": 1769112912709},
    "message": {"text": "Where is my order?"},
}
