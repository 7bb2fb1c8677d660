"""Regenerate the test keys and the signed golden deliveries in this directory.

Usage: ``python tests/keys/make_keys.py`` re-signs ``deliveries.jsonl`` with the existing keys
(RSASSA-PKCS1-v1_5 signatures are deterministic, so the output does not change);
``python tests/keys/make_keys.py --new-keys`` also makes new key pairs.

TEST KEYS ONLY: the private keys are public in this repository; never use them for anything real.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

HERE = Path(__file__).resolve().parent

DEPARTMENT_DELETED = {
    "version": "1",
    "event": "department.deleted",
    "event_time": "1567065647511",
    "org_id": "55778119",
    "entity_type": "department",
    "entity_id": "40526000001808025",
    "attempt": 1,
}
VISITOR_REPLIED = {
    "entity_type": "conversation",
    "org_id": "55778119",
    "event": "conversation.visitor.replied",
    "entity_id": "40526000001809001",
    "attempt": 1,
    "version": 1,
    "app_id": "40526000000002040",
    "handler": "execution",
    "webhook": {"id": "40526000001800011"},
    "entity": {
        "id": "40526000001809001",
        "visitor_conversation_id": "ad433hjdid546f8n4b734j4omfhjsrwnet46fklf7",
        "message": {
            "sender": {"name": "Tricia Núñez", "id": "$2463902591169630574", "type": "visitor"},
            "msgid": "1769112912709",
            "text": "¿Me ayudas con el envío? 🚚 «mesa de comedor»",
            "meta": {},
        },
        "owner": {"id": "30102333033335", "name": "Patricia", "email_id": "patricia@zylker.com"},
        "visitor": {
            "email_id": "tricia@zylker.com",
            "phone": "1234354",
            "name": "Tricia Núñez",
            "type": "contact",
            "id": "30000000090034",
        },
    },
    "event_time": "1769112912709",
}

# (test case, signing key, header name, received_at, body text)
DELIVERIES = [
    ("a-compact", "a", "x-siqsignature", "2026-03-01T10:15:30.123Z",
     json.dumps(DEPARTMENT_DELETED, separators=(",", ":"))),
    ("a-utf8", "a", "x-siqsignature", "2026-03-01T10:16:02.004Z",
     json.dumps(VISITOR_REPLIED, ensure_ascii=False, separators=(",", ":"))),
    ("b-header-case", "b", "X-SiqSignature", "2026-03-01T10:17:45.500Z",
     json.dumps({**DEPARTMENT_DELETED, "entity_id": "40526000001808026", "event_time": "1567065649000"})),
    ("b-pretty-upper", "b", "X-SIQSIGNATURE", "2026-03-01T10:18:00Z",
     json.dumps(VISITOR_REPLIED, ensure_ascii=False, indent=2) + "\n"),
]  # fmt: skip


def main(new_keys: bool = False) -> None:
    """Write the key files (new ones only when asked or missing) and ``deliveries.jsonl``."""
    private = {name: _rsa_pair(name, new_keys) for name in ("a", "b", "unknown")}
    public_a = private["a"].public_key()
    der = public_a.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    (HERE / "key_a_public.b64").write_text(base64.b64encode(der).decode("ascii") + "\n")
    pem = (HERE / "key_a_public.pem").read_text()
    (HERE / "key_a_public_escaped.txt").write_text(pem.strip().replace("\n", "\\n") + "\n")
    if new_keys or not (HERE / "key_ec_public.pem").exists():
        ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
        (HERE / "key_ec_public.pem").write_bytes(
            ec_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    lines = []
    for case, signer, header, received_at, body in DELIVERIES:
        signature = private[signer].sign(body.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        headers = {
            header: base64.b64encode(signature).decode("ascii"),
            "content-type": "application/json; charset=UTF-8",
            "x-test-case": case,
        }
        record = {"received_at": received_at, "headers": headers, "body": body}
        lines.append(json.dumps(record, ensure_ascii=False))
    (HERE / "deliveries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rsa_pair(name: str, new: bool) -> rsa.RSAPrivateKey:
    private_path, public_path = HERE / f"key_{name}_private.pem", HERE / f"key_{name}_public.pem"
    if private_path.exists() and not new:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, spki))
    return key


if __name__ == "__main__":
    main(new_keys="--new-keys" in sys.argv[1:])
