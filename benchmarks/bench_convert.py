"""Benchmark: ``siq convert`` against DuckDB, a naive Python pipeline and raw signature checks.

Run ``python benchmarks/bench_convert.py [--events N] [--scale K] [--quick]``. In one run on one
machine it:

1. builds, in a temporary folder, an archive of bare envelopes (JSON Lines, one file per
   20,000 events): the unique payloads of ``write_sample(events=3000)`` replicated with rewritten
   ids (every 17-digit id but the app and webhook ids, ``visitor_conversation_id``) and shifted
   times (``event_time``, the entity's times, ``msgid``), so every event is unique and each copy
   is a consistent portal of its own; 5% of the events are also delivered again (``attempt`` 2);
2. times, on that archive, ``python -m siq_schemas convert DIR --out OUT -q`` (every core, wall
   time with interpreter start-up), DuckDB's ``COPY (SELECT * FROM read_json(...)) TO
   'x.parquet'`` in a fresh process, and the naive pipeline (``json.loads``, ``jsonschema``
   validation with the package's schemas, ``pandas.json_normalize``, ``to_parquet``) on a subset,
   extrapolated; all rates are unique events per second of wall time; and ``siq convert --engine
   dask --workers 2`` (a local Dask cluster of two worker processes), reported next to the local
   engine with no target;
3. signs a subset with a fresh RSA-2048 key (``multiprocessing.Pool(2)``), and compares
   ``siq convert --keys`` on those deliveries with raw ``cryptography`` verification on two cores;
4. measures the peak memory of ``siq convert`` on the archive and on one ``--scale`` times larger:
   the largest single process (``ru_maxrss`` of the children of a fresh helper process) and the
   peak of the summed RSS of the process tree (``/proc`` polled every 0.1 s).

It prints every figure, then each target as PASS or FAIL, and exits 1 when any target fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
POLL = 0.1  # seconds between two looks at the process tree
TARGETS = {  # name: (limit, "min" or "max")
    "siq / DuckDB": (1.0, "min"),
    "siq / naive": (20.0, "min"),
    "signed siq / raw verify (2 cores)": (0.60, "min"),
    "peak RSS scaled / 1x": (1.25, "max"),
}
PAD, HASH = padding.PKCS1v15(), hashes.SHA256()
_STARTED = time.perf_counter()


def log(message: str) -> None:
    """A progress line, with the seconds since the start."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", flush=True)


def env() -> dict[str, str]:
    """The environment of the child processes: the checkout importable, even uninstalled."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


# ---------------------------------------------------------------------------- the archive


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


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---------------------------------------------------------------------------- measurements

#: Runs a command given as JSON in argv[1], its output to the file argv[2]; prints its wall time,
#: its ru_maxrss (the largest single process of its tree) and the peak of the summed VmRSS of its
#: process tree, polled every argv[3] seconds.
WRAPPER = r"""
import json, os, resource, subprocess, sys, time

def rss_of_tree(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    parents[int(name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid and child not in tree)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total, len(tree)

command, out = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
with open(out, "wb") as sink:
    child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    peak = processes = 0
    while child.poll() is None:
        total, count = rss_of_tree(child.pid)
        peak, processes = max(peak, total), max(processes, count)
        time.sleep(float(sys.argv[3]))
seconds = time.perf_counter() - start
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"returncode": child.returncode, "seconds": seconds, "maxrss_kb": maxrss,
                  "tree_peak_kb": peak, "processes": processes}))
"""


def run_measured(command: list[str], log_file: Path) -> dict[str, Any]:
    """Run ``command`` in a fresh helper process; its wall time, exit status and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(command), str(log_file), str(POLL)],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def siq_convert(sources: Path, out: Path, *extra: str) -> dict[str, Any]:
    """``python -m siq_schemas convert`` as a subprocess: wall time, memory and the manifest's counts.

    When the command fails, ``error`` holds the last line of its output (and no counts are set).
    """
    command = [sys.executable, "-m", "siq_schemas", "convert", str(sources), "--out", str(out), "-q", *extra]
    log_file = out.parent / f"{out.name}.log"
    result = run_measured(command, log_file)
    if result["returncode"] != 0:
        output = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        errors = [line for line in output if re.match(r"[\w.]*(Error|Exception)\b", line)] or output
        result["error"] = f"exit {result['returncode']}: " + (errors[-1] if errors else "(no output)")
        shutil.rmtree(out, ignore_errors=True)
        return result
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    run = manifest["last_run"]
    result.update({name: run[name] for name in ("records_read", "events_written", "duplicates", "rejected")})
    result["run_seconds"] = run["seconds"]  # the run's own clock: no interpreter start-up
    shutil.rmtree(out)
    return result


DUCKDB = r"""
import duckdb, sys
con = duckdb.connect()
rows = con.execute(
    "COPY (SELECT * FROM read_json(?, format='newline_delimited')) TO '" + sys.argv[2].replace("'", "''")
    + "' (FORMAT parquet)", [sys.argv[1]]
).fetchone()[0]
print(rows)
"""


def duckdb_copy(folder: Path, out: Path) -> tuple[float, int]:
    """DuckDB's ``read_json`` + ``COPY ... TO parquet`` in a fresh process: wall seconds and rows."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", DUCKDB, str(folder / "*.jsonl"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    out.unlink()
    return seconds, int(done.stdout.split()[-1])


def naive(path: Path, out: Path) -> tuple[float, int]:
    """json.loads + jsonschema + json_normalize + to_parquet over one file: seconds and lines."""
    import jsonschema
    import pandas as pd

    from siq_schemas import schema
    from siq_schemas._registry import registry

    schemas = registry()
    validators: dict[str, Any] = {}
    start = time.perf_counter()
    payloads = []
    with open(path, "rb") as handle:
        for line in handle:
            payload = json.loads(line)
            event = payload["event"]
            if event not in validators:
                validators[event] = jsonschema.Draft202012Validator(schema(event), registry=schemas)
            validators[event].validate(payload)
            payloads.append(payload)
    frame = pd.json_normalize(payloads)
    # Columns mixing text with booleans or numbers (Zoho sends "true" and true, 1 and "1") cannot be
    # written as they are: the naive fix is to write them as text.
    for column in [name for name in frame.columns if pd.api.types.is_object_dtype(frame[name])]:
        kinds = {type(value) for value in frame[column] if value is not None and value == value}
        if len(kinds) > 1 or kinds & {dict, list}:
            frame[column] = frame[column].map(lambda value: None if value is None else str(value))
    frame.to_parquet(out)
    return time.perf_counter() - start, len(payloads)


# ---------------------------------------------------------------------------- signatures

_KEY: list[Any] = []


def _load_private(pem: bytes) -> None:
    _KEY[:] = [serialization.load_pem_private_key(pem, password=None)]


def _sign(bodies: list[bytes]) -> list[bytes]:
    return [_KEY[0].sign(body, PAD, HASH) for body in bodies]


def _verify(job: tuple[bytes, list[tuple[bytes, bytes]]]) -> tuple[int, float]:
    """Raw ``public_key.verify`` over pairs of (body, decoded signature): count and seconds."""
    pem, pairs = job
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    start = time.perf_counter()
    for body, signature in pairs:
        key.verify(signature, body, PAD, HASH)
    return len(pairs), time.perf_counter() - start


def halves(items: list[Any]) -> list[list[Any]]:
    middle = len(items) // 2
    return [items[:middle], items[middle:]]


def build_signed(folder: Path, count: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """``count`` unique events as signed delivery records in 4 files; the public PEM and the pairs."""
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
    return public_pem, pairs


# ---------------------------------------------------------------------------- the run


def mb(kilobytes: float | None) -> str:
    return "-" if kilobytes is None else f"{kilobytes / 1024:,.0f} MB"


def number(value: float | None, form: str = ",.0f") -> str:
    return "failed" if value is None else format(value, form)


def main(argv: list[str] | None = None) -> int:
    """Build the archives, run every measurement, print the tables, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="unique events in the archive")
    parser.add_argument("--scale", type=int, default=10, help="the memory test's larger archive is K times larger")
    parser.add_argument("--naive", type=int, default=10_000, help="events given to the naive pipeline")
    parser.add_argument("--signed", type=int, default=100_000, help="events signed for the signature test")
    parser.add_argument("--per-file", type=int, default=20_000, help="unique events per archive file")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 20,000 events in 4 files, scale 2, 5,000 naive, 4,000 signed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.scale, args.naive, args.signed, args.per_file = 20_000, 2, 5_000, 4_000, 5_000
    args.naive, args.signed = min(args.naive, args.events), min(args.signed, args.events)
    tmp = Path(tempfile.mkdtemp(prefix="bench_convert-"))
    try:
        return Bench(args, tmp).run()
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


class Bench:
    """One run: the archives, the measurements (``None`` when a part failed) and the report."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.timings: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self._mark = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._mark
        self._mark = now

    def guarded(self, name: str, call: Any, *arguments: Any) -> Any:
        """``call(*arguments)``, or ``None`` with the error recorded (the run goes on)."""
        try:
            return call(*arguments)
        except Exception as error:  # a failed part is reported, not fatal
            self.errors[name] = f"{type(error).__name__}: {error}".splitlines()[0]
            log(f"    FAILED: {self.errors[name]}")
            return None
        finally:
            self.lap(name)

    def convert(self, name: str, *arguments: Any) -> dict[str, Any] | None:
        result = self.guarded(name, siq_convert, *arguments)
        if result is not None and "error" in result:
            self.errors[name] = result["error"]
            log(f"    FAILED after {result['seconds']:.1f} s: {result['error']}")
        elif result is not None:
            log(f"    {result['seconds']:.1f} s; {result['events_written']:,} events, "
                f"{result['duplicates']:,} duplicates, {result['rejected']:,} rejected")  # fmt: skip
        return result

    def run(self) -> int:
        args, tmp = self.args, self.tmp
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        log(f"{os.cpu_count()} cores, load average {load}; building the sample (write_sample, 3,000 events) in {tmp}")
        forms = templates(sample_payloads(tmp / "sample"))
        _set_templates(forms)
        log(f"{len(forms):,} unique sample payloads; building {args.events:,} unique events")
        archive = tmp / "bare"
        with multiprocessing.Pool(2, initializer=_set_templates, initargs=(forms,)) as pool:
            self.lines = build_archive(archive, args.events, args.per_file, pool)
        self.size, self.files = folder_size(archive), len(list(archive.iterdir()))
        log(f"archive: {self.files} files, {self.lines:,} lines ({self.lines - args.events:,} retries), "
            f"{self.size / 2**20:,.0f} MB")  # fmt: skip
        self.lap("build")

        log("(a) siq convert (subprocess, all cores)")
        self.siq = self.convert("siq convert", archive, tmp / "out-siq")

        log("(a') siq convert --engine dask (subprocess, a local cluster of 2 workers)")
        self.dask = self.convert("dask convert", archive, tmp / "out-dask", "--engine", "dask", "--workers", "2")

        log("(b) DuckDB read_json -> COPY TO parquet (fresh process, default threads)")
        self.duck = self.guarded("duckdb", duckdb_copy, archive, tmp / "duck.parquet")
        if self.duck:
            log(f"    {self.duck[0]:.1f} s; {self.duck[1]:,} rows")

        log(f"(c) naive pipeline on a {args.naive:,}-event subset")
        subset = tmp / "naive.jsonl"
        _write_file((str(subset), 0, args.naive))  # the same events and retries as the archive's first ones
        self.naive = self.guarded("naive", naive, subset, tmp / "naive.parquet")
        if self.naive:
            log(f"    {self.naive[0]:.1f} s; {self.naive[1]:,} lines")

        log(f"(3) signing {args.signed:,} events with a fresh RSA-2048 key (Pool(2))")
        public_pem, pairs = build_signed(tmp / "signed", args.signed)
        self.lap("signing")
        log("    siq convert --keys (subprocess, all cores)")
        self.signed = self.convert("signed convert", tmp / "signed", tmp / "out-signed", "--keys",
                                   str(tmp / "signed_public.pem"))  # fmt: skip
        log("    raw cryptography verify (Pool(2), each process verifies its half)")
        with multiprocessing.Pool(2) as verifiers:
            self.verified = verifiers.map(_verify, [(public_pem, half) for half in halves(pairs)], chunksize=1)
        self.lap("raw verify")

        self.scaled_events = args.events * args.scale
        log(f"(4) building the x{args.scale} archive: {self.scaled_events:,} unique events")
        big = tmp / "bare-scaled"
        with multiprocessing.Pool(2, initializer=_set_templates, initargs=(forms,)) as pool:
            self.big_lines = build_archive(big, self.scaled_events, args.per_file, pool)
        self.big_size = folder_size(big)
        log(f"    {len(list(big.iterdir()))} files, {self.big_lines:,} lines, {self.big_size / 2**20:,.0f} MB")
        self.lap("build scaled")
        log(f"    siq convert on the x{args.scale} archive (subprocess, all cores)")
        self.scaled = self.convert("scaled convert", big, tmp / "out-scaled")
        shutil.rmtree(big)
        return self.report()

    def report(self) -> int:
        """Print the tables and the targets; the exit status."""
        args, unique, width = self.args, self.args.events, 66
        siq, dask, signed, scaled = (
            None if result is None or "error" in result else result
            for result in (self.siq, self.dask, self.signed, self.scaled)
        )
        siq_rate = unique / siq["seconds"] if siq else None
        duck_rate = unique / self.duck[0] if self.duck else None
        naive_rate = args.naive / self.naive[0] if self.naive else None
        signed_rate = signed["events_written"] / signed["seconds"] if signed else None
        raw_seconds = max(seconds for _, seconds in self.verified)
        raw_rate = sum(count for count, _ in self.verified) / raw_seconds

        def ratio(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a / b

        print()
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"{os.cpu_count()} cores, load average {load} at the end (other work on the machine skews rates)")
        print(f"Python {sys.version.split()[0]}; archive: {unique:,} unique events + "
              f"{self.lines - unique:,} retries in {self.files} plain JSON Lines files "
              f"({self.size / 2**20:,.0f} MB)")  # fmt: skip
        print(f"{'throughput (unique events per second of wall time)':<{width}}{'seconds':>10}{'events/s':>12}")
        rows = [
            ("(a) siq convert, subprocess, all cores, with start-up", siq["seconds"] if siq else None, siq_rate),
            ("    its own clock (manifest: no interpreter start-up)", siq["run_seconds"] if siq else None,
             unique / siq["run_seconds"] if siq else None),
            ("(a') siq convert --engine dask, local cluster of 2 workers", dask["seconds"] if dask else None,
             unique / dask["seconds"] if dask else None),
            ("    its own clock (cluster start-up included)", dask["run_seconds"] if dask else None,
             unique / dask["run_seconds"] if dask else None),
            ("(b) DuckDB read_json -> parquet, fresh process, with start-up", self.duck[0] if self.duck else None,
             duck_rate),
            (f"(c) naive, {args.naive:,}-event subset, one core, EXTRAPOLATED", self.naive[0] if self.naive else None,
             naive_rate),
        ]  # fmt: skip
        for label, seconds, rate in rows:
            print(f"{label:<{width}}{number(seconds, '.2f'):>10}{number(rate):>12}")
        if siq and self.duck:
            print(f"    siq: {siq['events_written']:,} events, {siq['duplicates']:,} duplicates, {siq['rejected']:,} "
                  f"rejected; DuckDB: {self.duck[1]:,} rows (no validation, no dedupe, one wide table)")  # fmt: skip
        print()
        title = f"signed deliveries: {args.signed:,} events, RSA-2048 PKCS#1 v1.5"
        print(f"{title:<{width}}{'seconds':>10}{'events/s':>12}")
        rows = [
            ("siq convert --keys, subprocess, all cores, with start-up", signed["seconds"] if signed else None,
             signed_rate),
            ("    its own clock (manifest: no interpreter start-up)", signed["run_seconds"] if signed else None,
             signed["events_written"] / signed["run_seconds"] if signed else None),
            ("raw cryptography verify, Pool(2), time of the slower half", raw_seconds, raw_rate),
        ]  # fmt: skip
        for label, seconds, rate in rows:
            print(f"{label:<{width}}{number(seconds, '.2f'):>10}{number(rate):>12}")
        print()
        runs = [self.siq or {}, self.scaled or {}]
        print(f"{'memory of siq convert (subprocess, all cores)':<{width}}{'1x':>12}{f'x{args.scale}':>12}")
        print(f"{'unique events':<{width}}{unique:>12,}{self.scaled_events:>12,}")
        print(f"{'finished':<{width}}" + "".join(f"{'no' if 'error' in r or not r else 'yes':>12}" for r in runs))
        label = "wall seconds (until exit)"
        print(f"{label:<{width}}" + "".join(f"{number(r.get('seconds'), '.1f'):>12}" for r in runs))
        rates = [siq_rate, self.scaled_events / scaled["seconds"] if scaled else None]
        print(f"{'events/s':<{width}}" + "".join(f"{number(rate):>12}" for rate in rates))
        label = "peak RSS, largest single process (ru_maxrss, children)"
        print(f"{label:<{width}}" + "".join(f"{mb(r.get('maxrss_kb')):>12}" for r in runs))
        label = "peak of summed VmRSS of the process tree (polled each 0.1 s)"
        print(f"{label:<{width}}" + "".join(f"{mb(r.get('tree_peak_kb')):>12}" for r in runs))
        label = "processes in the tree (at most)"
        print(f"{label:<{width}}" + "".join(f"{r.get('processes', '-'):>12}" for r in runs))
        memory = ratio(scaled["maxrss_kb"], siq["maxrss_kb"]) if siq and scaled else None
        tree = ratio(scaled["tree_peak_kb"], siq["tree_peak_kb"]) if siq and scaled else None
        print(f"    x{args.scale} / 1x: largest process {number(memory, '.2f')}, tree sum {number(tree, '.2f')} "
              "(the target is on the largest single process)")  # fmt: skip
        print()

        failed = False
        targets = {
            "siq / DuckDB": ratio(siq_rate, duck_rate),
            "siq / naive": ratio(siq_rate, naive_rate),
            "signed siq / raw verify (2 cores)": ratio(signed_rate, raw_rate),
            "peak RSS scaled / 1x": memory,
        }
        for name, value in targets.items():
            limit, kind = TARGETS[name]
            ok = value is not None and (value >= limit if kind == "min" else value <= limit)
            failed |= not ok
            sign = ">=" if kind == "min" else "<="
            print(f"{'PASS' if ok else 'FAIL'}  {name:<40}{number(value, '8.2f'):>8}  (target {sign} {limit:g})")
        checks = {
            "siq wrote every unique event, rejected none": siq is not None
            and (siq["events_written"], siq["rejected"]) == (unique, 0),
            "dask engine: the local engine's events, duplicates and rejects": dask is not None
            and siq is not None
            and all(dask[name] == siq[name] for name in ("events_written", "duplicates", "rejected")),
            "signed: every event verified and written": signed is not None
            and (signed["events_written"], signed["rejected"]) == (args.signed, 0),
            f"x{args.scale}: siq convert finished, every unique event": scaled is not None
            and scaled["events_written"] == self.scaled_events,
        }
        for name, ok in checks.items():
            failed |= not ok
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        for name, error in self.errors.items():
            print(f"ERROR {name}: {error}")
        print("time per part: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings.items()))
        print(f"total {time.perf_counter() - _STARTED:.0f} s", flush=True)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
