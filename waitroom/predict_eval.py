"""``waitroom predict-eval LOG.tsv [--json FILE]``: the forecast's RASE and interval coverage on a recorded
log, next to the classical predictors (see ``waitroom.forecast.evaluate`` for the protocol)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any

from waitroom.forecast.errors import ForecastError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict-eval",
        help="accuracy of the waiting-time forecast on a recorded log, next to the classical predictors",
        description="Replay an anonymous-bank log (.tsv) day by day: each day is predicted by a forecast "
        "trained on the days before it only. Prints RASE of waitroom's forecast next to QL, LES, HOL, ZMS "
        "and MEAN1h (from the reference classical_predictors.py), the coverage of its 80 % interval, and "
        "the figures per service type.",
    )
    p.add_argument("log", help="anonymous-bank log, tab separated with a header line")
    p.add_argument("--json", metavar="FILE", help="also write the full report (per type, per day) as JSON")
    p.add_argument(
        "--reference",
        metavar="PATH",
        help="classical_predictors.py (default: $WAITROOM_EVAL_REFERENCE, else ../shared/eval/ beside the "
        "repository)",
    )
    p.set_defaults(func=cmd_predict_eval)

    from waitroom.cli import add_config_arg

    q = subparsers.add_parser(
        "forecast-train",
        help="train the waiting-time forecast from the controller's event log (the nightly job)",
        description="Read the office's event log, train the forecast on every day in it and save a new "
        "model version in <data dir>/forecast/ (the controller picks up the newest at its next start, or at "
        "once when it runs the trainer itself). Fewer than 200 called tickets: no model, the fallback stays.",
    )
    add_config_arg(q)
    q.add_argument("--data-dir", help="folder of the event log (default $WAITROOM_DATA_DIR or ./var)")
    q.set_defaults(func=cmd_forecast_train)


def _bar(done: int, total: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\rTag / day {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def format_report(r: dict[str, Any]) -> str:
    w = r["waitroom"]
    pop = r["population"]
    lines = [
        f"{r['log']}: {pop['n']} served queued calls on {r['days']} days, "
        f"mean wait {pop['mean_wait_s']:.1f} s",
        f"protocol: {r['protocol']}",
        "",
        f"  {'predictor':14s} {'RASE':>6s}",
        f"  {'waitroom':14s} {w['rase']:6.3f}   80 % interval coverage {100 * w['coverage_80']:.1f} % "
        f"(below {100 * w['below_lo']:.1f} %, above {100 * w['above_hi']:.1f} %, "
        f"median width {w['median_width_s']:.0f} s)",
    ]
    lines += [f"  {k:14s} {v:6.3f}" for k, v in r["classical_reference"].items()]
    b = r["best_classical"]
    lines += [
        f"  waitroom / best classical ({b['name']} {b['rase']:.3f}) = {r['ratio_to_best_classical']:.3f}",
        f"  days predicted by the fallback (no history yet): {100 * r['fallback_share']:.1f} % of calls; "
        f"with a model only: RASE {r['with_model']['rase']:.3f}, "
        f"coverage {100 * r['with_model']['coverage_80']:.1f} %",
        "",
        f"  {'type':6s} {'n':>6s} {'mean s':>7s} {'waitroom':>9s} {'best classical':>22s} {'MEAN1h':>7s} "
        f"{'cover':>6s}",
    ]
    for s, t in r["per_type"].items():
        best = t["best_classical"]
        lines.append(
            f"  {s:6s} {t['n']:6d} {t['mean_wait_s']:7.1f} {t['rase']:9.3f} "
            f"{best + ' ' + format(t['classical_rase'][best], '.3f'):>22s} "
            f"{t['classical_rase']['MEAN1h/all']:7.3f} {100 * t['coverage_80']:5.1f}%"
        )
    lines.append(
        f"  (per type the classical figures are recomputed by waitroom with the reference definitions; "
        f"training {r['training_s']['median']:.1f} s median per night, {r['elapsed_s']:.0f} s in all)"
    )
    return "\n".join(lines)


def cmd_predict_eval(args: argparse.Namespace) -> int:
    from waitroom.forecast.evaluate import evaluate_log

    try:
        report = evaluate_log(args.log, reference=args.reference, progress=_bar)
    except ForecastError as exc:
        print(f"waitroom predict-eval: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(_finite(report), fh, indent=1)
        except OSError as exc:
            print(f"waitroom predict-eval: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return 1
    return 0


def cmd_forecast_train(args: argparse.Namespace) -> int:
    from waitroom import config
    from waitroom.config import load_or_exit as load_config
    from waitroom.forecast.events import rows_from_store_events
    from waitroom.forecast.jobs import ModelStore, Trainer
    from waitroom.store import EventStore

    cfg = load_config(args.config)
    db = config.in_data_dir(cfg.controller.database, args.data_dir)
    if not db.is_file():
        print(f"waitroom forecast-train: no event log at {db}", file=sys.stderr)
        return 1
    services = tuple(s.id for s in cfg.services)
    store = EventStore(db)
    try:
        models = ModelStore(config.data_dir(args.data_dir) / "forecast")
        trainer = Trainer(
            lambda: rows_from_store_events(store.events(), services, cfg.office.tz),
            services,
            models,
            lambda m: None,
        )
        model = trainer.train_now()
    except ForecastError as exc:
        print(f"waitroom forecast-train: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if model is None:
        print("too little history for a model yet; the forecast keeps the fallback")
        return 0
    m = model.meta
    print(f"model trained on {m['rows']} called tickets of {len(m['days'])} days, saved in {models.dir}")
    return 0


def _finite(v: Any) -> Any:
    """NaN (a figure of an empty group) as null: the report stays standard JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v
