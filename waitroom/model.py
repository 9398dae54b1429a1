"""The office's queue state and the events that change it.

Event sourcing: the controller decides (which ticket, which number) and records the decision as an event;
``apply`` folds events into ``OfficeState`` and never decides anything itself, so replaying the event log
rebuilds exactly the same state. Pure Python, no I/O: the simulator and the tests use it directly.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sortedcontainers import SortedKeyList

log = logging.getLogger(__name__)

TicketState = Literal["waiting", "called", "served", "no_show", "parked", "cancelled", "expired"]
CounterStateName = Literal["open", "paused", "closed"]
AssistStateName = Literal["pending", "acknowledged", "resolved", "cancelled"]
OPEN_TICKET_STATES = ("waiting", "called", "parked")


@dataclass(eq=False)  # a ticket is an entity: equal only to itself (and fast to find in the index)
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
    lang: str = "de"  # the citizen's language (ticket, status page, announcement)


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
    counter: str | None = None  # the counter capacity planned it on (waitroom.appointments.capacity)
    note: str = ""  # optional short note of the booking (appointments.notes; no personal data)
    cancelled: bool = False  # kept in the book, so that a re-import of an older revision changes nothing
    version: int | None = (
        None  # revision from the booking system (iCalendar SEQUENCE): lower ones are ignored
    )
    checked_in_at: float | None = None  # when the citizen checked in (statistics: early, on time, late)

    def carried(self) -> dict[str, Any]:
        """The entry as the next day's ``day_started`` carries it (only what is set)."""
        d: dict[str, Any] = {"code": self.code, "service": self.service, "slot": self.slot}
        for k in ("counter", "note", "cancelled", "version"):
            v = getattr(self, k)
            if v:
                d[k] = v
        return d


ReservationStateName = Literal["reserved", "checked_in", "lapsed"]


@dataclass
class Reservation:
    """A remote ticket (virtual queue): a place held for a citizen who is not there yet; its ticket (and
    number) comes at check-in. No personal data: the code is the citizen's only key."""

    code: str
    service: str
    reserved_at: float  # the place it earned (its ticket queues from here when checked in on time)
    arrive_by: float
    expires_at: float
    lang: str = "de"
    priority: bool = False
    origin: str = ""  # node that reserved it (city, web)
    state: ReservationStateName = "reserved"
    ticket: str | None = None  # ticket id after check-in
    finished_at: float | None = None  # check-in or lapse time


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


def walk_key(t: Ticket) -> tuple[float, str]:
    """Order of walk-in and priority tickets within a service: longest waiting first."""
    return (t.issued_at, t.number)


def slot_key(t: Ticket) -> tuple[float, float, str]:
    """Order of appointment holders within a service: earliest slot first."""
    return (t.appointment or 0.0, t.issued_at, t.number)


class Pool:
    """The waiting tickets, indexed for steering: per service the walk-ins and the priority tickets
    (longest waiting first) and the appointment holders (earliest slot first); per counter the tickets
    transferred to it.

    ``OfficeState`` keeps one up to date in ``apply``, so choosing the next ticket looks only at the heads of
    the lists of a counter's services: O(services x log n), whatever the length of the queue.
    ``targeted_n`` counts the transferred tickets per counter and service (the unstaffed-service alarm asks
    which waiting tickets no open counter can call without walking the lists).
    """

    __slots__ = ("appointment", "normal", "priority", "targeted", "targeted_n")

    def __init__(self) -> None:
        self.normal: dict[str, SortedKeyList] = {}
        self.priority: dict[str, SortedKeyList] = {}
        self.appointment: dict[str, SortedKeyList] = {}
        self.targeted: dict[str, SortedKeyList] = {}
        self.targeted_n: dict[str, dict[str, int]] = {}  # counter -> service -> tickets transferred to it

    def _bucket(self, t: Ticket) -> tuple[dict[str, SortedKeyList], str]:
        if t.target_counter is not None:
            return self.targeted, t.target_counter
        if t.appointment is not None:
            return self.appointment, t.service
        return (self.priority if t.priority else self.normal), t.service

    def add(self, t: Ticket) -> None:
        d, key = self._bucket(t)
        lst = d.get(key)
        if lst is None:
            lst = d[key] = SortedKeyList(key=slot_key if d is self.appointment else walk_key)
        lst.add(t)
        if d is self.targeted:
            n = self.targeted_n.setdefault(key, {})
            n[t.service] = n.get(t.service, 0) + 1

    def discard(self, t: Ticket) -> None:
        d, key = self._bucket(t)
        lst = d.get(key)
        if lst:
            before = len(lst)
            if lst[0] is t:  # the usual case: the head is called
                del lst[0]
            else:
                lst.discard(t)
            if d is self.targeted and len(lst) < before:
                n = self.targeted_n[key]
                n[t.service] -= 1
                if not n[t.service]:
                    del n[t.service]
                    if not n:
                        del self.targeted_n[key]

    def position(self, t: Ticket) -> int:
        """Tickets before ``t`` in its own list (0 for the head)."""
        d, key = self._bucket(t)
        return d[key].index(t)

    def lists(self) -> Iterator[tuple[dict[str, SortedKeyList], str, SortedKeyList]]:
        for d in (self.targeted, self.appointment, self.priority, self.normal):
            for key, lst in d.items():
                yield d, key, lst

    def __iter__(self) -> Iterator[Ticket]:
        for _, _, lst in self.lists():
            yield from lst

    def __len__(self) -> int:
        return sum(len(lst) for _, _, lst in self.lists())


@dataclass
class OfficeState:
    day: str = ""
    seq: int = 0  # number of the last applied event
    last_ts: float = 0.0  # the latest event time (the clock must not fall behind it)
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
    reservations: dict[str, Reservation] = field(default_factory=dict)  # code -> remote ticket (today)
    # -- indexes kept by apply (never scan the day's tickets on a command)
    pool: Pool = field(default_factory=Pool)  # the waiting tickets, ordered for steering
    waiting_count: dict[str, int] = field(default_factory=dict)  # service -> waiting tickets
    parked: dict[str, Ticket] = field(default_factory=dict)  # ticket id -> parked ticket, in parking order
    # service -> ticket id -> ticket marked not appeared, in marking order (the newest last): the recent ones
    # may be called again (counter.call_ticket within controller.no_show_return_min), found without a scan
    no_shows: dict[str, dict[str, Ticket]] = field(default_factory=dict)
    open_assists: dict[str, str] = field(default_factory=dict)  # terminal -> open assistance request id
    # service -> open reservations (not checked in, not lapsed), in reservation order
    open_reservations: dict[str, dict[str, Reservation]] = field(default_factory=dict)

    # -- queries used by steering, prediction and the snapshot
    def waiting(self, service: str | None = None) -> list[Ticket]:
        """Waiting tickets (of one service), from the index; O(result)."""
        if service is None:
            return list(self.pool)
        p = self.pool
        out = [t for d in (p.appointment, p.priority, p.normal) for t in d.get(service, ())]
        out += [t for lst in p.targeted.values() for t in lst if t.service == service]
        return out

    def n_waiting(self, service: str | None = None) -> int:
        if service is None:
            return sum(self.waiting_count.values())
        return self.waiting_count.get(service, 0)

    def ticket(self, ref: str) -> Ticket | None:
        """Find today's ticket by id or by number (case-insensitive, 'A12' == 'A012' == 'A 12', as the
        display shows and the voice says it)."""
        if ref in self.tickets:
            return self.tickets[ref]
        ref = "".join(ref.split()).upper()
        if ref in self.by_number:
            return self.tickets[self.by_number[ref]]
        # ASCII only: "A٣" or "A²" is no ticket number (int() would read the first, fail on the second)
        if 2 <= len(ref) <= 8 and ref.isascii() and ref[0].isalpha() and ref[1:].isdigit():
            return self.tickets.get(self.by_number.get(format_number(ref[0], int(ref[1:])), ""))
        return None

    def open_assist(self, terminal: str) -> Assist | None:
        aid = self.open_assists.get(terminal)
        return None if aid is None else self.assists[aid]

    # -- the one place a ticket changes state, so the indexes stay exact
    def set_state(self, t: Ticket, new: TicketState) -> None:
        old = t.state
        if old == new:
            return
        if old == "waiting":
            self.pool.discard(t)
            self.waiting_count[t.service] -= 1
        elif old == "parked":
            self.parked.pop(t.id, None)
        elif old == "no_show":
            self.no_shows.get(t.service, {}).pop(t.id, None)
        t.state = new
        if new == "waiting":
            self.pool.add(t)
            self.waiting_count[t.service] = self.waiting_count.get(t.service, 0) + 1
        elif new == "parked":
            self.parked[t.id] = t
        elif new == "no_show":
            self.no_shows.setdefault(t.service, {})[t.id] = t

    def recent_no_shows(self, service: str) -> Iterator[Ticket]:
        """The tickets of ``service`` marked not appeared today, the newest first (stop when old enough)."""
        return reversed(self.no_shows.get(service, {}).values())


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
    ts = event.get("ts")
    if ts is not None and ts > state.last_ts:
        state.last_ts = ts


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
            state.set_state(t, final)
            t.finished_at = ts
            if final == "served":
                c.served += 1
        c.current = None


def _day_started(s: OfficeState, e: dict[str, Any]) -> None:
    for t in s.tickets.values():  # once a day
        if t.state in OPEN_TICKET_STATES:
            t.state = "expired"
    s.pool = Pool()
    s.waiting_count = {}
    s.parked = {}
    s.no_shows = {}
    s.open_assists = {}
    s.day = e["day"]
    s.tickets.clear()
    s.by_number.clear()
    s.next_number = dict(e["numbers"])
    s.counters = {cid: CounterState(cid, state=st, since=e["ts"]) for cid, st in e["counters"].items()}
    s.assists.clear()
    s.appointments = {a["code"]: _appointment(a) for a in e.get("appointments", [])}
    s.calls.clear()
    s.intake.clear()
    s.leases.clear()
    s.lease_next.clear()
    s.reservations = {}  # a remote ticket is for its day only
    s.open_reservations = {}


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
        lang=e.get("lang", "de"),
        state="new",  # type: ignore[arg-type]  # becomes waiting below, through the index
    )
    if t.number in s.by_number:
        raise EventError(f"ticket number {t.number} issued twice")
    if t.id in s.tickets:
        raise EventError(f"ticket id {t.id} issued twice")
    s.tickets[t.id] = t
    s.by_number[t.number] = t.id
    s.set_state(t, "waiting")
    prefix, n = t.number[0], int(t.number[1:])
    if not t.offline:
        s.next_number[prefix] = max(s.next_number.get(prefix, 1), n + 1)
    if e.get("appointment_code"):
        a = s.appointments[e["appointment_code"]]
        a.ticket, a.checked_in_at = t.id, e["ts"]
    if e.get("reservation_code"):
        r = s.reservations.get(e["reservation_code"])
        if r is None or r.state != "reserved":
            raise EventError(f"reservation {e['reservation_code']} checked in but not open")
        r.state, r.ticket, r.finished_at = "checked_in", t.id, e["ts"]
        s.open_reservations.get(r.service, {}).pop(r.code, None)


def _ticket_called(s: OfficeState, e: dict[str, Any]) -> None:
    c = s.counters[e["counter"]]
    _finish_current(s, c.id, e["ts"])
    t = _t(s, e["ticket"])
    if t.state not in ("waiting", "parked", "no_show"):  # no_show: the citizen came back (op decides when)
        raise EventError(f"ticket {t.number} called in state {t.state}")
    s.set_state(t, "called")
    t.counter, t.called_at, t.reason = c.id, e["ts"], e.get("reason", "")
    t.finished_at = None  # a ticket called back after its no-show is no longer finished
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
    if t.state == "waiting":  # leave the index under the old service / counter first
        s.set_state(t, "called")
    t.counter, t.called_at = None, None
    t.service = e.get("service") or t.service
    t.target_counter = e.get("to_counter")
    t.transfers += 1
    s.set_state(t, "waiting")


def _ticket_parked(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    s.counters[e["counter"]].current = None
    s.set_state(t, "parked")


def _ticket_cancelled(s: OfficeState, e: dict[str, Any]) -> None:
    t = _t(s, e["ticket"])
    s.set_state(t, "cancelled")
    t.finished_at = e["ts"]


def _counter_state(s: OfficeState, e: dict[str, Any]) -> None:
    new = {"counter_opened": "open", "counter_paused": "paused", "counter_closed": "closed"}[e["type"]]
    c = s.counters[e["counter"]]
    if new != "open":
        _finish_current(s, c.id, e["ts"])
    if new == "closed":  # the tickets transferred to it go back to their service's queue, arrival kept
        for t in list(s.pool.targeted.get(c.id, ())):  # (no other counter would ever call them)
            s.pool.discard(t)
            t.target_counter = None
            s.pool.add(t)
    c.state, c.pause_reason, c.since = new, e.get("reason", ""), e["ts"]


def _assist_requested(s: OfficeState, e: dict[str, Any]) -> None:
    s.assist_count += 1
    s.assists[e["id"]] = Assist(e["id"], e["terminal"], e["ts"])
    s.open_assists[e["terminal"]] = e["id"]


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
        if s.open_assists.get(a.terminal) == a.id:
            del s.open_assists[a.terminal]


def _lease_granted(s: OfficeState, e: dict[str, Any]) -> None:
    s.leases.append({k: e[k] for k in ("node", "service", "prefix", "first", "count", "ts")})
    s.lease_next[e["prefix"]] = e["first"] + e["count"]


def _appointment(e: dict[str, Any]) -> Appointment:
    return Appointment(
        e["code"],
        e["service"],
        e["slot"],
        counter=e.get("counter"),
        note=e.get("note", ""),
        cancelled=e.get("cancelled", False),
        version=e.get("version"),
    )


def _appointment_booked(s: OfficeState, e: dict[str, Any]) -> None:
    s.appointments[e["code"]] = _appointment(e)


def _appointment_moved(s: OfficeState, e: dict[str, Any]) -> None:
    a = s.appointments.get(e["code"])
    if a is None:
        raise EventError(f"event moves unknown appointment {e['code']}")
    a.slot, a.service, a.counter = e["slot"], e.get("service", a.service), e.get("counter")
    a.version = e.get("version", a.version)
    a.cancelled = False


def _appointment_cancelled(s: OfficeState, e: dict[str, Any]) -> None:
    a = s.appointments.get(e["code"])
    if a is None:
        raise EventError(f"event cancels unknown appointment {e['code']}")
    a.cancelled, a.counter = True, None
    a.version = e.get("version", a.version)


def _intake_set(s: OfficeState, e: dict[str, Any]) -> None:
    if e.get("auto"):
        s.intake.pop(e["service"], None)
    else:
        s.intake[e["service"]] = Intake(e["open"], e.get("reason", ""), e.get("manual", False))


def _reservation_made(s: OfficeState, e: dict[str, Any]) -> None:
    if e["code"] in s.reservations:
        raise EventError(f"reservation code {e['code']} made twice")
    r = s.reservations[e["code"]] = Reservation(
        code=e["code"],
        service=e["service"],
        reserved_at=e["ts"],
        arrive_by=e["arrive_by"],
        expires_at=e["expires_at"],
        lang=e.get("lang", "de"),
        priority=e.get("priority", False),
        origin=e.get("node", ""),
    )
    s.open_reservations.setdefault(r.service, {})[r.code] = r


def _reservation_lapsed(s: OfficeState, e: dict[str, Any]) -> None:
    r = s.reservations.get(e["code"])
    if r is None or r.state != "reserved":
        raise EventError(f"reservation {e['code']} lapsed but not open")
    r.state, r.finished_at = "lapsed", e["ts"]
    s.open_reservations.get(r.service, {}).pop(r.code, None)


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
    "appointment_moved": _appointment_moved,
    "appointment_cancelled": _appointment_cancelled,
    "intake_set": _intake_set,
    "reservation_made": _reservation_made,
    "reservation_lapsed": _reservation_lapsed,
}
EVENT_TYPES = tuple(_HANDLERS)


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return asdict(t)
