"""JSON Schemas, signature verification and Parquet loaders for Zoho SalesIQ webhook deliveries."""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

from .exceptions import (
    AccountingError,
    ArchiveError,
    ClusterError,
    KeyInvalid,
    LockError,
    OutputError,
    PayloadInvalid,
    RunFailed,
    SignatureError,
    SignatureInvalid,
    SignatureMissing,
    SiqSchemasError,
    StorageError,
    Terminated,
    UnknownEvent,
    Unreadable,
)

#: The public names loaded on first use, by the module that defines them: importing the package loads
#: neither the schemas nor cryptography, pyarrow or DuckDB, so `siq` starts handling Ctrl-C at once.
_LAZY = {
    "Keyring": "keys",
    "PublicKey": "keys",
    "load_keys": "keys",
    "is_valid": "validate",
    "iter_errors": "validate",
    "validate": "validate",
    "verify_delivery": "verify",
    "verify_signature": "verify",
    "convert": "converter",
    "read_table": "converter",
    "Report": "converter",
    "table_files": "converter",
}


def __getattr__(name: str) -> Any:
    """The names of :data:`_LAZY`, ``EVENTS`` and ``__version__``, computed on first use."""
    if name == "EVENTS":
        value: Any = import_module("._registry", __name__).event_names()
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("siq-schemas")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0+unknown"
    elif name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'siq_schemas' has no attribute {name!r}")
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package, whose ``validate`` stays the function when the submodule of that name is imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "validate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def schema(event: str, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema (a dict) of one event's payload, or of ``"envelope"``.

    With ``strict=True``, the variant that allows no unknown properties.
    Raises :class:`UnknownEvent` for a name that has no schema.
    """
    return import_module("._registry", __name__).document(event, strict)


__all__ = [
    "EVENTS",
    "AccountingError",
    "ArchiveError",
    "ClusterError",
    "KeyInvalid",
    "Keyring",
    "LockError",
    "OutputError",
    "PayloadInvalid",
    "PublicKey",
    "Report",
    "RunFailed",
    "SignatureError",
    "SignatureInvalid",
    "SignatureMissing",
    "SiqSchemasError",
    "StorageError",
    "Terminated",
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
