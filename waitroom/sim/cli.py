"""``waitroom simulate SCENARIO``: simulate office days under one or more rule sets and write a report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from waitroom import i18n
from waitroom.config import EXAMPLE_CONFIG
from waitroom.errors import ConfigError
from waitroom.i18n import t

log = logging.getLogger(__name__)

BUNDLED = EXAMPLE_CONFIG.parent / "scenarios"
MAX_REPLICATIONS = 10000  # as the scenario's own replications


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
        "--replications",
        "-r",
        type=int,
        help="simulated days per rule set (default: the scenario's; of a .tsv log: its first N days)",
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
    p.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        default=i18n.LANGUAGES[0],
        help="language of the report and of the printed tables (default: German, the office's language; "
        "the JSON stays language-free)",
    )
    p.set_defaults(func=cmd_simulate)


def _progress(lang: str) -> Any:
    def bar(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        days = t("sim.cli.progress", lang, done=done, total=total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {days}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def _replay(path: str, args: argparse.Namespace) -> dict[str, Any]:
    import time

    from waitroom.sim import run_days
    from waitroom.sim.evaluate import summarize
    from waitroom.sim.replay import bank_days
    from waitroom.sim.report import REPLAY

    cfg, plans, figures = bank_days(path, max_days=args.replications)  # -r N: the log's first N days
    t0 = time.perf_counter()
    days = run_days(cfg, plans, predict=not args.no_predict, progress=_progress(args.lang))
    elapsed = time.perf_counter() - t0
    citizens = sum(len(d.records) for d in days)
    return {
        "scenario": f"{REPLAY}{Path(path).name}",
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


def _columns(rows: list[list[str]]) -> None:
    """Print a table: the first column aligned to the start, the others (numbers) to the end."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )


def _print(report: dict[str, Any], lang: str, *, predicted: bool = True) -> None:
    from waitroom.sim.report import Numbers, comparison, overall, rule_set_label, summary

    print(summary(report, lang))
    head, rows = overall(report, lang)
    _columns([head, *rows])
    if all("figures" in s for s in report["rule_sets"].values()):
        print()
        head, rows = comparison(report, lang)
        _columns([head, *rows])
    if not predicted:
        print(t("sim.cli.not_predicted", lang))
        return
    print(t("sim.cli.predictors", lang))
    num = Numbers(lang)
    sets = report["rule_sets"]
    names = list(next(iter(sets.values()))["predictors"])
    rows = [[t("web.whatif.rule_set", lang), *names]]
    for name, s in sets.items():
        rows.append(
            [rule_set_label(name, lang)]
            + [
                f"{num.decimal(v['rase'], 3)}/{num.decimal(v['rase_delayed'], 3)}"
                for v in s["predictors"].values()
            ]
        )
    _columns(rows)


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

    labels: dict[str, str] = {}
    if args.replications is not None and not 1 <= args.replications <= MAX_REPLICATIONS:
        print(
            t("sim.cli.err.replications", args.lang, value=args.replications, max=MAX_REPLICATIONS),
            file=sys.stderr,
        )
        return 1
    try:
        if args.scenario.endswith(".tsv"):
            # a replay is the recorded day under first come first served, as it was: nothing to vary
            ignored = [
                opt
                for opt, given in (
                    ("--rule-set", args.rule_sets),
                    ("--arrival-scale", args.arrival_scale is not None),
                    ("--seed", args.seed is not None),
                )
                if given
            ]
            if ignored:
                print(t("sim.cli.err.replay_options", args.lang, options=", ".join(ignored)), file=sys.stderr)
                return 1
            report = _replay(args.scenario, args)
        else:
            sc, cfg = load(bundled(args.scenario))
            labels = {s.id: s.name.get(args.lang) for s in cfg.services}
            if args.arrival_scale is not None:
                if not 0 < args.arrival_scale <= 10:
                    print(
                        t("sim.cli.err.arrival_scale", args.lang, value=args.arrival_scale), file=sys.stderr
                    )
                    return 1
                sc = sc.model_copy(update={"arrival_scale": args.arrival_scale})
            sets: dict[str, Any] | None = None
            if args.rule_sets:
                known = {"current": None, **builtin_rule_sets(cfg), **sc.rule_sets}
                unknown = [n for n in args.rule_sets if n not in known]
                if unknown:
                    print(
                        t(
                            "sim.cli.err.rule_sets",
                            args.lang,
                            scenario=args.scenario,
                            unknown=", ".join(unknown),
                            known=", ".join(known),
                        ),
                        file=sys.stderr,
                    )
                    return 1
                sets = {n: known[n] for n in args.rule_sets}
            report = whatif(
                cfg,
                sc,
                sets,
                args.replications,
                args.seed,
                progress=_progress(args.lang),
                predict=not args.no_predict,
            )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        page = write(report, args.out, args.lang, labels)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(t("sim.cli.err.out", args.lang, folder=args.out, reason=reason), file=sys.stderr)
        return 1
    if args.json and args.json != "-":
        try:
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        except OSError as exc:
            print(t("sim.cli.err.json", args.lang, file=args.json, reason=exc.strerror), file=sys.stderr)
            return 1
    if args.json == "-":
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        _print(report, args.lang, predicted=not args.no_predict)
        print(t("sim.cli.report", args.lang, path=page))
    return 0
