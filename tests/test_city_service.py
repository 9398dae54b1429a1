"""The city service on a real mosquitto with 1 and with 50 offices: every office appears, recommendations are
published retained and cleared, renewed before they lapse, and a restart of the city service overwrites what
an earlier run left behind."""

from __future__ import annotations

import logging
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import midday_zone
from waitroom.city import config as city_config
from waitroom.city.service import CityService
from waitroom.contract import Topics, decode, encode
from waitroom.mqtt import stop_loop

ALL_DAY = {d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

pytestmark = [pytest.mark.slow]


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


class Recorder:
    """A plain MQTT client keeping the last payload per topic."""

    def __init__(self, port: int, name: str):
        self.last: dict[str, bytes] = {}
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv311)
        self.c.on_message = lambda _c, _u, m: self.last.__setitem__(m.topic, m.payload)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        stop_loop(self.c)


def cfg_for(port: int, n: int, **steering: object) -> city_config.CityConfig:
    return city_config.parse(
        {
            "city": {"name": "Teststadt", "timezone": midday_zone(time.time())},  # about noon: any hour
            "broker": {"host": "127.0.0.1", "port": port},
            "offices": [{"id": f"s{i:02d}", "name": f"Büro {i}", "hours": ALL_DAY} for i in range(n)],
            "steering": {"threshold_min": 30, "min_gain_min": 10, "reach_min": 0, **steering},
        }
    )


def public(office: str, pass_eta: int) -> bytes:
    return encode(
        {
            "v": 1,
            "office": office,
            "ts": time.time(),
            "services": [
                {"id": "pass", "waiting": pass_eta // 3, "eta_min": pass_eta, "intake_open": True},
                {"id": "melde", "waiting": 1, "eta_min": 4, "intake_open": True},
            ],
        }
    )


@pytest.mark.parametrize("n", [1, 50])
def test_one_to_fifty_offices(fresh_broker, n: int) -> None:
    port = fresh_broker.port
    feed = Recorder(port, f"feed-{n}")
    watch = Recorder(port, f"watch-{n}")
    watch.c.subscribe("waitroom/v1/+/city/recommend/+", 1)
    svc = CityService(cfg_for(port, n))
    try:
        assert svc.start(wait=10)
        for i in range(n):
            office = f"s{i:02d}"
            feed.publish(Topics(office).bridge(), b"1")
            feed.publish(Topics(office).public(), public(office, 60 if i == 0 else 40 - (i % 30)))

        def all_live() -> dict | None:
            d = svc.view.document()
            return d if all(o["status"] == "live" for o in d["offices"]) else None

        doc = wait_until(all_live)
        assert len(doc["offices"]) == n
        ranking = svc.view.ranking("pass")["offices"]
        assert len(ranking) == n and ranking[-1]["office"] == "s00"
        etas = [r["eta_min"] for r in ranking]
        assert etas == sorted(etas)
        topic = Topics("s00").recommend("pass")
        rec = decode(wait_until(lambda: watch.last.get(topic)))
        if n == 1:
            assert rec["alternative"] is None  # nobody to send citizens to
        else:
            assert rec["alternative"]["office"] == ranking[0]["office"]
            assert rec["alternative"]["eta_min"] == ranking[0]["eta_min"] == 11
            # the office gets faster: the advice is cleared (retained null)
            feed.publish(Topics("s00").public(), public("s00", 12))
            wait_until(lambda: decode(watch.last[topic])["alternative"] is None)
            # and when the city service restarts, it republishes every pair (leftovers are overwritten)
            feed.publish(Topics("s00").public(), public("s00", 70))
            wait_until(lambda: decode(watch.last[topic])["alternative"] is not None)
            svc.stop()
            watch.last.clear()
            svc = CityService(cfg_for(port, n))
            assert svc.start(wait=10)
            wait_until(lambda: len(watch.last) >= 2 * n)  # every office x service, fresh from this run
            assert decode(watch.last[topic])["alternative"]["office"] == ranking[0]["office"]
        assert svc.alive()
    finally:
        svc.stop()
        feed.close()
        watch.close()


def test_active_advice_is_renewed_before_it_lapses(fresh_broker) -> None:
    port = fresh_broker.port
    feed = Recorder(port, "feed-r")
    svc = CityService(cfg_for(port, 2, valid_s=30))
    try:
        assert svc.start(wait=10)
        feed.publish(Topics("s00").public(), public("s00", 60))
        feed.publish(Topics("s01").public(), public("s01", 5))
        wait_until(lambda: (svc._published.get(("s00", "pass")) or (None,))[0] is not None)
        time.sleep(0.3)
        first = svc.published
        now = time.time()
        assert svc.publish_recommendations(now) == 0  # nothing changed
        assert svc.publish_recommendations(now + 16) == 1  # half of valid_s: the active one is renewed
        assert svc.published == first + 1
    finally:
        svc.stop()
        feed.close()


def test_an_idle_controller_republishes_its_public_waits(broker, tmp_path, monkeypatch) -> None:
    """The city tells a running but idle office from leftover retained statuses by its public waits arriving
    again and again (``view.SILENT_S``): the controller republishes them with a new ``ts`` at every forecast
    refresh (every 30 s; here every 0.3 s) although no command came and nothing in them changed."""
    from tests.conftest import office_config
    from waitroom.city.view import SILENT_S
    from waitroom.controller import Office
    from waitroom.service import ControllerService

    assert Office.FORECAST_REFRESH_S * 4 <= SILENT_S  # a few lost heartbeats are no silence
    monkeypatch.setattr(Office, "FORECAST_REFRESH_S", 0.3)
    cfg = office_config(broker.port, office_id="idle")
    stamps: list[float] = []
    rec = paho.Client(CallbackAPIVersion.VERSION2, client_id="idle-watch", protocol=paho.MQTTv311)
    rec.on_message = lambda _c, _u, m: stamps.append(decode(m.payload)["ts"]) if m.payload else None
    rec.connect("127.0.0.1", broker.port)
    rec.subscribe(Topics("idle").public(), qos=1)
    rec.loop_start()
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    try:
        assert svc.start(wait=10)
        wait_until(lambda: len(stamps) >= 5)
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert svc.office.state.tickets == {}  # nothing happened in the office
    finally:
        svc.stop()
        rec.disconnect()
        stop_loop(rec)


def test_the_city_service_s_own_account_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Every start of `waitroom city run` logged "MQTT user 'city-service' is not the node id 'service': the
    office broker's ACL and client ids need the node id", about the account the city broker is made with."""
    cfg = cfg_for(1883, 1)
    with caplog.at_level(logging.WARNING, logger="waitroom.mqtt"):
        CityService(cfg)
        CityService(
            cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"username": "city-service"})})
        )
    assert not [r for r in caplog.records if "is not the node id" in r.getMessage()]
