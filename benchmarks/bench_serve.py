"""Benchmark: ``siq serve`` under load, against a bare uvicorn app as the ceiling.

Run ``python benchmarks/bench_serve.py [--seconds S] [--connections C]``. In one run on one
machine it:

1. writes ``siq sample --events 3000`` to a temporary folder and takes its signed deliveries
   (raw bodies and their ``x-siqsignature``, signed by the sample's key);
2. starts, one after the other on a free loopback port, ``siq serve --keys <sample key>`` with one
   worker, the same with ``--workers 2``, and a bare uvicorn app that answers 200 to everything
   without reading the body (the ceiling: what the server and this load generator reach with no
   work at all);
3. drives each with the same load generator: one asyncio process (uvloop when installed),
   ``--connections`` keep-alive HTTP/1.1 connections (default 32), each posting the deliveries in
   turn for ``--seconds`` (default 20) and timing every answer;
4. prints deliveries/s, p50/p99/max latency and fsyncs/s (the receiver's ``/healthz`` counts
   them per worker), and checks that the archive holds exactly one line per 200.

Targets: at least 3,000 signed deliveries/s with every 200 durable, p99 under 100 ms, every answer
within SalesIQ's 5 s. The load generator shares the machine's cores with the server, as the
ceiling shows. Exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import siq_schemas  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

TARGETS = {"deliveries/s": 3000.0, "p99 ms": 100.0, "max ms": 5000.0}
BARE = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def deliveries(folder: Path) -> tuple[list[bytes], Path]:
    """HTTP requests posting the signed deliveries of a fresh sample, and the sample's public key."""
    from siq_schemas.read import expand, read_records
    from siq_schemas.sample import write_sample

    write_sample(folder, events=3000)
    requests = []
    for path in expand([folder / "deliveries"]):
        for record in read_records(path):
            signature = record.headers.get("x-siqsignature") if record.kind == "delivery" else None
            if signature and record.body:
                head = (
                    f"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                    f"x-siqsignature: {signature}\r\ncontent-length: {len(record.body)}\r\n\r\n"
                )
                requests.append(head.encode() + record.body)
    return requests, folder / "keys" / "sample_public.pem"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited {process.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start within 30 s")


def health(port: int, asks: int = 24) -> dict[int, int]:
    """fsyncs per worker pid, from /healthz on fresh connections (each may reach another worker)."""
    found: dict[int, int] = {}
    for _ in range(asks):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            state = json.load(answer)
        found[state["pid"]] = max(found.get(state["pid"], 0), state["fsyncs"])
    return found


async def connection(port: int, requests: list[bytes], offset: int, stop: float, latencies: list[float]) -> int:
    """One keep-alive client posting requests in turn until ``stop``; the number of non-200 answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures, index = 0, offset
    try:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            writer.write(requests[index % len(requests)])
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
    finally:
        writer.close()
    return failures


async def drive(port: int, requests: list[bytes], connections: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + seconds
    step = max(len(requests) // connections, 1)
    results = await asyncio.gather(
        *(connection(port, requests, number * step, stop, latencies) for number in range(connections))
    )
    return latencies, sum(results), time.perf_counter() - start


def load(port: int, requests: list[bytes], connections: int, seconds: float) -> tuple[list[float], int, float]:
    try:
        import uvloop

        return uvloop.run(drive(port, requests, connections, seconds))
    except ImportError:
        return asyncio.run(drive(port, requests, connections, seconds))


def measure(name: str, command: list[str], port: int, requests: list[bytes], args: argparse.Namespace) -> dict:
    process = subprocess.Popen(command)
    try:
        wait_ready(port, process)
        receiver = "serve" in command
        before = health(port) if receiver else {}
        latencies, failures, elapsed = load(port, requests, args.connections, args.seconds)
        after = health(port) if receiver else {}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    latencies.sort()
    count = len(latencies)
    result = {
        "name": name,
        "answers": count,
        "failures": failures,
        "deliveries/s": (count - failures) / elapsed,
        "p50 ms": latencies[count // 2] * 1000,
        "p99 ms": latencies[min(count - 1, int(count * 0.99))] * 1000,
        "max ms": latencies[-1] * 1000,
        "fsyncs/s": sum(after.get(pid, 0) - before.get(pid, 0) for pid in after) / elapsed if receiver else None,
        "exit": code,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of load per server (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (32)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        folder = Path(temp)
        requests, key = deliveries(folder / "sample")
        print(
            f"{len(requests):,} signed deliveries of `siq sample` (RSA-2048), {args.connections} keep-alive "
            f"connections, {args.seconds:g} s per server, {os.cpu_count()} cores shared with the load generator"
        )
        results, archived = [], {}
        for workers in (1, 2):
            archive = folder / f"archive-{workers}"
            port = free_port()
            command = [sys.executable, "-m", "siq_schemas", "serve", "--archive", str(archive), "--keys", str(key),
                       "--port", str(port), "--workers", str(workers)]  # fmt: skip
            results.append(measure(f"siq serve --workers {workers}", command, port, requests, args))
            archived[results[-1]["name"]] = sum(
                path.read_bytes().count(b"\n") for path in (archive / "deliveries").glob("*.jsonl")
            )
        port = free_port()
        ceiling = measure("bare uvicorn app (ceiling)", [sys.executable, "-c", BARE, str(port)], port, requests, args)
    print(f"{'server':<30}{'answers/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'fsyncs/s':>10}{'200s':>9}")
    for result in [*results, ceiling]:
        fsyncs = f"{result['fsyncs/s']:>10,.0f}" if result["fsyncs/s"] is not None else f"{'':>10}"
        print(f"{result['name']:<30}{result['deliveries/s']:>11,.0f}{result['p50 ms']:>9.1f}{result['p99 ms']:>9.1f}"
              f"{result['max ms']:>9.1f}{fsyncs}{result['answers'] - result['failures']:>9,}")  # fmt: skip
    failed = []
    for result in results:
        name, ok = result["name"], result["answers"] - result["failures"]
        checks = [
            (f"{name}: {result['deliveries/s']:,.0f} deliveries/s >= {TARGETS['deliveries/s']:,.0f}",
             result["deliveries/s"] >= TARGETS["deliveries/s"]),
            (f"{name}: p99 {result['p99 ms']:.1f} ms < {TARGETS['p99 ms']:.0f} ms",
             result["p99 ms"] < TARGETS["p99 ms"]),
            (f"{name}: slowest answer {result['max ms']:.0f} ms < {TARGETS['max ms']:.0f} ms (SalesIQ's timeout)",
             result["max ms"] < TARGETS["max ms"]),
            (f"{name}: every 200 durable: {archived[name]:,} archived lines for {ok:,} answers 200, no other answer",
             archived[name] == ok and result["failures"] == 0),
            (f"{name}: exit {result['exit']} after SIGTERM", result["exit"] == 0),
        ]  # fmt: skip
        for text, passed in checks:
            print(("PASS " if passed else "FAIL ") + text)
            if not passed:
                failed.append(text)
        print(f"     {name}: {result['deliveries/s'] / ceiling['deliveries/s']:.0%} of the ceiling")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
