"""The ``siq`` command line: a thin shell over the public API.

Library errors become one-line messages here and nowhere else. Exit codes:
0 success, 1 a check found problems (invalid payloads, bad signatures),
2 usage or input/output errors (an output that cannot be written, a full
disk, a worker process killed, an output another run is writing), 130
interrupted (Ctrl-C); `siq convert` also 143 on SIGTERM and 129 on SIGHUP.
The console script and ``python -m siq_schemas`` start in
:mod:`siq_schemas.__main__`, which turns a Ctrl-C during the imports into exit 130 too.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from . import EVENTS, __version__, schema, storage
from ._text import printable
from .drift import Drift, merged
from .exceptions import (
    PayloadInvalid,
    SignatureInvalid,
    SignatureMissing,
    SiqSchemasError,
    UnknownEvent,
    Unreadable,
)
from .inputs import SUFFIXES, expand
from .keys import load_keys
from .parse import DEPTH_CEILING
from .read import LIMITS, Limits, Record, read_records
from .sample import MIN_EVENTS, write_sample
from .validate import validate
from .verify import record_key


class Failure(click.ClickException):
    """A clean one-line error with exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(printable(self.message), err=True)


def _keys_option(more: str, required: bool = False) -> Any:
    """The `--keys` option: once per key file, as in every command."""
    text = f"A public key file (PEM or base64 DER); repeat it for each key: --keys A.pem --keys B.pem. {more}".strip()
    return click.option("--keys", "-k", "key_files", multiple=True, required=required, metavar="FILE", help=text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="siq")
def cli() -> None:
    """Validate, verify and convert Zoho SalesIQ webhook deliveries."""


@cli.command("schema")
@click.argument("event", required=False)
@click.option("--strict", is_flag=True, help="Print the strict variant (no unknown properties).")
def schema_command(event: str | None, strict: bool) -> None:
    """List the events that have schemas, or print the JSON Schema of EVENT.

    EVENT may also be "envelope" or "defs" (the shared definitions).
    """
    if event is None:
        click.echo("\n".join(EVENTS))
        return
    try:
        click.echo(json.dumps(schema(event, strict=strict), indent=2, ensure_ascii=False))
    except UnknownEvent:
        raise Failure(f"siq: unknown event {event!r}; `siq schema` lists the events") from None


def _limit(name: str, default: int, text: str, most: int | None = None) -> Any:
    """A limit option of `siq convert`: a positive integer (at most ``most``), its default shown in the help."""
    return click.option(name, type=click.IntRange(min=1, max=most), default=default, show_default=True, help=text)


def _limits(command: Any) -> Any:
    """The limit options of the commands that read archives: --max-record-bytes, --max-depth, --max-ratio."""
    options = (
        _limit("--max-record-bytes", LIMITS.max_record_bytes, "A longer line or .json file is an unreadable record."),
        _limit("--max-depth", LIMITS.max_depth, "JSON nested deeper is an unreadable record.", DEPTH_CEILING),
        _limit(
            "--max-ratio", LIMITS.max_ratio, "A compressed file expanding more (past 64 MiB) is unreadable from there."
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@cli.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Also report properties the schemas do not know.")
@click.option("--json", "as_json", is_flag=True, help="Write one JSON object per problem, then a summary object.")
@_limits
def validate_command(files: tuple[str, ...], strict: bool, as_json: bool, **limits: int) -> int:
    """Validate payloads in FILES (bare payloads or delivery records).

    FILES may be files, directories or glob patterns, plain, .gz or .zst.
    Prints `file:line event json-path message` for each invalid record and a
    summary; exits 1 when any record is invalid or unreadable.
    """
    counts = {"records": 0, "valid": 0, "invalid": 0, "unreadable": 0, "blank": 0}
    for problem in _problems(_records(files, Limits(**limits)), strict, counts, Limits(**limits)):
        if as_json:
            click.echo(json.dumps(problem, ensure_ascii=False))
        else:
            where = f"{problem['source']}:{problem['line']}"
            fields = (where, problem["event"] or "-", problem["json_path"], problem["message"])
            click.echo(" ".join(printable(field) for field in fields))  # a field never starts a line of its own
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(
            f"{counts['records']} records: {counts['valid']} valid, {counts['invalid']} invalid, "
            f"{counts['unreadable']} unreadable ({counts['blank']} blank lines skipped)",
            err=True,
        )
    return 1 if counts["invalid"] or counts["unreadable"] else 0


@cli.command("verify")
@_keys_option("", required=True)
@click.argument("files", nargs=-1, required=True)
@_limits
def verify_command(key_files: tuple[str, ...], files: tuple[str, ...], **limits: int) -> int:
    """Check the x-siqsignature of every delivery record in FILES.

    Prints each failure as `file:line reason detail`, then per file the
    counts of valid signatures (by key id), invalid, missing and unreadable
    records. Exits 1 when any record fails.
    """
    keyring = load_keys(*key_files)
    paths = _paths(files)
    total: Counter[str] = Counter()
    total_by_key: Counter[str] = Counter()
    for path in paths:
        counts: Counter[str] = Counter()
        by_key: Counter[str] = Counter()
        for record in _records((str(path),), Limits(**limits)):
            if record.kind == "blank":
                continue
            try:
                by_key[record_key(record, keyring)] += 1
                counts["valid"] += 1
            except (SignatureInvalid, SignatureMissing, Unreadable) as error:
                reason = {"signature-invalid": "invalid", "signature-missing": "missing"}.get(error.code, error.code)
                counts[reason] += 1
                detail = error.message if isinstance(error, Unreadable) else str(error)
                click.echo(f"{printable(record.source)}:{record.line} {error.code} {printable(detail)}")
        click.echo(_verify_counts(printable(str(path)), counts, by_key), err=True)
        total.update(counts)
        total_by_key.update(by_key)
    if len(paths) > 1:
        click.echo(_verify_counts(f"{len(paths)} files", total, total_by_key), err=True)
    return 1 if total.total() > total["valid"] else 0


def _verify_counts(name: str, counts: Counter[str], by_key: Counter[str]) -> str:
    keys = ", ".join(f"{key}: {count}" for key, count in by_key.most_common())
    return (
        f"{name}: {counts['valid']} valid ({keys or 'none'}), {counts['invalid']} invalid, "
        f"{counts['missing']} missing, {counts['unreadable']} unreadable"
    )


@cli.command("convert")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="The output folder, or a URL (s3://bucket/prefix, gs://..., memory://...).",
)
@_keys_option("Without keys nothing is verified.")
@click.option("--allow-unsigned", is_flag=True, help="With --keys, accept bare payloads (marked `unsigned`).")
@click.option("--workers", "-j", type=click.IntRange(min=1), help="Processes to use (default: one per CPU).")
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where files are staged: processes of this machine, or tasks on a Dask cluster.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --engine dask, the Dask scheduler (tcp://host:8786); without it, a local cluster of --workers.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--wait", is_flag=True, help="When another run is writing --out, wait for it (default: exit 2 at once).")
@_limits
@click.option("--rebuild", is_flag=True, help="Rebuild the output from the sources, as when the settings change.")
def convert_command(
    sources: tuple[str, ...],
    out: str,
    key_files: tuple[str, ...],
    allow_unsigned: bool,
    workers: int | None,
    engine: str,
    scheduler: str | None,
    quiet: bool,
    as_json: bool,
    wait: bool,
    max_record_bytes: int,
    max_depth: int,
    max_ratio: int,
    rebuild: bool,
) -> int:
    """Convert an archive of deliveries (SOURCES) to Parquet tables in --out.

    SOURCES are files, directories or glob patterns, or URLs of them
    (s3://bucket/archive/). Verifies signatures with --keys, validates,
    deduplicates retries and writes one Parquet dataset per table plus
    _manifest.json. Running again adds only what is new; when the keys, the
    signature policy, a limit or the output format changed, or with --rebuild,
    the output is rebuilt from the sources (saying so). With --engine dask
    the files are staged as tasks on a Dask cluster. One run writes an output
    at a time: another run into it exits 2 at once, or waits with --wait.
    Exits 0 when every record is accounted for (rejects included), 2 when the
    output cannot be written (the previous output is kept), 130 when
    interrupted, 143 on SIGTERM, 129 on SIGHUP.
    """
    from .converter import convert  # pyarrow and duckdb load only for this command
    from .exceptions import Terminated

    if scheduler is not None and engine != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    local_files = tuple(source for source in sources if not storage.is_url(source) and not Path(source).is_dir())
    if local_files:
        _paths(local_files)  # a key file among the sources is a usage error, never records
    keyring = load_keys(*key_files) if key_files else None
    _say_warnings()
    try:
        report = convert(
            sources,
            out,
            keys=keyring,
            allow_unsigned=allow_unsigned,
            workers=workers,
            progress=not quiet and sys.stderr.isatty(),
            max_record_bytes=max_record_bytes,
            max_depth=max_depth,
            max_ratio=max_ratio,
            engine=engine,
            scheduler=scheduler,
            rebuild=rebuild,
            wait=wait,
        )
    except Terminated as stop:
        click.echo(f"siq: {stop}", err=True)
        return 128 + stop.signal  # the shell's code for a process ended by the signal
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        click.echo(str(report))
    return 0


def _say_warnings() -> None:
    """Print the library's warnings (a rebuild, inputs gone) on stderr as they happen, one line each."""
    logger = logging.getLogger("siq_schemas")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


@cli.command("drift")
@click.argument("sources", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the layout of OUT/_drift.json).")
@_limits
def drift_command(sources: tuple[str, ...], as_json: bool, **limits: int) -> int:
    """Report what the payloads in SOURCES hold that the schemas do not describe.

    Per event: unknown fields (against the strict schemas), type mismatches,
    missing required fields, values outside documented enums and other invalid
    values (against the lenient schemas), and events that have no published
    payload or no schema; each with its JSON path, count, first file:line and an
    example, most frequent first. Counts are of records read (a retry counts
    again); signatures are not checked. Exits 0 whatever it finds; 2 when an
    input cannot be opened.
    """
    by_source: dict[str, Drift] = {}
    unreadable = 0
    bounds = Limits(**limits)
    for record in _records(sources, bounds):
        if record.kind == "blank":
            continue
        try:
            payload = record.parse(bounds.max_depth)
        except Unreadable:
            unreadable += 1
            continue
        found = by_source.get(record.source)
        if found is None:
            found = by_source[record.source] = Drift()
        found.add(payload, record.source, record.line)
    report = merged({storage.key(storage.location(source)): found for source, found in by_source.items()})
    click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else str(report))
    if unreadable:
        click.echo(f"{unreadable:,} unreadable records skipped (`siq validate` names them)", err=True)
    return 0


@cli.command("sample")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="The folder to write.")
@click.option("--seed", default=7, show_default=True, help="Seed: the same seed writes the same bytes.")
@click.option(
    "--events", default=3000, show_default=True, type=click.IntRange(min=MIN_EVENTS), help="Unique events (about)."
)
@click.option("--corrupt", is_flag=True, help="Add one record of each reject reason.")
def sample_command(out: str, seed: int, events: int, corrupt: bool) -> int:
    """Write a synthetic SalesIQ archive, signed with its own key, to --out.

    Deliveries go to deliveries/, a few bare payloads to bare/, the public key
    to keys/sample_public.pem and the counts a conversion must give to
    _expected.json.
    """
    expected = write_sample(out, seed=seed, events=events, corrupt=corrupt)
    click.echo(f"wrote {out}: {expected['records_read']:,} records, {expected['events_written']:,} events")
    key = Path(out) / "keys" / "sample_public.pem"
    click.echo(f"convert it: siq convert {out} --out {out}-parquet --keys {key} --allow-unsigned")
    return 0


@cli.command("serve")
@click.option("--archive", "-a", required=True, type=click.Path(file_okay=False), help="The archive folder to write.")
@_keys_option("Without keys every POST is archived.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="The port.")
@click.option("--path", "url_path", default="/", show_default=True, help="The URL path SalesIQ posts to.")
@click.option(
    "--workers",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each writes files of its own).",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,  # serve.MAX_BODY_BYTES, not imported here: the receiver's modules load only for `siq serve`
    show_default=True,
    type=click.IntRange(min=1),
    help="A larger request body answers 413.",
)
def serve_command(
    archive: str, key_files: tuple[str, ...], host: str, port: int, url_path: str, workers: int, max_body_bytes: int
) -> int:
    """Receive SalesIQ webhook deliveries and archive every authentic one, durably.

    Runs on uvicorn. POST to --path: a delivery whose x-siqsignature verifies
    (any, without --keys) is appended to ARCHIVE/deliveries/ and fsynced, then
    answered 200; a bad or missing signature answers 401. HEAD answers 200,
    GET /healthz tells whether the archive can be written. SIGHUP reloads the
    key files; SIGTERM or Ctrl-C finishes the requests in flight and exits 0.
    Exits 2 when the archive, the keys or the address cannot be used.
    """
    from . import serve

    try:
        from .serve import _uvicorn
    except ImportError:
        raise Failure("siq serve needs uvicorn: pip install 'siq-schemas[serve]'") from None
    if max_body_bytes > serve.largest_body():
        raise click.BadParameter(
            f"at most {serve.largest_body():,}: a larger body could make an archived line longer than "
            f"`siq convert --max-record-bytes` takes by default",
            param_hint="--max-body-bytes",
        )
    if key_files:
        load_keys(*key_files)  # a bad key is one clean line before anything starts
    elif not _loopback(host):
        click.echo(
            f"siq serve: warning: no --keys, so every POST reaching {host}:{port} is archived, authentic or not",
            err=True,
        )
    code = _uvicorn.run(
        archive, [str(Path(key).resolve()) for key in key_files], host=host, port=port, path=url_path,
        workers=workers, max_body_bytes=max_body_bytes,
    )  # fmt: skip
    if code:
        raise Failure(f"siq: the receiver could not start on {host}:{port} (the line above says why)")
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _paths(sources: tuple[str, ...]) -> list[Path | str]:
    """The files of an archive; a source that matches nothing, or a file that is not an archive, is a usage error.

    A file is an archive by its name (see :data:`~siq_schemas.read.SUFFIXES`): a
    key file (``.pem``, ``.pub``, ``.der``, no suffix) named among the sources,
    as in ``--keys A.pem B.pem``, is never read as records.
    """
    try:
        paths = expand(sources)
    except Unreadable as error:
        raise Failure(f"siq: {error}") from None
    for path in paths:
        if not str(path).endswith(SUFFIXES) and not (isinstance(path, Path) and path.is_dir()):
            raise Failure(
                f"siq: {path} is not an archive (.jsonl, .ndjson or .json, optionally .gz or .zst); "
                "is it a key? Give each key its own --keys: --keys A.pem --keys B.pem"
            )
    return paths


def _records(sources: tuple[str, ...], limits: Limits = LIMITS) -> Iterator[Record]:
    """Every record of the archive, read within ``limits``; a source that cannot be opened is a clean error."""
    for path in _paths(sources):
        try:
            yield from read_records(path, limits)
        except Unreadable as error:
            raise Failure(f"siq: {error}") from None


def _problems(
    records: Iterator[Record], strict: bool, counts: dict[str, int], limits: Limits = LIMITS
) -> Iterator[dict[str, Any]]:
    """Validate each record, count it, and yield a description of each one that fails."""
    for record in records:
        if record.kind == "blank":
            counts["blank"] += 1
            continue
        counts["records"] += 1
        event = None
        try:
            payload = record.parse(limits.max_depth)
            event = payload.get("event") if isinstance(payload, dict) else None
            validate(payload, strict=strict)
        except Unreadable as error:
            counts["unreadable"] += 1
            yield _problem(record, None, "unreadable", "$", error.message)
        except UnknownEvent as error:
            counts["invalid"] += 1
            yield _problem(record, event, error.code, "$.event", str(error))
        except PayloadInvalid as error:
            counts["invalid"] += 1
            yield _problem(record, event, error.code, error.json_path, error.message)
        else:
            counts["valid"] += 1


def _problem(record: Record, event: Any, reason: str, json_path: str, message: str) -> dict[str, Any]:
    return {
        "source": record.source,
        "line": record.line,
        "event": event if isinstance(event, str) else None,
        "reason": reason,
        "json_path": json_path,
        "message": message,
    }


def main(arguments: list[str] | None = None) -> int:
    """Run ``siq`` with ``arguments`` (default: the process's) and return its exit code."""
    try:
        result = cli.main(arguments, prog_name="siq", standalone_mode=False)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("siq: interrupted", err=True)
        return 130
    except SiqSchemasError as error:
        click.echo(printable(f"siq: {error}"), err=True)
        return 2
    except OSError as error:
        click.echo(printable(f"siq: {error.filename or ''}: {error.strerror or error}"), err=True)
        return 2
    return result if isinstance(result, int) else 0
