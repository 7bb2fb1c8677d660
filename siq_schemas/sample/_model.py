"""What the simulated portal is made of: operators, departments, visitors, chat plans, emitted events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Operator:
    """An operator of the portal, with the departments they belong to."""

    id: str
    first: str
    last: str
    role: str
    created: int
    owner: bool = False
    departments: list[str] = field(default_factory=list)
    deleted: int | None = None

    @property
    def email(self) -> str:
        return f"{self.first.lower()}.{self.last.lower()}@zylker.com".encode("ascii", "ignore").decode()

    def ref(self) -> dict[str, Any]:
        """The operator as a conversation's owner."""
        name = f"{self.first} {self.last}"
        return {"id": self.id, "name": name, "email_id": self.email, "email": self.email, "type": "operator"}


@dataclass
class Department:
    """A department of the portal and its operators."""

    id: str
    name: str
    description: str
    created: int
    created_by: str
    operators: list[str] = field(default_factory=list)
    deleted: int | None = None


@dataclass
class Visitor:
    """A visitor (lead or contact) and when they are free to chat again."""

    id: str
    type: str
    first: str
    last: str
    sender: str
    channel: str
    email: str = ""
    phone: str = ""
    busy_until: float = 0

    def ref(self) -> dict[str, Any]:
        """The visitor as conversation events carry it (observed shape)."""
        ref = {
            "id": self.id,
            "name": f"{self.first} {self.last}",
            "type": self.type,
            "channel": self.channel,
            "first_name": self.first,
            "last_name": self.last,
            "salutation": "",
        }
        if self.email:
            ref["email_id"] = self.email
        if self.phone:
            ref["phone"] = self.phone
        return ref


@dataclass
class Plan:
    """What one conversation will be, decided before its time and place are."""

    t0: int
    kind: str  # chat / missed / bot
    replies: int = 0
    bots: int = 0
    rated: bool = False
    incident: str | None = None
    same_time: bool = False
    retry_first: bool = False


@dataclass
class Event:
    """An emitted webhook payload and its simulated time (ms)."""

    payload: dict[str, Any]
    time: int
