"""Forecast benchmark: the cost of one forecast on the controller's path, and of a night's training.

Trains the default model (200 trees) on a synthetic office log (tests/forecast_helpers: 10 days, 4 agents),
then times, in the same run:
  - ``QueueState`` updates per event (replaying the log) and one feature vector,
  - ``Model.predict`` on one vector (exported trees, numpy walk) against the raw baseline of scikit-learn's
    own ``predict`` on the same single row, and against the fallback,
  - one training (the nightly job).
Figures are min and median over repeats, in microseconds; the speed goal is a ratio to the baseline.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from tests.forecast_helpers import write_log
from waitroom.forecast import bank
from waitroom.forecast.events import apply, replay
from waitroom.forecast.features import QueueState
from waitroom.forecast.model import Fallback
from waitroom.forecast.train import PARAMS, train


def timed(fn, repeats: int = 7, number: int = 300) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number * 1e6)
    return min(runs), statistics.median(runs)


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory() as tmp:
        log = bank.load(write_log(Path(tmp) / "office.tsv", days=10, seed=11))
    rows = list(replay(log.events, log.types))
    t0 = time.perf_counter()
    model = train(rows, log.types)
    train_s = time.perf_counter() - t0
    lab = [r for r in rows if r.wait is not None]
    x = np.array([r.features for r in lab])
    y = np.array([r.wait for r in lab])
    with threadpool_limits(limits=1):
        est = HistGradientBoostingRegressor(loss="squared_error", **PARAMS).fit(x, y)
    print(f"training: {len(lab)} called tickets, {len(model.trees.roots)} trees, {train_s:.1f} s (2 fits)")

    day_events = [e for e in log.events if e.day == log.events[0].day]
    t_replay, _ = timed(lambda: list(replay(day_events, log.types)), repeats=3, number=3)
    per_event = t_replay / len(day_events)
    busy = QueueState(log.types)  # the state at 11:00 of a busy day, for the single-forecast timing
    busy.new_day(0)
    for e in day_events:
        if e.t <= 11 * 3600:
            apply(busy, e)
    f_min, f_med = timed(lambda: busy.features(11 * 3600, "PS", 1))
    vec = np.array(busy.features(11 * 3600, "PS", 1))
    m_min, m_med = timed(lambda: model.predict(vec))
    with threadpool_limits(limits=1):  # the library's own single-row predict, without thread start-up
        s_min, s_med = timed(lambda: est.predict(vec[None, :]), number=100)
    fb_min, fb_med = timed(lambda: Fallback().predict(vec))
    print(f"replay incl. one feature vector per arrival: {per_event:.1f} us per event")
    print(f"features (one ticket, {int(vec[3])} waiting): min {f_min:.1f} us, median {f_med:.1f} us")
    print(f"Model.predict: min {m_min:.1f} us, median {m_med:.1f} us")
    print(f"baseline scikit-learn predict, one row: min {s_min:.1f} us, median {s_med:.1f} us")
    print(f"fallback predict: min {fb_min:.2f} us, median {fb_med:.2f} us")
    print(
        f"ratio Model.predict / scikit-learn: min {m_min / s_min:.3f}, median {m_med / s_med:.3f}; "
        f"features + predict = {f_med + m_med:.0f} us per forecast (median)"
    )
    assert abs(model.trees.predict(vec) - float(est.predict(vec[None, :])[0])) < 1e-6


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import no_arguments

    no_arguments(__doc__)
    main()
