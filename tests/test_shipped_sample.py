"""The sample archive shipped in data/ is what `siq sample` writes, and converts to its expected counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import siq_schemas
from siq_schemas.sample import write_sample

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
EXPECTED = json.loads((SAMPLE / "_expected.json").read_text())
KEY = SAMPLE / "keys" / "sample_public.pem"


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[siq_schemas.Report, Path]:
    """The shipped sample converted as `make demo` does."""
    out = tmp_path_factory.mktemp("demo") / "out"
    return siq_schemas.convert(SAMPLE, out, keys=KEY, allow_unsigned=True), out


def test_shipped_sample_is_what_siq_sample_writes(tmp_path):
    """`siq sample --seed 7 --events 3000` writes exactly the files committed in data/sample."""
    write_sample(tmp_path / "sample", seed=7, events=3000)
    assert digests(tmp_path / "sample") == digests(SAMPLE)


def test_report_matches_the_expected_counts(converted):
    """records read, events written, duplicates, rejects and blank lines are the generator's counts."""
    report, _ = converted
    assert report.records_read == EXPECTED["records_read"]
    assert report.events_written == EXPECTED["events_written"]
    assert report.duplicates == EXPECTED["duplicates"]
    assert report.blank_lines == EXPECTED["blank_lines"]
    assert report.rejected_by_reason == EXPECTED["rejected"]
    assert report.balanced


@pytest.mark.parametrize("name", sorted(EXPECTED["tables"]))
def test_every_table_has_its_expected_rows(converted, name):
    """Each table has the number of rows the generator's model gives."""
    _, out = converted
    assert len(siq_schemas.read_table(out, name)) == EXPECTED["tables"][name]


def test_folded_facts_match_the_simulation(converted):
    """Conversations by outcome, ratings, messages by role, active operators and departments are as simulated."""
    _, out = converted
    facts = EXPECTED["facts"]
    conversations = siq_schemas.read_table(out, "conversations")
    assert conversations["outcome"].value_counts().to_dict() == facts["conversations"]
    ratings = siq_schemas.read_table(out, "ratings")
    assert ratings["rating"].count() == facts["ratings"]["count"]
    assert round(ratings["rating"].mean(), 4) == facts["ratings"]["mean"]
    assert ratings["rating"].isna().sum() == facts["ratings"]["feedback_only"]
    roles = siq_schemas.read_table(out, "messages")["sender_role"].value_counts().to_dict()
    assert roles == facts["messages"]
    assert siq_schemas.read_table(out, "operators")["is_active"].sum() == facts["operators_active"]
    assert siq_schemas.read_table(out, "departments")["is_active"].sum() == facts["departments_active"]


def test_corrupt_sample_rejects_one_record_of_each_reason_with_its_raw_record(tmp_path):
    """`siq sample --corrupt`: the accounting identity holds and each reason has one reject keeping its record."""
    expected = write_sample(tmp_path / "sample", seed=11, events=300, corrupt=True)
    report = siq_schemas.convert(
        tmp_path / "sample",
        tmp_path / "out",
        keys=tmp_path / "sample" / "keys" / "sample_public.pem",
        allow_unsigned=True,
    )
    assert report.balanced and report.records_read == expected["records_read"]
    assert report.rejected_by_reason == {reason: 1 for reason in expected["rejected"]}
    rejects = siq_schemas.read_table(tmp_path / "out", "rejects")
    assert sorted(rejects["reason"]) == sorted(expected["rejected"])
    assert all(len(raw) > 0 for raw in rejects["raw"])
    assert rejects["source"].str.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")).all()
