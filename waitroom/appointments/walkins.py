"""The walk-in work an office can expect in each capacity window, learned from its own event log.

Capacity keeps a share of every counter's time free for walk-ins (``appointments.walk_in_share``). Walk-ins
do not come evenly: a Monday morning brings more than a Thursday afternoon. Where the office's own log shows
that more walk-in work arrives in a capacity window than that share covers, the window keeps that much free
instead (``capacity.empty_plan``)::

    share(window) = max(walk_in_share, expected walk-in work in the window / staffed counter time in it)

The expected walk-in work of a window is the mean, over the office days of the same weekday in the last
``appointments.walk_in_weeks`` weeks, of the walk-in tickets issued in it, each counted with its service's
mean service time (the unit the capacity plan books appointments in). A walk-in is every ticket that was not
an appointment check-in: remote tickets and offline tickets too. Windows are counted from the weekday's
opening time, as the capacity plan counts them; a ticket drawn before opening belongs to the first window.
An office day is a day with at least one ticket; a window without walk-ins on such a day counts as zero, so
a quiet hour pulls the mean down as it should. Today is left out (it is not over).

Pure functions over events; the controller learns the profile off the command path (at start and every
night, ``waitroom.service``) and hands it to ``Office.set_walk_ins``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from waitroom.config import WEEKDAYS, Config


@dataclass(frozen=True)
class WalkInProfile:
    """Expected walk-in counter-seconds per (weekday 0-6, minute of the day the capacity window starts)."""

    window_min: int
    work: Mapping[tuple[int, int], float] = field(default_factory=dict)
    days: int = 0  # office days it was learned from

    def expected(self, weekday: int, start_minute: int) -> float:
        return self.work.get((weekday, start_minute), 0.0)


def _minutes(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return h * 60 + m


def window_start(cfg: Config, weekday: int, minute: int) -> int | None:
    """The minute of the day at which the capacity window holding ``minute`` starts (None: after closing
    or a closed day). Before opening counts as the first window."""
    span = cfg.office.hours.get(WEEKDAYS[weekday])
    if not span:
        return None
    opens, closes = _minutes(span[0]), _minutes(span[1])
    if minute >= closes:
        return None
    step = cfg.appointments.window_min
    return opens + max(0, (minute - opens) // step) * step


def learn(events: Iterable[dict[str, Any]], cfg: Config, now: float) -> WalkInProfile:
    """The profile from ``ticket_issued`` events (any others are skipped) of the ``walk_in_weeks`` weeks
    before today."""
    tz = cfg.office.tz
    today = dt.datetime.fromtimestamp(now, tz).date()
    first = today - dt.timedelta(weeks=cfg.appointments.walk_in_weeks)
    mean_s = {s.id: s.mean_service_min * 60.0 for s in cfg.services}
    per_day: dict[dt.date, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if e.get("type") != "ticket_issued":
            continue
        local = dt.datetime.fromtimestamp(float(e.get("arrival", e["ts"])), tz)
        day = local.date()
        if not first <= day < today:
            continue
        windows = per_day[day]  # the day counts as an office day even if only appointments came
        if e.get("appointment_code") or e.get("appointment") is not None:
            continue
        start = window_start(cfg, day.weekday(), local.hour * 60 + local.minute)
        if start is not None:
            windows[start] += mean_s.get(e.get("service", ""), 0.0)
    n_days: dict[int, int] = defaultdict(int)
    total: dict[tuple[int, int], float] = defaultdict(float)
    for day, windows in per_day.items():
        n_days[day.weekday()] += 1
        for start, work in windows.items():
            total[(day.weekday(), start)] += work
    work = {key: value / n_days[key[0]] for key, value in total.items()}
    return WalkInProfile(cfg.appointments.window_min, work, days=len(per_day))


def learn_from_store(store: Any, cfg: Config, now: float) -> WalkInProfile:
    """``learn`` over an ``EventStore`` (its own connection: the engine thread keeps writing)."""
    since = now - (cfg.appointments.walk_in_weeks * 7 + 2) * 86400.0
    return learn(store.events(since_ts=since, types=("ticket_issued",)), cfg, now)
