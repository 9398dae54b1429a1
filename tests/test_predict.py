"""The predictor: forward simulation of the real rules, learned service times, the automatic intake stop."""

from __future__ import annotations

import itertools

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
