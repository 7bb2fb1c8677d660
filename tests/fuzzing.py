"""Property tests that double as a fuzzer.

A test made with :func:`fuzz` runs a few examples in ``make test``. With
``SIQ_FUZZ_SECONDS`` set (``make fuzz FUZZ_SECONDS=600``) it runs round after
round of fresh random examples until its share of that time is spent, and
:data:`RESULTS` says how many examples each target ran (``tests/conftest.py``
prints them at the end of the session). Failing examples are kept in
Hypothesis's database (``.hypothesis/``) and replayed first on the next run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: The time budget of a fuzzing session, shared by its targets; 0 in ``make test``.
SECONDS = float(os.environ.get("SIQ_FUZZ_SECONDS", "0") or 0)
#: Examples per round in a fuzzing session.
ROUND = 20
#: (target, examples, seconds) of each target run in this session.
RESULTS: list[tuple[str, int, float]] = []
TARGETS: list[str] = []


def fuzz(examples: int, strategy: st.SearchStrategy[Any]) -> Callable[[Callable[[Any], None]], Callable[[], None]]:
    """Make ``body(value)`` a test over values of ``strategy``: ``examples`` of them, or fuzz for a while."""

    def decorate(body: Callable[[Any], None]) -> Callable[[], None]:
        count = 0

        def counted(value: Any) -> None:
            nonlocal count
            count += 1
            body(value)

        def run(examples: int) -> None:
            options = {"deadline": None, "suppress_health_check": list(HealthCheck), "print_blob": True}
            settings(max_examples=examples, **options)(given(strategy)(counted))()

        TARGETS.append(body.__name__)

        @pytest.mark.fuzz
        def test() -> None:
            if not SECONDS:
                run(examples)
                return
            started = time.monotonic()
            while time.monotonic() - started < SECONDS / len(TARGETS):
                run(ROUND)
            RESULTS.append((body.__name__, count, time.monotonic() - started))

        test.__name__ = test.__qualname__ = body.__name__
        test.__doc__ = body.__doc__
        return test

    return decorate


def report() -> list[str]:
    """One line per target fuzzed in this session."""
    return [
        f"fuzz {name}: {examples:,} examples in {seconds:.0f} s ({examples / seconds:.1f}/s), no failure"
        for name, examples, seconds in RESULTS
    ]
