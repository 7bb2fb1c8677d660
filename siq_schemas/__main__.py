"""The ``siq`` command: ``python -m siq_schemas`` and the ``siq`` console script.

The command line loads click and most of the package; Ctrl-C while they load
is an interrupt like any other (``siq: interrupted``, exit 130), so the handling
starts here, before any of them is imported (importing the package itself loads
almost nothing: see :mod:`siq_schemas`).

An interrupt that lands while a module loads is sent again a moment later
instead of raised: native modules interrupted while they load do not raise a
``KeyboardInterrupt`` but crash (DuckDB's aborts the process) or panic
(jsonschema-rs). And it is noted, so that whatever a library makes of it, the
command ends as interrupted.
"""

import gc
import os
import signal
import sys
import threading
from types import FrameType

#: How soon an interrupt that landed while a module was loading is sent again.
RETRY_SECONDS = 0.05


def run() -> None:
    """Run ``siq`` with the process's arguments and exit with its code."""
    interrupted = []

    def interrupt(number: int, frame: FrameType | None) -> None:
        interrupted.append(number)
        if _importing(frame):
            threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), number)).start()
            return
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (a background job)
        signal.signal(signal.SIGINT, interrupt)
    try:
        from .cli import main

        code = main()
    except BaseException:
        if not interrupted:
            raise
        print("siq: interrupted", file=sys.stderr)
        code = 130
    # The interpreter's last garbage collection as it exits walks every object the command left, about
    # 0.2 s after a conversion; frozen, they are freed without that walk.
    gc.freeze()
    if signal.getsignal(signal.SIGINT) is interrupt:
        # The command is done: the interpreter resets a handler to the system's default as it exits,
        # and a Ctrl-C then would kill the process and hide the command's own exit code.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    run()
