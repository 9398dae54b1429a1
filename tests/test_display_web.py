"""The browser call display (/display): a Flask blueprint fed by a real NodeRuntime on a real mosquitto.

The blueprint is tested on its own (a tiny app whose live object is built from a real web NodeRuntime, with a
real /api/stream), through the web app's create_app, and in a real headless chromium.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import threading
import time
import wave
from io import BytesIO
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context

from displays.settings import GONG_WAV
from waitroom.contract import EventKind
from waitroom.web import display


class LiveFromRuntime:
    """The in-process live object the web app provides: the latest state and a feed of events."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.queues: list[queue.Queue] = []
        runtime.on_state(lambda s: self._put("state", s))
        runtime.on_event(lambda kind, e: self._put(kind.value, e) if kind is EventKind.CALL else None)

    def _put(self, name: str, data: Any) -> None:
        for q in list(self.queues):
            q.put((name, data))

    def state(self) -> dict | None:
        return self.runtime.state

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        self.queues.append(q)
        return q


def tiny_app(live: LiveFromRuntime) -> Flask:
    app = Flask(__name__)
    app.extensions["waitroom"] = live
    app.register_blueprint(display.bp, url_prefix="/display")

    @app.get("/api/stream")
    def stream() -> Response:
        q = live.subscribe()

        def gen():
            yield "retry: 1000\n\n"
            if live.state() is not None:
                yield f"event: state\ndata: {json.dumps(live.state())}\n\n"
            while True:
                try:
                    name, data = q.get(timeout=5)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n"

        return Response(stream_with_context(gen()), mimetype="text/event-stream")

    return app


def wait_for(pred, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def live(controller, node):
    web = node("web")
    wait_for(lambda: web.state is not None)
    return LiveFromRuntime(web)


def boot_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="boot">(.*?)</script>', html, re.S)
    assert m, "no boot data in the page"
    return json.loads(m.group(1))


def test_page_shows_the_current_state(live, node):
    disp, c3 = node("disp-1"), node("counter-3")
    disp.request("ticket.issue", {"service": "melde"})
    c3.request("counter.call_next", {"counter": "c3"})
    wait_for(lambda: live.state()["calls"])
    client = tiny_app(live).test_client()
    resp = client.get("/display/?zone=eg&n=4")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Bürgerbüro Mitte" in html
    boot = boot_of(html)
    assert boot["zone"] == "eg" and boot["recent"] == 4
    assert boot["state"]["calls"][0]["ticket"] == "B001"
    assert boot["labels"]["announce.call"]["de"] == "Nummer {ticket}, bitte zu {counter}."
    js = client.get("/display/static/display.js")
    assert js.status_code == 200 and b"EventSource" in js.data


def test_bad_parameters_get_clear_errors(live):
    client = tiny_app(live).test_client()
    for query, code in (
        ("zone=keller", "unknown_zone"),
        ("n=99", "bad_request"),
        ("sound=loud", "bad_request"),
        ("speak=fr", "bad_request"),
    ):
        resp = client.get(f"/display/?{query}")
        assert resp.status_code == 400, query
        assert resp.get_json()["error"]["code"] == code
    assert client.get("/display/speech.wav?ticket=hello&counter=c1").status_code == 400
    resp = client.get("/display/speech.wav?ticket=A012&counter=c99")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "unknown_counter"


def test_gong_and_speech_are_served(live):
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is missing: apt-get install espeak-ng")
    client = tiny_app(live).test_client()
    gong = client.get("/display/gong.wav")
    assert gong.status_code == 200 and gong.mimetype == "audio/wav"
    assert gong.data == GONG_WAV.read_bytes()
    speech = client.get("/display/speech.wav?ticket=A012&counter=c3&lang=de")
    assert speech.status_code == 200 and speech.mimetype == "audio/wav"
    with wave.open(BytesIO(speech.data)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 1.0 < seconds < 5.0  # "Nummer A 12, bitte zu Schalter drei."


def test_through_create_app(cfg, controller, tmp_path):
    try:
        from waitroom.web import create_app
    except ImportError:
        pytest.skip("the web app is not there yet")
    app = create_app(cfg, test_config={"SECRET_KEY": "test-secret", "TESTING": True}, data_dir=tmp_path)
    try:
        client = app.test_client()
        wait_for(lambda: app.extensions["waitroom"].state() is not None)
        resp = client.get("/display/")
        assert resp.status_code == 200
        assert boot_of(resp.get_data(as_text=True))["state"]["name"] == "Bürgerbüro Mitte"
        assert client.get("/display/gong.wav").status_code == 200
    finally:
        app.extensions["waitroom"].close()


@pytest.mark.browser
def test_browser_shows_a_call_live(live, node, artifacts):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, tiny_app(live), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/display/?sound=gong"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url)
            page.wait_for_function("window.waitroomDisplay && window.waitroomDisplay.online")
            assert page.locator("#hero").get_attribute("data-ticket") is None
            disp, c1 = node("disp-1"), node("counter-1")
            disp.request("ticket.issue", {"service": "pass"})
            c1.request("counter.call_next", {"counter": "c1"})
            page.wait_for_function("document.getElementById('hero').dataset.ticket === 'A001'", timeout=8000)
            assert "Schalter 1" in page.locator("#hero").inner_text()
            assert "highlight" in page.locator("#hero").get_attribute("class")
            page.screenshot(path=str(artifacts / "display-browser.png"))
            # the gong played without a click (kiosk autoplay flag): the audio element was allowed to start
            page.wait_for_function("window.waitroomDisplay.unlocked", timeout=8000)
            browser.close()
    finally:
        server.shutdown()
