"""The what-if simulator: cross-checked against Erlang C and Ciw, the classical RASE results, the real bank
log, the what-if report and the command."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waitroom import config
from waitroom.cli import main
from waitroom.errors import ConfigError
from waitroom.sim import run_days, whatif
from waitroom.sim.evaluate import summarize
from waitroom.sim.reference import ciw_waits, erlang_c, mmc_office, mmc_plans

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "waitroom" / "examples" / "scenarios" / "mitte-monday.yaml"
BANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "anonymous-bank-1999-02.tsv"


def bank_log() -> Path:
    if not BANK.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"real data missing: {BANK} (CI checks out ../shared beside the clone)")
        pytest.skip(f"real data missing: {BANK}")
    return BANK


def test_mmc_mean_wait_matches_erlang_c_and_ciw():
    servers, mean, lam = 3, 5.0, 0.48  # rho = 0.8
    cfg = mmc_office(servers, mean)
    days = run_days(cfg, mmc_plans(cfg, lam, mean, hours=24, days=12, seed=3), predict=False)
    s = summarize(days, cfg, warmup_s=2 * 3600)
    lo, hi = s["overall"]["mean_wait_ci95_min"]
    _, erlang = erlang_c(servers, lam, 1 / mean)
    assert lo <= erlang <= hi, (lo, erlang, hi)
    ours = s["overall"]["mean_wait_min"]
    # Ciw, the same queue, 12 independent 24-hour runs with the same warm-up
    ciw_means = [
        statistics.fmean(ciw_waits(servers, lam, mean, 24, seed=100 + i, warmup_h=2)) for i in range(12)
    ]
    half = 1.96 * statistics.stdev(ciw_means) / math.sqrt(len(ciw_means))
    assert abs(ours - statistics.fmean(ciw_means)) <= half + (hi - lo) / 2, (ours, ciw_means)


@pytest.mark.slow
def test_rase_reproduces_the_mms_theory():
    """QL is exact on M/M/s FCFS: RASE = sqrt(1 - rho) = 0.224 at rho = 0.95; LES and HOL about 1.4x."""
    servers, mean, rho = 10, 5.0, 0.95
    cfg = mmc_office(servers, mean)
    days = run_days(cfg, mmc_plans(cfg, rho * servers / mean, mean, hours=24, days=20, seed=7))
    p = summarize(days, cfg, warmup_s=3 * 3600)["predictors"]
    theory = math.sqrt(1 - rho)
    assert abs(p["QL"]["rase_delayed"] - theory) / theory < 0.15, p["QL"]
    assert p["waitroom"]["rase_delayed"] <= p["QL"]["rase_delayed"] * 1.02  # the real predictor is QL here
    for name in ("LES", "HOL"):
        assert 1.25 <= p[name]["rase_delayed"] / p["QL"]["rase_delayed"] <= 1.6, (name, p)


@pytest.mark.slow
def test_bank_log_replay_and_predictors(artifacts):
    from waitroom.sim.replay import bank_days

    cfg, plans, figures = bank_days(bank_log())
    assert figures["rows"] == 33344 and figures["days"] == 28
    days = run_days(cfg, plans)
    s = summarize(days, cfg)
    assert s["overall"]["arrived"] == sum(len(p.arrivals) for p in plans) > 30000
    assert 0.05 < s["overall"]["abandoned"] / s["overall"]["arrived"] < 0.15
    p = s["predictors"]
    (artifacts / "bank-replay-rase.json").write_text(json.dumps(p, indent=1))
    assert p["waitroom"]["rase_delayed"] < min(p["LES"]["rase_delayed"], p["HOL"]["rase_delayed"])


def test_whatif_compares_rule_sets_on_the_same_days():
    cfg = config.load(config.EXAMPLE_CONFIG)
    report = whatif(
        cfg,
        SCENARIO,
        {
            "current": None,
            "c4-melde": {"skills": {"c4": ["fuehrerschein", "pass", "melde"]}},
            "strict-priority": {"priority": {"normal_per_priority": 0}},
        },
        replications=2,
        seed=5,
    )
    json.dumps(report)  # JSON-able for the web page
    cur, other = report["rule_sets"]["current"], report["rule_sets"]["c4-melde"]
    assert cur["overall"]["arrived"] == other["overall"]["arrived"] > 300  # the same drawn citizens
    assert cur["overall"]["mean_wait_min"] != other["overall"]["mean_wait_min"]
    assert set(cur["predictors"]) == {"waitroom", "QL", "LES", "HOL", "ZMS"}
    assert 0 < cur["utilisation_overall"] <= 1 and cur["appointments"]["arrived"] > 0
    assert report["rule_sets"]["strict-priority"]["decisions"].get("fairness", 0) == 0
    assert cur["decisions"]["longest"] > 0
    with pytest.raises(ConfigError, match=r"steering\.weights\.c1\.fuehrerschein"):
        whatif(cfg, SCENARIO, {"bad": {"weights": {"c1": {"fuehrerschein": 1}}}}, replications=1)


def test_simulate_command_writes_the_report(tmp_path, capsys):
    assert main(["simulate", str(SCENARIO), "-r", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out  # German, the office's language, unless --lang says otherwise
    assert "Wie konfiguriert" in out and "c4-also-melde" in out and "RASE" in out
    for name in ("index.html", "report.json", "waits.png", "wait_distribution.png", "predictors.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "waits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narrivals: {boot: {'08': 3}}\n")
    assert main(["simulate", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "arrivals.boot: unknown service 'boot'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ issue 11
BUERGERBUERO = ROOT / "waitroom" / "examples" / "scenarios" / "buergerbuero-thursday.yaml"


def _example_scenario(**extra: object) -> dict:
    return {"name": "t", "weekday": "mon", **extra}


def test_walk_ins_arrive_only_within_opening_hours():
    from waitroom.sim.scenario import parse, plan_day

    cfg = config.load(config.EXAMPLE_CONFIG)  # Monday 08:00-16:00
    sc = parse(_example_scenario(arrivals={"pass": {"07": 40, "08": 10, "16": 40}}, appointments=[]))
    days = [plan_day(sc, cfg, seed) for seed in range(200)]
    assert all(d.open <= a.t < d.close for d in days for a in d.arrivals)
    per_day = statistics.fmean(len(d.arrivals) for d in days)
    assert 9.0 < per_day < 11.0  # the 08 hour only: the 07 and 16 hours lie outside the opening hours
    # an hour that starts before opening counts for its own part only: 07:30-08:00 at 20 per hour = 10
    from waitroom.sim.scenario import load

    sc2, cfg2 = load(BUERGERBUERO)
    sc2 = sc2.model_copy(update={"arrivals": {"melde": {"07": 20}}, "appointments": []})
    days = [plan_day(sc2, cfg2, seed) for seed in range(200)]
    assert 9.0 < statistics.fmean(len(d.arrivals) for d in days) < 11.0
    assert all(d.open <= a.t < d.open + 1800 for d in days for a in d.arrivals)


def test_arrival_hours_may_be_written_unquoted(tmp_path):
    """YAML reads ``10: 5`` as a number, ``08: 5`` as a string: both are hours; one hour twice is an error."""
    from waitroom.sim.scenario import load, plan_day

    f = tmp_path / "s.yaml"
    f.write_text('name: x\narrivals:\n  pass: {07: 9, 08: 10, 10: 10, "11": 10}\nappointments: []\n')
    sc, cfg = load(f)
    assert sc.arrivals["pass"] == {"07": 9, "08": 10, "10": 10, "11": 10}
    days = [plan_day(sc, cfg, seed) for seed in range(200)]
    assert 28.5 < statistics.fmean(len(d.arrivals) for d in days) < 31.5  # 08, 10, 11 (07 is closed)
    f.write_text('name: x\narrivals:\n  pass: {8: 10, "08": 5}\n')
    with pytest.raises(ConfigError) as exc:
        load(f)
    assert exc.value.errors == ["arrivals: Value error, pass: hour 08 given twice"]


def test_impossible_days_are_errors_naming_the_key(tmp_path):
    """A reversed shift, an appointment book without slots or with slots after closing, a closed weekday:
    each was accepted and simulated silently (the reversed shift even turned the clock back)."""
    from waitroom.sim.scenario import load

    f = tmp_path / "s.yaml"
    f.write_text(
        "name: x\nweekday: wed\narrivals: {pass: {'08': 5}}\n"  # the example office: Wednesday 08:00-13:00
        "staffing: {c1: [['12:00', '08:00']], c2: [['08:00', '13:00']]}\n"
        "appointments:\n"
        "  - {service: pass, from: '11:00', to: '14:00', every_min: 15}\n"
        "  - {service: pass, from: '10:00', to: '09:00', every_min: 15}\n"
        "  - {service: pass, from: '08:00', to: '13:00', every_min: 15}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load(f)
    assert exc.value.errors == [
        "staffing.c1[0]: the shift 12:00-08:00 does not end after it starts",
        "appointments[0]: slots 11:00-14:00 lie outside the opening hours 08:00-13:00 on wed "
        "(to is the first time without a slot)",
        "appointments[1]: from 10:00 is not before to 09:00 (no slot)",
    ]
    f.write_text("name: x\nweekday: sat\narrivals: {pass: {'08': 5}}\n")
    with pytest.raises(ConfigError) as exc:
        load(f)
    assert exc.value.source == str(f)
    assert exc.value.errors == ["weekday: the office is closed on sat (office.hours)"]


def test_patience_distributions_and_their_errors():
    import random

    from waitroom.sim.scenario import Patience, parse

    rng = random.Random(3)
    uniform = Patience.model_validate({"dist": "uniform", "from": 45, "to": 90})
    xs = [uniform.sample(rng) / 60 for _ in range(4000)]
    assert min(xs) >= 45 and max(xs) <= 90 and abs(statistics.fmean(xs) - 67.5) < 1.0
    logn = Patience(dist="lognormal", mean_min=60, cv=0.5)
    xs = [logn.sample(rng) / 60 for _ in range(4000)]
    assert abs(statistics.fmean(xs) - 60) < 2.0 and abs(statistics.stdev(xs) / 60 - 0.5) < 0.05
    emp = Patience(dist="empirical", values_min=[10, 20, 40])
    assert {emp.sample(rng) / 60 for _ in range(200)} == {10, 20, 40}
    for bad, where in [
        ({"dist": "uniform", "from": 50}, "behaviour.patience"),
        ({"dist": "uniform", "from": 90, "to": 45}, "behaviour.patience"),
        ({"dist": "empirical", "values_min": []}, "behaviour.patience.values_min"),
        ({"dist": "weibull", "mean_min": 3}, "behaviour.patience.dist"),
    ]:
        with pytest.raises(ConfigError) as exc:
            parse(_example_scenario(arrivals={}, behaviour={"patience": bad}))
        assert any(e.startswith(where) for e in exc.value.errors), exc.value.errors


def _one_counter_day(abandoned_called: bool):
    from waitroom.sim.engine import DaySim
    from waitroom.sim.scenario import Arrival, DayPlan

    cfg = mmc_office(1, 10.0)
    t0 = 1736121600.0
    plan = DayPlan(
        t0,
        t0,
        t0 + 3600,
        [
            Arrival(t0 + 1, "s", 600.0),
            Arrival(t0 + 2, "s", 600.0, patience=60.0),
            Arrival(t0 + 3, "s", 300.0),
        ],
        {"c1": [(t0, t0 + 3600)]},
        no_show_s=90.0,
        abandoned_called=abandoned_called,
    )
    return DaySim(cfg, plan, predict=False).run()


def test_a_citizen_left_waiting_when_the_counter_closed_counts_as_unserved_and_missed():
    """The only counter of the service ends its shift while a citizen waits (nobody gives up): the figures
    show the citizen as unserved and as a missed service target, not as if they had never come."""
    from waitroom.sim.engine import DaySim
    from waitroom.sim.evaluate import figures
    from waitroom.sim.scenario import Arrival, DayPlan

    cfg = mmc_office(1, 10.0)
    t0 = 1736121600.0
    plan = DayPlan(
        t0,
        t0,
        t0 + 3600,
        [Arrival(t0 + 1, "s", 1850.0), Arrival(t0 + 2, "s", 300.0)],
        {"c1": [(t0, t0 + 1800)]},
    )
    day = DaySim(cfg, plan, predict=False).run()
    assert [r.outcome for r in day.records] == ["served", "unserved"]
    f = figures([day], cfg)
    assert f["unserved"]["mean"] == 1.0
    assert f["within_target"]["mean"] == 0.5  # the served one within 20 min, the unserved one missed
    s = summarize([day], cfg)
    assert s["overall"]["unserved"] == 1 and s["per_service"]["s"]["service_level"] == 0.5
    assert s["overall"]["service_level"] == 0.5


def test_abandoned_citizens_are_called_in_vain_and_cost_counter_time():
    called = _one_counter_day(True)
    first, gone, third = called.records
    assert gone.outcome == "abandoned" and gone.wait is None and gone.ghost_called == first.called + 600
    assert third.called == gone.ghost_called + 90  # the call in vain cost the counter 90 s
    assert called.busy["c1"] == pytest.approx(600 + 90 + 300)
    vanished = _one_counter_day(False)
    assert vanished.records[1].ghost_called is None and vanished.busy["c1"] == pytest.approx(900)
    assert vanished.records[2].called == vanished.records[0].called + 600


def test_a_counter_busy_when_its_next_shift_starts_stays_open_and_counts_once():
    from waitroom.sim.engine import DaySim
    from waitroom.sim.scenario import Arrival, DayPlan

    cfg = mmc_office(1, 10.0)
    t0 = 1736121600.0
    # serving from t0+50 to t0+150 while the first shift ends at t0+100 and the second starts at t0+110
    plan = DayPlan(
        t0, t0, t0 + 300, [Arrival(t0 + 50, "s", 100.0)], {"c1": [(t0, t0 + 100), (t0 + 110, t0 + 300)]}
    )
    day = DaySim(cfg, plan, predict=False).run()
    assert day.staffed["c1"] == pytest.approx(300.0) and day.busy["c1"] == pytest.approx(100.0)
    s = summarize([day], cfg)
    assert 0 <= s["utilisation_overall"] <= 1 and 0 <= s["figures"]["utilisation"]["mean"] <= 1


def test_simulate_json_file_has_every_figure_with_its_interval(tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = [
        "simulate",
        str(SCENARIO),
        "-r",
        "4",
        "--no-predict",
        "--lang",
        "en",
        "--out",
        str(tmp_path / "html"),
    ]
    assert main([*argv, "--json", str(out), "--rule-set", "current", "--rule-set", "fifo"]) == 0
    text = capsys.readouterr().out
    assert "Appointments called at most 5 min after their time" in text and "[" in text
    assert "Waiting-time forecast error: not evaluated (--no-predict)" in text and "None" not in text
    report = json.loads(out.read_text())
    assert set(report["rule_sets"]) == {"current", "fifo"}
    cur, fifo = report["rule_sets"]["current"], report["rule_sets"]["fifo"]
    assert cur["policy"] == "recommended" and fifo["policy"] == "fifo"
    f = cur["figures"]
    for group in ("all", "walk_in", "appointment", "priority", "normal"):
        for stat in ("mean_wait_min", "p95_wait_min", "max_wait_min"):
            v = f[group][stat]
            lo, hi = v["ci95"]
            assert lo <= v["mean"] <= hi and v["days"] >= 1, (group, stat, v)
    for key in (
        "within_target",
        "appointments_within_5_min_of_slot",
        "appointments_within_5_min_of_due",
        "appointments_arrived_over_5_min_late",
        "overtaken_max_wait_when_overtaken_min",
        "overtaken_max_wait_min",
        "turned_away",
        "abandoned",
        "utilisation",
        "overtime_min",
    ):
        assert f[key]["mean"] is not None, key
    assert f["appointments_within_5_min_of_slot"]["mean"] <= f["appointments_within_5_min_of_due"]["mean"]
    # nobody who came more than 5 minutes after the slot is called within 5 minutes of it
    late = f["appointments_arrived_over_5_min_late"]["mean"]
    assert f["appointments_within_5_min_of_slot"]["mean"] <= 1 - late
    assert fifo["figures"]["overtaken_max_wait_when_overtaken_min"]["worst"] == 0  # fifo never overtakes
    page = (tmp_path / "html" / "index.html").read_text()
    assert "95 % confidence interval" in page and "Appointments called at most 5 min after their time" in page
    assert main([*argv, "--json", str(tmp_path / "no" / "dir" / "r.json")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main([*argv, "--arrival-scale", "0"]) == 1


@pytest.mark.slow
def test_recommended_keeps_appointments_and_priority_at_the_cost_fifo_pays_elsewhere():
    """Statistical, 40 days of the Bürgerbüro day at about 75 % utilisation (common random numbers): the
    recommended policy calls appointments on time and priority citizens clearly sooner, holds the cap, and
    costs no more in mean wait or overtime than FIFO (beyond the noise of the interval)."""
    from waitroom.sim.scenario import load

    sc, cfg = load(BUERGERBUERO)
    report = whatif(
        cfg, sc, {"current": None, "fifo": {"policy": "fifo"}}, replications=40, seed=11, predict=False
    )
    rec, fifo = (report["rule_sets"][k]["figures"] for k in ("current", "fifo"))
    assert rec["appointments_within_5_min_of_slot"]["mean"] >= 0.95
    assert (
        rec["appointments_within_5_min_of_slot"]["mean"]
        > fifo["appointments_within_5_min_of_slot"]["ci95"][1]
    )
    assert rec["priority"]["mean_wait_min"]["mean"] <= 0.5 * rec["normal"]["mean_wait_min"]["mean"]
    assert (
        rec["overtaken_max_wait_when_overtaken_min"]["worst"]
        < cfg.steering.priority.max_wait_behind_priority_min
    )
    assert rec["all"]["mean_wait_min"]["mean"] <= fifo["all"]["mean_wait_min"]["ci95"][1] * 1.05
    assert rec["overtime_min"]["mean"] <= fifo["overtime_min"]["ci95"][1]


# ------------------------------------------------------------------------------------------------ properties
def _mixed_office(policy: str, cap_min: float, n_per: int):
    data = {
        "office": {"id": "p", "name": "P", "timezone": "UTC", "hours": {"mon": ["00:00", "23:59"]}},
        "services": [
            {"id": "a", "prefix": "A", "name": {"de": "A"}, "mean_service_min": 6},
            {"id": "b", "prefix": "B", "name": {"de": "B"}, "mean_service_min": 9},
        ],
        "counters": [
            {"id": "c1", "name": {"de": "1"}, "services": ["a"]},
            {"id": "c2", "name": {"de": "2"}, "services": ["a", "b"]},
            {"id": "c3", "name": {"de": "3"}, "services": ["b"]},
        ],
        "steering": {
            "policy": policy,
            "intake_stop": {"enabled": False},
            "priority": {"normal_per_priority": n_per, "max_wait_behind_priority_min": cap_min},
        },
    }
    return config.parse(data)


arrivals = st.lists(
    st.tuples(
        st.floats(0, 2 * 3600),  # arrival, seconds after opening
        st.sampled_from("ab"),
        st.floats(60, 1500),  # service time
        st.booleans(),  # priority
        st.one_of(st.none(), st.floats(0, 3 * 3600)),  # an appointment slot
        st.one_of(st.none(), st.floats(60, 3600)),  # patience
    ),
    min_size=10,
    max_size=80,
)


@settings(max_examples=100, deadline=None)
@given(
    arrivals,
    st.sampled_from(["recommended", "fifo"]),
    st.sampled_from([5.0, 15.0, 30.0]),
    st.integers(0, 2),
    st.sets(st.sampled_from(["c1", "c2", "c3"]), min_size=1),
)
def test_simulated_days_hold_the_cap_and_leave_no_priority_ticket_stuck(spec, policy, cap_min, n_per, staff):
    """Random overloaded days through the real simulator: no normal ticket is overtaken by a priority ticket
    after it has waited the cap, a priority ticket is never called after a later normal ticket of its
    service, everybody with a ticket is called by the end of the day, and every call has its rule."""
    from waitroom.sim.engine import DaySim
    from waitroom.sim.scenario import Arrival, DayPlan

    cfg = _mixed_office(policy, cap_min, n_per)
    t0 = 1736121600.0 + 8 * 3600
    if "c2" not in staff and not {"c1", "c3"} <= staff:
        staff = staff | {"c2"}  # every service has a counter
    plan = DayPlan(
        t0 - 60,
        t0,
        t0 + 4 * 3600,
        sorted(
            (
                Arrival(
                    t0 + at,
                    sv,
                    dur,
                    priority=prio and slot is None,
                    slot=None if slot is None else t0 + slot,
                    code=None if slot is None else f"X{i}",
                    patience=pat,
                )
                for i, (at, sv, dur, prio, slot, pat) in enumerate(spec)
            ),
            key=lambda a: a.t,
        ),
        {c: [(t0, t0 + 4 * 3600)] for c in staff},
        appointments=[
            (f"X{i}", sv, t0 + slot) for i, (_, sv, _, _, slot, _) in enumerate(spec) if slot is not None
        ],
        abandoned_called=True,
    )
    day = DaySim(cfg, plan, predict=False).run()
    recs = [r for r in day.records if r.ticket is not None]
    assert all(r.called is not None or r.ghost_called is not None for r in recs)  # nobody stuck
    for r in recs:
        assert (r.called or r.ghost_called) and r.reason, r
        if r.overtaken_wait is not None:
            assert policy == "recommended" and r.overtaken_wait < cap_min * 60
    prio = [r for r in recs if r.priority and r.called is not None]
    normal = [r for r in recs if not r.priority and r.kind != "appointment" and r.called is not None]
    for p in prio:
        assert not [
            n for n in normal if n.service == p.service and n.arrival > p.arrival and n.called < p.called
        ]


def test_confidence_intervals_stay_within_what_a_figure_can_be() -> None:
    from waitroom.sim.evaluate import ci95

    overtime = ci95([0.0, 0.0, 0.0, 15.0])  # mostly no overtime, one long day
    assert overtime["ci95"][0] == 0.0 and overtime["ci95"][1] > overtime["mean"]
    on_time = ci95([1.0, 1.0, 1.0, 0.5], high=1.0)
    assert on_time["ci95"][1] == 1.0 and on_time["ci95"][0] < on_time["mean"]
    assert ci95([2.0, 4.0])["ci95"] == [1.04, 4.96]  # 3 +- 1.96 * 1.414 / sqrt(2): nothing to cut


@pytest.mark.parametrize(
    "path", sorted((ROOT / "docs" / "steering-days").glob("s[0-9]-*.yaml")), ids=lambda p: p.stem
)
def test_the_documented_office_days_load(path):
    """docs/steering.md reports figures for these office days: each stays a valid scenario for its office."""
    from waitroom.sim.scenario import check, load

    sc, cfg = load(path)
    check(sc, cfg, str(path))
    assert sc.name and cfg.counters


# ------------------------------------------------------------------------------------------------ audit
def _corrupt(log: Path, line: int, column: str | None, value: str) -> None:
    """Set ``column`` of the file's ``line`` (1 = the header) to ``value``; column None cuts the row short."""
    lines = log.read_text(encoding="utf-8").split("\n")
    head = lines[0].split("\t")
    cells = lines[line - 1].split("\t")
    if column is None:
        cells = cells[:5]
    else:
        cells[head.index(column)] = value
    lines[line - 1] = "\t".join(cells)
    log.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("date", "99xx01", "line 4: date '99xx01' is not yymmdd"),
        ("date", "991301", "line 4: date '991301' is not yymmdd"),
        ("q_time", "abc", "line 4: q_time 'abc' is not a whole number of seconds"),
        ("q_start", "8:xx:00", "line 4: q_start '8:xx:00' is not a time H:MM:SS"),
        (None, "", "line 4: wrong number of columns"),
    ],
)
def test_a_replayed_log_with_a_bad_row_is_one_error_naming_the_line(tmp_path, capsys, column, value, error):
    """A bad date, time or number in a replayed log was a ValueError traceback (TypeError for a short row)."""
    from tests.forecast_helpers import write_log

    log = write_log(tmp_path / "syn.tsv", days=2, seed=4)
    _corrupt(log, 4, column, value)
    assert main(["simulate", str(log), "--no-predict", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err == f"{log}: 1 configuration error(s):\n  {error}\n"
    assert not (tmp_path / "r").exists()


def test_a_replayed_log_that_is_not_text_is_one_error(tmp_path, capsys):
    log = tmp_path / "x.tsv"
    log.write_bytes(b"vru+line\tcall_id\xff\n")
    assert main(["simulate", str(log), "--no-predict", "--out", str(tmp_path / "r")]) == 1
    assert "(file): not a text file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("yaml_text", "error"),
    [
        (
            "arrivals: {pass: {'08': .inf}}",
            "arrivals.pass.08: give hours 00-23 and rates of at least 0 and at most 10000 walk-ins per hour",
        ),
        (
            "arrivals: {pass: {'08': .nan}}",
            "arrivals.pass.08: give hours 00-23 and rates of at least 0 and at most 10000 walk-ins per hour",
        ),
        (
            "arrivals: {pass: {'08': 1e9}}",
            "arrivals.pass.08: give hours 00-23 and rates of at least 0 and at most 10000 walk-ins per hour",
        ),
        (
            "arrivals: {pass: {'08': 5}}\nbehaviour: {patience_min: .inf}",
            "behaviour.patience_min: Input should be less than or equal to 1440",
        ),
        (
            "arrivals: {pass: {'08': 5}}\nbehaviour: {patience: {dist: empirical, values_min: [.nan]}}",
            "behaviour.patience: Value error, values_min must be above 0 and at most 1440",
        ),
    ],
    ids=["rate-inf", "rate-nan", "rate-huge", "patience-inf", "patience-nan"],
)
def test_rates_and_patience_that_cannot_be_drawn_are_errors(tmp_path, capsys, yaml_text, error):
    """An infinite walk-in rate drew arrivals for ever (the command hung, filling the memory), NaN drew none
    without a word, an infinite patience_min was a ZeroDivisionError traceback, a NaN patience was used."""
    f = tmp_path / "s.yaml"
    f.write_text(f"name: x\n{yaml_text}\n")
    assert main(["simulate", str(f), "-r", "1", "--no-predict", "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == f"{f}: 1 configuration error(s):\n  {error}\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_report_folder_that_cannot_be_written_is_one_error(tmp_path, capsys, lang):
    """--out under a file (or on a full or read-only disk) was a FileNotFoundError/NotADirectoryError
    traceback after the whole simulation; -r 0 silently ran the scenario's 20 days, -r -1 was a
    StatisticsError traceback."""
    f = tmp_path / "s.yaml"
    f.write_text("name: x\narrivals: {pass: {'08': 5}}\n")
    (tmp_path / "file").write_text("")
    argv = ["simulate", str(f), "--no-predict", "--lang", lang]
    out = tmp_path / "file" / "report"
    assert main([*argv, "-r", "1", "--out", str(out)]) == 1
    want = {
        "de": f"--out {out}: der Bericht kann nicht geschrieben werden: Not a directory\n",
        "en": f"--out {out}: cannot write the report: Not a directory\n",
    }[lang]
    assert capsys.readouterr().err.endswith(want)
    for reps in ("0", "-1", "10001"):
        assert main([*argv, "-r", reps, "--out", str(tmp_path / "r")]) == 1
        want = {
            "de": f"--replications {reps}: Bitte eine ganze Zahl von 1 bis 10000 angeben.\n",
            "en": f"--replications {reps}: give a whole number from 1 to 10000\n",
        }[lang]
        assert capsys.readouterr().err == want
    assert not (tmp_path / "r").exists()


def test_a_replayed_log_without_an_answered_call_names_the_log(tmp_path, capsys):
    """Every caller hung up (or only PHANTOM rows): the replay said "<bank replay>: counters: List should have
    at least 1 item", naming neither the log nor the cause."""
    from tests.forecast_helpers import write_log

    log = write_log(tmp_path / "syn.tsv", days=1, seed=4)
    lines = log.read_text(encoding="utf-8").splitlines()
    log.write_text(
        "\n".join([lines[0]] + [ln for ln in lines[1:] if "\tHANG\t" in ln]) + "\n", encoding="utf-8"
    )
    assert main(["simulate", str(log), "--no-predict", "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == (
        f"{log}: 1 configuration error(s):\n"
        "  (rows): no call was answered by an agent (outcome AGENT): nothing to replay\n"
    )


@pytest.mark.parametrize("name", ["current", "fifo"])
def test_a_scenario_rule_set_may_not_take_the_name_of_a_built_in_one(tmp_path, capsys, name):
    """A scenario rule set named "current" silently replaced the office's own rules and the report called it
    "Wie konfiguriert" (as configured); one named "fifo" replaced the FIFO baseline."""
    f = tmp_path / "s.yaml"
    f.write_text(
        f"name: x\narrivals: {{pass: {{'08': 5}}}}\nrule_sets:\n  {name}: {{skills: {{c1: [pass]}}}}\n"
    )
    assert main(["simulate", str(f), "-r", "1", "--no-predict", "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == (
        f"{f}: 1 configuration error(s):\n  rule_sets.{name}: the name is taken ('current' = the office as "
        "configured, 'fifo' = its rules first come first served); choose another\n"
    )


def test_replications_limit_a_replayed_log_to_its_first_days(tmp_path):
    """-r was ignored for a .tsv: every day of the log was replayed (all 28 of the real month)."""
    from tests.forecast_helpers import write_log

    log = write_log(tmp_path / "syn.tsv", days=3, seed=4)
    argv = [
        "simulate",
        str(log),
        "--no-predict",
        "--out",
        str(tmp_path / "r"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert main([*argv, "-r", "2"]) == 0
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["replications"] == 2 and report["rule_sets"]["fcfs"]["days"] == 2
    assert main(argv) == 0
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["replications"] == 3


@pytest.mark.parametrize(
    ("extra", "options"),
    [
        (["--rule-set", "fifo"], "--rule-set"),
        (["--arrival-scale", "2", "--seed", "3"], "--arrival-scale, --seed"),
    ],
)
def test_options_that_do_not_apply_to_a_replayed_log_are_an_error(tmp_path, capsys, extra, options):
    """--rule-set, --arrival-scale and --seed were silently ignored for a .tsv log: the report showed the
    recorded day under first come first served, not what was asked for."""
    from tests.forecast_helpers import write_log

    log = write_log(tmp_path / "syn.tsv", days=1, seed=4)
    argv = ["simulate", str(log), "--no-predict", "--out", str(tmp_path / "r"), "--lang", "en", *extra]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"{options}: does not apply to the replay of a log (.tsv), which plays the recorded day first come "
        "first served\n"
    )
    assert not (tmp_path / "r").exists()
