"""The office's queue state and the events that change it.

Event sourcing: the controller decides (which ticket, which number) and records the decision as an event;
``apply`` folds events into ``OfficeState`` and never decides anything itself, so replaying the event log
rebuilds exactly the same state. Pure Python, no I/O: the simulator and the tests use it directly.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

TicketState = Literal["waiting", "called", "served", "no_show", "parked", "cancelled", "expired"]
CounterStateName = Literal["open", "paused", "closed"]
AssistStateName = Literal["pending", "acknowledged", "resolved", "cancelled"]
OPEN_TICKET_STATES = ("waiting", "called", "parked")


@dataclass
class Ticket:
    id: str  # opaque id for the citizen's status page (no personal data)
    number: str  # e.g. "A012"
    service: str
    issued_at: float  # arrival time; kept across transfers, decides "longest waiting"
    priority: bool = False
    appointment: float | None = None  # slot time (epoch) for appointment holders
    state: TicketState = "waiting"
    counter: str | None = None  # counter that called it
    target_counter: str | None = None  # transferred to one specific counter
    called_at: float | None = None
    finished_at: float | None = None
    recalls: int = 0
    origin: str = ""  # node that issued it
    offline: bool = False  # issued offline from a leased block
    transfers: int = 0
    reason: str = ""  # why it was called (steering explanation)


@dataclass
class CounterState:
    id: str
    state: CounterStateName = "closed"
    pause_reason: str = ""
    current: str | None = None  # ticket id being called/served
    served: int = 0
    since: float = 0.0  # time of the last state change
    calls_since_priority: int = 0  # normal calls since the last priority call (fairness rules)
    priority_calls: int = 0  # priority tickets called today (fairness rules: the first may come at once)


@dataclass
class Assist:
    id: str
    terminal: str
    requested_at: float
    state: AssistStateName = "pending"
    level: int = 0  # escalation level
    counter: str | None = None  # who acknowledged
    acknowledged_at: float | None = None
    finished_at: float | None = None


@dataclass
class Appointment:
    code: str
    service: str
    slot: float
    ticket: str | None = None  # ticket id after check-in


@dataclass
class Call:
    ticket: str  # number
    ticket_id: str
    service: str
    counter: str
    ts: float
    recall: bool = False


@dataclass
class Intake:
    open: bool
    reason: str = ""
    manual: bool = False


@dataclass
class OfficeState:
    day: str = ""
    seq: int = 0  # number of the last applied event
    tickets: dict[str, Ticket] = field(default_factory=dict)
    by_number: dict[str, str] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)  # per prefix
    counters: dict[str, CounterState] = field(default_factory=dict)
    assists: dict[str, Assist] = field(default_factory=dict)
    assist_count: int = 0
    appointments: dict[str, Appointment] = field(default_factory=dict)
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=50))
    intake: dict[str, Intake] = field(default_factory=dict)
    leases: list[dict[str, Any]] = field(default_factory=list)
    lease_next: dict[str, int] = field(default_factory=dict)  # per prefix: first number of the next lease

    # -- queries used by steering, prediction and the snapshot
    def waiting(self, service: str | None = None) -> list[Ticket]:
        return [
            t
            for t in self.tickets.values()
            if t.state == "waiting" and (service is None or t.service == service)
        ]

    def ticket(self, ref: str) -> Ticket | None:
        """Find today's ticket by id or by number (case-insensitive, 'A12' == 'A012')."""
        if ref in self.tickets:
            return self.tickets[ref]
        ref = ref.strip().upper()
        if ref in self.by_number:
            return self.tickets[self.by_number[ref]]
        if len(ref) >= 2 and ref[0].isalpha() and ref[1:].isdigit():
            return self.tickets.get(self.by_number.get(format_number(ref[0], int(ref[1:])), ""))
        return None

    def open_assist(self, terminal: str) -> Assist | None:
        return next(
            (
                a
                for a in self.assists.values()
                if a.terminal == terminal and a.state in ("pending", "acknowledged")
            ),
            None,
        )


def format_number(prefix: str, n: int) -> str:
    return f"{prefix}{n:03d}"


class EventError(ValueError):
    """An event does not fit the state it is applied to (a corrupted or reordered log)."""


def apply(state: OfficeState, event: dict[str, Any]) -> None:
    """Fold one event into the state. Raises EventError for an event that does not fit."""
    handler = _HANDLERS.get(event["type"])
    if handler is None:
        raise EventError(f"unknown event type {event['type']!r}")
    handler(state, event)
    state.seq = event.get("seq", state.seq + 1)


def _t(state: OfficeState, tid: str) -> Ticket:
    try:
        return state.tickets[tid]
    except KeyError:
        raise EventError(f"event names unknown ticket {tid}") from None


def _finish_current(state: OfficeState, counter: str, ts: float, final: TicketState = "served") -> None:
    c = state.counters[counter]
    if c.current is not None:
        t = _t(state, c.current)
        if t.state == "called":
            t.state = final
            t.finished_at = ts
            if final == "served":
                c.served += 1
        c.current = None


def _day_started(s: OfficeState, e: dict[str, Any]) -> None:
    for t in s.tickets.values():
        if t.state in OPEN_TICKET_STATES:
            t.state = "expired"
    s.day = e["day"]
    s.tickets.clear()
    s.by_number.clear()
    s.next_number = dict(e["numbers"])
    s.counters = {cid: CounterState(cid, state=st, since=e["ts"]) for cid, st in e["counters"].items()}
    s.assists.clear()
    s.appointments = {
        a["code"]: Appointment(a["code"], a["service"], a["slot"]) for a in e.get("appointments", [])
    }
    s.calls.clear()
    s.intake.clear()
    s.leases.clear()
    s.lease_next.clear()


def _ticket_issued(s: OfficeState, e: dict[str, Any]) -> None:
    t = Ticket(
        id=e["id"],
        number=e["number"],
        service=e["service"],
        issued_at=e.get("arrival", e["ts"]),
        priority=e.get("priority", False),
        appointment=e.get("appointment"),
        origin=e.get("node", ""),
        offline=e.get("offline", False),
    )
    if t.number in s.by_number:
        raise EventError(f"ticket number {t.number} issued twice")
    s.tickets[t.id] = t
    s.by_number[t.number] = t.id
    prefix, n = t.number[0], int(t.number[1:])
    if not t.offline:
        s.next_number[prefix] = max(s.next_number.get(prefix, 1), n + 1)
    if e.get("appointment_code"):
        s.appointments[e["appointment_code"]].ticket = t.id


def _ticket_called(s: OfficeState, e: dict[str, Any]) -> None:
    c = s.counters[e["counter"]]
    _finish_current(s, c.id, e["ts"])
    t = _t(s, e["ticket"])
    if t.state not in ("waiting", "parked"):
        raise EventError(f"ticket {t.number} called in state {t.state}")
    t.state, t.counter, t.called_at, t.reason = "called", c.id, e["ts"], e.get("reason", "")
    t.target_counter = None
    c.current = t.id
    if c.state != "open":
        c.state, c.pause_reason, c.since = "open", "", e["ts"]
    c.calls_since_priority = 0 if t.priority else c.calls_since_priority + 1
    c.priority_calls += 1 if t.priority else 0
    s.calls.appendleft(Call(t.number, t.id, t.service, c.id, e["ts"]))


def _ticket_recalled(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    t.recalls += 1
    s.calls.appendleft(Call(t.number, t.id, t.service, e["counter"], e["ts"], recall=True))


def _ticket_finished(s: OfficeState, e: dict[str, Any]) -> None:
    final = {"ticket_served": "served", "ticket_no_show": "no_show"}[e["type"]]
    c = s.counters[e["counter"]]
    if c.current != e["ticket"]:
        raise EventError(f"counter {c.id} is not serving {e['ticket']}")
    _finish_current(s, c.id, e["ts"], final)


def _ticket_transferred(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    if t.counter and s.counters[t.counter].current == t.id:
        s.counters[t.counter].current = None
    t.state, t.counter, t.called_at = "waiting", None, None
    t.service = e.get("service") or t.service
    t.target_counter = e.get("to_counter")
    t.transfers += 1


def _ticket_parked(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    s.counters[e["counter"]].current = None
    t.state = "parked"


def _ticket_cancelled(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    t.state, t.finished_at = "cancelled", e["ts"]


def _counter_state(s: OfficeState, e: dict[str, Any]) -> None:
    new = {"counter_opened": "open", "counter_paused": "paused", "counter_closed": "closed"}[e["type"]]
    c = s.counters[e["counter"]]
    if new != "open":
        _finish_current(s, c.id, e["ts"])
    c.state, c.pause_reason, c.since = new, e.get("reason", ""), e["ts"]


def _assist_requested(s: OfficeState, e: dict[str, Any]) -> None:
    s.assist_count += 1
    s.assists[e["id"]] = Assist(e["id"], e["terminal"], e["ts"])


def _assist_changed(s: OfficeState, e: dict[str, Any]) -> None:
    a = s.assists[e["id"]]
    kind = e["type"]
    if kind == "assist_acknowledged":
        a.state, a.counter, a.acknowledged_at = "acknowledged", e.get("counter"), e["ts"]
    elif kind == "assist_escalated":
        a.level = e["level"]
    else:
        a.state = "resolved" if kind == "assist_resolved" else "cancelled"
        a.finished_at = e["ts"]
        a.counter = e.get("counter") or a.counter


def _lease_granted(s: OfficeState, e: dict[str, Any]) -> None:
    s.leases.append({k: e[k] for k in ("node", "service", "prefix", "first", "count")})
    s.lease_next[e["prefix"]] = e["first"] + e["count"]


def _appointment_booked(s: OfficeState, e: dict[str, Any]) -> None:
    s.appointments[e["code"]] = Appointment(e["code"], e["service"], e["slot"])


def _intake_set(s: OfficeState, e: dict[str, Any]) -> None:
    if e.get("auto"):
        s.intake.pop(e["service"], None)
    else:
        s.intake[e["service"]] = Intake(e["open"], e.get("reason", ""), e.get("manual", False))


_HANDLERS = {
    "day_started": _day_started,
    "ticket_issued": _ticket_issued,
    "ticket_called": _ticket_called,
    "ticket_recalled": _ticket_recalled,
    "ticket_served": _ticket_finished,
    "ticket_no_show": _ticket_finished,
    "ticket_transferred": _ticket_transferred,
    "ticket_parked": _ticket_parked,
    "ticket_cancelled": _ticket_cancelled,
    "counter_opened": _counter_state,
    "counter_paused": _counter_state,
    "counter_closed": _counter_state,
    "assist_requested": _assist_requested,
    "assist_acknowledged": _assist_changed,
    "assist_escalated": _assist_changed,
    "assist_resolved": _assist_changed,
    "assist_cancelled": _assist_changed,
    "lease_granted": _lease_granted,
    "appointment_booked": _appointment_booked,
    "intake_set": _intake_set,
}
EVENT_TYPES = tuple(_HANDLERS)


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return asdict(t)
