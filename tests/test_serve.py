"""`siq serve` as a real process on a loopback port: answers, archive, durability, shutdown, faults."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from siq_schemas import convert, read_table
from siq_schemas.serve.archive import SLOTS, Archive
from tests.conftest import KEYS
from tests.receiver import (
    KEY_A,
    KEY_B,
    Load,
    Server,
    archived,
    bodies,
    event,
    free_port,
    set_clock,
    signed,
    wait_compressed,
)

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def golden() -> list[dict]:
    return [json.loads(line) for line in (KEYS / "deliveries.jsonl").read_text().splitlines()]


def converted(archive, out, keys=(KEY_A, KEY_B)):
    """`siq_schemas.convert` of the archive folder with the test keys, on one worker."""
    return convert(str(archive), str(out), keys=[str(key) for key in keys], workers=1)


def test_signed_deliveries_are_archived_byte_for_byte(tmp_path):
    """Deliveries signed by key A or B answer 200 and are archived as received, credentials left out."""
    archive = tmp_path / "archive"
    sent = [delivery["body"].encode() for delivery in golden()]
    with Server(archive, "--keys", str(KEY_A), "--keys", str(KEY_B)) as server:
        for delivery, body in zip(golden(), sent, strict=True):
            headers = {**delivery["headers"], "Authorization": "Bearer secret", "Cookie": "session=secret"}
            assert server.post(body, headers) == 200
        status, health = server.health()
    records = archived(archive)
    assert [record["body"].encode() for record in records] == sent
    for record, delivery in zip(records, golden(), strict=True):
        assert TIMESTAMP.fullmatch(record["received_at"])
        assert "authorization" not in record["headers"] and "cookie" not in record["headers"]
        assert record["headers"]["x-test-case"] == delivery["headers"]["x-test-case"]
    assert (status, health["deliveries"], health["status"]) == (200, len(sent), "ok")
    report = converted(archive, tmp_path / "out")
    assert (report.records_read, report.rejected) == (len(sent), 0)


def test_head_answers_200_and_other_methods_and_paths_do_not(tmp_path):
    """HEAD on the path answers 200 (SalesIQ's URL check); GET 405, another path 404, /healthz JSON."""
    with Server(tmp_path / "archive", "--path", "/salesiq", "--keys", str(KEY_A)) as server:
        assert server.request("HEAD", "/salesiq")[0] == 200
        assert server.request("GET", "/salesiq")[0] == 405
        assert server.request("POST", "/elsewhere", b"{}")[0] == 404
        assert server.request("POST", "/healthz", b"{}")[0] == 405
        status, health = server.health()
    assert status == 200
    assert health["writable"] is True and health["deliveries"] == 0 and len(health["keys"]) == 1


def test_tampered_and_unsigned_bodies_answer_401_and_are_kept_apart(tmp_path):
    """A tampered body, a missing signature or an unknown key answers 401; kept in _rejected/, never converted."""
    archive = tmp_path / "archive"
    body = event(1)
    with Server(archive, "--keys", str(KEY_A)) as server:
        assert server.post(body.replace(b"55778119", b"55778118"), signed(body)) == 401
        assert server.post(body, {"content-type": "application/json"}) == 401
        assert server.post(body, signed(body, "unknown")) == 401
        assert server.post(body, {"x-siqsignature": "not base64!"}) == 401
        assert server.post(body, signed(body)) == 200
        assert server.health()[1]["rejected"] == 4
    assert bodies(archive) == [body]
    (kept,) = (archive / "_rejected").glob("*.jsonl")
    reasons = [json.loads(line)["reason"] for line in kept.read_text().splitlines()]
    assert reasons == ["signature-invalid", "signature-missing", "signature-invalid", "signature-invalid"]
    report = converted(archive, tmp_path / "out", keys=(KEY_A,))
    assert (report.records_read, report.events_written, report.rejected) == (1, 1, 0)


def test_an_oversized_body_answers_413_without_being_read(tmp_path):
    """A body over --max-body-bytes answers 413 before it is sent whole; a body the client cuts short is not kept."""
    archive = tmp_path / "archive"
    with Server(archive, "--max-body-bytes", "1000") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n" + b"x" * 65536)
            assert client.recv(100).startswith(b"HTTP/1.1 413 ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
            client.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + chunk * 2)
            assert client.recv(100).startswith(b"HTTP/1.1 413 ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 900\r\n\r\n" + b"w" * 300)
        assert server.post(b"z" * 1000) == 200
    assert bodies(archive) == [b"z" * 1000]


def test_a_max_body_the_converter_could_not_read_is_refused(tmp_path):
    """--max-body-bytes beyond what an archived line within the converter's --max-record-bytes holds: exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "siq_schemas", "serve", "--archive", str(tmp_path), "--max-body-bytes", "8388608"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "--max-record-bytes" in result.stderr


def test_unknown_events_and_invalid_payloads_are_archived_and_answered_200(tmp_path):
    """Authentic deliveries that are not valid (bad JSON, unknown event, schema-invalid, not UTF-8) answer 200."""
    archive = tmp_path / "archive"
    unknown = event(1).replace(b"department.deleted", b"department.exploded")
    invalid = event(2).replace(b'"entity_id":"', b'"entity_id":{"x":"').replace(b'","attempt"', b'"},"attempt"')
    broken, binary = b'{"event": "conversation.rated", ', b"\xff\xfe not text"
    sent = [unknown, invalid, broken, binary]
    with Server(archive, "--keys", str(KEY_A)) as server:
        assert [server.post(body, signed(body)) for body in sent] == [200] * 4
    records = archived(archive)
    assert [record.get("body", "").encode() for record in records[:3]] == sent[:3]
    assert "body" not in records[3] and records[3]["body_base64"]
    report = converted(archive, tmp_path / "out", keys=(KEY_A,))
    assert report.rejected_by_reason == {
        "unreadable": 2, "signature-missing": 0, "signature-invalid": 0, "unknown-event": 1, "schema-invalid": 1
    }  # fmt: skip


def test_concurrent_clients_are_each_archived_once_and_convert_exactly(tmp_path):
    """32 clients at once: every 200 is one line; `siq convert` gives the events sent, retries as duplicates."""
    archive = tmp_path / "archive"
    sent = [(event(number), signed(event(number))) for number in range(200)]
    retries = [(event(number, attempt=2), signed(event(number, attempt=2))) for number in range(0, 200, 4)]
    with Server(archive, "--keys", str(KEY_A)) as server, ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda pair: server.post(*pair), sent + retries))
        health = server.health()[1]
    assert statuses == [200] * len(sent + retries)
    assert sorted(bodies(archive)) == sorted(body for body, _ in sent + retries)
    assert health["fsyncs"] < len(sent + retries)  # group commit: one fsync served several requests
    result = subprocess.run(
        [sys.executable, "-m", "siq_schemas", "convert", str(archive), "--out", str(tmp_path / "out"),
         "--keys", str(KEY_A), "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert (report["events_written"], report["duplicates"], report["rejected"]) == (200, 50, 0)
    events = read_table(tmp_path / "out", "events")
    assert events.deliveries.sum() == 250 and (events.deliveries == 2).sum() == 50


def test_a_day_change_starts_a_new_file_and_compresses_the_closed_day(tmp_path):
    """Past UTC midnight deliveries go to the new day's file; the closed day becomes .jsonl.zst, nothing lost."""
    archive, clock = tmp_path / "archive", tmp_path / "clock"
    set_clock(clock, "2026-03-01T23:59:59.500Z")
    with Server(archive, "--keys", str(KEY_A), env={"SIQ_SERVE_CLOCK": str(clock)}) as server:
        assert [server.post(event(n), signed(event(n))) for n in range(3)] == [200] * 3
        set_clock(clock, "2026-03-02T00:00:00.250Z")
        assert [server.post(event(n), signed(event(n))) for n in range(3, 5)] == [200] * 2
        wait_compressed(archive, "2026-03-01")
        names = sorted(path.name for path in (archive / "deliveries").iterdir())
    assert names == ["siq-deliveries-2026-03-01.jsonl.zst", "siq-deliveries-2026-03-02.jsonl"]
    assert [record["received_at"][:10] for record in archived(archive)] == ["2026-03-02"] * 2
    report = converted(archive, tmp_path / "out", keys=(KEY_A,))
    assert (report.records_read, report.events_written, report.rejected) == (5, 5, 0)


def test_receive_convert_compress_convert_counts_each_delivery_once(tmp_path):
    """Converting a day, then again once the receiver compressed it, counts each delivery once."""
    archive, clock, out = tmp_path / "archive", tmp_path / "clock", tmp_path / "out"
    set_clock(clock, "2026-03-01T12:00:00Z")
    with Server(archive, "--keys", str(KEY_A), env={"SIQ_SERVE_CLOCK": str(clock)}) as server:
        assert [server.post(event(n), signed(event(n))) for n in range(4)] == [200] * 4
        first = converted(archive, out, keys=(KEY_A,))
        set_clock(clock, "2026-03-02T00:00:01Z")
        assert server.post(event(9), signed(event(9))) == 200
        wait_compressed(archive, "2026-03-01")
    second = converted(archive, out, keys=(KEY_A,))
    assert (first.events_written, second.events_written, second.duplicates) == (4, 1, 0)
    assert read_table(out, "events").deliveries.tolist() == [1] * 5


def test_kill_9_under_load_loses_no_acknowledged_delivery(tmp_path):
    """After kill -9 under load and a torn last line, a restart keeps every 200 byte for byte, no partial line;
    a conversion between the crash and the restart leaves the torn tail for later, and no run rejects it."""
    archive = tmp_path / "archive"
    server = Server(archive, "--keys", str(KEY_A))
    load = Load(server.port, clients=16)
    load.wait_for(300)
    server.stop(signal.SIGKILL)
    acked = load.finish()
    (day_file,) = (archive / "deliveries").glob("*.jsonl")
    with open(day_file, "ab") as torn:  # what a crash in the middle of a write leaves
        torn.write(b'{"received_at":"2026-03-01T10:00:00.000Z","headers":{},"bo')
    between = converted(archive, tmp_path / "out", keys=(KEY_A,))  # before the restart: the torn tail waits
    assert (between.rejected, between.pending) == (0, 1)
    with Server(archive, "--keys", str(KEY_A)) as again:
        body = event(10**6)
        assert again.post(body, signed(body)) == 200
    kept = bodies(archive)  # asserts that no file ends with a partial line
    assert list((archive / "deliveries").glob("*.jsonl")) == [day_file]  # the restart took the same slot back
    assert set(acked) <= set(kept) and len(kept) == len(set(kept))
    assert kept[-1] == body
    report = converted(archive, tmp_path / "out", keys=(KEY_A,))
    assert (report.rejected, report.pending) == (0, 0)
    assert (report.events_written, between.events_written + report.events_written) == (1, len(kept))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_under_load_answers_and_keeps_every_request_in_flight(tmp_path, workers):
    """SIGTERM under load, with one worker or two: each request in flight is answered 200 and archived, exit 0."""
    archive = tmp_path / "archive"
    server = Server(archive, "--keys", str(KEY_A), "--workers", workers)
    load = Load(server.port, clients=16)
    load.wait_for(300)
    code = server.stop(signal.SIGTERM)
    acked = load.finish()
    assert code == 0
    assert set(load.statuses) == {200}
    assert sorted(bodies(archive)) == sorted(acked)


def test_a_full_disk_answers_503_and_healthz_says_why(tmp_path):
    """Writes failing with ENOSPC (/dev/full) answer 503, /healthz 503 with the reason; once writable, 200 again."""
    archive = tmp_path / "archive"
    (archive / "deliveries").mkdir(parents=True)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    day_file = archive / "deliveries" / f"siq-deliveries-{today}.jsonl"
    day_file.symlink_to("/dev/full")
    with Server(archive, "--keys", str(KEY_A)) as server:
        assert server.post(event(1), signed(event(1))) == 503
        status, health = server.health()
        assert status == 503 and health["writable"] is False and "No space left on device" in health["reason"]
        day_file.unlink()
        assert server.post(event(2), signed(event(2))) == 200
        assert server.health()[0] == 200
    assert bodies(archive) == [event(2)]


def test_a_file_size_limit_answers_503_and_leaves_no_partial_line(tmp_path):
    """Under RLIMIT_FSIZE a write cut short answers 503 and is undone: every 200 is whole, nothing else is kept."""
    archive = tmp_path / "archive"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    with Server(archive, "--keys", str(KEY_A), preexec=limit) as server:
        statuses = [server.post(event(n), signed(event(n))) for n in range(12)]
        status, health = server.health()
    acked = [event(n) for n, code in enumerate(statuses) if code == 200]
    assert 0 < len(acked) < 12 and set(statuses) == {200, 503}
    assert statuses == sorted(statuses)  # once full, full
    assert status == 503 and "File too large" in health["reason"]
    assert bodies(archive) == acked


def test_an_archive_where_a_file_stands_is_one_clean_line(tmp_path):
    """A file where the archive's deliveries folder should be: exit 2 and a line naming it, no traceback."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "deliveries").write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "siq_schemas", "serve", "--archive", str(archive)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "deliveries" in result.stderr and "Traceback" not in result.stderr


def test_a_receiver_finding_every_slot_taken_stops_with_one_line(tmp_path):
    """When running receivers hold every writer slot of the archive, another `siq serve` exits 2 saying so."""
    archive = Archive(tmp_path / "archive")
    held = [archive.take(time.time()) for _ in range(SLOTS)]
    result = subprocess.run(
        [sys.executable, "-m", "siq_schemas", "serve", "--archive", str(archive.root), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for slot in held:
        slot.close()
    assert result.returncode == 2
    assert result.stderr == f"siq: {archive.root}: all {SLOTS} writer slots are taken by other running receivers\n"


def test_sighup_reloads_the_key_files(tmp_path):
    """After the key file changes, SIGHUP makes the receiver verify with the new key, without a restart."""
    archive, key = tmp_path / "archive", tmp_path / "key.pem"
    key.write_bytes(KEY_A.read_bytes())
    body = event(1)
    with Server(archive, "--keys", str(key)) as server:
        assert server.post(body, signed(body, "b")) == 401
        key.write_bytes(KEY_B.read_bytes())
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while server.post(body, signed(body, "b")) != 200:
            assert time.monotonic() < deadline, "keys not reloaded"
            time.sleep(0.1)
        assert server.post(body, signed(body, "a")) == 401
    assert bodies(archive) == [body]


def test_a_second_receiver_takes_another_slot_and_workers_stop_with_their_supervisor(tmp_path):
    """Two receivers on one archive write two files; --workers 2 workers exit when their supervisor is killed."""
    archive = tmp_path / "archive"
    with Server(archive, "--keys", str(KEY_A)) as first, Server(archive, "--workers", "2") as second:
        assert first.post(event(1), signed(event(1))) == 200
        assert second.post(event(2)) == 200
        workers = _children(second.process.pid)
        assert len(workers) >= 2
        second.stop(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.1)
    files = sorted(path.name.split(".")[0][-2:] for path in (archive / "deliveries").glob("*.jsonl"))
    assert len(files) == 2 and sorted(bodies(archive)) == sorted([event(1), event(2)])


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (uvicorn's workers, its resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry))
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
