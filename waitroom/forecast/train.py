"""Training, off the command path: from rows (``waitroom.forecast.events``) to a ``Model``, the versioned
model files of an office's data directory, and a background trainer.

``train(rows, services, previous=...)`` fits gradient-boosted trees (scikit-learn's
HistGradientBoostingRegressor, squared loss) on every labelled row, i.e. on the tickets that were called, with
their real waits. The interval needs forecasts the model did not learn from: the out-of-sample pairs (point,
actual) of the previous model on the days it had not seen are carried forward from training to training (a
rolling split-conformal calibration over the last ``CALIBRATION_DAYS`` days); the first training, with no
previous model, holds out its last days (or, with one day only, the last 30 % of it) for that.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from waitroom.forecast.events import Row
from waitroom.forecast.features import feature_names
from waitroom.forecast.model import Interval, Model, Trees

log = logging.getLogger(__name__)

MIN_ROWS = 200  # fewer called tickets than this: keep the fallback
MAX_DAYS = 120  # train on the most recent days only (bounded time on a Pi, follows changes in the office)
CALIBRATION_DAYS = 28
TRAIN_THREADS = 1
CALIBRATION_MAX = 20000
PARAMS: dict[str, Any] = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


def fit_trees(x: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None) -> Trees:
    from sklearn.ensemble import HistGradientBoostingRegressor  # only the trainer needs scikit-learn
    from threadpoolctl import threadpool_limits

    est = HistGradientBoostingRegressor(loss="squared_error", **{**PARAMS, **(params or {})})
    # one thread: training runs beside the controller and must not take its cores (and OpenMP threads that
    # spin on a loaded machine make it many times slower, not faster)
    with threadpool_limits(limits=TRAIN_THREADS):
        est.fit(x, y)
    return Trees.from_sklearn(est)


def _matrix(rows: Sequence[Row], n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([r.features for r in rows], dtype=np.float64).reshape(len(rows), n)
    y = np.array([r.wait for r in rows], dtype=np.float64)
    return x, y


def train(
    rows: Sequence[Row],
    services: tuple[str, ...],
    previous: Model | None = None,
    params: dict[str, Any] | None = None,
    min_rows: int = MIN_ROWS,
) -> Model | None:
    """A model from the labelled rows (those with a wait), or None if there are fewer than ``min_rows``.
    Rows must come from ``replay`` with the same ``services`` (their feature vectors end with one indicator
    per service)."""
    names = feature_names(services)
    days = sorted({r.day for r in rows})[-MAX_DAYS:]
    keep = set(days)
    lab = [r for r in rows if r.wait is not None and r.day in keep]
    if len(lab) < min_rows:
        log.info("forecast: %d called tickets, fewer than %d: no model yet", len(lab), min_rows)
        return None
    if len(lab[0].features) != len(names):
        raise ValueError(f"rows have {len(lab[0].features)} features, services give {len(names)}")
    x, y = _matrix(lab, len(names))
    calib = _calibration(lab, x, y, days, services, previous, params)
    trees = fit_trees(x, y, params)
    pairs = np.array([(p, a) for p, a, _ in calib]).reshape(-1, 2)
    interval = Interval.calibrate(pairs[:, 0], pairs[:, 1])
    meta = {
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "days": days,
        "rows": len(lab),
        "mean_wait_s": float(y.mean()),
        "params": {**PARAMS, **(params or {})},
        "calibration_pairs": len(calib),
    }
    return Model(names, services, trees, interval, meta, calib)


def _calibration(
    lab: list[Row],
    x: np.ndarray,
    y: np.ndarray,
    days: list[str],
    services: tuple[str, ...],
    previous: Model | None,
    params: dict[str, Any] | None,
) -> list[tuple[float, float, str]]:
    day = np.array([r.day for r in lab])
    if previous is not None and previous.services == services:
        seen = set(previous.meta.get("days", ())) | {d for _, _, d in previous.calibration}
        new = ~np.isin(day, sorted(seen))
        pairs = list(previous.calibration)
        if new.any():
            pts = np.maximum(0.0, previous.trees.predict_many(x[new]))
            pairs += [(float(p), float(a), str(d)) for p, a, d in zip(pts, y[new], day[new], strict=True)]
        recent = set(sorted({d for _, _, d in pairs})[-CALIBRATION_DAYS:])
        pairs = [c for c in pairs if c[2] in recent][-CALIBRATION_MAX:]
        if len(pairs) >= 50:
            return pairs
    # first training: hold out the last days (a fifth, at least one), or the last 30 % of the tickets when
    # that would leave less than half of them to train on (a single day, or a first day with little traffic:
    # a weekend or a holiday at the start of the log). The interval must be calibrated on forecasts of a
    # model like the one it goes with, not of one trained on a few dozen tickets.
    held = np.zeros(len(lab), bool)
    if len(days) >= 2:
        k = max(1, round(0.2 * len(days)))
        held = np.isin(day, days[-k:])
    if len(days) < 2 or held.sum() > len(lab) / 2:
        order = np.lexsort(([r.t for r in lab], day))  # by day, then time of day
        held = np.zeros(len(lab), bool)
        held[order[int(0.7 * len(lab)) :]] = True
    if held.all() or not held.any() or (~held).sum() < 50:  # too little to hold out: in-sample (optimistic)
        held = np.ones(len(lab), bool)
        trees = fit_trees(x, y, params)
    else:
        trees = fit_trees(x[~held], y[~held], params)
    pts = np.maximum(0.0, trees.predict_many(x[held]))
    return [(float(p), float(a), str(d)) for p, a, d in zip(pts, y[held], day[held], strict=True)]
