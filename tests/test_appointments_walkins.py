"""Capacity learns the walk-in work per weekday and window from the office's own log and keeps it free.

The log is written through the controller's command path on past Mondays (a real SQLite event log); the
profile is learned from it as the controller's background thread does, and the booking page's query
(``appointment.slots``) then offers no slot that would eat into the morning rush, while the afternoon stays
bookable and a booking made before the rush was learned stays on its counter.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.test_appointments import at
from tests.test_controller import Clock, ok
from waitroom import config
from waitroom.appointments import capacity, walkins
from waitroom.controller import Office
from waitroom.store import EventStore

MONDAY = 0
NEXT_MONDAY = dt.date(2026, 11, 30)  # at(7, ...)


@pytest.fixture
def cfg():
    return config.load(config.EXAMPLE_CONFIG)


def rush(office: Office, clock: Clock, weeks: tuple[int, ...], n: int = 30) -> None:
    """``n`` walk-in pass tickets (9 min each) between 08:01 and 08:45 on the Monday ``weeks`` weeks back,
    one appointment check-in there too, and a quiet afternoon."""
    for week in weeks:
        for k in range(n):
            clock.t = at(-7 * week, "08:00") + 60 + k * 88
            ok(office, "disp-1", "ticket.issue", service="pass")
        clock.t = at(-7 * week, "14:10")
        ok(office, "disp-1", "ticket.issue", service="melde")


def slots(office: Office, day: dt.date, service: str = "pass") -> list[str]:
    free = ok(office, "web", "appointment.slots", service=service, day=day.isoformat())["slots"]["free"]
    return [dt.datetime.fromtimestamp(s, office.cfg.office.tz).strftime("%H:%M") for s, _ in free]


def test_learn_counts_walk_ins_per_weekday_and_window_and_averages_over_office_days(cfg, tmp_path):
    clock = Clock(at(-70, "07:00"))
    store = EventStore(tmp_path / "events.db")
    office = Office(cfg, store, clock=clock)
    rush(office, clock, weeks=(10,))  # older than appointments.walk_in_weeks (8): left out
    rush(office, clock, weeks=(4, 3))
    clock.t = at(-14, "10:00")  # a Monday with an appointment holder only: an office day without walk-ins
    ok(office, "web", "appointment.book", code="ONLY01", service="pass", slot=at(-14, "10:30"))
    clock.t = at(-14, "10:25")
    ok(office, "disp-1", "appointment.checkin", code="ONLY01")
    clock.t = at(0, "08:30")
    ok(office, "disp-1", "ticket.issue", service="pass")  # today: not over, left out
    reader = EventStore.reader(tmp_path / "events.db")  # as the controller's background thread reads it
    profile = walkins.learn_from_store(reader, cfg, clock())
    reader.close()
    store.close()
    assert profile.days == 3
    # 2 of the 3 Mondays had 30 pass walk-ins (9 min) in the window from 08:00: mean 2 * 30 * 540 / 3
    assert profile.expected(MONDAY, 8 * 60) == pytest.approx(2 * 30 * 540 / 3)
    assert profile.expected(MONDAY, 14 * 60) == pytest.approx(2 * 360 / 3)
    assert profile.expected(MONDAY, 10 * 60) == 0.0  # the appointment check-in is not walk-in work
    assert profile.expected(1, 8 * 60) == 0.0


def test_window_start_counts_from_opening_and_takes_early_tickets_into_the_first(cfg):
    thu = 3  # open 10:00-18:00
    assert walkins.window_start(cfg, thu, 9 * 60 + 50) == 10 * 60
    assert walkins.window_start(cfg, thu, 11 * 60 + 59) == 11 * 60
    assert walkins.window_start(cfg, thu, 18 * 60) is None
    assert walkins.window_start(cfg, 6, 10 * 60) is None  # Sunday: closed


def test_the_booking_page_leaves_the_learned_morning_rush_to_walk_ins(cfg, tmp_path):
    clock = Clock(at(-28, "07:00"))
    store = EventStore(tmp_path / "events.db")
    office = Office(cfg, store, clock=clock)
    rush(office, clock, weeks=(4, 3, 2, 1))
    clock.t = at(0, "09:00")
    # booked before the rush was learned: 08:00 next Monday on c1
    early = ok(office, "web", "appointment.book", service="pass", slot=at(7, "08:00"), check_slot=True)
    before = slots(office, NEXT_MONDAY)
    assert "08:15" in before and "08:30" in before

    office.set_walk_ins(walkins.learn_from_store(store, cfg, clock()))
    after = slots(office, NEXT_MONDAY)
    # 30 walk-ins x 9 min = 270 counter-minutes of the 300 staffed from 08:00 to 09:00 (c1-c5): 90 % stays
    # free for walk-ins, 6 minutes a counter -- no 9-minute pass appointment fits
    assert not [s for s in after if s < "09:00"], after
    assert "09:00" in after and "15:00" in after  # the rest of the day: the configured share
    assert [s for s in after if s >= "09:00"] == [s for s in before if s >= "09:00"]
    # Tuesdays had no rush in the log: the configured share alone
    assert "08:15" in slots(office, NEXT_MONDAY + dt.timedelta(1))
    # what was booked stays served on its counter
    plan = office.day_plan(NEXT_MONDAY)
    assert early["appointment"]["code"] in plan.placed and not plan.overbooked
    store.close()


def test_the_learned_share_never_falls_below_the_configured_one(cfg):
    day = NEXT_MONDAY
    quiet = walkins.WalkInProfile(60, {(MONDAY, 8 * 60): 60.0}, days=4)
    plain, learned = capacity.empty_plan(cfg, day), capacity.empty_plan(cfg, day, quiet)
    assert learned.budget == plain.budget
    for (_cid, _w), seconds in plain.budget.items():
        assert seconds <= (1 - cfg.appointments.walk_in_share) * 3600 + 1e-6
    full = walkins.WalkInProfile(60, {(MONDAY, 8 * 60): 10**6}, days=4)
    rushed = capacity.empty_plan(cfg, day, full)
    assert all(v == 0 for (_c, w), v in rushed.budget.items() if w == 0)
    assert all(rushed.budget[k] == plain.budget[k] for k in plain.budget if k[1] > 0)


def test_the_controller_learns_the_profile_in_the_background_at_start(broker, tmp_path):
    """A real controller process' service (MQTT, its own threads) over a log with four weeks of Monday
    rushes: the profile reaches the office without a command waiting for it."""
    import time

    from tests.conftest import office_config
    from waitroom.service import ControllerService

    cfg = office_config(broker.port, office_id="walkins")
    now = time.time()
    today = dt.datetime.fromtimestamp(now, cfg.office.tz).date()
    db = tmp_path / "events.db"
    clock = Clock(now - 29 * 86400)
    store = EventStore(db)
    office = Office(cfg, store, clock=clock)
    for week in (4, 3, 2, 1):
        day = today - dt.timedelta(weeks=week)
        eight = dt.datetime(day.year, day.month, day.day, 8, 0, tzinfo=cfg.office.tz).timestamp()
        for k in range(10):
            clock.t = eight + 60 + k * 60
            ok(office, "disp-1", "ticket.issue", service="pass")
    store.close()
    svc = ControllerService(cfg, str(db))
    assert svc.start(wait=10)
    try:
        deadline = time.monotonic() + 10
        while svc.office.walk_ins is None and time.monotonic() < deadline:
            time.sleep(0.05)
        profile = svc.office.walk_ins
        assert profile is not None and profile.days == 4
        assert profile.expected(today.weekday(), 8 * 60) == pytest.approx(10 * 540)
    finally:
        svc.stop()
