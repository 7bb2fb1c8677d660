"""The simulated portal: its administration over the period, the chats it plans, and every event it emits."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ._chats import Chat
from ._constants import (
    APP_ID,
    DAY,
    DAYS,
    DEPARTMENTS,
    END_MS,
    FIRST,
    HOUR,
    INCIDENTS,
    LAST,
    MINUTE,
    ORG_ID,
    START,
    START_MS,
    WEBHOOK_ADMIN,
    WEBHOOK_DATA,
    WINDOW,
)
from ._model import Department, Event, Operator, Plan, Visitor

_Update = tuple[int, dict[str, Any], list[str], Callable[[], None]]
"""A visitor.updated to come: its time, entity, modified fields, and the change to make to the visitor."""


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

    # administration: departments and operators

    def join(self, operator: Operator, department: Department, t: int) -> None:
        operator.departments.append(department.id)
        department.operators.append(operator.id)
        self.members.setdefault((operator.id, department.id), []).append([t, math.inf])

    def leave(self, operator: Operator, department: Department, t: int) -> None:
        operator.departments.remove(department.id)
        department.operators.remove(operator.id)
        self.members[(operator.id, department.id)][-1][1] = t

    def operator_entity(self, op: Operator, t: int) -> dict[str, Any]:
        text = self.quirk("string-booleans", 0.12)  # now and then booleans arrive as "true"/"false"

        def b(value: bool) -> bool | str:
            return ("true" if value else "false") if text else value

        return {
            "email_id": op.email,
            "access_levels": ["chat", "tracking"],
            "role": op.role,
            "signature": f"{int(op.id) * 2654435761 % 2**128:032x}",
            "date_of_birth": "",
            "description": "",
            "language": "en",
            "chat_enabled": b(True),
            "type": "Salesiq User",
            "locale": "en",
            "confirmed": b(True),
            "enabled": b(True),
            "notify": {"return_visit": b(False), "new_visit": b(False)},
            "modified_time": str(t - self.rng.randint(5, 40)),
            "id": op.id,
            "departments": list(op.departments),
            "first_name": op.first,
            "owner": b(op.owner),
            "created_time": str(op.created),
            "time_format": "12 hours",
            "maximum_concurrent_chat": "none",
            "image_url": "",
            "mobile": "",
            "last_name": op.last,
            "time_zone": "Europe/London",
            "zuid": str(int(op.id) - 40526000000000000 + 6001),
            "locale_country": "gb",
            "deleted": b(False),
            "phone": "",
            "nick_name": op.first,
            "address": {"country": "", "pincode": "", "city": "", "street": "", "state": ""},
            "social_media": {"twitter": {"profile_url": ""}, "linkedin": {"profile_url": ""}, "enabled": b(False)},
            "status": "Available",
        }

    def department_entity(self, dep: Department, t: int) -> dict[str, Any]:
        mail = f"{dep.name.lower()}@zylker.com"
        return {
            "is_enabled": "true",
            "created_time": str(dep.created),
            "modified_time": str(t - self.rng.randint(5, 40)),
            "operators": list(dep.operators),
            "is_system_generated": "false",
            "name": dep.name,
            "is_public": "true",
            "email_configurations": {
                "missedchat_recipients": "",
                "cc_recipients": "",
                "is_blockip_mail_enabled": "true",
                "from_email": mail,
                "transcript_recipients": mail,
                "is_feedback_mail_enabled": "true",
                "blockip_recipients": "",
                "feedback_recipients": "",
                "is_missedchat_mail_enabled": "true",
                "is_cc_mail_enabled": "false",
                "is_transcript_mail_enabled": "true",
            },
            "description": dep.description,
            "id": dep.id,
            "display_name": f"Zylker {dep.name}",
            "created_by": dep.created_by,
        }

    def create_operator(self, t: int, role: str, departments: list[Department], owner: bool = False) -> None:
        taken = {(op.first, op.last) for op in self.operators.values()}
        first, last = self.rng.choice([(f, la) for f, la in zip(FIRST, LAST, strict=True) if (f, la) not in taken])
        op = Operator(self.new_id("operator"), first, last, role, t - self.rng.randint(20, 400), owner)
        self.operators[op.id] = op
        for dep in departments:
            self.join(op, dep, t)
        self.emit("operator.created", op.id, t, self.operator_entity(op, t))

    def create_department(self, t: int, index: int, creator: Operator) -> Department:
        name, description = DEPARTMENTS[index]
        dep = Department(self.new_id("department"), name, description, t - self.rng.randint(20, 400), creator.id)
        self.departments[dep.id] = dep
        self.join(creator, dep, t)
        self.emit("department.created", dep.id, t, self.department_entity(dep, t))
        t += self.rng.randint(2_000, 20_000)  # the creator is a member: the operator side follows
        self.emit(
            "operator.departments.associated",
            creator.id,
            t,
            self.operator_entity(creator, t),
            ["departments"],
        )
        return dep

    def dissociate(self, op: Operator, dep: Department, t: int, spelling: str | None = None) -> None:
        self.leave(op, dep, t)
        if spelling is None:
            spelling = "disassociated" if self.chance(0.25) else "dissociated"
        self.emit(f"operator.departments.{spelling}", op.id, t, self.operator_entity(op, t), ["departments"])

    def active_operators(self, admin: bool = False) -> list[Operator]:
        return [op for op in self.operators.values() if op.deleted is None and (admin or not op.owner)]

    def live_departments(self) -> list[Department]:
        return [dep for dep in self.departments.values() if dep.deleted is None]

    def administration(self) -> int:
        """Set up the portal and change it over the period; return when chats may begin."""
        rng = self.rng
        n_operators = min(20, 6 + self.target // 500)
        t = START_MS + 7 * HOUR + rng.randint(0, 20 * MINUTE)
        step = lambda: rng.randint(20_000, 120_000)  # noqa: E731
        self.create_operator(t, "Administrator", [], owner=True)
        admin = next(iter(self.operators.values()))
        initial = [self.create_department(t := t + step(), index, admin) for index in range(4)]
        staff = max(4, round(0.6 * (n_operators - 1)))  # at least one per department
        for number in range(staff):
            departments = [initial[number % 4]]
            if self.chance(0.4):
                departments.append(rng.choice([dep for dep in initial if dep is not departments[0]]))
            self.create_operator(t := t + step(), "Supervisor" if number == 1 else "Associate", departments)
        chats_from = t + 10 * MINUTE

        def business(first: int, last: int) -> int:
            day = rng.randint(first, last)
            return START_MS + day * DAY + rng.randint(8 * HOUR, 18 * HOUR)

        actions = [(business(1, 20), "join") for _ in range(n_operators - 1 - staff)]
        actions += [(business(5, 7), "onboarding")]
        actions += [(business(1, 23), "move") for _ in range(n_operators + 4)]
        actions += [(business(2, 22), role) for role in ("promote", "demote", "administrator")]
        actions += [(business(10, 22), "delete") for _ in range(2)]
        actions += [(business(3, 23), "department") for _ in range(4)]
        actions += [(business(24, 25), "teardown")]
        for t, action in sorted(actions):
            t += rng.randint(0, 999)
            self.admin_action(t, action, admin, initial[3])
        return chats_from

    def admin_action(self, t: int, action: str, admin: Operator, partners: Department) -> None:
        rng = self.rng
        live = self.live_departments()
        ops = self.active_operators()
        if action == "join":
            self.create_operator(t, "Associate", rng.sample(live, rng.choice((1, 1, 2))))
        elif action == "onboarding":
            self.create_department(t, 4, admin)
        elif action == "move" and ops:
            op = rng.choice(ops)
            outside = [dep for dep in live if dep.id not in op.departments and dep is not partners]
            inside = [self.departments[dep] for dep in op.departments if dep != partners.id]  # it winds down
            choice = rng.random()
            if outside and (choice < 0.4 or len(inside) < 2):
                self.join(op, rng.choice(outside), t)
                self.emit("operator.departments.associated", op.id, t, self.operator_entity(op, t), ["departments"])
            elif choice < 0.75 and len(inside) >= 2 - (partners.id in op.departments):
                self.dissociate(op, rng.choice(inside), t)
            elif outside and inside:
                self.leave(op, rng.choice(inside), t)
                self.join(op, rng.choice(outside), t)
                self.emit("operator.updated", op.id, t, self.operator_entity(op, t), ["departments"])
        elif action in ("promote", "demote", "administrator"):
            wanted = {"promote": "Associate", "demote": "Supervisor", "administrator": "Associate"}[action]
            candidates = [op for op in ops if op.role == wanted]
            if candidates:
                op = rng.choice(candidates)
                op.role = {"promote": "Supervisor", "demote": "Associate", "administrator": "Administrator"}[action]
                self.emit("operator.updated", op.id, t, self.operator_entity(op, t), ["role"])
        elif action == "delete" and len(ops) > 3:
            op = rng.choice([op for op in ops if partners.id not in op.departments] or ops)
            for dep_id in list(op.departments):
                self.leave(op, self.departments[dep_id], t)
            op.deleted = t
            self.emit("operator.deleted", op.id, t)
        elif action == "department":
            dep = rng.choice(live)
            modified = "operators"
            if self.chance(0.5):
                dep.description += "." if not dep.description.endswith(".") else " (weekdays 8-18 UTC)."
                modified = "description"
            self.emit("department.updated", dep.id, t, self.department_entity(dep, t), [modified])
        elif action == "teardown":
            for number, op_id in enumerate(list(partners.operators)):  # both spellings, surely
                t += rng.randint(5_000, 60_000)
                spelling = ("disassociated", "dissociated")[number] if number < 2 else None
                self.dissociate(self.operators[op_id], partners, t, spelling)
            t += rng.randint(5_000, 60_000)
            self.emit("department.updated", partners.id, t, self.department_entity(partners, t), ["operators"])
            partners.deleted = t + rng.randint(5_000, 60_000)
            self.emit("department.deleted", partners.id, partners.deleted)

    # conversations

    def plans(self, chats_from: int) -> list[Plan]:
        """Enough conversation plans for the target number of events, with their opening times."""
        rng = self.rng
        budget: float = self.target - len(self.events) - 35  # the quirks forced below add about 35 events
        plans: list[Plan] = []
        while budget > 0:
            r = rng.random()
            if r < 0.04:
                plan = Plan(0, "bot", bots=rng.randint(2, 4), rated=self.chance(0.35))  # rated = completed here
                budget -= 2 + plan.bots
            elif r < 0.17:
                plan = Plan(0, "missed", bots=int(self.chance(0.15)))
                budget -= 2 + plan.bots
            else:
                plan = Plan(0, "chat", replies=rng.randint(2, 9), bots=int(self.chance(0.15)), rated=self.chance(0.35))
                plan.incident = rng.choice(INCIDENTS) if self.chance(0.02) else None
                budget -= 3.3 + plan.replies + plan.bots + plan.rated
            plans.append(plan)
        # quirks that must happen, whatever the dice said: a bot-only chat, a missed one, every incident,
        # a rating and a feedback, a retry across midnight, two messages in one millisecond, open chats
        plans += [
            Plan(0, kind, bots=2, rated=True) for kind in ("bot", "missed") if kind not in {p.kind for p in plans}
        ]
        chats = [plan for plan in plans if plan.kind == "chat"]
        while len(chats) < len(INCIDENTS) + 2:
            chats.append(Plan(0, "chat", replies=rng.randint(4, 9)))
            plans.append(chats[-1])
        picked = rng.sample(chats, len(INCIDENTS) + 2)
        for incident, plan in zip(INCIDENTS, picked, strict=False):
            plan.incident, plan.replies = incident, max(plan.replies, 4)
            plan.rated = plan.rated or incident in ("edit", "delete", "metrics")
        midnight, same = picked[-2:]
        midnight.retry_first = True
        same.same_time, same.replies = True, max(same.replies, 4)
        hours = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 10, 9, 8, 6, 5, 4, 3, 2, 1]
        days = [0.4 if (START + timedelta(days=day)).weekday() >= 5 else 1.0 for day in range(DAYS)]
        for plan in plans:
            while plan.t0 < chats_from or plan.t0 > END_MS - HOUR:
                day = rng.choices(range(DAYS), days)[0]
                plan.t0 = START_MS + day * DAY + rng.choices(range(24), hours)[0] * HOUR + rng.randrange(HOUR)
        midnight.t0 = START_MS + 9 * DAY - 40_000 - rng.randint(0, 5_000)
        plans.append(Plan(END_MS - 10 * MINUTE, "chat", replies=200))  # attended, still open at the end
        plans.append(Plan(END_MS - 60_000, "missed", bots=2))  # the bot greeted; nobody came yet
        plans.append(Plan(END_MS - 30_000, "missed"))  # still waiting at the end
        plans.sort(key=lambda plan: plan.t0)
        return plans

    def members_of(self, dep: Department, start: int, end: int) -> list[Operator]:
        """Operators in ``dep`` during all of ``[start, end]``."""
        found = []
        for op_id in self.operators:
            spans = self.members.get((op_id, dep.id), [])
            if any(a <= start and end <= b for a, b in spans):
                found.append(self.operators[op_id])
        return found

    def visitor_for(self, t0: int, contact: bool = False) -> Visitor:
        """A returning visitor (one not chatting at ``t0``) or a new lead or contact."""
        rng = self.rng
        returning = [v for v in self.visitors if v.busy_until < t0]
        if returning and self.chance(0.2) and not contact:
            return rng.choice(returning)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sender = "$" + str(rng.randrange(10**18, 10**19))
        channel = rng.choices(["website", "website", "website", "whatsapp", "facebook"])[0]
        if self.chance(0.75) and not contact:
            visitor = Visitor(self.new_id("visitor"), "lead", first, last, sender, channel)
        else:
            visitor = Visitor(
                self.new_id("contact"), "contact", first, last, sender, channel, self.email(first, last), self.phone()
            )
        self.visitors.append(visitor)
        return visitor

    def email(self, first: str, last: str) -> str:
        local = f"{first[0]}{last}".lower().encode("ascii", "ignore").decode()
        return f"{local}{self.rng.randint(1, 99)}@{self.rng.choice(['example.com', 'mail.example.org'])}"

    def phone(self) -> str:
        return f"+44 7{self.rng.randint(100, 999)} {self.rng.randint(100000, 999999)}"

    def conversation(self, plan: Plan) -> None:
        """Simulate one conversation from its plan and emit its events (cut at the end of the period)."""
        t0, need = plan.t0, 2 if plan.incident in ("transfer-accepted", "participants") else 1
        live = [
            dep
            for dep in self.departments.values()
            if dep.created < t0 and (dep.deleted is None or dep.deleted > t0 + WINDOW)
        ]
        staffed = {dep.id: self.members_of(dep, t0, t0 + WINDOW) for dep in live}
        options = [dep for dep in live if len(staffed[dep.id]) >= need] or [dep for dep in live if staffed[dep.id]]
        kind = "missed" if plan.kind == "chat" and not options else plan.kind
        dep = self.rng.choice(options if kind == "chat" else live)
        contact = kind == "chat" and "contact chat" not in self.seen  # so that case 3 happens
        if contact:
            self.seen.add("contact chat")
        chat = Chat(self, plan, dep, self.visitor_for(t0, contact), staffed[dep.id])
        chat.run(kind)
        last = max(t for t, _, _ in chat.out)
        update = None
        if chat.owner is not None:
            update = self.visitor_update(chat.visitor, chat.owner, last + self.rng.randint(10_000, 300_000))
        for t, event, body in chat.out:
            if t <= END_MS:
                record = self.emit(event, chat.id, t, body)
                if plan.retry_first:
                    self.retry, plan.retry_first = record, False
        if update and update[0] <= END_MS:
            t, body, modified, change = update
            change()
            self.emit("visitor.updated", body["id"], t, body, modified)
            last = t
        chat.visitor.busy_until = last + 1_000 if last <= END_MS else math.inf

    def visitor_update(self, visitor: Visitor, owner: Operator, t: int) -> _Update | None:
        """Maybe a visitor.updated after a chat: lead info (case 1), lead to contact (case 2), contact (case 3)."""
        rng = self.rng
        modifier = {"type": "operator", "email_id": owner.email, "name": owner.email, "id": owner.id}
        lead = visitor.type == "lead"
        if lead and "case 2" not in self.seen:  # each case surely once, then by chance
            case: int | None = 2
        elif lead and "case 1" not in self.seen:
            case = 1
        elif not lead and "case 3" not in self.seen:
            case = 3
        else:
            r = rng.random()
            case = (2 if r < 0.22 else 1 if r < 0.32 else None) if lead else (3 if r < 0.12 else None)
        self.seen.add(f"case {case}")
        if case == 2:
            new_id, email, phone = (
                self.new_id("contact"),
                self.email(visitor.first, visitor.last),
                self.phone(),
            )
            body = {
                "id": new_id,
                "type": "contact",
                "first_name": visitor.first,
                "last_name": visitor.last,
                "email_id": email,
                "phone": phone,
                "lead": {"id": visitor.id},
                "modifier": modifier,
            }

            def change() -> None:
                visitor.id, visitor.type, visitor.email, visitor.phone = new_id, "contact", email, phone

            return t, body, ["type", "email_id", "phone"], change
        if case == 1:
            last = rng.choice(LAST)
            body = {
                "id": visitor.id,
                "type": "lead " if self.chance(0.3) else "lead",
                "first_name": visitor.first,
                "last_name": last,
                "modifier": modifier,
            }
            return t, body, ["last_name"], lambda: setattr(visitor, "last", last)
        if case == 3:
            phone = self.phone()
            body = {
                "id": visitor.id,
                "type": "contact",
                "first_name": visitor.first,
                "last_name": visitor.last,
                "email_id": visitor.email,
                "phone": phone,
                "modifier": modifier,
            }
            return t, body, ["phone"], lambda: setattr(visitor, "phone", phone)
        return None
