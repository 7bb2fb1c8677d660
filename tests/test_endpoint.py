"""The webhook endpoints shown in the README work as shown: the ASGI service and the hand-written one."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

from siq_schemas import convert
from tests.conftest import DEPARTMENT_DELETED, sign
from tests.receiver import KEY_A, Server, bodies, event, signed

ROOT = Path(__file__).parent.parent
KEYS = Path(__file__).parent / "keys"


def readme_code(first_line: str) -> str:
    """The README's Python block that starts with ``first_line``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(rf"```python\n({re.escape(first_line)}\n.*?)```", readme, re.DOTALL)
    return code


@pytest.fixture
def archive(tmp_path):
    return tmp_path / "archive" / "deliveries"


@pytest.fixture
def client(monkeypatch, tmp_path, archive):
    """A Flask test client of the README's endpoint module, with test keys A and B and an archive folder."""
    (tmp_path / "webhook_endpoint.py").write_text(readme_code("# webhook_endpoint.py"))
    keys = (KEYS / "key_a_public.pem").read_text() + (KEYS / "key_b_public.pem").read_text()
    monkeypatch.setenv("SIQ_PUBLIC_KEYS", keys)
    monkeypatch.setenv("SIQ_ARCHIVE", str(archive))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "webhook_endpoint", raising=False)
    return importlib.import_module("webhook_endpoint").app.test_client()


def deliveries() -> list[dict]:
    return [json.loads(line) for line in (KEYS / "deliveries.jsonl").read_text().splitlines()]


def archived(archive: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(archive.glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_head_answers_200(client):
    """The HEAD check SalesIQ sends on webhook creation answers 200."""
    assert client.head("/salesiq").status_code == 200


def test_signed_deliveries_are_archived_raw_and_convert(client, archive, tmp_path):
    """Every golden delivery, signed by key A or B, answers 200 and is archived as sent; the archive converts."""
    for delivery in deliveries():
        headers = {**delivery["headers"], "Authorization": "Bearer secret"}
        response = client.post("/salesiq", data=delivery["body"].encode(), headers=headers)
        assert response.status_code == 200
    records = archived(archive)
    assert [record["body"] for record in records] == [delivery["body"] for delivery in deliveries()]
    assert all("authorization" not in record["headers"] for record in records)
    keys = [str(KEYS / "key_a_public.pem"), str(KEYS / "key_b_public.pem")]
    report = convert(str(archive), str(tmp_path / "out"), keys=keys, workers=1)
    assert (report.records_read, report.rejected) == (len(deliveries()), 0)


def test_authentic_but_invalid_deliveries_answer_200_and_are_archived(client, archive):
    """A signed delivery of an unknown event, or one that is not JSON, answers 200 (no retry) and is archived."""
    unknown = json.dumps(dict(DEPARTMENT_DELETED, event="department.exploded")).encode()
    broken = b'{"event": "conversation.rated", '
    for body in (unknown, broken):
        assert client.post("/salesiq", data=body, headers={"x-siqsignature": sign(body)}).status_code == 200
    assert [record["body"].encode() for record in archived(archive)] == [unknown, broken]


def test_tampered_or_unsigned_deliveries_are_refused(client, archive):
    """A one-byte change in the body, or no signature header, answers 401 and archives nothing."""
    delivery = deliveries()[0]
    tampered = delivery["body"].replace("55778119", "55778118").encode()
    assert client.post("/salesiq", data=tampered, headers=delivery["headers"]).status_code == 401
    assert client.post("/salesiq", data=delivery["body"].encode()).status_code == 401
    assert archived(archive) == []


def test_the_asgi_service_archives_signed_deliveries_and_refuses_unsigned_ones(tmp_path):
    """The README's Starlette service mounting create_app, on uvicorn: HEAD 200, signed 200 and archived, else 401."""
    (tmp_path / "service.py").write_text(readme_code("# service.py"))
    archive = tmp_path / "archive"
    env = {"SIQ_ARCHIVE": str(archive), "SIQ_PUBLIC_KEYS": str(KEY_A)}
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "service:app"]
    body = event(1)
    with Server(archive, command=command, env=env, prefix="/hooks") as server:
        assert server.request("HEAD", "/hooks/salesiq")[0] == 200
        assert server.post(body, signed(body), path="/hooks/salesiq") == 200
        assert server.post(body, path="/hooks/salesiq") == 401
        assert server.health()[1]["deliveries"] == 1
    assert bodies(archive) == [body]
