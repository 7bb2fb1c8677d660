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

import ast
import bisect
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import _registry
from ._text import printable
from .tables import DRIFT
from .validate import ZOBOT, verdict, zobot_request

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
#: Longest example kept, as JSON text; a longer one is cut and ends with "...".
EXAMPLE_CHARS = 120
#: Findings itemised per event and kind; the others are counted in one finding, see :data:`OTHERS`.
MAX_FINDINGS = 1_000
#: The path of the finding that counts, per event and kind, the findings beyond :data:`MAX_FINDINGS`.
OTHERS = "(others)"

_UNKNOWN = ("unevaluatedProperties", "additionalProperties")
_DETAIL = {"unpublished-event": "no published payload", "unknown-event": "no schema"}
_ABSENT = object()
#: event, kind, path, expected, seen: what makes two findings one.
_Key = tuple[str | None, str, str, str | None, str | None]
#: Where a finding ranks in its event and kind: path, expected, seen (a None before every text).
_Rank = tuple[str, bool, str, bool, str]
#: A schema error, whichever validator found it: path, keyword, its detail, the value at the path.
_Error = tuple[tuple[str | int, ...], str, Any, Any]


class Drift:
    """An accumulator of drift findings; :meth:`to_dict` is the report.

    >>> drift = Drift()
    >>> drift.add(payload, "archive.jsonl", 3)   # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.records = 0
        self.records_with_drift = 0
        self.events: Counter[str] = Counter()
        self._findings: dict[_Key, list[Any]] = {}  # key -> [count, first, example]
        self._ranked: dict[tuple[str | None, str], list[tuple[_Rank, _Key]]] = {}  # per group, itemised keys sorted
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
        strict = None if event is None and zobot_request(payload) else _strict(event)
        if strict is not None and event not in _UNPUBLISHED and verdict(strict, payload):
            return True
        found: dict[_Key, Any] = {}
        valid = _check(event, payload, strict, found)
        if found:
            self.records_with_drift += 1
        for key, value in found.items():
            entry = self._findings.get(key)
            if entry is not None:
                entry[0] += 1
            elif self._room(key, 1):
                self._findings[key] = [1, f"{source}:{line}", None if value is _ABSENT else _text(value)]
        return valid

    def _room(self, key: _Key, count: int) -> bool:
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


_EVENTS = frozenset(_registry.event_names())
_UNPUBLISHED = frozenset(event for event in _EVENTS if _registry.unpublished(event))


def _strict(event: str | None) -> _registry.Validators | None:
    """The strict validators of ``event`` (the envelope's when there is none); None for an unknown event."""
    if event is None:
        return _registry.validators("envelope", strict=True)
    return _registry.validators(event, strict=True) if event in _EVENTS else None


def _check(event: str | None, payload: Any, strict: _registry.Validators | None, found: dict[_Key, Any]) -> bool:
    """Put the findings of one payload in ``found``, each with its value; return whether the payload is valid."""
    entity = payload.get("entity", _ABSENT) if isinstance(payload, dict) else _ABSENT
    if strict is None:
        seen = ZOBOT.partition(",")[0] if event is None else None
        found[event, "unknown-event", "$.event", None, seen] = payload if event is None else entity
        return False
    if event in _UNPUBLISHED:
        found[event, "unpublished-event", "$.entity", None, None] = entity
        if verdict(strict, payload):
            return True
    for field, where in _unknown_fields(event, payload, strict):
        found.setdefault((event, "unknown-field", field, None, None), _at(payload, where))
    documented = _registry.validators(event or "envelope", "documented")
    if verdict(documented, payload):  # then the lenient schema takes it too
        return True
    for path, keyword, detail, instance in _errors(documented, payload):
        key: _Key
        if keyword == "type":
            key = (event, "type-mismatch", _path(path), " or ".join(sorted(detail)), _json_type(instance))
        elif keyword == "required":
            key, instance = (event, "missing-required", _path((*path, detail)), None, None), _ABSENT
        elif keyword in ("enum", "const"):
            options = detail if keyword == "enum" else [detail]
            key = (event, "enum-value", _path(path), _text(options), _text(instance))
        else:
            key = (event, "invalid-value", _path(path), f"{keyword} {_text(detail)}", _json_type(instance))
        found.setdefault(key, instance)
    return verdict(_registry.validators(event or "envelope"), payload)


#: Unknown fields by event and shape of the payload, see :func:`_unknown_fields`.
_KNOWN_SHAPES: dict[tuple[str | None, Any], list[tuple[str, tuple[str | int, ...]]]] = {}
#: Shapes remembered per process at most (the cache is emptied when full).
SHAPES = 4096
#: Keys, containers and unknown fields the remembered shapes may hold in all: a shape larger is not remembered.
SHAPE_ITEMS = 1 << 19
_cached_items = 0
_CONTAINERS = (dict, list)


def _unknown_fields(
    event: str | None, payload: Any, strict: _registry.Validators
) -> list[tuple[str, tuple[str | int, ...]]]:
    """The unknown fields of ``payload``: each one's collapsed path and its location in the payload.

    Which properties the schemas evaluate depends on the payload's structure (its
    keys, and which values are objects or arrays), not on its values: no schema picks
    a branch by value or by the type of a scalar. So payloads of one shape, such as every delivery of an event
    once SalesIQ has added a field to it, share their unknown fields; they are
    explained once, and the others cost a walk of the payload.
    """
    key = (event, _shape(payload) if isinstance(payload, _CONTAINERS) else type(payload))
    found = _KNOWN_SHAPES.get(key)
    if found is None:
        found = []
        for path, keyword, detail, _ in _errors(strict, payload):
            if keyword in _UNKNOWN:
                found += [(_path((*path, name)), (*path, name)) for name in detail]
        _remember(key, found)
    return found


def _remember(key: tuple[str | None, Any], found: list[tuple[str, tuple[str | int, ...]]]) -> None:
    """Keep ``found`` for payloads of shape ``key``, within :data:`SHAPES` and :data:`SHAPE_ITEMS`."""
    global _cached_items
    items = len(found) + _size(key[1])
    if items > SHAPE_ITEMS // 16:  # a payload of this size is explained once, not remembered
        return
    if len(_KNOWN_SHAPES) >= SHAPES or _cached_items + items > SHAPE_ITEMS:
        _KNOWN_SHAPES.clear()
        _cached_items = 0
    _KNOWN_SHAPES[key] = found
    _cached_items += items


def _size(shape: Any) -> int:
    """How many keys and containers a shape (see :func:`_shape`) holds."""
    size, todo = 0, [shape]
    while todo:
        item = todo.pop()
        size += 1
        if isinstance(item, tuple):
            todo += item
    return size


def _shape(value: dict[str, Any] | list[Any]) -> tuple[Any, ...]:
    """Where ``value`` holds objects and arrays, and the keys of its objects, as a hashable value.

    Scalars are left out: their types and values decide no property's evaluation.
    """
    if isinstance(value, dict):
        return tuple([(name, _shape(item)) if isinstance(item, _CONTAINERS) else name for name, item in value.items()])
    return (list, *[(index, _shape(item)) for index, item in enumerate(value) if isinstance(item, _CONTAINERS)])


def _at(payload: Any, where: tuple[str | int, ...]) -> Any:
    for part in where:
        payload = payload[part]
    return payload


def _errors(validators: _registry.Validators, payload: Any) -> list[_Error]:
    """Every error of ``payload``, from the compiled validator; from ``jsonschema`` for values it cannot take."""
    try:
        return list(_compiled_errors(validators, payload))
    except (ValueError, OverflowError, TypeError):
        return list(_explained_errors(validators, payload))


def _compiled_errors(validators: _registry.Validators, payload: Any) -> Iterator[_Error]:
    for error in validators.fast.iter_errors(payload):
        values = error.kind.as_dict()
        detail = next(iter(values.values())) if len(values) == 1 else values
        yield tuple(error.instance_path), error.kind.name, detail, error.instance


_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)$", re.DOTALL)


def _explained_errors(validators: _registry.Validators, payload: Any) -> Iterator[_Error]:
    """``jsonschema``'s errors in the compiled validator's terms (the names its messages hold)."""
    for error in validators.explain.iter_errors(payload):
        detail = error.validator_value
        if error.validator in _UNKNOWN:
            match = _UNEXPECTED.search(error.message)
            detail = ast.literal_eval(f"[{match.group(1)}]") if match else []
        elif error.validator == "required":
            detail = ast.literal_eval(error.message.removesuffix(" is a required property"))
        elif error.validator == "type":
            detail = [detail] if isinstance(detail, str) else list(detail)
        yield tuple(error.absolute_path), str(error.validator), detail, error.instance


def _rank(key: _Key) -> _Rank:
    _, _, path, expected, seen = key
    return path, expected is not None, expected or "", seen is not None, seen or ""


def _path(parts: Iterable[str | int]) -> str:
    """A JSON path with array indices collapsed: ``$.entity.list[*].id``."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += "[*]"
        elif part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _text(value: Any) -> str:
    """``value`` as compact JSON, cut to :data:`EXAMPLE_CHARS`."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."
