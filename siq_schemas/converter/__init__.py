"""The converter: archives of deliveries to Parquet tables (:func:`convert`), read back with :func:`read_table`.

Its modules are the stages of a run, in order (see ``docs/architecture.md``):
``plan`` -> ``stage`` (with ``flatten``) on ``engines`` -> ``staging`` -> ``merge``
(with ``fold``, and ``write`` for the tables) -> ``report`` -> ``output``.
"""

from __future__ import annotations

from .output import read_table, table_files
from .report import Report
from .run import convert
from .tuning import Batch, Tuning

__all__ = ["Batch", "Report", "Tuning", "convert", "read_table", "table_files"]
