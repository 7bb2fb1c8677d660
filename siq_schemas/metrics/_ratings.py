"""Rating metrics: distribution, mean and CSAT with confidence intervals, by group and week, against waiting.

They take the ``ratings`` table: one row per conversation.rated event, ``rating`` an integer 1..5,
or null for a feedback-only event (feedback text without a rating), which counts nowhere but in
``feedback_only``. CSAT is the share of ratings that are 4 or 5 ("good"); 3 is "ok", 1-2 "bad".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import pandas as pd

from ._common import mean_interval, week_of, week_range, wilson_interval

#: The rating scale of the webhook (integers 1..5).
SCALE = (1, 2, 3, 4, 5)
#: Ratings at or above this are "good" and count towards CSAT.
GOOD = 4
#: Below this many ratings a group's figures are flagged as a small sample.
MIN_COUNT = 10

_STATS = ["n", "mean", "mean_low", "mean_high", "csat", "csat_low", "csat_high", "small_sample"]


def _values(ratings: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(ratings["rating"], errors="coerce").dropna()


def rating_counts(ratings: pd.DataFrame) -> pd.Series:
    """How many ratings gave each score 1..5 (every score present; feedback-only events left out)."""
    values = _values(ratings).astype("int64")
    counts = values.value_counts().reindex(list(SCALE), fill_value=0).astype("int64")
    counts.index.name = "rating"
    return counts.rename("ratings")


def _stats(values: pd.Series, min_count: int, confidence: float) -> dict[str, float | bool]:
    n = len(values)
    mean, low, high = mean_interval(values, confidence)
    low, high = max(low, SCALE[0]), min(high, SCALE[-1])  # the normal approximation can leave the scale
    good = int((values >= GOOD).sum())
    csat_low, csat_high = wilson_interval(good, n, confidence)
    return {
        "n": n,
        "mean": mean,
        "mean_low": low,
        "mean_high": high,
        "csat": good / n if n else math.nan,
        "csat_low": csat_low,
        "csat_high": csat_high,
        "small_sample": n < min_count,
    }


def rating_summary(ratings: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """The ratings at a glance.

    ``n`` ratings, ``feedback_only`` events, ``mean`` with its normal-approximation interval
    (``mean_low``, ``mean_high``, clipped to the 1-5 scale), ``csat`` (share of 4-5) with its
    Wilson interval (``csat_low``, ``csat_high``), and the shares ``good`` (4-5), ``ok`` (3) and
    ``bad`` (1-2).
    """
    values = _values(ratings)
    stats = _stats(values, MIN_COUNT, confidence)
    n = len(values)
    summary: dict[str, float] = {"n": n, "feedback_only": int(ratings["rating"].isna().sum())}
    summary.update({key: float(stats[key]) for key in _STATS[1:-1]})
    for name, mask in (("good", values >= GOOD), ("ok", values == 3), ("bad", values <= 2)):
        summary[name] = float(mask.sum()) / n if n else math.nan
    return pd.Series(summary, dtype="float64")


def ratings_by(
    ratings: pd.DataFrame, by: str | pd.Series, min_count: int = MIN_COUNT, confidence: float = 0.95
) -> pd.DataFrame:
    """Per group: ``n``, mean and CSAT with their intervals, and ``small_sample`` (``n < min_count``).

    ``by`` is a column of ``ratings`` (``"owner_id"``: the operator who owned the chat when it was
    rated) or a Series aligned with it. Feedback-only events are left out. Largest groups first.
    """
    keys = ratings[by] if isinstance(by, str) else by
    rated = ratings.assign(_key=keys.to_numpy())
    rated = rated[pd.to_numeric(rated["rating"], errors="coerce").notna() & rated["_key"].notna()]
    rows = {key: _stats(_values(group), min_count, confidence) for key, group in rated.groupby("_key", sort=True)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=_STATS)
    table.index.name = by if isinstance(by, str) else (by.name or "group")
    table["n"] = table["n"].astype("int64")
    table["small_sample"] = table["small_sample"].astype(bool)
    return table.sort_values("n", ascending=False, kind="stable")


def weekly_ratings(
    ratings: pd.DataFrame, tz: str = "UTC", min_count: int = MIN_COUNT, confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`ratings_by` per week of the rating (weeks start on Monday, in ``tz``), empty weeks included."""
    rated = ratings[ratings["event_time"].notna()]
    weeks = week_of(rated["event_time"], tz).rename("week")
    table = ratings_by(rated, weeks, min_count, confidence).sort_index()
    if weeks.empty:
        return table
    table = table.reindex(week_range(weeks.min(), weeks.max()))
    table["n"] = table["n"].fillna(0).astype("int64")
    table["small_sample"] = table["n"] < min_count
    return table


def with_conversations(ratings: pd.DataFrame, conversations: pd.DataFrame) -> pd.DataFrame:
    """The ratings with their conversation's ``department_id``, ``wait_ms``, ``first_response_ms``, ``duration_ms``."""
    columns = ["conversation_id", "department_id", "wait_ms", "first_response_ms", "duration_ms"]
    return ratings.merge(conversations[columns], on="conversation_id", how="left", validate="many_to_one")


def band_labels(edges_s: Sequence[float]) -> list[str]:
    """Labels of the bands between ``edges_s`` (seconds): ``"0-30 s"``, ..., ``"300 s+"`` for an infinite edge."""
    labels = []
    for low, high in pairwise(edges_s):
        labels.append(f"{low:g} s+" if math.isinf(high) else f"{low:g}-{high:g} s")
    return labels


def rating_by_band(
    rated: pd.DataFrame,
    column: str = "wait_ms",
    edges_s: Sequence[float] = (0, 30, 60, 120, 300, math.inf),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Ratings per band of a duration column (ms): ``n``, mean and CSAT with intervals, per band.

    Bands are ``[low, high)`` seconds (``edges_s``); ratings whose conversation has no value of
    ``column`` are left out. ``rated`` is :func:`with_conversations`. Every band is a row, empty or not.
    """
    seconds = pd.to_numeric(rated[column], errors="coerce") / 1000
    labels = band_labels(edges_s)
    bands = pd.cut(seconds, bins=list(edges_s), right=False, labels=labels)
    table = ratings_by(rated, bands.astype("object").rename(f"{column.removesuffix('_ms')}_band"), 0, confidence)
    table = table.reindex(labels)
    table["n"] = table["n"].fillna(0).astype("int64")
    return table.drop(columns="small_sample")


def rank_correlation(rated: pd.DataFrame, column: str = "wait_ms") -> float:
    """Spearman's rank correlation between the rating and ``column`` (pairs where both are known).

    Ties share their average rank; NaN with fewer than three pairs.
    """
    pairs = pd.DataFrame(
        {"rating": pd.to_numeric(rated["rating"], errors="coerce"), "x": pd.to_numeric(rated[column], errors="coerce")}
    ).dropna()
    if len(pairs) < 3:
        return math.nan
    return float(pairs["rating"].rank().corr(pairs["x"].rank()))


def feedback_only(ratings: pd.DataFrame) -> pd.DataFrame:
    """The feedback-only events (feedback without a rating), oldest first."""
    columns = ["event_time", "conversation_id", "owner_id", "owner_name", "feedback"]
    rows = ratings[ratings["rating"].isna()]
    return rows.sort_values(["event_time", "conversation_id"])[columns].reset_index(drop=True)


def lowest_rated_feedback(ratings: pd.DataFrame, max_rating: int = 2) -> pd.DataFrame:
    """The feedback texts of the lowest ratings: ratings ``<= max_rating`` that have feedback.

    Lowest rating first, then oldest first.
    """
    values = pd.to_numeric(ratings["rating"], errors="coerce")
    text = ratings["feedback"].fillna("").str.strip()
    rows = ratings[(values <= max_rating) & (text != "")].copy()
    rows["rating"] = rows["rating"].astype("int64")
    columns = ["rating", "feedback", "event_time", "conversation_id", "owner_id", "owner_name"]
    return rows.sort_values(["rating", "event_time", "conversation_id"])[columns].reset_index(drop=True)
