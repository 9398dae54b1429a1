"""The adapter from the controller's own event log (a real SQLite EventStore) to forecast rows, and the live
forecast that the controller feeds event by event."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.forecast_helpers import simulate_day
from waitroom.forecast.events import StoreEventAdapter, replay, rows_from_store_events
from waitroom.forecast.features import BASE_FEATURES
from waitroom.forecast.jobs import ModelStore, Trainer
from waitroom.forecast.live import LiveForecast
from waitroom.forecast.model import Fallback, Model
from waitroom.store import EventStore

TZ = ZoneInfo("Europe/Berlin")
IDX = {n: i for i, n in enumerate(BASE_FEATURES)}
SERVICES = ("melde", "pass")


def at(hhmm: str, day: int = 1) -> float:
    h, m = (int(x) for x in hhmm.split(":"))
    return dt.datetime(2026, 3, day + 1, h, m, tzinfo=TZ).timestamp()  # March 2026: Monday the 2nd


def one_day() -> list[dict]:
    ev = [
        ("day_started", "08:00", {"day": "2026-03-02"}),
        ("counter_opened", "08:00", {"counter": "c1"}),
        ("counter_opened", "08:00", {"counter": "c2"}),
        ("ticket_issued", "09:00", {"id": "t1", "number": "A001", "service": "melde", "priority": False}),
        ("ticket_issued", "09:01", {"id": "t2", "number": "B001", "service": "pass", "priority": True}),
        ("ticket_issued", "09:02", {"id": "t3", "number": "A002", "service": "melde", "priority": False}),
        ("ticket_called", "09:05", {"ticket": "t1", "counter": "c1"}),
        ("ticket_called", "09:06", {"ticket": "t2", "counter": "c2"}),
        ("ticket_served", "09:10", {"ticket": "t1", "counter": "c1"}),
        ("ticket_cancelled", "09:12", {"ticket": "t3", "reason": ""}),
        ("ticket_issued", "09:13", {"id": "t4", "number": "A003", "service": "melde", "priority": False}),
        ("counter_paused", "09:14", {"counter": "c2", "reason": "Pause"}),
        ("ticket_called", "09:20", {"ticket": "t4", "counter": "c1"}),
        ("ticket_no_show", "09:21", {"ticket": "t4", "counter": "c1"}),
        ("ticket_issued", "09:30", {"id": "t5", "number": "A004", "service": "melde", "priority": False}),
        ("ticket_called", "09:31", {"ticket": "t5", "counter": "c1"}),
        ("ticket_transferred", "09:35", {"ticket": "t5", "service": "pass", "counter": "c1"}),
        ("ticket_issued", "09:36", {"id": "t6", "number": "B002", "service": "pass", "priority": False}),
        ("ticket_called", "09:40", {"ticket": "t5", "counter": "c1"}),
        ("appointment_booked", "09:41", {"code": "X1", "service": "pass", "slot": at("10:00")}),
    ]
    return [{"seq": i + 1, "ts": at(hm), "type": kind, **data} for i, (kind, hm, data) in enumerate(ev)]


def test_rows_from_the_controllers_event_log(tmp_path):
    store = EventStore(tmp_path / "events.db")
    store.commit(one_day(), None)
    stored = list(store.events())
    store.close()
    rows = {r.ticket: r for r in rows_from_store_events(stored, SERVICES, TZ)}
    assert set(rows) == {"t1", "t2", "t3", "t4", "t5", "t6"}  # the transferred visit is no row of its own
    assert rows["t1"].wait == 300 and rows["t2"].wait == 300
    assert rows["t3"].wait is None  # cancelled while waiting
    assert rows["t4"].wait == 420  # a no-show was called: its wait is known
    assert rows["t5"].wait == 60 and rows["t6"].wait is None  # t6 still waiting at the end of the log
    assert rows["t2"].priority == 2 and rows["t1"].priority == 1
    assert rows["t1"].day == "2026-03-02" and rows["t1"].t == 9 * 3600
    f4 = rows["t4"].features
    assert f4[IDX["n_all"]] == 0 and f4[IDX["busy"]] == 1  # t2 at c2 until c2 pauses
    assert f4[IDX["les_all"]] == 300 and f4[IDX["mean_st"]] == 300 and f4[IDX["aband_30"]] > 0.9
    # t6 queues behind the transferred t5, and c2 (paused) no longer counts as working
    f6 = rows["t6"].features
    assert f6[IDX["n_type"]] == 1 and f6[IDX["servers"]] == 1 and f6[-2:] == [0.0, 1.0]


def test_live_forecast_sees_exactly_the_training_features():
    events = one_day()
    train_rows = {r.ticket: r for r in rows_from_store_events(events, SERVICES, TZ)}
    live = LiveForecast(SERVICES, TZ)
    issued = {e["id"]: e for e in events if e["type"] == "ticket_issued"}
    for e in events:
        if e["type"] == "ticket_issued":
            got = live.features(e["service"], e["priority"], now=e["ts"])
            assert got == train_rows[e["id"]].features
            assert live.predict(e["service"], e["priority"], now=e["ts"]) == Fallback().predict(got)
        live.observe(e)
    assert len(issued) == 6


def synthetic_store_events(days: int, seed: int = 2) -> list[dict]:
    """Controller events of simulated office days (the synthetic queue of tests/forecast_helpers)."""
    rng = random.Random(seed)
    out: list[dict] = []
    for d in range(days):
        base = dt.datetime(2026, 3, 2 + d, tzinfo=TZ).timestamp()
        for i, c in enumerate(simulate_day(rng, servers=4, rate_per_h=60)):
            if not c["queued"]:
                continue
            tid, svc = f"d{d}-{i}", "pass" if c["type"] == "NE" else "melde"
            out.append(
                {
                    "ts": base + c["t"],
                    "type": "ticket_issued",
                    "id": tid,
                    "service": svc,
                    "priority": c["prio"] == 2,
                }
            )
            if c["outcome"] == "AGENT":
                out.append(
                    {
                        "ts": base + c["start"],
                        "type": "ticket_called",
                        "ticket": tid,
                        "counter": f"c{c['server']}",
                    }
                )
                out.append(
                    {
                        "ts": base + c["start"] + c["service"],
                        "type": "ticket_served",
                        "ticket": tid,
                        "counter": f"c{c['server']}",
                    }
                )
            else:
                out.append({"ts": base + c["start"], "type": "ticket_cancelled", "ticket": tid})
    out.sort(key=lambda e: e["ts"])
    return [{**e, "seq": k + 1} for k, e in enumerate(out)]


@pytest.mark.slow
def test_nightly_training_from_the_event_log_serves_the_live_forecast(tmp_path):
    store = EventStore(tmp_path / "events.db")
    events = synthetic_store_events(days=4)
    store.commit(events, None)
    models = ModelStore(tmp_path / "forecast")
    live = LiveForecast(SERVICES, TZ, store=models)
    assert live.model.kind == "fallback"
    trainer = Trainer(
        lambda: rows_from_store_events(store.events(), SERVICES, TZ),
        SERVICES,
        models,
        live.set_model,
        {"max_iter": 30},
    )
    trainer.train_now()
    assert isinstance(live.model, Model) and live.model.meta["days"][-1] == "2026-03-05"
    # replay the last day into a fresh live forecast: its answers are the model's on the training features
    fresh = LiveForecast(SERVICES, TZ, store=models)
    rows = {r.ticket: r for r in rows_from_store_events(events, SERVICES, TZ)}
    checked = 0
    for e in events:
        if e["type"] == "ticket_issued" and e["id"].startswith("d3-"):
            p, lo, hi = fresh.predict(e["service"], e["priority"], now=e["ts"])
            assert (p, lo, hi) == fresh.model.predict(np.array(rows[e["id"]].features))
            assert 0 <= lo <= p <= hi
            checked += 1
        fresh.observe(e)
    assert checked > 100
    store.close()


def test_adapter_ignores_what_does_not_move_the_queue():
    a = StoreEventAdapter("Europe/Berlin")
    assert a.convert({"type": "assist_requested", "ts": at("09:00"), "id": "x", "terminal": "k1"}) == []
    assert a.convert({"type": "ticket_called", "ts": at("09:00"), "ticket": "unknown", "counter": "c1"}) == []
    assert a.convert({"type": "counter_opened", "ts": at("09:00"), "counter": "c1"}) == []
    # tickets do not carry over midnight
    a.convert({"type": "ticket_issued", "ts": at("17:00"), "id": "late", "service": "melde"})
    assert (
        a.convert({"type": "ticket_called", "ts": at("08:00", day=2), "ticket": "late", "counter": "c1"})
        == []
    )
    assert len(list(replay([], SERVICES))) == 0


@pytest.mark.slow
def test_forecast_train_command_trains_from_the_offices_event_log(tmp_path, capsys):
    from waitroom.cli import main

    assert main(["forecast-train", "--data-dir", str(tmp_path)]) == 1
    assert "no event log at" in capsys.readouterr().err
    store = EventStore(tmp_path / "mitte.db")  # the example office's database name
    store.commit(synthetic_store_events(days=1)[:100], None)
    assert main(["forecast-train", "--data-dir", str(tmp_path)]) == 0
    assert "too little history" in capsys.readouterr().out
    assert ModelStore(tmp_path / "forecast").current() is None
    store.commit([{**e, "seq": e["seq"] + 100} for e in synthetic_store_events(days=3, seed=9)], None)
    store.close()
    assert main(["forecast-train", "--data-dir", str(tmp_path)]) == 0
    assert "model trained on" in capsys.readouterr().out
    model = ModelStore(tmp_path / "forecast").current()
    assert model.services == ("pass", "melde", "fuehrerschein", "sonstiges") and model.meta["rows"] > 200


def test_minutes_range_for_the_ticket():
    from waitroom.forecast.live import minutes_range

    assert minutes_range(11 * 60, 19 * 60 + 1) == (10, 20)
    assert minutes_range(0, 30) == (0, 5)
    assert minutes_range(600, 600) == (10, 15)  # never an empty range
    assert minutes_range(-5, 0) == (0, 5)


def test_forecast_train_says_so_when_the_model_cannot_be_saved(tmp_path, capsys):
    """A file where the model folder belongs (or a read-only, full disk) was a FileExistsError traceback."""
    from waitroom.cli import main

    store = EventStore(tmp_path / "mitte.db")
    store.commit(synthetic_store_events(days=3, seed=9), None)
    store.close()
    (tmp_path / "forecast").write_text("not a folder")
    assert main(["forecast-train", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"waitroom forecast-train: cannot save the model in {tmp_path / 'forecast'}: File exists\n"
    assert (tmp_path / "forecast").read_text() == "not a folder"
