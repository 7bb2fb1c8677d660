"""Signature verification: golden deliveries, tampering, malformed signatures, headers, verify_delivery."""

from __future__ import annotations

import base64
import email.message
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siq_schemas.exceptions import PayloadInvalid, SignatureInvalid, SignatureMissing, Unreadable
from siq_schemas.keys import load_keys
from siq_schemas.verify import signature_header, verify_delivery, verify_signature
from tests.conftest import DEPARTMENT_DELETED, sign

KEYS = Path(__file__).parent / "keys"
RING = load_keys(KEYS / "key_a_public.pem", KEYS / "key_b_public.pem")
A_ID, B_ID = RING.ids
DELIVERIES = [json.loads(line) for line in (KEYS / "deliveries.jsonl").read_text("utf-8").splitlines()]
PAYLOAD = DEPARTMENT_DELETED
BODY = json.dumps(PAYLOAD).encode()


def _case(record: dict[str, Any]) -> str:
    return record["headers"]["x-test-case"]


def _signature(record: dict[str, Any]) -> str:
    return next(value for name, value in record["headers"].items() if name.lower() == "x-siqsignature")


@pytest.mark.parametrize("record", DELIVERIES, ids=_case)
def test_golden_delivery_verifies_with_the_right_key(record: dict[str, Any]) -> None:
    """Each golden delivery verifies with A and B both loaded, reporting the key that signed it."""
    expected = A_ID if _case(record).startswith("a-") else B_ID
    assert verify_signature(record["body"].encode("utf-8"), _signature(record), RING) == expected
    assert verify_signature(record["body"], _signature(record), RING) == expected  # str body is UTF-8


@pytest.mark.parametrize("record", DELIVERIES, ids=_case)
def test_golden_delivery_through_verify_delivery(record: dict[str, Any]) -> None:
    """verify_delivery finds the header in any case, verifies, parses and validates the golden body."""
    assert verify_delivery(record["body"], record["headers"], RING) == json.loads(record["body"])


def test_header_case_variants_are_present() -> None:
    """The golden file exercises lower, mixed and upper case header names."""
    names = {name for record in DELIVERIES for name in record["headers"] if name.lower() == "x-siqsignature"}
    assert names == {"x-siqsignature", "X-SiqSignature", "X-SIQSIGNATURE"}


@pytest.mark.parametrize("signer", ["a", "b"])
def test_fresh_signature_reports_its_key(signer: str) -> None:
    """A signature by A (first key) or B (second key) returns that key's id, repeatedly."""
    signature = sign(BODY, signer)
    for _ in range(3):
        assert verify_signature(BODY, signature, RING) == {"a": A_ID, "b": B_ID}[signer]


def test_key_order_hint_does_not_change_results_or_ring() -> None:
    """Alternating signers always get the right id and the ring keeps its load order."""
    ring = load_keys(KEYS / "key_a_public.pem", KEYS / "key_b_public.pem")
    by_a, by_b = sign(BODY, "a"), sign(BODY, "b")
    for _ in range(3):
        assert verify_signature(BODY, by_b, ring) == B_ID
        assert verify_signature(BODY, by_a, ring) == A_ID
    assert ring.ids == (A_ID, B_ID)


@pytest.mark.parametrize("position", [0, 1, len(BODY) // 2, len(BODY) - 1])
def test_one_byte_change_in_body_fails(position: int) -> None:
    """Changing one byte of the body makes the signature invalid."""
    signature = sign(BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    with pytest.raises(SignatureInvalid):
        verify_signature(bytes(tampered), signature, RING)


def test_appended_newline_fails() -> None:
    """A trailing newline added to the body makes the signature invalid."""
    with pytest.raises(SignatureInvalid):
        verify_signature(BODY + b"\n", sign(BODY), RING)


def test_every_one_character_change_in_signature_fails() -> None:
    """Replacing any one character of the base64 signature (padding included) makes it invalid."""
    signature = sign(BODY)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for index, char in enumerate(signature):
        for replacement in {alphabet[(alphabet.find(char) + 1) % 64], "A" if char != "A" else "B"}:
            changed = signature[:index] + replacement + signature[index + 1 :]
            with pytest.raises(SignatureInvalid):
                verify_signature(BODY, changed, RING)


def test_signature_by_unknown_key_fails() -> None:
    """A well-formed signature by a key outside the ring is invalid and names the keys tried."""
    with pytest.raises(SignatureInvalid, match=A_ID):
        verify_signature(BODY, sign(BODY, "unknown"), RING)


@pytest.mark.parametrize("record", DELIVERIES, ids=_case)
def test_reserialised_json_body_fails(record: dict[str, Any]) -> None:
    """The same JSON with other spacing does not verify: signatures cover the raw bytes."""
    payload = json.loads(record["body"])
    for other in (
        json.dumps(payload),
        json.dumps(payload, indent=1),
        json.dumps(payload, separators=(",", ":")),
    ):
        if other != record["body"]:
            assert json.loads(other) == payload
            with pytest.raises(SignatureInvalid):
                verify_signature(other, _signature(record), RING)


def test_surrounding_whitespace_is_accepted() -> None:
    """Whitespace around the base64 signature (str or bytes) is ignored."""
    signature = sign(BODY, "b")
    assert verify_signature(BODY, f"  {signature}\r\n", RING) == B_ID
    assert verify_signature(BODY, f"\t{signature} ".encode(), RING) == B_ID
    assert verify_signature(bytearray(BODY), signature.encode(), RING) == B_ID


def _malformed() -> dict[str, str]:
    signature = sign(BODY)
    middle = len(signature) // 2
    last = signature.rstrip("=")[-1]  # its 4 low bits are unused: a "neighbour" decodes to the same bytes
    neighbour = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(last) ^ 1
    return {
        "empty": "",
        "blank": "   \n",
        "non-alphabet": signature[:middle] + "!" + signature[middle + 1 :],
        "urlsafe": signature.replace("+", "-").replace("/", "_") if "+" in signature or "/" in signature
        else "-" + signature[1:],
        "missing-padding": signature.rstrip("="),
        "extra-padding": signature + "=",
        "inner-newline": signature[:middle] + "\n" + signature[middle:],
        "inner-space": signature[:middle] + " " + signature[middle:],
        "non-ascii": signature[:middle] + "é" + signature[middle + 1 :],
        "non-canonical-last-char": signature.rstrip("=")[:-1]
        + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[neighbour]
        + "=" * signature.count("="),
        "padding-only": "====",
        "data-after-padding": signature + "AAAA",
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_malformed()))
def test_malformed_base64_is_signature_invalid(name: str) -> None:
    """Empty, non-alphabet, url-safe, badly padded, split or non-canonical base64 raises SignatureInvalid."""
    with pytest.raises(SignatureInvalid):
        verify_signature(BODY, _malformed()[name], RING)
    with pytest.raises(SignatureInvalid):
        verify_signature(BODY, _malformed()[name].encode("utf-8"), RING)


@pytest.mark.parametrize("length", [0, 1, 255, 257, 512])
def test_wrong_signature_length_is_invalid(length: int) -> None:
    """Well-formed base64 whose length matches no key raises SignatureInvalid saying the lengths."""
    signature = base64.b64encode(b"\x01" * length).decode()
    with pytest.raises(SignatureInvalid, match="bytes" if length else "empty"):
        verify_signature(BODY, signature, RING)


def test_no_keys_is_invalid() -> None:
    """With an empty keyring nothing verifies: SignatureInvalid."""
    with pytest.raises(SignatureInvalid, match="no keys"):
        verify_signature(BODY, sign(BODY), load_keys())


def test_keys_may_be_any_load_keys_source() -> None:
    """keys may be a path, PEM text or a list of sources instead of a Keyring."""
    by_b = sign(BODY, "b")
    assert verify_signature(BODY, by_b, KEYS / "key_b_public.pem") == B_ID
    assert verify_signature(BODY, by_b, (KEYS / "key_b_public.pem").read_text()) == B_ID
    assert verify_signature(BODY, by_b, [KEYS / "key_a_public.pem", str(KEYS / "key_b_public.pem")]) == B_ID


def test_error_messages_never_print_the_whole_signature() -> None:
    """Errors show at most the first 8 characters of a signature followed by an ellipsis."""
    for signature in (
        sign(BODY, "unknown"),
        sign(BODY)[:-6] + "!!!!==",
        base64.b64encode(bytes(100)).decode(),
    ):
        with pytest.raises(SignatureInvalid) as caught:
            verify_signature(b"other body", signature, RING)
        message = str(caught.value)
        assert signature[:9] not in message
        assert f"{signature[:8]}…" in message


def test_lone_surrogate_body_is_invalid() -> None:
    """A str body that cannot be UTF-8 encoded raises SignatureInvalid, not UnicodeEncodeError."""
    with pytest.raises(SignatureInvalid):
        verify_signature("\ud800", sign(BODY), RING)


SIGNATURE_OF_BODY = sign(BODY)
BASE64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=400)


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300)),
    signature=st.one_of(
        st.text(max_size=400),
        st.binary(max_size=400),
        BASE64,
        st.binary(min_size=256, max_size=256).map(lambda raw: base64.b64encode(raw).decode()),
        st.integers(0, 343).map(lambda index: _replace_char(SIGNATURE_OF_BODY, index)),
    ),
)
def test_arbitrary_input_only_raises_signature_invalid(body: bytes | str, signature: str | bytes) -> None:
    """Arbitrary bodies and signature strings/bytes never verify and only ever raise SignatureInvalid."""
    with pytest.raises(SignatureInvalid):
        verify_signature(body, signature, RING)


def _replace_char(signature: str, index: int) -> str:
    return signature[:index] + ("B" if signature[index] == "A" else "A") + signature[index + 1 :]


@settings(max_examples=200, deadline=None)
@given(signature=st.one_of(st.text(max_size=400), st.binary(max_size=400), BASE64))
def test_arbitrary_signature_on_a_real_body_only_raises_signature_invalid(signature: str | bytes) -> None:
    """Arbitrary signatures over a genuinely signed body raise only SignatureInvalid."""
    with pytest.raises(SignatureInvalid):
        verify_signature(BODY, signature, RING)


class _CaseInsensitive(Mapping[str, str]):
    """A minimal case-insensitive mapping, like the header objects of web frameworks."""

    def __init__(self, items: dict[str, str]) -> None:
        self._items = {name.lower(): value for name, value in items.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_signature_header_in_every_header_container() -> None:
    """signature_header finds x-siqsignature, any case, in dicts, mappings, Messages and (bytes) pairs."""
    message = email.message.Message()
    message["X-SiqSignature"] = "abc"
    containers: list[Any] = [
        {"x-siqsignature": "abc"},
        {"Content-Type": "application/json", "X-SIQSIGNATURE": " abc "},
        _CaseInsensitive({"X-SiqSignature": "abc"}),
        [("content-type", "application/json"), ("X-Siqsignature", "abc")],
        [(b"x-siqsignature", b"abc")],
        {"x-siqsignature": ["abc"]},
        message,
    ]
    for headers in containers:
        assert signature_header(headers) == "abc", headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        None,
        {"x-siqsignature": ""},
        {"X-SiqSignature": "  "},
        {"x-signature": "abc"},
        [],
        {"x-siqsignature": None},
    ],
    ids=["empty", "none", "empty-value", "blank-value", "other-name", "no-pairs", "null-value"],
)
def test_signature_header_absent_or_empty_is_none(headers: Any) -> None:
    """An absent, null, empty or blank signature header is None."""
    assert signature_header(headers) is None


@pytest.mark.parametrize("headers", [{}, {"x-siqsignature": ""}, [("Content-Type", "application/json")]])
def test_verify_delivery_without_signature_is_missing(headers: Any) -> None:
    """verify_delivery raises SignatureMissing when the signature header is absent or empty."""
    with pytest.raises(SignatureMissing):
        verify_delivery(BODY, headers, RING)


def test_verify_delivery_accepts_pairs_and_returns_payload() -> None:
    """verify_delivery takes a list of header pairs and returns the parsed payload."""
    assert verify_delivery(BODY, [("X-SiqSignature", sign(BODY, "b"))], RING) == PAYLOAD


def test_verify_delivery_checks_the_signature_before_parsing() -> None:
    """A body that is not JSON with a bad signature fails as SignatureInvalid, never as a parse error."""
    with pytest.raises(SignatureInvalid):
        verify_delivery(b"{not json", {"x-siqsignature": sign(BODY)}, RING)


def test_verify_delivery_signed_garbage_is_unreadable() -> None:
    """A correctly signed body that is not JSON raises Unreadable."""
    body = b"{not json"
    with pytest.raises(Unreadable):
        verify_delivery(body, {"x-siqsignature": sign(body)}, RING)


def test_verify_delivery_signed_invalid_payload_is_rejected() -> None:
    """A correctly signed payload that breaks its schema raises PayloadInvalid."""
    body = json.dumps({**PAYLOAD, "attempt": {"not": "a number"}}).encode()
    with pytest.raises(PayloadInvalid):
        verify_delivery(body, {"x-siqsignature": sign(body)}, RING)
