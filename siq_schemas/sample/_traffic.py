"""The portal's traffic: the chats it plans, each one simulated with its visitor, and the visitor updates after them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ._chats import Chat
from ._constants import DAY, DAYS, END_MS, FIRST, HOUR, INCIDENTS, LAST, MINUTE, START, START_MS, WINDOW
from ._model import Operator, Plan, Visitor
from ._portal import Portal

_Update = tuple[int, dict[str, Any], list[str], Callable[[], None]]
"""A visitor.updated to come: its time, entity, modified fields, and the change to make to the visitor."""


def plans(portal: Portal, chats_from: int) -> list[Plan]:
    """Enough conversation plans for the target number of events, with their opening times."""
    rng = portal.rng
    budget: float = portal.target - len(portal.events) - 35  # the quirks forced below add about 35 events
    plans: list[Plan] = []
    while budget > 0:
        r = rng.random()
        if r < 0.04:
            plan = Plan(0, "bot", bots=rng.randint(2, 4), rated=portal.chance(0.35))  # rated = completed here
            budget -= 2 + plan.bots
        elif r < 0.17:
            plan = Plan(0, "missed", bots=int(portal.chance(0.15)))
            budget -= 2 + plan.bots
        else:
            plan = Plan(0, "chat", replies=rng.randint(2, 9), bots=int(portal.chance(0.15)), rated=portal.chance(0.35))
            plan.incident = rng.choice(INCIDENTS) if portal.chance(0.02) else None
            budget -= 3.3 + plan.replies + plan.bots + plan.rated
        plans.append(plan)
    # quirks that must happen, whatever the dice said: a bot-only chat, a missed one, every incident,
    # a rating and a feedback, a retry across midnight, two messages in one millisecond, open chats
    plans += [Plan(0, kind, bots=2, rated=True) for kind in ("bot", "missed") if kind not in {p.kind for p in plans}]
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


def visitor_for(portal: Portal, t0: int, contact: bool = False) -> Visitor:
    """A returning visitor (one not chatting at ``t0``) or a new lead or contact."""
    rng = portal.rng
    returning = [v for v in portal.visitors if v.busy_until < t0]
    if returning and portal.chance(0.2) and not contact:
        return rng.choice(returning)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    sender = "$" + str(rng.randrange(10**18, 10**19))
    channel = rng.choices(["website", "website", "website", "whatsapp", "facebook"])[0]
    if portal.chance(0.75) and not contact:
        visitor = Visitor(portal.new_id("visitor"), "lead", first, last, sender, channel)
    else:
        visitor = Visitor(
            portal.new_id("contact"),
            "contact",
            first,
            last,
            sender,
            channel,
            email_address(portal, first, last),
            phone_number(portal),
        )
    portal.visitors.append(visitor)
    return visitor


def email_address(portal: Portal, first: str, last: str) -> str:
    local = f"{first[0]}{last}".lower().encode("ascii", "ignore").decode()
    return f"{local}{portal.rng.randint(1, 99)}@{portal.rng.choice(['example.com', 'mail.example.org'])}"


def phone_number(portal: Portal) -> str:
    return f"+44 7{portal.rng.randint(100, 999)} {portal.rng.randint(100000, 999999)}"


def conversation(portal: Portal, plan: Plan) -> None:
    """Simulate one conversation from its plan and emit its events (cut at the end of the period)."""
    t0, need = plan.t0, 2 if plan.incident in ("transfer-accepted", "participants") else 1
    live = [
        dep
        for dep in portal.departments.values()
        if dep.created < t0 and (dep.deleted is None or dep.deleted > t0 + WINDOW)
    ]
    staffed = {dep.id: portal.members_of(dep, t0, t0 + WINDOW) for dep in live}
    options = [dep for dep in live if len(staffed[dep.id]) >= need] or [dep for dep in live if staffed[dep.id]]
    kind = "missed" if plan.kind == "chat" and not options else plan.kind
    dep = portal.rng.choice(options if kind == "chat" else live)
    contact = kind == "chat" and "contact chat" not in portal.seen  # so that case 3 happens
    if contact:
        portal.seen.add("contact chat")
    chat = Chat(portal, plan, dep, visitor_for(portal, t0, contact), staffed[dep.id])
    chat.run(kind)
    last = max(t for t, _, _ in chat.out)
    update = None
    if chat.owner is not None:
        update = visitor_update(portal, chat.visitor, chat.owner, last + portal.rng.randint(10_000, 300_000))
    for t, event, body in chat.out:
        if t <= END_MS:
            record = portal.emit(event, chat.id, t, body)
            if plan.retry_first:
                portal.retry, plan.retry_first = record, False
    if update and update[0] <= END_MS:
        t, body, modified, change = update
        change()
        portal.emit("visitor.updated", body["id"], t, body, modified)
        last = t
    chat.visitor.busy_until = last + 1_000 if last <= END_MS else math.inf


def visitor_update(portal: Portal, visitor: Visitor, owner: Operator, t: int) -> _Update | None:
    """Maybe a visitor.updated after a chat: lead info (case 1), lead to contact (case 2), contact (case 3)."""
    rng = portal.rng
    modifier = {"type": "operator", "email_id": owner.email, "name": owner.email, "id": owner.id}
    lead = visitor.type == "lead"
    if lead and "case 2" not in portal.seen:  # each case surely once, then by chance
        case: int | None = 2
    elif lead and "case 1" not in portal.seen:
        case = 1
    elif not lead and "case 3" not in portal.seen:
        case = 3
    else:
        r = rng.random()
        case = (2 if r < 0.22 else 1 if r < 0.32 else None) if lead else (3 if r < 0.12 else None)
    portal.seen.add(f"case {case}")
    if case == 2:
        new_id, email, phone = (
            portal.new_id("contact"),
            email_address(portal, visitor.first, visitor.last),
            phone_number(portal),
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
            "type": "lead " if portal.chance(0.3) else "lead",
            "first_name": visitor.first,
            "last_name": last,
            "modifier": modifier,
        }
        return t, body, ["last_name"], lambda: setattr(visitor, "last", last)
    if case == 3:
        phone = phone_number(portal)
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
