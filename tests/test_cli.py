"""The `siq` command line: schema and validate, run as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import siq_schemas
from siq_schemas.cli import main
from tests.conftest import DEPARTMENT_DELETED, RATED, delivery, siq, write_lines


def test_schema_lists_every_event(capsys):
    """`siq schema` prints every event name, one a line."""
    assert main(["schema"]) == 0
    assert capsys.readouterr().out.split() == list(siq_schemas.EVENTS)


def test_schema_prints_one_schema(capsys):
    """`siq schema EVENT` prints that event's JSON Schema; --strict the strict variant."""
    assert main(["schema", "conversation.rated"]) == 0
    assert json.loads(capsys.readouterr().out) == siq_schemas.schema("conversation.rated")
    assert main(["schema", "--strict", "envelope"]) == 0
    assert json.loads(capsys.readouterr().out)["unevaluatedProperties"] is False


def test_schema_of_unknown_event_is_a_clean_error(capsys):
    """An unknown event name exits 2 with a one-line message."""
    assert main(["schema", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "siq: unknown event 'nope'; `siq schema` lists the events"


def test_validate_reports_file_line_event_path_and_message(tmp_path):
    """Each invalid record is printed as `file:line event json-path message`; exit 1; summary on stderr."""
    bad = json.loads(json.dumps(RATED))
    bad["entity"]["rating"] = "five"
    unknown = dict(DEPARTMENT_DELETED, event="conversation.exploded")
    delivery = {"headers": {"x-siqsignature": "x"}, "body": json.dumps(bad)}
    path = write_lines(tmp_path / "a.jsonl", [RATED, bad, "", unknown, "{oops", delivery])
    result = siq("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:2 conversation.rated $.entity.rating 'five' is not an integer or a string of digits",
        f"{path}:4 conversation.exploded $.event unknown event 'conversation.exploded'",
        f"{path}:5 - $ invalid JSON: object keys must be strings (byte 1)",
        f"{path}:6 conversation.rated $.entity.rating 'five' is not an integer or a string of digits",
    ]
    assert "5 records: 1 valid, 3 invalid, 1 unreadable (1 blank lines skipped)" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_json_output(tmp_path, capsys):
    """--json writes one object per problem with its reason, then the counts."""
    no_time = {k: v for k, v in DEPARTMENT_DELETED.items() if k != "event_time"}
    path = tmp_path / "a.json"
    path.write_text(json.dumps([DEPARTMENT_DELETED, no_time]))
    assert main(["validate", "--json", str(path)]) == 1
    problem, counts = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert problem == {
        "source": str(path),
        "line": 2,
        "event": "department.deleted",
        "reason": "schema-invalid",
        "json_path": "$.event_time",
        "message": "'event_time' is a required property",
    }
    assert counts == {"records": 2, "valid": 1, "invalid": 1, "unreadable": 0, "blank": 0}


def test_validate_all_valid_exits_zero(tmp_path, capsys):
    """A file of valid payloads exits 0."""
    path = write_lines(tmp_path / "a.jsonl", [RATED, DEPARTMENT_DELETED])
    assert main(["validate", str(path)]) == 0
    assert "2 records: 2 valid, 0 invalid, 0 unreadable" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, b"\xff\xfe\xfd", b"[{"])
def test_unreadable_input_is_one_clean_line(tmp_path, content):
    """A missing file exits 2; bad UTF-8 or bad JSON is reported as unreadable with exit 1; no traceback."""
    path = tmp_path / "a.json"
    if content is not None:
        path.write_bytes(content)
    result = siq("validate", str(path))
    assert result.returncode == (2 if content is None else 1)
    assert "Traceback" not in result.stderr
    if content is None:
        assert result.stderr.strip() == f"siq: {path}: no such file or directory"
    else:
        assert result.stdout.startswith(f"{path}:1 - $ invalid ")


def test_every_command_has_help():
    """Every command answers --help with its description and exits 0."""
    for command in siq_schemas.cli.cli.commands:
        result = siq(command, "--help")
        assert result.returncode == 0 and "Usage: siq " + command in result.stdout


KEYS = Path(__file__).parent / "keys"


def test_verify_counts_valid_signatures_by_key(capsys):
    """`siq verify` with both test keys finds every golden delivery valid and names the keys; exit 0."""
    keyring = siq_schemas.load_keys(KEYS / "key_a_public.pem", KEYS / "key_b_public.pem")
    code = main(
        [
            "verify",
            "--keys",
            str(KEYS / "key_a_public.pem"),
            "-k",
            str(KEYS / "key_b_public.pem"),
            str(KEYS / "deliveries.jsonl"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0 and captured.out == ""
    for key_id in keyring.ids:
        assert f"{key_id}: " in captured.err
    assert "0 invalid, 0 missing, 0 unreadable" in captured.err


def test_verify_lists_each_failure_and_exits_one(tmp_path, capsys):
    """With only key A, B's deliveries fail; bare payloads are missing; each failure is `file:line reason`."""
    archive = tmp_path / "mixed.jsonl"
    archive.write_text((KEYS / "deliveries.jsonl").read_text() + json.dumps(DEPARTMENT_DELETED) + "\n{oops\n")
    assert main(["verify", "--keys", str(KEYS / "key_a_public.pem"), str(archive)]) == 1
    captured = capsys.readouterr()
    reasons = [line.split()[1] for line in captured.out.splitlines()]
    assert reasons == ["signature-invalid", "signature-invalid", "signature-missing", "unreadable"]
    assert captured.out.splitlines()[0].startswith(f"{archive}:3 ")
    assert f"{archive}: 2 valid" in captured.err and "2 invalid, 1 missing, 1 unreadable" in captured.err


def test_verify_with_a_private_key_is_a_clean_error():
    """Giving a private key exits 2 with a message saying so, and no traceback."""
    result = siq("verify", "--keys", str(KEYS / "key_a_private.pem"), str(KEYS / "deliveries.jsonl"))
    assert result.returncode == 2
    assert "PRIVATE key" in result.stderr and "Traceback" not in result.stderr


def _key_copy(tmp_path: Path, name: str) -> Path:
    """Key B in a file named as users name key files (``b.pem``, ``b.pub``, ``b.der``, ``key_b``)."""
    path = tmp_path / name
    path.write_bytes((KEYS / "key_b_public.pem").read_bytes())
    return path


@pytest.mark.parametrize("name", ["b.pem", "b.pub", "b.der", "key_b"])
def test_verify_keys_listed_after_one_option_is_a_usage_error(tmp_path, name):
    """`siq verify --keys A.pem B.pem FILE` exits 2 saying to repeat --keys; the key is never read as records."""
    key = _key_copy(tmp_path, name)
    result = siq("verify", "--keys", str(KEYS / "key_a_public.pem"), str(key), str(KEYS / "deliveries.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"siq: {key} is not an archive")
    assert "--keys A.pem --keys B.pem" in result.stderr
    assert result.stdout == "" and "invalid" not in result.stderr.replace("is not an archive", "")


@pytest.mark.parametrize("name", ["b.pem", "key_b"])
def test_convert_keys_listed_after_one_option_is_a_usage_error(tmp_path, name):
    """`siq convert SRC --keys A.pem B.pem --out OUT` exits 2 before writing anything: no rejects are made of a key."""
    key = _key_copy(tmp_path, name)
    out = tmp_path / "out"
    result = siq(
        "convert", str(KEYS / "deliveries.jsonl"), "--keys", str(KEYS / "key_a_public.pem"), str(key), "--out", str(out)
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{key} is not an archive" in result.stderr and "--keys A.pem --keys B.pem" in result.stderr
    assert not out.exists()


def test_validate_and_drift_refuse_a_key_file_among_sources(tmp_path):
    """`siq validate` and `siq drift` exit 2 on a file that is not an archive, also when a glob matches it."""
    key = _key_copy(tmp_path, "b.pem")
    for command in ("validate", "drift"):
        for source in (str(key), str(tmp_path / "b.*")):
            result = siq(command, str(KEYS / "deliveries.jsonl"), source)
            assert result.returncode == 2 and f"{key} is not an archive" in result.stderr, (command, source)


def test_repeated_keys_verify_both_keys_deliveries(tmp_path):
    """`--keys A --keys B` (the way the error says) verifies the deliveries of both keys: convert rejects nothing."""
    out = tmp_path / "out"
    keys = ["--keys", str(KEYS / "key_a_public.pem"), "--keys", str(_key_copy(tmp_path, "key_b"))]
    assert siq("verify", *keys, str(KEYS / "deliveries.jsonl")).returncode == 0
    result = siq("convert", str(KEYS / "deliveries.jsonl"), *keys, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rejected"] == 0


def test_signature_header_with_surrounding_whitespace_verifies(tmp_path, capsys):
    """A delivery whose x-siqsignature has surrounding spaces or a trailing newline verifies and converts as valid."""
    records = []
    for padding in ("  {}  ", "{}\n", "\t{}\r\n"):
        record = delivery(DEPARTMENT_DELETED | {"event_time": str(1567065647511 + len(records))})
        record["headers"]["x-siqsignature"] = padding.format(record["headers"]["x-siqsignature"])
        records.append(record)
    archive = write_lines(tmp_path / "padded.jsonl", records)
    assert main(["verify", "--keys", str(KEYS / "key_a_public.pem"), str(archive)]) == 0
    assert "3 valid" in capsys.readouterr().err
    report = siq_schemas.convert(archive, tmp_path / "out", keys=KEYS / "key_a_public.pem")
    assert report.rejected == 0 and report.events_written == 3
    assert set(siq_schemas.read_table(tmp_path / "out", "events")["signature"]) == {"valid"}


def test_validate_verify_and_drift_read_within_the_limit_flags(tmp_path):
    """`siq validate`, `verify` and `drift` take the limit flags: a record beyond them is unreadable there."""
    deep = {**DEPARTMENT_DELETED, "entity": {"a": {"b": {"c": {"d": 1}}}}}
    write_lines(tmp_path / "a.jsonl", [delivery(deep)])
    archive = str(tmp_path / "a.jsonl")
    assert json.loads(siq("validate", archive, "--json").stdout.splitlines()[-1])["unreadable"] == 0
    shallow = siq("validate", archive, "--max-depth", "3", "--json")
    assert shallow.returncode == 1 and json.loads(shallow.stdout.splitlines()[-1])["unreadable"] == 1
    keys = ("--keys", str(KEYS / "key_a_public.pem"))
    assert siq("verify", *keys, archive).returncode == 0
    short = siq("verify", *keys, archive, "--max-record-bytes", "64")
    assert short.returncode == 1 and "1 unreadable" in short.stderr
    assert "unreadable records skipped" not in siq("drift", archive).stderr
    assert "1 unreadable records skipped" in siq("drift", archive, "--max-depth", "3").stderr
