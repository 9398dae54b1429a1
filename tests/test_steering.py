"""The steering rules on real OfficeState objects built with model.apply: the recommended policy (planned
appointments, priority bounded both ways, service-level ageing, skills), the fifo baseline, and properties
(hypothesis) of every decision: explained, the cap held, priority never stuck."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waitroom import config
from waitroom.config import Config
from waitroom.errors import ConfigError
from waitroom.model import OfficeState, apply
from waitroom.steering import RuleSelector
from waitroom.steering import compile_rules as compile_steering

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
    # the cap: a priority ticket never goes before a normal ticket that has waited 30 minutes
    day = Day(office(priority={"normal_per_priority": 0, "max_wait_behind_priority_min": 30}, ageing_from=10))
    old, prio = day.issue("melde", 35), day.issue("melde", 10, priority=True)
    ticket, rule, reason = day.call("c1")
    assert (ticket, rule) == (old, "behind_priority")
    assert reason == "wartet 35 Min. hinter Vorrangnummern (Grenze 30 Min.)"
    assert day.call("c1")[:2] == (prio, "priority")


def test_fairness_reason_agrees_with_the_number_of_normal_calls():
    """The staff page's "Aufgerufen, weil ...": one normal call between two priority tickets is "nach 1
    normalen Aufruf" (it said "nach 1 normalen Aufrufen")."""
    for n, words in ((1, "nach 1 normalen Aufruf"), (2, "nach 2 normalen Aufrufen")):
        day = Day(office(priority={"normal_per_priority": n, "max_wait_behind_priority_min": 30}))
        normal, prio = day.issue("pass", 10), day.issue("pass", 2, priority=True)
        day.issue("pass", 1, priority=True)  # a priority ticket still waits after the first
        assert day.call("c1")[:2] == (prio, "priority")
        ticket, rule, reason = day.call("c1")
        assert (ticket, rule) == (normal, "fairness")
        assert reason == f"am längsten wartend (10 Min.); Vorrang erst {words}"


def test_priority_head_start_is_the_cap_and_never_leaves_a_priority_ticket_stuck():
    day = Day(office(priority={"normal_per_priority": 0, "max_wait_behind_priority_min": 30}, ageing_from=10))
    younger = day.issue("pass", 25)
    prio = day.issue("pass", 1, priority=True)
    assert day.call("c1")[:2] == (prio, "priority")  # 1 + 30 min head start beats 25 min
    assert day.call("c1")[0] == younger
    # ageing off, every normal ticket past the cap: the priority ticket still comes before later tickets
    day = Day(office(priority={"normal_per_priority": 0, "max_wait_behind_priority_min": 30}, ageing_from=10))
    first = day.issue("melde", 45)
    prio = day.issue("melde", 40, priority=True)
    later = day.issue("melde", 35)
    assert [day.call("c1")[0] for _ in range(3)] == [first, prio, later]


def test_service_level_ageing_counts_waiting_time_against_the_target():
    day = Day(office(service_levels={"melde": {"percent": 80, "within_min": 10}}, ageing_from=0.75))
    day.issue("pass", 14)  # 70 % of its 20-minute target
    m = day.issue("melde", 8)  # 80 % of its 10-minute target
    ticket, rule, reason = day.call("c1")
    assert (ticket, rule) == (m, "service_level") and reason == "Zielwartezeit: wartet 8 Min. (Ziel 10 Min.)"
    # a secondary skill counts at full weight once the ticket has waited ageing_from x its target
    day = Day(office(weights={"c4": {"pass": 0.5}}, ageing_from=0.75))
    day.issue("fuehrerschein", 12)
    late = day.issue("pass", 16)
    assert day.call("c4")[:2] == (late, "service_level")


def _close(day: Day, *counters: str) -> None:
    for c in counters:
        day.ev("counter_closed", ts=T0, counter=c)


def test_appointments_are_planned_into_the_counters_time():
    cfg = office(appointments={"early_min": 10, "late_min": 15, "grace_min": 2})
    slot = T0 + 30 * 60
    day = Day(cfg)
    _close(day, "c2", "c4")  # c1 is the only open counter for Pass
    walk = day.issue("pass", 20)
    appt = day.issue("pass", 1, slot=slot)
    day.issue("pass", 19)
    assert day.call("c1")[0] == walk  # the slot is 30 minutes away: the walk-in first
    # 5 minutes before the slot a 9-minute walk-in would end 4 minutes late: the appointment now
    ticket, rule, reason = day.call("c1", now=slot - 5 * 60)
    assert (ticket, rule, reason) == (appt, "appointment", "Termin um 09:30 Uhr")
    # 8 minutes before the slot the walk-in is done by the slot plus grace: the walk-in
    day = Day(cfg)
    _close(day, "c2", "c4")
    w = day.issue("pass", 20)
    day.issue("pass", 1, slot=slot)
    assert day.call("c1", now=slot - 8 * 60)[0] == w


def test_a_walk_in_that_waited_the_walk_in_cap_goes_before_appointments_due_after_it_came():
    """``appointments.max_wait_behind_appointments_min``: on a day the appointment book fills the counters,
    a walk-in that has waited the cap is called before the due holders (both ways of becoming due: the slot
    came, or a walk-in would make the holder late); a holder due before the walk-in came keeps its place;
    without the cap (the default) due holders always go first."""
    slot = T0 - 5 * 60  # due 5 minutes ago
    capped = office(appointments={"early_min": 10, "grace_min": 2, "max_wait_behind_appointments_min": 30})
    day = Day(capped)
    _close(day, "c2", "c4")  # c1 is the only open counter for Pass
    young, old = day.issue("pass", 3), day.issue("pass", 35)
    appt = day.issue("pass", 1, slot=slot)
    ticket, rule, reason = day.call("c1")
    assert (ticket, rule, reason) == (
        old,
        "behind_appointments",
        "wartet 35 Min. hinter Terminen (Grenze 30 Min.)",
    )
    assert day.call("c1")[:2] == (appt, "appointment")  # the young walk-in has not waited the cap
    assert day.call("c1")[0] == young
    # the default: no cap, the due holder first
    day = Day(office(appointments={"early_min": 10, "grace_min": 2}))
    _close(day, "c2", "c4")
    day.issue("pass", 35)
    appt = day.issue("pass", 1, slot=slot)
    assert day.call("c1")[:2] == (appt, "appointment")
    # a holder due (slot 09:00) before the walk-in came (08:25 + 36 min): the holder keeps its place
    day = Day(capped)
    _close(day, "c2", "c4")
    appt = day.issue("pass", 70, slot=T0 - 60 * 60)
    day.issue("pass", 40)
    assert day.call("c1")[:2] == (appt, "appointment")
    # planned into the counter's time (not due yet, a walk-in would make it late): the capped walk-in first
    day = Day(capped)
    _close(day, "c2", "c4")
    old = day.issue("pass", 31)
    appt = day.issue("pass", 1, slot=T0 + 5 * 60)
    assert day.call("c1")[:2] == (old, "behind_appointments")
    assert day.call("c1")[:2] == (appt, "appointment")


def test_an_appointment_not_yet_due_is_left_to_a_counter_free_in_time():
    cfg = office(appointments={"early_min": 10, "grace_min": 2})
    slot = T0 + 30 * 60
    day = Day(cfg)
    _close(day, "c4")
    walk = day.issue("pass", 20)
    appt = day.issue("pass", 1, slot=slot)
    now = slot - 5 * 60
    # c2 is open and idle: it can take the appointment, so c1 takes the walk-in
    assert day.call("c1", now=now)[0] == walk
    assert day.call("c2", now=now)[:2] == (appt, "appointment")
    # once due, it goes before the walk-ins at whichever counter is free
    day = Day(cfg)
    day.issue("pass", 20)
    appt = day.issue("pass", 1, slot=slot)
    assert day.call("c2", now=slot + 60)[:2] == (appt, "appointment")


def test_a_long_walk_in_is_not_started_before_early_min_when_it_would_make_a_holder_late():
    # a 30-minute service (Einbürgerung, Gewerbe) is longer than early_min: the planning looks as far ahead as
    # the walk-in takes, not only from early_min before the slot
    data = config.load(config.EXAMPLE_CONFIG).model_dump(mode="json")
    data["services"][2]["mean_service_min"] = 30  # fuehrerschein, served by c4 and c5
    data["steering"] = {"appointments": {"early_min": 10, "grace_min": 2}}
    cfg = config.parse(data)
    slot = T0 + 15 * 60  # 15 minutes away: not within early_min yet
    day = Day(cfg)
    _close(day, "c5")  # c4 is the only open counter for Führerschein
    day.issue("fuehrerschein", 10)
    appt = day.issue("fuehrerschein", 1, slot=slot)
    # the walk-in would keep c4 until about 09:30, a quarter of an hour after the slot: the holder now
    assert day.call("c4")[:3] == (appt, "appointment", "Termin um 09:15 Uhr")
    # with c5 open and idle the holder is covered: c4 takes the walk-in, c5 the holder when it is due
    day = Day(cfg)
    walk = day.issue("fuehrerschein", 10)
    appt = day.issue("fuehrerschein", 1, slot=slot)
    assert day.call("c4")[0] == walk
    assert day.call("c5", now=slot)[:2] == (appt, "appointment")
    # a holder whose slot is further away than the walk-in takes waits for it
    day = Day(cfg)
    _close(day, "c5")
    walk = day.issue("fuehrerschein", 10)
    day.issue("fuehrerschein", 1, slot=T0 + 35 * 60)
    assert day.call("c4")[0] == walk


def test_an_appointment_holder_who_came_early_goes_first_when_nobody_else_waits():
    day = Day(office())
    appt = day.issue("pass", 1, slot=T0 + 45 * 60)
    assert day.call("c1")[:2] == (appt, "appointment_early")


def test_an_appointment_holder_who_came_early_and_waited_longest_is_called_before_the_walk_ins():
    cfg = office(appointments={"early_min": 10, "grace_min": 2})
    slot = T0 + 8 * 60  # in 8 minutes: within early_min, not due yet
    day = Day(cfg)
    walk = day.issue("pass", 4)
    appt = day.issue("pass", 6, slot=slot)
    later = day.issue("pass", 2)
    ticket, rule, reason = day.call("c1")
    assert (ticket, rule) == (appt, "appointment_waiting")
    assert reason == (
        "Termin um 09:08 Uhr, früh da und wartet seit 6 Min. (länger als die Wartenden ohne Termin)"
    )
    assert [day.call("c1")[0] for _ in range(2)] == [walk, later]
    # a walk-in that waited longer goes first, and the holder keeps its planned place before its slot
    day = Day(cfg)
    walk = day.issue("pass", 7)
    appt = day.issue("pass", 6, slot=slot)
    assert day.call("c1")[:2] == (walk, "longest")
    # before early_min the holder waits for its slot, however long it has been there
    day = Day(cfg)
    walk = day.issue("pass", 4)
    day.issue("pass", 30, slot=T0 + 25 * 60)
    assert day.call("c1")[0] == walk
    # a priority ticket keeps its head start over the holder, who is not due yet
    day = Day(cfg)
    prio = day.issue("pass", 1, priority=True)
    appt = day.issue("pass", 6, slot=slot)
    assert day.call("c1")[:2] == (prio, "priority")
    assert day.call("c1")[:2] == (appt, "appointment")


def test_fifo_policy_calls_every_kind_in_arrival_order():
    day = Day(office(policy="fifo"))
    a = day.issue("pass", 5, slot=T0 + 60 * 60)
    p = day.issue("pass", 3, priority=True)
    n = day.issue("pass", 4)
    m = day.issue("melde", 6)
    order = [day.call("c1")[:2] for _ in range(4)]
    assert order == [(m, "longest"), (a, "longest"), (n, "longest"), (p, "longest")]
    assert compile_steering(day.cfg).fifo


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
    # named counters or all of them need no weights
    for counters in (["c5"], "all"):
        rules = office(
            conditions=[{"service": "fuehrerschein", "longest_wait_over_min": 30, "counters": counters}]
        )
        assert RuleSelector().rules(rules).counters["c5"].conditions


def test_many_conditions_cost_one_per_service_and_the_lowest_limit_decides():
    # an office that writes a condition per counter and limit: a decision still looks at one per service
    conditions = [
        {"service": "fuehrerschein", "longest_wait_over_min": m, "counters": [c]}
        for m in range(60, 20, -1)
        for c in ("c4", "c5")
    ] + [{"service": "pass", "longest_wait_over_min": 45, "counters": "all"}]
    cfg = office(conditions=conditions)
    c4 = RuleSelector().rules(cfg).counters["c4"].conditions
    assert sorted((s, lim) for s, lim, _ in c4) == [("fuehrerschein", 21 * 60.0), ("pass", 45 * 60.0)]
    day = Day(cfg)
    day.issue("pass", 40)
    dl = day.issue("fuehrerschein", 22)  # over the lowest limit (21) only
    ticket, rule, reason = day.call("c4")
    assert (ticket, rule) == (dl, "condition")
    assert reason == "Regel: längste Wartezeit Führerschein 22 Min. (über 21 Min.)"


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
        (  # Führerschein is the first skill of c4 and c5, nobody's second: the rule would never fire
            {
                "weights": {"c4": {"fuehrerschein": 1.0, "pass": 0.5}},
                "conditions": [{"service": "fuehrerschein", "longest_wait_over_min": 30}],
            },
            "steering.conditions[0].counters: no counter has 'fuehrerschein' as a secondary skill",
        ),
        ({"service_levels": {"pass": {"percent": 120}}}, "steering.service_levels.pass.percent"),
        ({"priority": {"ratio": 2}}, "steering.priority.ratio: unknown key"),
        ({"policy": "lifo"}, "steering.policy"),
        ({"appointments": {"grace_min": -1}}, "steering.appointments.grace_min"),
    ],
)
def test_bad_rules_name_the_key(steering, message):
    with pytest.raises(ConfigError) as exc:
        office(**steering)
    assert any(message in e for e in exc.value.errors), exc.value.errors


# ------------------------------------------------------------------------------------------------ properties
SERVICES = ("pass", "melde", "fuehrerschein", "sonstiges")
RULES = {
    "transferred",
    "appointment",
    "appointment_early",
    "appointment_waiting",
    "condition",
    "service_level",
    "behind_priority",
    "priority",
    "fairness",
    "longest",
    "secondary",
}
tickets = st.lists(
    st.tuples(
        st.sampled_from(SERVICES),
        st.floats(0, 120),  # minutes waited
        st.booleans(),  # priority
        st.one_of(st.none(), st.floats(-20, 60)),  # appointment slot in minutes from now
    ),
    min_size=1,
    max_size=25,
)
rule_sets = st.fixed_dictionaries(
    {
        "priority": st.fixed_dictionaries(
            {
                "normal_per_priority": st.integers(0, 3),
                "max_wait_behind_priority_min": st.sampled_from([10, 30, 60]),
            }
        ),
        "ageing_from": st.sampled_from([0.5, 0.75, 10]),
        "weights": st.sampled_from(
            [{}, {"c4": {"pass": 0.5}}, {"c1": {"melde": 0.3}, "c3": {"sonstiges": 0.6}}]
        ),
        "policy": st.sampled_from(["recommended", "recommended", "fifo"]),
    }
)


@settings(max_examples=150, deadline=None)
@given(tickets, rule_sets, st.lists(st.sampled_from(["c1", "c2", "c3", "c4"]), min_size=1, max_size=30))
def test_every_decision_is_explained_and_bounded(spec, rules, calls):
    """Draw a queue and call it down: every decision has a known rule and a German reason with its values
    filled in; a priority ticket never goes before a normal ticket (that the counter could call) that came
    earlier and has waited the cap; with equal targets and weights no normal ticket goes before a priority
    ticket that came earlier (a priority ticket cannot be stuck)."""
    day = Day(office(**rules))
    cap = rules["priority"]["max_wait_behind_priority_min"] * 60
    plain = not rules["weights"] and rules["policy"] == "recommended"
    for service, ago, prio, slot in spec:
        day.issue(service, ago, priority=prio and slot is None, slot=None if slot is None else T0 + slot * 60)
    for counter in calls:
        services = set(day.cfg.counter(counter).services)
        waiting = [t for t in day.s.waiting() if t.service in services and t.target_counter is None]
        got = day.call(counter)
        if got is None:
            assert not waiting
            continue
        tid, rule, reason = got
        assert rule in RULES and reason and "{" not in reason
        t = day.s.tickets[tid]
        normals = [w for w in waiting if not w.priority and w.appointment is None]
        if t.priority and rules["policy"] == "recommended":
            older = [w for w in normals if w.issued_at < t.issued_at]
            assert all(T0 - w.issued_at < cap for w in older), (rule, [T0 - w.issued_at for w in older])
        if plain and not t.priority and t.appointment is None:
            earlier_prio = [w for w in waiting if w.priority and w.issued_at < t.issued_at]
            assert not earlier_prio, rule
