"""Conversation metrics: volume by outcome, missed rate, hour-of-week load, response times, bots, open chats.

All of them take the ``conversations`` table (one row per conversation, see docs/tables.md). A
conversation is placed in time by its ``opened_time``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ._common import WEEKDAYS, day_of, day_range, local, percentiles

#: The outcomes of the ``conversations`` table, in display order.
OUTCOMES = ("completed", "missed", "open")

#: The duration columns of ``conversations`` and the measure names used in the tables below.
RESPONSE_TIMES = {"wait": "wait_ms", "first_response": "first_response_ms", "duration": "duration_ms"}


def outcome_counts(conversations: pd.DataFrame) -> pd.Series:
    """Conversations by outcome: ``completed``, ``missed``, ``open`` (every outcome present, 0 if none)."""
    counts = conversations["outcome"].value_counts().reindex(list(OUTCOMES), fill_value=0).astype("int64")
    counts.index.name = "outcome"
    return counts.rename("conversations")


def _missed_rate(missed: float, completed: float) -> float:
    decided = missed + completed
    return missed / decided if decided else math.nan


def missed_rate(conversations: pd.DataFrame) -> float:
    """Missed rate: ``missed / (missed + completed)``; open conversations have no outcome yet and are left out."""
    counts = outcome_counts(conversations)
    return _missed_rate(counts["missed"], counts["completed"])


def daily_outcomes(conversations: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Conversations opened each day by outcome, with ``total`` and ``missed_rate``.

    One row per calendar day (in ``tz``) from the first to the last day a conversation was opened,
    days without conversations included (missed rate NaN there).
    """
    opened = conversations[conversations["opened_time"].notna()]
    if opened.empty:
        return pd.DataFrame(columns=[*OUTCOMES, "total", "missed_rate"], index=pd.DatetimeIndex([], name="day"))
    days = day_of(opened["opened_time"], tz).rename("day")
    table = pd.crosstab(days, opened["outcome"]).reindex(columns=list(OUTCOMES), fill_value=0)
    table = table.reindex(day_range(days.min(), days.max()), fill_value=0)
    table.columns.name = None
    table["total"] = table[list(OUTCOMES)].sum(axis=1)
    decided = table["missed"] + table["completed"]
    table["missed_rate"] = (table["missed"] / decided.where(decided > 0)).astype("float64")
    return table


def _hour_of_week(conversations: pd.DataFrame, tz: str) -> pd.DataFrame:
    opened = conversations[conversations["opened_time"].notna()]
    times = local(opened["opened_time"], tz)
    return pd.DataFrame(
        {"weekday": times.dt.day_of_week.to_numpy(), "hour": times.dt.hour.to_numpy(), "outcome": opened["outcome"]}
    )


def _counts(slots: pd.DataFrame) -> pd.DataFrame:
    """A 7 x 24 grid (weekday x hour) of the number of rows of ``slots`` in each cell."""
    grid = pd.DataFrame(0, index=pd.Index(WEEKDAYS, name="weekday"), columns=pd.Index(range(24), name="hour"))
    for (weekday, hour), size in slots.groupby(["weekday", "hour"]).size().items():
        grid.iloc[int(weekday), int(hour)] = int(size)
    return grid


def volume_by_hour_of_week(conversations: pd.DataFrame, tz: str = "UTC", average: bool = True) -> pd.DataFrame:
    """Conversations opened per weekday (rows Mon..Sun) and hour of day (columns 0..23), in ``tz``.

    With ``average`` (the default), each cell is divided by the number of times its weekday occurs
    between the first and last day a conversation was opened: the mean number of conversations
    opened in that hour on that weekday, the load to staff for. Without it, plain counts.
    """
    slots = _hour_of_week(conversations, tz)
    counts = _counts(slots)
    if not average:
        return counts
    if slots.empty:
        return counts.astype("float64")
    days = day_of(conversations["opened_time"].dropna(), tz)
    weekdays = pd.Series(day_range(days.min(), days.max()).day_of_week)
    occurrences = weekdays.value_counts().reindex(range(7), fill_value=0).to_numpy()
    return counts.div(pd.Series(occurrences, index=counts.index, dtype="float64").where(lambda n: n > 0), axis=0)


def missed_rate_by_hour_of_week(conversations: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Missed rate (``missed / (missed + completed)``) per weekday and hour opened; NaN where none ended."""
    slots = _hour_of_week(conversations, tz)
    missed = _counts(slots[slots["outcome"] == "missed"])
    decided = missed + _counts(slots[slots["outcome"] == "completed"])
    return (missed / decided.where(decided > 0)).astype("float64")


def response_times(
    conversations: pd.DataFrame, by: str | None = None, quantiles: Sequence[float] = (0.5, 0.9)
) -> pd.DataFrame:
    """Waiting time, first response time and chat duration: ``n``, percentiles and mean, in seconds.

    The measures are the ``wait_ms``, ``first_response_ms`` and ``duration_ms`` columns (docs/tables.md);
    each is summarised over the conversations where it is known. Rows are the measures (``wait``,
    ``first_response``, ``duration``), or ``(group, measure)`` with ``by`` (e.g. ``"department_id"``).
    """
    groups = [("all", conversations)] if by is None else list(conversations.groupby(by, sort=True))
    rows = []
    for key, group in groups:
        for measure, column in RESPONSE_TIMES.items():
            row = percentiles(group[column], quantiles)
            rows.append({"group": key, "measure": measure, **row})
    columns = ["n", *[f"p{round(q * 100):d}_s" for q in quantiles], "mean_s"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    table["n"] = table["n"].astype("int64")
    if by is None:
        return table.drop(columns="group").set_index("measure")[columns]
    return table.rename(columns={"group": by}).set_index([by, "measure"])[columns]


def answered_within(conversations: pd.DataFrame, seconds: float = 30, by: str | None = None) -> float | pd.Series:
    """Share of picked-up conversations whose first operator reply came within ``seconds`` of pick-up.

    Denominator: conversations with an ``attended_time``; numerator: those with
    ``first_response_ms <= seconds * 1000`` (a picked-up chat the operator never answered counts as
    not answered in time). With ``by``, a Series per group.
    """
    attended = conversations[conversations["attended_time"].notna()]
    within = pd.to_numeric(attended["first_response_ms"], errors="coerce") <= seconds * 1000
    if by is None:
        return float(within.mean()) if len(within) else math.nan
    return within.groupby(attended[by]).mean().astype("float64").rename(f"answered_within_{seconds:g}s")


def bot_only(conversations: pd.DataFrame) -> pd.DataFrame:
    """Conversations only a bot took part in: bot messages, no operator message, never picked up."""
    mask = (
        (conversations["bot_messages"] > 0)
        & (conversations["operator_messages"] == 0)
        & conversations["attended_time"].isna()
    )
    return conversations[mask]


def open_conversations(conversations: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Conversations still open (no completed or missed event) at ``as_of``, the end of the data.

    Columns: ``conversation_id``, ``state`` (``attended`` when an operator picked it up, else
    ``waiting``), ``opened_time``, ``age_min`` (minutes from opening to ``as_of``), ``department_id``,
    ``owner_id``, and the message counts; oldest first.
    """
    still = conversations[conversations["outcome"] == "open"].copy()
    still["state"] = still["attended_time"].notna().map({True: "attended", False: "waiting"})
    still["age_min"] = (pd.Timestamp(as_of) - still["opened_time"]).dt.total_seconds() / 60
    columns = [
        "conversation_id",
        "state",
        "opened_time",
        "age_min",
        "department_id",
        "owner_id",
        "visitor_messages",
        "operator_messages",
        "bot_messages",
    ]
    return still.sort_values(["opened_time", "conversation_id"])[columns].reset_index(drop=True)
