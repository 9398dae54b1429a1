"""The city parts of the broker set-up with real mosquittos and the generated files on both sides: an office
broker with its ACL and passwords, bridged to a city broker written by `waitroom city broker-files`. The
recommendations come down and stay retained, each account keeps to its topics, a cut link shows at once."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_broker import office as gen
from mqtt_broker.local import Mosquitto, free_port
from tests.conftest import require_tool
from tests.test_broker_acl import (
    NOT_AUTHORIZED,
    Client,
    give_to_mosquitto,
    readable_tmpdir,
    start_office_broker,
)
from waitroom.city import config as city_config
from waitroom.city.broker import write_city_broker
from waitroom.contract import CONTROLLER_NODE_ID, Topics
from waitroom.mqtt import stop_loop

PASSWORDS = {
    "office-cbr": "bridge-pw",
    "office-other": "other-pw",
    "city-service": "svc-pw",
    "city-page": "pg",
}

pytestmark = [pytest.mark.slow]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_recommendations_come_down_retained_and_accounts_keep_to_their_topics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-cbr-")
    city_dir = readable_tmpdir("waitroom-cbr-city-")
    city_port = free_port()
    cfg_file = tmp_path / "city.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "city": {"name": "Teststadt"},
                "offices": [{"id": "cbr", "name": "Bürgerbüro A"}, {"id": "other", "name": "Bürgerbüro B"}],
            }
        )
    )
    pw_file = tmp_path / "pw.yaml"
    pw_file.write_text(yaml.safe_dump(PASSWORDS))
    from waitroom.cli import main

    out = city_dir / "broker"
    args = ["city", "broker-files", "--config", str(cfg_file), "--out", str(out), "--passwords", str(pw_file)]
    assert main([*args, "--port", str(city_port), "--no-tls"]) == 0
    # a missing password is one clear error, and so is a file that is no mapping (it was a traceback)
    pw_file.write_text(yaml.safe_dump({"office-cbr": "x"}))
    assert main([*args, "--port", str(city_port), "--no-tls"]) == 1
    for not_a_mapping in ("- office-cbr\n- other\n", "$ANSIBLE_VAULT;1.1;AES256\n3961\n"):
        pw_file.write_text(not_a_mapping)
        assert main([*args, "--port", str(city_port), "--no-tls"]) == 1
        assert "must be a mapping account -> password" in capsys.readouterr().err
    pw_file.write_text(yaml.safe_dump(PASSWORDS))
    give_to_mosquitto(out / "data")
    city = Mosquitto(port=city_port, config=out / "mosquitto.conf", workdir=out).start()

    bridge_dir = folder / "bridge.d"
    bridge_dir.mkdir()
    office = start_office_broker(folder, office_id="cbr", include_dir=str(bridge_dir))
    office.broker.stop()
    gen.write_file(
        bridge_dir / "city.conf",
        gen.bridge_conf(
            office.cfg,
            gen.BridgeOptions(
                host="127.0.0.1",
                port=city_port,
                cafile=None,
                password=PASSWORDS["office-cbr"],
                restart_timeout=(1, 2),
            ),
        ),
        0o644,
    )
    office.broker.start()
    t = Topics("cbr")
    clients: list[Client] = []
    try:
        svc = Client("city-service", PASSWORDS["city-service"], city_port)
        clients.append(svc)
        assert svc.connect() == 0
        svc.subscribe(["waitroom/v1/+/bridge", "waitroom/v1/+/public"])
        assert wait_until(lambda: t.bridge() in svc.received, 15), "the bridge announces its link"

        # The city service's recommendation comes down to the office and stays retained there.
        display = Client("display-1", office.passwords["display-1"], office.local_port)
        clients.append(display)
        assert display.connect() == 0
        display.subscribe([t.recommendations()])
        codes = svc.publish_all([t.recommend("pass")])
        assert set(codes.values()) <= {0, 16}
        svc.c.publish(t.recommend("melde"), b'{"v":1}', qos=1, retain=True).wait_for_publish(5)
        assert wait_until(lambda: t.recommend("melde") in display.received), "advice reaches the office nodes"
        late = Client("disp-1", office.passwords["disp-1"], office.local_port)
        clients.append(late)
        assert late.connect() == 0
        late.subscribe([t.recommendations()])
        assert wait_until(lambda: t.recommend("melde") in late.received), "retained for late subscribers"

        # Accounts keep to their topics (a fresh client per probe: PUBACKs are counted per client).
        def probe(user: str, topics: list[str]) -> set[int]:
            c = Client(user, PASSWORDS[user], city_port)
            clients.append(c)
            assert c.connect() == 0
            return set(c.publish_all(topics).values())

        assert probe("city-service", [t.public(), t.state(), t.cmd("controller")]) == {NOT_AUTHORIZED}
        foreign = [t.public(), t.bridge(), t.recommend("pass"), t.status(CONTROLLER_NODE_ID)]
        assert probe("office-other", foreign) == {NOT_AUTHORIZED}
        own = Topics("other")
        ok = {0, 16}  # success, success without subscribers
        assert probe("office-other", [own.public(), own.bridge(), own.status(CONTROLLER_NODE_ID)]) <= ok
        assert probe("office-other", [own.recommend("pass")]) == {NOT_AUTHORIZED}
        assert probe("city-page", [t.recommend("pass"), t.public()]) == {NOT_AUTHORIZED}

        # The office broker dies: the bridge's will tells the city at once. (The probe's city-service login
        # above replaced svc's session: the client id is the user name, so svc logs in again.)
        svc = Client("city-service", PASSWORDS["city-service"], city_port)
        clients.append(svc)
        assert svc.connect() == 0
        svc.subscribe(["waitroom/v1/+/bridge"])
        assert wait_until(lambda: t.bridge() in svc.received, 5), "the link state is retained"
        svc.received.clear()
        office.broker.proc.send_signal(signal.SIGKILL)
        office.broker.proc.wait(5)
        assert wait_until(lambda: t.bridge() in svc.received, 5), "a cut link shows at the city"
    finally:
        for c in clients:
            c.close()
        office.broker.stop()
        city.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(city_dir, ignore_errors=True)


def test_no_city_login_can_take_over_another_accounts_session(tmp_path: Path) -> None:
    """The city broker had no client id binding: the read-only city-page account (or any office's bridge
    account) connecting with the city service's or another office bridge's client id disconnected it, as
    often as it liked. The client id is now the user name: each login replaces only its own session."""
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    city_dir = readable_tmpdir("waitroom-cbr-cid-")
    port = free_port()
    cfg = city_config.parse(
        {"city": {"name": "T"}, "offices": [{"id": "cbr", "name": "A"}, {"id": "other", "name": "B"}]}
    )
    write_city_broker(cfg, city_dir, PASSWORDS, port=port, tls=False)
    give_to_mosquitto(city_dir / "data")
    city = Mosquitto(port=port, config=city_dir / "mosquitto.conf", workdir=city_dir).start()
    clients: list[paho.Client] = []
    drops: dict[str, list[str]] = {}

    def login(user: str, client_id: str) -> None:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        c.username_pw_set(user, PASSWORDS[user])
        c.reconnect_delay_set(60, 60)  # a dropped victim stays dropped for the test
        c.on_disconnect = lambda *a, user=user: drops.setdefault(user, []).append(str(a[3]))
        clients.append(c)
        c.connect("127.0.0.1", port)
        c.loop_start()

    try:
        login("city-service", "waitroom-city-service")
        login("office-cbr", "waitroom-bridge-cbr")
        time.sleep(0.5)
        for attacker, victim_id in (
            ("city-page", "waitroom-city-service"),
            ("city-page", "waitroom-bridge-cbr"),
            ("office-other", "waitroom-bridge-cbr"),
        ):
            login(attacker, victim_id)
            time.sleep(0.5)
        time.sleep(0.5)
        assert clients[0].is_connected() and clients[1].is_connected(), drops
        assert "city-service" not in drops and "office-cbr" not in drops, drops
    finally:
        for c in clients:
            c.disconnect()
            stop_loop(c)
        city.stop()
        shutil.rmtree(city_dir, ignore_errors=True)
