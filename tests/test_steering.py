"""The steering rules on real OfficeState objects built with model.apply, and in the controller."""

from __future__ import annotations

import pytest

from waitroom import config
from waitroom.config import Config
from waitroom.errors import ConfigError
from waitroom.model import OfficeState, apply
from waitroom.steering import RuleSelector

T0 = 1736150400.0  # Monday 2025-01-06 09:00 Europe/Berlin


def office(**steering: object) -> Config:
    data = config.load(config.EXAMPLE_CONFIG).model_dump(mode="json")
    data["steering"] = steering
    return config.parse(data)


class Day:
    """Builds a queue through the model's own events."""

    def __init__(self, cfg: Config):
        self.cfg, self.s, self.n = cfg, OfficeState(), 0
        self.ev(
            "day_started",
            ts=T0 - 3600,
            day="2025-01-06",
            numbers={s.prefix: 1 for s in cfg.services},
            counters={c.id: "open" for c in cfg.counters},
            appointments=[],
        )

    def ev(self, type_: str, **data: object) -> None:
        apply(self.s, {"type": type_, "seq": self.s.seq + 1, **data})

    def issue(
        self, service: str, minutes_ago: float, priority: bool = False, slot: float | None = None
    ) -> str:
        self.n += 1
        prefix = self.cfg.service(service).prefix
        tid = f"t{self.n}"
        self.ev(
            "ticket_issued",
            ts=T0,
            id=tid,
            number=f"{prefix}{self.n:03d}",
            service=service,
            arrival=T0 - minutes_ago * 60,
            priority=priority,
            appointment=slot,
        )
        return tid

    def call(self, counter: str, now: float = T0) -> tuple[str, str, str] | None:
        d = RuleSelector().select(self.s, counter, self.cfg, now)
        if d is None:
            return None
        self.ev("ticket_called", ts=now, ticket=d.ticket, counter=counter, reason=d.reason)
        return d.ticket, d.rule, d.reason


def test_fifo_within_a_service_and_explained():
    day = Day(office())
    a, b = day.issue("pass", 5), day.issue("pass", 8)
    assert day.call("c1") == (b, "longest", "am längsten wartend (8 Min.)")
    assert day.call("c1")[0] == a
    assert day.call("c1") is None


def test_secondary_weight_needs_a_longer_wait():
    day = Day(office(weights={"c4": {"pass": 0.5}}))
    dl, pa = day.issue("fuehrerschein", 6), day.issue("pass", 10)
    assert day.call("c4")[:2] == (dl, "longest")  # 10 min x 0.5 < 6 min x 1
    day2 = Day(office(weights={"c4": {"pass": 0.5}}))
    day2.issue("fuehrerschein", 4)
    pa2 = day2.issue("pass", 10)
    ticket, rule, reason = day2.call("c4")
    assert (ticket, rule) == (pa2, "secondary") and "Gewicht 0.5" in reason
    assert pa  # unused in the first case on purpose


def test_priority_fairness_ratio_and_cap():
    day = Day(office(priority={"normal_per_priority": 2, "max_wait_behind_priority_min": 30}))
    n1, n2, n3 = day.issue("pass", 10), day.issue("pass", 9), day.issue("pass", 8)
    p1, p2 = day.issue("pass", 2, priority=True), day.issue("pass", 1, priority=True)
    order = [day.call("c1") for _ in range(5)]
    assert [o[0] for o in order] == [p1, n1, n2, p2, n3]  # at most one priority call per two normal calls
    assert [o[1] for o in order] == ["priority", "fairness", "fairness", "priority", "longest"]
    # the cap: nobody waits longer than 30 minutes behind priority tickets
    day = Day(
        office(
            priority={"normal_per_priority": 0, "max_wait_behind_priority_min": 30},
            default_service_level={"within_min": 60},
        )
    )
    old, prio = day.issue("melde", 31), day.issue("melde", 1, priority=True)
    assert day.call("c1")[:2] == (old, "behind_priority")
    assert day.call("c1")[:2] == (prio, "priority")


def test_service_level_ageing_beats_priority_and_other_services():
    day = Day(office(service_levels={"melde": {"percent": 80, "within_min": 10}}, ageing_from=0.75))
    day.issue("pass", 14)
    day.issue("pass", 3, priority=True)
    m = day.issue("melde", 8)  # 80 % of its 10-minute target
    ticket, rule, reason = day.call("c1")
    assert (ticket, rule) == (m, "service_level") and reason == "Servicelevel: wartet 8 Min. (Ziel 10 Min.)"


def test_appointments_are_called_near_their_slot():
    day = Day(office(appointments={"early_min": 10, "late_min": 15}))
    walk = day.issue("pass", 20)
    appt = day.issue("pass", 1, slot=T0 + 30 * 60)
    assert day.call("c1")[0] == walk  # slot in 30 minutes: not yet
    ticket, rule, reason = day.call("c1", now=T0 + 21 * 60)
    assert (ticket, rule) == (appt, "appointment") and reason == "Termin um 09:30 Uhr"


def test_condition_makes_secondary_counters_call_the_service_first():
    cfg = office(
        weights={"c4": {"pass": 1.0, "fuehrerschein": 0.5}},
        conditions=[{"service": "fuehrerschein", "longest_wait_over_min": 30}],
    )
    day = Day(cfg)
    day.issue("pass", 40)
    dl = day.issue("fuehrerschein", 31)
    ticket, rule, reason = day.call("c4")
    assert (ticket, rule) == (dl, "condition")
    assert reason == "Regel: längste Wartezeit Führerschein 31 Min. (über 30 Min.)"
    # c5 serves Führerschein as its only (primary) skill: the condition does not concern it
    assert RuleSelector().rules(cfg).counters["c5"].conditions == []


def test_transferred_ticket_goes_to_its_counter_only():
    day = Day(office())
    t = day.issue("melde", 1)
    day.issue("melde", 20)
    day.ev("ticket_transferred", ts=T0, ticket=t, to_counter="c3")
    assert day.call("c3")[:2] == (t, "transferred")


def test_order_is_what_an_all_skilled_counter_would_call():
    day = Day(office())
    a, b, c = day.issue("pass", 3), day.issue("melde", 9), day.issue("sonstiges", 6)
    assert [t.id for t in RuleSelector().order(day.s, day.cfg, T0)] == [b, c, a]


@pytest.mark.parametrize(
    "steering,message",
    [
        ({"weights": {"c9": {"pass": 1}}}, "steering.weights.c9: unknown counter 'c9'"),
        (
            {"weights": {"c1": {"fuehrerschein": 1}}},
            "steering.weights.c1.fuehrerschein: counter c1 does not serve",
        ),
        (
            {"weights": {"c1": {"pass": 1.5}}},
            "steering.weights.c1.pass: weight 1.5 must be above 0 and at most 1",
        ),
        (
            {"conditions": [{"service": "boot", "longest_wait_over_min": 30}]},
            "steering.conditions[0].service",
        ),
        ({"service_levels": {"pass": {"percent": 120}}}, "steering.service_levels.pass.percent"),
        ({"priority": {"ratio": 2}}, "steering.priority.ratio: unknown key"),
    ],
)
def test_bad_rules_name_the_key(steering, message):
    with pytest.raises(ConfigError) as exc:
        office(**steering)
    assert any(message in e for e in exc.value.errors), exc.value.errors
