"""Operator metrics: the roster over time, joins and leaves, tenure and survival, department headcount,
leavers against stayers, role changes.

"Joined" is the operator's ``created_time``, "left" its ``deleted_time`` (the ``operators`` table).
Department membership over time is replayed from ``operator_events`` and ``department_events`` the
way the folded tables are (docs/tables.md, "Folded tables").
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ._common import day_of, day_range, week_of, week_range


def _day_ends(start: pd.Timestamp, end: pd.Timestamp, tz: str) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Every day from ``start`` to ``end`` (in ``tz``) and the UTC instant each one ends."""
    first = day_of(pd.Series([pd.Timestamp(start)]), tz).iloc[0]
    last = day_of(pd.Series([pd.Timestamp(end)]), tz).iloc[0]
    days = day_range(first, last)
    ends = (days + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
    return days, ends


def _alive(created: pd.Series, deleted: pd.Series, at: pd.Timestamp) -> int:
    return int(((created < at) & (deleted.isna() | (deleted >= at))).sum())


def active_operators_by_day(
    operators: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, tz: str = "UTC"
) -> pd.Series:
    """Operators on the roster at the end of each day from ``start`` to ``end`` (days in ``tz``).

    An operator counts from its ``created_time`` until its ``deleted_time`` (exclusive); one with no
    ``created_time`` is not counted.
    """
    days, ends = _day_ends(start, end, tz)
    created, deleted = operators["created_time"], operators["deleted_time"]
    return pd.Series([_alive(created, deleted, at) for at in ends], index=days, name="operators", dtype="int64")


def joins_and_leaves(operators: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, tz: str = "UTC") -> pd.DataFrame:
    """Per week (starting Monday, in ``tz``) from ``start`` to ``end``: ``joined``, ``left`` and ``net``.

    ``joined`` counts ``created_time``, ``left`` counts ``deleted_time``; those on days before the
    day of ``start`` or after the day of ``end`` are not counted.
    """
    first, last = day_of(pd.Series([pd.Timestamp(start), pd.Timestamp(end)]), tz)
    index = week_range(first, last)
    table = pd.DataFrame(0, index=index, columns=["joined", "left"], dtype="int64")
    for column, times in (("joined", operators["created_time"]), ("left", operators["deleted_time"])):
        days = day_of(times.dropna(), tz)
        inside = times.dropna()[(days >= first) & (days <= last)]
        counts = week_of(inside, tz).value_counts()
        table[column] = counts.reindex(index, fill_value=0).astype("int64").to_numpy()
    table["net"] = table["joined"] - table["left"]
    return table


def tenure(operators: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per operator: ``left`` (deleted by ``as_of``) and ``tenure_days`` from creation to deletion, or to ``as_of``.

    Operators without a ``created_time`` are left out. Longest tenure first.
    """
    as_of = pd.Timestamp(as_of)
    known = operators[operators["created_time"].notna()].copy()
    known["left"] = known["deleted_time"].notna() & (known["deleted_time"] <= as_of)
    until = known["deleted_time"].where(known["left"], as_of)
    known["tenure_days"] = (until - known["created_time"]).dt.total_seconds() / 86_400
    columns = ["operator_id", "name", "role", "created_time", "deleted_time", "left", "tenure_days"]
    return known.sort_values(["tenure_days", "operator_id"], ascending=[False, True])[columns].reset_index(drop=True)


def survival_curve(operators: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Kaplan-Meier estimate of the share of operators still on the roster after ``tenure_days``.

    Each operator is followed from its creation; a deletion is an event, an operator still active at
    ``as_of`` is censored there. Rows: day 0, then each tenure at which someone left, with
    ``at_risk`` (operators followed at least that long), ``left`` and ``survival``
    (``S(t) = prod(1 - left / at_risk)``).
    """
    table = tenure(operators, as_of)
    rows = [{"tenure_days": 0.0, "at_risk": len(table), "left": 0, "survival": 1.0}]
    survival = 1.0
    for days in sorted(table.loc[table["left"], "tenure_days"].unique()):
        at_risk = int((table["tenure_days"] >= days).sum())
        left = int((table["left"] & (table["tenure_days"] == days)).sum())
        survival *= 1 - left / at_risk
        rows.append({"tenure_days": float(days), "at_risk": at_risk, "left": left, "survival": survival})
    return pd.DataFrame(rows).set_index("tenure_days")


def _ids(value: Any) -> set[str] | None:
    """A list column's value as a set of ids; None when the event carries no list."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return {str(item) for item in value if item is not None and item != ""}


def membership_spans(operator_events: pd.DataFrame, department_events: pd.DataFrame) -> pd.DataFrame:
    """Every (operator, department) membership with its ``start`` and ``end`` (NaT: still a member).

    Replays the events in ``event_time`` order, ties by ``event_key``: an operator.* event sets the
    operator's departments to its ``departments`` list, a department.created/updated sets the
    department's operators to its ``operators`` list, operator.deleted and department.deleted end
    every membership of what they delete; an event without a list changes nothing.
    """
    history = [
        (row.event_time, row.event_key, "operator", row.operator_id, row.event, row.departments)
        for row in operator_events.itertuples(index=False)
    ]
    history += [
        (row.event_time, row.event_key, "department", row.department_id, row.event, row.operators)
        for row in department_events.itertuples(index=False)
    ]
    history.sort(key=lambda item: (pd.isna(item[0]), item[0] if not pd.isna(item[0]) else 0, item[1]))
    open_since: dict[tuple[str, str], pd.Timestamp] = {}
    spans: list[dict[str, Any]] = []

    def close(pair: tuple[str, str], when: pd.Timestamp) -> None:
        spans.append({"operator_id": pair[0], "department_id": pair[1], "start": open_since.pop(pair), "end": when})

    for when, _, kind, key, event, listed in history:
        side = 0 if kind == "operator" else 1
        mine = {pair for pair in open_since if pair[side] == key}
        if event.endswith(".deleted"):
            wanted: set[tuple[str, str]] = set()
        else:
            ids = _ids(listed)
            if ids is None:
                continue
            wanted = {(key, other) if kind == "operator" else (other, key) for other in ids}
        for pair in sorted(mine - wanted):
            close(pair, when)
        for pair in sorted(wanted - mine):
            open_since[pair] = when
    for pair in sorted(open_since):
        spans.append({"operator_id": pair[0], "department_id": pair[1], "start": open_since[pair], "end": pd.NaT})
    table = pd.DataFrame(spans, columns=["operator_id", "department_id", "start", "end"])
    for column in ("start", "end"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table.sort_values(["department_id", "operator_id", "start"]).reset_index(drop=True)


def current_memberships(spans: pd.DataFrame) -> pd.DataFrame:
    """The (``operator_id``, ``department_id``) pairs of :func:`membership_spans` still open, sorted."""
    pairs = spans.loc[spans["end"].isna(), ["operator_id", "department_id"]]
    return pairs.sort_values(["operator_id", "department_id"]).reset_index(drop=True)


def folded_memberships(operators: pd.DataFrame) -> pd.DataFrame:
    """The (``operator_id``, ``department_id``) pairs of the folded ``operators.departments`` lists, sorted."""
    pairs = operators[["operator_id", "departments"]].explode("departments").dropna()
    pairs = pairs.rename(columns={"departments": "department_id"}).astype({"department_id": "str"})
    return pairs.sort_values(["operator_id", "department_id"]).reset_index(drop=True)


def department_headcount(spans: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, tz: str = "UTC") -> pd.DataFrame:
    """Members of each department (columns) at the end of each day (rows) from ``start`` to ``end``, in ``tz``."""
    days, ends = _day_ends(start, end, tz)
    columns = sorted(spans["department_id"].unique())
    table = pd.DataFrame(0, index=days, columns=pd.Index(columns, name="department_id"), dtype="int64")
    for department, group in spans.groupby("department_id"):
        table[department] = [_alive(group["start"], group["end"], at) for at in ends]
    return table


def leavers_vs_stayers(
    operators: pd.DataFrame, conversations: pd.DataFrame, ratings: pd.DataFrame, weeks: float = 2
) -> pd.DataFrame:
    """Workload and ratings of each leaver in its last ``weeks`` before deletion, against the stayers then.

    The window is ``[deleted_time - weeks, deleted_time)``, cut at the leaver's ``created_time``.
    Stayers: operators never deleted who were created before the window began. Workload: conversations
    opened in the window whose ``owner_id`` is the operator, per week of the window (for stayers,
    the mean per stayer). Ratings: ratings (events) given in the window to the operator's chats;
    the stayers' are pooled.
    """
    stayers = operators[operators["deleted_time"].isna()]
    rows = []
    for leaver in operators[operators["deleted_time"].notna()].sort_values("deleted_time").itertuples(index=False):
        until = leaver.deleted_time
        since = until - pd.Timedelta(weeks=weeks)
        if pd.notna(leaver.created_time):
            since = max(since, leaver.created_time)
        span_weeks = (until - since).total_seconds() / (7 * 86_400)
        present = stayers.loc[stayers["created_time"] < since, "operator_id"]
        opened = conversations[(conversations["opened_time"] >= since) & (conversations["opened_time"] < until)]
        given = ratings[(ratings["event_time"] >= since) & (ratings["event_time"] < until)]
        mine = pd.to_numeric(given.loc[given["owner_id"] == leaver.operator_id, "rating"], errors="coerce").dropna()
        theirs = pd.to_numeric(given.loc[given["owner_id"].isin(present), "rating"], errors="coerce").dropna()
        stayer_chats = opened["owner_id"].isin(present).sum() / len(present) if len(present) else math.nan
        rows.append(
            {
                "operator_id": leaver.operator_id,
                "name": leaver.name,
                "window_start": since,
                "window_end": until,
                "window_weeks": span_weeks,
                "chats_per_week": (opened["owner_id"] == leaver.operator_id).sum() / span_weeks
                if span_weeks
                else math.nan,
                "stayers": len(present),
                "stayer_chats_per_week": stayer_chats / span_weeks if span_weeks else math.nan,
                "ratings": len(mine),
                "mean_rating": float(mine.mean()) if len(mine) else math.nan,
                "stayer_ratings": len(theirs),
                "stayer_mean_rating": float(theirs.mean()) if len(theirs) else math.nan,
            }
        )
    columns = [
        "operator_id",
        "name",
        "window_start",
        "window_end",
        "window_weeks",
        "chats_per_week",
        "stayers",
        "stayer_chats_per_week",
        "ratings",
        "mean_rating",
        "stayer_ratings",
        "stayer_mean_rating",
    ]
    return pd.DataFrame(rows, columns=columns)


def role_changes(operator_events: pd.DataFrame) -> pd.DataFrame:
    """Every change of an operator's role: ``operator_id``, ``event_time``, ``from_role``, ``to_role``.

    Events are taken in ``event_time`` order (ties by ``event_key``); an event without a role changes
    nothing, and an operator's first known role is not a change.
    """
    known = operator_events[operator_events["role"].notna() & (operator_events["role"] != "")]
    known = known.sort_values(["operator_id", "event_time", "event_key"])
    previous = known.groupby("operator_id")["role"].shift()
    changed = known.assign(from_role=previous, to_role=known["role"])
    changed = changed[changed["from_role"].notna() & (changed["from_role"] != changed["to_role"])]
    columns = ["operator_id", "event_time", "event", "from_role", "to_role"]
    return changed.sort_values(["event_time", "operator_id"])[columns].reset_index(drop=True)
