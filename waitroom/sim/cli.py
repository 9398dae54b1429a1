"""``waitroom simulate SCENARIO``: simulate office days under one or more rule sets and write a report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from waitroom.config import EXAMPLE_CONFIG
from waitroom.errors import ConfigError

log = logging.getLogger(__name__)

BUNDLED = EXAMPLE_CONFIG.parent / "scenarios"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="what-if: simulate office days with the real steering rules and predictor",
        description="Simulate a scenario (YAML, see waitroom/examples/scenarios/) under the office's rules "
        "and the scenario's rule sets, or replay a recorded anonymous-bank log (.tsv); print the figures and "
        "write a report (report.json, PNG charts, index.html).",
    )
    p.add_argument(
        "scenario",
        help="scenario YAML file or the name of a bundled one (mitte-monday), or an anonymous-bank .tsv log",
    )
    p.add_argument(
        "--replications", "-r", type=int, help="simulated days per rule set (default: the scenario's)"
    )
    p.add_argument("--seed", type=int, help="seed of the first day (default: the scenario's)")
    p.add_argument(
        "--rule-set",
        action="append",
        dest="rule_sets",
        metavar="NAME",
        help="only these rule sets ('current' = the office as configured); repeatable",
    )
    p.add_argument("--out", default="sim-report", help="report folder (default ./sim-report)")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the report as JSON to FILE (without FILE: print it instead of the tables)",
    )
    p.add_argument(
        "--arrival-scale",
        type=float,
        metavar="X",
        help="multiply every walk-in rate and the density of the appointment book by X (a lighter or busier "
        "day of the same kind; default: the scenario's)",
    )
    p.add_argument("--no-predict", action="store_true", help="skip the predictor evaluation (faster)")
    p.set_defaults(func=cmd_simulate)


def _bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} Tage / days")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _replay(path: str, args: argparse.Namespace) -> dict[str, Any]:
    import time

    from waitroom.sim import run_days
    from waitroom.sim.evaluate import summarize
    from waitroom.sim.replay import bank_days

    cfg, plans, figures = bank_days(path)
    t0 = time.perf_counter()
    days = run_days(cfg, plans, predict=not args.no_predict, progress=_bar)
    elapsed = time.perf_counter() - t0
    citizens = sum(len(d.records) for d in days)
    return {
        "scenario": f"replay of {Path(path).name}",
        "office": cfg.office.id,
        "weekday": "-",
        "replications": len(days),
        "seed": 0,
        "recorded": figures,
        "rule_sets": {"fcfs": summarize(days, cfg)},
        "speed": {
            "seconds": round(elapsed, 3),
            "citizens": citizens,
            "citizens_per_s": round(citizens / elapsed) if elapsed else None,
            "seconds_per_day": round(elapsed / max(len(days), 1), 4),
        },
    }


def _print(report: dict[str, Any], *, predicted: bool = True) -> None:
    from waitroom.sim.report import comparison

    print(
        f"{report['scenario']}: {report['replications']} days per rule set, "
        f"{report['speed']['citizens']} citizens in {report['speed']['seconds']} s"
    )
    print(
        f"{'rule set':<18}{'mean':>7}{'median':>8}{'p90':>7}{'p95':>7}{'max':>7}{'SL':>7}{'util':>7}"
        f"{'aband.':>8}{'turned':>8}{'appt<=10':>10}"
    )
    for name, s in report["rule_sets"].items():
        o = s["overall"]

        def f(v: Any, pct: bool = False) -> str:
            return "-" if v is None else (f"{v:.0%}" if pct else f"{v:g}")

        print(
            f"{name:<18}{f(o['mean_wait_min']):>7}{f(o['median_wait_min']):>8}{f(o['p90_wait_min']):>7}"
            f"{f(o['p95_wait_min']):>7}{f(o['max_wait_min']):>7}{f(o.get('service_level'), True):>7}"
            f"{f(s['utilisation_overall'], True):>7}{o['abandoned']:>8}{o['turned_away']:>8}"
            f"{f(s['appointments']['within_10_min'], True):>10}"
        )
    if all("figures" in s for s in report["rule_sets"].values()):
        head, rows = comparison(report)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            print(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    if not predicted:
        print("predictor RASE: not evaluated (--no-predict)")
        return
    print("predictor RASE (all called / delayed only):")
    for name, s in report["rule_sets"].items():
        print(
            f"  {name:<16}"
            + "  ".join(
                f"{p} {'-' if v['rase'] is None else v['rase']}/"
                f"{'-' if v['rase_delayed'] is None else v['rase_delayed']}"
                for p, v in s["predictors"].items()
            )
        )


def bundled(name: str) -> str:
    """A scenario file, or the name of a bundled one (``mitte-monday`` -> waitroom/examples/scenarios/...)."""
    if Path(name).exists():
        return name
    candidate = BUNDLED / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return str(candidate) if candidate.exists() else name


def cmd_simulate(args: argparse.Namespace) -> int:
    from waitroom.sim import builtin_rule_sets, whatif
    from waitroom.sim.report import write
    from waitroom.sim.scenario import load

    try:
        if args.scenario.endswith(".tsv"):
            report = _replay(args.scenario, args)
        else:
            sc, cfg = load(bundled(args.scenario))
            if args.arrival_scale is not None:
                if not 0 < args.arrival_scale <= 10:
                    print(
                        f"--arrival-scale {args.arrival_scale}: give a factor above 0 and at most 10",
                        file=sys.stderr,
                    )
                    return 1
                sc = sc.model_copy(update={"arrival_scale": args.arrival_scale})
            sets: dict[str, Any] | None = None
            if args.rule_sets:
                known = {"current": None, **builtin_rule_sets(cfg), **sc.rule_sets}
                unknown = [n for n in args.rule_sets if n not in known]
                if unknown:
                    print(
                        f"{args.scenario}: unknown rule set(s) {', '.join(unknown)} "
                        f"(known: {', '.join(known)})",
                        file=sys.stderr,
                    )
                    return 1
                sets = {n: known[n] for n in args.rule_sets}
            report = whatif(
                cfg, sc, sets, args.replications, args.seed, progress=_bar, predict=not args.no_predict
            )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    page = write(report, args.out)
    if args.json and args.json != "-":
        try:
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        except OSError as exc:
            print(f"--json {args.json}: cannot write: {exc.strerror}", file=sys.stderr)
            return 1
    if args.json == "-":
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        _print(report, predicted=not args.no_predict)
        print(f"report: {page}")
    return 0
