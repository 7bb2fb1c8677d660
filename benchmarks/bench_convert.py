"""Benchmark: ``siq convert`` against DuckDB, a naive pipeline, dlt and raw RSA, row by row.

Run ``python benchmarks/bench_convert.py [--scale F] [--rows ROW,...] [--runs N]``. In one run on
one machine it builds the archives in a temporary folder (``_archives.py``: bare envelopes
replicated from ``write_sample`` with rewritten ids and times, 5% delivered twice; deliveries
signed with a fresh RSA-2048 key) and times every side as a whole process (``_measure.py``:
interpreter start-up included), each side the median of ``--runs`` alternating runs (siq, peer,
siq, peer, ...) on the same input and the same CPUs. The rows (``--rows``, all by default):

- ``one-file``: 206,000 bare envelopes in one ``.jsonl``; DuckDB ``read_json`` -> ``COPY ...
  (FORMAT parquet)``, 2 threads. Ratio: DuckDB's seconds / siq's (siq's speed relative to DuckDB).
- ``ten-files``: 200,000 unique bare envelopes + 10,000 retries in 10 files; the same DuckDB.
- ``naive``: siq's lines/s on the ten files against the naive pipeline (``json.loads``,
  ``jsonschema`` with the envelope schema, ``pandas.json_normalize``, object columns to JSON
  text, ``to_parquet``) on 20,000 lines, timed whole.
- ``dlt``: 50,000 bare envelopes in one file; dlt ``pipeline.run`` -> filesystem, Parquet,
  2 normalize workers, telemetry off. Ratio: dlt's seconds / siq's.
- ``signed``: 100,000 signed deliveries, ``siq convert --keys``; raw ``cryptography``
  verification of the same deliveries, one process per core. Ratio: siq's rate / raw's rate.
- ``small-files``: 2,000 files of 10 lines against the same 20,000 lines in one file, both siq.
  Ratio: seconds on the small files / seconds on the one file (how much slower).
- ``memory``: peak RSS (summed over the process tree, and at least its largest process) of siq
  on the ten files (1x, the most of its runs) and on an archive 10 times larger (one run).
- ``rerun``: siq again on the unchanged 10x archive and output: its seconds / the first run's.
- ``dask``: ``--engine dask --workers 2`` on the ten files, next to the local engine (no target).

``--scale F`` multiplies every size (not the 10x factor). It prints the table, each row with
its ratio, target and PASS or FAIL, then the checks that each side did the whole work (every
unique event written, none rejected; every line loaded or verified), and exits 1 when any target
or check fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _archives as archives
from _archives import log
from _measure import peer, siq_convert

sys.path.append(str(archives.ROOT))  # the checkout's tests: the digest of an output's tables
from tests.archives import table_digests

ROOT = archives.ROOT
#: The digests of the one-file archive's tables (``--scale 1``) as the converter wrote them.
DIGESTS = Path(__file__).parent / "one_file_digests.json"

SIZES = {  # at --scale 1: the sizes of the rows
    "one-file lines": 206_000,
    "ten-files unique": 200_000,
    "first lines": 20_000,  # the naive pipeline's input and the small-files row's one file
    "dlt lines": 50_000,
    "signed": 100_000,
}
SMALL_LINES = 10  # lines per small file: the first lines cut into 2,000 files at --scale 1
FACTOR = 10  # the memory row's larger archive
ROWS = ("one-file", "ten-files", "naive", "dlt", "signed", "small-files", "memory", "rerun", "dask")
TARGETS = {  # row: (limit, "min" or "max")
    "one-file": (0.6, "min"),
    "ten-files": (0.6, "min"),
    "naive": (12.0, "min"),
    "dlt": (6.0, "min"),
    "signed": (0.4, "min"),
    "small-files": (1.5, "max"),
    "memory ratio": (1.25, "max"),
    "memory 10x MB": (1024.0, "max"),
    "rerun": (0.10, "max"),
}


def main(argv: list[str] | None = None) -> int:
    """Build the archives, run the rows, print the table; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size by F (0.05 for a quick try)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows, of: {', '.join(ROWS)}")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (the median is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown or not rows or args.scale <= 0 or args.runs < 1:
        parser.error(f"unknown rows {unknown}" if unknown else "--rows, --scale and --runs must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="bench_convert-"))
    try:
        return Bench(args.scale, rows, args.runs, tmp).run()
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


class Bench:
    """One run: the archives, the results of each side (one dict per run) and the table."""

    def __init__(self, scale: float, rows: list[str], runs: int, tmp: Path) -> None:
        self.rows, self.runs, self.tmp, self.scale = rows, runs, tmp, scale
        self.size = {name: max(round(value * scale), 100) for name, value in SIZES.items()}
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.inputs: dict[str, tuple[int, int, int]] = {}  # lines, unique events, bytes
        self.checks: dict[str, bool] = {}

    # ------------------------------------------------------------------ running the sides

    def alternate(self, sides: dict[str, Callable[[], dict[str, Any]]], runs: int | None = None) -> None:
        """Run every side ``runs`` times, one after the other in turn; log and keep each result."""
        for number in range(runs or self.runs):
            for name, call in sides.items():
                result = call()
                self.results.setdefault(name, []).append(result)
                done = result.get("error") or f"{result['seconds']:.2f} s"
                log(f"    {name} (run {number + 1}): {done}")

    def siq(
        self, name: str, sources: list[Path], *extra: str, keep: bool = False, again: bool = False
    ) -> Callable[[], dict[str, Any]]:
        """A run of ``siq convert`` into a fresh output (kept afterwards with ``keep``), or ``again`` into the last."""
        out = self.tmp / f"out-{name.replace(' ', '-')}"

        def run() -> dict[str, Any]:
            if not again:
                shutil.rmtree(out, ignore_errors=True)
            return siq_convert(sources, out, *extra, keep=keep)

        return run

    def peer(self, name: str, *arguments: Path) -> Callable[[], dict[str, Any]]:
        out = self.tmp / (f"peer-{name}" + ("" if name in ("dlt", "rsa") else ".parquet"))
        return lambda: peer(name, out, *arguments)

    def seconds(self, name: str) -> float | None:
        """The median wall time of a side, or ``None`` when a run of it failed (or it did not run)."""
        results = self.results.get(name)
        if not results or any("error" in result for result in results):
            return None
        return statistics.median(result["seconds"] for result in results)

    def note(self, name: str, paths: list[Path]) -> None:
        self.inputs[name] = archives.census(paths)
        lines, unique, size = self.inputs[name]
        log(f"  {name}: {len(paths):,} files, {lines:,} lines, {unique:,} unique events, {size / 2**20:,.1f} MB")

    def lines_file(self, path: Path, lines: int) -> Path:
        """The first ``lines`` lines of the event stream (unique events and their retries) in one file."""
        whole = path.with_suffix(".all")
        archives.write_events(whole, lines)
        archives.head([whole], lines, path)
        whole.unlink()
        return path

    # ------------------------------------------------------------------ the rows

    def run(self) -> int:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        log(f"{os.cpu_count()} cores, load average {load}; rows {', '.join(self.rows)}; {self.runs} runs per side")
        log(f"building the sample (write_sample, 3,000 events) in {self.tmp}")
        forms = archives.templates(archives.sample_payloads(self.tmp / "sample"))
        archives._set_templates(forms)
        wanted = set(self.rows)
        first = self.tmp / "first" / "events.jsonl"
        if wanted & {"naive", "small-files"}:
            first.parent.mkdir()
            self.note("first", [self.lines_file(first, self.size["first lines"])])

        if "one-file" in wanted:
            log("one-file: building")
            path = self.lines_file(self.tmp / "one.jsonl", self.size["one-file lines"])
            self.note("one-file", [path])
            siq = self.siq("one-file", [path], keep=True)
            self.alternate({"siq one-file": siq, "duckdb one-file": self.peer("duckdb", path)})
            self.check_tables(self.tmp / "out-one-file")

        ten_unique = max(self.size["ten-files unique"], 1000)
        if wanted & {"ten-files", "naive", "memory", "dask"}:
            log("ten-files: building")
            ten = self.tmp / "ten"
            with multiprocessing.Pool(2, initializer=archives._set_templates, initargs=(forms,)) as pool:
                archives.build_archive(ten, ten_unique, ten_unique // 10, pool)
            self.note("ten-files", sorted(ten.iterdir()))
            sides = {"siq ten-files": self.siq("ten-files", [ten])}
            if "ten-files" in wanted:
                sides["duckdb ten-files"] = self.peer("duckdb", ten / "*.jsonl")
            if "naive" in wanted:
                sides["naive"] = self.peer("naive", first)
            if "dask" in wanted:
                sides["siq dask"] = self.siq("dask", [ten], "--engine", "dask", "--workers", "2")
            self.alternate(sides)

        if "dlt" in wanted:
            log("dlt: building")
            path = self.lines_file(self.tmp / "dlt.jsonl", self.size["dlt lines"])
            self.note("dlt", [path])
            self.alternate({"siq dlt": self.siq("dlt", [path]), "dlt": self.peer("dlt", path)})

        if "signed" in wanted:
            log(f"signed: signing {self.size['signed']:,} deliveries (2 processes)")
            pem = archives.build_signed(self.tmp / "signed", self.size["signed"])
            files = sorted((self.tmp / "signed").iterdir())
            self.inputs["signed"] = (self.size["signed"], self.size["signed"], sum(p.stat().st_size for p in files))
            self.alternate(
                {"siq signed": self.siq("signed", files, "--keys", str(pem)), "rsa": self.peer("rsa", pem, *files)}
            )

        if "small-files" in wanted:
            log("small-files: building")
            small = self.tmp / "small"
            self.note("small-files", archives.split(first, SMALL_LINES, small))
            self.alternate({"siq small-files": self.siq("small", [small]), "siq first": self.siq("first", [first])})

        if wanted & {"memory", "rerun"}:
            log(f"memory: building the {FACTOR}x archive")
            big = self.tmp / "big"
            with multiprocessing.Pool(2, initializer=archives._set_templates, initargs=(forms,)) as pool:
                archives.build_archive(big, ten_unique * FACTOR, ten_unique // 10, pool)
            self.note("big", sorted(big.iterdir()))
            self.alternate({"siq big": self.siq("big", [big], keep=True)}, runs=1)
            if "rerun" in wanted:
                self.alternate({"siq big again": self.siq("big", [big], keep=True, again=True)})
            shutil.rmtree(big)
        return self.report()

    # ------------------------------------------------------------------ the report

    def report(self) -> int:
        """Print the table, the checks and the errors; the exit status."""
        lines: list[tuple[str, str, str, float | None, str]] = []  # case, siq, peer, ratio, target name

        def s(name: str) -> str:
            value = self.seconds(name)
            if value is None:
                return "failed" if name in self.results else "-"
            spread = [result["seconds"] for result in self.results[name]]
            return f"{value:.2f} s" + (f" ({min(spread):.2f}-{max(spread):.2f})" if len(spread) > 1 else "")

        def ratio(top: float | None, bottom: float | None) -> float | None:
            return None if top is None or bottom is None or bottom == 0 else top / bottom

        def described(name: str) -> str:
            if name not in self.inputs:
                return name
            count, unique, size = self.inputs[name]
            return f"{count:,} lines ({unique:,} unique), {size / 2**20:,.0f} MB"

        def versus(row: str, case: str, siq: str, label: str, other: str) -> None:
            """A row whose ratio is the other side's seconds over siq's: siq's speed relative to it."""
            if row in self.rows:
                lines.append((case, s(siq), f"{label}: {s(other)}", ratio(self.seconds(other), self.seconds(siq)), row))

        siq_ten = self.seconds("siq ten-files")
        versus("one-file", f"one file: {described('one-file')}", "siq one-file", "DuckDB, 2 threads", "duckdb one-file")
        versus("ten-files", f"10 files: {described('ten-files')}", "siq ten-files", "DuckDB, 2 threads",
               "duckdb ten-files")  # fmt: skip
        if "naive" in self.rows:
            siq_rate = ratio(self.inputs["ten-files"][0], siq_ten)
            naive_rate = ratio(self.inputs["first"][0], self.seconds("naive"))
            lines.append(("the 10 files, lines/s; naive: their first lines", rate(siq_rate),
                          f"naive, {self.inputs['first'][0]:,} lines: {rate(naive_rate)}, {s('naive')}",
                          ratio(siq_rate, naive_rate), "naive"))  # fmt: skip
        versus("dlt", f"one file: {described('dlt')}", "siq dlt", "dlt, 2 normalize workers", "dlt")
        if "signed" in self.rows:
            count = self.inputs["signed"][0]
            siq_rate = ratio(count, self.seconds("siq signed"))
            raw_rate = ratio(count, self.seconds("rsa"))
            lines.append((f"{count:,} signed deliveries, rate", f"{rate(siq_rate)}, {s('siq signed')}",
                          f"raw RSA, {os.cpu_count()} processes: {rate(raw_rate)}, {s('rsa')}",
                          ratio(siq_rate, raw_rate), "signed"))  # fmt: skip
        if "small-files" in self.rows:
            count = len(list((self.tmp / "small").glob("*.jsonl"))) if (self.tmp / "small").exists() else 0
            slower = ratio(self.seconds("siq small-files"), self.seconds("siq first"))
            lines.append((f"{count:,} files of {SMALL_LINES} lines, slower by", s("siq small-files"),
                          f"siq, the same {self.inputs['first'][0]:,} lines in one file: {s('siq first')}",
                          slower, "small-files"))  # fmt: skip
        if "memory" in self.rows:
            # The tree is polled every 0.1 s, so its sum can miss a short peak that ru_maxrss (the largest
            # single process, exact) caught: the peak is the larger of the two.
            def peaks(name: str) -> list[float]:
                done = [r for r in self.results.get(name, []) if "error" not in r]
                return [max(r["tree_peak_kb"], r["maxrss_kb"]) / 1024 for r in done]

            one, big = peaks("siq ten-files"), peaks("siq big")
            one_mb, big_mb = (max(one) if one else None), (big[0] if big else None)
            largest = [r["maxrss_kb"] / 1024 for r in self.results.get("siq big", []) if "error" not in r]
            lines.append((f"peak RSS (process tree), {FACTOR}x / 1x", megabytes(big_mb), f"1x: {megabytes(one_mb)}",
                          ratio(big_mb, one_mb), "memory ratio"))  # fmt: skip
            lines.append((f"peak RSS (process tree) at {FACTOR}x, MB", megabytes(big_mb),
                          f"largest single process: {megabytes(largest[0] if largest else None)}", big_mb,
                          "memory 10x MB"))  # fmt: skip
        if "rerun" in self.rows:
            lines.append((f"unchanged re-run of the {FACTOR}x archive", s("siq big again"),
                          f"its first run: {s('siq big')}",
                          ratio(self.seconds("siq big again"), self.seconds("siq big")), "rerun"))  # fmt: skip
        if "dask" in self.rows:
            slower = ratio(self.seconds("siq dask"), siq_ten)
            lines.append(("10 files, --engine dask --workers 2 (no target)", s("siq dask"),
                          f"local engine: {s('siq ten-files')}", slower, ""))  # fmt: skip

        self.check_work()
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print()
        print(f"{os.cpu_count()} cores, load average {load} at the end; Python {sys.version.split()[0]}; "
              f"median of {self.runs} alternating runs per side, each a whole process")  # fmt: skip
        header = ("case", "siq convert", "peer", "ratio", "target", "")
        widths = (52, 30, 58, 8, 9, 4)
        print("  ".join(f"{text:<{width}}" for text, width in zip(header, widths, strict=True)).rstrip())
        failed = False
        for case, siq, peer_text, value, target in lines:
            if target:
                limit, kind = TARGETS[target]
                ok = value is not None and (value >= limit if kind == "min" else value <= limit)
                failed |= not ok
                verdict, aim = ("PASS" if ok else "FAIL"), f"{'>=' if kind == 'min' else '<='} {limit:g}"
            else:
                verdict, aim = "", ""
            shown = "failed" if value is None else (f"{value:,.0f}" if target == "memory 10x MB" else f"{value:.2f}")
            cells = (case, siq, peer_text, shown, aim, verdict)
            print("  ".join(f"{text:<{width}}" for text, width in zip(cells, widths, strict=True)).rstrip())
        print()
        for name, ok in self.checks.items():
            failed |= not ok
            print(f"{'PASS' if ok else 'FAIL'}  check: {name}")
        for name, results in self.results.items():
            for error in sorted({result["error"] for result in results if "error" in result}):
                failed = True
                print(f"ERROR {name}: {error}")
        print(f"total {time.perf_counter() - archives._STARTED:.0f} s", flush=True)
        return 1 if failed else 0

    def check_tables(self, out: Path) -> None:
        """At ``--scale 1``, the one-file archive's tables are row for row those whose digests are checked in."""
        if self.scale != 1 or not (out / "_manifest.json").exists():
            return
        found = table_digests(out, self.tmp)
        shutil.rmtree(out)
        self.checks[f"siq one-file: every table row for row as in {DIGESTS.relative_to(ROOT)}"] = found == json.loads(
            DIGESTS.read_text()
        )

    def check_work(self) -> None:
        """Each side did the whole work: siq wrote every unique event and rejected none; a peer took every line."""
        inputs = {"one-file": "one-file", "ten-files": "ten-files", "dask": "ten-files", "dlt": "dlt",
                  "signed": "signed", "small-files": "small-files", "first": "first", "big": "big"}  # fmt: skip
        for name, results in self.results.items():
            done = [result for result in results if "error" not in result]
            if not done or name == "siq big again":
                continue
            if name.startswith("siq "):
                lines, unique, _ = self.inputs[inputs[name[4:]]]
                counts = {(result["events_written"], result["duplicates"], result["rejected"]) for result in done}
                self.checks[f"{name}: {unique:,} events, {lines - unique:,} duplicates, no reject"] = counts == {
                    (unique, lines - unique, 0)
                }
            else:
                lines = self.inputs[{"naive": "first", "rsa": "signed"}.get(name, name.split(" ")[-1])][0]
                self.checks[f"{name}: {lines:,} rows"] = {result["rows"] for result in done} == {lines}


def rate(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f}/s"


def megabytes(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f} MB"


if __name__ == "__main__":
    sys.exit(main())
