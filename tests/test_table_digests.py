"""The tables of known archives, row for row: a checked-in digest of every table of every output.

The digests in ``tests/expected/table_digests.json`` were taken from the converter's output; a change
to how rows are read, flattened, deduplicated, folded or sorted that changes any value of any row
fails here. When a change of the tables is intended, regenerate them with
``python -m tests.test_table_digests`` and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import siq_schemas
from siq_schemas.sample import write_sample
from tests.archives import table_digests

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
EXPECTED = Path(__file__).parent / "expected" / "table_digests.json"


def converted(name: str, folder: Path) -> dict[str, str]:
    """The table digests of archive ``name`` converted into ``folder``."""
    if name == "shipped sample":
        source = SAMPLE
    else:
        source = folder / "archive"
        write_sample(source, seed=7, events=3000, corrupt=True)
    out = folder / "out"
    siq_schemas.convert(source, out, keys=source / "keys" / "sample_public.pem", allow_unsigned=True)
    return table_digests(out, source)


ARCHIVES = ("shipped sample", "siq sample --corrupt")


@pytest.mark.parametrize("name", ARCHIVES)
def test_tables_are_row_for_row_as_checked_in(tmp_path: Path, name: str) -> None:
    """Every table of the archive's conversion has exactly the rows whose digest is checked in."""
    expected: dict[str, Any] = json.loads(EXPECTED.read_text())[name]
    assert converted(name, tmp_path) == expected


if __name__ == "__main__":  # regenerate the digests
    import tempfile

    with tempfile.TemporaryDirectory() as temp:
        found = {}
        for index, archive in enumerate(ARCHIVES):
            (Path(temp) / str(index)).mkdir()
            found[archive] = converted(archive, Path(temp) / str(index))
    EXPECTED.write_text(json.dumps(found, indent=2) + "\n")
