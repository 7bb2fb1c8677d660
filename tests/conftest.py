"""Shared fixtures: payloads and archives written to real files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

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
    path.write_text(
        "".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in values), encoding="utf-8"
    )
    return path
