"""References outside the project for M/M/c cross-checks: the Erlang-C formulas and Ciw.

``mmc_office`` and ``mmc_plans`` build the plain M/M/c queue (one service, c counters, Poisson arrivals,
exponential service, first come first served, nobody leaves) in the simulator's own terms.
"""

from __future__ import annotations

import math
import random
from typing import Any

from waitroom import config as office_config
from waitroom.config import Config
from waitroom.sim.scenario import Arrival, DayPlan


def erlang_c(servers: int, lam: float, mu: float) -> tuple[float, float]:
    """(probability of waiting, mean wait) of an M/M/c queue in steady state; rates per time unit."""
    a = lam / mu
    rho = a / servers
    if rho >= 1:
        return 1.0, math.inf
    term = sum(a**k / math.factorial(k) for k in range(servers))
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (term + top)
    return p_wait, p_wait / (servers * mu - lam)


def mmc_office(servers: int, mean_min: float) -> Config:
    data: dict[str, Any] = {
        "office": {
            "id": "mmc",
            "name": "M/M/c",
            "timezone": "UTC",
            "hours": {d: ["00:00", "23:59"] for d in office_config.WEEKDAYS},
        },
        "services": [{"id": "s", "prefix": "A", "name": {"de": "Dienst"}, "mean_service_min": mean_min}],
        "counters": [
            {"id": f"c{i + 1}", "name": {"de": f"Schalter {i + 1}"}, "services": ["s"]}
            for i in range(servers)
        ],
        "steering": {"intake_stop": {"enabled": False}},
    }
    return office_config.parse(data, "<M/M/c>")


def mmc_plans(
    cfg: Config, lam_per_min: float, mean_min: float, hours: float, days: int, seed: int
) -> list[DayPlan]:
    """Days of an M/M/c queue starting empty at 00:00 UTC of 2025-01-06, each ``hours`` long."""
    plans = []
    for d in range(days):
        rng = random.Random(seed + d)
        start = 1736121600.0 + d * 86400.0
        end = start + hours * 3600.0
        arrivals, t = [], start
        while True:
            t += rng.expovariate(lam_per_min / 60.0)
            if t >= end:
                break
            arrivals.append(Arrival(t, "s", rng.expovariate(1.0 / (mean_min * 60.0))))
        shifts = {c.id: [(start, end)] for c in cfg.counters}
        plans.append(DayPlan(start, start, end, arrivals, shifts))
    return plans


def ciw_waits(
    servers: int, lam_per_min: float, mean_min: float, hours: float, seed: int, warmup_h: float = 0.0
) -> list[float]:
    """Waiting times (minutes) of customers arriving after the warm-up in one Ciw run of ``hours``."""
    import ciw

    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(lam_per_min)],
        service_distributions=[ciw.dists.Exponential(1.0 / mean_min)],
        number_of_servers=[servers],
    )
    ciw.seed(seed)
    q = ciw.Simulation(net)
    q.simulate_until_max_time(hours * 60.0)
    return [r.waiting_time for r in q.get_all_records() if r.arrival_date >= warmup_h * 60.0]
