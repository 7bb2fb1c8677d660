"""The metrics of the analysis notebooks, as plain functions over the tables of :func:`siq_schemas.read_table`.

Each function takes DataFrames as ``read_table`` returns them and gives back a DataFrame, a Series or
a number; nothing here plots. The definitions follow the data dictionary (``docs/tables.md``)::

    import siq_schemas
    from siq_schemas import metrics

    conversations = siq_schemas.read_table("out/sample", "conversations")
    metrics.outcome_counts(conversations)   # completed / missed / open
    metrics.missed_rate(conversations)      # missed / (missed + completed)

Times are UTC; functions that count per day, week or hour take a ``tz`` to count in local time.
Durations are reported in seconds (``_s`` columns) and percentiles interpolate linearly.
"""

from __future__ import annotations

from ._common import (
    WEEKDAYS,
    data_end,
    data_start,
    department_names,
    mean_interval,
    operator_names,
    wilson_interval,
)
from ._conversations import (
    OUTCOMES,
    RESPONSE_TIMES,
    answered_within,
    bot_only,
    daily_outcomes,
    missed_rate,
    missed_rate_by_hour_of_week,
    open_conversations,
    outcome_counts,
    response_times,
    volume_by_hour_of_week,
)
from ._delivery import (
    REJECT_REASONS,
    attempts_distribution,
    daily_latency,
    daily_rejects,
    daily_signatures,
    delivery_counts,
    delivery_latency,
    key_usage,
    latency_summary,
    recovered_by_event,
    rejects_by_reason,
    retries_by_event,
)
from ._operators import (
    active_operators_by_day,
    current_memberships,
    department_headcount,
    folded_memberships,
    joins_and_leaves,
    leavers_vs_stayers,
    membership_spans,
    role_changes,
    survival_curve,
    tenure,
)
from ._ratings import (
    GOOD,
    MIN_COUNT,
    SCALE,
    feedback_only,
    lowest_rated_feedback,
    rank_correlation,
    rating_by_band,
    rating_counts,
    rating_summary,
    ratings_by,
    weekly_ratings,
    with_conversations,
)

__all__ = [
    "GOOD",
    "MIN_COUNT",
    "OUTCOMES",
    "REJECT_REASONS",
    "RESPONSE_TIMES",
    "SCALE",
    "WEEKDAYS",
    "active_operators_by_day",
    "answered_within",
    "attempts_distribution",
    "bot_only",
    "current_memberships",
    "daily_latency",
    "daily_outcomes",
    "daily_rejects",
    "daily_signatures",
    "data_end",
    "data_start",
    "delivery_counts",
    "delivery_latency",
    "department_headcount",
    "department_names",
    "feedback_only",
    "folded_memberships",
    "joins_and_leaves",
    "key_usage",
    "latency_summary",
    "leavers_vs_stayers",
    "lowest_rated_feedback",
    "mean_interval",
    "membership_spans",
    "missed_rate",
    "missed_rate_by_hour_of_week",
    "open_conversations",
    "operator_names",
    "outcome_counts",
    "rank_correlation",
    "rating_by_band",
    "rating_counts",
    "rating_summary",
    "ratings_by",
    "recovered_by_event",
    "rejects_by_reason",
    "response_times",
    "retries_by_event",
    "role_changes",
    "survival_curve",
    "tenure",
    "volume_by_hour_of_week",
    "weekly_ratings",
    "wilson_interval",
    "with_conversations",
]
