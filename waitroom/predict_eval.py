"""``waitroom predict-eval LOG.tsv [--json FILE]``: the forecast's RASE and interval coverage on a recorded
log, next to the classical predictors (see ``waitroom.forecast.evaluate`` for the protocol)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any

from waitroom import i18n
from waitroom.forecast.errors import ForecastError
from waitroom.i18n import fmt_number, fmt_percent, t

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
    p.add_argument(
        "--lang",
        choices=i18n.STAFF_LANGUAGES,
        default=i18n.STAFF_LANGUAGES[0],
        help="language of the printed tables (default: German; the JSON stays language-free)",
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


def _bar(lang: str) -> Any:
    def bar(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r" + t("forecast.eval.progress", lang, done=done, total=total))
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return bar


def format_report(r: dict[str, Any], lang: str = "de") -> str:
    """The printed tables of a report, in ``lang`` (the JSON stays language-free)."""

    def num(x: float | None, digits: int | None = 1) -> str:
        # NaN (None in the JSON): a figure of an empty group
        return fmt_number(x, lang, digits) if x is not None and math.isfinite(x) else "–"

    def pct(x: float | None) -> str:
        return fmt_percent(x, lang, 1) if x is not None and math.isfinite(x) else "–"

    w = r["waitroom"]
    pop = r["population"]
    b = r["best_classical"]
    wm = r["with_model"]
    predictor, rase = t("forecast.eval.predictor", lang), "RASE"
    kind, mean_s = t("forecast.eval.type", lang), t("forecast.eval.mean_s", lang)
    best_head, cover = t("forecast.eval.best", lang), t("forecast.eval.cover", lang)
    lines = [
        t(
            "forecast.eval.population",
            lang,
            log=r["log"],
            n=num(pop["n"], None),
            days=r["days"],
            mean=num(pop["mean_wait_s"]),
        ),
        t("forecast.eval.protocol", lang),
        "",
        f"  {predictor:14s} {rase:>6s}",
        f"  {'waitroom':14s} {num(w['rase'], 3):>6s}   "
        + t(
            "forecast.eval.coverage",
            lang,
            coverage=pct(w["coverage_80"]),
            below=pct(w["below_lo"]),
            above=pct(w["above_hi"]),
            width=num(w["median_width_s"], 0),
        ),
    ]
    lines += [f"  {k:14s} {num(v, 3):>6s}" for k, v in r["classical_reference"].items()]
    lines += [
        "  "
        + t(
            "forecast.eval.ratio",
            lang,
            best=b["name"],
            best_rase=num(b["rase"], 3),
            ratio=num(r["ratio_to_best_classical"], 3),
        ),
        "  "
        + t(
            "forecast.eval.fallback",
            lang,
            share=pct(r["fallback_share"]),
            rase=num(wm["rase"], 3),
            coverage=pct(wm["coverage_80"]),
        ),
        "",
        f"  {kind:6s} {'n':>6s} {mean_s:>9s} {'waitroom':>9s} {best_head:>22s} {'MEAN1h':>7s} {cover:>8s}",
    ]
    for s, ty in r["per_type"].items():
        best = ty["best_classical"]
        lines.append(
            f"  {s:6s} {ty['n']:6d} {num(ty['mean_wait_s']):>9s} {num(ty['rase'], 3):>9s} "
            f"{best + ' ' + num(ty['classical_rase'][best], 3):>22s} "
            f"{num(ty['classical_rase']['MEAN1h/all'], 3):>7s} {pct(ty['coverage_80']):>8s}"
        )
    lines.append(
        "  "
        + t(
            "forecast.eval.footer",
            lang,
            training=num(r["training_s"]["median"]),
            elapsed=num(r["elapsed_s"], 0),
        )
    )
    return "\n".join(lines)


def cmd_predict_eval(args: argparse.Namespace) -> int:
    from waitroom.forecast.evaluate import evaluate_log

    try:
        report = evaluate_log(args.log, reference=args.reference, progress=_bar(args.lang))
    except ForecastError as exc:
        print(f"waitroom predict-eval: {exc}", file=sys.stderr)
        return 1
    print(format_report(report, args.lang))
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
    models = ModelStore(config.data_dir(args.data_dir) / "forecast")
    store = EventStore(db)
    try:
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
    except OSError as exc:  # the model folder: a file in its way, read-only, full
        where = exc.filename or models.dir
        print(f"waitroom forecast-train: cannot save the model in {where}: {exc.strerror}", file=sys.stderr)
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
