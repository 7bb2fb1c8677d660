"""JSON Schemas, signature verification and Parquet loaders for Zoho SalesIQ webhook deliveries."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import _registry
from .exceptions import (
    KeyInvalid,
    PayloadInvalid,
    SignatureError,
    SignatureInvalid,
    SignatureMissing,
    SiqSchemasError,
    UnknownEvent,
    Unreadable,
)
from .keys import Keyring, PublicKey, load_keys
from .validate import is_valid, iter_errors, validate
from .verify import verify_delivery, verify_signature

try:
    __version__ = version("siq-schemas")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

#: The event names that have schemas (documented, observed-only and alternate spellings).
EVENTS: tuple[str, ...] = _registry.event_names()


def __getattr__(name: str) -> Any:
    """``convert`` and ``read_table`` load pyarrow and DuckDB on first use, not at import."""
    if name in ("convert", "read_table", "Report"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "table_files":
        from .storage import table_files

        return table_files
    raise AttributeError(f"module 'siq_schemas' has no attribute {name!r}")


def schema(event: str, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema (a dict) of one event's payload, or of ``"envelope"``.

    With ``strict=True``, the variant that allows no unknown properties.
    Raises :class:`UnknownEvent` for a name that has no schema.
    """
    return _registry.document(event, strict)


__all__ = [
    "EVENTS",
    "KeyInvalid",
    "Keyring",
    "PayloadInvalid",
    "PublicKey",
    "Report",
    "SignatureError",
    "SignatureInvalid",
    "SignatureMissing",
    "SiqSchemasError",
    "UnknownEvent",
    "Unreadable",
    "__version__",
    "convert",
    "is_valid",
    "iter_errors",
    "load_keys",
    "read_table",
    "schema",
    "table_files",
    "validate",
    "verify_delivery",
    "verify_signature",
]
