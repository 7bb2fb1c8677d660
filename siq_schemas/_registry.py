"""The schemas shipped as package data, loaded once and compiled once.

Every file of ``siq_schemas/schemas/`` is one resource of a
:class:`referencing.Registry`, keyed by its ``$id``. Nothing is ever fetched:
a ``$ref`` outside the shipped files is an error (jsonschema-rs, which would
fetch ``http(s)`` references by default, gets a retriever that refuses).

The files describe payloads as documented (and observed); each schema has three
variants, derived when loaded so that they can never disagree by accident:

- ``documented``: the files as they are: what SalesIQ documents and sends.
- ``lenient`` (what validation accepts): the documented schemas without what
  only documents values (see :func:`lenient`): a record is rejected only when
  it cannot be an event or a value cannot be read as its type.
- ``strict`` (drift detection): the documented schemas in which every object
  that lists ``properties`` gets ``unevaluatedProperties: false``.
"""

from __future__ import annotations

import copy
import json
from functools import cache, cached_property
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs

from .exceptions import UnknownEvent

if TYPE_CHECKING:
    from referencing import Registry

#: Resources that are not event schemas.
SUPPORT = ("defs", "envelope")
#: The variants of every schema (see the module's docstring).
Variant = Literal["lenient", "documented", "strict"]
#: The only properties the lenient schemas require (of the envelope): without them a record cannot be an event.
CORE = ("event", "event_time", "entity_id")
#: Shared definitions that are value types: how a value is read. The lenient schemas keep them whole.
VALUE_TYPES = ("id", "id_list", "epoch_ms", "boolean", "count", "status_codes", "version")
#: Keywords that document values rather than say how to read them: the lenient schemas leave them to drift.
DOCUMENTING = ("required", "enum", "const", "pattern", "if", "then", "else", "dependentRequired")
#: A whole number the lenient schemas read from an integer or a string of digits (``"5"`` reads as 5).
WHOLE_NUMBER = {"type": ["integer", "string"], "pattern": "^[0-9]+(?!\\n)$"}


def _variant(strict: bool | Variant) -> Variant:
    """A variant's name from ``strict``: True is ``strict``, False ``lenient``, a name is itself."""
    if strict is True:
        return "strict"
    return "lenient" if strict is False else strict


@cache
def _documents(variant: Variant) -> dict[str, dict[str, Any]]:
    """Schema documents of one variant, by name (file name without ``.json``)."""
    if variant == "strict":
        return {name: _strict(doc) for name, doc in _documents("documented").items()}
    if variant == "lenient":
        return {
            name: lenient(doc, CORE if name == "envelope" else ()) for name, doc in _documents("documented").items()
        }
    documents = {}
    for entry in files("siq_schemas.schemas").iterdir():
        if entry.name.endswith(".json"):
            documents[entry.name.removesuffix(".json")] = json.loads(entry.read_text(encoding="utf-8"))
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


def lenient(node: Any, core: tuple[str, ...] = ()) -> Any:
    """The lenient variant of a documented schema ``node``: what it takes to be read, not what is documented.

    Every :data:`DOCUMENTING` keyword goes (``required`` but the ``core`` names
    of the envelope, documented values, conditions), an ``integer`` also reads
    from a string of digits (:data:`WHOLE_NUMBER`), and the shared
    :data:`VALUE_TYPES` stay as they are. Types stay: an entity must be an
    object, a text a string, a boolean one of the four spellings.
    """
    if isinstance(node, list):
        return [lenient(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "required" and isinstance(value, list):
            kept = [name for name in value if name in core]
            if kept:
                result[key] = kept
        elif key in DOCUMENTING:
            continue
        elif key == "$defs" and isinstance(value, dict):
            result[key] = {name: item if name in VALUE_TYPES else lenient(item) for name, item in value.items()}
        elif key == "properties" and isinstance(value, dict):
            result[key] = {name: lenient(item) for name, item in value.items()}
        else:
            result[key] = lenient(value)
    if result.get("type") == "integer":
        result |= WHOLE_NUMBER
    return result


def event_names() -> tuple[str, ...]:
    """Every event name that has a schema."""
    return tuple(name for name in _documents("documented") if name not in SUPPORT)


def document(name: str, strict: bool | Variant = False) -> dict[str, Any]:
    """A copy of one schema document (an event name, ``"envelope"`` or ``"defs"``).

    ``strict``: True for the strict variant, False for the lenient one, or a variant's name.
    """
    try:
        return copy.deepcopy(_documents(_variant(strict))[name])
    except (KeyError, TypeError):
        raise UnknownEvent(name) from None


def unpublished(name: str) -> bool:
    """Whether the vendor publishes no payload for an event (its schema says ``"x-unpublished": true``).

    Such an event's schema is the envelope alone: its entity is kept as it comes.
    """
    return _documents("documented").get(name, {}).get("x-unpublished") is True


@cache
def registry(strict: bool | Variant = False) -> Registry:
    """Every shipped schema of one variant, by ``$id``; nothing else can be retrieved.

    ``referencing`` loads here, for ``jsonschema`` (which explains a payload the compiled validators refuse).
    """
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    resources = [(doc["$id"], DRAFT202012.create_resource(doc)) for doc in _documents(_variant(strict)).values()]
    return Registry().with_resources(resources).crawl()


class Validators:
    """The compiled validators of one event: a fast one that judges and a ``jsonschema`` one that explains.

    ``jsonschema`` is imported only when a payload must be explained: with its
    format extras installed, importing it takes seconds.
    """

    def __init__(self, schema: dict[str, Any], strict: bool | Variant) -> None:
        self.schema = schema
        self.strict = _variant(strict)
        resources = [(doc["$id"], doc) for doc in _documents(self.strict).values()]
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


def validators(name: str, strict: bool | Variant = False) -> Validators:
    """The compiled validators of one event name (or ``"envelope"``) in one variant, built on first use."""
    return _validators(name, _variant(strict))


@cache
def _validators(name: str, variant: Variant) -> Validators:
    documents = _documents(variant)
    if name not in documents or name == "defs":
        raise UnknownEvent(name)
    return Validators(documents[name], variant)
