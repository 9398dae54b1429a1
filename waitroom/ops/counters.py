"""Operations of a counter: call, recall, finish, transfer, park, open, pause, close."""

from __future__ import annotations

from typing import Any

from waitroom.contract import ErrorCode, Role
from waitroom.model import Ticket
from waitroom.ops.base import OpError, OpsBase


class CounterOps(OpsBase):
    def _expect(self, cid: str, current: Any) -> None:
        """``current`` (optional): the ticket the sender shows as called at ``cid`` ("" for none). When
        another one (or none) is called there, nothing is done: a page shown before a change, the second
        click of a double click or an action from a second tab would otherwise call, finish, transfer or
        mark as not appeared a ticket the staff member has not seen (a double "next" finished the first
        call as served, unseen)."""
        if current is None:
            return
        if not isinstance(current, str) or len(current) > 40:
            raise OpError(ErrorCode.BAD_REQUEST, 'current must be a ticket number or id, or "" for none')
        c = self.state.counters[cid]
        now = self.state.tickets[c.current] if c.current is not None else None
        shown = self.state.ticket(current) if current.strip() else None
        if now is shown and (now is not None or not current.strip()):
            return
        raise OpError(
            ErrorCode.INVALID_STATE,
            f"counter {cid} now serves {now.number if now else 'no ticket'}, "
            f"not {current.strip() or 'none'}; nothing done",
            data={"counter": cid, "state": "serving", "ticket": now.number}
            if now is not None
            else {"counter": cid, "state": "idle"},
        )

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

    def op_counter_call_next(
        self, node_id: str, role: Role, counter: Any, current: Any = None
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        self._counter_open(cid)
        now = self.clock()
        decision = self.selector.select(self.state, cid, self.cfg, now)
        if decision is None:
            c = self.state.counters[cid]
            if c.current is not None:  # finish the current ticket even when nobody else waits
                t = self.state.tickets[c.current]
                self._emit("ticket_served", ticket=t.id, counter=cid)
            raise OpError(
                ErrorCode.NOBODY_WAITING,
                f"nobody is waiting for counter {cid}",
                keep_effects=True,
                data={"counter": cid},
            )
        return self._call(cid, self.state.tickets[decision.ticket], decision.reason)

    def op_counter_recall(
        self, node_id: str, role: Role, counter: Any, current: Any = None
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        t = self._current(cid)
        self._emit("ticket_recalled", ticket=t.id, counter=cid)
        return {"call": {"ticket": t.number, "ticket_id": t.id, "counter": cid, "recall": True}}

    def _finish(self, node_id: str, role: Role, counter: Any, kind: str, current: Any) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        t = self._current(cid)
        self._emit(kind, ticket=t.id, counter=cid)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_counter_served(
        self, node_id: str, role: Role, counter: Any, current: Any = None
    ) -> dict[str, Any]:
        return self._finish(node_id, role, counter, "ticket_served", current)

    def op_counter_no_show(
        self, node_id: str, role: Role, counter: Any, current: Any = None
    ) -> dict[str, Any]:
        return self._finish(node_id, role, counter, "ticket_no_show", current)

    def op_counter_transfer(
        self,
        node_id: str,
        role: Role,
        counter: Any,
        service: Any = None,
        to_counter: Any = None,
        current: Any = None,
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        if (service is None) == (to_counter is None):
            raise OpError(ErrorCode.BAD_REQUEST, "give exactly one of service or to_counter")
        t = self._current(cid)
        if service is not None:
            self._emit("ticket_transferred", ticket=t.id, counter=cid, service=self._service(service))
        else:
            if not isinstance(to_counter, str) or to_counter not in self.cfg.counter_ids:
                raise OpError(
                    ErrorCode.UNKNOWN_COUNTER,
                    f"unknown counter {to_counter!r}",
                    data={"counter": to_counter} if isinstance(to_counter, str) else None,
                )
            if self.state.counters[to_counter].state == "closed":  # nobody would call it (paused: later)
                raise OpError(
                    ErrorCode.COUNTER_CLOSED,
                    f"counter {to_counter} is closed; transfer to a service or an open counter",
                    data={"counter": to_counter, "state": "closed"},
                )
            self._emit("ticket_transferred", ticket=t.id, counter=cid, to_counter=to_counter)
        return {
            "ticket": {
                "number": t.number,
                "state": t.state,
                "service": t.service,
                "to_counter": t.target_counter,
            }
        }

    def op_counter_park(self, node_id: str, role: Role, counter: Any, current: Any = None) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        t = self._current(cid)
        self._emit("ticket_parked", ticket=t.id, counter=cid)
        return {"ticket": {"number": t.number, "state": t.state}}

    def op_counter_call_ticket(
        self, node_id: str, role: Role, counter: Any, ticket: Any, current: Any = None
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        self._counter_open(cid)
        t = self._ticket(ticket, ("waiting", "parked", "no_show"))
        if t.state == "no_show":
            self._no_show_returns(t)
            return self._call(cid, t, "called back after not appearing")
        return self._call(cid, t, "called by staff" if t.state == "waiting" else "called back from parked")

    def _no_show_returns(self, t: Ticket) -> None:
        """A ticket marked not appeared may be called again within ``controller.no_show_return_min`` minutes
        of its no-show (the state holds today's tickets only: another day's is not found at all); later, or
        with 0, the citizen takes a new ticket. The refusal is the one for a ticket in a state the operation
        does not accept (``unknown_ticket``), with ``data`` saying why: ``state`` ``no_show``, ``reason``
        ``no_show_expired``."""
        window = self.cfg.controller.no_show_return_min * 60
        marked = t.finished_at or 0.0
        if window and self.clock() - marked <= window:
            return
        raise OpError(
            ErrorCode.UNKNOWN_TICKET,
            f"ticket {t.number} was marked not appeared more than "
            f"{self.cfg.controller.no_show_return_min} minutes ago (controller.no_show_return_min); "
            "the citizen takes a new ticket",
            data={"ticket": t.number, "state": "no_show", "reason": "no_show_expired"},
        )

    def _counter_state(
        self, node_id: str, role: Role, counter: Any, kind: str, reason: str = "", current: Any = None
    ) -> dict[str, Any]:
        cid = self._counter(node_id, role, counter)
        self._expect(cid, current)
        target = {"counter_opened": "open", "counter_paused": "paused", "counter_closed": "closed"}[kind]
        c = self.state.counters[cid]
        if c.state != target or (reason and reason != c.pause_reason):
            self._emit(kind, counter=cid, **({"reason": reason} if reason else {}))
        return {"counter": {"id": cid, "state": c.state, "reason": c.pause_reason}}

    def op_counter_open(self, node_id: str, role: Role, counter: Any) -> dict[str, Any]:
        return self._counter_state(node_id, role, counter, "counter_opened")

    def op_counter_pause(
        self, node_id: str, role: Role, counter: Any, reason: Any = "", current: Any = None
    ) -> dict[str, Any]:
        if not isinstance(reason, str) or len(reason) > 80:
            raise OpError(ErrorCode.BAD_REQUEST, "reason must be a text of at most 80 characters")
        return self._counter_state(node_id, role, counter, "counter_paused", reason or "Pause", current)

    def op_counter_close(self, node_id: str, role: Role, counter: Any, current: Any = None) -> dict[str, Any]:
        return self._counter_state(node_id, role, counter, "counter_closed", current=current)
