"""Schema drift: `siq drift`, the `_drift.json` of `siq convert`, and new fields reached through `events.entity`."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import siq_schemas
from siq_schemas import drift
from siq_schemas.cli import main
from siq_schemas.converter import Tuning, output
from siq_schemas.drift import Drift
from siq_schemas.parse import loads
from siq_schemas.read import expand, read_records
from tests.conftest import write_lines

ROOT = Path(__file__).parent.parent
ARCHIVE = ROOT / "tests" / "drift"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def expected(archive: Path) -> dict:
    """The report of tests/drift (see its README), its records read from ``archive``."""
    first = f"{archive / 'deliveries.jsonl'}:"

    def finding(event, kind, path, count, line, example, expected=None, seen=None):
        return {
            "event": event,
            "kind": kind,
            "path": path,
            "expected": expected,
            "seen": seen,
            "count": count,
            "first": f"{first}{line}",
            "example": example,
        }

    rated = "conversation.rated"
    boolean, supervisors = '[true,false,"true","false"]', "$.entity.supervisors[*]"
    return {
        "format": 1,
        "records": 10,
        "records_with_drift": 9,
        "events": {
            "conversation.created": 1,
            "conversation.rated": 4,
            "conversation.reopened": 1,
            "conversation.translated": 2,
            "department.deleted": 1,
            "department.updated": 1,
        },
        "findings": [
            finding(rated, "unknown-field", "$.entity.sentiment", 4, 1, '"positive"'),
            finding(rated, "unknown-field", "$.entity.owner.team", 2, 1, '"emea"'),
            finding(
                "conversation.translated",
                "unknown-event",
                "$.event",
                2,
                5,
                '{"id":"40526000001808041","language":"de"}',
            ),
            finding(rated, "unknown-field", "$.region", 2, 1, '"eu"'),
            finding(
                "conversation.reopened",
                "unpublished-event",
                "$.entity",
                1,
                6,
                '{"id":"40526000001808033","status":"reopened"}',
            ),
            finding("department.updated", "missing-required", "$.entity.id", 1, 7, None),
            finding("department.updated", "enum-value", "$.entity.is_enabled", 1, 7, '"yes"', boolean, '"yes"'),
            finding(rated, "type-mismatch", "$.entity.rating", 1, 4, '"5"', "integer", "string"),
            finding("conversation.created", "type-mismatch", supervisors, 1, 8, "null", "integer or string", "null"),
        ],
    }


def check(archive: Path, explain: str = "by-shape") -> Drift:
    """The drift of every readable record of ``archive``, file by file, merged as `siq drift` merges."""
    parts = {}
    for path in expand([archive]):
        found = parts[str(path.resolve())] = Drift(explain)
        for record in read_records(path):
            if record.kind in ("delivery", "bare"):
                found.add(record.parse(), record.source, record.line)
    return drift.merged(parts)


@pytest.fixture
def archive(tmp_path) -> Path:
    """A copy of tests/drift in a fresh folder."""
    return Path(shutil.copytree(ARCHIVE, tmp_path / "drifted"))


def test_drifted_archive_gives_exactly_the_expected_report(capsys):
    """Added fields, a changed type, a new event name and more give exactly the report listed in tests/drift."""
    assert main(["drift", "--json", str(ARCHIVE)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == expected(ARCHIVE)
    assert captured.err == "1 unreadable records skipped (`siq validate` names them)\n"


def test_field_notes_and_vendor_document_shapes_do_not_drift():
    """Every documented (`doc-`) and observed (`notes-`) example matches the strict schemas: no finding at all."""
    found = Drift()
    paths = sorted((ROOT / "tests" / "examples").glob("*/valid/*.json"))
    observed = [path for path in paths if path.name.startswith(("doc-", "notes-"))]
    assert len(observed) > 40
    for path in observed:
        assert found.add(loads(path.read_bytes()), str(path), 1)
    assert (found.records, len(found), found.findings()) == (len(observed), 0, [])


def test_unpublished_events_are_reported_and_valid():
    """An event the vendor publishes no payload for is one `unpublished-event` finding, and still valid."""
    path = ROOT / "tests" / "examples" / "conversation.metrics" / "valid" / "synthetic-plausible-entity.json"
    found = Drift()
    assert found.add(loads(path.read_bytes()), "x.json", 1) is True
    (finding,) = found.findings()
    assert (finding["kind"], finding["event"]) == ("unpublished-event", "conversation.metrics")
    assert finding["path"] == "$.entity"


def test_add_returns_the_lenient_verdict(rated):
    """`Drift.add` answers as `is_valid` does: unknown fields and "5" are valid, "five" or an unknown event is not."""
    found = Drift()
    assert found.add({**rated, "region": "eu"}) is True
    assert found.add({**rated, "entity": {**rated["entity"], "rating": "5"}}) is True
    assert found.add({**rated, "entity": {**rated["entity"], "rating": "five"}}) is False
    assert found.add({**rated, "event": "conversation.translated"}) is False
    assert found.add(rated) is True and found.records_with_drift == 4


def test_explaining_by_jsonschema_gives_the_same_report():
    """`jsonschema`, which explains the values the compiled validator cannot take, gives the same report."""
    assert check(ARCHIVE, "jsonschema").to_dict() == check(ARCHIVE).to_dict() == expected(ARCHIVE)


def test_shapes_explained_once_give_what_explaining_each_payload_gives():
    """Unknown fields remembered by payload shape are those found by explaining every payload afresh."""
    assert check(ARCHIVE, "each").to_dict() == check(ARCHIVE).to_dict() == expected(ARCHIVE)
    with pytest.raises(ValueError, match="unknown way to explain 'guess'"):
        Drift("guess")


def test_report_round_trips_and_merges_in_name_order():
    """A report rebuilds its accumulator; merging parts gives the same report whatever order they are given in."""
    parts = {}
    for path in expand([ARCHIVE]):
        found = parts[str(path)] = Drift()
        for record in read_records(path):
            if record.kind in ("delivery", "bare"):
                found.add(record.parse(), record.source, record.line)
    whole = drift.merged(parts).to_dict()
    assert drift.merged(dict(reversed(parts.items()))).to_dict() == whole
    assert Drift.from_dict(whole).to_dict() == whole
    assert json.loads(json.dumps(whole)) == whole


def test_drift_command_prints_a_table_most_frequent_first(capsys):
    """`siq drift` prints a header line, then one aligned line a finding, by count, and exits 0."""
    assert main(["drift", str(ARCHIVE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "10 records, 9 with drift (counted per record read: retries and copies count again)"
    assert lines[1].split() == ["count", "event", "drift", "path", "detail", "first", "example"]
    assert lines[2].split()[:4] == ["4", "conversation.rated", "unknown-field", "$.entity.sentiment"]
    assert "expected integer, seen string" in lines[9] and lines[9].split()[-1] == '"5"'
    assert len(lines) == 11


def test_drift_command_without_drift_says_so(tmp_path, rated, capsys):
    """An archive the schemas fully describe gives one line and exit 0."""
    (tmp_path / "a.json").write_text(json.dumps([rated, rated]))
    assert main(["drift", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "2 records, 0 with drift: every payload is what the schemas describe\n"


def test_drift_command_on_a_missing_file_is_one_clean_line(tmp_path):
    """An input that cannot be opened exits 2 with a message naming it, and no traceback."""
    command = [sys.executable, "-m", "siq_schemas", "drift", str(tmp_path / "missing.jsonl")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"siq: {tmp_path / 'missing.jsonl'}: no such file or directory\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_convert_writes_the_drift_report(archive, capsys, workers):
    """`siq convert` writes what `siq drift` reports to OUT/_drift.json, with one or two workers, and says so."""
    report = siq_schemas.convert(archive, archive.parent / "out", workers=workers, tuning=Tuning(parallel_bytes=0))
    written = json.loads((archive.parent / "out" / output.DRIFT).read_text())
    inputs = written.pop("inputs")
    assert written == expected(archive)
    assert sorted(inputs) == [str(archive / "deliveries.jsonl"), str(archive / "export.json")]
    assert report.drift == 9 and report.rejected_by_reason["unknown-event"] == 2
    assert str(report).splitlines()[-1] == (
        f"drift: 9 findings the schemas do not describe, listed in {archive.parent / 'out' / '_drift.json'} "
        "(`siq drift SOURCE...` prints them)"
    )
    manifest = json.loads((archive.parent / "out" / "_manifest.json").read_text())
    assert manifest["last_run"]["drift"] == 9


def test_convert_in_steps_gives_the_drift_of_one_conversion(archive, tmp_path):
    """A grown file, a new file and a run with nothing new leave the report of one conversion of everything."""
    deliveries = archive / "deliveries.jsonl"
    lines = deliveries.read_text().splitlines(keepends=True)
    export = archive / "export.json"
    held = export.rename(tmp_path / "export.json")
    deliveries.write_text("".join(lines[:4]))
    siq_schemas.convert(archive, tmp_path / "out")
    deliveries.write_text("".join(lines))
    held.rename(export)
    grown = siq_schemas.convert(archive, tmp_path / "out")
    assert grown.records_read == 8 and grown.drift == 9
    again = siq_schemas.convert(archive, tmp_path / "out")
    assert (again.records_read, again.drift) == (0, 9)
    siq_schemas.convert(archive, tmp_path / "fresh")
    stepped = json.loads((tmp_path / "out" / output.DRIFT).read_text())
    fresh = json.loads((tmp_path / "fresh" / output.DRIFT).read_text())
    assert stepped == fresh
    assert {key: value for key, value in fresh.items() if key != "inputs"} == expected(archive)


def test_readme_reaches_a_new_field_through_events_entity(archive, tmp_path, monkeypatch, capsys):
    """The README's pandas and DuckDB snippet pulls a new field out of `events.entity` and prints what it shows."""
    section = README.partition("## Schema drift")[2]
    snippet = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").mkdir()
    archive.rename(tmp_path / "tests" / "drift")
    assert main(["convert", "tests/drift", "--out", "out/drifted", "--quiet"]) == 0
    exec(snippet, {})
    shown = [line.removeprefix("# ") for line in snippet.splitlines() if line.startswith("# ")]
    assert capsys.readouterr().out.splitlines() == shown


def _many_fields(rng: random.Random, records: int, start: int) -> list[dict]:
    """``records`` department.updated payloads of 300 unknown fields each, drawn from 3,000 names."""
    return [
        {"entity_type": "department", "org_id": "55778119", "event": "department.updated", "entity_id": "d1"}
        | {"attempt": 1, "version": "1", "event_time": str(1_772_000_000_000 + start + n)}
        | {"entity": {"id": "d1"} | {f"f{rng.randrange(3000):04d}": n for _ in range(300)}}
        for n in range(records)
    ]


def test_capped_findings_merge_to_the_report_of_one_pass_with_exact_counts(tmp_path):
    """Past MAX_FINDINGS per event and kind, parts merged (and a grown output) give one pass's report, counts exact."""
    rng = random.Random(12)
    files = {tmp_path / "in" / f"{name}.jsonl": _many_fields(rng, 6, 10 * n) for n, name in enumerate("abc")}
    (tmp_path / "in").mkdir()
    one, parts, truth = Drift(), {}, Counter()
    for path, payloads in files.items():
        write_lines(path, payloads)
        part = parts[str(path)] = Drift()
        for line, payload in enumerate(payloads, 1):
            one.add(payload, str(path), line)
            part.add(payload, str(path), line)
            truth.update(f"$.entity.{name}" for name in payload["entity"] if name != "id")
    whole = one.to_dict()
    assert drift.merged(parts).to_dict() == whole
    assert drift.merged({name: Drift.from_dict(part.to_dict()) for name, part in parts.items()}).to_dict() == whole
    itemised = {f["path"]: f["count"] for f in whole["findings"] if f["path"] != drift.OTHERS}
    (others,) = [f for f in whole["findings"] if f["path"] == drift.OTHERS]
    assert sorted(itemised) == sorted(truth)[: drift.MAX_FINDINGS]
    assert itemised == {path: truth[path] for path in itemised}
    assert others["count"] == sum(truth.values()) - sum(itemised.values()) > 0
    siq_schemas.convert(next(iter(files)), tmp_path / "out")
    siq_schemas.convert(list(files), tmp_path / "out")
    written = json.loads((tmp_path / "out" / output.DRIFT).read_text())
    assert {key: value for key, value in written.items() if key != "inputs"} == whole
