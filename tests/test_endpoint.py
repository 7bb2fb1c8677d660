"""The hand-written webhook endpoint shown in the README works as shown."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

from siq_schemas import convert
from tests.conftest import DEPARTMENT_DELETED, sign

ROOT = Path(__file__).parent.parent
KEYS = Path(__file__).parent / "keys"


@pytest.fixture
def archive(tmp_path):
    return tmp_path / "archive" / "deliveries"


@pytest.fixture
def client(monkeypatch, tmp_path, archive):
    """A Flask test client of the README's endpoint module, with test keys A and B and an archive folder."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(# webhook_endpoint.py\n.*?)```", readme, re.DOTALL)
    (tmp_path / "webhook_endpoint.py").write_text(code)
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
