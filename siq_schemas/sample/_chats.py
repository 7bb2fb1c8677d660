"""One simulated conversation: opened, greeted by bots, missed or picked up, chatted, completed, rated."""

from __future__ import annotations

import copy
from typing import Any

from ._constants import (
    APP_ID,
    BOT,
    BOT_CLOSED,
    BOT_MESSAGES,
    CLOSED,
    CONNECTED,
    FEEDBACK,
    MISSED,
    OPERATOR_TEXT,
    QUESTIONS,
    VISITOR_TEXT,
    WAITING,
)
from ._model import Department, Operator, Plan, Visitor
from ._portal import Portal


class Chat:
    """One conversation: its state while simulated and the events it produced, as (time, event, entity)."""

    def __init__(self, portal: Portal, plan: Plan, dep: Department, visitor: Visitor, staff: list[Operator]):
        self.portal, self.rng, self.plan = portal, portal.rng, plan
        self.dep, self.visitor, self.staff = dep, visitor, staff
        self.id = portal.new_id("conversation")
        self.t0 = plan.t0
        portal.reference += 1
        self.head = {
            "id": self.id,
            "visitor_conversation_id": "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=40)),
            "reference_id": str(portal.reference),
            "opened_time": str(self.t0),
        }
        self.vref = visitor.ref()
        self.question = self.rng.choice(QUESTIONS)
        self.owner: Operator | None = None
        self.supervisors: list[str] = []
        self.participants: list[str] = []
        self.attended: int | None = None
        self.end = 0
        self.transferred = False
        self.out: list[tuple[int, str, dict[str, Any]]] = []
        self.msgids: set[str] = set()

    def wait(self, low: int, high: int) -> int:
        """Move the chat's clock on by ``low..high`` ms; return the new time."""
        self.t += self.rng.randint(low, high)
        return self.t

    def add(self, t: int, event: str, **fields: Any) -> None:
        """An event with a small entity (the conversation id and ``fields``)."""
        self.out.append((t, f"conversation.{event}", {"id": self.id, **fields}))

    def entity(self, status: str, shape: dict[str, Any], label: str, **times: int | None) -> dict[str, Any]:
        """The full conversation entity of created / attender.updated / missed / completed."""
        body: dict[str, Any] = dict(self.head)
        body.update({key: str(value) for key, value in times.items() if value is not None})
        body.update(app_id=APP_ID, department_id=self.dep.id)
        if self.owner:
            body["owner"] = self.owner.ref()
        body.update(visitor=self.vref, question=self.question, supervisors=list(self.supervisors))
        body.update(participants=list(self.participants), status=status)
        if self.portal.quirk("document-chat-status", 0.04):  # the document's shape now and then
            body["chat_status"] = {"status_code": ["1,2"], "state": ["1,2,3,4"], "label": label}
        else:
            body["chat_status"] = dict(shape)
        return body

    def reply(self, t: int, role: str, text: str | None = None) -> None:
        """A visitor, operator or bot message (bots: meta and list, no msgid nor text)."""
        rng = self.rng
        if role == "bot":
            meta, items = copy.deepcopy(rng.choice(BOT_MESSAGES))
            message: dict[str, Any] = {"sender": dict(BOT), "meta": meta, "list": items}
        else:
            msgid = str(t - rng.randint(3, 30))
            while msgid in self.msgids:
                msgid = str(int(msgid) + 1)
            self.msgids.add(msgid)
            if role == "visitor":
                sender = {"name": self.vref["name"], "id": self.visitor.sender, "type": "visitor"}
            else:
                assert self.owner is not None
                sender = {"name": self.owner.first, "id": self.owner.id, "type": "operator"}
            text = text or rng.choice(VISITOR_TEXT if role == "visitor" else OPERATOR_TEXT)
            message = {"sender": sender, "msgid": msgid, "text": text, "meta": {}}
        body: dict[str, Any] = {"id": self.id, "visitor_conversation_id": self.head["visitor_conversation_id"]}
        body["message"] = message
        body["visitor"] = self.vref
        if self.owner:
            body["owner"] = self.owner.ref()
        body["version"] = 1
        self.out.append(
            (t, "conversation.visitor.replied" if role == "visitor" else "conversation.operator.replied", body)
        )

    def run(self, kind: str) -> None:
        rng, plan = self.rng, self.plan
        self.t = self.t0 + rng.randint(3, 60)
        self.out.append((self.t, "conversation.created", self.entity("Live", WAITING, "Waiting")))
        for _ in range(plan.bots):
            self.reply(self.wait(400, 4_000), "bot")
        if kind == "bot" and plan.rated:  # the bot handled it alone
            self.end = self.wait(20_000, 240_000)
            body = self.entity("Closed", BOT_CLOSED, "Ended by bot", end_time=self.end)
            body["ended_by"] = rng.choice(["visitor", "bot"])
            self.out.append((self.end + rng.randint(3, 60), "conversation.completed", body))
        elif kind in ("bot", "missed"):
            missed = max(self.t + 1_000, self.t0 + rng.randint(90_000, 300_000))
            body = self.entity("Missed", MISSED, "Missed", missed_time=missed)
            self.out.append((missed + rng.randint(3, 60), "conversation.missed", body))
        else:
            self.chat()

    def chat(self) -> None:
        """Picked up, messages (and maybe an incident), completed, maybe rated."""
        rng, plan = self.rng, self.plan
        self.attended = max(self.t + 500, self.t0 + 2_000 + int(min(300_000, rng.expovariate(1 / 35_000))))
        self.owner = rng.choice(self.staff)
        self.t = self.attended + rng.randint(3, 60)
        connected = self.entity("Connected", CONNECTED, "Attended Online", attended_time=self.attended)
        self.out.append((self.t, "conversation.attender.updated", connected))
        at = rng.randint(1, plan.replies - 1) if plan.incident else -1
        role = "operator"
        for number in range(plan.replies):
            self.wait(3_000, 90_000)
            if number == at:
                self.incident(plan.incident)
            self.reply(self.t, role)
            if role == "visitor" and (plan.same_time or self.portal.chance(0.01)):
                self.reply(self.t, "visitor", rng.choice(QUESTIONS))  # two lines pasted: one millisecond
                plan.same_time = False
            role = "visitor" if role == "operator" else ("operator" if self.portal.chance(0.8) else "visitor")
        if plan.incident in ("edit", "delete"):  # an operator corrects or removes one of their messages
            said = [body["message"] for _, event, body in self.out if body.get("message", {}).get("msgid")]
            last = rng.choice([m for m in said if m["sender"]["type"] == "operator"])
            if plan.incident == "edit":
                edited = {"sender": last["sender"], "msgid": last["msgid"], "text": last["text"] + " (edited)"}
                self.add(self.wait(2_000, 20_000), "message.edited", message=edited)
            else:
                gone = {"msgid": last["msgid"], "sender": last["sender"]}
                self.add(self.wait(2_000, 20_000), "message.deleted", message=gone)
        if self.participants:
            self.participants = []
            self.add(self.wait(2_000, 20_000), "participants.deleted", participants=[])
        self.complete(self.wait(20_000, 300_000))
        if plan.incident == "reopen":
            self.t = self.end + rng.randint(30_000, 600_000)
            self.add(self.t, "reopened", status="Reopened", owner=self.owner.ref(), visitor=self.vref)
            self.reply(self.wait(5_000, 60_000), "visitor")
            self.reply(self.wait(5_000, 60_000), "operator")
            self.complete(self.wait(20_000, 120_000))
        if plan.incident == "metrics":
            replies = sum(1 for _, event, _ in self.out if event.endswith(".replied"))
            metrics = {"waiting_time": self.attended - self.t0, "chat_duration": self.end - self.attended}
            self.add(self.end + rng.randint(1_000, 5_000), "metrics", metrics=dict(metrics, messages=replies))
        if plan.rated and not self.transferred:  # never for missed or transferred chats
            self.rate(max(t for t, _, _ in self.out) + rng.randint(5_000, 180_000))

    def incident(self, kind: str | None) -> None:
        """Something that happens mid-chat: a transfer, a participant, a supervisor."""
        rng, owner = self.rng, self.owner
        assert owner is not None
        others = [op for op in self.staff if op is not owner]
        if kind in ("transfer-accepted", "transfer-rejected"):
            target = rng.choice(others or [owner])
            self.add(self.t, "transfer.initiated", owner=owner.ref(), visitor=self.vref, target=target.ref())
            if kind == "transfer-accepted" and others:
                self.owner, self.transferred = target, True
                self.add(self.wait(5_000, 40_000), "transfer.accepted", owner=target.ref(), visitor=self.vref)
            else:
                self.add(self.wait(5_000, 40_000), "transfer.rejected", owner=owner.ref(), target=target.ref())
        elif kind == "participants":
            self.participants = [rng.choice(others or [owner]).id]
            self.add(self.t, "participants.added", participants=list(self.participants))
        elif kind == "supervisor":  # the portal's administrator looks in
            self.supervisors = [next(op.id for op in self.portal.operators.values() if op.owner)]
            self.add(self.t, "supervisor.added", supervisors=list(self.supervisors))
        else:
            return
        self.wait(2_000, 20_000)

    def complete(self, end: int) -> None:
        self.end = end
        keep = None if self.portal.chance(0.1) else self.attended  # completed may lack attended_time
        body = self.entity("Closed", CLOSED, "Attended Online", attended_time=keep, end_time=end)
        body["ended_by"] = self.rng.choices(["agent", "visitor", "system"], [6, 3, 1])[0]
        self.out.append((end + self.rng.randint(3, 60), "conversation.completed", body))

    def rate(self, t: int) -> None:
        """A rating 1..5 (most with feedback text), or feedback alone."""
        portal, rng = self.portal, self.rng
        assert self.owner is not None
        rated: dict[str, Any] = {}
        if "rating" not in portal.seen or not portal.quirk("feedback-only", 0.08):
            portal.seen.add("rating")
            rated["rating"] = rng.choices([1, 2, 3, 4, 5], [4, 5, 12, 30, 49])[0]
            if portal.chance(0.45):
                rated["feedback"] = rng.choice(FEEDBACK)
        else:
            rated["feedback"] = rng.choice(FEEDBACK)
        self.add(t, "rated", **rated, status="Ended", owner=self.owner.ref(), visitor=self.vref)
