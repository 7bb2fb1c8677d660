"""The references in ``docs/``, generated from the code: the schema reference
(``docs/schemas.md``, from the schemas) and the data dictionary
(``docs/tables.md``, from the table specs).

The hand-written part of each document stays as it is; the part between the
``BEGIN``/``END`` markers is rewritten by ``make docs``
(``python -m siq_schemas._reference``). A test fails when a committed file
differs from what this module generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import _registry

BEGIN = "<!-- BEGIN GENERATED: python -m siq_schemas._reference -->"
END = "<!-- END GENERATED -->"
#: Shared definitions shown as a type name rather than expanded field by field.
SCALARS = _registry.VALUE_TYPES


def render_leniency() -> str:
    """The rule that makes the lenient schemas out of the documented ones, as :func:`_registry.lenient` applies it."""
    core = ", ".join(f"`{name}`" for name in _registry.CORE)
    dropped = ", ".join(f"`{name}`" for name in _registry.DOCUMENTING)
    return "\n".join(
        [
            "## What the lenient schemas accept",
            "",
            "The tables below document payloads as SalesIQ documents and sends them (the *documented*",
            "schemas). Validation (`validate`, `siq validate`, `siq convert`) uses *lenient* schemas made",
            "from them by one rule, applied to every schema: a record is rejected as `schema-invalid` only",
            "when it cannot be an event or a value cannot be read as its type.",
            "",
            f"- **It cannot be an event** when it lacks {core} (the only required properties left)",
            "  or its `entity` is not an object.",
            "- **A value cannot be read as its type** when its JSON type is not the documented one:",
            "  a text that is not a string, an entity or nested object that is not an object, a",
            f"  [value type](#value-types) ({', '.join(f'`{name}`' for name in _registry.VALUE_TYPES)}) outside",
            '  its forms (a boolean `"yes"`, a time that is not epoch ms, a `null` id). An `integer`',
            '  also reads from a string of digits: a rating of `"5"` reads as 5, `"five"` is invalid.',
            "- **Everything else is accepted and reported by `siq drift`**, which checks against the",
            "  documented schemas: a missing property (a visitor, owner or sender without `id`, whose id",
            "  columns are then null; an entity without its `id`; a reply without its `message`), a value",
            '  outside a documented set (a visitor type `"customer"`), unknown properties (against the',
            "  strict variants).",
            "",
            f"In schema terms, the lenient variant drops the keywords {dropped} everywhere but in the",
            f"value types (and keeps `required` for {core} of the envelope), and widens `integer` to",
            "an integer or a string of digits. `siq_schemas.schema(EVENT)` and `siq schema EVENT` print",
            "the lenient variant, `--strict` the strict one; the files under `siq_schemas/schemas/` are",
            "the documented ones.",
        ]
    )


def render_tables() -> str:
    """The generated data dictionary: every table, its grain and its columns."""
    from .tables import TABLES

    out = []
    for table in TABLES.values():
        out += [f"### `{table.name}`", "", f"One row per {table.grain}."]
        if table.events:
            out += ["", "Events: " + ", ".join(f"`{event}`" for event in sorted(table.events)) + "."]
        out += ["", "| column | type | meaning |", "| --- | --- | --- |"]
        for column in table.columns:
            source = f" From `{'.'.join(column.path)}`." if column.path and column.name != "entity" else ""
            meaning = f"{column.description}{source}".strip().replace("|", "/")
            out.append(f"| `{column.name}` | `{column.type}` | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render() -> str:
    """The generated Markdown: the value types, the envelope, then every event."""
    defs = _registry.document("defs", "documented")["$defs"]
    out = [render_leniency(), "", "## Value types", "", "| type | JSON | meaning |", "| --- | --- | --- |"]
    for name in SCALARS:
        out.append(f"| <a id='type-{name}'></a>`{name}` | {_json_types(defs[name])} | {defs[name]['description']} |")
    out += [
        "",
        "## Envelope",
        "",
        _document_description("envelope"),
        "",
        *_table(_registry.document("envelope", "documented")),
    ]
    out += ["", "## Events", ""]
    for event in _registry.event_names():
        document = _registry.document(event, "documented")
        out += [f"### `{event}`", "", document.get("description", ""), ""]
        if document.get("$ref") != "envelope.json":
            out += [
                f"Same payload as [`{_target(document['$ref'])}`](#{_anchor(_target(document['$ref']))}).",
                "",
            ]
            continue
        entity = document.get("properties", {}).get("entity")
        if entity is None or "$ref" not in entity:
            described = f"`entity`: {entity['description']} " if entity and "description" in entity else ""
            out += [f"{described}Envelope only: the entity is kept as it comes, in `events.entity`.", ""]
            continue
        required = "required" if "entity" in document.get("required", []) else "optional"
        out += [f"`entity` ({required}): {_def(entity['$ref'])['description']}", ""]
        out += [*_table(_def(entity["$ref"]), "entity"), ""]
    return "\n".join(out).rstrip() + "\n"


def _table(schema: dict[str, Any], prefix: str = "") -> list[str]:
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    rows += list(_rows(schema, prefix))
    if "then" in schema:
        needed = ", ".join(f"`{prefix}.{name}`" for name in schema["then"].get("required", []))
        unless = ", ".join(f"`{prefix}.{name}`" for name in schema["if"]["not"].get("required", []))
        rows.append(f"\n{needed} is required when {unless} is absent.")
    return rows


def _rows(schema: dict[str, Any], prefix: str) -> Any:
    required = set(schema.get("required", []))
    for name, node in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        target = _def(node["$ref"]) if "$ref" in node else node
        kind = node.get("$ref", "").rpartition("/")[2]
        if kind in SCALARS:
            kind_text = f"[`{kind}`](#type-{kind.replace('_', '-')})"
            description = node.get("description", "")
        else:
            kind_text = _json_types(target)
            description = node.get("description") or target.get("description", "")
        yes = "yes" if name in required else ""
        yield f"| `{path}` | {kind_text} | {yes} | {description.replace('|', '/')} |"
        if "properties" in target:
            yield from _rows(target, path)


def _json_types(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " or ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kinds = schema.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if kinds == "array" and "items" in schema:
        text += f" of {_json_types(schema['items'])}"
    if "pattern" in schema:
        text += f" (`{schema['pattern']}`)"
    return text


def _def(ref: str) -> dict[str, Any]:
    """The shared definition a ``$ref`` (``defs.json#/$defs/x`` or ``#/$defs/x``) points at."""
    return _registry.document("defs", "documented")["$defs"][ref.rpartition("/")[2]]


def _target(ref: str) -> str:
    return ref.removesuffix(".json")


def _anchor(event: str) -> str:
    return event.replace(".", "")


def _document_description(name: str) -> str:
    return str(_registry.document(name, "documented").get("description", ""))


RENDERERS = {"schemas.md": render, "tables.md": render_tables}


def update(path: Path) -> bool:
    """Rewrite the generated part of ``path`` (``docs/schemas.md`` or ``docs/tables.md``); return whether it changed."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n\n{RENDERERS[path.name]()}\n{END}{tail}"
    path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    for name in sys.argv[1:] or [f"docs/{name}" for name in RENDERERS]:
        update(Path(name))
