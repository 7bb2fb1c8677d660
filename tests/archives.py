"""Archives for the converter's tests: payloads as real deliveries carry them, and the tables of an output."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from siq_schemas.tables import TABLES


def envelope(event: str, entity_id: str, time: int, entity: dict | None = None, **extra) -> dict:
    """A valid payload of ``event`` (the envelope fields as real deliveries carry them)."""
    payload = {
        "version": 1,
        "event": event,
        "event_time": str(time),
        "org_id": "55778119",
        "app_id": "40526000000002040",
        "entity_type": event.split(".")[0],
        "entity_id": entity_id,
        "attempt": 1,
        "handler": "execution",
        "webhook": {"id": "w1"},
        **extra,
    }
    if entity is not None:
        payload["entity"] = entity
    return payload


def conversation(event: str, cid: str, time: int, **entity) -> dict:
    base = {"id": cid, "department_id": "d1", "owner": {"id": "o1"}, "visitor": {"id": "v1", "type": "lead"}}
    return envelope(event, cid, time, {**base, **entity})


def reply(event: str, cid: str, time: int, sender: dict, text: str | None = None, **message) -> dict:
    body = {"sender": sender, **message}
    if text is not None:
        body.update(text=text, msgid=f"m{time}")
    return envelope(event, cid, time, {"id": cid, "message": body, "visitor": {"id": "v1"}, "owner": {"id": "o1"}})


def chat() -> list[dict]:
    """One attended conversation: opened 0 s, attended 10 s, bot at 12 s, operator at 15 s, ended 100 s, rated."""
    t = 1_772_000_000_000
    return [
        conversation("conversation.created", "c1", t, opened_time=str(t)),
        conversation(
            "conversation.attender.updated", "c1", t + 10_000, opened_time=str(t), attended_time=str(t + 10_000)
        ),
        reply(
            "conversation.visitor.replied", "c1", t + 11_000, {"id": "$2463902591169630574", "type": "visitor"}, "hi"
        ),
        reply("conversation.operator.replied", "c1", t + 12_000, {"id": "b1", "type": "bot"}, meta={}, list=[]),
        reply("conversation.operator.replied", "c1", t + 15_000, {"id": "o1", "type": "operator"}, "hello"),
        reply("conversation.operator.replied", "c1", t + 15_000, {"id": "o1", "type": "operator"}, "how can I help"),
        conversation(
            "conversation.completed", "c1", t + 100_000, attended_time=str(t + 10_000), end_time=str(t + 100_000)
        ),
        envelope("conversation.rated", "c1", t + 120_000, {"rating": 4, "feedback": "ok", "owner": {"id": "o1"}}),
        conversation("conversation.created", "c2", t + 1_000, opened_time=str(t + 1_000)),
        conversation("conversation.missed", "c2", t + 60_000, missed_time=str(t + 60_000)),
        conversation("conversation.created", "c3", t + 2_000),
    ]


def tables_of(out: Path) -> dict[str, pa.Table]:
    """Every table of an output, without the columns that name the run's files."""
    result = {}
    for name in TABLES:
        data = pq.read_table(out / name)
        result[name] = data.drop_columns([c for c in ("source",) if c in data.column_names])
    return result


def output_of(out: Path) -> dict[str, Any]:
    """What an output holds, every column included: to compare runs over the same files.

    Its tables, its manifest but for when and in what it was written and how long
    the run took, and its drift report.
    """
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    run = {key: value for key, value in manifest["last_run"].items() if key not in ("out", "seconds")}
    return {
        "tables": {name: pq.read_table(out / name) for name in TABLES},
        "manifest": {"inputs": manifest["inputs"], "last_run": run, "tables": manifest["tables"]},
        "drift": json.loads((out / "_drift.json").read_text(encoding="utf-8")),
    }


def planned(sources: list[Path], workers: int, tuning: Any, tmp: Path) -> list[list[tuple[int, int, int | None]]]:
    """The tasks a fresh run over ``sources`` is planned in: per task, its parts as (file index, start, end)."""
    from siq_schemas.converter import plan
    from siq_schemas.converter.report import Report
    from siq_schemas.read import LIMITS

    run = plan.plan_run(
        sources, tmp / "out", None, Report(out=""), None, False, LIMITS, tmp / "stage", False, tuning, workers
    )
    return [[(part.index, part.start, part.end) for part in task.parts] for task in run.tasks]


def bomb(suffix: str, size: int) -> bytes:
    """``size`` zero bytes compressed (gzip level 9 or zstd): they expand more than 1000 times."""
    zeros = b"\0" * (1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31) if suffix == ".gz" else zstandard.ZstdCompressor().compressobj()
    return b"".join(packer.compress(zeros) for _ in range(size >> 20)) + packer.flush()


def table_digests(out: Path, source: Path) -> dict[str, str]:
    """SHA-256 of each table's rows, in the order its files hold them, every value as its repr.

    The archive's folder ``source`` is written as ``ARCHIVE`` in the ``source`` columns, so that they do not depend
    on where the archive was written.
    """
    digests = {}
    for name, table in TABLES.items():
        rows = pq.read_table(out / name, schema=table.schema).to_pylist()
        text = "\n".join(repr(list(row.values())) for row in rows).replace(str(source.resolve()), "ARCHIVE")
        digests[name] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digests
