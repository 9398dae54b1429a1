"""The city view end to end: three offices, each with its own controller and mosquitto bridged (generated
bridge section) to a city mosquitto (generated config, ACL and passwords), and `waitroom city run` as its own
process. The page and the API show all three live, mark an office stale when its bridge is cut, recommend the
right office, and the recommendation reaches the busy office's public page and its printed ticket. A remote
ticket goes from the city website's API to a call at a counter: reserved at Ost over its bridge, checked in
with its code at Ost's dispenser (mock pins, real ESC/POS bytes), called at a counter, its state in the
API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

from mqtt_broker import office as gen
from mqtt_broker.local import Mosquitto, free_port, render_local_config, wait_for_port
from tests.conftest import ALL_DAY, midday_zone, office_config, require_tool
from tests.test_broker_acl import give_to_mosquitto, readable_tmpdir
from tests.test_e2e_web import CHROMIUM_ARGS
from waitroom.city import config as city_config
from waitroom.city.broker import write_city_broker
from waitroom.city.web import SCHEMAS
from waitroom.config import Node
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAMES = {"nord": "Bürgerbüro Nord", "sued": "Bürgerbüro Süd", "ost": "Bürgerbüro Ost"}
TICKETS = {"nord": 12, "sued": 0, "ost": 3}  # pass tickets drawn before the check
REMOTE = "ost"  # the office that takes remote tickets
TOKEN = "city-website-backend-token-0123456789"


def get(
    url: str, headers: dict[str, str] | None = None, body: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={**(headers or {}), "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_until(predicate, timeout: float = 15.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


class City:
    """The whole set-up; ``stop()`` ends everything it started."""

    def __init__(self, root: Path):
        self.root = root
        self.brokers: dict[str, Mosquitto] = {}
        self.controllers: dict[str, ControllerService] = {}
        self.runtimes: list[NodeRuntime] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.city_broker: Mosquitto | None = None

    def start(self) -> None:
        self.city_port = free_port()
        passwords = {gen.bridge_user(o): f"bridge-{o}-pw" for o in NAMES}
        passwords |= {gen.CITY_SERVICE_USER: "city-service-pw", "city-page": "page-pw"}
        tokens = self.root / "city-api.tokens"
        tokens.write_text(f"# the city website's back end\n{TOKEN}\n")
        self.city_cfg = city_config.parse(
            {
                "city": {"name": "Teststadt", "timezone": midday_zone(time.time())},  # about noon: any hour
                "broker": {"host": "127.0.0.1", "port": self.city_port, "username": "city-service"},
                "offices": [{"id": o, "name": n, "hours": ALL_DAY} for o, n in NAMES.items()],
                "services": [{"id": "pass", "name": {"de": "Personalausweis / Reisepass", "en": "ID card"}}],
                "steering": {"threshold_min": 20, "min_gain_min": 10, "reach_min": 0},
                "remote_tickets": {"enabled": True, "token_file": str(tokens), "offices": [REMOTE]},
            }
        )
        city_dir = self.root / "city"
        write_city_broker(self.city_cfg, city_dir, passwords, port=self.city_port, tls=False)
        give_to_mosquitto(city_dir / "data")
        self.city_broker = Mosquitto(
            port=self.city_port, config=city_dir / "mosquitto.conf", workdir=city_dir
        ).start()
        for office in NAMES:
            port = free_port()
            cfg = office_config(port, office_id=office)
            # no automatic Annahmeschluss: the test runs at any hour, also shortly before the office's 23:59
            steering = cfg.steering.model_copy(
                update={"intake_stop": cfg.steering.intake_stop.model_copy(update={"enabled": False})}
            )
            office_info = cfg.office.model_copy(update={"name": NAMES[office]})
            cfg = cfg.model_copy(update={"office": office_info, "steering": steering})
            if office == REMOTE:  # the city service sends ticket.reserve as this office's node "city"
                cfg = cfg.model_copy(update={"nodes": [*cfg.nodes, Node(id="city", role="city")]})
            folder = self.root / office
            folder.mkdir()
            folder.chmod(0o755)
            bridge = gen.bridge_conf(
                cfg,
                gen.BridgeOptions(
                    host="127.0.0.1",
                    port=self.city_port,
                    cafile=None,
                    password=passwords[gen.bridge_user(office)],
                    restart_timeout=(1, 2),
                    remote_tickets=office == REMOTE,
                ),
            )
            conf = render_local_config(port, folder / "mosquitto.conf", "\n" + bridge)
            self.brokers[office] = Mosquitto(port=port, config=conf, workdir=folder).start()
            svc = ControllerService(cfg, str(folder / "events.db"))
            assert svc.start(wait=10)
            self.controllers[office] = svc
        conf = self.root / "city.yaml"
        conf.write_text(yaml.safe_dump(self.city_cfg.model_dump(mode="json", exclude_none=True)))
        self.http_port = free_port()
        env = {**os.environ, "WAITROOM_MQTT_PASSWORD": "city-service-pw"}
        cmd = [sys.executable, "-m", "waitroom.cli", "city", "run", "--config", str(conf)]
        cmd += ["--bind", f"127.0.0.1:{self.http_port}", "--threads", "8"]
        self.log = open(self.root / "city-service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.http_port, timeout=30)
        self.url = f"http://127.0.0.1:{self.http_port}"
        wait_until(lambda: get(self.url + "/healthz")[0] == 200, 20)

    def runtime(self, office: str, node: str) -> NodeRuntime:
        rt = NodeRuntime(self.controllers[office].cfg, node)
        assert rt.start(wait=10)
        self.runtimes.append(rt)
        return rt

    def api(self, path: str) -> dict:
        status, _, body = get(self.url + path)
        assert status == 200, body
        return json.loads(body)

    def stop(self, artifacts: Path | None = None) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
            if artifacts:
                shutil.copy(self.root / "city-service.log", artifacts / "city-service.log")
        for rt in self.runtimes:
            rt.stop()
        for svc in self.controllers.values():
            svc.stop()
        for b in self.brokers.values():
            b.stop()
        if self.city_broker:
            self.city_broker.stop()


@pytest.fixture
def city(mosquitto_bin, artifacts, tmp_path, monkeypatch):
    monkeypatch.setenv("WAITROOM_DATA_DIR", str(tmp_path / "var"))
    c = City(readable_tmpdir("waitroom-city-e2e-"))
    try:
        c.start()
        yield c
    finally:
        c.stop(artifacts)
        shutil.rmtree(c.root, ignore_errors=True)


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def test_three_offices_live_stale_and_recommended(city, mock_pins, artifacts, tmp_path) -> None:
    from edge.dispenser import Dispenser
    from waitroom.web import create_app

    # The busy office's public web app (its own web node on its own broker).
    nord_cfg = city.controllers["nord"].cfg
    app = create_app(nord_cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    live = app.extensions["waitroom"]
    try:
        wait_until(lambda: live.state() is not None)
        issuers = {"nord": live.runtime, "ost": city.runtime("ost", "web")}
        for office, count in TICKETS.items():
            for _ in range(count):
                issuers[office].request("ticket.issue", {"service": "pass"})

        # All three live on the city page and in the API, with their waits.
        def all_live() -> dict | None:
            doc = city.api("/api/v1/offices")
            offices = {o["id"]: o for o in doc["offices"]}
            passes = {
                o: next((s for s in v["services"] if s["id"] == "pass"), {}) for o, v in offices.items()
            }
            ok = (
                all(v["status"] == "live" and v["link"] == "up" for v in offices.values())
                and {o: s.get("waiting") for o, s in passes.items()} == TICKETS
                # and each controller's first forecast is out (on a busy machine it may follow the tickets)
                and all(s.get("eta_min") is not None for s in passes.values())
            )
            return doc if ok else None

        doc = wait_until(all_live, 20)
        jsonschema.validate(doc, schema("offices"))
        ranking = city.api("/api/v1/services/pass")
        jsonschema.validate(ranking, schema("service"))
        etas = {r["office"]: r["eta_min"] for r in ranking["offices"]}
        assert [r["office"] for r in ranking["offices"]] == ["sued", "ost", "nord"], ranking
        assert etas["nord"] >= 20 > etas["sued"], etas

        # The right office is recommended for the busy one, and the advice reaches its broker.
        nord_pass = {o["id"]: o for o in doc["offices"]}["nord"]["services"][0]
        assert nord_pass["recommendation"]["office"] == "sued"
        alt = wait_until(lambda: live.advice.alternative("pass"), 10)
        assert alt["office"] == "sued" and alt["name"] == "Bürgerbüro Süd"
        minutes = f"ca. {alt['eta_min']} Min." if alt["eta_min"] else "weniger als 1 Min."  # not "ca. 0 Min."
        expected = f"Kürzer warten: Bürgerbüro Süd: {minutes}"
        page = app.test_client().get("/waiting").get_data(as_text=True).replace("\u00a0", " ")
        assert expected in page
        api = app.test_client().get("/api/public").get_json()
        assert api["offices"][0]["services"][0]["alternative"]["office"] == "sued"

        # The dispenser shows it before a ticket is taken and prints it on the ticket (real ESC/POS bytes).
        folder = tmp_path / "raw"
        folder.mkdir()
        disp_cfg = nord_cfg.model_copy(update={"printer": {"backend": "file", "file": {"path": str(folder)}}})
        rt = city.runtime("nord", "disp-1")
        disp = Dispenser(rt, disp_cfg, disp_cfg.node("disp-1"), pins=mock_pins)
        disp.start()
        try:
            wait_until(lambda: disp.advice_text("pass"), 10)
            assert disp.advice_text("pass") == expected
            assert disp.health()["advice"]["pass"] == expected
            disp.issue("pass")
            raw = wait_until(lambda: [p.read_bytes() for p in folder.iterdir()], 10)[0]
            assert b"A013" in raw
            words = [re.escape(w.encode("cp858")) for w in expected.split()]
            assert re.search(rb"[\s\S]{0,40}?".join(words), raw), raw  # in its words, perhaps on two lines
        finally:
            disp.stop()

        # The 115 page in a real browser, German first.
        chromium = require_tool("chromium", "chromium")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = b.new_page(viewport={"width": 1100, "height": 700}, locale="de-DE")
                page.goto(city.url + "/")
                page.select_option("#service", "pass")
                page.click("button[type=submit]")
                page.wait_for_selector("tr[data-office]")
                rows = page.locator("tbody tr").all_inner_texts()
                assert "Bürgerbüro Süd" in rows[0] and "Bürgerbüro Nord" in rows[2]
                assert page.get_attribute("html", "lang") == "de"
                page.screenshot(path=str(artifacts / "city-115-live.png"), full_page=True)

                # Cut Süd's bridge (its broker dies): the city marks it stale at once (the bridge's will),
                # ranks it after the live offices and no longer recommends it.
                os.kill(city.brokers["sued"].proc.pid, signal.SIGKILL)
                cut_at = time.time()

                def sued_stale() -> dict | None:
                    o = {o["id"]: o for o in city.api("/api/v1/offices")["offices"]}["sued"]
                    return o if o["status"] == "stale" else None

                sued = wait_until(sued_stale, 10)
                assert sued["link"] == "down" and abs(sued["stale_since"] - cut_at) < 5
                assert {o["id"]: o["status"] for o in city.api("/api/v1/offices")["offices"]} == {
                    "nord": "live",
                    "sued": "stale",
                    "ost": "live",
                }
                ranking = city.api("/api/v1/services/pass")["offices"]
                assert [r["office"] for r in ranking] == ["ost", "nord", "sued"]
                etas = {r["office"]: r["eta_min"] for r in ranking}
                want = "ost" if etas["nord"] - etas["ost"] >= 10 else None

                def advice_moved() -> bool:
                    alt = live.advice.alternative("pass")
                    return (alt or {}).get("office") == want

                wait_until(advice_moved, 10)
                page.reload()
                page.wait_for_selector("tr[data-office]")
                text = page.inner_text("tr[data-office=sued]")
                assert "veraltet seit" in text, text
                page.screenshot(path=str(artifacts / "city-115-stale.png"), full_page=True)
            finally:
                b.close()

        # Open data: cacheable, conditional GET answers 304 while nothing changes.
        status, headers, body = get(city.url + "/open-data/v1/waits.json")
        assert status == 200 and headers["Cache-Control"].startswith("public, max-age=")
        jsonschema.validate(json.loads(body), schema("open-data"))
        status, _, body = get(city.url + "/open-data/v1/waits.json", {"If-None-Match": headers["ETag"]})
        assert status == 304 and body == b""

        # A remote ticket: the city website's back end reserves a place at Ost for a citizen not there yet.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{city.url}/api/v1/offices/{REMOTE}/reservations"
        assert get(url, body={"service": "pass"})[0] == 401
        status, _, body = get(url, auth, {"service": "pass", "lang": "en"})
        assert status == 201, body
        res = json.loads(body)["reservation"]
        assert res["state"] == "reserved" and res["number"] is None and res["arrive_by"] > time.time()
        status, _, body = get(f"{city.url}/api/v1/offices/nord/reservations", auth, {"service": "pass"})
        assert (status, json.loads(body)["error"]["code"]) == (501, "not_supported")

        # The citizen arrives and types the code at Ost's dispenser: the ticket is printed with its number.
        ost_cfg = city.controllers[REMOTE].cfg
        folder = tmp_path / "raw-ost"
        folder.mkdir()
        ost_cfg = ost_cfg.model_copy(update={"printer": {"backend": "file", "file": {"path": str(folder)}}})
        disp = Dispenser(city.runtime(REMOTE, "disp-1"), ost_cfg, ost_cfg.node("disp-1"), pins=mock_pins)
        disp.start()
        try:
            disp.checkin(res["code"].lower())
            raw = wait_until(lambda: [p.read_bytes() for p in folder.glob("*.bin")], 10)[0]
        finally:
            disp.stop()
        number = f"A{TICKETS[REMOTE] + 1:03d}"  # after the three walk-ins drawn before it
        assert number.encode() in raw

        # Called at a counter: the three before it first, then the remote ticket.
        counter = city.runtime(REMOTE, "counter-1")
        counter.request("counter.open", {"counter": "c1"})
        called = [counter.request("counter.call_next", {"counter": "c1"})["call"]["ticket"] for _ in range(4)]
        assert called == ["A001", "A002", "A003", number]
        status, _, body = get(f"{city.url}/api/v1/offices/{REMOTE}/reservations/{res['code']}", auth)
        assert status == 200, body
        state = json.loads(body)["reservation"]
        assert (
            state["state"] == "checked_in" and state["number"] == number and state["ticket_state"] == "called"
        )
    finally:
        live.close()
