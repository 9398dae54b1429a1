"""Waiting-time prediction: one predictor for tickets, displays, the public page and the intake stop.

``WaitPredictor`` runs the office's own steering rules forward in time: the open counters become free one
after the other, each calls the ticket the real ``RuleSelector`` would call at that moment (so ageing,
priorities, appointments, conditions and skills all count), and serves it for the expected service time of its
service. Service times are learned from the office's event log per service and hour of day (``ServiceTimes``),
shrunk towards the configured ``mean_service_min`` while there are few observations.

Busy counters are spread out: with exponential-like service times (coefficient of variation near 1) the k-th
departure is expected at k·m/s, which makes the forecast on a plain M/M/s queue exactly the queue-length
estimator (n+1)/(s·μ) -- the best one can do there; with regular service times the remaining time of each
counter (m minus the time it has served already) counts instead.

The classical estimators the evaluation compares against are here too: ``ql``, ``zms``; LES and HOL need the
history and live in the simulator (``waitroom.sim.evaluate``).
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from waitroom.config import Config
from waitroom.i18n import t as tr
from waitroom.model import Intake, OfficeState, Ticket
from waitroom.steering import PoolView, RuleSelector, Selector

log = logging.getLogger(__name__)

INF = float("inf")
PROBE = "~"  # id prefix of the probe tickets standing for "a ticket issued now"


HORIZON_DEPTH = 200  # tickets per steering list that the forward simulation looks at
HORIZON_STEPS = 600  # calls the forward simulation plays at most; beyond, the rest is extrapolated
SLICE_STEPS = 32  # turns of the forward simulation between two slices (``forecast_slices``): ~0.2 ms


@dataclass(frozen=True)
class Forecast:
    """Expected waits at ``now``. ``per_ticket`` holds the tickets the forward simulation reached; a ticket
    beyond its horizon gets ``eta()`` by extrapolation (the remaining work shared by the counters)."""

    per_ticket: dict[str, float]  # ticket id -> expected seconds until called
    per_service: dict[str, float]  # service id -> expected seconds for a ticket issued now
    ahead: dict[str, int]  # service id -> tickets ahead of a new one
    completion: dict[str, float] = field(
        default_factory=dict
    )  # service -> epoch a new ticket is expected done
    now: float = 0.0
    horizon: float = INF  # seconds from now where the simulation stopped (INF: it reached every ticket)
    tail: dict[str, float] = field(default_factory=dict)  # service -> seconds to work off what is beyond
    remaining: dict[str, int] = field(default_factory=dict)  # service -> tickets beyond the horizon
    marginal: dict[str, float] = field(default_factory=dict)  # service -> seconds one more ticket adds

    def eta(self, state: OfficeState, t: Ticket) -> float:
        """Expected seconds from ``self.now`` until ``t`` is called (INF: no counter serves it)."""
        v = self.per_ticket.get(t.id)
        if v is not None:
            return v
        if self.horizon == INF or t.state != "waiting":
            return INF
        tail = self.tail.get(t.service, INF)
        if tail == INF:
            return INF
        r = self.remaining.get(t.service, 0)
        k = min(max(state.pool.position(t) - HORIZON_DEPTH, 0), r)
        return self.horizon + (k + 1) / (r + 1) * tail

    def new_ticket_eta(self, service: str, added_since: int = 0) -> float:
        """Expected wait of a ticket issued now, ``added_since`` tickets of its service after the forecast."""
        w = self.per_service.get(service, INF)
        return w + added_since * self.marginal.get(service, 0.0) if w != INF else INF


class Predictor(Protocol):
    def forecast(self, state: OfficeState, cfg: Config, selector: Selector, now: float) -> Forecast: ...


# ------------------------------------------------------------------------------------------------ statistics
class ServiceTimes:
    """Service-time statistics per service and hour of day, learned from events, with a prior from the config.

    mean(service, hour) = (n·x̄ + k·prior) / (n + k), where the prior of an hour is the service's overall mean,
    whose own prior is the configured ``mean_service_min`` (k = ``prior_weight`` pseudo-observations).

    Citizens who give up keep their ticket: when it is called, nobody comes, and the counter marks it as not
    appeared after a minute or two. The statistics learn how often that happens, as an abandonment rate per
    minute waited (θ = no-shows / the waiting time of the tickets called, the estimator of Ibrahim and Whitt),
    and how long such a call holds the counter, so that the forecast counts a ticket that has waited w as
    present with probability exp(-θ·w) (``call_s``). Before ``MIN_NO_SHOWS`` no-shows were seen, every ticket
    counts as present.
    """

    MIN_NO_SHOWS = 10
    NO_SHOW_PRIOR_S = 90.0  # how long a call in vain holds the counter, before there are observations

    def __init__(self, cfg: Config, prior_weight: float = 10.0):
        self.cfg = cfg
        self.k = prior_weight
        self.prior = {s.id: s.mean_service_min * 60.0 for s in cfg.services}
        self.total: dict[str, list[float]] = {}  # service -> [n, sum, sum of squares]
        self.hourly: dict[tuple[str, int], list[float]] = {}  # (service, hour) -> [n, sum]
        self._open: dict[str, tuple[str, float]] = {}  # counter -> (service, called at) while serving
        self._services: dict[str, str] = {}  # ticket id -> service, for events that only name the ticket
        self._issued: dict[str, float] = {}  # ticket id -> issued, until its first call
        self.exposure = 0.0  # seconds waited by the tickets called (until their first call)
        self.no_shows = 0
        self.no_show_time = [0.0, 0.0]  # [n, sum] of the seconds from a call to its no-show
        self._no_showed: set[str] = set()  # tickets counted in no_shows today (one called back is taken out)
        self._tz = cfg.office.tz

    def hour(self, ts: float) -> int:
        return dt.datetime.fromtimestamp(ts, self._tz).hour

    def add(self, service: str, start: float, duration: float, hour: int | None = None) -> None:
        if duration <= 0 or duration > 4 * 3600:  # a forgotten "served" button says nothing about the service
            return
        tot = self.total.setdefault(service, [0.0, 0.0, 0.0])
        tot[0] += 1
        tot[1] += duration
        tot[2] += duration * duration
        h = self.hourly.setdefault((service, self.hour(start) if hour is None else hour), [0.0, 0.0])
        h[0] += 1
        h[1] += duration

    def overall(self, service: str) -> float:
        prior = self.prior.get(service, 480.0)
        n, s, _ = self.total.get(service, (0.0, 0.0, 0.0))
        return (s + self.k * prior) / (n + self.k)

    def mean(self, service: str, ts: float | None = None, hour: int | None = None) -> float:
        base = self.overall(service)
        if hour is None and ts is None:
            return base
        n, s = self.hourly.get((service, self.hour(ts) if hour is None else hour), (0.0, 0.0))  # type: ignore[arg-type]
        return (s + self.k * base) / (n + self.k)

    def cv(self, service: str) -> float:
        """Coefficient of variation; 1 (exponential) until 30 services were observed."""
        n, s, q = self.total.get(service, (0.0, 0.0, 0.0))
        if n < 30:
            return 1.0
        m = s / n
        return math.sqrt(max(q / n - m * m, 0.0)) / m if m > 0 else 1.0

    def abandonment_rate(self) -> float:
        """Citizens giving up per second waited (0 until MIN_NO_SHOWS no-shows were seen)."""
        if self.no_shows < self.MIN_NO_SHOWS or self.exposure <= 0:
            return 0.0
        return self.no_shows / self.exposure

    def no_show_s(self) -> float:
        n, total = self.no_show_time
        return (total + self.k * self.NO_SHOW_PRIOR_S) / (n + self.k)

    def call_s(self, mean_s: float, waited_s: float, rate: float, no_show_s: float) -> float:
        """The expected time a call holds the counter for a ticket that has waited ``waited_s``: its service
        if the citizen is still there (probability exp(-rate·waited)), else the call in vain."""
        if rate <= 0.0 or waited_s <= 0.0:
            return mean_s
        present = math.exp(-rate * waited_s)
        return present * mean_s + (1.0 - present) * no_show_s

    def observe(self, events: Iterable[dict[str, Any]]) -> None:
        """Learn from controller events (the same events the log holds)."""
        for e in events:
            kind = e.get("type")
            if kind == "ticket_issued":
                self._services[e["id"]] = e["service"]
                self._issued[e["id"]] = e.get("arrival", e["ts"])  # as the ticket counts its wait
            elif kind == "ticket_transferred":
                if e.get("service"):
                    self._services[e["ticket"]] = e["service"]
                self._open.pop(e.get("counter", ""), None)
            elif kind == "ticket_called":
                self._finish(e["counter"], e["ts"], True)
                if e.get("ticket") in self._no_showed:  # the citizen came back: nobody gave up
                    self._no_showed.discard(e["ticket"])
                    self.no_shows -= 1
                issued = self._issued.pop(e["ticket"], None)
                if issued is not None:
                    self.exposure += max(e["ts"] - issued, 0.0)
                service = self._services.get(e["ticket"])
                if service is not None:
                    self._open[e["counter"]] = (service, e["ts"])
            elif kind in ("ticket_served", "counter_paused", "counter_closed"):
                self._finish(e["counter"], e["ts"], True)
            elif kind in ("ticket_no_show", "ticket_parked"):
                running = self._open.get(e["counter"])
                if kind == "ticket_no_show" and running is not None:
                    self.no_shows += 1
                    self._no_showed.add(e.get("ticket", ""))
                    held = e["ts"] - running[1]
                    if 0 < held <= 3600:  # a no-show pressed an hour later says nothing of the wait for it
                        self.no_show_time[0] += 1
                        self.no_show_time[1] += held
                self._finish(e["counter"], e["ts"], False)
            elif kind == "day_started":
                self._open.clear()
                self._services.clear()
                self._issued.clear()
                self._no_showed.clear()

    def _finish(self, counter: str, ts: float, served: bool) -> None:
        running = self._open.pop(counter, None)
        if running is not None and served:
            self.add(running[0], running[1], ts - running[1])

    @classmethod
    def learned(cls, store: Any, cfg: Config, now: float, days: int = 28) -> ServiceTimes:
        """Statistics from the last ``days`` days of an EventStore."""
        st = cls(cfg)
        types = (
            "day_started",
            "ticket_issued",
            "ticket_transferred",
            "ticket_called",
            "ticket_served",
            "counter_paused",
            "counter_closed",
            "ticket_no_show",
            "ticket_parked",
        )
        try:
            st.observe(store.events(since_ts=now - days * 86400, types=types))
        except Exception:  # a damaged old log must not stop the controller; the prior still works
            log.exception("could not learn service times from the event log; using the configured means")
        log.info(
            "service times learned from %d services in the last %d days",
            int(sum(v[0] for v in st.total.values())),
            days,
        )
        return st


# ------------------------------------------------------------------------------------------------ classical
def ql(n_ahead: int, servers: int, mean_s: float) -> float:
    """Queue-length estimator (n+1)/(s·μ) for a customer who finds all servers busy and n ahead."""
    return (n_ahead + 1) * mean_s / servers if servers else INF


def zms(n_ahead: int, servers: int, mean_s: float) -> float:
    """The ZMS slot formula: average processing time ÷ number of workstations, walked through the queue."""
    return n_ahead * mean_s / servers if servers else INF


class QueueLengthPredictor:
    """The first version: the work ahead in the steering order, per service, divided by its open counters."""

    def mean_service_s(self, cfg: Config, service: str) -> float:
        return cfg.service(service).mean_service_min * 60.0

    def forecast(self, state: OfficeState, cfg: Config, selector: Selector, now: float) -> Forecast:
        open_counters = [
            c for c in cfg.counters if state.counters.get(c.id) and state.counters[c.id].state == "open"
        ]
        servers = {s.id: sum(1 for c in open_counters if s.id in c.services) for s in cfg.services}
        per_ticket: dict[str, float] = {}
        ahead_work: dict[str, float] = {s.id: 0.0 for s in cfg.services}
        ahead_n: dict[str, int] = {s.id: 0 for s in cfg.services}
        for t in selector.order(state, cfg, now):
            n = max(servers.get(t.service, 0), 1)
            per_ticket[t.id] = ahead_work[t.service] / n
            for (
                s
            ) in cfg.services:  # a ticket occupies the capacity of every service sharing a counter with it
                if any(t.service in c.services and s.id in c.services for c in cfg.counters):
                    ahead_work[s.id] += self.mean_service_s(cfg, t.service)
                    ahead_n[s.id] += 1 if s.id == t.service else 0
        per_service = {s.id: ahead_work[s.id] / servers[s.id] if servers[s.id] else INF for s in cfg.services}
        completion = {s.id: now + per_service[s.id] + self.mean_service_s(cfg, s.id) for s in cfg.services}
        return Forecast(per_ticket, per_service, ahead_n, completion)


# ------------------------------------------------------------------------------------------- the predictor
class WaitPredictor:
    """Forward simulation of the real steering rules with learned mean service times (see module doc)."""

    def __init__(self, times: ServiceTimes | None = None):
        self.times = times

    @classmethod
    def learned(cls, store: Any, cfg: Config, now: float) -> WaitPredictor:
        return cls(ServiceTimes.learned(store, cfg, now))

    def observe(self, events: Iterable[dict[str, Any]]) -> None:
        if self.times is not None:
            self.times.observe(events)

    def _times(self, cfg: Config) -> ServiceTimes:
        if self.times is None or self.times.cfg.services != cfg.services:
            self.times = ServiceTimes(cfg)
        return self.times

    def forecast(
        self,
        state: OfficeState,
        cfg: Config,
        selector: Selector,
        now: float,
        *,
        probes: Iterable[str] | None = None,
        stop_when_probed: bool = False,
    ) -> Forecast:
        """Expected wait of every waiting ticket and of a new ticket per service (``probes``: which services;
        default every walk-in service). ``stop_when_probed`` ends the walk once every probe is called."""
        return run_slices(
            self.forecast_slices(state, cfg, selector, now, probes=probes, stop_when_probed=stop_when_probed)
        )

    def forecast_slices(
        self,
        state: OfficeState,
        cfg: Config,
        selector: Selector,
        now: float,
        *,
        probes: Iterable[str] | None = None,
        stop_when_probed: bool = False,
        slice_steps: int = SLICE_STEPS,
    ) -> Generator[None, None, Forecast]:
        """``forecast`` in slices: yields after every ``slice_steps`` turns of the walk and returns the
        forecast (``run_slices``), so that the controller answers commands between the slices. Everything it
        needs of ``state`` is copied before the first yield (the heads of the pool, the counters, the counts):
        what changes meanwhile does not reach it, and the result is the forecast at ``now``."""
        if not isinstance(selector, RuleSelector):
            return QueueLengthPredictor().forecast(state, cfg, selector, now)
        times = self._times(cfg)
        hour = times.hour(now)
        means = {s.id: times.mean(s.id, hour=hour) for s in cfg.services}
        spread = {s.id: min(times.cv(s.id) ** 2, 1.0) for s in cfg.services}
        rate, in_vain = times.abandonment_rate(), times.no_show_s()  # tickets whose holder left
        probe_services = [s.id for s in cfg.services if s.walk_in] if probes is None else list(probes)
        pool = PoolView(state.pool, HORIZON_DEPTH)
        waiting = {s.id: state.n_waiting(s.id) for s in cfg.services}
        probe_of: dict[str, str] = {}
        for sid in probe_services:
            p = Ticket(id=PROBE + sid, number="~", service=sid, issued_at=now)
            probe_of[p.id] = sid
            pool.add_newest(p)
        # when each open counter becomes free, relative to now
        heap: list[tuple[float, int, str, int, int]] = []
        busy: list[tuple[float, float, str, int, int, int]] = []
        servers: dict[str, int] = {}
        for i, c in enumerate(cfg.counters):
            cs = state.counters.get(c.id)
            if cs is None or cs.state != "open":
                continue
            for sid in c.services:
                servers[sid] = servers.get(sid, 0) + 1
            cur = state.tickets.get(cs.current) if cs.current else None
            if cur is not None and cur.state == "called" and cur.called_at is not None:
                m = means.get(cur.service, 480.0)
                resid = max(m - (now - cur.called_at), 0.0)
                busy.append((resid, m, cur.service, i, cs.calls_since_priority, cs.priority_calls))
            else:
                heap.append((0.0, i, c.id, cs.calls_since_priority, cs.priority_calls))
        busy.sort()
        for j, (resid, m, service, i, since0, pcalls0) in enumerate(busy, start=1):
            w = spread.get(service, 1.0)
            free = w * j * m / len(busy) + (1.0 - w) * resid
            heap.append((free, i, cfg.counters[i].id, since0, pcalls0))
        heapq.heapify(heap)
        opened = heap[:]  # the open counters, for the extrapolation (the state may change meanwhile)
        per_ticket: dict[str, float] = {}
        later_of: list[tuple[str, float]] = []  # (service, seconds) of each simulated call
        probed: dict[str, float] = {}
        called: dict[str, int] = {}  # service -> simulated calls
        pending = len(probe_of)
        steps = 0
        turns = 0
        t = 0.0
        cut = False
        while heap and len(pool):
            if pool.exhausted or steps >= HORIZON_STEPS:
                cut = True
                break
            turns += 1
            if turns % slice_steps == 0:
                yield
            t, i, cid, since, pcalls = heapq.heappop(heap)
            choice = selector.choose(cfg, cid, now + t, pool, since, pcalls)
            if choice is None:
                nxt = self._next_due(cfg, selector, cid, pool, now + t)
                if nxt is not None:
                    heapq.heappush(heap, (nxt - now, i, cid, since, pcalls))
                continue
            tk = choice.ticket
            pool.remove(tk)
            if tk.id in probe_of:
                probed[probe_of[tk.id]] = t
                pending -= 1
                if stop_when_probed and pending == 0:
                    break
                heapq.heappush(heap, (t, i, cid, since, pcalls))
                continue
            steps += 1
            per_ticket[tk.id] = t
            later_of.append((tk.service, t))
            called[tk.service] = called.get(tk.service, 0) + 1
            since, pcalls = (0, pcalls + 1) if tk.priority else (since + 1, pcalls)
            held = means.get(tk.service, 480.0)
            if rate > 0.0:  # (no call at all while nobody has been seen leaving: the forecast's hot path)
                held = times.call_s(held, now + t - tk.issued_at, rate, in_vain)
            heapq.heappush(heap, (t + held, i, cid, since, pcalls))
        # beyond the horizon: the remaining work of the services sharing counters, shared by those counters
        remaining = {s.id: max(waiting[s.id] - called.get(s.id, 0), 0) for s in cfg.services}
        tail: dict[str, float] = {}
        marginal: dict[str, float] = {}
        share = self._sharing(cfg) if cut else {}
        open_counters = [cfg.counters[e[1]] for e in opened] if cut else []
        for s in cfg.services:
            if not servers.get(s.id):
                tail[s.id], marginal[s.id] = INF, 0.0
                continue
            marginal[s.id] = means.get(s.id, 480.0) / servers[s.id]
            tail[s.id] = 0.0
            if cut:
                group = share[s.id]
                n = sum(1 for c in open_counters if not group.isdisjoint(c.services))
                work = sum(remaining[g] * means.get(g, 480.0) for g in group)
                tail[s.id] = work / max(n, 1)
        per_service: dict[str, float] = {}
        completion: dict[str, float] = {}
        horizon = t if cut else INF
        for s in cfg.services:
            if not servers.get(s.id):
                w = INF
            elif s.id in probed:
                w = probed[s.id]
            elif cut:
                w = horizon + tail[s.id] + marginal[s.id]
            else:
                w = INF  # the probe was never called (e.g. stopped early for another probe)
            per_service[s.id] = w
            completion[s.id] = now + w + means[s.id] if w != INF else INF
        later: dict[str, int] = {}  # simulated tickets called after a new one of their own service
        for sid, v in later_of:
            if v > per_service.get(sid, INF):
                later[sid] = later.get(sid, 0) + 1
        ahead = {s.id: max(waiting[s.id] - later.get(s.id, 0), 0) for s in cfg.services}
        return Forecast(per_ticket, per_service, ahead, completion, now, horizon, tail, remaining, marginal)

    @staticmethod
    def _sharing(cfg: Config) -> dict[str, set[str]]:
        """Per service the services that share a counter with it (itself included)."""
        out: dict[str, set[str]] = {s.id: {s.id} for s in cfg.services}
        for c in cfg.counters:
            for a in c.services:
                out[a].update(c.services)
        return out

    @staticmethod
    def _next_due(cfg: Config, selector: RuleSelector, cid: str, pool: PoolView, now: float) -> float | None:
        """When an appointment this counter may call becomes due (the counter waits for it), or None."""
        services = selector.rules(cfg).counters[cid].services
        early = selector.rules(cfg).early_s
        slots = [
            lst[0].appointment - early
            for s in services
            if (lst := pool.appointment.get(s)) and lst[0].appointment is not None
        ]
        due = min(slots, default=None)
        return due if due is not None and due > now else None


def run_slices(gen: Generator[None, None, Forecast]) -> Forecast:
    """Run a sliced forecast to its end."""
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


# ------------------------------------------------------------------------------------------------ intake stop
def intake_decision(
    cfg: Config, fc: Forecast, service: str, now: float, current: Intake | None
) -> tuple[bool, str] | None:
    """The automatic intake stop (Annahmeschluss): (open, reason) when the state should change, else None.

    A manual setting (``current.manual``) always wins. Walk-in intake stops when a new ticket's predicted
    completion passes closing time minus ``margin_min``; it reopens when the completion is ``reopen_min``
    earlier than that again. Outside opening hours, or without an open counter for the service (no
    prediction), nothing changes automatically.
    """
    rules = cfg.steering.intake_stop
    if not rules.enabled or (current is not None and current.manual):
        return None
    hours = cfg.office.opening(now)
    done = fc.completion.get(service, INF)
    if hours is None or not hours[0] <= now <= hours[1] or done == INF:
        return None  # outside opening hours the staff decide; without an open counter nothing is known
    line = hours[1] - rules.margin_min * 60.0
    is_open = current is None or current.open
    if is_open and done > line:
        return False, tr("intake.auto_stop", "de")
    if not is_open and done <= line - rules.reopen_min * 60.0:
        return True, ""
    return None
