"""The what-if simulator: office days simulated with the real steering rules and the real predictor.

Entry points:
- ``whatif(cfg, scenario, rule_sets, replications, seed)``: JSON-able comparison of rule sets (the web admin's
  what-if page calls this);
- ``run_days(cfg, plans)``: the simulated days of one rule set (``DayResult`` per plan);
- ``waitroom simulate SCENARIO`` (``waitroom.sim.cli``): the same from the command line, with charts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waitroom.config import Config, Steering
from waitroom.predict import ServiceTimes
from waitroom.sim.engine import DayResult, DaySim
from waitroom.sim.evaluate import summarize
from waitroom.sim.scenario import DayPlan, RuleSet, Scenario, apply_rule_set, check, parse, plan_day

log = logging.getLogger(__name__)

__all__ = [
    "DayPlan",
    "DayResult",
    "DaySim",
    "Scenario",
    "builtin_rule_sets",
    "plan_day",
    "run_days",
    "whatif",
]

Progress = Callable[[int, int], None]


def run_days(
    cfg: Config,
    plans: list[DayPlan],
    *,
    predict: bool = True,
    times: ServiceTimes | None = None,
    progress: Progress | None = None,
    done: int = 0,
    total: int = 0,
) -> list[DayResult]:
    """Simulate the plans one after the other; the service-time statistics carry over from day to day, as the
    controller learns from its own log."""
    times = times or ServiceTimes(cfg)
    out = []
    for i, plan in enumerate(plans):
        out.append(DaySim(cfg, plan, times=times, predict=predict).run())
        if progress:
            progress(done + i + 1, total or len(plans))
    return out


def builtin_rule_sets(cfg: Config) -> dict[str, RuleSet]:
    """Rule sets every scenario can compare: ``fifo`` = the office's rules with ``policy: fifo``."""
    return {"fifo": RuleSet(steering={**cfg.steering.model_dump(mode="json"), "policy": "fifo"})}


def _scenario(scenario: Scenario | dict[str, Any] | str | Path, cfg: Config) -> Scenario:
    if isinstance(scenario, Scenario):
        sc = scenario
    elif isinstance(scenario, dict):
        sc = parse(scenario)
    else:
        from waitroom.sim.scenario import load

        sc, _ = load(scenario)
    check(sc, cfg)
    return sc


def whatif(
    cfg: Config,
    scenario: Scenario | dict[str, Any] | str | Path,
    rule_sets: dict[str, Steering | RuleSet | dict[str, Any] | None] | None = None,
    replications: int | None = None,
    seed: int | None = None,
    *,
    progress: Progress | None = None,
    predict: bool = True,
) -> dict[str, Any]:
    """Compare rule sets on the same simulated days; returns a JSON-able report.

    ``rule_sets`` maps a name to steering rules (a ``Steering``, or its YAML dict), or to a dict
    ``{"steering": {...}, "skills": {"c4": ["fuehrerschein", "pass"]}}``; ``None`` = the office as configured.
    Without rule sets: the office as configured ("current") and the scenario's own ``rule_sets``.
    Bad rules raise ``ConfigError`` naming the key.
    """
    sc = _scenario(scenario, cfg)
    sets: dict[str, Any] = (
        dict(rule_sets) if rule_sets else {"current": None, **builtin_rule_sets(cfg), **sc.rule_sets}
    )
    reps = replications or sc.replications
    first = sc.seed if seed is None else seed
    configs = {name: apply_rule_set(cfg, rs) for name, rs in sets.items()}
    plans = [plan_day(sc, cfg, first + i) for i in range(reps)]
    report: dict[str, Any] = {
        "scenario": sc.name,
        "office": cfg.office.id,
        "weekday": sc.weekday,
        "replications": reps,
        "seed": first,
        "rule_sets": {},
    }
    total = reps * len(configs)
    t0 = time.perf_counter()
    citizens = 0
    for k, (name, c) in enumerate(configs.items()):
        days = run_days(c, plans, predict=predict, progress=progress, done=k * reps, total=total)
        citizens += sum(len(d.records) for d in days)
        report["rule_sets"][name] = summarize(days, c)
    elapsed = time.perf_counter() - t0
    report["speed"] = {
        "seconds": round(elapsed, 3),
        "citizens": citizens,
        "citizens_per_s": round(citizens / elapsed) if elapsed > 0 else None,
        "seconds_per_day": round(elapsed / total, 4),
    }
    log.info(
        "what-if %s: %d rule sets x %d days, %d citizens in %.2f s",
        sc.name,
        len(configs),
        reps,
        citizens,
        elapsed,
    )
    return report
