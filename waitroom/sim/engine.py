"""The discrete-event simulation of one office day, with the real steering and the real predictor.

The simulator owns no queue logic of its own: it synthesizes the events the controller would record
(``ticket_issued``, ``ticket_called``, ``ticket_served``, ...) and folds them into a real ``OfficeState`` with
``waitroom.model.apply``; which ticket a free counter calls is decided by ``RuleSelector.select`` and every
arriving citizen gets the forecast of ``WaitPredictor`` -- the same objects the controller uses. The automatic
intake stop uses ``waitroom.predict.intake_decision`` like ``Office.tick``.

(Driving ``Office`` itself through an in-memory SQLite log was measured too: about 20x slower, mostly JSON and
SQLite per event, so a 600-citizen day would no longer be interactive.)
"""

from __future__ import annotations

import heapq
import logging
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from waitroom.config import Config
from waitroom.model import OfficeState, apply, format_number
from waitroom.predict import INF, ServiceTimes, WaitPredictor, intake_decision, ql, zms
from waitroom.sim.scenario import DayPlan
from waitroom.steering import RuleSelector

log = logging.getLogger(__name__)

PREDICTORS = ("waitroom", "QL", "LES", "HOL", "ZMS")


@dataclass(slots=True)
class Record:
    """One citizen of a simulated day (numbers only, like the real log)."""

    service: str
    arrival: float
    kind: str = "walk_in"  # walk_in, appointment, late_walk_in
    priority: bool = False
    slot: float | None = None
    ticket: str | None = None
    called: float | None = None
    outcome: str = "waiting"  # served, no_show, abandoned, turned_away, unserved
    delayed: bool = False  # no free counter for the service on arrival
    counter: str | None = None
    reason: str = ""
    predictions: dict[str, float] = field(default_factory=dict)
    left: float | None = None  # gave up waiting at this time (abandoned)
    ghost_called: float | None = None  # an abandoned ticket's call: a no-show that cost the counter time
    overtaken_wait: float | None = None  # longest wait at which a later priority ticket was called first

    @property
    def wait(self) -> float | None:
        return None if self.called is None else self.called - self.arrival


@dataclass
class DayResult:
    records: list[Record]
    busy: dict[str, float]  # counter -> seconds serving
    staffed: dict[str, float]  # counter -> seconds on shift
    events: int
    end: float
    intake_changes: list[tuple[float, str, bool]]
    open: float = 0.0
    close: float = 0.0


class DaySim:
    """Simulate one ``DayPlan`` under one office configuration (with its steering rules)."""

    def __init__(
        self, cfg: Config, plan: DayPlan, *, times: ServiceTimes | None = None, predict: bool = True
    ):
        self.cfg, self.plan, self.predict = cfg, plan, predict
        self.selector = RuleSelector()
        self.times = times or ServiceTimes(cfg)
        self.predictor = WaitPredictor(self.times)
        self.state = OfficeState()
        self.now = plan.start
        self.heap: list[tuple[float, int, str, Any]] = []
        self._n = 0
        self.events = 0
        self.last_done = plan.start  # when the last citizen left a counter (the day's real end)
        self.records: list[Record] = []
        self.by_ticket: dict[str, Record] = {}
        self.busy = {c.id: 0.0 for c in cfg.counters}
        self.staffed = {c.id: 0.0 for c in cfg.counters}
        self.on_shift: dict[str, float | None] = {c.id: None for c in cfg.counters}  # shift end, or None
        self.serving: dict[str, tuple[str, float, bool] | None] = {c.id: None for c in cfg.counters}
        self.serves = {c.id: set(c.services) for c in cfg.counters}
        # counters on shift and not serving, per service (an arrival finds a free counter without a scan);
        # taken in the configuration's order, as a scan of on_shift would
        self._order = {c.id: i for i, c in enumerate(cfg.counters)}
        self._idle: dict[str, list[tuple[int, str]]] = {}  # service -> sorted (config order, counter) idle
        self.last_start: dict[
            str, float
        ] = {}  # service -> wait of the last citizen who entered service (LES)
        self.intake_changes: list[tuple[float, str, bool]] = []
        # service times are learned when something uses them: the predictors or the intake stop
        self.learn = predict or cfg.steering.intake_stop.enabled
        self._intake = cfg.steering.intake_stop.enabled
        self._appt = cfg.steering.appointments
        self._prefix = {sv.id: sv.prefix for sv in cfg.services}
        self.durations: dict[str, tuple[float, bool]] = {}  # ticket -> (service time, no-show)
        self._seq_ticket = 0

    # -- plumbing
    def push(self, t: float, kind: str, data: Any) -> None:
        self._n += 1
        heapq.heappush(self.heap, (t, self._n, kind, data))

    def emit(self, type_: str, **data: Any) -> None:
        event = {"type": type_, "ts": self.now, "seq": self.state.seq + 1, **data}
        apply(self.state, event)
        if self.learn:
            self.times.observe((event,))
        self.events += 1

    # -- the day
    def run(self) -> DayResult:
        p, cfg = self.plan, self.cfg
        self.emit(
            "day_started",
            day="sim",
            numbers={s.prefix: cfg.office.ticket_start for s in cfg.services},
            counters={c.id: "closed" for c in cfg.counters},
            appointments=[{"code": c, "service": s, "slot": t} for c, s, t in p.appointments],
        )
        for a in p.arrivals:
            self.push(a.t, "arrive", a)
        for cid, spans in p.shifts.items():
            for start, end in spans:
                self.push(start, "shift_start", (cid, end))
        while self.heap:
            self.now, _, kind, data = heapq.heappop(self.heap)
            getattr(self, "on_" + kind)(data)
        for cid, end in self.on_shift.items():
            if end is not None:
                self._close(cid)
        for r in self.records:
            if r.outcome == "waiting":
                r.outcome = "unserved"
        return DayResult(
            # end: the last service, not the last timer (a pending patience timer is no overtime)
            self.records,
            self.busy,
            self.staffed,
            self.events,
            self.last_done,
            self.intake_changes,
            p.open,
            p.close,
        )

    def on_shift_start(self, data: tuple[str, float]) -> None:
        cid, end = data
        if self.on_shift[cid] is not None:
            # still on the previous shift (serving its last citizen): the shifts join, the counter stays open
            self.on_shift[cid] = max(end, self.on_shift[cid])  # type: ignore[type-var]
            self.push(end, "shift_end", cid)
            return
        self.on_shift[cid] = end
        self._set_idle(cid, self.serving[cid] is None)
        self.staffed[cid] -= self.now
        self.emit("counter_opened", counter=cid)
        self.push(end, "shift_end", cid)
        self.call(cid)

    def on_shift_end(self, cid: str) -> None:
        if self.on_shift[cid] is None or self.on_shift[cid] > self.now:
            return  # a later shift of the same counter moved the end
        if self.serving[cid] is None:
            self.call(cid)  # closes the counter unless it stays to serve those still waiting

    def _overtime(self, cid: str) -> bool:
        """At closing time the staff serve everybody who holds a ticket."""
        s = self.state
        return self.now >= self.plan.close and (
            any(s.waiting_count.get(sid) for sid in self.serves[cid]) or bool(s.pool.targeted.get(cid))
        )

    def _set_idle(self, cid: str, idle: bool) -> None:
        key = (self._order[cid], cid)
        for sid in self.serves[cid]:
            free = self._idle.get(sid)
            if free is None:
                free = self._idle[sid] = []
            i = bisect_left(free, key)  # at most the counters of the office: a plain sorted list is quickest
            present = i < len(free) and free[i] == key
            if not idle:
                if present:
                    del free[i]
            elif not present:
                free.insert(i, key)

    def _close(self, cid: str) -> None:
        self.on_shift[cid] = None
        self._set_idle(cid, False)
        self.staffed[cid] += self.now
        self.emit("counter_closed", counter=cid)

    def on_arrive(self, a: Any) -> None:
        cfg, s = self.cfg, self.state
        kind = "walk_in"
        slot = a.slot
        if a.slot is not None:
            rules = self._appt
            if self.now > a.slot + rules.late_min * 60:
                kind, slot = "late_walk_in", None
        r = Record(
            a.service,
            self.now,
            kind if a.slot is None or kind == "late_walk_in" else "appointment",
            a.priority,
            a.slot,
        )
        self.records.append(r)
        if kind == "late_walk_in" and self._appt.late_arrival == "refuse":
            r.outcome = "turned_away"
            return
        if slot is None and self.now > self.plan.close:
            r.outcome = "turned_away"
            return
        free = self._idle.get(a.service) or ()  # in the configuration's order, as a scan of on_shift gives
        r.delayed = not free
        fc = None
        if (not free and self.predict) or (slot is None and self._intake):
            # with a free counter for the service the newcomer is called at once: every predictor says 0
            fc = self.predictor.forecast(
                s, cfg, self.selector, self.now, probes=[a.service], stop_when_probed=True
            )
        if slot is None and fc is not None:
            change = intake_decision(cfg, fc, a.service, self.now, s.intake.get(a.service))
            if change is not None:
                self.emit("intake_set", service=a.service, open=change[0], reason=change[1], manual=False)
                self.intake_changes.append((self.now, a.service, change[0]))
            i = s.intake.get(a.service)
            if i is not None and not i.open:
                r.outcome = "turned_away"
                return
        if self.predict:
            self._classical(r, fc.per_service.get(a.service, INF) if fc is not None else 0.0)
        self._seq_ticket += 1
        tid = f"t{self._seq_ticket}"
        prefix = self._prefix[a.service]
        number = format_number(prefix, s.next_number.get(prefix, 1))
        extra = {"appointment": slot, "appointment_code": a.code} if slot is not None else {}
        self.emit(
            "ticket_issued",
            id=tid,
            number=number,
            service=a.service,
            priority=a.priority and slot is None,
            **extra,
        )
        r.ticket = tid
        self.by_ticket[tid] = r
        self.durations[tid] = (a.duration, a.no_show)
        if a.patience is not None:
            self.push(self.now + a.patience, "abandon", tid)
        if free:
            # the first free counter calls the newcomer (the others had nobody before either); only if it
            # does not, the next ones in turn -- no sort of every idle counter per arrival
            first = free[0][1]
            if not self.call(first):
                for _, cid in list(free):
                    if cid != first and self.call(cid):
                        break

    def _classical(self, r: Record, ours: float) -> None:
        """Predictions of the classical estimators for the arriving citizen (same service, same counters)."""
        s = self.state
        servers = [
            cid for cid, end in self.on_shift.items() if end is not None and r.service in self.serves[cid]
        ]
        m = self.times.mean(r.service, hour=self.times.hour(self.now))
        if not r.delayed:
            base = dict.fromkeys(PREDICTORS, 0.0)
        else:
            n = s.n_waiting(r.service)
            heads = [lst[0] for d in (s.pool.normal, s.pool.priority) if (lst := d.get(r.service))]
            hol = max((self.now - t.issued_at for t in heads), default=0.0)
            base = {
                "QL": ql(n, len(servers), m),
                "ZMS": zms(n, len(servers), m),
                "LES": self.last_start.get(r.service, 0.0),
                "HOL": hol,
            }
        base["waitroom"] = ours
        r.predictions = base

    def on_abandon(self, tid: str) -> None:
        t = self.state.tickets[tid]
        if t.state == "waiting":
            r = self.by_ticket[tid]
            r.outcome, r.left = "abandoned", self.now
            if self.plan.abandoned_called:
                return  # the ticket stays in the queue: when it is called, nobody comes (a no-show)
            self.emit("ticket_cancelled", ticket=tid, reason="abandoned")

    def call(self, cid: str) -> bool:
        """A free counter calls the next ticket by the office's rules; True when it called one."""
        end = self.on_shift[cid]
        if end is None or self.serving[cid] is not None:
            return False
        if self.now >= end and not self._overtime(cid):
            self._close(cid)
            return False
        cs = self.state.counters[cid]
        # the controller's own selection (RuleSelector.select without the German explanation text)
        choice = self.selector.choose(
            self.cfg,
            cid,
            self.now,
            self.state.pool,
            cs.calls_since_priority,
            cs.priority_calls,
            state=self.state,
        )
        if choice is None:
            if self.now >= end:
                self._close(cid)
            return False
        tid = choice.ticket.id
        if choice.ticket.priority and choice.ticket.appointment is None and choice.rule != "transferred":
            self._overtaken(cid, choice.ticket)
        self.emit("ticket_called", ticket=tid, counter=cid, reason=choice.rule)
        r = self.by_ticket[tid]
        duration, no_show = self.durations[tid]
        if r.left is not None:  # gave up earlier: called in vain
            r.ghost_called, r.counter, r.reason = self.now, cid, choice.rule
            duration, no_show = self.plan.no_show_s, True
        else:
            r.called, r.counter, r.reason = self.now, cid, choice.rule
            self.last_start[r.service] = self.now - r.arrival
            if no_show:
                duration = self.plan.no_show_s
            r.outcome = "no_show" if no_show else "served"
        self.serving[cid] = (tid, self.now, no_show)
        self._set_idle(cid, False)
        self.push(self.now + duration, "done", cid)
        return True

    def _overtaken(self, cid: str, p: Any) -> None:
        """A priority ticket is called: every normal ticket this counter could have called instead and that
        came earlier is overtaken (measured against the cap; only the simulator looks)."""
        pool = self.state.pool
        for sid in self.serves[cid]:
            for t in pool.normal.get(sid, ()):
                if t.issued_at >= p.issued_at:
                    break
                r = self.by_ticket[t.id]
                if r.left is not None:
                    continue
                w = self.now - t.issued_at
                if r.overtaken_wait is None or w > r.overtaken_wait:
                    r.overtaken_wait = w

    def on_done(self, cid: str) -> None:
        tid, start, no_show = self.serving[cid]  # type: ignore[misc]
        self.serving[cid] = None
        self._set_idle(cid, self.on_shift[cid] is not None)
        self.busy[cid] += self.now - start
        self.last_done = max(self.last_done, self.now)
        self.emit("ticket_no_show" if no_show else "ticket_served", ticket=tid, counter=cid)
        self.call(cid)
