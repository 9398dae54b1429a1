"""Steering (Kundensteuerung): which waiting ticket a counter calls next.

Selection is a pure function of the queue state, the configuration and the time, so the controller, the
predictor, the simulator and the tests share the very same code. ``RuleSelector`` applies the office's
``steering:`` rules (docs/steering.md). ``policy: recommended`` (the default):

1. a ticket transferred to this very counter;
2. appointments planned into the counter's time: the counter calls the appointment holder due next (slot, or
   check-in if later) when a walk-in taken now would not be done by then plus ``appointments.grace_min``
   (looking as far ahead as the walk-in takes, which for a long service reaches beyond
   ``appointments.early_min`` before the slot); otherwise it takes the walk-in, so appointments do not jump
   the queue before they need to. With ``appointments.max_wait_behind_appointments_min`` set, a walk-in that
   has waited that long goes before the appointments that became due after it came (``behind_appointments``);
3. a condition (``conditions``): the longest wait of a service passed its limit, and this counter is one of
   the counters the condition names;
4. walk-ins by score = waiting time / the service's target (service-level ageing), times the counter's skill
   weight (full weight once a ticket has waited ``ageing_from`` x its target); a priority ticket's waiting
   time counts ``priority.max_wait_behind_priority_min`` more (the head start), bounded both ways: it never
   goes before a normal ticket that has waited the cap (which is then called, ``behind_priority``), and it is
   never worse off than first come first served, so it cannot be stuck. ``priority.normal_per_priority``
   normal calls of a counter between two priority calls suspend the head start meanwhile (``fairness``);
5. with nobody else waiting, an appointment holder who checked in early.

``policy: fifo`` is the baseline: the longest waiting ticket of the counter's services, appointment holders
and priority tickets included (transfers still first).

Within a service, walk-ins are called first come first served (only the oldest ticket of each service and kind
is read, the heads of the ``model.Pool`` lists), so one selection costs O(services), which keeps the forward
simulation of the predictor and the what-if simulator fast. Every decision carries its rule and a German
explanation for the staff page.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from waitroom.config import Config
from waitroom.i18n import t as tr
from waitroom.i18n import tn
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
        lst = d.get(key)
        if lst and lst[0] is t:
            lst.popleft()
        else:
            if lst is None or t not in lst:
                # the ticket moved since the copy (transferred while a sliced forecast ran)
                lst = next((q for src in self._lists() for q in src.values() if t in q), None)
                if lst is None:
                    return
            lst.remove(t)
        self._n -= 1
        if not lst and id(lst) in self._cut:
            self.exhausted = True

    def _lists(self) -> tuple[dict[str, deque[Ticket]], ...]:
        return self.normal, self.priority, self.appointment, self.targeted

    def __len__(self) -> int:
        return self._n


# ------------------------------------------------------------------------------------------------ rules
NO_CAP = 1e9  # seconds: the head start of priority tickets when there is no cap


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
    fifo: bool = False
    grace_s: float = 120.0
    means: dict[str, float] | None = None  # service -> configured mean service seconds
    servers: dict[str, tuple[str, ...]] | None = None  # service -> the counters serving it
    walk_cap_s: float | None = None  # a walk-in waiting this long goes before appointments due after it came


def compile_rules(cfg: Config) -> _Rules:
    st = cfg.steering
    counters: dict[str, _CounterRules] = {}
    specs = [(c.id, tuple(c.services)) for c in cfg.counters] + [(ALL, tuple(s.id for s in cfg.services))]
    for cid, services in specs:
        weights = {s: (st.weight(cid, s) if cid != ALL else 1.0) for s in services}
        primary = max(weights.values())
        # per service only the lowest limit that concerns the counter: it fires first and, above it, with
        # the highest wait/limit, so the others never decide (one decision costs O(the counter's services),
        # however many conditions the office writes)
        conds: dict[str, tuple[str, float, float]] = {}
        for i, c in enumerate(st.conditions):
            if c.service not in services:
                continue
            if (
                c.counters == "all"
                or cid == ALL
                or (isinstance(c.counters, list) and cid in c.counters)
                or (c.counters == "secondary" and weights[c.service] < primary)
            ):
                limit = c.longest_wait_over_min * 60.0
                if c.service not in conds or limit < conds[c.service][1]:
                    conds[c.service] = (c.service, limit, float(i))
        counters[cid] = _CounterRules(services, weights, primary, list(conds.values()))
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
        fifo=st.policy == "fifo",
        grace_s=st.appointments.grace_min * 60.0,
        means={s.id: s.mean_service_min * 60.0 for s in cfg.services},
        servers={s.id: tuple(c.id for c in cfg.counters if s.id in c.services) for s in cfg.services},
        walk_cap_s=None
        if st.appointments.max_wait_behind_appointments_min is None
        else st.appointments.max_wait_behind_appointments_min * 60.0,
    )


@dataclass(frozen=True)
class Choice:
    """A selection before it becomes a Decision: the ticket, the rule and the values for the explanation."""

    ticket: Ticket
    rule: str
    values: tuple[tuple[str, object], ...] = ()


def _minutes(sec: float) -> int:
    return max(0, round(sec / 60))


def _expected_free(state: OfficeState, r: _Rules, now: float) -> dict[str, float]:
    """When each open counter is expected to be free: now when idle, else the mean service time after the call
    (at least a minute from now when it runs over)."""
    out: dict[str, float] = {}
    for cid, cs in state.counters.items():
        if cs.state != "open":
            continue
        cur = state.tickets.get(cs.current) if cs.current else None
        if cur is None or cur.called_at is None:
            out[cid] = now
        else:
            out[cid] = max(cur.called_at + r.means.get(cur.service, 480.0), now + 60.0)  # type: ignore[union-attr]
    return out


# walk-in choices made by the score alone (not priority, a condition or the cap)
_BY_SCORE = frozenset({"longest", "service_level", "secondary", "fairness"})


def _score(r: _Rules, cr: _CounterRules, t: Ticket, now: float) -> float:
    """A normal ticket's score at this counter (rule 4): waiting time / its service's target, times the
    counter's skill weight until the ticket has waited ``ageing_from`` x the target."""
    target = r.targets[t.service]
    age = now - t.issued_at
    return age / target * (1.0 if age >= r.ageing_from * target else cr.weights[t.service])


def _due(t: Ticket) -> float:
    """When an appointment holder is due: the slot, or the check-in when it came after the slot."""
    return max(t.appointment or 0.0, t.issued_at)


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
            cfg,
            counter,
            now,
            pool,
            cs.calls_since_priority if cs else 0,
            cs.priority_calls if cs else 0,
            state=state,
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
        if choice.rule == "fairness":  # "nach 1 normalen Aufruf", "nach 2 normalen Aufrufen"
            return tn("steering.fairness", int(values["n"]), "de", **values)
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
        *,
        state: OfficeState | None = None,
    ) -> Choice | None:
        """The next ticket for ``counter``. With ``state`` (the controller, the simulator) an appointment that
        is not due yet may be left to another open counter expected to be free by then; without it (the
        predictor's look-ahead) this counter calls it when a walk-in would make it late."""
        r = self.rules(cfg)
        cr = r.counters[counter]
        lst = pool.targeted.get(counter)
        if lst:
            return Choice(lst[0], "transferred")
        if r.fifo:
            return self._fifo(cr, pool, now)
        # the appointment holder due next at this counter (heads only: earliest slot of each service)
        appt: Ticket | None = None
        due = 0.0
        appointments = pool.appointment
        for s in cr.services:
            lst = appointments.get(s)
            if lst:
                head = lst[0]
                d = _due(head)
                if appt is None or d < due:
                    appt, due = head, d
        callable_ = appt is not None and now >= appt.appointment - r.early_s  # type: ignore[operator]
        if callable_ and due <= now:  # due: before the walk-ins
            due_now = Choice(appt, "appointment", (("slot", appt.appointment),))  # type: ignore[union-attr,arg-type]
            return self._unless_capped(r, cr, pool, now, appt, due_now)  # type: ignore[arg-type]
        walk = self._walk_in(r, cr, pool, now, since_priority, priority_calls)
        if appt is not None:
            if walk is None:
                return Choice(
                    appt, "appointment" if callable_ else "appointment_early", (("slot", appt.appointment),)
                )
            # a holder who came early (within early_min) and has waited longer than the walk-in the scores
            # chose is called now, as that walk-in would be: its work is done while the office can, not at
            # its slot, when the queue may be longer. Priority, conditions and the cap keep their place.
            if (
                callable_
                and walk.rule in _BY_SCORE
                and _score(r, cr, appt, now) > _score(r, cr, walk.ticket, now)
            ):
                return Choice(
                    appt,
                    "appointment_waiting",
                    (("slot", appt.appointment), ("wait", _minutes(now - appt.issued_at))),
                )
            assert r.means is not None
            back = now + r.means[walk.ticket.service] - r.grace_s  # this counter is back by then
            # planned as far ahead as the walk-in takes, not only from early_min before the slot: a walk-in
            # longer than early_min (a 30-minute service) started just before the window would run past it
            if due < back:
                late = self._uncovered(r, cr, counter, pool, now, back, state)
                if late is not None:
                    return self._unless_capped(
                        r, cr, pool, now, late, Choice(late, "appointment", (("slot", late.appointment),))
                    )
        return walk

    @staticmethod
    def _unless_capped(
        r: _Rules, cr: _CounterRules, pool: Pool | PoolView, now: float, appt: Ticket, choice: Choice
    ) -> Choice:
        """``appointments.max_wait_behind_appointments_min``: the longest waiting walk-in this counter may
        call goes before the appointment ``appt`` when it has waited the cap and came before the holder was
        due (a holder due before the walk-in came keeps its place)."""
        if r.walk_cap_s is None:
            return choice
        oldest: Ticket | None = None
        for s in cr.services:
            for d in (pool.normal, pool.priority):
                lst = d.get(s)
                if lst and (oldest is None or _walk_key(lst[0]) < _walk_key(oldest)):
                    oldest = lst[0]
        if oldest is None or now - oldest.issued_at < r.walk_cap_s or oldest.issued_at >= _due(appt):
            return choice
        return Choice(
            oldest,
            "behind_appointments",
            (("wait", _minutes(now - oldest.issued_at)), ("limit", _minutes(r.walk_cap_s))),
        )

    def _uncovered(
        self,
        r: _Rules,
        cr: _CounterRules,
        counter: str,
        pool: Pool | PoolView,
        now: float,
        back: float,
        state: OfficeState | None,
    ) -> Ticket | None:
        """The appointment this counter must take now: of those due before it would be back from a walk-in,
        the earliest that no other open counter is expected to be free for (by its due time plus grace).
        O(services x counters)."""
        heads = sorted(
            (
                lst[0]
                for s in cr.services
                if (lst := pool.appointment.get(s)) and lst[0].appointment is not None and _due(lst[0]) < back
            ),
            key=_due,
        )
        if state is None:
            return heads[0] if heads else None
        free = _expected_free(state, r, now)
        taken: set[str] = {counter}  # this counter takes the walk-in
        for a in heads:
            limit = _due(a) + r.grace_s
            cover = [
                (f, cid)
                for cid in r.servers[a.service]  # type: ignore[index]
                if cid not in taken and (f := free.get(cid)) is not None and f <= limit
            ]
            if not cover:
                return a
            taken.add(max(cover)[1])  # the counter free last (but in time) keeps the others for walk-ins
        return None

    @staticmethod
    def _fifo(cr: _CounterRules, pool: Pool | PoolView, now: float) -> Choice | None:
        """The baseline: the longest waiting ticket of the counter's services, whatever its kind."""
        best: Ticket | None = None
        for s in cr.services:
            for d in (pool.normal, pool.priority, pool.appointment):
                lst = d.get(s)
                if lst and (best is None or _walk_key(lst[0]) < _walk_key(best)):
                    best = lst[0]
        if best is None:
            return None
        return Choice(best, "longest", (("wait", _minutes(now - best.issued_at)),))

    def _walk_in(
        self,
        r: _Rules,
        cr: _CounterRules,
        pool: Pool | PoolView,
        now: float,
        since_priority: int,
        priority_calls: int,
    ) -> Choice | None:
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
        n = r.normal_per_priority
        head_start_ok = n == 0 or priority_calls == 0 or since_priority >= n
        head_start = (NO_CAP if r.cap_s is None else r.cap_s) if head_start_ok else 0.0
        # 4 the score of every head: waiting time / target, times the skill weight; the oldest normal ticket
        best: Ticket | None = None
        best_score = -1.0
        oldest: Ticket | None = None  # the longest waiting normal ticket this counter may call
        prio_waiting = False
        kinds = (pool.normal, pool.priority)
        for s in cr.services:
            target = r.targets[s]
            for d in kinds:
                lst = d.get(s)
                if not lst:
                    continue
                tk = lst[0]
                age = now - tk.issued_at
                w = 1.0 if age >= r.ageing_from * target else cr.weights[s]
                if tk.priority:
                    prio_waiting = True
                    age += head_start
                elif oldest is None or _walk_key(tk) < _walk_key(oldest):
                    oldest = tk
                score = age / target * w
                if score > best_score or (score == best_score and _walk_key(tk) < _walk_key(best)):  # type: ignore[arg-type]
                    best, best_score = tk, score
        if fired is not None:
            _, tk, service, limit = fired
            choice = Choice(
                tk,
                "condition",
                (
                    ("service", r.names[service]),
                    ("wait", _minutes(now - tk.issued_at)),
                    ("limit", _minutes(limit)),
                ),
            )
        elif best is None:
            return None
        elif best.priority:
            choice = Choice(best, "priority")
        else:
            tk = best
            wait = now - tk.issued_at
            target = r.targets[tk.service]
            w = cr.weights[tk.service]
            if prio_waiting and not head_start_ok:
                rule = "fairness"
            elif wait >= r.ageing_from * target:
                rule = "service_level"
            elif w < cr.primary:
                rule = "secondary"
            else:
                rule = "longest"
            choice = Choice(
                tk,
                rule,
                (
                    ("wait", _minutes(wait)),
                    ("target", _minutes(target)),
                    ("weight", f"{w:g}"),
                    ("n", n),
                ),
            )
        # the cap: a priority ticket never goes before a normal ticket that has waited the cap
        tk = choice.ticket
        if (
            tk.priority
            and oldest is not None
            and r.cap_s is not None
            and _walk_key(oldest) < _walk_key(tk)
            and now - oldest.issued_at >= r.cap_s
        ):
            return Choice(
                oldest,
                "behind_priority",
                (("wait", _minutes(now - oldest.issued_at)), ("limit", _minutes(r.cap_s))),
            )
        return choice
