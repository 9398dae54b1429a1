"""The forecast model: exported trees equal scikit-learn's, the interval is calibrated, model files are
versioned and checked, the fallback answers before there is history, training runs in the background."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from waitroom.forecast.errors import ModelFileError
from waitroom.forecast.events import Row
from waitroom.forecast.features import BASE_FEATURES, feature_names
from waitroom.forecast.jobs import ModelStore, Trainer
from waitroom.forecast.model import EXP_HI, EXP_LO, Fallback, Interval, Model, Trees
from waitroom.forecast.train import train

IDX = {n: i for i, n in enumerate(BASE_FEATURES)}
SERVICES = ("a", "b")


def synthetic_rows(n: int, days: int, seed: int = 0) -> list[Row]:
    """Waits exponential around a mean that grows with the queue: a learnable relation with honest noise."""
    rng = random.Random(seed)
    names = feature_names(SERVICES)
    rows = []
    for i in range(n):
        x = [rng.random() * 10 for _ in names]
        mean = 20 + 15 * x[IDX["n_ahead_all"]]
        rows.append(Row(f"d{i * days // n:02d}", float(i), str(i), "a", 1, x, rng.expovariate(1 / mean)))
    return rows


def test_exported_trees_predict_exactly_like_scikit_learn():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 5))
    y = 3 * x[:, 0] - 2 * (x[:, 1] > 0.3) + rng.normal(size=600)
    est = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=9, random_state=0).fit(x, y)
    trees = Trees.from_sklearn(est)
    xt = rng.normal(size=(200, 5)) * 2
    np.testing.assert_allclose(trees.predict_many(xt), est.predict(xt), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose([trees.predict(v) for v in xt[:20]], est.predict(xt[:20]), rtol=1e-9)
    again = Trees.from_json(json.loads(json.dumps(trees.to_json())))
    np.testing.assert_allclose(again.predict_many(xt), est.predict(xt), rtol=1e-9)


def test_interval_calibration_covers_eighty_percent_out_of_sample():
    rng = np.random.default_rng(5)
    pred = rng.uniform(10, 300, 4000)
    actual = rng.exponential(pred)
    iv = Interval.calibrate(pred[:2000], actual[:2000])
    lo, hi = np.array([iv.apply(p) for p in pred[2000:]]).T
    cover = np.mean((actual[2000:] >= lo) & (actual[2000:] <= hi))
    assert 0.77 <= cover <= 0.83
    # exponential waits: the bounds are about 0.105 and 2.3 times the point
    assert abs(np.median(iv.lo) - EXP_LO) < 0.05 and abs(np.median(iv.hi) - EXP_HI) < 0.3


def test_train_learns_and_saves_a_versioned_model(tmp_path):
    rows = synthetic_rows(3000, days=5)
    model = train(rows[:2400], SERVICES, params={"max_iter": 60})
    assert model is not None and model.meta["days"] == ["d00", "d01", "d02", "d03"]
    x = np.array([r.features for r in rows[2400:]])
    y = np.array([r.wait for r in rows[2400:]])
    p, lo, hi = model.predict_many(x)
    truth = 20 + 15 * x[:, IDX["n_ahead_all"]]
    assert np.corrcoef(p, truth)[0, 1] > 0.85  # the waits are exponential around the truth: noisy labels
    assert 0.7 <= np.mean((y >= lo) & (y <= hi)) <= 0.9
    one = model.predict(x[0])
    assert one[1] <= one[0] <= one[2] and math.isclose(one[0], p[0], rel_tol=1e-9)

    store = ModelStore(tmp_path / "forecast", keep=2)
    assert store.current() is None
    first = store.save(model)
    # the next night: the previous model's forecasts of the new day calibrate the interval
    nxt = train(rows, SERVICES, previous=store.current(), params={"max_iter": 60})
    assert {d for _, _, d in nxt.calibration} >= {"d04"}
    second = store.save(nxt)
    third = store.save(nxt)
    assert (tmp_path / "forecast" / "current").read_text().strip() == third.name
    assert not first.exists() and second.exists()  # only the newest two are kept
    loaded = store.current()
    assert loaded.predict(x[0]) == nxt.predict(x[0])


def test_too_little_history_keeps_the_fallback():
    assert train(synthetic_rows(150, days=1), SERVICES) is None
    unlabelled = [Row("d", 0.0, str(i), "a", 1, [0.0] * len(feature_names(SERVICES))) for i in range(500)]
    assert train(unlabelled, SERVICES) is None
    x = [0.0] * len(BASE_FEATURES)
    x[IDX["mean1h_all"]] = 120.0
    assert Fallback().predict(x) == (120.0, pytest.approx(EXP_LO * 120), pytest.approx(EXP_HI * 120))
    x[IDX["mean1h_all"]], x[IDX["ql_iw"]] = 0.0, 300.0  # nobody called in the last hour: queue length
    assert Fallback().predict(x)[0] == 300.0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\xff\xfe", "unreadable model file"),
        (b"{}", "not a waitroom forecast model"),
        (b'{"format": "waitroom-forecast", "version": 99, "features_version": 1}', "train a new model"),
        (b'{"format": "waitroom-forecast", "version": 1, "features_version": 1}', "damaged model file"),
    ],
)
def test_bad_model_files_get_one_clear_error(tmp_path, content, message):
    p = tmp_path / "m.json"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        Model.load(p)
    # the store logs it and hands out no model: the fallback takes over
    (tmp_path / "current").write_text("m.json\n")
    assert ModelStore(tmp_path).current() is None


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        Model.load(tmp_path / "nope.json")


def test_trainer_trains_in_the_background_and_hands_over_the_model(tmp_path):
    got = []
    trainer = Trainer(
        lambda: synthetic_rows(1200, days=3), SERVICES, ModelStore(tmp_path), got.append, {"max_iter": 20}
    )
    th = trainer.train_in_background()
    th.join(timeout=120)
    assert len(got) == 1 and isinstance(got[0], Model)
    assert ModelStore(tmp_path).current().meta["rows"] == 1200
    # a training that fails keeps the old model and does not raise in the thread
    broken = Trainer(lambda: 1 / 0, SERVICES, ModelStore(tmp_path), got.append)
    broken.train_in_background().join(timeout=30)
    assert len(got) == 1 and ModelStore(tmp_path).current() is not None
    time.sleep(0)


def test_nightly_trainer_trains_once_a_day(tmp_path):
    got = []
    trainer = Trainer(
        lambda: synthetic_rows(600, days=2), SERVICES, ModelStore(tmp_path), got.append, {"max_iter": 10}
    )
    trainer.run_nightly(hour=0, poll_s=0.01)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # further polls the same day do not train again
    trainer.stop()
    assert len(got) == 1


def test_first_training_after_a_quiet_first_day_calibrates_on_a_comparable_model():
    """A log that starts with a weekend or a holiday (a few dozen tickets with shorter waits) and then a full
    day: holding out the whole last day left the interval calibrated on a model of the quiet day only, and
    80 % intervals covered about 74 % of the next day. Now the last 30 % of the tickets are held out."""
    names = feature_names(SERVICES)

    def day(name: str, n: int, scale: float, seed: int) -> list[Row]:
        rng = random.Random(seed)
        out = []
        for i in range(n):
            x = [rng.random() * 10 for _ in names]
            mean = scale * (20 + 15 * x[IDX["n_ahead_all"]])
            out.append(Row(name, float(i), f"{name}-{i}", "a", 1, x, rng.expovariate(1 / mean)))
        return out

    covers = []
    for seed in range(3):
        model = train(day("d0", 60, 0.3, seed) + day("d1", 1200, 1.0, seed + 10), SERVICES)
        assert model is not None and len(model.calibration) == 1260 - int(0.7 * 1260)
        nxt = day("d2", 2000, 1.0, seed + 20)
        y = np.array([r.wait for r in nxt])
        _, lo, hi = model.predict_many(np.array([r.features for r in nxt]))
        covers.append(np.mean((y >= lo) & (y <= hi)))
    assert 0.77 <= np.mean(covers) <= 0.86, covers


def test_the_nightly_training_reads_the_log_while_the_engine_writes(controller, node) -> None:
    """The controller's nightly training reads the office's log on a connection of its own. It opened the
    log as a writer (creating tables, stamping the log's identity): behind a write of the engine it waited
    for the lock, and failed with "database is locked" after 5 s. Now it only reads."""
    node("disp-1").request("ticket.issue", {"service": "pass"})
    db = controller.office.store.db
    with controller.lock:
        db.execute("BEGIN IMMEDIATE")  # the engine is in the middle of a write
        try:
            rows = controller.trainer.rows()  # a writer's connection raised "database is locked" here
        finally:
            db.execute("ROLLBACK")
    assert isinstance(rows, list)


@pytest.mark.parametrize("pointer", [b"\xff\xfe\n", b"m\x00.json\n", b"deep.json\n"])
def test_a_damaged_current_pointer_falls_back_with_one_log_line_and_training_repairs_it(
    tmp_path, caplog, pointer
):
    """``current`` not UTF-8 or with a NUL byte raised UnicodeDecodeError/ValueError out of
    ``ModelStore.current()`` (a traceback from ``waitroom forecast-train``), and the nightly training, which
    reads the current model first, failed every night: the office never got a model again. A model file
    nested too deeply raised RecursionError the same way."""
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "current").write_bytes(pointer)
    with caplog.at_level("WARNING", logger="waitroom.forecast.train"):
        assert ModelStore(tmp_path).current() is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "using the fallback until the next training" in warnings[0].message
    got = []
    trainer = Trainer(
        lambda: synthetic_rows(1200, days=3), SERVICES, ModelStore(tmp_path), got.append, {"max_iter": 5}
    )
    assert trainer.train_now() is not None and len(got) == 1
    assert ModelStore(tmp_path).current().meta["rows"] == 1200
