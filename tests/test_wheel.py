"""The built wheel carries every schema file and the typing marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_contains_every_schema(tmp_path):
    """`python -m build --wheel` puts every file of siq_schemas/schemas/ and py.typed in the wheel."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("siq_schemas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"siq_schemas/schemas/{entry.name}"
        for entry in files("siq_schemas.schemas").iterdir()
        if entry.name.endswith(".json")
    }
    assert len(shipped) == 37  # 35 events, the envelope and the shared definitions
    assert shipped <= names
    assert "siq_schemas/py.typed" in names
    assert any(name.endswith("entry_points.txt") for name in names)
