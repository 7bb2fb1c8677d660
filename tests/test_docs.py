"""The docs match the code: the schema reference is fresh, the README names every command."""

from __future__ import annotations

import re
from pathlib import Path

from siq_schemas import EVENTS, _reference
from siq_schemas.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_schema_reference_is_fresh():
    """docs/schemas.md holds exactly what the schemas generate (run `make docs` after changing a schema)."""
    text = (ROOT / "docs" / "schemas.md").read_text(encoding="utf-8")
    generated = text.partition(_reference.BEGIN)[2].partition(_reference.END)[0]
    assert generated.strip() == _reference.render().strip(), "docs/schemas.md is stale: run `make docs`"


def test_schema_reference_covers_every_event_and_the_conventions():
    """Every event has a section in the reference, and the conventions section is there."""
    text = (ROOT / "docs" / "schemas.md").read_text(encoding="utf-8")
    assert "## Schema conventions" in text
    for event in EVENTS:
        assert f"### `{event}`" in text


def test_readme_shows_the_two_commands_first():
    """The README opens with one sentence, then `make demo` and `make test`."""
    assert README.index("make demo") < README.index("make test") < README.index("```python")


def test_readme_documents_every_cli_command():
    """Every `siq` command appears in the README as `siq <command>`."""
    documented = set(re.findall(r"\bsiq ([a-z]+)", README))
    assert set(cli.commands) <= documented


def test_readme_python_snippet_runs_as_shown(capsys):
    """The README's first Python snippet runs and prints what its comments say."""
    snippet = re.search(r"## In Python\n\n```python\n(.*?)```", README, re.DOTALL).group(1)
    namespace: dict = {}
    exec(snippet, namespace)
    assert capsys.readouterr().out == "$.entity.rating 'five' is not of type 'integer'\n"
    assert namespace["siq_schemas"].is_valid(namespace["payload"]) is False
