"""The example payloads under ``tests/examples/`` drive these tests.

Layout (see ``tests/examples/README.md``)::

    tests/examples/<event>/valid/<name>.json     one bare payload (an envelope object)
    tests/examples/<event>/invalid/<name>.json   {"description", "json_path", "payload"}

File names say where a valid example comes from: ``doc-`` the vendor document,
``notes-`` the field notes, ``synthetic-`` made up for an event with no
published payload, ``lenient-`` a departure from the documented shape that the
lenient schemas accept and drift reports. Test ids are ``<event>/<valid|invalid>/<name>``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import siq_schemas
from siq_schemas import _registry
from siq_schemas.drift import Drift
from siq_schemas.parse import loads

EXAMPLES = Path(__file__).parent / "examples"


def _example_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}/{path.stem}"


def _load(path: Path) -> Any:
    """One example file, parsed the way the package parses bodies (ids above 2**53 stay exact)."""
    return loads(path.read_bytes(), str(path))


VALID = sorted(EXAMPLES.glob("*/valid/*.json"))
INVALID = sorted(EXAMPLES.glob("*/invalid/*.json"))


def _payload(path: Path) -> Any:
    loaded = _load(path)
    return loaded if path.parent.name == "valid" else loaded["payload"]


def _params(paths: list[Path]) -> list[Any]:
    return [pytest.param(path, id=_example_id(path)) for path in paths]


# ---------------------------------------------------------------------------- layout


def test_examples_exist_for_every_event() -> None:
    """Every event of EVENTS has at least one valid and three invalid examples."""
    missing = []
    for event in siq_schemas.EVENTS:
        valid = list((EXAMPLES / event / "valid").glob("*.json"))
        invalid = list((EXAMPLES / event / "invalid").glob("*.json"))
        if not valid or len(invalid) < 3:
            missing.append(f"{event}: {len(valid)} valid, {len(invalid)} invalid")
    assert not missing, missing


def test_example_directories_name_events() -> None:
    """Every example directory is an event of EVENTS holding only valid/ and invalid/."""
    for directory in EXAMPLES.iterdir():
        if directory.is_dir():
            assert directory.name in siq_schemas.EVENTS, directory.name
            assert {child.name for child in directory.iterdir()} <= {"valid", "invalid"}, directory


@pytest.mark.parametrize("path", _params(VALID + INVALID))
def test_example_is_filed_under_its_event(path: Path) -> None:
    """An example's payload names the event of the directory it sits in."""
    payload = _payload(path)
    assert isinstance(payload, dict)
    assert payload.get("event") == path.parent.parent.name


@pytest.mark.parametrize("path", _params(INVALID))
def test_invalid_example_is_described(path: Path) -> None:
    """An invalid example says what is wrong and which JSON path the validator must report."""
    loaded = _load(path)
    assert set(loaded) == {"description", "json_path", "payload"}
    assert loaded["description"].strip()
    assert loaded["json_path"].startswith("$")


@pytest.mark.parametrize("path", _params(VALID))
def test_valid_example_source_is_named(path: Path) -> None:
    """A valid example's name says where it comes from: doc-, notes-, synthetic- or lenient-."""
    assert path.stem.split("-", 1)[0] in {"doc", "notes", "synthetic", "lenient"}


# ---------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("path", _params(VALID))
def test_valid_example_passes(path: Path) -> None:
    """A valid example passes validate() and is_valid()."""
    payload = _payload(path)
    siq_schemas.validate(payload)
    assert siq_schemas.is_valid(payload)


@pytest.mark.parametrize("path", _params(INVALID))
def test_invalid_example_reports_its_path(path: Path) -> None:
    """An invalid example raises PayloadInvalid at the expected JSON path and is_valid() is False."""
    loaded = _load(path)
    with pytest.raises(siq_schemas.PayloadInvalid) as raised:
        siq_schemas.validate(loaded["payload"])
    assert raised.value.json_path == loaded["json_path"], str(raised.value)
    assert loaded["json_path"] in str(raised.value)
    assert not siq_schemas.is_valid(loaded["payload"])


def _agreement_params() -> list[Any]:
    params = []
    for path in VALID + INVALID:
        example_id = _example_id(path)
        for strict in (False, True):
            mode = "strict" if strict else "lenient"
            params.append(pytest.param(path, strict, id=f"{example_id}-{mode}"))
    return params


@pytest.mark.parametrize(("path", "strict"), _agreement_params())
def test_fast_and_explaining_validators_agree(path: Path, strict: bool) -> None:
    """jsonschema-rs and jsonschema give the same verdict on every example, lenient and strict."""
    payload = _payload(path)
    validators = _registry.validators(payload["event"], strict)
    assert validators.fast.is_valid(payload) == validators.explain.is_valid(payload)


@pytest.mark.parametrize("path", _params([p for p in VALID if p.stem.startswith("doc-")]))
def test_vendor_document_example_is_valid(path: Path) -> None:
    """Every example taken from the vendor document (repaired) is valid against the lenient schema."""
    assert list(siq_schemas.iter_errors(_payload(path))) == []


@pytest.mark.parametrize("path", _params([p for p in VALID if p.stem.startswith("notes-")]))
def test_field_notes_shape_is_valid(path: Path) -> None:
    """Every shape observed in the field notes produces no error against the lenient schema."""
    assert list(siq_schemas.iter_errors(_payload(path))) == []


@pytest.mark.parametrize("path", _params([p for p in VALID if p.stem.startswith("lenient-")]))
def test_lenient_example_is_accepted_and_reported_by_drift(path: Path) -> None:
    """A `lenient-` example passes the lenient schema, fails the documented one, and drift names what departs."""
    payload = _payload(path)
    assert list(siq_schemas.iter_errors(payload)) == []
    assert not _registry.validators(payload["event"], "documented").fast.is_valid(payload)
    found = Drift()
    assert found.add(payload, str(path), 1) is True
    kinds = {finding["kind"] for finding in found.findings()}
    assert kinds and kinds <= {"missing-required", "enum-value", "type-mismatch", "invalid-value"}, kinds


def test_vendor_document_examples_cover_every_documented_event() -> None:
    """The vendor document's examples cover each event it documents, rated and replied in every form."""
    names = {_example_id(p) for p in VALID if p.stem.startswith("doc-")}
    documented = [
        "conversation.created",
        "conversation.attender.updated",
        "conversation.missed",
        "conversation.completed",
        "conversation.visitor.replied",
        "department.created",
        "department.updated",
        "department.deleted",
        "operator.created",
        "operator.updated",
        "operator.deleted",
    ]
    for event in documented:
        assert f"{event}/valid/doc-payload" in names, event
    assert {
        "conversation.rated/valid/doc-payload-for-rating",
        "conversation.rated/valid/doc-payload-for-feedback",
        "conversation.operator.replied/valid/doc-payload",
        "conversation.operator.replied/valid/doc-bot-conversation-payload",
        "conversation.operator.replied/valid/doc-envelope-example",
        "visitor.updated/valid/doc-case-1-lead-updated",
        "visitor.updated/valid/doc-case-2-lead-becomes-contact",
        "visitor.updated/valid/doc-case-3-contact-updated",
    } <= names


# ---------------------------------------------------------------------------- specific behaviour

BIG_APP_ID = 40526000000002040  # above 2**53: a float-based parser makes it 40526000000002040.0 or worse


def test_id_above_2_53_survives_validation() -> None:
    """An integer id above 2**53 (the document's app_id) is parsed exactly and left as is by validate()."""
    path = EXAMPLES / "conversation.rated" / "valid" / "doc-payload-for-feedback.json"
    payload = _load(path)
    assert BIG_APP_ID > 2**53
    before = copy.deepcopy(payload)
    siq_schemas.validate(payload)
    assert siq_schemas.is_valid(payload)
    assert type(payload["app_id"]) is int
    assert payload["app_id"] == BIG_APP_ID
    assert payload == before


def test_rating_as_word_is_reported_at_rating() -> None:
    """conversation.rated with "rating": "five" is invalid at $.entity.rating."""
    payload = _load(EXAMPLES / "conversation.rated" / "valid" / "doc-payload-for-rating.json")
    payload["entity"]["rating"] = "five"
    with pytest.raises(siq_schemas.PayloadInvalid) as raised:
        siq_schemas.validate(payload)
    assert raised.value.json_path == "$.entity.rating"


def test_missing_event_time_is_reported_by_name() -> None:
    """An envelope without event_time is invalid at $.event_time (the missing property's own path)."""
    payload = _load(EXAMPLES / "department.deleted" / "valid" / "doc-payload.json")
    del payload["event_time"]
    with pytest.raises(siq_schemas.PayloadInvalid) as raised:
        siq_schemas.validate(payload)
    assert raised.value.json_path == "$.event_time"


@pytest.mark.parametrize("event", ["conversation.exploded", "Conversation.Created", "envelope", "defs"])
def test_unknown_event_raises_unknown_event(event: str) -> None:
    """A payload whose event has no schema raises UnknownEvent (not PayloadInvalid); is_valid() is False."""
    payload = _load(EXAMPLES / "conversation.created" / "valid" / "doc-payload.json")
    payload["event"] = event
    with pytest.raises(siq_schemas.UnknownEvent) as raised:
        siq_schemas.validate(payload)
    assert not isinstance(raised.value, siq_schemas.PayloadInvalid)
    assert isinstance(raised.value, siq_schemas.SiqSchemasError)
    with pytest.raises(siq_schemas.UnknownEvent):
        list(siq_schemas.iter_errors(payload))
    assert not siq_schemas.is_valid(payload)


# ---------------------------------------------------------------------------- properties

#: Keys whose values are opaque ids ("email_id" is an address, "visitor_conversation_id" a token).
ID_KEYS = {
    "id",
    "org_id",
    "app_id",
    "entity_id",
    "department_id",
    "reference_id",
    "msgid",
    "created_by",
    "zuid",
}
#: Keys whose values are lists of ids.
ID_LIST_KEYS = {"supervisors", "participants", "operators", "departments"}

Path_ = tuple[Any, ...]


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) below ``node``, the root excluded, parents before children."""
    children: Any = ()
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    for key, value in children:
        yield (*path, key), value
        yield from _walk(value, (*path, key))


def _is_toggleable(value: Any) -> bool:
    """An id that has both forms: an integer, or a string of digits without a leading zero."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isascii() and value.isdigit() and str(int(value)) == value


def _id_paths(payload: Any) -> list[Path_]:
    """Paths of the id fields of ``payload`` whose value can flip between string and integer."""
    paths = []
    for path, value in _walk(payload):
        key = path[-1]
        parent = path[-2] if len(path) > 1 else None
        is_id = key in ID_KEYS or (isinstance(key, int) and parent in ID_LIST_KEYS)
        if is_id and _is_toggleable(value):
            paths.append(path)
    return paths


def _replace(payload: Any, path: Path_, value: Any) -> Any:
    result = copy.deepcopy(payload)
    node = result
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return result


VALID_PAYLOADS = [(_example_id(path), _payload(path)) for path in VALID]
WITH_IDS = [(name, payload) for name, payload in VALID_PAYLOADS if _id_paths(payload)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_ids_are_valid_as_strings_and_integers(data: st.DataObject) -> None:
    """Flipping any id fields of a valid example between string and integer keeps it valid."""
    name, payload = data.draw(st.sampled_from(WITH_IDS), label="example")
    paths = data.draw(st.lists(st.sampled_from(_id_paths(payload)), min_size=1, unique=True), label="ids")
    mutated = payload
    for path in paths:
        node = mutated
        for key in path:
            node = node[key]
        mutated = _replace(mutated, path, str(node) if isinstance(node, int) else int(node))
    siq_schemas.validate(mutated)
    assert siq_schemas.is_valid(mutated), name


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    st.from_regex(r"[0-9]{1,19}", fullmatch=True),
    st.sampled_from(["", "true", "false", "lead", "lead ", " contact", "$2463902591169630574", "-1"]),
)
_json = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_validators_agree_on_mutated_examples(data: st.DataObject) -> None:
    """jsonschema-rs and jsonschema agree, lenient and strict, when a node of a valid example is replaced."""
    name, payload = data.draw(st.sampled_from(VALID_PAYLOADS), label="example")
    paths = [path for path, _ in _walk(payload)]
    path = data.draw(st.sampled_from(paths), label="path")
    mutated = _replace(payload, path, data.draw(_json, label="value"))
    for strict in (False, True):
        validators = _registry.validators(payload["event"], strict)
        assert validators.fast.is_valid(mutated) == validators.explain.is_valid(mutated), (name, path, strict)
