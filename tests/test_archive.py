"""The receiver's archive on real files: slots, torn tails, days, compression, the bound on refused requests."""

from __future__ import annotations

import calendar
import json
import time

import zstandard

from siq_schemas.serve.archive import Archive

NOON = calendar.timegm(time.strptime("2026-03-01 12:00", "%Y-%m-%d %H:%M"))


def line(number: int) -> bytes:
    return json.dumps({"received_at": "2026-03-01T12:00:00.000Z", "headers": {}, "body": f"{number}"}).encode() + b"\n"


def test_each_take_locks_another_slot_and_a_released_one_is_taken_again(tmp_path):
    """Two writers of one archive hold slots 0 and 1 and write two files; slot 0, once released, is taken again."""
    archive = Archive(tmp_path)
    first, second = archive.take(NOON), archive.take(NOON)
    first.write([("2026-03-01", line(1))])
    second.write([("2026-03-01", line(2))])
    assert (first.number, second.number) == (0, 1)
    assert first.path.name == "siq-deliveries-2026-03-01.jsonl"
    assert second.path.name == "siq-deliveries-2026-03-01-1.jsonl"
    first.close()
    again = archive.take(NOON)
    assert again.number == 0
    again.write([("2026-03-01", line(3))])
    assert again.path.read_bytes() == line(1) + line(3)


def test_a_torn_tail_is_cut_when_a_slot_is_taken(tmp_path):
    """A last line without its newline (a crash mid-write) is cut before anything is appended; whole lines stay."""
    archive = Archive(tmp_path)
    archive.prepare()
    whole = archive.delivery_file("2026-03-01", 0)
    whole.write_bytes(line(1) + line(2) + line(3)[:20])
    only_torn = archive.delivery_file("2026-03-01", 1)
    only_torn.write_bytes(line(4)[:30])
    archive.sweep(NOON)
    assert whole.read_bytes() == line(1) + line(2) and only_torn.read_bytes() == b""
    slot = archive.take(NOON)
    slot.write([("2026-03-01", line(5))])
    assert whole.read_bytes() == line(1) + line(2) + line(5)


def test_a_day_never_goes_back_and_a_closed_day_is_compressed(tmp_path):
    """After a clock jump backwards lines go on to the latest day's file; a day closed is compressed, whole."""
    archive = Archive(tmp_path)
    slot = archive.take(NOON)
    slot.write([("2026-03-01", line(1)), ("2026-03-02", line(2))])
    slot.write([("2026-02-27", line(3))])  # the clock went back three days
    assert archive.delivery_file("2026-03-02", 0).read_bytes() == line(2) + line(3)
    compressed = archive.delivery_file("2026-03-01", 0, compressed=True)
    deadline = time.monotonic() + 10
    while archive.delivery_file("2026-03-01", 0).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(compressed.read_bytes()) == line(1)
    assert sorted(path.name for path in archive.deliveries.iterdir()) == [
        "siq-deliveries-2026-03-01.jsonl.zst",
        "siq-deliveries-2026-03-02.jsonl",
    ]


def test_a_compression_left_half_done_is_done_again(tmp_path):
    """A .partial left by a stop mid-compression is removed and the day compressed again from its plain file."""
    archive = Archive(tmp_path)
    archive.prepare()
    plain = archive.delivery_file("2026-02-28", 0)
    plain.write_bytes(line(1) + line(2))
    partial = archive.deliveries / ".siq-deliveries-2026-02-28.jsonl.zst.partial"
    partial.write_bytes(b"\x28\xb5\x2f\xfd half")
    archive.sweep(NOON)
    compressed = archive.delivery_file("2026-02-28", 0, compressed=True)
    assert not partial.exists() and not plain.exists()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(compressed.read_bytes()) == line(1) + line(2)


def test_refused_requests_are_kept_up_to_the_bound(tmp_path):
    """Refused requests fill _rejected/ up to rejected_bytes per slot and day; past it they are only counted."""
    archive = Archive(tmp_path, rejected_bytes=1000)
    slot = archive.take(NOON)
    kept = [slot.reject("2026-03-01", line(number)) for number in range(30)]
    (path,) = archive.rejected.iterdir()
    assert 0 < kept.count(True) < 30 and kept == sorted(kept, reverse=True)
    assert path.stat().st_size <= 1000 and path.read_bytes().endswith(b"\n")
    assert slot.rejected_dropped == kept.count(False)
