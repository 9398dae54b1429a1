"""Steering (Kundensteuerung): which waiting ticket a counter calls next.

Selection is a pure function of the queue state, the configuration and the time, so the controller, the
predictor, the simulator and the tests share the very same code. ``RuleSelector`` applies the office's
``steering:`` rules (docs/steering.md) in this order; the first rule that yields a ticket decides:

1. a ticket transferred to this very counter;
2. an appointment whose slot is due (from ``appointments.early_min`` before the slot), earliest slot first;
3. a condition (``conditions``): the longest wait of a service passed its limit, and this counter is one of
   the counters the condition names;
4. service-level ageing: a ticket that has waited ``ageing_from`` x its service's target, the most overdue
   first;
5. priority tickets, with fairness: at least ``priority.normal_per_priority`` normal calls between two
   priority calls of a counter while both kinds wait, and nobody waits longer than
   ``max_wait_behind_priority_min`` behind priority tickets;
6. the longest waiting ticket, waiting time multiplied by the counter's skill weight for its service;
7. with nobody else waiting, an appointment holder who checked in early.

Within a service, walk-ins are called first come first served (rules 3-6 only ever look at the oldest ticket
of each service and kind), so one selection costs O(services), which keeps the forward simulation of the
predictor and the what-if simulator fast. Every decision carries its rule and a German explanation for the
staff page.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from waitroom.config import Config
from waitroom.i18n import t as tr
from waitroom.model import OfficeState, Pool, Ticket, slot_key, walk_key

log = logging.getLogger(__name__)

ALL = "*"  # the virtual counter serving every service, used for the office-wide order


@dataclass(frozen=True)
class Decision:
    ticket: str  # ticket id
    reason: str  # human-readable explanation (German) shown to staff and recorded in the event log
    rule: str = ""  # machine-readable rule: transferred, appointment, condition, service_level, ...


class Selector(Protocol):
    def select(self, state: OfficeState, counter: str, cfg: Config, now: float) -> Decision | None: ...

    def order(self, state: OfficeState, cfg: Config, now: float) -> list[Ticket]:
        """All waiting tickets in the order they are expected to be called (for waiting-time prediction)."""
        ...


def eligible(t: Ticket, counter: str, services: frozenset[str] | set[str] | list[str]) -> bool:
    """A counter may call a waiting ticket of a service it serves, or one transferred to it by name."""
    if t.state != "waiting":
        return False
    if t.target_counter is not None:
        return t.target_counter == counter
    return t.service in services


class PriorityThenFifo:
    """The first version, kept as the simplest reference: priority first, otherwise the longest waiting."""

    def key(self, t: Ticket) -> tuple[bool, float, str]:
        return (not t.priority, t.issued_at, t.number)

    def select(self, state: OfficeState, counter: str, cfg: Config, now: float) -> Decision | None:
        services = cfg.counter(counter).services
        candidates = [t for t in state.tickets.values() if eligible(t, counter, services)]
        if not candidates:
            return None
        best = min(candidates, key=self.key)
        if best.target_counter:
            why = "transferred to this counter"
        elif best.priority:
            why = "priority ticket"
        else:
            why = f"longest waiting ({round((now - best.issued_at) / 60)} min)"
        return Decision(best.id, why)

    def order(self, state: OfficeState, cfg: Config, now: float) -> list[Ticket]:
        return sorted(state.waiting(), key=self.key)


# ------------------------------------------------------------------------------------------------ the pool
_walk_key = walk_key
_slot_key = slot_key


class PoolView:
    """A private, bounded copy of the heads of a ``Pool`` for looking ahead (prediction, the call order):
    at most ``depth`` tickets of each list, as deques (head first). Removing takes a head, as selection does.

    ``exhausted`` turns true when a list whose copy was cut runs empty: from then on the view no longer
    knows which ticket comes next, so a forward simulation stops there and extrapolates.
    """

    __slots__ = ("_cut", "_n", "appointment", "exhausted", "normal", "priority", "targeted")

    def __init__(self, pool: Pool, depth: int = 1 << 30):
        self._cut: set[int] = set()
        self.exhausted = False
        n = 0
        out: list[dict[str, deque[Ticket]]] = []
        for src in (pool.normal, pool.priority, pool.appointment, pool.targeted):
            d: dict[str, deque[Ticket]] = {}
            for key, lst in src.items():
                if not lst:
                    continue
                if len(lst) > depth:
                    copy = deque(lst.islice(0, depth))
                    self._cut.add(id(copy))
                else:
                    copy = deque(lst)
                d[key] = copy
                n += len(copy)
            out.append(d)
        self.normal, self.priority, self.appointment, self.targeted = out
        self._n = n

    def _bucket(self, t: Ticket) -> tuple[dict[str, deque[Ticket]], str]:
        if t.target_counter is not None:
            return self.targeted, t.target_counter
        if t.appointment is not None:
            return self.appointment, t.service
        return (self.priority if t.priority else self.normal), t.service

    def add_newest(self, t: Ticket) -> None:
        """Add a ticket issued after every ticket in the pool (e.g. the predictor's probe ticket)."""
        d, key = self._bucket(t)
        lst = d.get(key)
        if lst is None:
            d[key] = deque((t,))
        elif id(lst) not in self._cut:
            lst.append(t)
        else:
            return  # beyond the horizon of a cut list; the caller extrapolates
        self._n += 1

    def remove(self, t: Ticket) -> None:
        d, key = self._bucket(t)
        lst = d[key]
        if lst[0] is t:
            lst.popleft()
        else:
            lst.remove(t)
        self._n -= 1
        if not lst and id(lst) in self._cut:
            self.exhausted = True

    def __len__(self) -> int:
        return self._n


# ------------------------------------------------------------------------------------------------ rules
@dataclass
class _CounterRules:
    services: tuple[str, ...]
    weights: dict[str, float]
    primary: float  # the counter's highest weight
    conditions: list[tuple[str, float, float]]  # (service, limit seconds, index)


@dataclass
class _Rules:
    counters: dict[str, _CounterRules]
    targets: dict[str, float]  # service -> target seconds
    ageing_from: float
    early_s: float
    normal_per_priority: int
    cap_s: float | None
    names: dict[str, str]  # service -> German name


def compile_rules(cfg: Config) -> _Rules:
    st = cfg.steering
    counters: dict[str, _CounterRules] = {}
    specs = [(c.id, tuple(c.services)) for c in cfg.counters] + [(ALL, tuple(s.id for s in cfg.services))]
    for cid, services in specs:
        weights = {s: (st.weight(cid, s) if cid != ALL else 1.0) for s in services}
        primary = max(weights.values())
        conds = []
        for i, c in enumerate(st.conditions):
            if c.service not in services:
                continue
            if (
                c.counters == "all"
                or cid == ALL
                or (isinstance(c.counters, list) and cid in c.counters)
                or (c.counters == "secondary" and weights[c.service] < primary)
            ):
                conds.append((c.service, c.longest_wait_over_min * 60.0, float(i)))
        counters[cid] = _CounterRules(services, weights, primary, conds)
    return _Rules(
        counters=counters,
        targets={s.id: st.target_s(s.id) for s in cfg.services},
        ageing_from=st.ageing_from,
        early_s=st.appointments.early_min * 60.0,
        normal_per_priority=st.priority.normal_per_priority,
        cap_s=None
        if st.priority.max_wait_behind_priority_min is None
        else st.priority.max_wait_behind_priority_min * 60.0,
        names={s.id: s.name.de for s in cfg.services},
    )


@dataclass(frozen=True)
class Choice:
    """A selection before it becomes a Decision: the ticket, the rule and the values for the explanation."""

    ticket: Ticket
    rule: str
    values: tuple[tuple[str, object], ...] = ()


def _minutes(sec: float) -> int:
    return max(0, round(sec / 60))


class RuleSelector:
    """The office's declarative steering rules (``cfg.steering``), explainable decisions."""

    def __init__(self) -> None:
        self._cache: tuple[Config, _Rules] | None = None

    def rules(self, cfg: Config) -> _Rules:
        if self._cache is None or self._cache[0] is not cfg:
            self._cache = (cfg, compile_rules(cfg))
        return self._cache[1]

    # -- the controller's interface
    def select(self, state: OfficeState, counter: str, cfg: Config, now: float) -> Decision | None:
        cs = state.counters.get(counter)
        pool = state.pool  # the incremental index: only list heads are read
        choice = self.choose(
            cfg, counter, now, pool, cs.calls_since_priority if cs else 0, cs.priority_calls if cs else 0
        )
        if choice is None:
            return None
        return Decision(choice.ticket.id, self.explain(cfg, choice), choice.rule)

    def order(self, state: OfficeState, cfg: Config, now: float) -> list[Ticket]:
        """Waiting tickets in the order an office-wide counter serving everything would call them now.
        O(n x services): for tests and the simple reference predictor, never on the command path."""
        pool = PoolView(state.pool)
        out = [t for lst in pool.targeted.values() for t in lst]
        pool.targeted.clear()
        while True:
            choice = self.choose(cfg, ALL, now, pool, 1 << 30, 1)
            if choice is None:
                break
            out.append(choice.ticket)
            pool.remove(choice.ticket)
        return out

    def explain(self, cfg: Config, choice: Choice) -> str:
        values = dict(choice.values)
        if "slot" in values:
            values["slot"] = dt.datetime.fromtimestamp(float(values["slot"]), cfg.office.tz).strftime("%H:%M")
        return tr(f"steering.{choice.rule}", "de", **values)

    # -- the core, shared with the predictor's forward simulation
    def choose(
        self,
        cfg: Config,
        counter: str,
        now: float,
        pool: Pool | PoolView,
        since_priority: int,
        priority_calls: int,
    ) -> Choice | None:
        r = self.rules(cfg)
        cr = r.counters[counter]
        lst = pool.targeted.get(counter)
        if lst:
            return Choice(lst[0], "transferred")
        # 2 appointments due
        best: Ticket | None = None
        for s in cr.services:
            lst = pool.appointment.get(s)
            if (
                lst
                and lst[0].appointment is not None
                and lst[0].appointment - r.early_s <= now
                and (best is None or _slot_key(lst[0]) < _slot_key(best))
            ):
                best = lst[0]
        if best is not None:
            return Choice(best, "appointment", (("slot", best.appointment),))
        normal = [lst[0] for s in cr.services if (lst := pool.normal.get(s))]
        prio = [lst[0] for s in cr.services if (lst := pool.priority.get(s))]
        if not normal and not prio:
            early = [lst[0] for s in cr.services if (lst := pool.appointment.get(s))]
            if early:
                best = min(early, key=_slot_key)
                return Choice(best, "appointment_early", (("slot", best.appointment),))
            return None
        # 3 conditions
        fired: tuple[float, Ticket, str, float] | None = None
        for service, limit, _ in cr.conditions:
            heads = [lst[0] for d in (pool.normal, pool.priority) if (lst := d.get(service))]
            if not heads:
                continue
            oldest = min(heads, key=_walk_key)
            wait = now - oldest.issued_at
            if wait > limit and (fired is None or wait / limit > fired[0]):
                fired = (wait / limit, oldest, service, limit)
        if fired is not None:
            _, tk, service, limit = fired
            return Choice(
                tk,
                "condition",
                (
                    ("service", r.names[service]),
                    ("wait", _minutes(now - tk.issued_at)),
                    ("limit", _minutes(limit)),
                ),
            )
        # 4 service-level ageing
        urgent: Ticket | None = None
        top = r.ageing_from
        for tk in (*normal, *prio):
            rel = (now - tk.issued_at) / r.targets[tk.service]
            if rel >= top and (urgent is None or rel > top or _walk_key(tk) < _walk_key(urgent)):
                urgent, top = tk, rel
        if urgent is not None:
            return Choice(
                urgent,
                "service_level",
                (("wait", _minutes(now - urgent.issued_at)), ("target", _minutes(r.targets[urgent.service]))),
            )
        # 5 priority with fairness
        rule = "longest"
        if prio:
            if not normal:
                return Choice(self._weighted(cr, prio, now), "priority")
            longest = min(normal, key=_walk_key)
            if r.cap_s is not None and now - longest.issued_at >= r.cap_s:
                return Choice(
                    longest,
                    "behind_priority",
                    (("wait", _minutes(now - longest.issued_at)), ("limit", _minutes(r.cap_s))),
                )
            n = r.normal_per_priority
            if n == 0 or priority_calls == 0 or since_priority >= n:
                return Choice(self._weighted(cr, prio, now), "priority")
            rule = "fairness"
        # 6 weighted longest wait
        tk = self._weighted(cr, normal, now)
        w = cr.weights[tk.service]
        if rule == "longest" and w < cr.primary:
            rule = "secondary"
        return Choice(
            tk,
            rule,
            (("wait", _minutes(now - tk.issued_at)), ("weight", f"{w:g}"), ("n", r.normal_per_priority)),
        )

    @staticmethod
    def _weighted(cr: _CounterRules, heads: list[Ticket], now: float) -> Ticket:
        best = heads[0]
        best_score = (now - best.issued_at) * cr.weights[best.service]
        for tk in heads[1:]:
            score = (now - tk.issued_at) * cr.weights[tk.service]
            if score > best_score or (score == best_score and _walk_key(tk) < _walk_key(best)):
                best, best_score = tk, score
        return best
