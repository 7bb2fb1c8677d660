"""What the commands of ``siq`` share: the clean error, the key and limit options, reading the archives named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .._text import printable
from ..exceptions import (
    Unreadable,
)
from ..inputs import SUFFIXES, expand
from ..parse import DEPTH_CEILING
from ..read import LIMITS, Limits, Record, read_records


class Failure(click.ClickException):
    """A clean one-line error with exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(printable(self.message), err=True)


def keys_option(more: str, required: bool = False) -> Any:
    """The `--keys` option: once per key file, as in every command."""
    text = f"A public key file (PEM or base64 DER); repeat it for each key: --keys A.pem --keys B.pem. {more}".strip()
    return click.option("--keys", "-k", "key_files", multiple=True, required=required, metavar="FILE", help=text)


def limit_option(name: str, default: int, text: str, most: int | None = None) -> Any:
    """A limit option of `siq convert`: a positive integer (at most ``most``), its default shown in the help."""
    return click.option(name, type=click.IntRange(min=1, max=most), default=default, show_default=True, help=text)


def limit_options(command: Any) -> Any:
    """The limit options of the commands that read archives: --max-record-bytes, --max-depth, --max-ratio."""
    options = (
        limit_option(
            "--max-record-bytes", LIMITS.max_record_bytes, "A longer line or .json file is an unreadable record."
        ),
        limit_option("--max-depth", LIMITS.max_depth, "JSON nested deeper is an unreadable record.", DEPTH_CEILING),
        limit_option(
            "--max-ratio", LIMITS.max_ratio, "A compressed file expanding more (past 64 MiB) is unreadable from there."
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def archive_paths(sources: tuple[str, ...]) -> list[Path | str]:
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


def archive_records(sources: tuple[str, ...], limits: Limits = LIMITS) -> Iterator[Record]:
    """Every record of the archive, read within ``limits``; a source that cannot be opened is a clean error."""
    for path in archive_paths(sources):
        try:
            yield from read_records(path, limits)
        except Unreadable as error:
            raise Failure(f"siq: {error}") from None
