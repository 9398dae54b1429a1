"""Simulator speed: a full office day (about 600 citizens, 8 counters), and customers per second against Ciw
on the same M/M/c scenario, in one run. Prints figures; no assertions.

    .venv/bin/python bench/bench_sim.py
"""

from __future__ import annotations

import statistics
import time

from waitroom.sim import run_days
from waitroom.sim.reference import ciw_waits, erlang_c, mmc_office, mmc_plans


def main() -> None:
    servers, mean = 8, 5.5
    lam = 600 / (8 * 60)  # 600 citizens in an 8-hour day: rho = 0.86
    cfg = mmc_office(servers, mean)
    plans = mmc_plans(cfg, lam, mean, hours=8, days=10, seed=1)
    for predict in (True, False):
        t0 = time.perf_counter()
        days = run_days(cfg, plans, predict=predict)
        el = time.perf_counter() - t0
        n = sum(len(d.records) for d in days)
        print(
            f"office day, 8 counters, {n / len(days):.0f} citizens/day, "
            f"predictors {'on ' if predict else 'off'}: "
            f"{el / len(days) * 1000:.0f} ms per day, {n / el:,.0f} citizens/s"
        )
    hours = 8 * 10
    t0 = time.perf_counter()
    waits = ciw_waits(servers, lam, mean, hours, seed=1)
    el = time.perf_counter() - t0
    print(
        f"Ciw, same M/M/{servers} ({len(waits)} customers): {len(waits) / el:,.0f} customers/s, "
        f"mean wait {statistics.fmean(waits):.2f} min "
        f"(Erlang C steady state {erlang_c(servers, lam, 1 / mean)[1]:.2f})"
    )


if __name__ == "__main__":
    main()
