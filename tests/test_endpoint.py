"""The webhook endpoint shown in the README works as shown."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
KEYS = Path(__file__).parent / "keys"


@pytest.fixture
def client(monkeypatch, tmp_path):
    """A Flask test client of the README's endpoint module, with test keys A and B in the environment."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(# webhook_endpoint.py\n.*?)```", readme, re.DOTALL)
    (tmp_path / "webhook_endpoint.py").write_text(code)
    keys = (KEYS / "key_a_public.pem").read_text() + (KEYS / "key_b_public.pem").read_text()
    monkeypatch.setenv("SIQ_PUBLIC_KEYS", keys)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "webhook_endpoint", raising=False)
    return importlib.import_module("webhook_endpoint").app.test_client()


def deliveries() -> list[dict]:
    return [json.loads(line) for line in (KEYS / "deliveries.jsonl").read_text().splitlines()]


def test_head_answers_200(client):
    """The HEAD check SalesIQ sends on webhook creation answers 200."""
    assert client.head("/salesiq").status_code == 200


def test_signed_deliveries_are_accepted(client):
    """Every golden delivery, signed by key A or B, is accepted with its headers as sent."""
    for delivery in deliveries():
        response = client.post("/salesiq", data=delivery["body"].encode(), headers=delivery["headers"])
        assert response.status_code == 200


def test_tampered_or_unsigned_deliveries_are_refused(client):
    """A one-byte change in the body, or no signature header, answers 401."""
    delivery = deliveries()[0]
    tampered = delivery["body"].replace("55778119", "55778118").encode()
    assert client.post("/salesiq", data=tampered, headers=delivery["headers"]).status_code == 401
    assert client.post("/salesiq", data=delivery["body"].encode()).status_code == 401
