"""The docs match the code: the schema reference is fresh, the README names every command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from siq_schemas import EVENTS, _reference
from siq_schemas.cli import cli
from siq_schemas.tables import TABLES

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(_reference.RENDERERS))
def test_generated_references_are_fresh(name):
    """docs/schemas.md and docs/tables.md hold what the schemas and table specs generate (`make docs`)."""
    text = (ROOT / "docs" / name).read_text(encoding="utf-8")
    generated = text.partition(_reference.BEGIN)[2].partition(_reference.END)[0]
    assert generated.strip() == _reference.RENDERERS[name]().strip(), f"docs/{name} is stale: run `make docs`"


def test_data_dictionary_covers_every_table_and_column():
    """Every table and column of the table specs appears in docs/tables.md."""
    text = (ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    for table in TABLES.values():
        assert f"### `{table.name}`" in text
        for column in table.columns:
            assert f"| `{column.name}` |" in text


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
    assert capsys.readouterr().out == "$.entity.rating 'five' is not an integer or a string of digits\n"
    assert namespace["siq_schemas"].is_valid(namespace["payload"]) is False


def test_readme_guarantees_name_tests_that_exist():
    """Every `tests/<file>.py::<test>` the README's Guarantees section names is a test in that file."""
    named = re.findall(r"`(tests/\w+\.py)::(\w+)`", README)
    assert len(named) > 15
    for path, test in named:
        assert re.search(rf"^def {test}\(", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE), (path, test)


def test_readme_documents_every_cli_option():
    """Every option of every `siq` command appears in the README by its long name."""
    for name, command in cli.commands.items():
        for option in command.params:
            for flag in option.opts:
                if flag.startswith("--"):
                    assert flag in README, f"siq {name} {flag} is not in the README"
