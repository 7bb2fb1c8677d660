"""Every error siq-schemas raises derives from :class:`SiqSchemasError`.

Errors are data: each carries a stable kebab-case ``code`` (the reject reason
used in the ``rejects`` table) and, where known, where the problem is.
"""

from __future__ import annotations

import signal as signals


class SiqSchemasError(Exception):
    """Base class of every siq-schemas error."""

    code = "error"


class UnknownEvent(SiqSchemasError, LookupError):
    """The payload's ``event`` names an event that has no schema, or the payload is not a webhook event at all."""

    code = "unknown-event"

    def __init__(self, event: object, reason: str | None = None) -> None:
        self.event = event
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        """``unknown event 'x'``, or what the payload is instead (``a Zobot request, not a webhook event``)."""
        return self.reason or f"unknown event {self.event!r}"


class PayloadInvalid(SiqSchemasError, ValueError):
    """The payload does not match its event's schema.

    ``json_path`` points at the problem (``$.entity.rating``), ``event`` is the
    payload's event name and ``errors`` holds every ``jsonschema`` error found.
    """

    code = "schema-invalid"

    def __init__(self, message: str, json_path: str = "$", event: str | None = None, errors: tuple = ()) -> None:
        super().__init__(message)
        self.message = message
        self.json_path = json_path
        self.event = event
        self.errors = errors

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


class SignatureError(SiqSchemasError):
    """Base class of the signature problems of a delivery."""


class SignatureInvalid(SignatureError, ValueError):
    """The signature does not verify with any key of the keyring, or is malformed."""

    code = "signature-invalid"


class SignatureMissing(SignatureError, LookupError):
    """The delivery has no ``x-siqsignature`` header."""

    code = "signature-missing"


class KeyInvalid(SiqSchemasError, ValueError):
    """A public key could not be loaded (no key, a private key, not RSA...)."""

    code = "key-invalid"


class Unreadable(SiqSchemasError, ValueError):
    """An input record or file cannot be read (bad JSON, bad UTF-8, corrupt file).

    ``source`` and ``line`` say where; ``line`` is 0 for a whole-file problem.
    """

    code = "unreadable"

    def __init__(self, message: str, source: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}" if where else self.message


class LockError(SiqSchemasError, RuntimeError):
    """Another run is writing the same output: one writer per output (``siq convert --wait`` waits for it)."""

    code = "locked"


class OutputError(SiqSchemasError, OSError):
    """The output folder cannot be used (not a siq output, not writable, ...)."""

    code = "output-error"


class StorageError(SiqSchemasError, OSError):
    """An object store cannot be used: its fsspec implementation is missing, or it is not a siq output."""

    code = "storage-error"


class ClusterError(SiqSchemasError, OSError):
    """The Dask engine cannot run: Dask is not installed, or the scheduler cannot be reached."""

    code = "cluster-error"


class ArchiveError(SiqSchemasError, OSError):
    """The archive folder cannot be used (not a folder, not writable, every slot taken)."""

    code = "archive"


class AccountingError(SiqSchemasError, AssertionError):
    """records_read != events_written + duplicates + rejected, or rejected != reject rows added: rows went missing."""

    code = "accounting"


class RunFailed(SiqSchemasError, RuntimeError):
    """The run stopped part-way for a reason outside it (a worker process was killed); the output is as it was."""

    code = "run-failed"


class Terminated(KeyboardInterrupt):
    """A run was stopped by SIGTERM or SIGHUP (``signal`` says which), as Ctrl-C stops it.

    A ``KeyboardInterrupt``, so that whatever handles Ctrl-C handles it too;
    ``str()`` is ``terminated`` or ``hung up``.
    """

    code = "terminated"

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.signal = number

    def __str__(self) -> str:
        return "hung up" if self.signal == signals.SIGHUP else "terminated"


#: The reject reasons of the ``rejects`` table, in the order reports list them: the codes of the
#: errors a record can be rejected for.
REASONS: tuple[str, ...] = tuple(
    error.code for error in (Unreadable, SignatureMissing, SignatureInvalid, UnknownEvent, PayloadInvalid)
)
