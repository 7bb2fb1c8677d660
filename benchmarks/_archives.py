"""The archives of the converter benchmark: bare envelopes and signed deliveries, unique and consistent.

The unique payloads of ``write_sample(events=3000)`` are replicated with rewritten ids (every
17-digit id but the app and webhook ids, ``visitor_conversation_id``) and shifted times
(``event_time``, the entity's times, ``msgid``), so every event is unique and each copy is a
consistent portal of its own; one event in ``RETRY_EVERY`` is also delivered again (``attempt``
2) about ``RETRY_LAG`` lines later.
"""

from __future__ import annotations

import base64
import multiprocessing
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parent.parent
try:
    import siq_schemas  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

RETRY_EVERY = 20  # one event in 20 is delivered twice (attempt 2)
RETRY_LAG = 50  # ... about 50 lines after the first delivery
ID_STRIDE = 10**8  # copy k adds k * ID_STRIDE to every rewritten 17-digit id
SHIFT_MS = 60_013  # copy k happens k * SHIFT_MS later: copies run side by side, as in a busy portal
TIMES = (1_700_000_000_000, 1_900_000_000_000)  # a 13-digit string in this range is a time
PAD, HASH = padding.PKCS1v15(), hashes.SHA256()
_STARTED = time.perf_counter()


def log(message: str) -> None:
    """A progress line, with the seconds since the start."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", flush=True)


def sample_payloads(folder: Path) -> list[dict[str, Any]]:
    """The unique payloads of a 3,000-event sample archive, in ``event_time`` order, attempt 1."""
    for wait in range(13):  # siq_schemas.sample may be mid-restructure: retry for two minutes
        try:
            from siq_schemas.sample import write_sample

            break
        except Exception as error:  # ImportError, or a half-written module
            if wait == 12:
                raise
            log(f"siq_schemas.sample does not import ({error}); retrying in 10 s")
            time.sleep(10)
    from siq_schemas.dedupe import event_key
    from siq_schemas.parse import loads
    from siq_schemas.read import expand, read_records

    write_sample(folder, events=3000)
    unique: dict[str, dict[str, Any]] = {}
    for path in expand([folder / "deliveries", folder / "bare"]):
        for record in read_records(path):
            if record.kind == "delivery":
                payload = loads(record.body or b"")
            elif record.kind == "bare":
                payload = record.payload
            else:
                continue
            unique.setdefault(event_key(payload), payload)
    payloads = sorted(unique.values(), key=lambda payload: int(payload["event_time"]))
    for payload in payloads:
        payload["attempt"] = 1
    return payloads


_TOKEN = re.compile(r'"attempt":1(?=[,}])|"visitor_conversation_id":"([0-9a-z]{9,})"|"(\d{13}|\d{17})"')


Template = tuple[str, list[int], list[int], int]


def templates(payloads: list[dict[str, Any]]) -> list[Template]:
    """Each payload as ``(format, bases, steps, at)``: ``format % tuple(b + k * s)`` is its copy ``k``.

    Placeholders stand for the attempt (step 0), every time (step ``SHIFT_MS``), every 17-digit
    id but the app and webhook ids (step ``ID_STRIDE``) and the last 8 characters of
    ``visitor_conversation_id`` (``k`` in hex). ``at`` is the attempt's placeholder.
    """
    fixed = set()
    for payload in payloads:
        fixed.add(str(payload.get("app_id")))
        fixed.add(str((payload.get("webhook") or {}).get("id")))
    result = []
    for payload in payloads:
        text = msgspec.json.encode(payload).decode()
        parts: list[str] = []
        bases: list[int] = []
        steps: list[int] = []
        end = 0
        for match in _TOKEN.finditer(text):
            literal = text[end : match.start()].replace("%", "%%")
            end = match.end()
            token, conversation, number = match.group(0), match.group(1), match.group(2)
            if token.startswith('"attempt"'):
                parts.append(literal + '"attempt":%d')
                bases.append(1)
                steps.append(0)
            elif conversation is not None:
                parts.append(literal + f'"visitor_conversation_id":"{conversation[:-8]}%08x"')
                bases.append(0)
                steps.append(1)
            elif len(number) == 13 and TIMES[0] <= int(number) < TIMES[1]:
                parts.append(literal + '"%d"')
                bases.append(int(number))
                steps.append(SHIFT_MS)
            elif len(number) == 17 and number not in fixed:
                assert int(number[5:]) < ID_STRIDE, f"id {number} too large for ID_STRIDE"
                parts.append(literal + '"%d"')
                bases.append(int(number))
                steps.append(ID_STRIDE)
            else:  # a number that is neither a time nor a rewritten id stays as it is
                parts.append(literal + token)
        parts.append(text[end:].replace("%", "%%"))
        at = next(i for i, part in enumerate(parts) if part.endswith('"attempt":%d'))
        result.append(("".join(parts), bases, steps, at))
    return result


_TEMPLATES: list[Template] = []


def _set_templates(value: list[Template]) -> None:
    _TEMPLATES[:] = value


def event_line(index: int, attempt: int = 1) -> str:
    """Unique event ``index`` of the replicated archive, as one JSON line (no newline)."""
    copy, which = divmod(index, len(_TEMPLATES))
    form, bases, steps, at = _TEMPLATES[which]
    values = [base + copy * step for base, step in zip(bases, steps, strict=True)]
    values[at] = attempt
    return form % tuple(values)


def _write_file(job: tuple[str, int, int]) -> int:
    """Write unique events ``start`` to ``stop`` (and their retries) to ``path``; return the line count."""
    path, start, stop = job
    lines: list[str] = []
    retries: list[tuple[int, int]] = []  # (line to write it after, event index)
    for index in range(start, stop):
        lines.append(event_line(index))
        if index % RETRY_EVERY == RETRY_EVERY // 2:
            retries.append((len(lines) + RETRY_LAG, index))
        while retries and retries[0][0] <= len(lines):
            lines.append(event_line(retries.pop(0)[1], attempt=2))
    lines.extend(event_line(index, attempt=2) for _, index in retries)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def build_archive(folder: Path, events: int, per_file: int, pool: Any) -> int:
    """Write ``events`` unique events (plus retries) to ``folder/part-NNNNN.jsonl``; return the line count."""
    folder.mkdir(parents=True)
    jobs = [
        (str(folder / f"part-{number:05d}.jsonl"), start, min(start + per_file, events))
        for number, start in enumerate(range(0, events, per_file))
    ]
    return sum(pool.map(_write_file, jobs, chunksize=1))


def write_events(path: Path, events: int) -> None:
    """Unique events ``0`` to ``events`` and their retries in one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_file((str(path), 0, events))


def head(sources: list[Path], lines: int, out: Path) -> None:
    """The first ``lines`` lines of ``sources`` (in order) in one file."""
    with open(out, "wb") as sink:
        for source in sources:
            with open(source, "rb") as handle:
                for line in handle:
                    if lines == 0:
                        return
                    sink.write(line)
                    lines -= 1


def split(source: Path, per_file: int, folder: Path) -> list[Path]:
    """``source`` cut into files of ``per_file`` lines in ``folder``: their paths."""
    folder.mkdir(parents=True)
    lines = source.read_bytes().splitlines(keepends=True)
    paths = []
    for number, start in enumerate(range(0, len(lines), per_file)):
        path = folder / f"part-{number:05d}.jsonl"
        path.write_bytes(b"".join(lines[start : start + per_file]))
        paths.append(path)
    return paths


def census(paths: list[Path]) -> tuple[int, int, int]:
    """Lines, unique events (the lines that are not a retry) and bytes of ``paths``."""
    lines = unique = size = 0
    for path in paths:
        with open(path, "rb") as handle:
            for line in handle:
                lines += 1
                unique += b'"attempt":2' not in line
        size += path.stat().st_size
    return lines, unique, size


_KEY: list[Any] = []


def _load_private(pem: bytes) -> None:
    _KEY[:] = [serialization.load_pem_private_key(pem, password=None)]


def _sign(bodies: list[bytes]) -> list[bytes]:
    return [_KEY[0].sign(body, PAD, HASH) for body in bodies]


def halves(items: list[Any]) -> list[list[Any]]:
    middle = len(items) // 2
    return [items[:middle], items[middle:]]


def build_signed(folder: Path, count: int) -> Path:
    """``count`` unique events as signed delivery records in 4 files of ``folder``; the public key's file."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bodies = [event_line(index).encode() for index in range(count)]
    with multiprocessing.Pool(2, initializer=_load_private, initargs=(private_pem,)) as signers:
        signatures = [s for part in signers.map(_sign, halves(bodies), chunksize=1) for s in part]
    folder.mkdir(parents=True)
    (folder.parent / "signed_public.pem").write_bytes(public_pem)
    encode = msgspec.json.Encoder().encode
    pairs = list(zip(bodies, signatures, strict=True))
    per_file = -(-count // 4)
    for number, start in enumerate(range(0, count, per_file)):
        with open(folder / f"deliveries-{number}.jsonl", "wb") as handle:
            for body, signature in pairs[start : start + per_file]:
                millis = int(msgspec.json.decode(body)["event_time"])
                received = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
                record = {
                    "received_at": received.replace("+00:00", "Z"),
                    "headers": {"x-siqsignature": base64.b64encode(signature).decode()},
                    "body": body.decode(),
                }
                handle.write(encode(record) + b"\n")
    return folder.parent / "signed_public.pem"
