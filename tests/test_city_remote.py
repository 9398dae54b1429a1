"""Remote tickets, the city side, against the real controller over real bridged brokers (generated bridge with
remote tickets, generated city ACL): the request reaches the office's controller as node `city` (role city),
which answers `ticket.reserve` with a reservation and `ticket.reservation` with its state; every other case
gets its own clear answer."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest

from mqtt_broker import office as gen
from mqtt_broker.local import Mosquitto, free_port, render_local_config
from tests.conftest import ALL_DAY, midday_zone, office_config
from tests.test_broker_acl import give_to_mosquitto, readable_tmpdir
from waitroom.city import config as city_config
from waitroom.city.broker import write_city_broker
from waitroom.city.service import CityService
from waitroom.city.web import create_app
from waitroom.config import Node, RemoteTicketRules
from waitroom.service import ControllerService

TOKEN = "t0ken-for-the-115-backend-0123456789"
TOKEN2 = "t0ken-for-the-city-website-9876543210"
PASSWORDS = {"office-rem": "b-pw", "office-far": "f-pw", "city-service": "s-pw", "city-page": "p-pw"}

pytestmark = [pytest.mark.slow]


def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def setup(mosquitto_bin, tmp_path: Path):
    root = readable_tmpdir("waitroom-city-remote-")
    started: list = []
    try:
        city_port = free_port()
        tokens = tmp_path / "tokens"
        tokens.write_text(f"# 115 back end\n{TOKEN}\n# city website\n{TOKEN2}\n")
        ccfg = city_config.parse(
            {
                "city": {"name": "Teststadt", "timezone": midday_zone(time.time())},  # about noon: any hour
                "broker": {"host": "127.0.0.1", "port": city_port, "username": "city-service"},
                "offices": [
                    {"id": "rem", "name": "Büro R", "hours": ALL_DAY},
                    {"id": "far", "name": "Büro F"},
                ],
                "remote_tickets": {
                    "enabled": True,
                    "token_file": str(tokens),
                    "offices": ["rem"],
                    "timeout_s": 3,
                },
            }
        )
        write_city_broker(ccfg, root / "city", PASSWORDS, port=city_port, tls=False)
        give_to_mosquitto(root / "city" / "data")
        started.append(
            Mosquitto(port=city_port, config=root / "city" / "mosquitto.conf", workdir=root / "city").start()
        )
        port = free_port()
        cfg = office_config(port, office_id="rem")
        cfg = cfg.model_copy(
            update={
                "nodes": [*cfg.nodes, Node(id="city", role="city")],
                "remote_tickets": RemoteTicketRules(max_open_per_service=2),
            }
        )
        bridge = gen.bridge_conf(
            cfg,
            gen.BridgeOptions(
                host="127.0.0.1",
                port=city_port,
                cafile=None,
                password=PASSWORDS["office-rem"],
                restart_timeout=(1, 2),
                remote_tickets=True,
            ),
        )
        assert "topic waitroom/v1/rem/node/city/cmd in 1" in bridge
        (root / "rem").mkdir()
        (root / "rem").chmod(0o755)
        conf = render_local_config(port, root / "rem" / "mosquitto.conf", "\n" + bridge)
        office_broker = Mosquitto(port=port, config=conf, workdir=root / "rem").start()
        started.append(office_broker)
        ctl = ControllerService(cfg, str(tmp_path / "events.db"))
        assert ctl.start(wait=10)
        started.append(ctl)
        svc = CityService(ccfg, password=PASSWORDS["city-service"])
        assert svc.start(wait=10)
        started.append(svc)
        wait_until(lambda: svc.view.status(svc.view.offices["rem"], time.time())[0] == "live")
        yield create_app(ccfg, svc.view, service=svc).test_client(), ctl
    finally:
        for part in reversed(started):
            with contextlib.suppress(Exception):  # the test may have stopped the controller already
                part.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_reservation_reaches_the_controller_and_every_case_has_one_answer(setup) -> None:
    client, ctl = setup
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = "/api/v1/offices/rem/reservations"

    r = client.post(url, json={"service": "pass"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert (
        client.post(url, json={"service": "pass"}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )

    for body, code in [
        (None, "bad_request"),
        ({"service": "Pass!"}, "bad_request"),
        ({"service": "pass", "name": "x"}, "bad_request"),  # no personal data fields
        ({"service": "pass", "lang": "xx"}, "bad_request"),
    ]:
        r = client.post(url, json=body, headers=auth)
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, code), body
    assert (
        client.post(url, json={"service": "nosuch"}, headers=auth).get_json()["error"]["code"]
        == "unknown_service"
    )
    r = client.post("/api/v1/offices/far/reservations", json={"service": "pass"}, headers=auth)
    assert (r.status_code, r.get_json()["error"]["code"]) == (501, "not_supported")
    r = client.post("/api/v1/offices/nowhere/reservations", json={"service": "pass"}, headers=auth)
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "unknown_office")

    assert (
        client.post(url, json={"service": "pass", "priority": "yes"}, headers=auth).get_json()["error"][
            "code"
        ]
        == "bad_request"
    )

    # The real controller answers over the bridge with a reservation: a code, "be there by", the deadline.
    before = time.time()
    r = client.post(url, json={"service": "pass", "lang": "en", "request_id": "web-17"}, headers=auth)
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    doc = r.get_json()
    # a retry with the same request id (a lost answer) gets the same reservation, not a second one
    again = client.post(url, json={"service": "pass", "lang": "en", "request_id": "web-17"}, headers=auth)
    assert again.status_code == 201 and again.get_json() == doc
    other = client.post(url, json={"service": "melde", "request_id": "web-17"}, headers=auth)
    assert (other.status_code, other.get_json()["error"]["code"]) == (409, "duplicate")
    # another back end's request ids are its own
    theirs = client.post(
        url, json={"service": "pass", "request_id": "web-17"}, headers={"Authorization": f"Bearer {TOKEN2}"}
    )
    assert (
        theirs.status_code == 201 and theirs.get_json()["reservation"]["code"] != doc["reservation"]["code"]
    )
    bad = client.post(url, json={"service": "pass", "request_id": "no spaces"}, headers=auth)
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "bad_request")
    res = doc["reservation"]
    assert doc["v"] == 1 and doc["office"] == "rem"
    assert res["state"] == "reserved" and res["number"] is None and res["service"] == "pass"
    assert len(res["code"]) == 6 and set(res["code"]) <= set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    assert before - 60 <= res["reserved_at"] <= res["arrive_by"] < res["expires_at"]
    assert res["arrive_by"] >= before + 14 * 60  # at least lead_min (15) ahead, on a whole minute
    assert res["lang"] == "en" and "ticket" not in res

    # Its state, asked by code (case and dashes do not matter); unknown codes get one answer.
    status_url = f"/api/v1/offices/rem/reservations/{res['code'][:3]}-{res['code'][3:].lower()}"
    assert client.get(status_url).status_code == 401
    r = client.get(status_url, headers=auth)
    assert r.status_code == 200 and r.get_json()["reservation"]["state"] == "reserved"
    for code in ("ZZZZZZ", "not-a-code!"):
        r = client.get(f"/api/v1/offices/rem/reservations/{code}", headers=auth)
        assert (r.status_code, r.get_json()["error"]["code"]) == (404, "unknown_reservation"), code

    # The cap of open reservations per service (2 here, both taken) protects the walk-ins.
    r = client.post(url, json={"service": "pass"}, headers=auth)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "reservations_full")

    # The controller stops (it says offline; a crash would send its will): the city marks the office stale
    # and the API answers at once instead of waiting for a reply that cannot come.
    ctl.stop()
    wait_until(lambda: client.get("/api/v1/offices").get_json()["offices"][0]["controller"] == "offline")
    r = client.post(url, json={"service": "pass"}, headers=auth)
    assert (r.status_code, r.get_json()["error"]["code"]) == (503, "office_unreachable")
    assert "office rem is stale" in r.get_json()["error"]["message"]  # not sent: no wait for a timeout


def test_an_office_that_answers_garbage_gets_a_502_not_a_500(fresh_broker, tmp_path: Path) -> None:
    """The reply comes from the office: a result or an error that was no object (or an error without a code)
    made the city API answer 500. It is now 502 bad_reply naming the office, for each kind of garbage."""
    import json

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from waitroom.contract import Topics, encode
    from waitroom.mqtt import stop_loop

    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    ccfg = city_config.parse(
        {
            "city": {"name": "Teststadt", "timezone": midday_zone(time.time())},
            "broker": {"host": "127.0.0.1", "port": fresh_broker.port},
            "offices": [{"id": "rem", "name": "Büro R", "hours": ALL_DAY}],
            "remote_tickets": {
                "enabled": True,
                "token_file": str(tokens),
                "offices": ["rem"],
                "timeout_s": 3,
            },
        }
    )
    t = Topics("rem")
    garbage = [
        {"ok": True, "result": [1, 2]},
        {"ok": True, "result": "reserved"},
        {"ok": True, "result": {"reservation": "K7P2QM"}},
        {"ok": False, "error": "boom"},
        {"ok": False, "error": {"message": "no code"}},
        {"ok": "yes"},
    ]
    answers = iter(garbage)
    office = paho.Client(CallbackAPIVersion.VERSION2, client_id="hostile-rem", protocol=paho.MQTTv311)

    def answer(_c, _u, msg) -> None:  # the "controller" of office rem, answering every command with garbage
        request_id = json.loads(msg.payload)["id"]
        office.publish(t.reply("city"), encode({"id": request_id, **next(answers)}), qos=1)

    office.on_message = answer
    office.connect("127.0.0.1", fresh_broker.port)
    office.loop_start()
    svc = CityService(ccfg)
    try:
        office.subscribe(t.cmd("city"), qos=1)
        for topic, payload in (
            (t.public(), encode({"v": 1, "office": "rem", "ts": time.time(), "services": [{"id": "pass"}]})),
            (t.bridge(), b"1"),
            (t.status("controller"), encode({"node": "controller", "status": "online"})),
        ):
            office.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        assert svc.start(wait=10)
        wait_until(lambda: svc.view.status(svc.view.offices["rem"], time.time())[0] == "live")
        client = create_app(ccfg, svc.view, service=svc).test_client()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for reply in garbage:
            r = client.post("/api/v1/offices/rem/reservations", json={"service": "pass"}, headers=auth)
            assert (r.status_code, r.get_json()["error"]["code"]) == (502, "bad_reply"), reply
            assert (
                "office rem answered ticket.reserve with a malformed reply"
                in r.get_json()["error"]["message"]
            )
    finally:
        svc.stop()
        office.disconnect()
        stop_loop(office)


def test_only_the_office_asked_may_answer(fresh_broker, tmp_path: Path) -> None:
    """A reply was matched by its request id alone, whatever office's reply topic it came on. An office sees
    in its own commands the ids a back end makes (``city-<client>-<request_id>``), so its bridge, which may
    write its own reply topic, could answer another office's reservations with a code of its making. Now
    only the office asked is heard: here it stays silent, so the answer is 503, not the foreign code."""
    import json

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from waitroom.contract import Topics, encode
    from waitroom.mqtt import stop_loop

    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    ccfg = city_config.parse(
        {
            "city": {"name": "Teststadt", "timezone": midday_zone(time.time())},
            "broker": {"host": "127.0.0.1", "port": fresh_broker.port},
            "offices": [{"id": "rem", "name": "Büro R", "hours": ALL_DAY}, {"id": "far", "name": "Büro F"}],
            "remote_tickets": {"enabled": True, "token_file": str(tokens), "timeout_s": 1.5},
        }
    )
    rem, far = Topics("rem"), Topics("far")
    forged = {"ok": True, "result": {"reservation": {"code": "FORGED", "state": "reserved"}}}
    spy = paho.Client(CallbackAPIVersion.VERSION2, client_id="office-far-spy", protocol=paho.MQTTv311)
    answered: list[str] = []

    def answer(_c, _u, msg) -> None:  # office far answers rem's command on its own reply topic
        request_id = json.loads(msg.payload)["id"]
        answered.append(request_id)
        spy.publish(far.reply("city"), encode({"id": request_id, **forged}), qos=1)

    spy.on_message = answer
    spy.connect("127.0.0.1", fresh_broker.port)
    spy.loop_start()
    svc = CityService(ccfg)
    try:
        spy.subscribe(rem.cmd("city"), qos=1)
        for topic, payload in (
            (
                rem.public(),
                encode({"v": 1, "office": "rem", "ts": time.time(), "services": [{"id": "pass"}]}),
            ),
            (rem.bridge(), b"1"),
            (rem.status("controller"), encode({"node": "controller", "status": "online"})),
        ):
            spy.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        assert svc.start(wait=10)
        wait_until(lambda: svc.view.status(svc.view.offices["rem"], time.time())[0] == "live")
        client = create_app(ccfg, svc.view, service=svc).test_client()
        r = client.post(
            "/api/v1/offices/rem/reservations",
            json={"service": "pass", "request_id": "web-18"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answered and answered[0].endswith("-web-18"), "the forged answer was sent"
        assert (r.status_code, r.get_json()["error"]["code"]) == (503, "office_unreachable"), r.get_json()
    finally:
        svc.stop()
        spy.disconnect()
        stop_loop(spy)
