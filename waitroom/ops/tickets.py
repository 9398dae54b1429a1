"""Operations on tickets: issue, cancel, offline leases and their reports; a ticket's public info."""

from __future__ import annotations

import math
from typing import Any

from waitroom.contract import SHOW_TICKETS, ErrorCode, Role
from waitroom.i18n import LANGUAGES, normalize
from waitroom.model import Ticket, format_number
from waitroom.ops.base import OpError, OpsBase, iso, local_time

MAX_LEASE = 200
OFFLINE_SKEW_S = 120.0


class TicketOps(OpsBase):
    def ahead_of(self, t: Ticket) -> int:
        """Waiting tickets of the same service called before ``t`` by the rules (FIFO per kind, priority
        first); O(log n) from the index."""
        if t.state != "waiting":
            return 0
        pool = self.state.pool
        n = pool.position(t)
        if t.target_counter is None and t.appointment is None and not t.priority:
            lst = pool.priority.get(t.service)
            n += len(lst) if lst else 0
        return n

    def ticket_info(self, t: Ticket) -> dict[str, Any]:
        eta = self.eta_s(t) if t.state == "waiting" else None
        rng: list[int] | None = None
        learned = self.learned_eta(t) if t.state == "waiting" else None
        if learned is not None:  # a model trained on this office's own log: its wait and 80 % interval
            from waitroom.forecast.live import minutes_range

            eta, rng = learned[0], list(minutes_range(learned[1], learned[2]))
        return {
            "id": t.id,
            "number": t.number,
            "service": t.service,
            "state": t.state,
            "issued_at": t.issued_at,
            "priority": t.priority,
            "appointment": t.appointment,
            "ahead": self.ahead_of(t),
            "eta_min": None if eta is None or eta == float("inf") else round(eta / 60),
            "eta_range_min": rng,  # [low, high] minutes ("ca. 10-20 Min.") when a trained model exists
            "counter": t.counter,
            "lang": t.lang,
        }

    def op_ticket_show(self, node_id: str, role: Role, tickets: Any) -> dict[str, Any]:
        """Where tickets of today stand, by id (no effect; the web asks about ids its copy does not know)."""
        if (
            not isinstance(tickets, list)
            or not 1 <= len(tickets) <= SHOW_TICKETS
            or not all(isinstance(x, str) for x in tickets)
        ):
            raise OpError(ErrorCode.BAD_REQUEST, f"tickets must be a list of 1-{SHOW_TICKETS} ticket ids")
        out = []
        for tid in dict.fromkeys(tickets):
            t = self.state.tickets.get(tid)
            if t is None:
                continue
            entry: dict[str, Any] = {"id": t.id, "number": t.number, "service": t.service, "state": t.state}
            if t.state == "no_show":
                entry["at"] = t.finished_at
            out.append(entry)
        return {"tickets": out}

    def _office_open(self, *, before_opening: bool = False) -> None:
        """Refuse with ``office_closed`` outside today's opening hours (``before_opening``: from midnight on,
        e.g. a dispenser leasing its offline numbers when it starts in the morning)."""
        now = self.clock()
        hours = self.cfg.office.opening(now)
        if hours is None:
            raise OpError(ErrorCode.OFFICE_CLOSED, "the office is closed today")
        if now > hours[1] or (now < hours[0] and not before_opening):
            raise OpError(
                ErrorCode.OFFICE_CLOSED,
                f"the office is open {local_time(self.cfg, hours[0])}-{local_time(self.cfg, hours[1])} today",
            )

    def _issue(
        self,
        node_id: str,
        service: str,
        *,
        priority: bool = False,
        appointment: float | None = None,
        code: str | None = None,
        lang: str = "de",
    ) -> Ticket:
        prefix = self.cfg.service(service).prefix
        n = self.state.next_number.get(prefix, self.cfg.office.ticket_start)
        if n >= self.cfg.office.offline_numbers_from:
            raise OpError(ErrorCode.NUMBERS_USED_UP, f"ticket numbers for {prefix} are used up today")
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
            **({"lang": lang} if lang != "de" else {}),
        )
        return self.state.tickets[e["id"]]

    def op_ticket_issue(
        self, node_id: str, role: Role, service: Any, priority: Any = False, lang: Any = "de"
    ) -> dict[str, Any]:
        sid = self._service(service)
        code = normalize(lang) if isinstance(lang, str) else None
        if code is None:
            raise OpError(ErrorCode.BAD_REQUEST, f"lang must be one of {', '.join(LANGUAGES)}")
        lang = code
        self._office_open()
        is_open, reason = self.intake_open(sid)
        if not is_open:
            raise OpError(ErrorCode.INTAKE_STOPPED, reason or f"{sid} takes no more walk-ins today")
        t = self._issue(node_id, sid, priority=self._bool(priority, "priority"), lang=lang)
        return {"ticket": self.ticket_info(t)}

    def op_ticket_cancel(self, node_id: str, role: Role, ticket: Any, reason: Any = "") -> dict[str, Any]:
        text = self._reason(reason, 100)
        t = self._ticket(ticket, ("waiting", "parked"))
        if role is Role.DISPENSER and t.origin != node_id:
            raise OpError(ErrorCode.FORBIDDEN, f"ticket {t.number} was not issued by {node_id}")
        self._emit("ticket_cancelled", ticket=t.id, reason=text, node=node_id)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_ticket_lease(self, node_id: str, role: Role, service: Any, count: Any = 20) -> dict[str, Any]:
        sid = self._service(service)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_LEASE:
            raise OpError(ErrorCode.BAD_REQUEST, f"count must be an integer 1..{MAX_LEASE}")
        self._office_open(before_opening=True)
        prefix = self.cfg.service(sid).prefix
        # leases come from the top of the range, so walk-in numbers still count from ticket_start
        first = self.state.lease_next.get(prefix, self.cfg.office.offline_numbers_from)
        if first + count - 1 > 999:
            raise OpError(ErrorCode.NUMBERS_USED_UP, f"not enough numbers left for {prefix} today")
        self._emit("lease_granted", node=node_id, service=sid, prefix=prefix, first=first, count=count)
        return {
            "lease": {"service": sid, "prefix": prefix, "first": first, "count": count, "day": self.state.day}
        }

    def op_ticket_report_offline(
        self, node_id: str, role: Role, service: Any, number: Any, issued_at: Any, priority: Any = False
    ) -> dict[str, Any]:
        sid = self._service(service)
        prefix = self.cfg.service(sid).prefix
        if (
            not isinstance(number, int)
            or isinstance(number, bool)
            or not isinstance(issued_at, int | float)
            or isinstance(issued_at, bool)
            or not -1e12 < issued_at < 1e12  # before float(): a JSON integer of 400 digits overflows it
            or not math.isfinite(float(issued_at))
        ):
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
        prio = self._bool(priority, "priority")
        now = self.clock()
        # checked before the look-up of a report made before: a retry carries the same (valid) values
        if not lease.get("ts", 0.0) - OFFLINE_SKEW_S <= issued_at <= now + OFFLINE_SKEW_S:
            raise OpError(
                ErrorCode.BAD_REQUEST,
                f"issued_at {issued_at!r} is not between the lease ({iso(lease.get('ts', 0.0))}) and now",
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
            priority=prio,
            node=node_id,
            offline=True,
            arrival=min(float(issued_at), round(self.clock(), 3)),
        )  # keep the real arrival time
        t = self.state.tickets[e["id"]]
        return {"ticket": self.ticket_info(t)}
