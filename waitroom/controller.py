"""The office controller: owns the queue of one office.

``Office`` is transport-free: ``handle(node_id, raw_payload)`` validates a command, decides, records the
decision as events in the SQLite log (committed before anything is published) and returns the reply and the
messages to publish. ``ControllerService`` (waitroom.service) connects it to MQTT. The simulator drives
``Office``'s selection and prediction directly.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from waitroom import contract
from waitroom.config import Config
from waitroom.contract import Command, ContractError, ErrorCode, EventKind, Role
from waitroom.model import OfficeState, Ticket, apply, format_number
from waitroom.predict import Forecast, Predictor, WaitPredictor, intake_decision
from waitroom.steering import RuleSelector, Selector
from waitroom.store import EventStore

log = logging.getLogger(__name__)

MAX_LEASE = 200
REPLY_KEEP_S = 2 * 86400


class OpError(Exception):
    """An operation was refused; becomes an error reply with a stable code."""

    def __init__(self, code: ErrorCode, message: str, *, keep_effects: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.keep_effects = keep_effects  # the events emitted before the refusal still count


@dataclass
class Outcome:
    """What one command or tick produced: the reply (if any) and the messages to publish."""

    reply: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


class Office:
    def __init__(
        self,
        cfg: Config,
        store: EventStore,
        *,
        clock: Callable[[], float] = time.time,
        selector: Selector | None = None,
        predictor: Predictor | None = None,
        new_id: Callable[[], str] = lambda: secrets.token_hex(5),
    ):
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.selector: Selector = selector or RuleSelector()
        self.predictor = predictor or WaitPredictor.learned(store, cfg, clock())
        self.new_id = new_id
        self.state = OfficeState()
        self._pending: list[dict[str, Any]] = []
        self._forecast: Forecast | None = None
        self._forecast_key: tuple[int, int, int] | None = None
        self._pruned_at = 0.0
        self.rebuild()

    # ------------------------------------------------------------------------------------ state
    def rebuild(self) -> None:
        """Rebuild the state exactly from the event log (start-up, or after a failed transaction)."""
        self.state = OfficeState()
        n = 0
        for event in self.store.events_since_day_start():
            apply(self.state, event)
            n += 1
        self._forecast = None
        log.info(
            "state rebuilt from %d events (seq %d, day %s, %d tickets)",
            n,
            self.state.seq,
            self.state.day or "-",
            len(self.state.tickets),
        )

    def _emit(self, type_: str, **data: Any) -> dict[str, Any]:
        event = {"type": type_, "ts": round(self.clock(), 3), "seq": self.state.seq + 1, **data}
        apply(self.state, event)
        self._pending.append(event)
        return event

    def _ensure_day(self) -> None:
        today = self.cfg.office.today(self.clock())
        if self.state.day != today:
            now = self.clock()
            self._emit(
                "day_started",
                day=today,
                numbers={s.prefix: self.cfg.office.ticket_start for s in self.cfg.services},
                counters={c.id: c.initially for c in self.cfg.counters},
                appointments=[
                    {"code": a.code, "service": a.service, "slot": a.slot}
                    for a in self.state.appointments.values()
                    if a.slot >= now
                ],
            )

    FORECAST_REFRESH_S = 30.0

    def forecast(self) -> Forecast:
        """The waiting-time forecast, computed once per state change (and refreshed every 30 s of waiting)."""
        now = self.clock()
        key = (self.state.seq, len(self._pending), int(now // self.FORECAST_REFRESH_S))
        if self._forecast is None or self._forecast_key != key:
            self._forecast = self.predictor.forecast(self.state, self.cfg, self.selector, now)
            self._forecast_key = key
        return self._forecast

    # ------------------------------------------------------------------------------------ commands
    def handle(self, node_id: str, raw: bytes) -> Outcome:
        """Validate and execute one command from ``node_id``. Never raises for bad input."""
        rid: str | None = None
        try:
            role = self.cfg.role_of(node_id)
            data = contract.decode(raw)
            rid = data.get("id") if isinstance(data.get("id"), str) else None
            if role is None:
                raise ContractError(
                    ErrorCode.UNKNOWN_NODE, f"node {node_id!r} is not in the office configuration"
                )
            cmd = contract.parse_command(data, role)
        except ContractError as exc:
            log.warning("rejected command from %s: %s %s", node_id, exc.code.value, exc.message)
            return Outcome(contract.error_reply(rid, exc.code, exc.message))
        return self.execute(node_id, role, cmd)

    def execute(self, node_id: str, role: Role, cmd: Command) -> Outcome:
        digest = hashlib.sha256(contract.encode({"op": cmd.op.name, "args": cmd.args})).hexdigest()[:32]
        seen = self.store.reply_for(node_id, cmd.id)
        if seen is not None:
            old_digest, reply = seen
            if old_digest != digest:
                reply = contract.error_reply(
                    cmd.id, ErrorCode.DUPLICATE, f"request id {cmd.id} was already used for another command"
                )
            log.info("repeated request %s from %s: same reply again", cmd.id, node_id)
            return Outcome(reply)
        self._pending = []
        keep = True
        try:
            self._ensure_day()
            handler = getattr(self, "op_" + cmd.op.name.replace(".", "_"))
            result = handler(node_id, role, **cmd.args)
            reply = contract.ok_reply(cmd.id, result)
        except OpError as exc:
            reply = contract.error_reply(cmd.id, exc.code, exc.message)
            keep = exc.keep_effects
            log.info("%s %s from %s refused: %s", cmd.op.name, cmd.id, node_id, exc.message)
        except (TypeError, ValueError, KeyError) as exc:
            reply = contract.error_reply(cmd.id, ErrorCode.BAD_REQUEST, f"{cmd.op.name}: {exc}")
            self._pending = []
            self.rebuild()
        except Exception:
            log.exception("internal error in %s from %s", cmd.op.name, node_id)
            self._pending = []
            self.rebuild()
            return Outcome(
                contract.error_reply(cmd.id, ErrorCode.INTERNAL, "internal error; nothing changed")
            )
        events, self._pending = self._pending, []
        dropped = False
        if not keep and events:
            # A refused operation may have started the day; keep that event but nothing else.
            kept = [e for e in events if e["type"] == "day_started"]
            dropped, events = len(kept) < len(events), kept
        try:
            self.store.commit(events, (node_id, cmd.id, digest, reply), now=self.clock())
        except Exception:
            log.exception("could not write the event log; %s from %s not done", cmd.op.name, node_id)
            self.rebuild()
            return Outcome(contract.error_reply(cmd.id, ErrorCode.INTERNAL, "event log not writable"))
        if dropped:
            self.rebuild()
        if events:
            getattr(self.predictor, "observe", lambda _: None)(events)  # learn service times
        return Outcome(reply, events)

    def prune(self) -> None:
        """Forget replies older than two days (a retry comes within seconds; the log keeps every event)."""
        if self.clock() - self._pruned_at >= 3600:
            self._pruned_at = self.clock()
            n = self.store.prune_replies(self.clock() - REPLY_KEEP_S)
            if n:
                log.info("pruned %d stored replies older than %d days", n, REPLY_KEEP_S // 86400)

    def tick(self) -> Outcome:
        """Time-driven changes: a new day, assistance escalation. Call about once a second."""
        self._pending = []
        now = self.clock()
        try:
            self.prune()
            self._ensure_day()
            levels = self.cfg.controller.assist_escalate_s
            for a in list(self.state.assists.values()):
                if a.state != "pending":
                    continue
                due = sum(1 for s in levels if now - a.requested_at >= s)
                if due > a.level:
                    log.warning(
                        "assistance %s at %s unacknowledged for %.0f s: escalation level %d",
                        a.id,
                        a.terminal,
                        now - a.requested_at,
                        due,
                    )
                    self._emit("assist_escalated", id=a.id, terminal=a.terminal, level=due)
            self._auto_intake(now)
            events, self._pending = self._pending, []
            if events:
                self.store.commit(events, None)
            return Outcome(None, events)
        except Exception:
            log.exception("tick failed")
            self._pending = []
            self.rebuild()
            return Outcome()

    # -- helpers
    def _service(self, sid: Any) -> str:
        if not isinstance(sid, str) or sid not in self.cfg.service_ids:
            raise OpError(
                ErrorCode.UNKNOWN_SERVICE,
                f"unknown service {sid!r}; known: {', '.join(sorted(self.cfg.service_ids))}",
            )
        return sid

    def _counter(self, node_id: str, role: Role, cid: Any) -> str:
        if not isinstance(cid, str) or cid not in self.cfg.counter_ids:
            raise OpError(ErrorCode.UNKNOWN_COUNTER, f"unknown counter {cid!r}")
        if role is Role.COUNTER and self.cfg.node(node_id).counter != cid:
            raise OpError(
                ErrorCode.FORBIDDEN,
                f"node {node_id} operates counter {self.cfg.node(node_id).counter}, not {cid}",
            )
        return cid

    def _ticket(self, ref: Any, states: tuple[str, ...]) -> Ticket:
        t = self.state.ticket(ref) if isinstance(ref, str) else None
        if t is None or t.state not in states:
            raise OpError(ErrorCode.UNKNOWN_TICKET, f"no {'/'.join(states)} ticket {ref!r} today")
        return t

    def _current(self, cid: str) -> Ticket:
        c = self.state.counters[cid]
        if c.current is None:
            raise OpError(ErrorCode.NOT_SERVING, f"counter {cid} has no called ticket")
        return self.state.tickets[c.current]

    @staticmethod
    def _bool(v: Any, name: str) -> bool:
        if not isinstance(v, bool):
            raise OpError(ErrorCode.BAD_REQUEST, f"{name} must be true or false")
        return v

    def ticket_info(self, t: Ticket) -> dict[str, Any]:
        fc = self.forecast()
        eta = fc.per_ticket.get(t.id)
        ahead = (
            sum(
                1
                for o in self.selector.order(self.state, self.cfg, self.clock())
                if o.id != t.id
                and o.service == t.service
                and (o.priority, -o.issued_at) >= (t.priority, -t.issued_at)
            )
            if t.state == "waiting"
            else 0
        )
        return {
            "id": t.id,
            "number": t.number,
            "service": t.service,
            "state": t.state,
            "issued_at": t.issued_at,
            "priority": t.priority,
            "appointment": t.appointment,
            "ahead": ahead,
            "eta_min": None if eta is None or eta == float("inf") else round(eta / 60),
            "counter": t.counter,
        }

    def _auto_intake(self, now: float) -> None:
        """Annahmeschluss: stop or reopen walk-in intake when the predicted completion crosses closing."""
        fc = self.forecast()  # cached per state change and 30 s, so the 1 s tick stays cheap
        for svc in self.cfg.services:
            change = (
                intake_decision(self.cfg, fc, svc.id, now, self.state.intake.get(svc.id))
                if svc.walk_in
                else None
            )
            if change is not None:
                log.info("intake for %s automatically %s", svc.id, "reopened" if change[0] else "stopped")
                self._emit("intake_set", service=svc.id, open=change[0], reason=change[1], manual=False)

    def intake_open(self, sid: str) -> tuple[bool, str]:
        i = self.state.intake.get(sid)
        if i is not None:
            return i.open, i.reason
        return True, ""

    def _issue(
        self,
        node_id: str,
        service: str,
        *,
        priority: bool = False,
        appointment: float | None = None,
        code: str | None = None,
    ) -> Ticket:
        prefix = self.cfg.service(service).prefix
        n = self.state.next_number.get(prefix, self.cfg.office.ticket_start)
        if n >= self.cfg.office.offline_numbers_from:
            raise OpError(ErrorCode.INVALID_STATE, f"ticket numbers for {prefix} are used up today")
        number = format_number(prefix, n)
        e = self._emit(
            "ticket_issued",
            id=self.new_id(),
            number=number,
            service=service,
            priority=priority,
            appointment=appointment,
            node=node_id,
            **({"appointment_code": code} if code else {}),
        )
        return self.state.tickets[e["id"]]

    # -- operations: tickets
    def op_ticket_issue(
        self, node_id: str, role: Role, service: Any, priority: Any = False, lang: Any = "de"
    ) -> dict[str, Any]:
        sid = self._service(service)
        if lang not in ("de", "en"):
            raise OpError(ErrorCode.BAD_REQUEST, "lang must be 'de' or 'en'")
        is_open, reason = self.intake_open(sid)
        if not is_open:
            raise OpError(ErrorCode.INTAKE_STOPPED, reason or f"{sid} takes no more walk-ins today")
        t = self._issue(node_id, sid, priority=self._bool(priority, "priority"))
        return {"ticket": self.ticket_info(t)}

    def op_ticket_cancel(self, node_id: str, role: Role, ticket: Any, reason: Any = "") -> dict[str, Any]:
        t = self._ticket(ticket, ("waiting", "parked"))
        if role is Role.DISPENSER and t.origin != node_id:
            raise OpError(ErrorCode.FORBIDDEN, f"ticket {t.number} was not issued by {node_id}")
        self._emit("ticket_cancelled", ticket=t.id, reason=str(reason)[:100], node=node_id)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_ticket_lease(self, node_id: str, role: Role, service: Any, count: Any = 20) -> dict[str, Any]:
        sid = self._service(service)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_LEASE:
            raise OpError(ErrorCode.BAD_REQUEST, f"count must be an integer 1..{MAX_LEASE}")
        prefix = self.cfg.service(sid).prefix
        # leases come from the top of the range, so walk-in numbers still count from ticket_start
        first = self.state.lease_next.get(prefix, self.cfg.office.offline_numbers_from)
        if first + count - 1 > 999:
            raise OpError(ErrorCode.INVALID_STATE, f"not enough numbers left for {prefix} today")
        self._emit("lease_granted", node=node_id, service=sid, prefix=prefix, first=first, count=count)
        return {
            "lease": {"service": sid, "prefix": prefix, "first": first, "count": count, "day": self.state.day}
        }

    def op_ticket_report_offline(
        self, node_id: str, role: Role, service: Any, number: Any, issued_at: Any, priority: Any = False
    ) -> dict[str, Any]:
        sid = self._service(service)
        prefix = self.cfg.service(sid).prefix
        if not isinstance(number, int) or not isinstance(issued_at, int | float):
            raise OpError(ErrorCode.BAD_REQUEST, "number must be an integer and issued_at epoch seconds")
        lease = next(
            (
                le
                for le in self.state.leases
                if le["node"] == node_id
                and le["prefix"] == prefix
                and le["first"] <= number < le["first"] + le["count"]
            ),
            None,
        )
        if lease is None:
            raise OpError(
                ErrorCode.FORBIDDEN, f"{format_number(prefix, number)} is not in a lease of {node_id}"
            )
        label = format_number(prefix, number)
        existing = self.state.ticket(label)
        if existing is not None:  # reported before (e.g. after a lost reply): same answer
            return {"ticket": self.ticket_info(existing)}
        e = self._emit(
            "ticket_issued",
            id=self.new_id(),
            number=label,
            service=sid,
            priority=self._bool(priority, "priority"),
            node=node_id,
            offline=True,
            arrival=min(float(issued_at), round(self.clock(), 3)),
        )  # keep the real arrival time
        t = self.state.tickets[e["id"]]
        return {"ticket": self.ticket_info(t)}

    def op_appointment_book(
        self, node_id: str, role: Role, code: Any, service: Any, slot: Any
    ) -> dict[str, Any]:
        sid = self._service(service)
        if not isinstance(code, str) or not 3 <= len(code) <= 32 or not code.isalnum():
            raise OpError(ErrorCode.BAD_REQUEST, "code must be 3-32 letters or digits")
        if not isinstance(slot, int | float):
            raise OpError(ErrorCode.BAD_REQUEST, "slot must be epoch seconds")
        self._emit("appointment_booked", code=code.upper(), service=sid, slot=float(slot))
        return {"appointment": {"code": code.upper(), "service": sid, "slot": float(slot)}}

    def op_appointment_checkin(self, node_id: str, role: Role, code: Any) -> dict[str, Any]:
        if not isinstance(code, str):
            raise OpError(ErrorCode.BAD_REQUEST, "code must be a string")
        a = self.state.appointments.get(code.strip().upper())
        if a is None:
            raise OpError(ErrorCode.UNKNOWN_APPOINTMENT, "unknown booking code")
        if a.ticket is not None:
            return {"ticket": self.ticket_info(self.state.tickets[a.ticket])}
        now = self.clock()
        rules = self.cfg.steering.appointments
        if self.cfg.office.today(a.slot) != self.state.day:
            raise OpError(ErrorCode.APPOINTMENT_EXPIRED, "the appointment is not today")
        if now > a.slot + rules.late_min * 60:
            if rules.late_arrival == "refuse" or not self.intake_open(a.service)[0]:
                raise OpError(ErrorCode.APPOINTMENT_EXPIRED, "the appointment time has passed")
            # steering rule: a late arrival becomes a walk-in (queued from now, without the appointment)
            t = self._issue(node_id, a.service, code=a.code)
            return {"ticket": self.ticket_info(t)}
        t = self._issue(node_id, a.service, appointment=a.slot, code=a.code)
        return {"ticket": self.ticket_info(t)}

    # -- operations: counters
    def _call(self, cid: str, t: Ticket, reason: str) -> dict[str, Any]:
        self._emit("ticket_called", ticket=t.id, counter=cid, reason=reason, number=t.number)
        return {
            "call": {
                "ticket": t.number,
                "ticket_id": t.id,
                "service": t.service,
                "counter": cid,
                "reason": reason,
            }
        }

    def op_counter_call_next(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        now = self.clock()
        decision = self.selector.select(self.state, cid, self.cfg, now)
        if decision is None:
            c = self.state.counters[cid]
            if c.current is not None:  # finish the current ticket even when nobody else waits
                t = self.state.tickets[c.current]
                self._emit("ticket_served", ticket=t.id, counter=cid)
            if c.state != "open":
                self._emit("counter_opened", counter=cid)
            raise OpError(ErrorCode.NOBODY_WAITING, f"nobody is waiting for counter {cid}", keep_effects=True)
        return self._call(cid, self.state.tickets[decision.ticket], decision.reason)

    def op_counter_recall(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        t = self._current(cid)
        self._emit("ticket_recalled", ticket=t.id, counter=cid)
        return {"call": {"ticket": t.number, "ticket_id": t.id, "counter": cid, "recall": True}}

    def _finish(self, node_id: str, role: Role, counter: Any, kind: str) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        t = self._current(cid)
        self._emit(kind, ticket=t.id, counter=cid)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_counter_served(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        return self._finish(node_id, role, counter, "ticket_served")

    def op_counter_no_show(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        return self._finish(node_id, role, counter, "ticket_no_show")

    def op_counter_transfer(
        self, node_id: str, role: Role, counter: Any, service: Any = None, to_counter: Any = None
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        if (service is None) == (to_counter is None):
            raise OpError(ErrorCode.BAD_REQUEST, "give exactly one of service or to_counter")
        t = self._current(cid)
        if service is not None:
            self._emit("ticket_transferred", ticket=t.id, counter=cid, service=self._service(service))
        else:
            if not isinstance(to_counter, str) or to_counter not in self.cfg.counter_ids:
                raise OpError(ErrorCode.UNKNOWN_COUNTER, f"unknown counter {to_counter!r}")
            self._emit("ticket_transferred", ticket=t.id, counter=cid, to_counter=to_counter)
        return {
            "ticket": {
                "number": t.number,
                "state": t.state,
                "service": t.service,
                "to_counter": t.target_counter,
            }
        }

    def op_counter_park(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        t = self._current(cid)
        self._emit("ticket_parked", ticket=t.id, counter=cid)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_counter_call_ticket(self, node_id: str, role: Role, counter: Any, ticket: Any) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        t = self._ticket(ticket, ("waiting", "parked"))
        return self._call(cid, t, "called by staff" if t.state == "waiting" else "called back from parked")

    def _counter_state(
        self, node_id: str, role: Role, counter: Any, kind: str, reason: str = ""
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        target = {"counter_opened": "open", "counter_paused": "paused", "counter_closed": "closed"}[kind]
        c = self.state.counters[cid]
        if c.state != target or (reason and reason != c.pause_reason):
            self._emit(kind, counter=cid, **({"reason": reason} if reason else {}))
        return {"counter": {"id": cid, "state": c.state, "reason": c.pause_reason}}

    def op_counter_open(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        return self._counter_state(node_id, role, counter, "counter_opened")

    def op_counter_pause(self, node_id: str, role: Role, counter: Any, reason: Any = "") -> dict[str, Any]:
        if not isinstance(reason, str) or len(reason) > 80:
            raise OpError(ErrorCode.BAD_REQUEST, "reason must be a text of at most 80 characters")
        return self._counter_state(node_id, role, counter, "counter_paused", reason or "Pause")

    def op_counter_close(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        return self._counter_state(node_id, role, counter, "counter_closed")

    # -- operations: assistance
    def _terminal(self, node_id: str, role: Role, terminal: Any) -> str:
        if not isinstance(terminal, str) or self.cfg.role_of(terminal) is not Role.ASSIST:
            raise OpError(ErrorCode.UNKNOWN_NODE, f"{terminal!r} is not an assistance terminal")
        if role is Role.ASSIST and terminal != node_id:
            raise OpError(ErrorCode.FORBIDDEN, f"node {node_id} may only ask for help for itself")
        return terminal

    def _assist_info(self, aid: str) -> dict[str, Any]:
        a = self.state.assists[aid]
        return {
            "id": a.id,
            "terminal": a.terminal,
            "state": a.state,
            "level": a.level,
            "counter": a.counter,
            "requested_at": a.requested_at,
        }

    def op_assist_request(self, node_id: str, role: Role, terminal: Any) -> dict[str, Any]:
        term = self._terminal(node_id, role, terminal)
        existing = self.state.open_assist(term)
        if existing is not None:  # pressing again while pending changes nothing
            return {"assist": self._assist_info(existing.id)}
        aid = f"h{self.state.assist_count + 1}"
        self._emit("assist_requested", id=aid, terminal=term)
        return {"assist": self._assist_info(aid)}

    def op_assist_cancel(
        self, node_id: str, role: Role, terminal: Any, request: Any = None
    ) -> dict[str, Any]:
        term = self._terminal(node_id, role, terminal)
        a = self.state.open_assist(term)
        if a is None or (request is not None and a.id != request):
            raise OpError(ErrorCode.UNKNOWN_REQUEST, f"no open assistance request at {term}")
        self._emit("assist_cancelled", id=a.id, terminal=term)
        return {"assist": self._assist_info(a.id)}

    def _assist(self, request: Any) -> str:
        if (
            not isinstance(request, str)
            or request not in self.state.assists
            or self.state.assists[request].state not in ("pending", "acknowledged")
        ):
            raise OpError(ErrorCode.UNKNOWN_REQUEST, f"no open assistance request {request!r}")
        return request

    def _staff_counter(self, node_id: str, role: Role, counter: Any) -> str | None:
        if role is Role.COUNTER:
            return self.cfg.node(node_id).counter
        if counter is None:
            return None
        return self._counter(node_id, role, counter)

    def op_assist_acknowledge(
        self, node_id: str, role: Role, request: Any, counter: Any = None
    ) -> dict[str, Any]:
        aid = self._assist(request)
        a = self.state.assists[aid]
        if a.state == "acknowledged":
            raise OpError(ErrorCode.INVALID_STATE, f"request {aid} is already acknowledged by {a.counter}")
        self._emit(
            "assist_acknowledged",
            id=aid,
            terminal=a.terminal,
            counter=self._staff_counter(node_id, role, counter),
        )
        return {"assist": self._assist_info(aid)}

    def op_assist_resolve(
        self, node_id: str, role: Role, request: Any, counter: Any = None
    ) -> dict[str, Any]:
        aid = self._assist(request)
        a = self.state.assists[aid]
        self._emit(
            "assist_resolved",
            id=aid,
            terminal=a.terminal,
            counter=self._staff_counter(node_id, role, counter),
        )
        return {"assist": self._assist_info(aid)}

    # -- operations: intake
    def op_intake_set(
        self, node_id: str, role: Role, service: Any, open: Any = None, reason: Any = "", auto: Any = False
    ) -> dict[str, Any]:
        sid = self._service(service)
        if self._bool(auto, "auto"):
            self._emit("intake_set", service=sid, auto=True)
        else:
            self._emit(
                "intake_set",
                service=sid,
                open=self._bool(open, "open"),
                reason=str(reason)[:120],
                manual=True,
            )
        is_open, why = self.intake_open(sid)
        return {"intake": {"service": sid, "open": is_open, "reason": why}}

    # ------------------------------------------------------------------------------------ publishing
    def snapshot(self) -> dict[str, Any]:
        """The retained office state from which every display and UI rebuilds."""
        s, cfg, now = self.state, self.cfg, self.clock()
        fc = self.forecast()
        order = self.selector.order(s, cfg, now)

        def minutes(sec: float | None) -> int | None:
            return None if sec is None or sec == float("inf") else round(sec / 60)

        services = []
        for svc in cfg.services:
            is_open, reason = self.intake_open(svc.id)
            services.append(
                {
                    "id": svc.id,
                    "prefix": svc.prefix,
                    "name": svc.name.model_dump(),
                    "waiting": sum(1 for t in order if t.service == svc.id),
                    "eta_min": minutes(fc.per_service.get(svc.id)),
                    "intake_open": is_open,
                    "intake_reason": reason,
                }
            )
        counters = []
        for c in cfg.counters:
            cs = s.counters.get(c.id)
            cur = s.tickets.get(cs.current) if cs and cs.current else None
            counters.append(
                {
                    "id": c.id,
                    "name": c.name.model_dump(),
                    "spoken": (c.spoken or c.name).model_dump(),
                    "zone": c.zone,
                    "services": list(c.services),
                    "state": cs.state if cs else "closed",
                    "reason": cs.pause_reason if cs else "",
                    "serving": {
                        "ticket": cur.number,
                        "ticket_id": cur.id,
                        "service": cur.service,
                        "called_at": cur.called_at,
                        "recalls": cur.recalls,
                        "reason": cur.reason,
                    }
                    if cur
                    else None,
                    "served": cs.served if cs else 0,
                }
            )
        calls = [
            {"ticket": c.ticket, "service": c.service, "counter": c.counter, "ts": c.ts, "recall": c.recall}
            for c in list(s.calls)[: cfg.controller.recent_calls]
        ]
        waiting = [
            {
                "ticket": t.number,
                "id": t.id,
                "service": t.service,
                "since": t.issued_at,
                "priority": t.priority,
                "appointment": t.appointment,
                "to_counter": t.target_counter,
                "eta_min": minutes(fc.per_ticket.get(t.id)),
            }
            for t in order
        ]
        parked = [
            {"ticket": t.number, "id": t.id, "service": t.service, "since": t.issued_at}
            for t in s.tickets.values()
            if t.state == "parked"
        ]
        assists = [
            self._assist_info(a.id) for a in s.assists.values() if a.state in ("pending", "acknowledged")
        ]
        return {
            "v": contract.CONTRACT_VERSION,
            "office": cfg.office.id,
            "name": cfg.office.name,
            "seq": s.seq,
            "ts": round(now, 3),
            "day": s.day,
            "services": services,
            "counters": counters,
            "calls": calls,
            "waiting": waiting,
            "parked": parked,
            "assistance": assists,
        }

    def public(self, snap: dict[str, Any] | None = None) -> dict[str, Any]:
        """The public part (waiting counts and times): bridged to the city broker."""
        snap = snap or self.snapshot()
        return {
            "v": snap["v"],
            "office": snap["office"],
            "name": snap["name"],
            "ts": snap["ts"],
            "services": [
                {k: svc[k] for k in ("id", "name", "waiting", "eta_min", "intake_open")}
                for svc in snap["services"]
            ],
        }

    def event_messages(self, events: list[dict[str, Any]]) -> list[tuple[EventKind, dict[str, Any]]]:
        """Translate log events into the contract's call / assist / intake / ticket events."""
        out: list[tuple[EventKind, dict[str, Any]]] = []
        for e in events:
            kind = e["type"]
            if kind in ("ticket_called", "ticket_recalled"):
                t = self.state.tickets[e["ticket"]]
                c = self.cfg.counter(e["counter"])
                out.append(
                    (
                        EventKind.CALL,
                        {
                            "seq": e["seq"],
                            "ticket": t.number,
                            "ticket_id": t.id,
                            "service": t.service,
                            "counter": c.id,
                            "counter_name": c.name.model_dump(),
                            "spoken": (c.spoken or c.name).model_dump(),
                            "zone": c.zone,
                            "recall": kind == "ticket_recalled",
                            "ts": e["ts"],
                        },
                    )
                )
            elif kind.startswith("assist_"):
                a = self.state.assists[e["id"]]
                node = next((n for n in self.cfg.nodes if n.id == a.terminal), None)
                out.append(
                    (
                        EventKind.ASSIST,
                        {
                            "seq": e["seq"],
                            "id": a.id,
                            "terminal": a.terminal,
                            "terminal_name": node.name.model_dump()
                            if node and node.name
                            else {"de": a.terminal},
                            "state": a.state,
                            "level": a.level,
                            "counter": a.counter,
                            "ts": e["ts"],
                            "event": kind.removeprefix("assist_"),
                        },
                    )
                )
            elif kind == "intake_set":
                is_open, reason = self.intake_open(e["service"])
                out.append(
                    (
                        EventKind.INTAKE,
                        {
                            "seq": e["seq"],
                            "service": e["service"],
                            "open": is_open,
                            "reason": reason,
                            "ts": e["ts"],
                        },
                    )
                )
            elif kind.startswith("ticket_"):
                t = self.state.tickets.get(e.get("ticket") or e.get("id", ""))
                if t is not None:
                    out.append(
                        (
                            EventKind.TICKET,
                            {
                                "seq": e["seq"],
                                "ticket": t.number,
                                "ticket_id": t.id,
                                "service": t.service,
                                "state": t.state,
                                "ts": e["ts"],
                            },
                        )
                    )
        return out
