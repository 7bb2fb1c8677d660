"""The commands that write: ``siq convert`` (archives to Parquet tables) and ``siq sample`` (a synthetic archive)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from .. import storage
from ..keys import load_keys
from ..sample import MIN_EVENTS, write_sample
from ._common import archive_paths, keys_option, limit_options


@click.command("convert")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="The output folder, or a URL (s3://bucket/prefix, gs://..., memory://...).",
)
@keys_option("Without keys nothing is verified.")
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
@limit_options
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
    from ..converter import convert  # pyarrow and duckdb load only for this command
    from ..converter._workers import without_pandas
    from ..exceptions import Terminated

    if scheduler is not None and engine != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    local_files = tuple(source for source in sources if not storage.is_url(source) and not Path(source).is_dir())
    if local_files:
        archive_paths(local_files)  # a key file among the sources is a usage error, never records
    keyring = load_keys(*key_files) if key_files else None
    _say_warnings()
    without_pandas()  # this process converts no pandas objects
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


@click.command("sample")
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
