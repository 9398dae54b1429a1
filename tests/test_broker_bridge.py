"""The bridge to the city broker with two real mosquittos: only the public waiting times go up, the office
keeps working while the city broker is down, and the city ACL keeps each office to its own topic."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mqtt_broker import office as gen
from mqtt_broker.local import Mosquitto, free_port
from tests.conftest import require_tool
from tests.test_broker_acl import NOT_AUTHORIZED, Client, readable_tmpdir, start_office_broker
from waitroom.contract import CONTROLLER_NODE_ID, Topics


def start_city(folder: Path, port: int, offices: list[str], passwords: dict[str, str]) -> Mosquitto:
    (folder / "acl").write_text(gen.city_acl_text(offices) + "\nuser city-admin\ntopic read #\n")
    (folder / "passwd").write_text("".join(f"{u}:{gen.hash_password(p)}\n" for u, p in passwords.items()))
    for name in ("acl", "passwd"):
        (folder / name).chmod(0o644)
    conf = folder / "city.conf"
    conf.write_text(
        f"per_listener_settings false\nallow_anonymous false\npassword_file {folder}/passwd\n"
        f"acl_file {folder}/acl\npersistence false\nlistener {port} 127.0.0.1\nlog_dest stderr\n"
    )
    conf.chmod(0o644)
    return Mosquitto(port=port, config=conf, workdir=folder).start()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_bridge_carries_only_public_waits_and_survives_a_city_outage() -> None:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-bridge-")
    city_dir = readable_tmpdir("waitroom-city-")
    city_port = free_port()
    bridge_dir = folder / "bridge.d"
    bridge_dir.mkdir()
    office = start_office_broker(folder, office_id="brg", include_dir=str(bridge_dir))
    office.broker.stop()
    t = Topics("brg")
    bridge_pw = "bridge-secret"
    gen.write_file(
        bridge_dir / "city.conf",
        gen.bridge_conf(
            office.cfg,
            gen.BridgeOptions(
                host="127.0.0.1", port=city_port, cafile=None, password=bridge_pw, restart_timeout=(1, 2)
            ),
        ),
        0o644,
    )
    office.broker.start()
    city = None
    clients: list[Client] = []
    try:
        # City down: the office works on its own.
        ctl = Client(CONTROLLER_NODE_ID, office.passwords[CONTROLLER_NODE_ID], office.local_port)
        disp = Client("display-1", office.passwords["display-1"], office.local_port)
        clients += [ctl, disp]
        assert ctl.connect() == 0 and disp.connect() == 0
        disp.subscribe([t.public()])
        ctl.c.publish(t.public(), b'{"waits":{"pass":12}}', qos=1, retain=True)
        assert wait_until(lambda: t.public() in disp.received, 5), "the office must work without the city"

        # City up: the bridge connects and forwards the retained public waits, nothing else.
        city = start_city(
            city_dir,
            city_port,
            ["brg", "other"],
            {"office-brg": bridge_pw, "city-admin": "admin", "city-page": "page"},
        )
        watcher = Client("city-admin", "admin", city_port)
        page = Client("city-page", "page", city_port)
        clients += [watcher, page]
        assert watcher.connect() == 0 and page.connect() == 0
        watcher.subscribe(["waitroom/#"])
        assert wait_until(lambda: t.public() in watcher.received, 15), "public waits must reach the city"
        ctl.publish_all([t.state(), t.event("call"), t.reply("counter-1"), t.public()])
        assert wait_until(lambda: watcher.received.count(t.public()) >= 2, 5)
        time.sleep(0.3)
        allowed = {t.public(), t.bridge(), t.status(CONTROLLER_NODE_ID)}  # waits, link state (city view)
        assert set(watcher.received) <= allowed, f"only public waits may leave: {watcher.received}"
        page.subscribe(["waitroom/v1/+/public"])
        assert wait_until(lambda: t.public() in page.received, 5), "the city page reads retained waits"

        # City ACL: an office's bridge account writes only its own public topic.
        impostor = Client("office-brg", bridge_pw, city_port)
        clients.append(impostor)
        assert impostor.connect() == 0
        codes = impostor.publish_all([Topics("other").public(), t.state()])
        assert set(codes.values()) == {NOT_AUTHORIZED}
    finally:
        for c in clients:
            c.close()
        office.broker.stop()
        if city:
            city.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(city_dir, ignore_errors=True)
