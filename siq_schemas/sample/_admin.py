"""The portal's administration over the period: departments and operators set up, moved, promoted, deleted."""

from __future__ import annotations

from typing import Any

from ._constants import DAY, DEPARTMENTS, FIRST, HOUR, LAST, MINUTE, START_MS
from ._model import Department, Operator
from ._portal import Portal


def operator_entity(portal: Portal, op: Operator, t: int) -> dict[str, Any]:
    text = portal.quirk("string-booleans", 0.12)  # now and then booleans arrive as "true"/"false"

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
        "modified_time": str(t - portal.rng.randint(5, 40)),
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


def department_entity(portal: Portal, dep: Department, t: int) -> dict[str, Any]:
    mail = f"{dep.name.lower()}@zylker.com"
    return {
        "is_enabled": "true",
        "created_time": str(dep.created),
        "modified_time": str(t - portal.rng.randint(5, 40)),
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


def create_operator(portal: Portal, t: int, role: str, departments: list[Department], owner: bool = False) -> None:
    taken = {(op.first, op.last) for op in portal.operators.values()}
    first, last = portal.rng.choice([(f, la) for f, la in zip(FIRST, LAST, strict=True) if (f, la) not in taken])
    op = Operator(portal.new_id("operator"), first, last, role, t - portal.rng.randint(20, 400), owner)
    portal.operators[op.id] = op
    for dep in departments:
        portal.join(op, dep, t)
    portal.emit("operator.created", op.id, t, operator_entity(portal, op, t))


def create_department(portal: Portal, t: int, index: int, creator: Operator) -> Department:
    name, description = DEPARTMENTS[index]
    dep = Department(portal.new_id("department"), name, description, t - portal.rng.randint(20, 400), creator.id)
    portal.departments[dep.id] = dep
    portal.join(creator, dep, t)
    portal.emit("department.created", dep.id, t, department_entity(portal, dep, t))
    t += portal.rng.randint(2_000, 20_000)  # the creator is a member: the operator side follows
    portal.emit(
        "operator.departments.associated",
        creator.id,
        t,
        operator_entity(portal, creator, t),
        ["departments"],
    )
    return dep


def dissociate(portal: Portal, op: Operator, dep: Department, t: int, spelling: str | None = None) -> None:
    portal.leave(op, dep, t)
    if spelling is None:
        spelling = "disassociated" if portal.chance(0.25) else "dissociated"
    portal.emit(f"operator.departments.{spelling}", op.id, t, operator_entity(portal, op, t), ["departments"])


def active_operators(portal: Portal, admin: bool = False) -> list[Operator]:
    return [op for op in portal.operators.values() if op.deleted is None and (admin or not op.owner)]


def live_departments(portal: Portal) -> list[Department]:
    return [dep for dep in portal.departments.values() if dep.deleted is None]


def administration(portal: Portal) -> int:
    """Set up the portal and change it over the period; return when chats may begin."""
    rng = portal.rng
    n_operators = min(20, 6 + portal.target // 500)
    t = START_MS + 7 * HOUR + rng.randint(0, 20 * MINUTE)
    step = lambda: rng.randint(20_000, 120_000)  # noqa: E731
    create_operator(portal, t, "Administrator", [], owner=True)
    admin = next(iter(portal.operators.values()))
    initial = [create_department(portal, t := t + step(), index, admin) for index in range(4)]
    staff = max(4, round(0.6 * (n_operators - 1)))  # at least one per department
    for number in range(staff):
        departments = [initial[number % 4]]
        if portal.chance(0.4):
            departments.append(rng.choice([dep for dep in initial if dep is not departments[0]]))
        create_operator(portal, t := t + step(), "Supervisor" if number == 1 else "Associate", departments)
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
        admin_action(portal, t, action, admin, initial[3])
    return chats_from


def admin_action(portal: Portal, t: int, action: str, admin: Operator, partners: Department) -> None:
    rng = portal.rng
    live = live_departments(portal)
    ops = active_operators(portal)
    if action == "join":
        create_operator(portal, t, "Associate", rng.sample(live, rng.choice((1, 1, 2))))
    elif action == "onboarding":
        create_department(portal, t, 4, admin)
    elif action == "move" and ops:
        op = rng.choice(ops)
        outside = [dep for dep in live if dep.id not in op.departments and dep is not partners]
        inside = [portal.departments[dep] for dep in op.departments if dep != partners.id]  # it winds down
        choice = rng.random()
        if outside and (choice < 0.4 or len(inside) < 2):
            portal.join(op, rng.choice(outside), t)
            portal.emit("operator.departments.associated", op.id, t, operator_entity(portal, op, t), ["departments"])
        elif choice < 0.75 and len(inside) >= 2 - (partners.id in op.departments):
            dissociate(portal, op, rng.choice(inside), t)
        elif outside and inside:
            portal.leave(op, rng.choice(inside), t)
            portal.join(op, rng.choice(outside), t)
            portal.emit("operator.updated", op.id, t, operator_entity(portal, op, t), ["departments"])
    elif action in ("promote", "demote", "administrator"):
        wanted = {"promote": "Associate", "demote": "Supervisor", "administrator": "Associate"}[action]
        candidates = [op for op in ops if op.role == wanted]
        if candidates:
            op = rng.choice(candidates)
            op.role = {"promote": "Supervisor", "demote": "Associate", "administrator": "Administrator"}[action]
            portal.emit("operator.updated", op.id, t, operator_entity(portal, op, t), ["role"])
    elif action == "delete" and len(ops) > 3:
        op = rng.choice([op for op in ops if partners.id not in op.departments] or ops)
        for dep_id in list(op.departments):
            portal.leave(op, portal.departments[dep_id], t)
        op.deleted = t
        portal.emit("operator.deleted", op.id, t)
    elif action == "department":
        dep = rng.choice(live)
        modified = "operators"
        if portal.chance(0.5):
            dep.description += "." if not dep.description.endswith(".") else " (weekdays 8-18 UTC)."
            modified = "description"
        portal.emit("department.updated", dep.id, t, department_entity(portal, dep, t), [modified])
    elif action == "teardown":
        for number, op_id in enumerate(list(partners.operators)):  # both spellings, surely
            t += rng.randint(5_000, 60_000)
            spelling = ("disassociated", "dissociated")[number] if number < 2 else None
            dissociate(portal, portal.operators[op_id], partners, t, spelling)
        t += rng.randint(5_000, 60_000)
        portal.emit("department.updated", partners.id, t, department_entity(portal, partners, t), ["operators"])
        partners.deleted = t + rng.randint(5_000, 60_000)
        portal.emit("department.deleted", partners.id, partners.deleted)
