"""The schemas shipped as package data, loaded once and compiled once.

Every file of ``siq_schemas/schemas/`` is one resource of a
:class:`referencing.Registry`, keyed by its ``$id``. Nothing is ever fetched:
a ``$ref`` outside the shipped files is an error (jsonschema-rs, which would
fetch ``http(s)`` references by default, gets a retriever that refuses). Strict variants are derived
from the lenient ones (every object that lists ``properties`` gets
``unevaluatedProperties: false``), so the two can never disagree on anything
but unknown properties.
"""

from __future__ import annotations

import copy
import json
from functools import cache, cached_property
from importlib.resources import files
from typing import Any

import jsonschema_rs
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .exceptions import UnknownEvent

#: Resources that are not event schemas.
SUPPORT = ("defs", "envelope")


@cache
def _documents(strict: bool) -> dict[str, dict[str, Any]]:
    """Schema documents by name (file name without ``.json``)."""
    documents = {}
    for entry in files("siq_schemas.schemas").iterdir():
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            documents[entry.name.removesuffix(".json")] = _strict(document) if strict else document
    return dict(sorted(documents.items()))


def _strict(node: Any) -> Any:
    """A copy of ``node`` in which every object listing ``properties`` allows no others."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _strict(value) for key, value in node.items()}
    if "properties" in node and isinstance(node["properties"], dict):
        result["unevaluatedProperties"] = False
    return result


def event_names() -> tuple[str, ...]:
    """Every event name that has a schema."""
    return tuple(name for name in _documents(False) if name not in SUPPORT)


def document(name: str, strict: bool = False) -> dict[str, Any]:
    """A copy of one schema document (an event name, ``"envelope"`` or ``"defs"``)."""
    try:
        return copy.deepcopy(_documents(strict)[name])
    except (KeyError, TypeError):
        raise UnknownEvent(name) from None


def unpublished(name: str) -> bool:
    """Whether the vendor publishes no payload for an event (its schema says ``"x-unpublished": true``).

    Such an event's schema is the envelope alone: its entity is kept as it comes.
    """
    return _documents(False).get(name, {}).get("x-unpublished") is True


@cache
def registry(strict: bool = False) -> Registry:
    """Every shipped schema, by ``$id``; nothing else can be retrieved."""
    resources = [(doc["$id"], DRAFT202012.create_resource(doc)) for doc in _documents(strict).values()]
    return Registry().with_resources(resources).crawl()


class Validators:
    """The compiled validators of one event: a fast one that judges and a ``jsonschema`` one that explains.

    ``jsonschema`` is imported only when a payload must be explained: with its
    format extras installed, importing it takes seconds.
    """

    def __init__(self, schema: dict[str, Any], strict: bool) -> None:
        self.schema = schema
        self.strict = strict
        resources = [(doc["$id"], doc) for doc in _documents(strict).values()]
        self.fast = jsonschema_rs.Draft202012Validator(
            schema,
            registry=jsonschema_rs.Registry(resources, retriever=_refuse),
            retriever=_refuse,
            validate_formats=False,
        )

    @cached_property
    def explain(self) -> Any:
        """A ``jsonschema.Draft202012Validator`` for the same schema."""
        import jsonschema

        return jsonschema.Draft202012Validator(self.schema, registry=registry(self.strict))


def _refuse(uri: str) -> Any:
    """The retriever of the compiled validators: a ``$ref`` outside the shipped schemas is never fetched."""
    raise LookupError(f"{uri} is not a shipped schema; remote references are never fetched")


@cache
def validators(name: str, strict: bool = False) -> Validators:
    """The compiled validators of one event name (or ``"envelope"``), built on first use."""
    documents = _documents(strict)
    if name not in documents or name == "defs":
        raise UnknownEvent(name)
    return Validators(documents[name], strict)
