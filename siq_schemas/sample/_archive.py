"""The files of a sample, written from the simulated portal and its archive (:mod:`._deliveries`).

- ``deliveries/<YYYY-MM-DD>.jsonl.gz`` (a few days ``.jsonl.zst``, one plain ``.jsonl``): delivery
  records (contract section 1), with the quirks of real archives: retries (``attempt`` 2 and 3, the
  body re-serialised, a minute later, sometimes in the next day's file), events sent to two
  webhooks, header names in another case, ``body_base64``, blank lines, and an endpoint outage.
- ``bare/``: bare payloads, unsigned: the events of the outage exported from SalesIQ afterwards (an
  array, overlapping what was delivered) and one envelope saved by hand.
- ``keys/sample_public.pem``; the private key is never written.
- ``_expected.json``: what a conversion of the archive must count, computed from the simulation. Its
  leading underscore makes the readers skip it when they walk the folder (as pyarrow datasets do).
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives import serialization

from ._admin import administration
from ._constants import DAY, MIN_EVENTS
from ._deliveries import Archive, Record, iso
from ._expected import expected_counts
from ._keys import sample_key
from ._portal import Portal
from ._traffic import conversation, plans

_EXPECTED = "_expected.json"
"""The expected counts; the leading underscore makes the readers skip it when they walk the folder."""
_OURS = {"deliveries", "bare", "keys", "README.md", _EXPECTED}


def write_sample(out: str | Path, seed: int = 7, events: int = 3000, corrupt: bool = False) -> dict[str, Any]:
    """Write a synthetic SalesIQ webhook archive to ``out`` and return the counts a conversion must give.

    ``events`` is the number of unique events (approximately; the counts are exact for what is
    written); ``corrupt`` adds one rejected record per reject reason. The counts are also written
    to ``out/_expected.json``. ``out`` must be empty, missing, or an earlier sample (replaced).
    Same arguments, same bytes.
    """
    if not isinstance(events, int) or events < MIN_EVENTS:
        raise ValueError(f"events must be an integer of at least {MIN_EVENTS}, not {events!r}")
    out = Path(out)
    _prepare(out)
    key = sample_key(seed)
    portal = Portal(random.Random(f"siq-sample/{seed}"), events)
    chats_from = administration(portal)
    for plan in plans(portal, chats_from):
        conversation(portal, plan)
    archive = Archive(portal, key, corrupt)
    blank = _write_deliveries(out / "deliveries", archive)
    (out / "bare").mkdir()
    for name, content in sorted(archive.bare.items()):
        (out / "bare" / name).write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "keys").mkdir()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (out / "keys" / "sample_public.pem").write_bytes(pem)
    expected = expected_counts(archive, blank)
    (out / _EXPECTED).write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(out, seed, events, corrupt, expected, archive.outage), encoding="utf-8")
    return expected


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        names = {entry.name for entry in out.iterdir()}
        if _EXPECTED not in names or not names <= _OURS:
            raise FileExistsError(f"{out} is not empty and is not an earlier sample; choose an empty directory")
        for name in names:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_deliveries(folder: Path, archive: Archive) -> int:
    """One file per day (most gzip, a few zstd, one plain), records by time; return the blank lines."""
    rng = archive.rng
    by_day: dict[int, list[Record]] = {}
    for record in sorted(archive.records, key=lambda record: record.received):  # stable: ties keep their order
        by_day.setdefault(record.received // DAY, []).append(record)
    days = sorted(by_day)
    zst = set(rng.sample(days[1:-1], 3))
    plain = min((day for day in days[1:-1] if day not in zst), key=lambda day: (len(by_day[day]), day))
    lines_by_day = {day: [record.line for record in records] for day, records in by_day.items()}
    blanks = 0
    for _ in range(3 + rng.randint(0, 3)):  # blank lines, somewhere in the middle of a file
        lines = lines_by_day[rng.choice(days)]
        lines.insert(rng.randint(1, len(lines) - 1) if len(lines) > 1 else 1, rng.choice(["", "   ", "\t"]))
        blanks += 1
    folder.mkdir()
    for day in days:
        data = ("\n".join(lines_by_day[day]) + "\n").encode("utf-8")
        name = datetime.fromtimestamp(day * DAY / 1000, UTC).strftime("%Y-%m-%d") + ".jsonl"
        if day == plain:
            (folder / name).write_bytes(data)
        elif day in zst:
            (folder / f"{name}.zst").write_bytes(zstandard.ZstdCompressor(level=10).compress(data))
        else:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return blanks


def _readme(out: Path, seed: int, events: int, corrupt: bool, expected: dict[str, Any], outage: tuple[int, int]) -> str:
    name = out.resolve().name or "DIR"
    command = f"siq sample --out {name} --seed {seed} --events {events}" + (" --corrupt" if corrupt else "")
    tables = expected["tables"]
    facts = expected["facts"]
    rejected = sum(expected["rejected"].values())
    conversations = " / ".join(str(n) for n in facts["conversations"].values())
    messages = " / ".join(str(n) for n in facts["messages"].values())
    lost = f"{iso(outage[0])[:16]} to {iso(outage[1])[:16]}".replace("T", " ") + " UTC"
    return f"""# Synthetic SalesIQ webhook archive

Four weeks (2026-03-02 to 2026-03-29 UTC) of webhook deliveries from a fictional Zoho SalesIQ portal
(Zylker), made by `siq sample`. Nothing in it is real: names, ids, chats and the signing key are all
simulated. It exercises every reader path and the quirks of real deliveries, so it serves the demo,
the notebooks and the tests.

Made with (deterministic: the same command writes the same bytes):

    {command}

## Layout

- `deliveries/YYYY-MM-DD.jsonl.gz`: one file per day of delivery records
  (`{{"received_at", "headers", "body"}}`), signed with RSASSA-PKCS1-v1_5 + SHA-256 in the
  `x-siqsignature` header. Three days are `.jsonl.zst` and one is a plain `.jsonl`.
  Quirks included: retries (`attempt` 2 and 3, the body re-serialised, a minute later, once across
  midnight into the next day's file), events sent to a second webhook, `X-SiqSignature` header
  case, `body_base64` instead of `body`, blank lines, an endpoint outage (nothing arrived from
  {lost}), the ten events that have no published payload, `operator.departments.disassociated`.{
        " Also one record per reject reason (`--corrupt`)." if corrupt else ""
    }
- `bare/outage-export.json`: the events of the outage as exported from SalesIQ afterwards (a JSON
  array of envelopes, unsigned); it overlaps deliveries that did arrive.
- `bare/saved-by-hand.json`: one envelope saved by hand (also delivered).
- `keys/sample_public.pem`: the public key (PEM SubjectPublicKeyInfo). The private key is not kept;
  `siq sample` derives it from the seed.
- `_expected.json`: what a conversion must count, computed by the generator from its simulation.
  Readers skip it when they walk the folder, as they skip every name starting with `_` or `.`.

## Converting it

From the directory that holds `{name}/`:

    siq convert {name} --out {name}-parquet --keys {name}/keys/sample_public.pem --allow-unsigned

`--allow-unsigned` accepts the bare payloads (marked `unsigned`). What the conversion must report:

| count | expected |
| --- | ---: |
| records read | {expected["records_read"]} |
| events written | {expected["events_written"]} |
| duplicates (retries, second webhook, bare copies) | {expected["duplicates"]} |
| rejected | {rejected} |
| blank lines (counted apart) | {expected["blank_lines"]} |
| conversations: completed / missed / open | {conversations} |
| messages (visitor / operator / bot) | {tables["messages"]} ({messages}) |
| ratings (with a rating / feedback only) | {tables["ratings"]} ({facts["ratings"]["count"]} / {
        facts["ratings"]["feedback_only"]
    }) |
| operators (active at the end) | {tables["operators"]} ({facts["operators_active"]}) |
| departments (not deleted) | {tables["departments"]} ({facts["departments_active"]}) |
| visitors | {tables["visitors"]} |

`_expected.json` has every count, by table and by reject reason.
"""
