"""Schema drift: what an archive's payloads hold that the schemas do not describe.

SalesIQ changes payloads without notice. A :class:`Drift` takes payloads one at a
time and counts each *finding*, per event and JSON path (array indices collapsed,
``$.entity.message.list[*]``), with the ``file:line`` where it was first seen and an
example value:

- ``unknown-field``: a property the strict schemas do not list. It is still kept: inside
  the entity in ``events.entity``, at the top level in ``events.extra``.
- ``type-mismatch``: a value of a JSON type the documented schema does not allow.
- ``missing-required``: a property the documented schema requires is absent.
- ``enum-value``: a value outside a documented set (a boolean sent as ``"yes"``).
- ``invalid-value``: any other departure from the documented schema (a time that is not epoch ms).
- ``unpublished-event``: an event the vendor publishes no payload for: only its
  envelope is checked, its entity is kept as it comes.
- ``unknown-event``: an event name that has no schema, or a Zobot (bot platform) request,
  which reaches webhook URLs too but is no event (seen ``a Zobot request``).

Findings are against the documented schemas; ``siq convert`` rejects only the records
the lenient ones refuse (see :mod:`siq_schemas._registry`): a record that cannot be an
event (no ``event``, ``event_time`` or ``entity_id``, an entity that is not an object),
a value that cannot be read as its type (a rating of ``"five"``, a boolean ``"yes"``;
``"5"`` reads as 5), or an unknown event. A missing nested id, a value outside a
documented set and unknown fields are accepted and reported here.

At most :data:`MAX_FINDINGS` findings are itemised per event and kind (unknown
events counting as one event): the first ones by path, then expected and seen
value. The rest are counted, exactly, in one :data:`OTHERS` finding per event
and kind, so that memory and the report stay bounded whatever the archive
holds, and the drift of several inputs merged is that of one pass over all.

Counts are of records, as delivered: a retry or a copy sent to a second webhook
counts again, because drift is about what arrives, and a finding's count can then
be set against ``records``. Checking is cheap: one compiled strict verdict per
payload; only a payload that fails it is explained, by the compiled validator's
errors against the documented schema (``jsonschema``'s only for a value the compiled
one cannot take), and judged by the lenient one.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._findings import ABSENT, EXPLAIN, UNPUBLISHED, Explain, Key, check, example_text, strict_validators
from ._text import printable
from .tables import DRIFT
from .validate import verdict, zobot_request

#: Version of the report's layout.
FORMAT = 1
KINDS = (
    "unknown-field",
    "type-mismatch",
    "missing-required",
    "enum-value",
    "invalid-value",
    "unpublished-event",
    "unknown-event",
)
#: Findings itemised per event and kind; the others are counted in one finding, see :data:`OTHERS`.
MAX_FINDINGS = 1_000
#: The path of the finding that counts, per event and kind, the findings beyond :data:`MAX_FINDINGS`.
OTHERS = "(others)"

_DETAIL = {"unpublished-event": "no published payload", "unknown-event": "no schema"}
#: Where a finding ranks in its event and kind: path, expected, seen (a None before every text).
_Rank = tuple[str, bool, str, bool, str]


class Drift:
    """An accumulator of drift findings; :meth:`to_dict` is the report.

    ``explain`` is how a payload that fails its strict schema is explained, each way giving the
    same findings: ``by-shape`` (the compiled validator, unknown fields remembered per payload
    shape), ``each`` (the compiled validator for every payload) or ``jsonschema`` (its errors, for
    every payload). The last two are slower; they are the references the fast way is checked against.

    >>> drift = Drift()
    >>> drift.add(payload, "archive.jsonl", 3)   # doctest: +SKIP
    """

    def __init__(self, explain: Explain = "by-shape") -> None:
        if explain not in EXPLAIN:
            raise ValueError(f"unknown way to explain {explain!r}; ways: {', '.join(EXPLAIN)}")
        self.explain: Explain = explain
        self.records = 0
        self.records_with_drift = 0
        self.events: Counter[str] = Counter()
        self._findings: dict[Key, list[Any]] = {}  # key -> [count, first, example]
        self._ranked: dict[tuple[str | None, str], list[tuple[_Rank, Key]]] = {}  # per group, itemised keys sorted
        self._others: Counter[tuple[str | None, str]] = Counter()  # per group, occurrences not itemised

    def add(self, payload: Any, source: str = "", line: int = 0) -> bool:
        """Check one payload, read at ``source:line``, for drift; return whether it is valid.

        The verdict is that of :func:`siq_schemas.is_valid`, which the check reaches
        on the way: a payload that matches its event's strict schema matches the
        lenient one too, and only one that does not is judged by the lenient one.
        """
        self.records += 1
        event = payload.get("event") if isinstance(payload, dict) else None
        if isinstance(event, str) and event:
            self.events[event] += 1
        else:
            event = None
        strict = None if event is None and zobot_request(payload) else strict_validators(event)
        if strict is not None and event not in UNPUBLISHED and verdict(strict, payload):
            return True
        found: dict[Key, Any] = {}
        valid = check(event, payload, strict, found, self.explain)
        if found:
            self.records_with_drift += 1
        for key, value in found.items():
            entry = self._findings.get(key)
            if entry is not None:
                entry[0] += 1
            elif self._room(key, 1):
                self._findings[key] = [1, f"{source}:{line}", None if value is ABSENT else example_text(value)]
        return valid

    def _room(self, key: Key, count: int) -> bool:
        """Whether new finding ``key`` is itemised; when it is not, its ``count`` goes to its group's others.

        A group keeps the :data:`MAX_FINDINGS` lowest keys seen: a lower one
        takes the place of the highest, whose count goes to the others. A key
        among the lowest of all records was so among the records before it, so
        it is counted from its first record on, whichever inputs they are split in.
        """
        group = (None if key[1] == "unknown-event" else key[0], key[1])
        ranked = self._ranked.setdefault(group, [])
        rank = _rank(key)
        if len(ranked) >= MAX_FINDINGS:
            if rank > ranked[-1][0]:
                self._others[group] += count
                return False
            _, highest = ranked.pop()
            self._others[group] += self._findings.pop(highest)[0]
        bisect.insort(ranked, (rank, key))
        return True

    def update(self, other: Drift) -> Drift:
        """Add ``other``'s records, read after this one's: counts add up, first and example stay the earliest."""
        self.records += other.records
        self.records_with_drift += other.records_with_drift
        self.events.update(other.events)
        self._others.update(other._others)
        for key, (count, first, example) in other._findings.items():
            entry = self._findings.get(key)
            if entry is not None:
                entry[0] += count
            elif self._room(key, count):
                self._findings[key] = [count, first, example]
        return self

    def __len__(self) -> int:
        """The number of findings (an :data:`OTHERS` finding counts as one)."""
        return len(self._findings) + len(self._others)

    def findings(self) -> list[dict[str, Any]]:
        """Every finding as a dict, by count (most first), then path."""
        rows = [
            {"event": e, "kind": k, "path": p, "expected": x, "seen": s, "count": c, "first": f, "example": ex}
            for (e, k, p, x, s), (c, f, ex) in self._findings.items()
        ]
        rows += [
            {"event": e, "kind": k, "path": OTHERS, "expected": None, "seen": None, "count": c, "first": None}
            | {"example": None}
            for (e, k), c in self._others.items()
        ]
        rows.sort(
            key=lambda r: (-r["count"], r["path"], r["event"] or "", r["kind"], r["expected"] or "", r["seen"] or "")
        )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The report: a JSON-serialisable dict that depends only on the records added and their order."""
        return {
            "format": FORMAT,
            "records": self.records,
            "records_with_drift": self.records_with_drift,
            "events": dict(sorted(self.events.items())),
            "findings": self.findings(),
        }

    @classmethod
    def from_dict(cls, report: Mapping[str, Any]) -> Drift:
        """The accumulator a report (:meth:`to_dict`) was made from."""
        drift = cls()
        drift.records = report["records"]
        drift.records_with_drift = report["records_with_drift"]
        drift.events.update(report["events"])
        for row in report["findings"]:
            if row["path"] == OTHERS:
                drift._others[row["event"], row["kind"]] += row["count"]
                continue
            key = (row["event"], row["kind"], row["path"], row["expected"], row["seen"])
            if drift._room(key, row["count"]):
                drift._findings[key] = [row["count"], row["first"], row["example"]]
        return drift

    def __str__(self) -> str:
        """The report as a table, one finding a line."""
        head = f"{self.records:,} records, {self.records_with_drift:,} with drift"
        if not len(self):
            return f"{head}: every payload is what the schemas describe"
        rows: list[tuple[str, ...]] = [("count", "event", "drift", "path", "detail", "first", "example")]
        for finding in self.findings():
            detail = (
                _DETAIL.get(finding["kind"], "") if finding["path"] != OTHERS else f"past the first {MAX_FINDINGS:,}"
            )
            detail += f"expected {finding['expected']}" if finding["expected"] else ""
            detail += f", seen {finding['seen']}" if finding["seen"] else ""
            example = finding["example"] or ""
            example = example if len(example) <= 40 else example[:37] + "..."
            count, event = f"{finding['count']:,}", finding["event"] or "-"
            text = (event, finding["kind"], finding["path"], detail, finding["first"] or "", example)
            rows.append((count, *map(printable, text)))  # payload text and file names: escaped, one line each
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"{head} (counted per record read: retries and copies count again)"]
        for row in rows:
            cells = [
                row[0].rjust(widths[0]),
                *(cell.ljust(width) for cell, width in zip(row[1:], widths[1:], strict=True)),
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        return "\n".join(lines)


def merged(inputs: Mapping[str, Drift]) -> Drift:
    """The drift of several inputs, taken in the order of their names, whatever order they were read in."""
    total = Drift()
    for name in sorted(inputs):
        total.update(inputs[name])
    return total


def read(out: str | Path) -> dict[str, Drift]:
    """The drift of each input that an earlier ``siq convert`` wrote in ``out`` (empty when there is none).

    A report that is missing (an output written before drift reports) or
    unreadable counts as none: the next report covers the records read since.
    """
    try:
        report = json.loads((Path(out) / DRIFT).read_text(encoding="utf-8"))
        return {name: Drift.from_dict(part) for name, part in report["inputs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save(folder: Path, previous: Path | None, runs: Iterable[tuple[str, Drift, bool]]) -> Drift:
    """Write ``folder/_drift.json`` for a convert run; return the drift of the whole output.

    ``runs`` holds, per input file the run read, its name, its drift and whether
    only its new lines were read. The drift of the inputs not read again comes from
    ``previous``'s report, so the result is that of a fresh conversion of all inputs.
    The report keeps each input's part under ``inputs`` for the next run.
    """
    inputs = read(previous) if previous is not None else {}
    for name, drift, resumed in runs:
        inputs[name] = inputs[name].update(drift) if resumed and name in inputs else drift
    total = merged(inputs)
    report = total.to_dict() | {"inputs": {name: inputs[name].to_dict() for name in sorted(inputs)}}
    (folder / DRIFT).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return total


# ---------------------------------------------------------------------------- checking


def _rank(key: Key) -> _Rank:
    _, _, path, expected, seen = key
    return path, expected is not None, expected or "", seen is not None, seen or ""
