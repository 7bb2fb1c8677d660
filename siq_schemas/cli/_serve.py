"""``siq serve``: the webhook receiver on uvicorn (its modules load only for this command)."""

from __future__ import annotations

from pathlib import Path

import click

from ..keys import load_keys
from ._common import Failure, keys_option


@click.command("serve")
@click.option("--archive", "-a", required=True, type=click.Path(file_okay=False), help="The archive folder to write.")
@keys_option("Without keys every POST is archived.")
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
    from .. import serve

    try:
        from ..serve import _uvicorn
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
