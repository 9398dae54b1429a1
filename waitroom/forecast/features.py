"""The online feature state of the waiting-time forecast.

``QueueState`` is fed the events of an office day in order (``arrival``, ``start`` = the ticket is called,
``end`` = its service ended, ``abandon`` = it left unserved, ``server_off`` = a counter paused or closed) and
answers ``features(now, service, priority)``: what the office knows at that instant about the queue a new
ticket joins. Every update is O(1) amortised (sliding windows are deques trimmed from the left, decayed
counters are updated in place); a feature vector costs O(services + priority levels + servers), all bounded by
the size of the office, plus O(n) for the abandonment-corrected queue-length term (n = tickets ahead, capped).

The features follow Thiongane, Chan and L'Ecuyer (queue length per type, servers working, LES, HOL, recent
delays, time of day) and Ibrahim and Whitt (the queue-length predictor corrected for abandonment). They only
use what happened before the instant: the state holds no outcome of a ticket that has not happened yet, which
``tests/test_forecast_features.py`` checks as a property over random event streams.

Times are seconds since the day's midnight (local time); ``new_day`` starts the next day (the daily queue is
emptied, the long-run service-time mean is kept).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_SERVICE_S = 180.0  # service time assumed before anything was observed
ACTIVE_WINDOW_S = 1800.0  # a server counts as working if it started a service within the last 30 min
SERVICE_WINDOW_S = 3600.0  # service times of the last hour
WAIT_WINDOW_S = 3600.0  # waits of the last hour (MEAN1h)
SHORT_WINDOW_S = 900.0  # waits / arrivals / starts of the last 15 min
ABANDON_HALF_LIFE_S = 1800.0  # decay of the abandonment-rate estimate
MAX_AHEAD_TERMS = 200  # cap of the abandonment-corrected sum

# The feature vector, in this order. Names are part of the model file (a model trained with other names is
# refused), so add new features at the end and bump FEATURES_VERSION.
FEATURES_VERSION = 1
BASE_FEATURES = (
    "hour",
    "weekday",
    "priority",
    "n_all",  # tickets waiting, all services
    "n_type",  # tickets waiting for the same service
    "n_ahead_type",  # ... of the same service with the same or a higher priority
    "n_ahead_all",  # ... of any service with the same or a higher priority
    "n_higher_all",  # ... of any service with a higher priority
    "busy",  # tickets in service now
    "busy_type",  # tickets of the same service in service now
    "servers",  # distinct servers that worked in the last 30 min (at least 1)
    "servers_type",  # distinct servers that served this service in the last 30 min
    "mean_st",  # mean service time of the last hour (all services)
    "mean_st_type",  # ... of this service
    "les_all",  # wait of the last ticket called (any service)
    "les_type",  # wait of the last ticket of this service called
    "les3_type",  # mean wait of the last three tickets of this service called
    "mean1h_all",  # mean wait of the tickets called in the last hour
    "mean1h_type",  # ... of this service
    "mean15_all",  # mean wait of the tickets called in the last 15 min
    "hol_all",  # elapsed wait of the longest-waiting ticket (any service)
    "hol_type",  # ... of this service
    "ql_all",  # (n_all + 1) * mean_st / servers
    "ql_ahead",  # (n_ahead_all + 1) * mean_st / servers
    "ql_type",  # (n_type + 1) * mean_st_type / servers_type
    "ql_iw",  # Ibrahim-Whitt: sum_{i<=n_ahead_all} 1 / (servers * mu + i * theta)
    "theta",  # abandonment rate per waiting ticket and second (decayed estimate)
    "aband_30",  # tickets that left unserved in the last 30 min (decayed count)
    "starts_15",  # tickets called in the last 15 min
    "arrivals_15",  # tickets issued in the last 15 min
    "arrivals_15_type",  # ... of this service
    "since_start",  # seconds since the last ticket was called (capped at one hour)
    # the reference's view, which only knows tickets that queued (not services that skipped the queue):
    "servers_q",  # distinct servers that started a queued ticket in the last 30 min or serve one now
    "mean_st_q",  # mean service time of queued tickets finished in the last hour (else the days before)
    "mean_st_q_days",  # mean service time of queued tickets on the days before today (ZMS)
)


def feature_names(services: tuple[str, ...]) -> tuple[str, ...]:
    """The full vector: the base features, then one indicator per service of the office."""
    return BASE_FEATURES + tuple(f"svc={s}" for s in services)


class Window:
    """Values of the last ``span`` seconds with their running sum (events arrive in time order)."""

    __slots__ = ("items", "span", "total")

    def __init__(self, span: float):
        self.span = span
        self.items: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def push(self, t: float, v: float = 1.0) -> None:
        self.items.append((t, v))
        self.total += v

    def trim(self, now: float) -> None:
        items, lim = self.items, now - self.span
        while items and items[0][0] < lim:
            self.total -= items.popleft()[1]
        if not items:
            self.total = 0.0  # no drift from float sums

    def count(self, now: float) -> int:
        self.trim(now)
        return len(self.items)

    def mean(self, now: float, default: float) -> float:
        self.trim(now)
        return self.total / len(self.items) if self.items else default


class Decayed:
    """An exponentially decayed sum (half-life ``half_life`` seconds)."""

    __slots__ = ("rate", "t", "value")

    def __init__(self, half_life: float):
        self.rate = math.log(2) / half_life
        self.value = 0.0
        self.t = 0.0

    def at(self, now: float) -> float:
        if now > self.t:
            self.value *= math.exp(-self.rate * (now - self.t))
            self.t = now
        return self.value

    def add(self, now: float, v: float) -> None:
        self.value = self.at(now) + v


@dataclass
class _Ticket:
    service: str
    priority: int
    arrival: float
    server: str | None = None
    started: float | None = None
    queued: bool = True


@dataclass
class _Service:
    waiting: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    by_prio: Counter[int] = field(default_factory=Counter)
    busy: int = 0
    les: float = 0.0
    last3: deque[float] = field(default_factory=lambda: deque(maxlen=3))
    waits: Window = field(default_factory=lambda: Window(WAIT_WINDOW_S))
    service_times: Window = field(default_factory=lambda: Window(SERVICE_WINDOW_S))
    arrivals: Window = field(default_factory=lambda: Window(SHORT_WINDOW_S))
    servers: Window = field(default_factory=lambda: Window(ACTIVE_WINDOW_S))
    server_count: Counter[str] = field(default_factory=Counter)


class QueueState:
    """What the office knows now, updated event by event; ``features`` describes a ticket issued now."""

    def __init__(self, services: tuple[str, ...] | list[str] = ()):
        self.services: tuple[str, ...] = tuple(services)
        self.names = feature_names(self.services)
        self._lt_st = [0, 0.0]  # long-run service time: count, sum (kept across days)
        self._lt_q = [0, 0.0]  # service time of queued tickets on the days before today
        self._today_q = [0, 0.0]
        self.new_day(0)

    # -- events
    def new_day(self, weekday: int) -> None:
        self.weekday = weekday
        self._lt_q[0] += self._today_q[0]
        self._lt_q[1] += self._today_q[1]
        self._today_q = [0, 0.0]
        self.service_times_q = Window(SERVICE_WINDOW_S)
        self.active_q = Window(ACTIVE_WINDOW_S)
        self.active_q_count: Counter[str] = Counter()
        self.now = 0.0
        self.tickets: dict[str, _Ticket] = {}
        self.svc: dict[str, _Service] = {}
        self.in_service: dict[str, str] = {}  # server -> ticket
        self.les_all = 0.0
        self.waits = Window(WAIT_WINDOW_S)
        self.waits15 = Window(SHORT_WINDOW_S)
        self.service_times = Window(SERVICE_WINDOW_S)
        self.starts = Window(SHORT_WINDOW_S)
        self.arrivals = Window(SHORT_WINDOW_S)
        self.active = Window(ACTIVE_WINDOW_S)  # (start time, server index)
        self.active_count: Counter[str] = Counter()
        self._server_idx: dict[str, float] = {}
        self._server_names: dict[float, str] = {}
        self.aband = Decayed(ABANDON_HALF_LIFE_S)
        self.exposure = Decayed(ABANDON_HALF_LIFE_S)  # decayed integral of the number waiting
        self.n_waiting = 0
        self.busy = 0
        self.last_start: float | None = None

    def _service(self, service: str) -> _Service:
        s = self.svc.get(service)
        if s is None:
            s = self.svc[service] = _Service()
        return s

    def _advance(self, t: float) -> None:
        if t < self.now:
            t = self.now  # events of one second may come in any order; time never runs backwards
        if t > self.now:
            self.exposure.add(t, 0.0)
            # the queue had n_waiting tickets since self.now: add their waiting time (decayed to t)
            dt_ = t - self.now
            self.exposure.value += self.n_waiting * dt_ * math.exp(-self.exposure.rate * dt_ / 2)
            self.now = t

    def arrival(self, t: float, ticket: str, service: str, priority: int = 0) -> None:
        self._advance(t)
        if ticket in self.tickets:
            log.debug("ticket %s arrived twice; ignored", ticket)
            return
        self.tickets[ticket] = _Ticket(service, int(priority), self.now)
        s = self._service(service)
        s.waiting[ticket] = (self.now, int(priority))
        s.by_prio[int(priority)] += 1
        s.arrivals.push(self.now)
        self.arrivals.push(self.now)
        self.n_waiting += 1

    def _leave_queue(self, tk: _Ticket, ticket: str) -> bool:
        s = self._service(tk.service)
        if s.waiting.pop(ticket, None) is None:
            return False
        s.by_prio[tk.priority] -= 1
        self.n_waiting -= 1
        return True

    def start(self, t: float, ticket: str, server: str | None) -> None:
        """The ticket is called by ``server`` (a counter or an agent; None if unknown); its wait ends now."""
        self._advance(t)
        tk = self.tickets.get(ticket)
        if tk is None or tk.started is not None or not self._leave_queue(tk, ticket):
            return
        wait = self.now - tk.arrival
        s = self._service(tk.service)
        s.les = wait
        s.last3.append(wait)
        s.waits.push(self.now, wait)
        self.les_all = wait
        self.waits.push(self.now, wait)
        self.waits15.push(self.now, wait)
        self.starts.push(self.now)
        self.last_start = self.now
        self._occupy(tk, ticket, server)

    def direct(self, t: float, ticket: str, service: str, server: str | None) -> None:
        """A service that did not go through the queue (an agent took a call at once): the server is busy."""
        self._advance(t)
        if ticket in self.tickets:
            return
        tk = self.tickets[ticket] = _Ticket(service, 0, self.now, queued=False)
        self._occupy(tk, ticket, server)

    def _occupy(self, tk: _Ticket, ticket: str, server: str | None) -> None:
        tk.server, tk.started = server, self.now
        s = self._service(tk.service)
        s.busy += 1
        self.busy += 1
        if server is None:
            return
        if server in self.in_service:  # a counter that calls the next one has finished the last
            self.end(self.now, self.in_service[server], server)
        s.servers.push(self.now, self._sidx(server))
        s.server_count[server] += 1
        self.active.push(self.now, self._sidx(server))
        self.active_count[server] += 1
        if tk.queued:
            self.active_q.push(self.now, self._sidx(server))
            self.active_q_count[server] += 1
        self.in_service[server] = ticket

    def _sidx(self, server: str) -> float:
        idx = self._server_idx.get(server)
        if idx is None:
            idx = self._server_idx[server] = float(len(self._server_idx))
            self._server_names[idx] = server
        return idx

    def end(self, t: float, ticket: str, server: str | None = None) -> None:
        """The service of ``ticket`` ended (served, or a no-show released the counter)."""
        self._advance(t)
        tk = self.tickets.pop(ticket, None)
        if tk is None or tk.started is None:
            if tk is not None:
                self.tickets[ticket] = tk
            return
        if tk.server is not None and self.in_service.get(tk.server) == ticket:
            del self.in_service[tk.server]
        s = self._service(tk.service)
        s.busy -= 1
        self.busy -= 1
        duration = self.now - tk.started
        if 0 < duration <= 4 * 3600:
            s.service_times.push(self.now, duration)
            self.service_times.push(self.now, duration)
            self._lt_st[0] += 1
            self._lt_st[1] += duration
            if tk.queued:
                self.service_times_q.push(self.now, duration)
                self._today_q[0] += 1
                self._today_q[1] += duration

    def abandon(self, t: float, ticket: str) -> None:
        """The ticket left the queue unserved (hung up, cancelled)."""
        self._advance(t)
        tk = self.tickets.pop(ticket, None)
        if tk is None:
            return
        if tk.started is None and self._leave_queue(tk, ticket):
            self.aband.add(self.now, 1.0)

    def server_off(self, t: float, server: str) -> None:
        """A counter paused or closed: it no longer counts as working."""
        self._advance(t)
        ticket = self.in_service.get(server)
        if ticket is not None:
            self.end(self.now, ticket, server)
        self.active_count.pop(server, None)
        self.active_q_count.pop(server, None)
        for s in self.svc.values():
            s.server_count.pop(server, None)

    # -- features
    def _distinct(self, win: Window, counts: Counter[str], now: float) -> int:
        items = win.items
        lim = now - win.span
        while items and items[0][0] < lim:
            _, idx = items.popleft()
            name = self._server_names[idx]
            c = counts.get(name, 0)
            if c <= 1:
                counts.pop(name, None)
            else:
                counts[name] = c - 1
        return len(counts)

    def long_run_service_s(self) -> float:
        n, total = self._lt_st
        return total / n if n else DEFAULT_SERVICE_S

    def features(
        self, now: float, service: str, priority: int = 0, services: tuple[str, ...] | None = None
    ) -> list[float]:
        """The feature vector (see ``feature_names``) of a ticket for ``service`` issued at ``now``; the
        service indicators follow ``services`` (a model's list) or else the state's own."""
        self._advance(now)
        t = self.now
        p = int(priority)
        me = self._service(service)
        n_type = len(me.waiting)
        n_ahead_type = sum(c for q, c in me.by_prio.items() if q >= p)
        n_ahead_all = n_higher = 0
        hol_all = 0.0
        for s in self.svc.values():
            if s.waiting:
                hol_all = max(hol_all, t - next(iter(s.waiting.values()))[0])
                for q, c in s.by_prio.items():
                    if q >= p:
                        n_ahead_all += c
                        if q > p:
                            n_higher += c
        hol_type = t - next(iter(me.waiting.values()))[0] if me.waiting else 0.0
        # a server in service counts as working even if it started more than 30 min ago
        distinct = self._distinct(self.active, self.active_count, t)
        extra = sum(1 for srv in self.in_service if srv not in self.active_count)
        servers = max(1, distinct + extra)
        servers_type = max(1, self._distinct(me.servers, me.server_count, t))
        lt = self.long_run_service_s()
        mean_st = self.service_times.mean(t, lt)
        mean_st_type = me.service_times.mean(t, mean_st)
        mu_s = servers / mean_st
        theta = self.aband.at(t) / self.exposure.at(t) if self.exposure.at(t) > 60.0 else 0.0
        ql_iw = sum(1.0 / (mu_s + i * theta) for i in range(min(n_ahead_all, MAX_AHEAD_TERMS) + 1))
        distinct_q = self._distinct(self.active_q, self.active_q_count, t)
        extra_q = sum(
            1
            for srv, tid in self.in_service.items()
            if srv not in self.active_q_count and tid in self.tickets and self.tickets[tid].queued
        )
        n_q, sum_q = self._lt_q
        st_days = sum_q / n_q if n_q else DEFAULT_SERVICE_S
        mean_st_q = self.service_times_q.mean(t, st_days)
        since = min(t - self.last_start, 3600.0) if self.last_start is not None else 3600.0
        vec = [
            t / 3600.0,
            float(self.weekday),
            float(p),
            float(self.n_waiting),
            float(n_type),
            float(n_ahead_type),
            float(n_ahead_all),
            float(n_higher),
            float(self.busy),
            float(me.busy),
            float(servers),
            float(servers_type),
            mean_st,
            mean_st_type,
            self.les_all,
            me.les,
            sum(me.last3) / len(me.last3) if me.last3 else 0.0,
            self.waits.mean(t, 0.0),
            me.waits.mean(t, 0.0),
            self.waits15.mean(t, 0.0),
            hol_all,
            hol_type,
            (self.n_waiting + 1) * mean_st / servers,
            (n_ahead_all + 1) * mean_st / servers,
            (n_type + 1) * mean_st_type / servers_type,
            ql_iw,
            theta * 3600.0,
            self.aband.at(t),
            float(self.starts.count(t)),
            float(self.arrivals.count(t)),
            float(me.arrivals.count(t)),
            since,
            float(max(1, distinct_q + extra_q)),
            mean_st_q,
            st_days if n_q else mean_st_q,  # the reference's ZMS falls back to the recent mean on day one
        ]
        vec.extend(1.0 if service == s else 0.0 for s in (self.services if services is None else services))
        return vec
