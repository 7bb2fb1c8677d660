"""Helpers shared by the metrics: calendars in a time zone, percentiles, confidence intervals, names."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import pandas as pd

#: Day names of ``Timestamp.weekday()`` 0..6, the rows of the hour-of-week tables.
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile of ``confidence`` (1.96 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its normal-approximation interval ``mean ± z·s/√n``.

    ``s`` is the sample standard deviation (``ddof=1``). The bounds are NaN below two values, and
    the interval is only approximate for small samples (the tables flag them).
    """
    series = pd.Series(list(values), dtype="float64").dropna()
    n = len(series)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(series.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = z_value(confidence) * float(series.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``successes / n`` (NaN when ``n`` is 0).

    Unlike ``p ± z·√(p(1-p)/n)`` it stays within [0, 1] and is usable for small samples.
    """
    if n == 0:
        return math.nan, math.nan
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_label(q: float) -> str:
    """``0.5`` -> ``"p50"``, ``0.99`` -> ``"p99"``."""
    return f"p{round(q * 100):d}"


def percentiles(values_ms: pd.Series, quantiles: Sequence[float] = (0.5, 0.9)) -> dict[str, float]:
    """``n``, the percentiles and the mean of a duration column given in ms, in seconds (``p50_s`` ...).

    Percentiles interpolate linearly between order statistics (pandas' default). Nulls are left out.
    """
    seconds = pd.to_numeric(values_ms, errors="coerce").dropna().astype("float64") / 1000
    row: dict[str, float] = {"n": len(seconds)}
    for q in quantiles:
        row[f"{percentile_label(q)}_s"] = float(seconds.quantile(q)) if len(seconds) else math.nan
    row["mean_s"] = float(seconds.mean()) if len(seconds) else math.nan
    return row


def local(times: pd.Series, tz: str = "UTC") -> pd.Series:
    """Times (tz-aware, UTC) as wall-clock times of ``tz``, without a time zone."""
    return pd.to_datetime(times, utc=True).dt.tz_convert(tz).dt.tz_localize(None)


def day_of(times: pd.Series, tz: str = "UTC") -> pd.Series:
    """The calendar day (midnight, no time zone) of each time in ``tz``."""
    return local(times, tz).dt.normalize()


def week_of(times: pd.Series, tz: str = "UTC") -> pd.Series:
    """The Monday starting the week (midnight, no time zone) of each time in ``tz``."""
    days = day_of(times, tz)
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D")


def day_range(first: pd.Timestamp, last: pd.Timestamp, name: str = "day") -> pd.DatetimeIndex:
    """Every calendar day from ``first`` to ``last`` (both days included)."""
    return pd.date_range(pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize(), freq="D", name=name)


def week_range(first: pd.Timestamp, last: pd.Timestamp, name: str = "week") -> pd.DatetimeIndex:
    """Every Monday starting a week from the week of ``first`` to the week of ``last``."""
    start = pd.Timestamp(first).normalize()
    start -= pd.Timedelta(days=start.weekday())
    return pd.date_range(start, pd.Timestamp(last).normalize(), freq="7D", name=name)


def data_end(*tables: pd.DataFrame, column: str = "event_time") -> pd.Timestamp:
    """The latest ``event_time`` in the given tables: "the end of the data" (NaT when they are empty)."""
    latest = [table[column].max() for table in tables if column in table and table[column].notna().any()]
    return max(latest) if latest else pd.NaT


def data_start(*tables: pd.DataFrame, column: str = "event_time") -> pd.Timestamp:
    """The earliest ``event_time`` in the given tables (NaT when they are empty)."""
    earliest = [table[column].min() for table in tables if column in table and table[column].notna().any()]
    return min(earliest) if earliest else pd.NaT


def operator_names(operators: pd.DataFrame) -> pd.Series:
    """``operator_id`` -> display name (name, else email, else the id), from the ``operators`` table."""
    names = operators["name"].where(operators["name"].notna() & (operators["name"] != ""), operators["email"])
    names = names.where(names.notna(), operators["operator_id"])
    return pd.Series(names.to_numpy(), index=operators["operator_id"].to_numpy(), name="operator")


def department_names(departments: pd.DataFrame) -> pd.Series:
    """``department_id`` -> name (else the id), from the ``departments`` table."""
    names = departments["name"].where(departments["name"].notna(), departments["department_id"])
    return pd.Series(names.to_numpy(), index=departments["department_id"].to_numpy(), name="department")
