"""Honest evaluation of the forecast on a recorded log, next to the classical predictors.

Protocol (the same population and rules as ``shared/eval/classical_predictors.py``): every queued call
that was served is predicted at its queue entry from what had happened before; actual = the recorded
``q_time``; RASE = sqrt(mean squared error) / mean actual wait. The model that predicts day d is trained only
on the days before d (an expanding window, retrained every night as the controller does; the interval is
calibrated on forecasts of earlier days that were out of sample); the first day, with no history, gets the
``Fallback``. Nothing of the calls being scored is used for training or calibration.

The overall figures of QL, LES, HOL, ZMS and MEAN1h come from the reference module itself (imported, not
copied). Per service type they are recomputed from the forecast's own features, which follow the same
definitions (``tests/test_forecast_eval.py`` checks that both agree overall).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from waitroom.forecast import bank
from waitroom.forecast.errors import ForecastError
from waitroom.forecast.events import Row, replay
from waitroom.forecast.features import BASE_FEATURES
from waitroom.forecast.model import Fallback, Model
from waitroom.forecast.train import train

log = logging.getLogger(__name__)

REFERENCE_ENV = "WAITROOM_EVAL_REFERENCE"
_REPO = Path(__file__).resolve().parents[2]
REFERENCE_CANDIDATES = (
    _REPO.parent / "shared" / "eval" / "classical_predictors.py",  # CI: ../shared beside the clone
    _REPO / "shared" / "eval" / "classical_predictors.py",
)
_I = {n: i for i, n in enumerate(BASE_FEATURES)}


class ReferenceNotFound(ForecastError, FileNotFoundError):
    """The reference module of the classical predictors is not where it was looked for."""


class ReferenceFailed(ForecastError, RuntimeError):
    """The reference module could not evaluate the log."""


def find_reference(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        cands: tuple[Path, ...] = (Path(path),)
    elif os.environ.get(REFERENCE_ENV):
        cands = (Path(os.environ[REFERENCE_ENV]),)
    else:
        cands = REFERENCE_CANDIDATES
    for c in cands:
        if c.is_file():
            return c
    raise ReferenceNotFound(
        "reference classical_predictors.py not found (looked at "
        + ", ".join(str(c) for c in cands)
        + f"); pass --reference PATH or set {REFERENCE_ENV}"
    )


def load_reference(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("classical_predictors_reference", path)
    if spec is None or spec.loader is None:
        raise ReferenceNotFound(f"{path}: not a Python module")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_figures(ref: ModuleType, log_path: str) -> dict[str, Any]:
    try:
        n, mean_w, rase = ref.evaluate(ref.load(log_path))
    except Exception as exc:  # the reference is not ours: whatever it raises, one message
        raise ReferenceFailed(f"{log_path}: the reference classical_predictors.py failed: {exc!r}") from None
    return {"n": n, "mean_wait_s": mean_w, "rase": dict(sorted(rase.items(), key=lambda kv: kv[1]))}


def classical_from_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """The classical predictors of the reference, from the forecast's features."""
    servers, mst = x[:, _I["servers_q"]], x[:, _I["mean_st_q"]]
    return {
        "QL/all": (x[:, _I["n_all"]] + 1) * mst / servers,
        "QL/type": (x[:, _I["n_type"]] + 1) * mst / servers,
        "ZMS/all": (x[:, _I["n_all"]] + 1) * x[:, _I["mean_st_q_days"]] / servers,
        "LES/all": x[:, _I["les_all"]],
        "LES/type": x[:, _I["les_type"]],
        "HOL/all": x[:, _I["hol_all"]],
        "HOL/type": x[:, _I["hol_type"]],
        "MEAN1h/all": x[:, _I["mean1h_all"]],
    }


def rase(pred: np.ndarray, actual: np.ndarray) -> float:
    return float(math.sqrt(np.mean((pred - actual) ** 2)) / np.mean(actual)) if len(actual) else float("nan")


def walk_forward(
    rows: list[Row],
    services: tuple[str, ...],
    score: Callable[[Row], bool],
    params: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Predict the scored rows of each day with a model trained on the earlier days only."""
    days = sorted({r.day for r in rows})
    by_day: dict[str, list[Row]] = {d: [] for d in days}
    for r in rows:
        by_day[r.day].append(r)
    fallback = Fallback()
    model: Model | None = None
    out: dict[str, list[Any]] = {k: [] for k in ("row", "point", "lo", "hi", "fallback", "day")}
    past: list[Row] = []
    train_s: list[float] = []
    for i, d in enumerate(days):
        if past:
            t0 = time.perf_counter()
            model = train(past, services, previous=model, params=params) or model
            train_s.append(time.perf_counter() - t0)
        todo = [r for r in by_day[d] if score(r)]
        if todo:
            x = np.array([r.features for r in todo], dtype=np.float64)
            if model is not None:
                p, lo, hi = model.predict_many(x)
            else:
                p, lo, hi = (np.array(v) for v in zip(*(fallback.predict(v) for v in x), strict=True))
            out["row"] += todo
            out["point"] += list(p)
            out["lo"] += list(lo)
            out["hi"] += list(hi)
            out["fallback"] += [model is None] * len(todo)
            out["day"] += [d] * len(todo)
        past += by_day[d]
        if progress:
            progress(i + 1, len(days))
    out["train_s"] = train_s
    out["last_model"] = model
    return out


def figures(res: dict[str, Any], services: tuple[str, ...]) -> dict[str, Any]:
    rows: list[Row] = res["row"]
    y = np.array([r.wait for r in rows], dtype=np.float64)
    x = np.array([r.features for r in rows], dtype=np.float64)
    p, lo, hi = (np.asarray(res[k], dtype=np.float64) for k in ("point", "lo", "hi"))
    fb = np.asarray(res["fallback"], bool)
    fb_point = np.array([Fallback().predict(v)[0] for v in x]) if len(x) else np.zeros(0)
    classical = classical_from_features(x) if len(x) else {}
    svc = np.array([r.service for r in rows])

    def block(m: np.ndarray) -> dict[str, Any]:
        inside = (y[m] >= lo[m]) & (y[m] <= hi[m])
        cl = {k: rase(v[m], y[m]) for k, v in classical.items()}
        best = min(cl, key=cl.get) if cl else None
        return {
            "n": int(m.sum()),
            "mean_wait_s": float(y[m].mean()) if m.any() else float("nan"),
            "rase": rase(p[m], y[m]),
            "rase_fallback_only": rase(fb_point[m], y[m]),
            "coverage_80": float(inside.mean()) if m.any() else float("nan"),
            "below_lo": float((y[m] < lo[m]).mean()) if m.any() else float("nan"),
            "above_hi": float((y[m] > hi[m]).mean()) if m.any() else float("nan"),
            "median_width_s": float(np.median(hi[m] - lo[m])) if m.any() else float("nan"),
            "classical_rase": dict(sorted(cl.items(), key=lambda kv: kv[1])),
            "best_classical": best,
        }

    every = np.ones(len(y), bool)
    days = sorted(set(res["day"]))
    dd = np.array(res["day"])
    return {
        "overall": block(every),
        "with_model": block(~fb),
        "per_type": {s: block(svc == s) for s in services if (svc == s).any()},
        "per_day": {
            d: {
                "n": int((dd == d).sum()),
                "rase": rase(p[dd == d], y[dd == d]),
                "rase_mean1h": rase(classical["MEAN1h/all"][dd == d], y[dd == d]),
                "coverage_80": float(((y >= lo) & (y <= hi))[dd == d].mean()),
                "fallback": bool(fb[dd == d].all()),
            }
            for d in days
        },
        "fallback_share": float(fb.mean()) if len(fb) else 0.0,
    }


def evaluate_log(
    path: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The full report of ``waitroom predict-eval`` for an anonymous-bank log."""
    t0 = time.perf_counter()
    data = bank.load(path)  # a bad file fails here, with one message, before the reference reads it
    ref_path = find_reference(reference)
    ref = reference_figures(load_reference(ref_path), str(path))
    rows = list(replay(data.events, data.types))
    served = {c.ticket for c in data.calls if c.served}
    res = walk_forward(
        rows, data.types, lambda r: r.ticket in served and r.wait is not None, params, progress
    )
    fig = figures(res, data.types)
    n = fig["overall"]["n"]
    if n != ref["n"]:
        log.warning("population differs from the reference: %d vs %d calls", n, ref["n"])
    best = min(ref["rase"], key=ref["rase"].get)
    train_s = res["train_s"]
    return {
        "log": str(path),
        "reference": str(ref_path),
        "protocol": "walk-forward: day d predicted by a model trained on days < d; day 1 by the fallback",
        "days": len({r.day for r in rows}),
        "population": {"n": n, "mean_wait_s": fig["overall"]["mean_wait_s"], "reference_n": ref["n"]},
        "classical_reference": ref["rase"],
        "best_classical": {"name": best, "rase": ref["rase"][best]},
        "waitroom": fig["overall"],
        "ratio_to_best_classical": fig["overall"]["rase"] / ref["rase"][best],
        "with_model": fig["with_model"],
        "per_type": fig["per_type"],
        "per_day": fig["per_day"],
        "fallback_share": fig["fallback_share"],
        "training_s": {
            "count": len(train_s),
            "median": float(np.median(train_s)) if train_s else 0.0,
            "max": float(max(train_s)) if train_s else 0.0,
        },
        "elapsed_s": time.perf_counter() - t0,
    }
