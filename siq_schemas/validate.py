"""Validate stage: check a parsed payload against the schema of its event.

The schema is picked by the payload's ``event``; there is no giant ``oneOf``.
Verdicts come from a compiled validator (jsonschema-rs); only a payload found
invalid is explained by ``jsonschema``, which reports the most relevant error
(:func:`jsonschema.exceptions.best_match`) with its JSON path. The test suite
proves both libraries give the same verdict on every example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import _registry
from .exceptions import PayloadInvalid, UnknownEvent

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


#: The ``handler`` of a Zobot (bot platform) request: it reaches webhook URLs, signed alike, but is no event.
ZOBOT_HANDLERS = frozenset({"trigger", "message", "context", "failure"})
ZOBOT = "a Zobot request, not a webhook event"


def zobot_request(payload: Any) -> bool:
    """Whether ``payload`` is a Zobot request: no ``event``, and a ``handler`` of :data:`ZOBOT_HANDLERS`."""
    if not isinstance(payload, dict) or "event" in payload:
        return False
    handler = payload.get("handler")
    return isinstance(handler, str) and handler in ZOBOT_HANDLERS


def _validators(payload: Any, strict: bool) -> _registry.Validators:
    """The validators for ``payload``'s event; the envelope's when it has no usable ``event``.

    A Zobot request raises :class:`UnknownEvent` saying so, rather than lacking ``event``.
    """
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, str) or not event:
        if zobot_request(payload):
            raise UnknownEvent(None, ZOBOT)
        return _registry.validators("envelope", strict)
    if event in _registry.SUPPORT:
        raise UnknownEvent(event)
    return _registry.validators(event, strict)


def iter_errors(payload: Any, strict: bool = False) -> Iterator[ValidationError]:
    """Yield every schema error of ``payload``; raise :class:`UnknownEvent` for an unknown event.

    With ``strict=True`` properties the schemas do not list are errors too
    (drift detection).
    """
    validators = _validators(payload, strict)
    if not verdict(validators, payload):
        yield from validators.explain.iter_errors(payload)


def is_valid(payload: Any, strict: bool = False) -> bool:
    """Whether ``payload`` matches its event's schema (False for an unknown event)."""
    try:
        validators = _validators(payload, strict)
    except UnknownEvent:
        return False
    return verdict(validators, payload)


def validate(payload: Any, strict: bool = False) -> None:
    """Raise :class:`PayloadInvalid`, naming the JSON path of the most relevant error, for an invalid payload.

    Raises :class:`UnknownEvent` when the payload's ``event`` has no schema.
    The verdict is the compiled validator's, as for :func:`is_valid`.
    """
    validators = _validators(payload, strict)
    if verdict(validators, payload):
        return
    from jsonschema.exceptions import best_match

    event = payload.get("event") if isinstance(payload, dict) else None
    event = event if isinstance(event, str) else None
    error = best_match(validators.explain.iter_errors(payload))
    if error is None:
        raise PayloadInvalid("does not match the schema", "$", event)
    raise invalid(error, event)


def invalid(error: ValidationError, event: str | None = None) -> PayloadInvalid:
    """The :class:`PayloadInvalid` for one ``jsonschema`` error, its path naming a missing property."""
    path = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in error.validator_value if name not in error.instance), None)
        if missing is not None:
            path = f"{path}.{missing}" if missing.isidentifier() else f"{path}[{missing!r}]"
    message = error.message
    if error.validator == "pattern" and error.schema.get("type") == _registry.WHOLE_NUMBER["type"]:
        message = f"{error.instance!r} is not an integer or a string of digits"
    message = message if len(message) <= 200 else message[:197] + "..."
    return PayloadInvalid(message, path, event, (error,))


def verdict(validators: _registry.Validators, payload: Any) -> bool:
    """Whether ``payload`` matches the schema of ``validators``, as :func:`is_valid` tells.

    The compiled verdict; values it cannot take (integers over 64 bits) go to ``jsonschema``.
    """
    try:
        return validators.fast.is_valid(payload)
    except (ValueError, OverflowError, TypeError):
        return validators.explain.is_valid(payload)
