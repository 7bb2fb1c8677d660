"""Real traffic: what SalesIQ and the tools around it send today, beyond the vendor's payload document."""

from __future__ import annotations

import json

import pytest

import siq_schemas
from siq_schemas.cli import main
from siq_schemas.drift import Drift
from tests.conftest import KEYS, ZOBOT_REQUEST, delivery, write_lines

KEY_A = KEYS / "key_a_public.pem"

# ---------------------------------------------------------------------------- Zobot requests


@pytest.mark.parametrize("handler", ["trigger", "message", "context", "failure"])
def test_a_zobot_request_is_named_as_such(handler):
    """validate() raises UnknownEvent saying "a Zobot request, not a webhook event" for every Zobot handler."""
    request = ZOBOT_REQUEST | {"handler": handler}
    with pytest.raises(siq_schemas.UnknownEvent) as raised:
        siq_schemas.validate(request)
    assert str(raised.value) == "a Zobot request, not a webhook event"
    assert raised.value.code == "unknown-event" and not siq_schemas.is_valid(request)


def test_a_payload_without_event_that_is_no_zobot_request_still_lacks_event():
    """Without event and without a Zobot handler (or with a webhook's "execution"), $.event is missing."""
    for payload in ({"visitor": {}}, ZOBOT_REQUEST | {"handler": "execution"}, ZOBOT_REQUEST | {"handler": ["x"]}):
        with pytest.raises(siq_schemas.PayloadInvalid) as raised:
            siq_schemas.validate(payload)
        assert raised.value.json_path == "$.event"


def test_validate_command_names_a_zobot_request(tmp_path, capsys):
    """`siq validate` prints the Zobot request as "a Zobot request, not a webhook event" and exits 1."""
    archive = write_lines(tmp_path / "mixed.jsonl", [delivery(ZOBOT_REQUEST)])
    assert main(["validate", str(archive)]) == 1
    out = capsys.readouterr().out
    assert out == f"{archive}:1 - $.event a Zobot request, not a webhook event\n"
    assert main(["validate", "--json", str(archive)]) == 1
    problem = json.loads(capsys.readouterr().out.splitlines()[0])
    assert problem["reason"] == "unknown-event" and problem["message"] == "a Zobot request, not a webhook event"


def test_convert_rejects_a_zobot_request_as_unknown_event(tmp_path):
    """A signed Zobot request in an archive is one `unknown-event` reject that says what it is, kept raw."""
    record = delivery(ZOBOT_REQUEST)
    archive = write_lines(tmp_path / "deliveries.jsonl", [record])
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEY_A)
    assert report.rejected == 1 and report.events_written == 0
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert rejects.reason.tolist() == ["unknown-event"]
    assert rejects.detail.tolist() == ["a Zobot request, not a webhook event"]
    assert json.loads(rejects.raw[0]) == record


def test_drift_counts_a_zobot_request_as_an_unknown_event():
    """Drift reports a Zobot request as an unknown event seen as "a Zobot request", not a missing $.event."""
    drift = Drift()
    assert not drift.add(ZOBOT_REQUEST, "a.jsonl", 1)
    [finding] = drift.findings()
    assert (finding["event"], finding["kind"], finding["path"]) == (None, "unknown-event", "$.event")
    assert finding["seen"] == "a Zobot request" and "seen a Zobot request" in str(drift)
