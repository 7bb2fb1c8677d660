"""Public keys: load the RSA keys that verify SalesIQ webhook signatures.

A key source is PEM text (``-----BEGIN PUBLIC KEY-----``, one or several
blocks), bare base64 DER SubjectPublicKeyInfo, either of those with literal
``\\n`` escapes (keys kept in environment variables), a file path holding any
of those, or an already loaded :class:`Keyring` / :class:`PublicKey`.

Every key gets a stable short id: the first 16 hex digits of the SHA-256 of
its DER SubjectPublicKeyInfo, so logs and reports can say which key verified
a delivery without printing the key.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from . import storage
from .exceptions import KeyInvalid

__all__ = ["KeySource", "Keyring", "PublicKey", "as_keyring", "load_keys"]

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_PRIVATE = "this is a PRIVATE key; give the public key"
#: The most a key file is read: a PEM public key is under 1 KB, a file of several keys a few KB.
KEY_FILE_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class PublicKey:
    """One RSA public key: ``id`` (16 hex digits), the ``cryptography`` ``key`` and its ``der`` bytes."""

    id: str
    key: rsa.RSAPublicKey = field(repr=False)
    der: bytes = field(repr=False)

    @classmethod
    def from_key(cls, key: rsa.RSAPublicKey) -> PublicKey:
        """Wrap a loaded ``cryptography`` RSA public key, computing its id."""
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(hashlib.sha256(der).hexdigest()[:16], key, der)

    @property
    def size(self) -> int:
        """Modulus length in bytes, which is also the length of every signature the key makes."""
        return (self.key.key_size + 7) // 8

    def pem(self) -> str:
        """The key as PEM SubjectPublicKeyInfo text."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class Keyring:
    """An immutable, ordered, de-duplicated set of :class:`PublicKey` (build it with :func:`load_keys`).

    Iterating yields the keys in load order; ``len()``, ``ids`` and truth value work as expected.
    """

    __slots__ = ("_by_size", "_keys")

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        unique: dict[str, PublicKey] = {}
        for key in keys:
            unique.setdefault(key.id, key)
        self._keys: tuple[PublicKey, ...] = tuple(unique.values())
        by_size: dict[int, tuple[PublicKey, ...]] = {}
        for key in self._keys:
            by_size[key.size] = (*by_size.get(key.size, ()), key)
        # Candidates per signature length, for the verify stage. verify may reorder a tuple (the key
        # that verified last goes first); the set of keys never changes.
        self._by_size = by_size

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, in load order."""
        return tuple(key.id for key in self._keys)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The lengths, in bytes, of the signatures the keys make, smallest first."""
        return tuple(sorted(self._by_size))

    def candidates(self, size: int) -> tuple[PublicKey, ...]:
        """The keys whose signatures are ``size`` bytes long, the one that verified last first."""
        return self._by_size.get(size, ())

    def prefer(self, key: PublicKey) -> None:
        """Try ``key`` first among the keys of its size from now on (a dict store is atomic: safe across threads)."""
        self._by_size[key.size] = (key, *(other for other in self._by_size.get(key.size, ()) if other is not key))

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __contains__(self, item: object) -> bool:
        key_id = item.id if isinstance(item, PublicKey) else item
        return any(key.id == key_id for key in self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and set(self.ids) == set(other.ids)

    def __hash__(self) -> int:
        return hash(frozenset(self.ids))

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self.ids)!r})"


KeySource = str | bytes | os.PathLike[str] | Keyring | PublicKey | rsa.RSAPublicKey
"""What :func:`load_keys` accepts: key text or bytes, a file path, a key or a keyring."""


def load_keys(*sources: KeySource) -> Keyring:
    """Load public keys from PEM / base64 DER text or bytes, file paths, keys or keyrings.

    Raises :class:`KeyInvalid` naming the source (the path, or ``key #N`` for inline text) when a
    source holds no key, is missing, holds a private key, a non-RSA key, or is not a key at all.
    With no sources the keyring is empty (and false).
    """
    keys: list[PublicKey] = []
    for number, source in enumerate(sources, 1):
        keys.extend(_load_source(source, f"key #{number}"))
    return Keyring(keys)


def as_keyring(keys: Keyring | KeySource | Iterable[KeySource]) -> Keyring:
    """``keys`` as a keyring: a keyring as it is, else one key source or a collection of them loaded."""
    if isinstance(keys, Keyring):
        return keys
    if isinstance(keys, list | tuple | set | frozenset):
        return load_keys(*keys)
    return load_keys(keys)  # type: ignore[arg-type]


def _load_source(source: object, name: str) -> list[PublicKey]:
    if isinstance(source, Keyring):
        return list(source)
    if isinstance(source, PublicKey):
        return [source]
    if isinstance(source, rsa.RSAPublicKey):
        return [PublicKey.from_key(source)]
    if isinstance(source, os.PathLike):
        return _load_file(Path(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_data(bytes(source), name)
    if isinstance(source, str):
        if _looks_like_key_text(source):
            return _load_text(source, name)
        return _load_file(Path(source))
    if isinstance(source, get_args(PrivateKeyTypes)):
        raise KeyInvalid(f"{name}: {_PRIVATE}")
    if isinstance(source, get_args(PublicKeyTypes)):
        raise KeyInvalid(f"{name}: {_kind(source)} key; only RSA keys sign SalesIQ webhooks")
    raise KeyInvalid(f"{name}: expected PEM or base64 text, bytes or a file path, not {type(source).__name__}")


def _looks_like_key_text(text: str) -> bool:
    """Tell inline key text from a file path (an existing file always wins)."""
    if "-----" in text:
        return True
    if os.path.exists(text):
        return False
    if "\n" in text or "\\n" in text:
        return True
    bare = text.strip().strip("'\"")
    if len(bare) >= 64 and _BASE64_TEXT.fullmatch(bare):
        return True
    return len(text) > 255 or any(char.isspace() for char in text)  # too long or too odd for a path


def _load_file(path: Path) -> list[PublicKey]:
    """The keys of a key file: a regular file (a FIFO or ``/dev/zero`` is refused) of at most :data:`KEY_FILE_BYTES`."""
    try:
        with storage.open_file(path) as handle:
            data = handle.read(KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyInvalid(f"{path}: key file not found") from None
    except IsADirectoryError:
        raise KeyInvalid(f"{path}: is a directory, not a key file") from None
    except OSError as error:
        raise KeyInvalid(f"{path}: cannot read key file ({error.strerror or error})") from None
    if len(data) > KEY_FILE_BYTES:
        raise KeyInvalid(f"{path}: over {KEY_FILE_BYTES >> 20} MiB, not a key file")
    return _load_data(data, str(path))


def _load_data(data: bytes, name: str) -> list[PublicKey]:
    if data[:1] == b"\x30":  # raw DER (a SEQUENCE), e.g. a .der file
        return [_from_der(data, name)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KeyInvalid(f"{name}: not a key (binary data that is not DER)") from None
    return _load_text(text, name)


def _load_text(text: str, name: str) -> list[PublicKey]:
    text = text.replace("\\r", "").replace("\\n", "\n").strip().strip("'\"").strip()
    if not text:
        raise KeyInvalid(f"{name}: holds no key (empty)")
    blocks = _PEM_BLOCK.findall(text)
    if blocks:
        return [
            _from_pem_block(label, body, f"{name} (PEM block {index})" if len(blocks) > 1 else name)
            for index, (label, body) in enumerate(blocks, 1)
        ]
    if "-----BEGIN" in text:
        raise KeyInvalid(f"{name}: PEM block without a matching END line (truncated key?)")
    try:
        der = binascii.a2b_base64("".join(text.split()).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        der = b""
    if der[:1] != b"\x30":  # a DER SubjectPublicKeyInfo is a SEQUENCE
        raise KeyInvalid(f"{name}: holds no key (neither PEM nor base64 DER)")
    return [_from_der(der, name)]


def _from_pem_block(label: str, body: str, name: str) -> PublicKey:
    if "PRIVATE" in label:
        raise KeyInvalid(f"{name}: {_PRIVATE}")
    der = _b64decode(body, name)
    if label == "CERTIFICATE":
        from cryptography import x509  # about 30 ms to import: only for a certificate

        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            raise KeyInvalid(f"{name}: unreadable CERTIFICATE block") from None
        return _wrap(key, name)
    if label not in ("PUBLIC KEY", "RSA PUBLIC KEY"):  # SubjectPublicKeyInfo or PKCS#1
        raise KeyInvalid(f"{name}: a {label} block, not a PUBLIC KEY")
    return _from_der(der, name)


def _from_der(der: bytes, name: str) -> PublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        if _is_private_der(der):
            raise KeyInvalid(f"{name}: {_PRIVATE}") from None
        raise KeyInvalid(f"{name}: not a public key (DER SubjectPublicKeyInfo expected)") from None
    return _wrap(key, name)


def _wrap(key: object, name: str) -> PublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyInvalid(f"{name}: {_kind(key)} key; only RSA keys sign SalesIQ webhooks")
    return PublicKey.from_key(key)


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC ({key.curve.name})"
    return f"a non-RSA ({type(key).__name__})"


def _b64decode(text: str, name: str) -> bytes:
    compact = "".join(text.split())
    try:
        return binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyInvalid(f"{name}: malformed base64 in key") from None


def _is_private_der(der: bytes) -> bool:
    try:
        serialization.load_der_private_key(der, password=None)
    except TypeError:  # an encrypted private key: still a private key
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True
