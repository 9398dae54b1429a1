"""The predictor: forward simulation of the real rules, learned service times, the automatic intake stop."""

from __future__ import annotations

import itertools
import math

from tests.test_steering import T0, Day, office
from waitroom.model import Intake
from waitroom.predict import ServiceTimes, WaitPredictor, intake_decision, ql
from waitroom.steering import RuleSelector


def test_plain_queue_forecast_is_the_queue_length_estimator():
    cfg = office()
    day = Day(cfg)
    for cid in ("c2", "c3", "c4"):  # only c1 serves; two services share it
        day.ev("counter_closed", ts=T0, counter=cid)
    ids = [day.issue("melde", 10 - i) for i in range(3)]
    fc = WaitPredictor(ServiceTimes(cfg)).forecast(day.s, cfg, RuleSelector(), T0)
    # idle c1: the first now, then one 6-minute registration after the other
    assert [round(fc.per_ticket[t]) for t in ids] == [0, 360, 720]
    assert round(fc.per_service["melde"]) == 1080 and round(fc.per_service["pass"]) == 1080
    assert fc.ahead["melde"] == 3


def test_busy_counters_are_spread_like_ql():
    cfg = office()
    day = Day(cfg)
    for cid in ("c3", "c4"):
        day.ev("counter_closed", ts=T0, counter=cid)
    for cid in ("c1", "c2"):  # both serving since just now
        day.ev("ticket_called", ts=T0, ticket=day.issue("melde", 1), counter=cid)
    fc = WaitPredictor(ServiceTimes(cfg)).forecast(day.s, cfg, RuleSelector(), T0)
    assert round(fc.per_service["melde"]) == round(ql(0, 2, 360))  # (n+1)/(s·μ) with n = 0, s = 2


def test_service_times_are_learned_per_service_from_events():
    cfg = office()
    st = ServiceTimes(cfg, prior_weight=10)
    seq = itertools.count(1)
    events = []
    for i in range(30):
        tid = f"x{i}"
        events += [
            {"type": "ticket_issued", "id": tid, "service": "pass", "ts": T0},
            {"type": "ticket_called", "ticket": tid, "counter": "c1", "ts": T0 + i * 1000},
            {"type": "ticket_served", "ticket": tid, "counter": "c1", "ts": T0 + i * 1000 + 300},
        ]
    st.observe({**e, "seq": next(seq)} for e in events)
    # 30 services of 5 minutes against a prior of 9 minutes weighted as 10
    assert round(st.overall("pass")) == round((30 * 300 + 10 * 540) / 40)
    assert st.overall("melde") == 360
    assert st.cv("pass") == 0


def test_intake_stops_before_closing_and_reopens_with_margin():
    cfg = office()  # Monday 08:00-16:00
    day = Day(cfg)
    for i in range(20):
        day.issue("fuehrerschein", 1 + i)
    late = T0 + 7 * 3600 - 1800  # 15:30
    fc = WaitPredictor(ServiceTimes(cfg)).forecast(day.s, cfg, RuleSelector(), late)
    change = intake_decision(cfg, fc, "fuehrerschein", late, None)
    assert change is not None and change[0] is False and change[1].startswith("Annahmeschluss")
    # a manual setting wins; outside opening hours nothing changes automatically
    assert intake_decision(cfg, fc, "fuehrerschein", late, Intake(True, "", manual=True)) is None
    assert intake_decision(cfg, fc, "fuehrerschein", T0 + 12 * 3600, None) is None
    # an empty queue in the morning: open, and reopening an automatic stop
    empty = Day(cfg)
    fc = WaitPredictor(ServiceTimes(cfg)).forecast(empty.s, cfg, RuleSelector(), T0)
    assert intake_decision(cfg, fc, "pass", T0, None) is None
    assert intake_decision(cfg, fc, "pass", T0, Intake(False, "x", manual=False)) == (True, "")


def _abandoning_day(st: ServiceTimes, tickets: int, no_shows: int, wait_s: float, held_s: float) -> None:
    """``tickets`` walk-ins each called after ``wait_s``; the first ``no_shows`` of them had left (the
    counter marks them after ``held_s``), the others are served in 5 minutes."""
    seq = itertools.count(1)
    events: list[dict] = [{"type": "day_started", "ts": T0 - 3600}]
    for i in range(tickets):
        tid, start = f"a{i}", T0 + i * 1000
        events += [
            {"type": "ticket_issued", "id": tid, "service": "pass", "ts": start - wait_s},
            {"type": "ticket_called", "ticket": tid, "counter": "c1", "ts": start},
        ]
        if i < no_shows:
            events.append({"type": "ticket_no_show", "ticket": tid, "counter": "c1", "ts": start + held_s})
        else:
            events.append({"type": "ticket_served", "ticket": tid, "counter": "c1", "ts": start + 300})
    st.observe({**e, "seq": next(seq)} for e in events)


def test_citizens_who_gave_up_are_learned_as_a_rate_per_minute_waited():
    """Ibrahim and Whitt's abandonment rate: no-shows / the time the called tickets waited; a no-show's
    call holds the counter for its own learned time (prior 90 s); nothing is assumed before 10 no-shows."""
    cfg = office()
    st = ServiceTimes(cfg, prior_weight=10)
    _abandoning_day(st, tickets=9, no_shows=9, wait_s=1200, held_s=60)
    assert st.abandonment_rate() == 0.0  # 9 no-shows: not enough to say
    assert st.call_s(540, 3600, st.abandonment_rate(), st.no_show_s()) == 540
    _abandoning_day(st, tickets=100, no_shows=20, wait_s=1200, held_s=60)
    assert st.no_shows == 29
    assert st.abandonment_rate() == 29 / (109 * 1200)
    assert st.no_show_s() == (29 * 60 + 10 * 90) / 39
    # served ones are still the service time: the no-shows do not shorten it
    assert round(st.overall("pass")) == round((80 * 300 + 10 * 540) / 90)
    rate = st.abandonment_rate()
    assert st.call_s(300, 0, rate, 60) == 300
    present = math.exp(-rate * 1800)
    assert math.isclose(st.call_s(300, 1800, rate, 60), present * 300 + (1 - present) * 60)


def test_the_forecast_counts_the_tickets_whose_holders_have_probably_left():
    """A long queue of tickets that have waited an hour: once the office has seen citizens give up, the
    forecast expects some of those calls to end in a minute, and a new ticket's wait is shorter, but never
    shorter than calling every one of them in vain."""
    cfg = office()
    day = Day(cfg)
    for cid in ("c2", "c3", "c4"):  # only c1 serves
        day.ev("counter_closed", ts=T0, counter=cid)
    for _ in range(20):
        day.issue("melde", 60)
    naive = WaitPredictor(ServiceTimes(cfg)).forecast(day.s, cfg, RuleSelector(), T0)
    st = ServiceTimes(cfg)
    _abandoning_day(st, tickets=200, no_shows=40, wait_s=1800, held_s=90)
    learned = WaitPredictor(st).forecast(day.s, cfg, RuleSelector(), T0)
    assert naive.per_service["melde"] == 20 * 360  # every ticket ahead a whole registration
    assert 20 * st.no_show_s() < learned.per_service["melde"] < 0.9 * naive.per_service["melde"]
    waits = [learned.per_ticket[f"t{i}"] for i in range(1, 21)]
    assert waits == sorted(waits) and waits[0] == 0.0
