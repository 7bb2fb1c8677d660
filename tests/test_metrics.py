"""siq_schemas.metrics on tiny tables whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from siq_schemas import metrics

NAN = math.nan


def t(text: str | None) -> pd.Timestamp:
    """A UTC time as read_table gives it; None is NaT."""
    return pd.NaT if text is None else pd.Timestamp(text, tz="UTC")


def times(*texts: str | None) -> pd.Series:
    return pd.Series([t(text) for text in texts], dtype="datetime64[ms, UTC]")


def conversations(rows: list[dict]) -> pd.DataFrame:
    """A ``conversations`` table: each row gives what it needs, the rest is null or 0."""
    defaults = {
        "conversation_id": None,
        "outcome": "completed",
        "opened_time": None,
        "attended_time": None,
        "end_time": None,
        "missed_time": None,
        "department_id": None,
        "owner_id": None,
        "visitor_id": None,
        "wait_ms": NAN,
        "first_response_ms": NAN,
        "duration_ms": NAN,
        "visitor_messages": 0,
        "operator_messages": 0,
        "bot_messages": 0,
        "rating": NAN,
        "feedback": None,
    }
    table = pd.DataFrame([{**defaults, "conversation_id": str(n), **row} for n, row in enumerate(rows)])
    for column in ("opened_time", "attended_time", "end_time", "missed_time"):
        table[column] = times(*table[column])
    return table


def ratings(rows: list[tuple]) -> pd.DataFrame:
    """A ``ratings`` table from (rating, feedback, owner_id, event_time, conversation_id) tuples."""
    table = pd.DataFrame(rows, columns=["rating", "feedback", "owner_id", "event_time", "conversation_id"])
    table["rating"] = table["rating"].astype("float64")
    table["event_time"] = times(*table["event_time"])
    table["owner_name"] = "Name " + table["owner_id"].astype(str)
    return table


def operators(rows: list[tuple]) -> pd.DataFrame:
    """An ``operators`` table from (operator_id, created_time, deleted_time) tuples."""
    table = pd.DataFrame(rows, columns=["operator_id", "created_time", "deleted_time"])
    table["created_time"] = times(*table["created_time"])
    table["deleted_time"] = times(*table["deleted_time"])
    table["name"] = table["operator_id"].str.upper()
    table["email"] = table["operator_id"] + "@example.com"
    table["role"] = "Associate"
    table["is_active"] = table["deleted_time"].isna()
    return table


# --------------------------------------------------------------------------- intervals


def test_wilson_interval_of_eight_in_ten():
    """8 of 10 gives the textbook 95% Wilson interval (0.4902, 0.9433)."""
    low, high = metrics.wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


def test_wilson_interval_of_a_perfect_score_ends_at_one():
    """10 of 10: the interval is [n / (n + z^2), 1] = [10 / 13.8415, 1]; no trials gives NaN."""
    low, high = metrics.wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0
    assert all(math.isnan(bound) for bound in metrics.wilson_interval(0, 0))


def test_mean_interval_is_the_normal_approximation():
    """1..5: mean 3, s = sqrt(2.5), half-width 1.96 * s / sqrt(5) = 1.3859."""
    mean, low, high = metrics.mean_interval([1, 2, 3, 4, 5])
    assert (mean, round(low, 4), round(high, 4)) == (3.0, 1.6141, 4.3859)


def test_mean_interval_of_one_value_has_no_bounds():
    """A single value has a mean but no interval; nulls are left out."""
    mean, low, high = metrics.mean_interval([4.0, NAN])
    assert mean == 4.0 and math.isnan(low) and math.isnan(high)


# --------------------------------------------------------------------------- conversations


def test_outcome_counts_lists_every_outcome():
    """Outcomes that never happen are counted as 0, in the order completed, missed, open."""
    table = conversations([{"outcome": "completed"}, {"outcome": "completed"}, {"outcome": "open"}])
    assert metrics.outcome_counts(table).to_dict() == {"completed": 2, "missed": 0, "open": 1}


def test_missed_rate_leaves_open_conversations_out():
    """3 completed, 1 missed, 2 open: 1 / (1 + 3) = 0.25."""
    table = conversations([{"outcome": o} for o in ["completed"] * 3 + ["missed"] + ["open"] * 2])
    assert metrics.missed_rate(table) == 0.25


def test_daily_outcomes_fills_quiet_days_and_counts_in_the_time_zone():
    """23:30 UTC on 2 March is 3 March in Berlin; 4 March has no chat (rate NaN); 5 March is 1 missed of 2."""
    table = conversations(
        [
            {"outcome": "completed", "opened_time": "2026-03-02T23:30:00"},
            {"outcome": "completed", "opened_time": "2026-03-05T10:00:00"},
            {"outcome": "missed", "opened_time": "2026-03-05T11:00:00"},
            {"outcome": "open", "opened_time": "2026-03-05T12:00:00"},
        ]
    )
    daily = metrics.daily_outcomes(table, tz="Europe/Berlin")
    assert list(daily.index.strftime("%m-%d")) == ["03-03", "03-04", "03-05"]
    assert daily["total"].tolist() == [1, 0, 3]
    assert daily["open"].tolist() == [0, 0, 1]
    assert daily["missed_rate"].iloc[0] == 0.0 and math.isnan(daily["missed_rate"].iloc[1])
    assert daily["missed_rate"].iloc[2] == 0.5


def test_volume_by_hour_of_week_averages_over_the_weekdays_seen():
    """Mon 2 to Mon 9 March has two Mondays: 3 chats at Mon 10h average 1.5; Tue 14h once, 1.0."""
    table = conversations(
        [
            {"opened_time": "2026-03-02T10:05:00"},
            {"opened_time": "2026-03-02T10:55:00"},
            {"opened_time": "2026-03-03T14:00:00"},
            {"opened_time": "2026-03-09T10:30:00"},
        ]
    )
    average = metrics.volume_by_hour_of_week(table)
    counts = metrics.volume_by_hour_of_week(table, average=False)
    assert average.shape == (7, 24) and list(average.index) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert average.loc["Mon", 10] == 1.5 and average.loc["Tue", 14] == 1.0 and average.loc["Wed", 10] == 0.0
    assert counts.loc["Mon", 10] == 3 and counts.to_numpy().sum() == 4


def test_missed_rate_by_hour_of_week_counts_only_ended_chats():
    """Mon 10h: 1 missed, 2 completed, 1 open -> 1/3; a slot without ended chats is NaN."""
    table = conversations(
        [
            {"outcome": "missed", "opened_time": "2026-03-02T10:01:00"},
            {"outcome": "completed", "opened_time": "2026-03-02T10:02:00"},
            {"outcome": "completed", "opened_time": "2026-03-09T10:03:00"},
            {"outcome": "open", "opened_time": "2026-03-09T10:04:00"},
        ]
    )
    rates = metrics.missed_rate_by_hour_of_week(table)
    assert rates.loc["Mon", 10] == pytest.approx(1 / 3) and math.isnan(rates.loc["Mon", 11])


def test_response_times_percentiles_in_seconds():
    """Waits 10..50 s: p50 30 s, p90 46 s (linear interpolation), mean 30 s; unknown values left out."""
    table = conversations([{"wait_ms": ms} for ms in (10_000, 20_000, 30_000, 40_000, 50_000, NAN)])
    wait = metrics.response_times(table).loc["wait"]
    assert (wait["n"], wait["p50_s"], wait["p90_s"], wait["mean_s"]) == (5, 30.0, 46.0, 30.0)
    assert metrics.response_times(table).loc["duration", "n"] == 0


def test_response_times_by_department():
    """By department: each group has its own percentiles (d1: 10 and 30 s -> p50 20 s; d2: 5 s)."""
    table = conversations(
        [
            {"department_id": "d1", "first_response_ms": 10_000},
            {"department_id": "d1", "first_response_ms": 30_000},
            {"department_id": "d2", "first_response_ms": 5_000},
        ]
    )
    by = metrics.response_times(table, by="department_id")
    assert by.loc[("d1", "first_response"), "p50_s"] == 20.0
    assert by.loc[("d2", "first_response"), "p90_s"] == 5.0


def test_answered_within_counts_silent_pickups_as_late():
    """4 picked up: replies after 10 s, 30 s, 31 s and none -> 2 of 4 within 30 s; never picked up is left out."""
    attended = "2026-03-02T10:00:00"
    table = conversations(
        [
            {"attended_time": attended, "first_response_ms": 10_000, "department_id": "a"},
            {"attended_time": attended, "first_response_ms": 30_000, "department_id": "a"},
            {"attended_time": attended, "first_response_ms": 31_000, "department_id": "b"},
            {"attended_time": attended, "first_response_ms": NAN, "department_id": "b"},
            {"outcome": "missed"},
        ]
    )
    assert metrics.answered_within(table, 30) == 0.5
    assert metrics.answered_within(table, 30, by="department_id").to_dict() == {"a": 1.0, "b": 0.0}


def test_bot_only_needs_a_bot_and_no_operator():
    """Only the chat with bot messages, no operator message and no pick-up is bot-only."""
    table = conversations(
        [
            {"bot_messages": 2},
            {"bot_messages": 1, "operator_messages": 3, "attended_time": "2026-03-02T10:00:00"},
            {"bot_messages": 1, "attended_time": "2026-03-02T10:00:00"},
            {},
        ]
    )
    assert metrics.bot_only(table)["conversation_id"].tolist() == ["0"]


def test_open_conversations_state_and_age():
    """Open chats only, oldest first: picked up -> attended, else waiting; age in minutes to the end of the data."""
    table = conversations(
        [
            {"outcome": "open", "opened_time": "2026-03-02T10:30:00"},
            {"outcome": "open", "opened_time": "2026-03-02T10:00:00", "attended_time": "2026-03-02T10:01:00"},
            {"outcome": "completed", "opened_time": "2026-03-02T09:00:00"},
        ]
    )
    still = metrics.open_conversations(table, t("2026-03-02T11:00:00"))
    assert still["conversation_id"].tolist() == ["1", "0"]
    assert still["state"].tolist() == ["attended", "waiting"]
    assert still["age_min"].tolist() == [60.0, 30.0]


# --------------------------------------------------------------------------- ratings

RATED = ratings(
    [
        (5, "Great", "a", "2026-03-02T10:00:00", "c1"),
        (4, None, "a", "2026-03-03T10:00:00", "c2"),
        (3, "Meh", "b", "2026-03-17T10:00:00", "c3"),
        (1, "Bad", "b", "2026-03-18T10:00:00", "c4"),
        (None, "Only words", "a", "2026-03-18T11:00:00", "c5"),
    ]
)


def test_rating_counts_cover_the_scale():
    """Scores never given count 0; the feedback-only event is not a rating."""
    assert metrics.rating_counts(RATED).to_dict() == {1: 1, 2: 0, 3: 1, 4: 1, 5: 1}


def test_rating_summary_by_hand():
    """5, 4, 3, 1 and a feedback: n 4, mean 3.25 +- 1.96 * 1.7078 / 2, CSAT 2/4, good/ok/bad 0.5/0.25/0.25."""
    summary = metrics.rating_summary(RATED)
    assert (summary["n"], summary["feedback_only"], summary["mean"], summary["csat"]) == (4, 1, 3.25, 0.5)
    assert (round(summary["mean_low"], 4), round(summary["mean_high"], 4)) == (1.5764, 4.9236)
    assert (summary["good"], summary["ok"], summary["bad"]) == (0.5, 0.25, 0.25)
    assert summary["csat_low"] < 0.5 < summary["csat_high"]


def test_ratings_by_operator_flags_small_samples():
    """a: 5 and 4 (mean 4.5, CSAT 1); b: 3 and 1 (mean 2, CSAT 0); both below 10 ratings are small."""
    by = metrics.ratings_by(RATED, "owner_id")
    assert by.loc["a", ["n", "mean", "csat"]].tolist() == [2, 4.5, 1.0]
    assert by.loc["b", ["n", "mean", "csat"]].tolist() == [2, 2.0, 0.0]
    assert by["small_sample"].all()
    assert not metrics.ratings_by(RATED, "owner_id", min_count=2)["small_sample"].any()


def test_ratings_by_keeps_the_mean_interval_on_the_scale():
    """b's interval 2 +- 1.96 * 1.414 / sqrt(2) = [0.04, 3.96] is clipped to [1, 3.96]."""
    by = metrics.ratings_by(RATED, "owner_id")
    assert by.loc["b", "mean_low"] == 1.0 and round(by.loc["b", "mean_high"], 2) == 3.96


def test_weekly_ratings_start_on_monday_and_keep_empty_weeks():
    """Weeks of 2, 9 and 16 March: 2 ratings, none, 2 ratings (mean 2)."""
    weekly = metrics.weekly_ratings(RATED)
    assert list(weekly.index.strftime("%m-%d")) == ["03-02", "03-09", "03-16"]
    assert weekly["n"].tolist() == [2, 0, 2]
    assert weekly.loc["2026-03-16", "mean"] == 2.0 and math.isnan(weekly.loc["2026-03-09", "mean"])


def test_rating_by_band_of_waiting_time():
    """Waits 10 s (5), 20 s (4), 45 s (3), none (1): 0-30 s mean 4.5, 30-60 s mean 3, later bands empty."""
    table = conversations(
        [
            {"conversation_id": "c1", "wait_ms": 10_000, "department_id": "d"},
            {"conversation_id": "c2", "wait_ms": 20_000, "department_id": "d"},
            {"conversation_id": "c3", "wait_ms": 45_000, "department_id": "e"},
            {"conversation_id": "c4", "department_id": "e"},
        ]
    )
    rated = metrics.with_conversations(RATED, table)
    assert rated["department_id"].tolist()[:4] == ["d", "d", "e", "e"] and pd.isna(rated["department_id"].iloc[4])
    bands = metrics.rating_by_band(rated, "wait_ms", edges_s=(0, 30, 60, math.inf))
    assert list(bands.index) == ["0-30 s", "30-60 s", "60 s+"]
    assert bands["n"].tolist() == [2, 1, 0]
    assert bands.loc["0-30 s", "mean"] == 4.5 and bands.loc["30-60 s", "csat"] == 0.0


def test_rank_correlation_is_spearman():
    """Ratings falling as waits grow give -1; ties share ranks; under three pairs give NaN."""
    rated = pd.DataFrame({"rating": [5, 4, 3, 1], "wait_ms": [1, 2, 3, 40]})
    assert metrics.rank_correlation(rated) == pytest.approx(-1.0)
    tied = pd.DataFrame({"rating": [5, 5, 1], "wait_ms": [1, 2, 3]})  # ranks (2.5, 2.5, 1) vs (1, 2, 3)
    assert metrics.rank_correlation(tied) == pytest.approx(-math.sqrt(3) / 2)
    assert math.isnan(metrics.rank_correlation(rated.head(2)))


def test_feedback_only_and_lowest_rated_feedback():
    """Feedback-only events stand apart; the lowest ratings (<= 2) with a text come lowest first."""
    assert metrics.feedback_only(RATED)["feedback"].tolist() == ["Only words"]
    lowest = metrics.lowest_rated_feedback(RATED, max_rating=3)
    assert lowest[["rating", "feedback"]].to_numpy().tolist() == [[1, "Bad"], [3, "Meh"]]
    assert metrics.lowest_rated_feedback(RATED)["feedback"].tolist() == ["Bad"]


# --------------------------------------------------------------------------- operators

ROSTER = operators(
    [
        ("a", "2026-03-02T09:00:00", "2026-03-04T12:00:00"),
        ("b", "2026-03-02T09:00:00", "2026-03-07T09:00:00"),
        ("c", "2026-03-02T09:00:00", None),
        ("d", "2026-03-08T09:00:00", None),
    ]
)
AS_OF = t("2026-03-12T09:00:00")


def test_active_operators_by_day_counts_at_the_end_of_each_day():
    """3 from 2 March; a leaves on the 4th (2 left that evening), b on the 7th, d joins on the 8th."""
    days = metrics.active_operators_by_day(ROSTER, t("2026-03-02T00:00:00"), t("2026-03-09T00:00:00"))
    assert days.tolist() == [3, 3, 2, 2, 2, 1, 2, 2]
    assert days.index[0] == pd.Timestamp("2026-03-02")


def test_joins_and_leaves_per_week():
    """All four joined and a, b left in the week of 2 March (d on the 8th, its Sunday); the other weeks are empty."""
    weeks = metrics.joins_and_leaves(ROSTER, t("2026-03-01T00:00:00"), t("2026-03-12T00:00:00"))
    assert weeks.index.strftime("%m-%d").tolist() == ["02-23", "03-02", "03-09"]
    assert weeks.to_numpy().tolist() == [[0, 0, 0], [4, 2, 2], [0, 0, 0]]


def test_joins_and_leaves_count_whole_days():
    """Data from 10:00 on 2 March still counts the three created at 09:00 that day; days after the end are left out."""
    weeks = metrics.joins_and_leaves(ROSTER, t("2026-03-02T10:00:00"), t("2026-03-06T00:00:00"))
    assert weeks.index.strftime("%m-%d").tolist() == ["03-02"]
    assert weeks.to_numpy().tolist() == [[3, 1, 2]]


def test_tenure_of_leavers_and_stayers():
    """a stayed 2.125 days, b 5; c and d are still there at the end: 10 and 4 days."""
    tenure = metrics.tenure(ROSTER, AS_OF).set_index("operator_id")
    assert tenure["tenure_days"].to_dict() == {"c": 10.0, "b": 5.0, "d": 4.0, "a": 2.125}
    assert tenure["left"].to_dict() == {"c": False, "b": True, "d": False, "a": True}


def test_survival_curve_is_kaplan_meier():
    """a leaves at 2.125 d (4 at risk: S = 3/4), b at 5 d (b and c at risk: S = 3/4 * 1/2); d censored at 4 d."""
    curve = metrics.survival_curve(ROSTER, AS_OF)
    assert curve.index.tolist() == [0.0, 2.125, 5.0]
    assert curve["at_risk"].tolist() == [4, 4, 2]
    assert curve["survival"].tolist() == [1.0, 0.75, 0.375]


def admin_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """operator_events and department_events of a small history (lists as numpy arrays, as read_table gives)."""
    operator_events = pd.DataFrame(
        [
            ("k1", "o1", "operator.created", "2026-03-02T09:00:00", ["d1"], "Associate"),
            ("k3", "o2", "operator.created", "2026-03-02T10:00:00", ["d1", "d2"], "Associate"),
            ("k4", "o1", "operator.updated", "2026-03-03T10:00:00", None, "Supervisor"),  # no list: no change
            ("k6", "o2", "operator.departments.dissociated", "2026-03-05T10:00:00", ["d2"], "Associate"),
            ("k8", "o2", "operator.deleted", "2026-03-07T10:00:00", None, None),
        ],
        columns=["event_key", "operator_id", "event", "event_time", "departments", "role"],
    )
    department_events = pd.DataFrame(
        [
            ("k2", "d2", "department.created", "2026-03-02T09:30:00", []),
            ("k5", "d1", "department.updated", "2026-03-04T10:00:00", ["o1", "o2", "o3"]),
            ("k7", "d2", "department.updated", "2026-03-05T10:00:00", ["o1", "o2"]),  # same time as k6: after it
        ],
        columns=["event_key", "department_id", "event", "event_time", "operators"],
    )
    for table, column in ((operator_events, "departments"), (department_events, "operators")):
        table["event_time"] = times(*table["event_time"])
        table[column] = [None if value is None else np.array(value, dtype=object) for value in table[column]]
    return operator_events, department_events


def test_membership_spans_replay_lists_in_time_order():
    """Operator lists, department lists, a tie broken by event_key, and deletion ending memberships."""
    spans = metrics.membership_spans(*admin_events())
    got = {
        (s.operator_id, s.department_id, s.start.strftime("%d %H"), "" if pd.isna(s.end) else s.end.strftime("%d %H"))
        for s in spans.itertuples()
    }
    assert got == {
        ("o1", "d1", "02 09", ""),
        ("o2", "d1", "02 10", "05 10"),  # o2's own list drops d1 on the 5th (k6)...
        ("o2", "d2", "02 10", "07 10"),  # ...then d2's list (k7) keeps o2 until its deletion
        ("o3", "d1", "04 10", ""),
        ("o1", "d2", "05 10", ""),
    }


def test_current_memberships_match_the_folded_lists():
    """The open spans are the pairs of the folded operators.departments lists."""
    spans = metrics.membership_spans(*admin_events())
    folded = pd.DataFrame(
        {"operator_id": ["o1", "o2", "o3"], "departments": [np.array(["d1", "d2"]), np.array([]), np.array(["d1"])]}
    )
    assert metrics.current_memberships(spans).equals(metrics.folded_memberships(folded))


def test_department_headcount_at_the_end_of_each_day():
    """d1: 2 (o1, o2), 2, 3 (o3 added), 2 (o2 left); d2: 1 (o2), 1, 1, 2 (o1 joined)."""
    spans = metrics.membership_spans(*admin_events())
    heads = metrics.department_headcount(spans, t("2026-03-02T00:00:00"), t("2026-03-05T23:00:00"))
    assert heads["d1"].tolist() == [2, 2, 3, 2]
    assert heads["d2"].tolist() == [1, 1, 1, 2]


def test_role_changes():
    """o1's Associate -> Supervisor is a change; a first role and an event without a role are not."""
    operator_events, _ = admin_events()
    changes = metrics.role_changes(operator_events)
    assert changes[["operator_id", "from_role", "to_role"]].to_numpy().tolist() == [["o1", "Associate", "Supervisor"]]


def test_leavers_vs_stayers_in_the_last_weeks():
    """x's last week (8-15 March): 2 chats, rated 2, against y's 3 chats, rated 4 (z came too late to compare)."""
    roster = operators(
        [
            ("x", "2026-03-01T00:00:00", "2026-03-15T00:00:00"),
            ("y", "2026-03-01T00:00:00", None),
            ("z", "2026-03-10T00:00:00", None),
        ]
    )
    chats = conversations(
        [
            {"owner_id": "x", "opened_time": "2026-03-09T10:00:00"},
            {"owner_id": "x", "opened_time": "2026-03-14T10:00:00"},
            {"owner_id": "x", "opened_time": "2026-03-07T10:00:00"},  # before the window
            {"owner_id": "y", "opened_time": "2026-03-08T10:00:00"},
            {"owner_id": "y", "opened_time": "2026-03-10T10:00:00"},
            {"owner_id": "y", "opened_time": "2026-03-11T10:00:00"},
            {"owner_id": "z", "opened_time": "2026-03-11T10:00:00"},
        ]
    )
    rated = ratings(
        [
            (2, None, "x", "2026-03-14T11:00:00", "1"),
            (4, None, "y", "2026-03-10T11:00:00", "4"),
            (5, None, "z", "2026-03-11T11:00:00", "6"),
        ]
    )
    (row,) = metrics.leavers_vs_stayers(roster, chats, rated, weeks=1).to_dict("records")
    assert (row["operator_id"], row["window_weeks"], row["stayers"]) == ("x", 1.0, 1)
    assert (row["chats_per_week"], row["stayer_chats_per_week"]) == (2.0, 3.0)
    assert (row["ratings"], row["mean_rating"], row["stayer_ratings"], row["stayer_mean_rating"]) == (1, 2.0, 1, 4.0)


# --------------------------------------------------------------------------- delivery

EVENTS = pd.DataFrame(
    {
        "event": ["a.x", "a.x", "a.x", "b.y"],
        "attempts": [1, 3, 1, 1],
        "deliveries": [1, 3, 2, 1],
        "event_time": times("2026-03-02T10:00:00", "2026-03-02T11:00:00", "2026-03-03T10:00:00", "2026-03-03T12:00:00"),
        "received_at": times(
            "2026-03-02T10:00:01", "2026-03-02T11:00:03", "2026-03-04T00:00:00.500", None
        ),  # the third crossed midnight; the fourth came only as a bare payload
        "signature": ["valid", "valid", "valid", "unsigned"],
        "key_id": ["k-old", "k-old", "k-new", None],
    }
)


def test_delivery_counts():
    """4 events from 7 accepted records: 3 duplicates; 1 event of 4 was retried."""
    counts = metrics.delivery_counts(EVENTS)
    assert counts.to_dict() == {"events": 4, "deliveries": 7, "duplicates": 3, "retried": 1, "retried_share": 0.25}


def test_attempts_distribution_lists_every_attempt():
    """Attempts 1 (3 events) and 3 (1 event): attempt 2 is listed with 0."""
    assert metrics.attempts_distribution(EVENTS).to_dict() == {1: 3, 2: 0, 3: 1}


def test_retries_by_event_type():
    """a.x: 1 of 3 retried, up to attempt 3; b.y: none; most retried first."""
    table = metrics.retries_by_event(EVENTS)
    assert table.index.tolist() == ["a.x", "b.y"]
    assert table.loc["a.x"].tolist() == [3, 1, pytest.approx(1 / 3), 3]


def test_delivery_latency_leaves_bare_payloads_out():
    """Latencies 1 s, 3 s, 50400.5 s; the bare-only event has none: p50 3 s, max 50400.5 s."""
    assert metrics.delivery_latency(EVENTS).tolist() == [1.0, 3.0, 50_400.5]
    summary = metrics.latency_summary(EVENTS, quantiles=(0.5,))
    assert summary.to_dict() == {"n": 3, "no_delivery": 1, "p50_s": 3.0, "max_s": 50_400.5}
    daily = metrics.daily_latency(EVENTS)
    assert daily["n"].tolist() == [2, 1] and daily["p50_s"].tolist() == [2.0, 50_400.5]


def test_rejects_by_reason_and_day():
    """Every contract reason is a column; a reject without a time counts in the totals only."""
    rejects = pd.DataFrame(
        {
            "reason": ["unreadable", "signature-invalid", "signature-invalid"],
            "received_at": times(None, "2026-03-02T10:00:00", "2026-03-04T10:00:00"),
        }
    )
    totals = metrics.rejects_by_reason(rejects)
    assert list(totals.index) == list(metrics.REJECT_REASONS)
    assert totals["signature-invalid"] == 2 and totals["unreadable"] == 1 and totals["schema-invalid"] == 0
    daily = metrics.daily_rejects(rejects)
    assert daily["signature-invalid"].tolist() == [1, 0, 1] and daily.to_numpy().sum() == 2
    empty = metrics.daily_rejects(rejects.iloc[:0], t("2026-03-02T00:00:00"), t("2026-03-03T00:00:00"))
    assert empty.shape == (2, 5) and empty.to_numpy().sum() == 0


def test_daily_signatures_split_by_key():
    """Per day of first delivery (event time for the bare one): the old key, then the new, then unsigned."""
    table = metrics.daily_signatures(EVENTS)
    assert table.columns.tolist() == ["valid k-old", "valid k-new", "unsigned"]
    assert table.to_numpy().tolist() == [[2, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_key_usage():
    """Each key's events and the first and last delivery it verified, oldest key first."""
    usage = metrics.key_usage(EVENTS)
    assert usage.index.tolist() == ["k-old", "k-new"]
    assert usage["events"].tolist() == [2, 1]
    assert usage.loc["k-old", "last_seen"] == t("2026-03-02T11:00:03")


def test_recovered_by_event_counts_events_rebuilt_from_failed_executions():
    """a.x: 2 of 3 recovered, up to 5 retries, statuses 400 and 503; b.y none: left out; most recovered first."""
    events = EVENTS.assign(
        recovered=[True, False, True, None],
        number_of_retries=[3, None, 5, None],
        remote_server_status=[503, None, 400, None],
    )
    table = metrics.recovered_by_event(events)
    assert table.index.tolist() == ["a.x"]
    assert table.loc["a.x"].tolist() == [3, 2, pytest.approx(2 / 3), 5, "400, 503"]
    delivered = EVENTS.assign(recovered=False, number_of_retries=None, remote_server_status=None)
    assert metrics.recovered_by_event(delivered).empty
