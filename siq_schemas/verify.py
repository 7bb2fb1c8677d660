"""Verify stage: check the ``x-siqsignature`` of a delivery against a keyring.

SalesIQ signs the raw request body bytes with RSASSA-PKCS1-v1_5 + SHA-256 and
sends the signature as standard base64. Verification runs on those raw bytes,
before any JSON parsing, and never re-serialises JSON.

Speed: the signature is decoded once, only keys whose modulus length equals
the signature length are tried, and the key that verified last is tried first
(a webhook signs with one key at a time, so a stream costs one RSA operation
per delivery; a signature no key made costs one per key of that length).
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .exceptions import SignatureInvalid, SignatureMissing
from .keys import Keyring, KeySource, as_keyring
from .parse import loads

if TYPE_CHECKING:
    from .read import Record

__all__ = ["SIGNATURE_HEADER", "record_key", "signature_header", "verify_delivery", "verify_signature"]

SIGNATURE_HEADER = "x-siqsignature"

_PADDING = padding.PKCS1v15()
_HASH = hashes.SHA256()

Keys = Keyring | KeySource | Iterable[KeySource]


def verify_signature(body: bytes | str, signature: str | bytes, keys: Keys) -> str:
    """Return the id of the key whose signature ``signature`` (base64) is over ``body``.

    ``body`` is the raw request body (a ``str`` is encoded as UTF-8); ``keys`` is a
    :class:`~siq_schemas.keys.Keyring` or anything :func:`~siq_schemas.keys.load_keys` accepts.
    Raises :class:`SignatureInvalid` for every bad body or signature: wrong key, tampered body,
    empty or malformed base64, wrong length, no keys.
    """
    keyring = as_keyring(keys)
    raw = _decode_signature(signature)
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise SignatureInvalid("body is not valid text (lone surrogates cannot be UTF-8 encoded)") from None
    candidates = keyring.candidates(len(raw))
    if not candidates:
        raise SignatureInvalid(_no_candidates(raw, keyring, signature))
    for position, key in enumerate(candidates):
        try:
            key.key.verify(raw, body, _PADDING, _HASH)
        except InvalidSignature:
            continue
        if position:  # try this key first next time
            keyring.prefer(key)
        return key.id
    tried = ", ".join(key.id for key in candidates)
    raise SignatureInvalid(f"signature {_short(signature)} does not verify with any key ({tried})")


def record_key(record: Record, keys: Keys) -> str:
    """The id of the key that signed an archived delivery record (:class:`~siq_schemas.read.Record`).

    Raises the record's :class:`~siq_schemas.exceptions.Unreadable` error,
    :class:`SignatureMissing` for a bare payload or a delivery without the
    header, :class:`SignatureInvalid` for a signature that does not verify.
    """
    if record.error is not None:
        raise record.error
    if record.kind != "delivery":
        raise SignatureMissing("bare payload without a signature")
    signature = signature_header(record.headers)
    if signature is None:
        raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
    return verify_signature(record.body or b"", signature, keys)


def signature_header(headers: Any) -> str | None:
    """The stripped ``x-siqsignature`` value of ``headers`` (any case), or ``None`` when absent or empty.

    ``headers`` is a dict or any mapping (case-insensitive ones included), an object with
    ``items()`` (``email.message.Message``), or an iterable of ``(name, value)`` pairs; names and
    values may be ``str`` or ``bytes`` (ASGI raw headers).
    """
    if headers is None:
        return None
    if isinstance(headers, dict) and SIGNATURE_HEADER in headers:  # fast path for delivery records
        value = _text(headers[SIGNATURE_HEADER])
        if value:
            return value
    pairs = headers.items() if isinstance(headers, Mapping) or hasattr(headers, "items") else headers
    try:
        for name, value in pairs:
            if isinstance(name, (bytes, bytearray)):
                name = bytes(name).decode("latin-1")
            if isinstance(name, str) and name.strip().lower() == SIGNATURE_HEADER:
                text = _text(value)
                if text:
                    return text
    except (TypeError, ValueError):  # not a mapping nor pairs: no header we can find
        return None
    return None


def verify_delivery(body: bytes | str, headers: Any, keys: Keys) -> Any:
    """Verify, parse and validate one webhook delivery; return its payload.

    The one call for a webhook endpoint: finds ``x-siqsignature`` in ``headers`` (any case),
    verifies it over the raw ``body`` bytes, then parses and validates the JSON. Raises
    :class:`SignatureMissing`, :class:`SignatureInvalid`, :class:`~siq_schemas.exceptions.Unreadable`,
    :class:`~siq_schemas.exceptions.UnknownEvent` or :class:`~siq_schemas.exceptions.PayloadInvalid`.
    """
    from .validate import validate  # lazy: the verify stage does not need the schemas

    signature = signature_header(headers)
    if signature is None:
        raise SignatureMissing(f"no {SIGNATURE_HEADER} header in the delivery")
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise SignatureInvalid("body is not valid text (lone surrogates cannot be UTF-8 encoded)") from None
    verify_signature(body, signature, keys)
    payload = loads(body)
    validate(payload)
    return payload


def _decode_signature(signature: str | bytes) -> bytes:
    """Strict standard base64 (surrounding whitespace allowed) to bytes, or :class:`SignatureInvalid`."""
    if isinstance(signature, str):
        try:
            encoded = signature.strip().encode("ascii")
        except UnicodeEncodeError:
            raise SignatureInvalid(f"signature {_short(signature)} is not base64 (non-ASCII)") from None
    elif isinstance(signature, (bytes, bytearray, memoryview)):
        encoded = bytes(signature).strip()
    else:
        raise TypeError(f"signature must be str or bytes, not {type(signature).__name__}")
    if not encoded:
        raise SignatureInvalid("empty signature")
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        raise SignatureInvalid(f"signature {_short(signature)} is not valid base64") from None
    # Canonical form only: strict mode leaves the unused low bits of a padded last quantum
    # unchecked, which would let several strings decode to the same signature.
    tail = len(raw) % 3
    if tail and binascii.b2a_base64(raw[-tail:], newline=False) != encoded[-4:]:
        raise SignatureInvalid(f"signature {_short(signature)} is not canonical base64")
    return raw


def _no_candidates(raw: bytes, keyring: Keyring, signature: str | bytes) -> str:
    if not keyring:
        return "no keys to verify the signature with"
    sizes = "/".join(str(size) for size in keyring.sizes)
    return f"signature {_short(signature)} is {len(raw)} bytes; the keys sign {sizes} bytes"


def _short(signature: str | bytes) -> str:
    """The first 8 characters of a signature and an ellipsis: never the whole value."""
    text = (
        bytes(signature).decode("latin-1") if isinstance(signature, (bytes, bytearray, memoryview)) else str(signature)
    )
    text = text.strip()
    return repr(text[:8] + "…") if len(text) > 8 else repr(text)


def _text(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):  # multi-valued header containers
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    return str(value).strip() or None
