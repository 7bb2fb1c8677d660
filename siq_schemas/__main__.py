"""``python -m siq_schemas`` runs the ``siq`` command line."""

from .cli import run

run()
