"""Delivery health: retries, duplicates, recovered events, delivery latency, rejects over time, signatures by key.

They take the ``events`` table (one row per unique event, with ``attempts``, ``deliveries``,
``received_at``, ``signature`` and ``key_id``) and the ``rejects`` table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..exceptions import REASONS
from ._common import day_of, day_range, percentile_label

#: The reject reasons, in the order of the contract.
REJECT_REASONS: tuple[str, ...] = tuple(REASONS)


def delivery_counts(events: pd.DataFrame) -> pd.Series:
    """``events``, ``deliveries`` (accepted records: ``sum(deliveries)``), ``duplicates`` (their difference),
    ``retried`` (events with ``attempts > 1``) and ``retried_share``."""
    n = len(events)
    deliveries = int(events["deliveries"].sum())
    retried = int((events["attempts"] > 1).sum())
    return pd.Series(
        {
            "events": n,
            "deliveries": deliveries,
            "duplicates": deliveries - n,
            "retried": retried,
            "retried_share": retried / n if n else math.nan,
        },
        dtype="float64",
    )


def attempts_distribution(events: pd.DataFrame) -> pd.Series:
    """Events by the highest delivery ``attempt`` seen (1 = delivered first time), every value 1..max present."""
    attempts = events["attempts"].dropna().astype("int64")
    top = int(attempts.max()) if len(attempts) else 1
    counts = attempts.value_counts().reindex(range(1, top + 1), fill_value=0).astype("int64")
    counts.index.name = "attempts"
    return counts.rename("events")


def retries_by_event(events: pd.DataFrame) -> pd.DataFrame:
    """Per event type: ``events``, ``retried`` (``attempts > 1``), ``retried_share``, ``max_attempts``.

    Most retried share first, then by event name.
    """
    grouped = events.assign(_retried=events["attempts"] > 1).groupby("event")
    table = pd.DataFrame(
        {
            "events": grouped.size(),
            "retried": grouped["_retried"].sum().astype("int64"),
            "max_attempts": grouped["attempts"].max().astype("int64"),
        }
    )
    table["retried_share"] = table["retried"] / table["events"]
    table = table[["events", "retried", "retried_share", "max_attempts"]]
    return table.reset_index().sort_values(["retried_share", "event"], ascending=[False, True]).set_index("event")


def recovered_by_event(events: pd.DataFrame) -> pd.DataFrame:
    """Per event type with recovered events (rebuilt from failed executions, ``events.recovered``):
    ``events``, ``recovered``, ``recovered_share``, ``max_retries`` (``number_of_retries``) and
    ``statuses`` (the receiver's answers, e.g. ``"400, 503"``). Most recovered first, then by event name."""
    recovered = events[events["recovered"].fillna(False).astype(bool)]
    grouped = recovered.groupby("event")
    table = pd.DataFrame(
        {
            "events": events.groupby("event").size().reindex(grouped.size().index),
            "recovered": grouped.size(),
            "max_retries": grouped["number_of_retries"].max(),
            "statuses": grouped["remote_server_status"].agg(
                lambda codes: ", ".join(str(int(code)) for code in sorted(set(codes.dropna())))
            ),
        }
    )
    table["recovered_share"] = table["recovered"] / table["events"]
    table = table[["events", "recovered", "recovered_share", "max_retries", "statuses"]]
    table.index.name = "event"
    return table.reset_index().sort_values(["recovered", "event"], ascending=[False, True]).set_index("event")


def delivery_latency(events: pd.DataFrame) -> pd.Series:
    """Seconds from ``event_time`` to the first delivery's ``received_at``, for events that have both.

    Events only known from bare payloads (no ``received_at``) have no latency.
    """
    known = events[events["received_at"].notna() & events["event_time"].notna()]
    latency = (known["received_at"] - known["event_time"]).dt.total_seconds()
    return latency.rename("latency_s")


def latency_summary(events: pd.DataFrame, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> pd.Series:
    """``n`` events with a latency, ``no_delivery`` (no ``received_at``), latency percentiles and ``max_s``."""
    latency = delivery_latency(events)
    summary: dict[str, float] = {"n": len(latency), "no_delivery": int(events["received_at"].isna().sum())}
    for q in quantiles:
        summary[f"{percentile_label(q)}_s"] = float(latency.quantile(q)) if len(latency) else math.nan
    summary["max_s"] = float(latency.max()) if len(latency) else math.nan
    return pd.Series(summary, dtype="float64")


def daily_latency(events: pd.DataFrame, tz: str = "UTC", quantiles: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Latency percentiles per day of ``event_time`` (in ``tz``), with ``n``; days without deliveries NaN."""
    known = events[events["received_at"].notna() & events["event_time"].notna()]
    latency = delivery_latency(known)
    days = day_of(known["event_time"], tz)
    columns = ["n", *[f"{percentile_label(q)}_s" for q in quantiles]]
    if latency.empty:
        return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], name="day"))
    grouped = latency.groupby(days.to_numpy())
    table = pd.DataFrame({"n": grouped.size()})
    for q in quantiles:
        table[f"{percentile_label(q)}_s"] = grouped.quantile(q)
    table = table.reindex(day_range(days.min(), days.max()))
    table["n"] = table["n"].fillna(0).astype("int64")
    return table[columns]


def rejects_by_reason(rejects: pd.DataFrame) -> pd.Series:
    """Rejected records by reason, every reason of the contract present (0 if none)."""
    counts = rejects["reason"].value_counts()
    others = [reason for reason in counts.index if reason not in REJECT_REASONS]
    counts = counts.reindex([*REJECT_REASONS, *sorted(others)], fill_value=0).astype("int64")
    counts.index.name = "reason"
    return counts.rename("rejects")


def daily_rejects(
    rejects: pd.DataFrame, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, tz: str = "UTC"
) -> pd.DataFrame:
    """Rejects per day of ``received_at`` (in ``tz``) and reason (a column per reason).

    Days from ``start`` to ``end`` (default: the first and last reject). Rejects whose time could not
    be read (an unreadable line) are in no day; :func:`rejects_by_reason` counts them.
    """
    timed = rejects[rejects["received_at"].notna()]
    days = day_of(timed["received_at"], tz)
    first = day_of(pd.Series([pd.Timestamp(start)]), tz).iloc[0] if start is not None else days.min()
    last = day_of(pd.Series([pd.Timestamp(end)]), tz).iloc[0] if end is not None else days.max()
    reasons = list(rejects_by_reason(rejects).index)
    if pd.isna(first) or pd.isna(last):
        return pd.DataFrame(columns=reasons, index=pd.DatetimeIndex([], name="day"), dtype="int64")
    table = pd.crosstab(days.to_numpy(), timed["reason"].to_numpy()) if len(timed) else pd.DataFrame()
    table = table.reindex(index=day_range(first, last), columns=reasons, fill_value=0).fillna(0).astype("int64")
    table.columns.name = "reason"
    return table


def signature_label(signature: str | None, key_id: str | None) -> str:
    """``"valid <key_id>"`` for a verified event, else the status (``unsigned``, ``unverified``)."""
    if signature == "valid":
        return f"valid {key_id}" if isinstance(key_id, str) and key_id else "valid"
    return str(signature)


def daily_signatures(events: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Events per day and signature status, verified ones split by the key that verified them.

    The day is that of the first delivery (``received_at``), or of ``event_time`` for events only known
    from bare payloads. Columns: ``valid <key_id>`` per key (ordered by first use), then
    ``unsigned`` and ``unverified`` when present. A key rotation shows as one key's column giving way
    to another's.
    """
    when = events["received_at"].fillna(events["event_time"])
    known = events[when.notna()]
    if known.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="day"))
    labels = pd.Series(
        [signature_label(s, k) for s, k in zip(known["signature"], known["key_id"], strict=True)], index=known.index
    )
    days = day_of(when[known.index], tz)
    table = pd.crosstab(days.to_numpy(), labels.to_numpy())
    first_use = days.groupby(labels.to_numpy()).min()
    order = sorted(table.columns, key=lambda label: (not label.startswith("valid"), first_use[label], label))
    table = table.reindex(index=day_range(days.min(), days.max()), columns=order, fill_value=0).astype("int64")
    table.index.name, table.columns.name = "day", "signature"
    return table


def key_usage(events: pd.DataFrame) -> pd.DataFrame:
    """Per key that verified events: ``events``, ``first_seen`` and ``last_seen`` (``received_at``), by first use."""
    verified = events[events["key_id"].notna()]
    grouped = verified.groupby("key_id")
    table = pd.DataFrame(
        {
            "events": grouped.size().astype("int64"),
            "first_seen": grouped["received_at"].min(),
            "last_seen": grouped["received_at"].max(),
        }
    )
    return table.sort_values(["first_seen", "events"])
