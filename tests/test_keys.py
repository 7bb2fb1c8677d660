"""Loading public keys: every accepted form, key ids, keyrings, and the KeyInvalid errors."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from siq_schemas.exceptions import KeyInvalid, SiqSchemasError
from siq_schemas.keys import Keyring, PublicKey, load_keys

KEYS = Path(__file__).parent / "keys"
A_PEM = (KEYS / "key_a_public.pem").read_text()
B_PEM = (KEYS / "key_b_public.pem").read_text()
A_DER = serialization.load_pem_public_key(A_PEM.encode()).public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
A_ID = hashlib.sha256(A_DER).hexdigest()[:16]


def test_key_id_is_sha256_prefix_of_der() -> None:
    """A key's id is the first 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo."""
    ring = load_keys(A_PEM)
    assert ring.ids == (A_ID,)
    assert next(iter(ring)).der == A_DER


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(A_PEM, id="pem-str"),
        pytest.param(A_PEM.encode(), id="pem-bytes"),
        pytest.param(str(KEYS / "key_a_public.pem"), id="pem-path-str"),
        pytest.param(KEYS / "key_a_public.pem", id="pem-pathlike"),
        pytest.param((KEYS / "key_a_public.b64").read_text(), id="base64-der-str"),
        pytest.param(KEYS / "key_a_public.b64", id="base64-der-file"),
        pytest.param((KEYS / "key_a_public_escaped.txt").read_text(), id="escaped-newlines-str"),
        pytest.param(KEYS / "key_a_public_escaped.txt", id="escaped-newlines-file"),
        pytest.param(A_DER, id="raw-der-bytes"),
        pytest.param(f'"{(KEYS / "key_a_public_escaped.txt").read_text().strip()}"', id="quoted-env-value"),
        pytest.param(A_PEM.replace("\n", "\r\n"), id="crlf-pem"),
    ],
)
def test_every_form_of_key_a_loads_to_the_same_id(source: object) -> None:
    """PEM text/bytes, paths, bare base64 DER and `\\n`-escaped PEM all load key A with its one id."""
    assert load_keys(source).ids == (A_ID,)


def test_pkcs1_rsa_public_key_pem_loads() -> None:
    """A PKCS#1 `RSA PUBLIC KEY` block loads as the same key as its SubjectPublicKeyInfo form."""
    key = serialization.load_pem_public_key(A_PEM.encode())
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert load_keys(pkcs1).ids == (A_ID,)


def test_two_keys_keep_order_and_size() -> None:
    """A ring of A and B iterates in load order, reports both ids and 256-byte (2048-bit) keys."""
    ring = load_keys(KEYS / "key_a_public.pem", KEYS / "key_b_public.pem")
    assert len(ring) == 2 and ring
    assert ring.ids[0] == A_ID and ring.ids[1] != A_ID
    assert [key.size for key in ring] == [256, 256]
    assert all(isinstance(key.key, rsa.RSAPublicKey) for key in ring)
    assert A_ID in ring


def test_file_with_several_pem_blocks_loads_them_all(tmp_path: Path) -> None:
    """A file holding several PEM blocks (and text around them) yields every key."""
    path = tmp_path / "both.pem"
    path.write_text(f"# key A\n{A_PEM}\n# key B\n{B_PEM}")
    assert load_keys(path).ids == load_keys(A_PEM, B_PEM).ids


def test_identical_keys_are_deduplicated() -> None:
    """The same key given in several forms is kept once."""
    ring = load_keys(A_PEM, KEYS / "key_a_public.b64", KEYS / "key_a_public_escaped.txt", B_PEM, A_DER)
    assert len(ring) == 2


def test_keyrings_and_keys_flatten() -> None:
    """Keyrings and PublicKey / cryptography key objects given as sources are flattened into one ring."""
    ring_a, ring_b = load_keys(A_PEM), load_keys(B_PEM)
    key_a = next(iter(ring_a))
    merged = load_keys(ring_a, ring_b, key_a, key_a.key)
    assert merged.ids == ring_a.ids + ring_b.ids
    assert isinstance(key_a, PublicKey) and key_a.id in repr(key_a)
    assert merged == load_keys(B_PEM, A_PEM)  # same set of keys


def test_empty_keyring_is_false() -> None:
    """load_keys() with no sources is an empty, false keyring."""
    ring = load_keys()
    assert isinstance(ring, Keyring) and not ring and len(ring) == 0 and ring.ids == ()


def test_keyring_is_immutable() -> None:
    """A keyring cannot grow attributes and loading more keys makes a new ring."""
    ring = load_keys(A_PEM)
    with pytest.raises(AttributeError):
        ring.extra = 1  # type: ignore[attr-defined]
    bigger = load_keys(ring, B_PEM)
    assert len(ring) == 1 and len(bigger) == 2


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A key file that does not exist raises KeyInvalid naming the path."""
    path = tmp_path / "nope.pem"
    with pytest.raises(KeyInvalid, match="not found") as caught:
        load_keys(path)
    assert str(path) in str(caught.value)
    with pytest.raises(KeyInvalid, match="not found"):
        load_keys(str(path))


def test_file_without_key_names_the_path(tmp_path: Path) -> None:
    """A file holding text but no key raises KeyInvalid naming the path."""
    path = tmp_path / "notes.txt"
    path.write_text("these are not the keys you are looking for\n")
    with pytest.raises(KeyInvalid, match="holds no key") as caught:
        load_keys(path)
    assert str(path) in str(caught.value)


def test_empty_file_holds_no_key(tmp_path: Path) -> None:
    """An empty key file raises KeyInvalid saying it holds no key."""
    path = tmp_path / "empty.pem"
    path.write_text("")
    with pytest.raises(KeyInvalid, match="holds no key"):
        load_keys(path)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    """A directory given as a key file raises KeyInvalid."""
    with pytest.raises(KeyInvalid, match="directory"):
        load_keys(tmp_path)


@pytest.mark.parametrize(
    "form",
    ["path", "pem-text", "pem-bytes", "base64-der", "key-object", "encrypted-pem"],
)
def test_private_key_is_rejected_with_a_clear_message(form: str) -> None:
    """A private key where a public one is expected raises KeyInvalid saying it is PRIVATE."""
    path = KEYS / "key_a_private.pem"
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    source: object = {
        "path": path,
        "pem-text": path.read_text(),
        "pem-bytes": path.read_bytes(),
        "base64-der": base64.b64encode(
            private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ).decode(),
        "key-object": private,
        "encrypted-pem": private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    }[form]
    with pytest.raises(KeyInvalid, match="PRIVATE key; give the public key"):
        load_keys(source)


def test_ec_key_is_rejected() -> None:
    """A non-RSA (EC) public key raises KeyInvalid saying only RSA keys are supported."""
    with pytest.raises(KeyInvalid, match=r"EC .*only RSA") as caught:
        load_keys(KEYS / "key_ec_public.pem")
    assert "key_ec_public.pem" in str(caught.value)


def test_inline_garbage_is_named_by_position_not_content() -> None:
    """Bad inline text is named `key #N` and the error never repeats the text."""
    garbage = "Z" * 63 + "!" + "Q" * 300  # looks like a mangled key
    with pytest.raises(KeyInvalid, match=r"key #2") as caught:
        load_keys(A_PEM, garbage)
    assert garbage[:20] not in str(caught.value)


def test_corrupt_pem_never_prints_the_key() -> None:
    """A PEM block with corrupt base64 raises KeyInvalid without echoing the key material."""
    lines = A_PEM.splitlines()
    corrupt = "\n".join([lines[0], lines[1][:-3] + "*!*", *lines[2:]])
    with pytest.raises(KeyInvalid, match="key #1") as caught:
        load_keys(corrupt)
    assert lines[1][:12] not in str(caught.value)


def test_truncated_pem_is_reported() -> None:
    """A PEM block cut before its END line raises KeyInvalid saying so."""
    with pytest.raises(KeyInvalid, match="truncated"):
        load_keys(A_PEM[: len(A_PEM) // 2])


def test_base64_of_non_key_is_rejected() -> None:
    """Valid base64 that is not DER SubjectPublicKeyInfo raises KeyInvalid."""
    with pytest.raises(KeyInvalid, match="not a public key"):
        load_keys(base64.b64encode(b"\x30" + bytes(100)).decode())


def test_unsupported_source_type_is_rejected() -> None:
    """A source that is neither text, bytes, a path nor a key raises KeyInvalid, a SiqSchemasError."""
    with pytest.raises(KeyInvalid, match="not int"):
        load_keys(42)  # type: ignore[arg-type]
    assert issubclass(KeyInvalid, SiqSchemasError)
