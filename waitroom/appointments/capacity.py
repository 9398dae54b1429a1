"""Free appointment slots from the staffing plan, leaving the office's share of counter time to walk-ins.

The model (docs/appointments.md):

- A counter is *staffed* on a day during ``appointments.staffing`` (or the opening hours when it is not
  listed), within the opening hours, minus ``appointments.pauses``.
- An appointment of service *s* at slot *t* occupies one counter that serves *s* from *t* for the service's
  mean service time, and the counter must be staffed for all of that time.
- A counter serves one appointment at a time (no two of its appointments overlap).
- In every capacity window (``appointments.window_min`` from opening), a counter spends at most
  ``1 - share`` of its staffed time in the window on appointments that start in it, where ``share`` is
  ``walk_in_share`` or, where the office's own log expects more walk-in work in that window, that work's
  share of the window's staffed counter time (``waitroom.appointments.walkins``).

Every booked appointment is planned on one counter (the controller records it with the booking, so a plan
never reshuffles); ``day_plan`` replays the book in booking order on the recorded counters, so a slot that
was free when it was booked stays served (also when the walk-in share of its window has grown since: the
shares limit what is offered, not what was booked). A slot is offered only if an appointment there fits
the plan of the day: the plan is the witness that the staffing can serve every booking. Pure functions, no
I/O.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from waitroom.appointments.walkins import WalkInProfile
from waitroom.config import WEEKDAYS, Config

EPS = 1e-6


@dataclass(frozen=True)
class Booking:
    """What capacity needs to know of one appointment in the book."""

    code: str
    service: str
    slot: float
    counter: str | None = None  # the counter it is planned on (None: not planned yet / did not fit)


@dataclass
class DayPlan:
    day: dt.date
    open: float
    close: float
    slots: list[float]  # the slot grid of the day
    staffed: dict[str, list[tuple[float, float]]]  # counter -> staffed intervals (epoch seconds)
    windows: list[tuple[float, float]]
    budget: dict[tuple[str, int], float]  # (counter, window) -> appointment seconds still free
    busy: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # sorted, per counter
    placed: dict[str, str] = field(default_factory=dict)  # booking code -> counter
    overbooked: list[str] = field(default_factory=list)  # booking codes the staffing cannot serve
    window_s: float = 3600.0
    dur: dict[str, float] = field(default_factory=dict)  # service -> seconds of one appointment
    skills: dict[str, frozenset[str]] = field(default_factory=dict)  # counter -> services

    def window_of(self, t: float) -> int | None:
        if not self.windows or not self.open <= t < self.close:
            return None
        return int((t - self.open) // self.window_s)


def _at(day: dt.date, hhmm: str, cfg: Config) -> float:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=cfg.office.tz).timestamp()


def _subtract(spans: list[tuple[float, float]], cuts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = spans
    for ca, cb in cuts:
        nxt: list[tuple[float, float]] = []
        for a, b in out:
            if cb <= a or ca >= b:
                nxt.append((a, b))
                continue
            if a < ca:
                nxt.append((a, ca))
            if cb < b:
                nxt.append((cb, b))
        out = nxt
    return out


def _overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans)


def duration_s(cfg: Config, service: str) -> float:
    return cfg.service(service).mean_service_min * 60.0


def bookable_services(cfg: Config) -> list[str]:
    allowed = cfg.appointments.services
    return [s.id for s in cfg.services if allowed is None or s.id in allowed]


def empty_plan(cfg: Config, day: dt.date, walk_ins: WalkInProfile | None = None) -> DayPlan:
    """The day's staffing without any booking; ``walk_ins``: the expected walk-in work per window."""
    a = cfg.appointments
    span = cfg.office.hours.get(WEEKDAYS[day.weekday()])
    if not span:
        return DayPlan(day, 0.0, 0.0, [], {}, [], {})
    dur = {sv.id: sv.mean_service_min * 60.0 for sv in cfg.services}
    skills = {cn.id: frozenset(cn.services) for cn in cfg.counters}
    o, c = _at(day, span[0], cfg), _at(day, span[1], cfg)
    pauses = [(_at(day, x, cfg), _at(day, y, cfg)) for x, y in a.pauses]
    staffed: dict[str, list[tuple[float, float]]] = {}
    for counter in cfg.counters:
        if counter.id in a.staffing:
            raw = [
                (_at(day, x, cfg), _at(day, y, cfg))
                for x, y in a.staffing[counter.id].get(WEEKDAYS[day.weekday()], [])
            ]
        else:
            raw = [(o, c)]
        clipped = [(max(x, o), min(y, c)) for x, y in raw if min(y, c) > max(x, o)]
        staffed[counter.id] = sorted(_subtract(clipped, pauses))
    step_w, step_s = a.window_min * 60.0, a.slot_min * 60.0
    windows = []
    t = o
    while t < c - EPS:
        windows.append((t, min(t + step_w, c)))
        t += step_w
    slots = []
    t = o
    while t < c - EPS:
        slots.append(t)
        t += step_s
    bookable = [1.0 - walk_in_share(cfg, day, wa, wb, staffed, walk_ins) for wa, wb in windows]
    budget = {
        (cid, i): bookable[i] * _overlap(wa, wb, spans)
        for cid, spans in staffed.items()
        for i, (wa, wb) in enumerate(windows)
    }
    busy: dict[str, list[tuple[float, float]]] = {cid: [] for cid in staffed}
    return DayPlan(day, o, c, slots, staffed, windows, budget, busy, window_s=step_w, dur=dur, skills=skills)


def walk_in_share(
    cfg: Config,
    day: dt.date,
    start: float,
    end: float,
    staffed: dict[str, list[tuple[float, float]]],
    walk_ins: WalkInProfile | None,
) -> float:
    """The share of the window's staffed counter time kept free for walk-ins."""
    share = cfg.appointments.walk_in_share
    if walk_ins is None:
        return share
    staffed_s = sum(_overlap(start, end, spans) for spans in staffed.values())
    local = dt.datetime.fromtimestamp(start, cfg.office.tz)
    expected = walk_ins.expected(day.weekday(), local.hour * 60 + local.minute)
    if staffed_s <= 0 or expected <= 0:
        return share
    return max(share, min(1.0, expected / staffed_s))


def _fits_on(
    plan: DayPlan, cfg: Config, counter: str, service: str, slot: float, *, budget: bool = True
) -> bool:
    if counter not in plan.staffed or service not in plan.skills[counter]:
        return False
    end = slot + plan.dur[service]
    if not any(a <= slot + EPS and end <= b + EPS for a, b in plan.staffed[counter]):
        return False
    w = plan.window_of(slot)
    if w is None or (budget and plan.budget[(counter, w)] + EPS < end - slot):
        return False
    busy = plan.busy[counter]
    i = bisect.bisect_left(busy, (slot, end))
    if i > 0 and busy[i - 1][1] > slot + EPS:
        return False
    return not (i < len(busy) and busy[i][0] < end - EPS)


def _candidates(plan: DayPlan, cfg: Config, service: str) -> list[str]:
    """Counters serving ``service``, specialists first (they keep the generalists free for the rest)."""
    cs = [c for c in cfg.counters if service in c.services and c.id in plan.staffed]
    return [c.id for c in sorted(cs, key=lambda c: (len(c.services), c.id))]


def fit(plan: DayPlan, cfg: Config, service: str, slot: float) -> str | None:
    """The counter an appointment of ``service`` at ``slot`` would be planned on, or None: no room."""
    for cid in _candidates(plan, cfg, service):
        if _fits_on(plan, cfg, cid, service, slot):
            return cid
    return None


def place(plan: DayPlan, cfg: Config, code: str, service: str, slot: float, counter: str) -> None:
    end = slot + plan.dur[service]
    bisect.insort(plan.busy[counter], (slot, end))
    w = plan.window_of(slot)
    assert w is not None
    plan.budget[(counter, w)] -= end - slot
    plan.placed[code] = counter


def day_plan(
    cfg: Config, day: dt.date, bookings: Iterable[Booking], walk_ins: WalkInProfile | None = None
) -> DayPlan:
    """The day's plan with the booked appointments of that day, in booking order: on their recorded counter
    where its staffing still serves them (the configuration may have changed; a window's budget may be
    spent beyond its share, then nothing more is offered in it), else on any that fits, else overbooked."""
    plan = empty_plan(cfg, day, walk_ins)
    todo = [b for b in bookings if plan.open <= b.slot < plan.close]
    if cfg.office.hours.get(WEEKDAYS[day.weekday()]) is None:
        todo = []
    later: list[Booking] = []
    for b in todo:
        if (
            b.counter is not None
            and b.service in cfg.service_ids
            and _fits_on(plan, cfg, b.counter, b.service, b.slot, budget=False)
        ):
            place(plan, cfg, b.code, b.service, b.slot, b.counter)
        else:
            later.append(b)
    for b in later:
        cid = fit(plan, cfg, b.service, b.slot) if b.service in cfg.service_ids else None
        if cid is None:
            plan.overbooked.append(b.code)
        else:
            place(plan, cfg, b.code, b.service, b.slot, cid)
    return plan


def local_day(cfg: Config, ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, cfg.office.tz).date()


def on_grid(plan: DayPlan, slot: float) -> bool:
    i = bisect.bisect_left(plan.slots, slot - EPS)
    return i < len(plan.slots) and abs(plan.slots[i] - slot) < 0.5


def free_slots(
    plan: DayPlan, cfg: Config, service: str, *, not_before: float = 0.0
) -> list[tuple[float, int]]:
    """``(slot, counters that could take it)`` for every slot of the day an appointment of ``service`` fits,
    from ``not_before`` on."""
    out = []
    cands = _candidates(plan, cfg, service)
    for slot in plan.slots:
        if slot < not_before:
            continue
        n = sum(1 for cid in cands if _fits_on(plan, cfg, cid, service, slot))
        if n:
            out.append((slot, n))
    return out


def first_day(cfg: Config, now: float) -> dt.date:
    return local_day(cfg, now)


def horizon(cfg: Config, now: float) -> list[dt.date]:
    """The days the booking page offers: today and ``appointments.horizon_days`` ahead."""
    d0 = local_day(cfg, now)
    return [d0 + dt.timedelta(days=i) for i in range(cfg.appointments.horizon_days + 1)]


def fill_day(cfg: Config, day: dt.date) -> list[Booking]:
    """The slot plan of a fully booked day: the bookable services take turns at their earliest free slot until
    none fits anywhere (what the what-if simulator books to show the effect of the plan on walk-ins)."""
    plan = empty_plan(cfg, day)
    services = [s for s in bookable_services(cfg) if _candidates(plan, cfg, s)]
    out: list[Booking] = []
    start = dict.fromkeys(services, 0)  # per service: slots before this index are full for it
    while services:
        for sid in list(services):
            slots = plan.slots
            i = start[sid]
            while i < len(slots) and fit(plan, cfg, sid, slots[i]) is None:
                i += 1
            start[sid] = i
            if i == len(slots):
                services.remove(sid)
                continue
            cid = fit(plan, cfg, sid, slots[i])
            assert cid is not None
            code = f"P{len(out):04d}"
            place(plan, cfg, code, sid, slots[i], cid)
            out.append(Booking(code, sid, slots[i], cid))
    return out
