"""The ``siq`` command line: a thin shell over the public API.

Library errors become one-line messages here and nowhere else. Exit codes:
0 success, 1 a check found problems (invalid payloads, bad signatures),
2 usage or input/output errors (an output that cannot be written, a full
disk, a worker process killed, an output another run is writing), 130
interrupted (Ctrl-C); `siq convert` also 143 on SIGTERM and 129 on SIGHUP.
The console script and ``python -m siq_schemas`` start in
:mod:`siq_schemas.__main__`, which turns a Ctrl-C during the imports into exit 130 too.

The commands live by what they do: ``_check`` (validate, verify, drift), ``_convert``
(convert, sample) and ``_serve`` (serve); ``_common`` holds what they share.
"""

from __future__ import annotations

import json

import click

from .. import EVENTS, __version__, schema
from .._text import printable
from ..exceptions import SiqSchemasError, UnknownEvent
from . import _check, _convert, _serve
from ._common import Failure


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


for _command in (
    _check.validate_command,
    _check.verify_command,
    _convert.convert_command,
    _check.drift_command,
    _convert.sample_command,
    _serve.serve_command,
):
    cli.add_command(_command)


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
