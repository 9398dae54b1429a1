"""Services whose waiting citizens no open counter can call: the ``unstaffed_service`` alarm.

A clerk may close or pause the last counter of a service while citizens wait for it (the staff page asks
first; a counter's button cannot), or the morning shift has not opened it yet. The controller does not refuse
that (a clerk may have to leave), it says so: ``StaffingWatch`` keeps, per service, since when its waiting
tickets have had no open counter, and ``Office`` turns that into an alarm in the summary while the office
is open and the service has been without a counter for ``controller.unstaffed_alarm_after_s``.

Kept event by event at the event's time (``observe``), so the log rebuilds the same times after a restart.
The cost of an event is O(counters of its services), of a counter's change O(services x counters), whatever
the length of the queue: the waiting counts and the transferred tickets per counter come from the indexes
``apply`` keeps (``OfficeState.waiting_count``, ``Pool.targeted_n``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from waitroom.config import Config
from waitroom.model import OfficeState

log = logging.getLogger(__name__)

# the events that can change which waiting tickets an open counter can call, for one ticket's service only
_ONE_SERVICE = frozenset({"ticket_issued", "ticket_cancelled"})
# ... and those that can change it for any service (a counter's state; a transfer moves a ticket between
# services and counters; a new day). A call changes it for the ticket's service and, as a call by a paused
# counter opens it, for the counter's services and those of the tickets transferred to it.
_EVERY_SERVICE = frozenset(
    {"ticket_transferred", "counter_opened", "counter_paused", "counter_closed", "day_started"}
)


class StaffingWatch:
    """Per service: since when (event time) its waiting tickets include some that no open counter can call."""

    def __init__(self, cfg: Config):
        self.servers: dict[str, tuple[str, ...]] = {
            s.id: tuple(c.id for c in cfg.counters if s.id in c.services) for s in cfg.services
        }
        self.skills: dict[str, tuple[str, ...]] = {c.id: tuple(c.services) for c in cfg.counters}
        self.since: dict[str, float] = {}

    def reset(self) -> None:
        self.since.clear()

    def unserved(self, state: OfficeState, sid: str) -> int:
        """Waiting tickets of ``sid`` that no open counter can call: those transferred to a counter that is
        not open, and, when no open counter serves the service, every other one too. Looks only at the
        service's own counters and the counters holding transferred tickets (usually none): an event costs a
        few microseconds, not a walk over every counter of the office."""
        counters = state.counters

        def is_open(cid: str) -> bool:
            c = counters.get(cid)
            return c is not None and c.state == "open"

        stuck = at_open = 0
        for cid, per_service in state.pool.targeted_n.items():
            n = per_service.get(sid, 0)
            if not n:
                continue
            if is_open(cid):
                at_open += n
            else:
                stuck += n
        if any(is_open(cid) for cid in self.servers.get(sid, ())):
            return stuck
        return state.n_waiting(sid) - at_open

    def observe(self, state: OfficeState, event: dict[str, Any]) -> None:
        """Note what ``event`` (just applied to ``state``) changed."""
        kind = event.get("type")
        if kind == "day_started":
            self.since.clear()
        if kind in _EVERY_SERVICE:
            self._check(state, self.servers, event)
        elif kind == "ticket_called":
            t = state.tickets.get(event.get("ticket") or "")
            cid = event.get("counter") or ""
            services = {*self.skills.get(cid, ()), *state.pool.targeted_n.get(cid, ())}
            if t is not None:
                services.add(t.service)
            self._check(state, services, event)
        elif kind in _ONE_SERVICE:
            t = state.tickets.get(event.get("id") or event.get("ticket") or "")
            if t is not None:
                self._check(state, (t.service,), event)

    def _check(self, state: OfficeState, services: Iterable[str], event: dict[str, Any]) -> None:
        ts = event.get("ts") or 0.0
        for sid in services:
            if self.unserved(state, sid) > 0:
                self.since.setdefault(sid, ts)
            else:
                self.since.pop(sid, None)

    def due(
        self, state: OfficeState, cfg: Config, now: float, after_s: float
    ) -> list[tuple[str, int, float]]:
        """(service, waiting tickets no open counter can call, since) of every service that has been so for
        ``after_s`` within today's opening hours, the longest first; nothing outside them."""
        if not self.since:
            return []
        hours = cfg.office.opening(now)
        if hours is None or not hours[0] <= now <= hours[1]:
            return []
        out = []
        for sid, since in self.since.items():
            since = max(since, hours[0])  # waiting since before the office opened: counts from the opening
            if now - since >= after_s:
                n = self.unserved(state, sid)
                if n > 0:
                    out.append((sid, n, since))
        out.sort(key=lambda x: (x[2], x[0]))
        return out
