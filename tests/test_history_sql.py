"""The history tables flattened by the merge's SQL hold exactly what flattening in Python gives.

The merge derives history rows from the staged events' entities in DuckDB
(:mod:`siq_schemas.converter.history`); the workers flatten in Python only the
entities DuckDB would write otherwise. Both are checked against Python flattening
of every event (``Rows(python=True)``), value for value, on generated hostile entities.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import strategies as st

import siq_schemas
from siq_schemas import parse
from siq_schemas.converter.flatten import Delivery, Rows
from siq_schemas.converter.staging import Staging
from siq_schemas.dedupe import event_key
from siq_schemas.tables import BY_EVENT, HISTORY
from tests.archives import envelope
from tests.conftest import write_lines
from tests.fuzzing import fuzz

#: Every entity path of every history table, by event name.
PATHS = {
    event: sorted({column.path[1:] for table in tables for column in table.columns if column.path[:1] == ("entity",)})
    for event, tables in BY_EVENT.items()
}
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.integers(min_value=-62_135_596_800_001, max_value=253_402_300_800_000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["true", "false", "True", "-5", "0012", "٣٤", "²", "1772000000000", "", " operator", "BOT"])
    | st.text(max_size=8)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@st.composite
def payloads(draw: Any) -> dict[str, Any]:
    """A payload of a history event whose entity has random values (of any type) at random column paths."""
    event = draw(st.sampled_from(sorted(PATHS)))
    entity: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS[event]), max_size=12)):
        node = entity
        for name in path[:-1]:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        node[path[-1]] = draw(VALUES)
    if entity and draw(st.booleans()):  # a parent of columns that is not an object
        entity[draw(st.sampled_from(sorted(entity)))] = draw(SCALARS | st.lists(SCALARS, max_size=2))
    return envelope(event, draw(st.text(max_size=3)), 1_772_000_000_000 + draw(st.integers(0, 99)), entity)


def history_rows(payload_list: list[dict[str, Any]], python: bool) -> dict[str, pa.Table]:
    """Each history table's rows of the payloads, as the merge reads them, flattened in Python or as a run does."""
    rows = Rows(python=python)
    for position, payload in enumerate(payload_list):
        parse.loads(json.dumps(payload))  # marks its floats, as the reader does
        rows.add(
            event_key(payload), payload, Delivery(1, "unverified", None, None, None, "f:1"), position, parse.FLOATS.seen
        )
    with tempfile.TemporaryDirectory() as folder:
        staging = Staging(folder)
        staging.write(rows.tables(), "000000-00000")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        staging.views(con, "s_", None)
        query = 'SELECT * FROM "s_{}" ORDER BY _position'
        return {table.name: con.sql(query.format(table.name)).to_arrow_table() for table in HISTORY}


@fuzz(10, st.lists(payloads(), min_size=1, max_size=15))
def test_sql_flattening_equals_python_flattening(payload_list: list[dict[str, Any]]) -> None:
    """Any values at any column path (ids of 25 digits, floats, control characters, wrong types): the same rows."""
    expected, found = history_rows(payload_list, python=True), history_rows(payload_list, python=False)
    for name, table in expected.items():
        assert found[name].to_pylist() == table.to_pylist(), name


def test_tricky_values_convert_alike_whichever_side_flattens(tmp_path: Path) -> None:
    """Wide integer ids, other digits, times as text, floats and control characters: exact in every table."""
    entity = {
        "visitor": {"id": 7, "name": "Ann", "customer_info": {"plan": "gold"}},
        "department_id": "٣٤",
        "owner": {"id": 405260000000020401234},
        "opened_time": "1772000000000",
        "attended_time": 1772000000001,
    }
    plain = envelope("conversation.completed", "c1", 1_772_000_000_000, entity)
    odd = copy.deepcopy(plain) | {"entity_id": "c2"}  # flattened by the worker: DuckDB would write these otherwise
    odd["entity"]["visitor"] |= {"name": "Ann\u001f", "customer_info": {"score": 1e16}}
    report = siq_schemas.convert(
        write_lines(tmp_path / "a.jsonl", [json.dumps(plain), json.dumps(odd)]), tmp_path / "out"
    )
    assert report.events_written == 2
    rows = siq_schemas.read_table(tmp_path / "out", "conversation_events").set_index("conversation_id")
    for conversation in ("c1", "c2"):
        row = rows.loc[conversation]
        assert (row["visitor_id"], row["department_id"], row["owner_id"]) == ("7", "٣٤", "405260000000020401234")
        assert row["opened_time"].value // 10**6 == 1772000000000
        assert row["attended_time"].value // 10**6 == 1772000000001
    assert rows.loc["c1", "visitor_customer_info"] == '{"plan":"gold"}'
    assert (rows.loc["c2", "visitor_name"], rows.loc["c2", "visitor_customer_info"]) == ("Ann\u001f", '{"score":1e16}')


def test_a_repeated_key_counts_its_last_value_in_every_table(tmp_path: Path) -> None:
    """An entity that repeats a key: validation, `events.entity` and the history tables all take the last value."""
    text = json.dumps(envelope("conversation.completed", "c1", 1_772_000_000_000, {"id": "c1", "question": "first"}))
    text = text.replace('"question": "first"', '"question": "first", "question": "last"')
    report = siq_schemas.convert(write_lines(tmp_path / "a.jsonl", [text]), tmp_path / "out")
    assert report.events_written == 1
    assert json.loads(siq_schemas.read_table(tmp_path / "out", "events")["entity"][0])["question"] == "last"
    assert siq_schemas.read_table(tmp_path / "out", "conversation_events")["question"].tolist() == ["last"]
