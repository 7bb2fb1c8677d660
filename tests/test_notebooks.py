"""The analysis notebooks: their shape, the public API they use, and the figures they print for the sample.

`make test` also runs them under nbval (``pytest --nbval-lax notebooks/``), which re-executes each one
and compares the cells marked ``# NBVAL_CHECK_OUTPUT`` with the outputs stored in the notebook. The
tests here check those stored outputs against the sample's known counts (``data/sample/_expected.json``),
so a notebook run on the shipped sample must print what the generator simulated.

When results change on purpose, refresh the stored outputs from the repository root (after `make demo`)::

    jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.record_timing=False notebooks/*.ipynb
    jupyter nbconvert --coalesce-streams --inplace notebooks/*.ipynb
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import siq_schemas
from siq_schemas import metrics

ROOT = Path(__file__).parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = json.loads((ROOT / "data" / "sample" / "_expected.json").read_text(encoding="utf-8"))
NAMES = ("conversations", "ratings", "operator_churn", "delivery_health")
CHECK = "# NBVAL_CHECK_OUTPUT"
REFRESH = (
    "refresh the stored outputs: `jupyter nbconvert --to notebook --execute --inplace "
    "--ExecutePreprocessor.record_timing=False notebooks/*.ipynb`, "
    "then `jupyter nbconvert --coalesce-streams --inplace notebooks/*.ipynb`"
)


def load(name: str) -> dict[str, Any]:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))


def source(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


def code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def checked_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in code_cells(notebook) if source(cell).startswith(CHECK)]


def checked_text(notebook: dict[str, Any]) -> str:
    """Everything the checked cells printed, as stored in the notebook."""
    return "".join(
        "".join(output["text"])
        for cell in checked_cells(notebook)
        for output in cell["outputs"]
        if output["output_type"] == "stream"
    )


def figures(name: str) -> dict[str, str]:
    """The ``label: value`` lines the checked cells printed, by label with its indent (first one wins)."""
    found: dict[str, str] = {}
    for line in checked_text(load(name)).splitlines():
        match = re.fullmatch(r"(\s*\S[^:]*): (.+)", line)
        if match:
            found.setdefault(match[1], match[2])
    return found


def test_every_notebook_is_there():
    """notebooks/ holds exactly the four analysis notebooks."""
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_starts_with_what_it_answers_and_its_definitions(name):
    """The first cell is markdown with a title, what the notebook answers and how its metrics are defined."""
    first = load(name)["cells"][0]
    assert first["cell_type"] == "markdown"
    text = source(first)
    assert text.startswith("# ") and "answers" in text and "defined" in text


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_names_the_dataset(name):
    """One cell tagged `parameters` sets DATA to ../out/sample and SAMPLE to ../data/sample."""
    tagged = [cell for cell in code_cells(load(name)) if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1
    text = source(tagged[0])
    assert 'DATA = "../out/sample"' in text and 'SAMPLE = "../data/sample"' in text


@pytest.mark.parametrize("name", NAMES)
def test_converts_the_sample_when_the_dataset_is_missing(name):
    """A fresh clone has no ../out/sample: the notebook converts ../data/sample into it with siq_schemas.convert."""
    code = "\n".join(source(cell) for cell in code_cells(load(name)))
    assert "siq_schemas.convert(SAMPLE, DATA" in code and "allow_unsigned=True" in code


@pytest.mark.parametrize("name", NAMES)
def test_uses_only_the_public_api(name):
    """Only public names of siq_schemas and siq_schemas.metrics are used; no private module is imported."""
    code = "\n".join(source(cell) for cell in code_cells(load(name)))
    imports = set(re.findall(r"^\s*(?:from|import) (\S+)", code, flags=re.MULTILINE))
    assert {module for module in imports if module.startswith("siq_schemas")} <= {"siq_schemas"}
    assert set(re.findall(r"\bsiq_schemas\.(\w+)", code)) <= set(siq_schemas.__all__)
    assert set(re.findall(r"\bmetrics\.(\w+)", code)) <= set(metrics.__all__)


@pytest.mark.parametrize("name", NAMES)
def test_stored_outputs_come_from_one_clean_run(name):
    """The stored outputs were made top to bottom in a fresh kernel (execution counts 1, 2, ...) without errors."""
    cells = code_cells(load(name))
    assert [cell["execution_count"] for cell in cells] == list(range(1, len(cells) + 1)), REFRESH
    assert not [output for cell in cells for output in cell["outputs"] if output["output_type"] == "error"]


@pytest.mark.parametrize("name", NAMES)
def test_stored_outputs_are_stable(name):
    """No run timings in the cell metadata and one stream output per cell, so a re-run gives the same file."""
    cells = code_cells(load(name))
    assert not [cell for cell in cells if "execution" in cell["metadata"]], REFRESH
    for cell in cells:
        names = [output["name"] for output in cell["outputs"] if output["output_type"] == "stream"]
        assert len(names) == len(set(names)), REFRESH


@pytest.mark.parametrize("name", NAMES)
def test_checked_cells_print_plain_deterministic_text(name):
    """Checked cells print only text: no figure, no object repr, no memory address."""
    cells = checked_cells(load(name))
    assert len(cells) >= 3
    for cell in cells:
        assert cell["outputs"] and all(output["output_type"] == "stream" for output in cell["outputs"])
    text = checked_text(load(name))
    assert not re.search(r"0x[0-9a-f]{6,}| object at |<[A-Za-z_.]+ ", text)


def test_conversations_by_outcome_match_the_sample():
    """conversations.ipynb prints the sample's conversations by outcome and in total."""
    found = figures("conversations")
    expected = EXPECTED["facts"]["conversations"]
    assert {outcome: int(found[outcome]) for outcome in expected} == expected
    assert int(found["conversations"]) == EXPECTED["tables"]["conversations"]
    assert found["missed rate"] == f"{expected['missed'] / (expected['missed'] + expected['completed']):.1%}"
    assert found["open conversations"] == str(expected["open"])


def test_ratings_count_and_mean_match_the_sample():
    """ratings.ipynb prints the sample's number of ratings, feedback-only events and mean rating."""
    found = figures("ratings")
    expected = EXPECTED["facts"]["ratings"]
    assert int(found["ratings"]) == expected["count"]
    assert int(found["feedback only"]) == expected["feedback_only"]
    assert found["mean rating"] == f"{expected['mean']:.4f}"
    assert int(found["feedback-only events"]) == expected["feedback_only"]


def test_active_operators_match_the_sample():
    """operator_churn.ipynb prints the sample's operators and those active at the end."""
    found = figures("operator_churn")
    assert int(found["operators"]) == EXPECTED["tables"]["operators"]
    assert int(found["operators active at the end"]) == EXPECTED["facts"]["operators_active"]
    assert int(found["roster on the last day"]) == EXPECTED["facts"]["operators_active"]
    assert found["replay matches the folded operators.departments"] == "True"


def test_delivery_counts_match_the_sample():
    """delivery_health.ipynb prints the sample's records read, events, duplicates and rejects by reason."""
    found = figures("delivery_health")
    assert int(found["records read"]) == EXPECTED["records_read"]
    assert int(found["events"]) == EXPECTED["events_written"]
    assert int(found["duplicates"]) == EXPECTED["duplicates"]
    assert int(found["rejected"]) == sum(EXPECTED["rejected"].values())
    assert {reason: int(found[f"  rejected {reason}"]) for reason in EXPECTED["rejected"]} == EXPECTED["rejected"]
