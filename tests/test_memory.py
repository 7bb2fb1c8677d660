"""Memory stays bounded whatever the archive holds: each case is a real `siq convert` process and its peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from siq_schemas import drift
from siq_schemas.converter import output

#: A generous bound on a run's peak memory: each of these archives took 1.8 to 2.5 GB before it was bounded.
PEAK = 1 << 30
T0 = 1_772_000_000_000


def payload(event: str, entity_id: str, time: int, entity: dict) -> dict:
    """A valid payload of ``event`` as real deliveries carry it."""
    envelope = {"version": 1, "event": event, "event_time": str(time), "org_id": "55778119"}
    envelope |= {"entity_type": event.split(".")[0], "entity_id": entity_id, "attempt": 1, "webhook": {"id": "w1"}}
    return envelope | {"entity": entity}


def write_archive(path: Path, payloads) -> Path:
    """Write ``payloads`` (an iterable, written one at a time) as JSON Lines."""
    with path.open("w", encoding="utf-8") as handle:
        for value in payloads:
            handle.write(json.dumps(value) + "\n")
    return path


def peak_of_convert(archive: Path, out: Path) -> int:
    """Run `python -m siq_schemas convert ARCHIVE --out OUT` and return its peak RSS in bytes (it must succeed)."""
    command = [sys.executable, "-m", "siq_schemas", "convert", str(archive), "--out", str(out), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 0, error
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def test_many_distinct_unknown_fields_keep_memory_and_the_drift_report_small(tmp_path):
    """4 records of 100,000 distinct unknown fields each: bounded memory, a small report, exact totals."""
    records = (
        payload("department.updated", f"d{r}", T0 + r, {"id": f"d{r}"} | {f"x{r}_{i}": 1 for i in range(100_000)})
        for r in range(4)
    )
    archive = write_archive(tmp_path / "fields.jsonl", records)
    assert peak_of_convert(archive, tmp_path / "out") < PEAK
    report_file = tmp_path / "out" / output.DRIFT
    assert report_file.stat().st_size < 4 << 20
    report = json.loads(report_file.read_text())
    unknown = [f for f in report["findings"] if f["kind"] == "unknown-field"]
    itemised = [f for f in unknown if f["path"] != drift.OTHERS]
    (others,) = [f for f in unknown if f["path"] == drift.OTHERS]
    assert len(itemised) == drift.MAX_FINDINGS and all(f["count"] == 1 for f in itemised)
    assert others["count"] == 400_000 - drift.MAX_FINDINGS and others["event"] == "department.updated"
    assert itemised[0]["path"] == "$.entity.x0_0" and itemised[0]["first"].endswith("fields.jsonl:1")


def test_departments_listing_300000_operators_each_are_folded_out_of_core(tmp_path):
    """8 department.created events of 300,000 operators each (50 MB) fold in bounded memory, every member kept."""
    records = (
        payload(
            "department.created",
            f"d{r}",
            T0 + r,
            {"id": f"d{r}", "name": "Support", "operators": [str(10**16 + r * 300_000 + i) for i in range(300_000)]},
        )
        for r in range(8)
    )
    archive = write_archive(tmp_path / "departments.jsonl", records)
    assert peak_of_convert(archive, tmp_path / "out") < PEAK
    rows = duckdb.sql(
        f"SELECT department_id, len(operators), operators[1] FROM '{tmp_path}/out/departments/*.parquet' ORDER BY 1"
    ).fetchall()
    assert rows == [(f"d{r}", 300_000, str(10**16 + r * 300_000)) for r in range(8)]


def test_records_of_7_mib_each_are_staged_in_batches_bounded_by_bytes(tmp_path):
    """45 records of 7 MiB each (an unknown field of the entity) are staged and merged in bounded memory."""
    big = "x" * (7 << 20)
    records = (
        payload("department.updated", f"d{r}", T0 + r, {"id": f"d{r}", "name": "Support", "notes": big})
        for r in range(45)
    )
    archive = write_archive(tmp_path / "large.jsonl", records)
    assert peak_of_convert(archive, tmp_path / "out") < PEAK
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["tables"]["events"] == 45
