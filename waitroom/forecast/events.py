"""The event stream the forecast learns from, and the replay that turns it into training rows.

Both sources -- a recorded call-centre log (``waitroom.forecast.bank``) and the controller's own event log
(``rows_from_store_events`` below) -- become the same ``Event`` sequence, so a model is trained on exactly the
features the live ``QueueState`` computes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from waitroom.forecast.features import QueueState

log = logging.getLogger(__name__)

# Order of events within one second: service ends first (the reference counts a server busy until then
# anyway), then arrivals, then calls, then abandonment (a ticket that leaves at t still waited at t).
ORDER = {"end": 0, "direct": 1, "arrival": 2, "start": 3, "abandon": 4, "server_off": 5}


@dataclass(frozen=True)
class Event:
    day: str  # the office day (any sortable string: yymmdd, ISO date)
    weekday: int  # 0 = Monday
    t: float  # seconds since the day's local midnight
    kind: str  # arrival | start | end | abandon | direct | server_off
    ticket: str = ""
    service: str = ""
    priority: int = 0
    server: str | None = None


@dataclass
class Row:
    """One ticket at the instant it was issued: what was known then, and what happened afterwards."""

    day: str
    t: float
    ticket: str
    service: str
    priority: int
    features: list[float]
    wait: float | None = None  # seconds until called; None if it left unserved


def sort_key(e: Event) -> tuple[str, float, int]:
    return (e.day, e.t, ORDER[e.kind])


def replay(events: Iterable[Event], services: tuple[str, ...]) -> Iterator[Row]:
    """Feed the events (sorted with ``sort_key``) to a ``QueueState`` and yield a ``Row`` per arrival, with
    the features computed before the arrival joined the queue. Arrivals of the same second are described
    together, before any of them joins (none of them knew of the others). The wait is filled in when the
    ticket is called, so a row's label is only complete once the stream has passed its call."""
    state = QueueState(services)
    day = None
    pending: list[Event] = []
    open_rows: dict[str, Row] = {}

    def flush() -> Iterator[Row]:
        rows = [
            Row(e.day, e.t, e.ticket, e.service, e.priority, state.features(e.t, e.service, e.priority))
            for e in pending
        ]
        for e, r in zip(pending, rows, strict=True):
            state.arrival(e.t, e.ticket, e.service, e.priority)
            open_rows[e.ticket] = r
        pending.clear()
        yield from rows

    for e in events:
        if e.day != day:
            yield from flush()
            open_rows.clear()
            state.new_day(e.weekday)
            day = e.day
        if pending and (e.kind != "arrival" or e.t != pending[0].t):
            yield from flush()
        if e.kind == "arrival":
            pending.append(e)
            continue
        apply(state, e)
        if e.kind == "start":
            r = open_rows.pop(e.ticket, None)
            if r is not None:
                r.wait = e.t - r.t
        elif e.kind == "abandon":
            open_rows.pop(e.ticket, None)
    yield from flush()


def apply(state: QueueState, e: Event) -> None:
    """One event into the state (the caller calls ``state.new_day`` when ``e.day`` changes)."""
    if e.kind == "arrival":
        state.arrival(e.t, e.ticket, e.service, e.priority)
    elif e.kind == "start":
        state.start(e.t, e.ticket, e.server)
    elif e.kind == "end":
        state.end(e.t, e.ticket, e.server)
    elif e.kind == "abandon":
        state.abandon(e.t, e.ticket)
    elif e.kind == "direct":
        state.direct(e.t, e.ticket, e.service, e.server)
    elif e.kind == "server_off":
        state.server_off(e.t, e.server or "")


# ------------------------------------------------------------------------------------------------ controller
TICKET_EVENTS = (
    "ticket_issued",
    "ticket_called",
    "ticket_served",
    "ticket_no_show",
    "ticket_cancelled",
    "ticket_transferred",
    "ticket_parked",
    "counter_opened",
    "counter_paused",
    "counter_closed",
)


class StoreEventAdapter:
    """Turns the controller's events (``waitroom.store.EventStore`` rows: dicts with ``type`` and ``ts``,
    epoch seconds) one by one into forecast events, in the office's local time. ``ticket_called`` starts
    the ticket (and ends the counter's previous one, as the controller does); ``ticket_served``,
    ``ticket_no_show`` and
    ``ticket_parked`` end it; ``ticket_cancelled`` of a waiting ticket is an abandonment; a transfer ends the
    service and puts the ticket into the queue of its new service again (as ``<id>#<n>``: its first wait was
    counted already); paused and closed counters stop working. Other events do not move the queue."""

    def __init__(self, tz: str | dt.tzinfo = "Europe/Berlin"):
        self.zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.tickets: dict[str, tuple[str, int]] = {}  # ticket id -> (service, priority) of the current key
        self.keys: dict[str, str] = {}  # ticket id -> key of its current queue visit
        self.day: str | None = None
        self._bucket: int | None = None
        self._bucket_local: tuple[str, int, int, float] = ("", 0, 0, 0.0)

    def local(self, ts: float) -> tuple[str, int, float]:
        """(local date, weekday, seconds since local midnight on the wall clock) of ``ts``. The time zone
        database is asked once per quarter hour of UTC: every UTC offset and every change of it falls on a
        quarter hour, so within one the date and the offset are fixed."""
        ts = float(ts)
        bucket = int(ts // 900)
        if bucket != self._bucket:
            start = bucket * 900.0
            local = dt.datetime.fromtimestamp(start, self.zone)
            wall = local.hour * 3600 + local.minute * 60 + local.second
            self._bucket, self._bucket_local = (
                bucket,
                (local.date().isoformat(), local.weekday(), wall, start),
            )
        day, wd, wall, start = self._bucket_local
        return day, wd, wall + (ts - start)

    def convert(self, e: dict[str, Any]) -> list[Event]:
        kind = e.get("type")
        if kind not in TICKET_EVENTS:
            return []
        ts = e.get("arrival", e["ts"]) if kind == "ticket_issued" else e["ts"]
        day, wd, t = self.local(ts)
        if day != self.day:
            self.day = day
            self.tickets.clear()  # tickets are per day
            self.keys.clear()
        if kind == "ticket_issued":
            prio = 2 if e.get("priority") else 1
            self.tickets[e["id"]] = (e["service"], prio)
            self.keys[e["id"]] = e["id"]
            return [Event(day, wd, t, "arrival", e["id"], e["service"], prio)]
        if kind.startswith("counter_"):
            return [] if kind == "counter_opened" else [Event(day, wd, t, "server_off", server=e["counter"])]
        tid = e.get("ticket")
        if tid not in self.tickets:
            return []  # issued on an earlier day or before the log was kept
        service, prio = self.tickets[tid]
        key = self.keys[tid]
        if kind == "ticket_called":
            return [Event(day, wd, t, "start", key, service, prio, e.get("counter"))]
        if kind in ("ticket_served", "ticket_no_show", "ticket_parked"):
            return [Event(day, wd, t, "end", key, service, prio, e.get("counter"))]
        if kind == "ticket_cancelled":
            return [Event(day, wd, t, "abandon", key, service, prio)]
        # ticket_transferred
        n = int(key.partition("#")[2] or 0) + 1
        new_key, new_service = f"{tid}#{n}", e.get("service") or service
        self.tickets[tid], self.keys[tid] = (new_service, prio), new_key
        return [
            Event(day, wd, t, "end", key, service, prio, e.get("counter")),
            Event(day, wd, t, "arrival", new_key, new_service, prio),
        ]


def events_from_store(
    store_events: Iterable[dict[str, Any]], tz: str | dt.tzinfo = "Europe/Berlin"
) -> list[Event]:
    """All forecast events of a sequence of controller events (see ``StoreEventAdapter``), sorted."""
    adapter = StoreEventAdapter(tz)
    out = [ev for e in store_events for ev in adapter.convert(e)]
    out.sort(key=sort_key)
    return out


def rows_from_store_events(
    store_events: Iterable[dict[str, Any]],
    services: tuple[str, ...],
    tz: str | dt.tzinfo = "Europe/Berlin",
) -> list[Row]:
    """Training rows from the controller's event log: one per issued ticket (transferred tickets are rows of
    their first service only), labelled with the seconds until it was called (None if it was cancelled or
    never called)."""
    return [r for r in replay(events_from_store(store_events, tz), services) if "#" not in r.ticket]
