"""Simulator speed against Ciw on the same queue, in one run (issue 10).

1. M/M/8 at rho 0.9, 10-hour days: waitroom's simulator (the controller's own model, rules and predictor)
   with the predictors off (Ciw has none) and on, against Ciw's customers per second; repeated, min / median.
2. Time per citizen as the day grows: 300 and 20,000 citizens a day at rho 0.9 (the counters scale with the
   arrivals), predictors off and on; each size over about 20,000 citizens (67 days of 300, one of 20,000).

    .venv/bin/python bench/bench_sim.py          (python -m bench sim)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from waitroom.sim import run_days
from waitroom.sim.reference import ciw_waits, mmc_office, mmc_plans

REPEAT = 3
MEAN_MIN = 5.5
RHO = 0.9


def ours(servers: int, lam: float, hours: float, days: int, predict: bool) -> tuple[float, int]:
    cfg = mmc_office(servers, MEAN_MIN)
    plans = mmc_plans(cfg, lam, MEAN_MIN, hours=hours, days=days, seed=1)
    t0 = time.perf_counter()
    result = run_days(cfg, plans, predict=predict)
    el = time.perf_counter() - t0
    n = sum(len(d.records) for d in result)
    return n / el, n


def ciw(servers: int, lam: float, hours: float) -> float:
    t0 = time.perf_counter()
    waits = ciw_waits(servers, lam, MEAN_MIN, hours, seed=1)
    return len(waits) / (time.perf_counter() - t0)


def mm(values: list[float]) -> str:
    return f"min {min(values):,.0f} / median {statistics.median(values):,.0f}"


def main() -> None:
    servers = 8
    lam = servers * RHO / MEAN_MIN
    off, on, ref = [], [], []
    ciw(servers, lam, 1)  # untimed: the first run imports Ciw (it made the first ratio ten times too good)
    ours(servers, lam, 1, 1, True)
    for _ in range(REPEAT):
        ref.append(ciw(servers, lam, 10 * 5))
        off.append(ours(servers, lam, 10, 5, False)[0])
        on.append(ours(servers, lam, 10, 5, True)[0])
    r_off = [a / b for a, b in zip(off, ref, strict=True)]
    r_on = [a / b for a, b in zip(on, ref, strict=True)]
    print(f"M/M/{servers}, rho {RHO}, 10-hour days, customers/s: Ciw {mm(ref)}")
    print(f"  waitroom, predictors off: {mm(off)}  ({min(r_off):.2f}x / {statistics.median(r_off):.2f}x Ciw)")
    print(f"  waitroom, predictors on:  {mm(on)}  ({min(r_on):.2f}x / {statistics.median(r_on):.2f}x Ciw)")
    for predict in (False, True):
        per = {}
        for per_day in (300, 20000):
            lam = per_day / 600.0  # per minute over 10 hours
            c = max(1, round(lam * MEAN_MIN / RHO))
            # as many days as make about 20,000 citizens: one day of 300 runs for a few milliseconds, too
            # short to time alone on a shared machine
            days = max(1, round(20000 / per_day))
            rates = [ours(c, lam, 10, days, predict)[0] for _ in range(REPEAT)]
            per[per_day] = 1e6 / statistics.median(rates)
            print(
                f"  {per_day:>6,} citizens/day ({c} counters), predictors {'on ' if predict else 'off'}: "
                f"{per[per_day]:,.0f} us per citizen"
            )
        print(f"  time per citizen at 20,000 / at 300: {per[20000] / per[300]:.2f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import no_arguments

    no_arguments(__doc__)
    main()
