"""The ``siq`` command: ``python -m siq_schemas`` and the ``siq`` console script.

The command line loads click and most of the package; Ctrl-C while they load
is an interrupt like any other (``siq: interrupted``, exit 130), so the handling
starts here, before any of them is imported (importing the package itself loads
almost nothing: see :mod:`siq_schemas`).
"""

import sys


def run() -> None:
    """Run ``siq`` with the process's arguments and exit with its code."""
    try:
        from .cli import main

        code = main()
    except KeyboardInterrupt:
        print("siq: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    run()
