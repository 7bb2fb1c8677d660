"""The simulated portal's state: its people and departments, who belongs where and when, and every event it emits.

The portal changes through :mod:`._admin` (departments and operators over the period) and
:mod:`._traffic` (visitors and their chats); both draw on one random generator, in one order.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

from ._constants import APP_ID, ORG_ID, WEBHOOK_ADMIN, WEBHOOK_DATA
from ._model import Department, Event, Operator, Visitor


class Portal:
    """Simulates the portal and keeps every event it emits, in emission order."""

    def __init__(self, rng: random.Random, events: int) -> None:
        self.rng = rng
        self.target = events
        self.events: list[Event] = []
        self.operators: dict[str, Operator] = {}
        self.departments: dict[str, Department] = {}
        self.members: dict[tuple[str, str], list[list[float]]] = {}  # (operator, department) -> spans
        self.visitors: list[Visitor] = []
        self.counters: Counter[str] = Counter()
        self.reference = 0
        self.retry: Event | None = None  # an event whose retry crosses midnight
        self.seen: set[str] = set()

    def quirk(self, name: str, p: float) -> bool:
        """True with probability ``p``, and surely the first time: every quirk shows at least once."""
        if name not in self.seen:
            self.seen.add(name)
            return True
        return self.chance(p)

    # ids and small helpers

    def new_id(self, kind: str) -> str:
        base = {
            "department": 40526000000003000,
            "operator": 40526000000002000,
            "visitor": 40526000002000000,
            "contact": 40526000004000000,
            "conversation": 40526000001800000,
        }[kind]
        self.counters[kind] += self.rng.randint(1, 40)
        return str(base + self.counters[kind])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def emit(
        self,
        event: str,
        entity_id: str,
        t: int,
        entity: dict[str, Any] | None = None,
        modified: list[str] | None = None,
    ) -> Event:
        kind = event.split(".")[0]
        data = kind in ("conversation", "visitor")
        payload: dict[str, Any] = {
            "entity_type": kind,
            "org_id": ORG_ID,
            "event": event,
            "entity_id": entity_id,
            "attempt": 1,
            "version": "1" if self.chance(0.03) else 1,
        }
        if data:
            payload["app_id"] = APP_ID
        payload["handler"] = "execution"
        payload["webhook"] = {"id": WEBHOOK_DATA if data else WEBHOOK_ADMIN}
        if entity is not None:
            payload["entity"] = entity
        if modified:
            payload["modified_fields"] = modified
        payload["event_time"] = t if self.chance(0.03) else str(t)
        record = Event(payload, t)
        self.events.append(record)
        return record

    # membership: which operators are in which department, and when

    def join(self, operator: Operator, department: Department, t: int) -> None:
        operator.departments.append(department.id)
        department.operators.append(operator.id)
        self.members.setdefault((operator.id, department.id), []).append([t, math.inf])

    def leave(self, operator: Operator, department: Department, t: int) -> None:
        operator.departments.remove(department.id)
        department.operators.remove(operator.id)
        self.members[(operator.id, department.id)][-1][1] = t

    def members_of(self, dep: Department, start: int, end: int) -> list[Operator]:
        """Operators in ``dep`` during all of ``[start, end]``."""
        found = []
        for op_id in self.operators:
            spans = self.members.get((op_id, dep.id), [])
            if any(a <= start and end <= b for a, b in spans):
                found.append(self.operators[op_id])
        return found
