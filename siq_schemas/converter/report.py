"""What a run did: the :class:`Report`, and the check that every record is accounted for."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import REASONS, AccountingError
from ..read import EMPTY_SHA256
from ..tables import DRIFT

if TYPE_CHECKING:
    from .stage import FileResult


@dataclass
class Report:
    """What a run did. ``records_read = events_written + duplicates + rejected`` always holds."""

    out: str
    files: int = 0
    files_unchanged: int = 0
    records_read: int = 0
    events_written: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank_lines: int = 0
    pending: int = 0  # unterminated last lines left for the next run (one per file at most)
    rebuilt: str = ""  # why the output was rebuilt from the sources ("" when it was not)
    gone: list[str] = field(default_factory=list)  # known inputs that no longer exist, left out of a rebuild
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    drift: int = 0  # findings in the output's _drift.json
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.records_read == self.events_written + self.duplicates + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rate = self.records_read / self.seconds if self.seconds else 0.0
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in self.rejected_by_reason.items() if count)
        lines = [f"{self.rebuilt}: rebuilt from the sources"] if self.rebuilt else []
        lines += [
            f"{self.files:,} files ({self.files_unchanged:,} unchanged, skipped), {self.records_read:,} records "
            f"in {self.seconds:.1f} s ({rate:,.0f} records/s)",
            f"  events written  {self.events_written:>10,}",
            f"  duplicates      {self.duplicates:>10,}",
            f"  rejected        {self.rejected:>10,}" + (f"  ({reasons})" if reasons else ""),
            f"  blank lines     {self.blank_lines:>10,}",
            *[f"  {self.pending:,} unterminated line{'s' * (self.pending != 1)} left for the next run"][: self.pending],
            f"  records_read = events_written + duplicates + rejected: {self.records_read:,} = "
            f"{self.events_written:,} + {self.duplicates:,} + {self.rejected:,}"
            + (" ok" if self.balanced else " FAILED"),
            f"tables in {self.out}:",
            *(f"  {name:<20}{rows:>10,}" for name, rows in self.tables.items()),
        ]
        if self.drift:
            lines.append(
                f"drift: {self.drift:,} findings the schemas do not describe, listed in "
                f"{self.out.rstrip('/')}/{DRIFT} (`siq drift SOURCE...` prints them)"
            )
        return "\n".join(lines)


def account(report: Report, before: dict[str, int]) -> None:
    """Check the run's counts against each other; raise :class:`AccountingError` when rows went missing.

    Records read and rejected are the workers' counts, events written the rows
    the events table gained, duplicates the merge's count, and the reject rows
    added what the rejects table gained: each counted apart, so a staged row
    that is lost on the way shows.
    """
    report.events_written = report.tables["events"] - before.get("events", 0)
    added = report.tables["rejects"] - before.get("rejects", 0)
    if not report.balanced or added != report.rejected:
        raise AccountingError(f"rows went missing ({added:,} reject rows added): {report.to_dict()}")


def tally(results: list[FileResult], inputs: dict[str, dict[str, Any]], report: Report) -> None:
    totals: Counter[str] = Counter()
    for result in results:
        totals.update(result.counts)
        tail, entry = result.tail, inputs[result.input]
        entry.update(offset=tail.offset, lines=tail.lines, prefix_sha256=tail.sha256, pending=tail.pending)
        entry.pop("broken", None)
        if tail.broken:  # any change to it rebuilds: its rest was one reject
            entry["broken"] = True
        if result.unopened:  # nothing of it was read: next run reads it whatever it holds
            entry.update(size=0, sha256=None, offset=0, lines=0, prefix_sha256=EMPTY_SHA256, pending=0)
    report.blank_lines = totals["blank"]
    report.rejected_by_reason = {reason: totals[reason] for reason in REASONS}
    report.rejected = sum(report.rejected_by_reason.values())
    report.records_read = totals["accepted"] + report.rejected
    report.pending = count_pending(inputs)


def count_pending(inputs: dict[str, dict[str, Any]]) -> int:
    """How many inputs end in a line left for the next run."""
    return sum(1 for entry in inputs.values() if entry.get("pending"))
