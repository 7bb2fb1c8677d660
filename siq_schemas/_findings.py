"""The findings of one payload: what it holds that the schemas do not describe (see :mod:`siq_schemas.drift`).

:func:`check` explains one payload against the strict, documented and lenient
schemas of its event into findings keyed by :data:`Key`; :class:`~siq_schemas.drift.Drift`
counts them. Unknown fields are found by payload shape and remembered per shape
(bounded, see :data:`SHAPES`), so every delivery of an event that gained a field
is explained once.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from . import _registry
from .validate import ZOBOT, verdict

#: Longest example kept, as JSON text; a longer one is cut and ends with "...".
EXAMPLE_CHARS = 120
_UNKNOWN = ("unevaluatedProperties", "additionalProperties")
#: A property that is absent (not ``None``, which is JSON's null).
ABSENT = object()
#: event, kind, path, expected, seen: what makes two findings one.
Key = tuple[str | None, str, str, str | None, str | None]
#: A schema error, whichever validator found it: path, keyword, its detail, the value at the path.
_Error = tuple[tuple[str | int, ...], str, Any, Any]
#: How a payload is explained: by the compiled validator, its unknown fields remembered per payload shape
#: (``by-shape``, the fast way) or found afresh for every payload (``each``); or by ``jsonschema`` for every
#: payload (``jsonschema``, as for a value the compiled validator cannot take). All three find the same.
Explain = Literal["by-shape", "each", "jsonschema"]
EXPLAIN: tuple[Explain, ...] = ("by-shape", "each", "jsonschema")

_EVENTS = frozenset(_registry.event_names())
UNPUBLISHED = frozenset(event for event in _EVENTS if _registry.unpublished(event))


def strict_validators(event: str | None) -> _registry.Validators | None:
    """The strict validators of ``event`` (the envelope's when there is none); None for an unknown event."""
    found = _STRICT.get(event)
    if found is None and (event is None or event in _EVENTS):  # built on first use, once per event
        found = _STRICT[event] = _registry.validators(event or "envelope", strict=True)
    return found


_STRICT: dict[str | None, _registry.Validators] = {}


def check(
    event: str | None,
    payload: Any,
    strict: _registry.Validators | None,
    found: dict[Key, Any],
    explain: Explain = "by-shape",
) -> bool:
    """Put the findings of one payload in ``found``, each with its value; return whether the payload is valid."""
    entity = payload.get("entity", ABSENT) if isinstance(payload, dict) else ABSENT
    if strict is None:
        seen = ZOBOT.partition(",")[0] if event is None else None
        found[event, "unknown-event", "$.event", None, seen] = payload if event is None else entity
        return False
    if event in UNPUBLISHED:
        found[event, "unpublished-event", "$.entity", None, None] = entity
        if verdict(strict, payload):
            return True
    for field, where in _unknown_fields(event, payload, strict, explain):
        found.setdefault((event, "unknown-field", field, None, None), _at(payload, where))
    documented = _registry.validators(event or "envelope", "documented")
    if verdict(documented, payload):  # then the lenient schema takes it too
        return True
    for path, keyword, detail, instance in _errors(documented, payload, explain):
        key: Key
        if keyword == "type":
            key = (event, "type-mismatch", _path(path), " or ".join(sorted(detail)), _json_type(instance))
        elif keyword == "required":
            key, instance = (event, "missing-required", _path((*path, detail)), None, None), ABSENT
        elif keyword in ("enum", "const"):
            options = detail if keyword == "enum" else [detail]
            key = (event, "enum-value", _path(path), example_text(options), example_text(instance))
        else:
            key = (event, "invalid-value", _path(path), f"{keyword} {example_text(detail)}", _json_type(instance))
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
    event: str | None, payload: Any, strict: _registry.Validators, explain: Explain
) -> list[tuple[str, tuple[str | int, ...]]]:
    """The unknown fields of ``payload``: each one's collapsed path and its location in the payload.

    Which properties the schemas evaluate depends on the payload's structure (its
    keys, and which values are objects or arrays), not on its values: no schema picks
    a branch by value or by the type of a scalar. So payloads of one shape, such as every delivery of an event
    once SalesIQ has added a field to it, share their unknown fields; they are
    explained once, and the others cost a walk of the payload.
    """
    key = (event, _shape(payload) if isinstance(payload, _CONTAINERS) else type(payload))
    found = _KNOWN_SHAPES.get(key) if explain == "by-shape" else None
    if found is None:
        found = []
        for path, keyword, detail, _ in _errors(strict, payload, explain):
            if keyword in _UNKNOWN:
                found += [(_path((*path, name)), (*path, name)) for name in detail]
        if explain == "by-shape":
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


def _errors(validators: _registry.Validators, payload: Any, explain: Explain) -> list[_Error]:
    """Every error of ``payload``, from the compiled validator; from ``jsonschema`` for values it cannot take."""
    if explain != "jsonschema":
        try:
            return list(_compiled_errors(validators, payload))
        except (ValueError, OverflowError, TypeError):
            pass
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


def example_text(value: Any) -> str:
    """``value`` as compact JSON, cut to :data:`EXAMPLE_CHARS`."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."
