"""The validation API: EVENTS, schema(), validate(), iter_errors(), is_valid()."""

from __future__ import annotations

import pytest

import siq_schemas
from siq_schemas import _registry
from siq_schemas.parse import loads


def test_events_cover_documented_observed_and_alternate_names():
    """EVENTS holds the 16 documented events, the 10 unpublished ones of the event list, the 8 of Workflows
    and the REST API, and the `disassociated` spelling."""
    assert len(siq_schemas.EVENTS) == 35
    assert "operator.departments.disassociated" in siq_schemas.EVENTS
    assert "conversation.metrics" in siq_schemas.EVENTS
    workflows = {"contact.tag.action", "lead.tag.action", "brands.enabled", "brands.disabled", "tag.created"}
    assert workflows | {"tag.updated", "tag.deleted", "conversation.ended"} <= set(siq_schemas.EVENTS)
    assert "envelope" not in siq_schemas.EVENTS and "defs" not in siq_schemas.EVENTS


def test_schema_returns_a_copy_with_a_stable_id():
    """schema() returns a dict with its $id; changing it does not change the package's schema."""
    document = siq_schemas.schema("conversation.rated")
    assert document["$id"] == "https://siq-schemas.dev/schemas/1/conversation.rated.json"
    document["title"] = "changed"
    assert siq_schemas.schema("conversation.rated")["title"] == "conversation.rated"
    assert siq_schemas.schema("envelope")["required"][:2] == ["event", "event_time"]


def test_schema_of_unknown_event_raises_unknown_event():
    """schema() of a name without a schema raises UnknownEvent, a LookupError and a SiqSchemasError."""
    with pytest.raises(siq_schemas.UnknownEvent) as caught:
        siq_schemas.schema("conversation.exploded")
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, siq_schemas.SiqSchemasError)


def test_valid_payload_passes(rated):
    """A documented payload validates, is_valid is True and iter_errors yields nothing."""
    siq_schemas.validate(rated)
    assert siq_schemas.is_valid(rated)
    assert list(siq_schemas.iter_errors(rated)) == []


def test_wrong_rating_type_names_the_json_path(rated):
    """`"rating": "five"` is invalid at $.entity.rating, and the error carries the event."""
    rated["entity"]["rating"] = "five"
    with pytest.raises(siq_schemas.PayloadInvalid) as caught:
        siq_schemas.validate(rated)
    assert caught.value.json_path == "$.entity.rating"
    assert caught.value.event == "conversation.rated"
    assert "$.entity.rating" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not siq_schemas.is_valid(rated)


def test_missing_required_property_names_the_property(department_deleted):
    """An envelope without event_time is invalid at $.event_time."""
    del department_deleted["event_time"]
    with pytest.raises(siq_schemas.PayloadInvalid) as caught:
        siq_schemas.validate(department_deleted)
    assert caught.value.json_path == "$.event_time"


def test_most_relevant_error_not_an_avalanche(rated):
    """With many problems, validate reports one error; iter_errors yields all of them."""
    rated["entity"]["rating"] = "five"
    rated["entity"]["owner"]["id"] = 1.5
    rated["org_id"] = []
    errors = list(siq_schemas.iter_errors(rated))
    assert len(errors) == 3
    with pytest.raises(siq_schemas.PayloadInvalid) as caught:
        siq_schemas.validate(rated)
    assert len(caught.value.errors) == 1


def test_unknown_event_is_not_a_schema_error(department_deleted):
    """An unknown event name raises UnknownEvent from validate and iter_errors; is_valid is False."""
    department_deleted["event"] = "conversation.exploded"
    with pytest.raises(siq_schemas.UnknownEvent) as caught:
        siq_schemas.validate(department_deleted)
    assert caught.value.event == "conversation.exploded"
    with pytest.raises(siq_schemas.UnknownEvent):
        list(siq_schemas.iter_errors(department_deleted))
    assert not siq_schemas.is_valid(department_deleted)


@pytest.mark.parametrize("payload", [[], "text", 5, None, {}])
def test_non_envelopes_are_invalid_not_crashes(payload):
    """Values that are not envelopes are reported as PayloadInvalid, never another exception."""
    with pytest.raises(siq_schemas.PayloadInvalid):
        siq_schemas.validate(payload)
    assert not siq_schemas.is_valid(payload)


def test_lenient_types_are_accepted(rated):
    """Integer ids and times, integer version, and "true"/"false" booleans are valid."""
    rated.update(version=1, event_time=1567065865617, org_id=55778119, attempt="2")
    rated["entity"]["owner"]["id"] = 40526000000002001
    siq_schemas.validate(rated)


def test_strict_variant_rejects_unknown_properties(rated):
    """An extra property is fine for the lenient schema and an error for the strict one."""
    rated["entity"]["mood"] = "happy"
    siq_schemas.validate(rated)
    assert not siq_schemas.is_valid(rated, strict=True)
    with pytest.raises(siq_schemas.PayloadInvalid) as caught:
        siq_schemas.validate(rated, strict=True)
    assert "mood" in caught.value.message
    assert siq_schemas.schema("conversation.rated", strict=True) != siq_schemas.schema("conversation.rated")


def test_big_ids_survive_parsing_and_validation():
    """app_id 40526000000002040 (above 2^53) is still that exact integer after parse and validate."""
    body = (
        b'{"version":"1","event":"conversation.rated","event_time":"1","org_id":"1","entity_type":"conversation",'
        b'"entity_id":"9","app_id":40526000000002040,"entity":{"feedback":"ok"}}'
    )
    payload = loads(body)
    siq_schemas.validate(payload)
    assert payload["app_id"] == 40526000000002040 and isinstance(payload["app_id"], int)


def test_integers_wider_than_64_bits_are_exact_and_validated():
    """An id with 30 digits parses exact and validates (the compiled validator defers to jsonschema)."""
    payload = loads(
        b'{"version":"1","event":"department.deleted","event_time":"1","org_id":123456789012345678901234567890,'
        b'"entity_type":"department","entity_id":"9"}'
    )
    assert payload["org_id"] == 123456789012345678901234567890
    assert siq_schemas.is_valid(payload)


def test_events_without_a_published_payload_are_marked():
    """The 18 events the vendor names without a payload, and only they, say `"x-unpublished": true`."""
    marked = {event for event in siq_schemas.EVENTS if _registry.unpublished(event)}
    envelope_only = {
        event
        for event in siq_schemas.EVENTS
        if "no payload is published, so only the envelope" in siq_schemas.schema(event)["description"].lower()
    }
    assert marked == envelope_only and len(marked) == 18
    assert not _registry.unpublished("department.deleted") and not _registry.unpublished("no.such.event")
