"""The commands that check an archive without converting it: ``siq validate``, ``siq verify``, ``siq drift``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click

from .. import storage
from .._text import printable
from ..drift import Drift, merged
from ..exceptions import (
    PayloadInvalid,
    SignatureInvalid,
    SignatureMissing,
    UnknownEvent,
    Unreadable,
)
from ..keys import load_keys
from ..read import LIMITS, Limits, Record
from ..validate import validate
from ..verify import record_key
from ._common import archive_paths, archive_records, keys_option, limit_options


@click.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Also report properties the schemas do not know.")
@click.option("--json", "as_json", is_flag=True, help="Write one JSON object per problem, then a summary object.")
@limit_options
def validate_command(files: tuple[str, ...], strict: bool, as_json: bool, **limits: int) -> int:
    """Validate payloads in FILES (bare payloads or delivery records).

    FILES may be files, directories or glob patterns, plain, .gz or .zst.
    Prints `file:line event json-path message` for each invalid record and a
    summary; exits 1 when any record is invalid or unreadable.
    """
    counts = {"records": 0, "valid": 0, "invalid": 0, "unreadable": 0, "blank": 0}
    for problem in _problems(archive_records(files, Limits(**limits)), strict, counts, Limits(**limits)):
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


@click.command("verify")
@keys_option("", required=True)
@click.argument("files", nargs=-1, required=True)
@limit_options
def verify_command(key_files: tuple[str, ...], files: tuple[str, ...], **limits: int) -> int:
    """Check the x-siqsignature of every delivery record in FILES.

    Prints each failure as `file:line reason detail`, then per file the
    counts of valid signatures (by key id), invalid, missing and unreadable
    records. Exits 1 when any record fails.
    """
    keyring = load_keys(*key_files)
    paths = archive_paths(files)
    total: Counter[str] = Counter()
    total_by_key: Counter[str] = Counter()
    for path in paths:
        counts: Counter[str] = Counter()
        by_key: Counter[str] = Counter()
        for record in archive_records((str(path),), Limits(**limits)):
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


@click.command("drift")
@click.argument("sources", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the layout of OUT/_drift.json).")
@limit_options
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
    for record in archive_records(sources, bounds):
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
