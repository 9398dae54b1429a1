"""The newcomer's demo: a clean start logs no ERROR, no sound card is one notice, the demo account logs in.

``test_demo_starts_clean`` runs the real ``waitroom demo`` (embedded amqtt broker, controller, every node,
the web app under gunicorn) on free ports, waits until every process has started, logs in with the documented
demo account, stops the demo with Ctrl-C (SIGINT) and reads every log it wrote.
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from displays import announce
from mqtt_broker.local import EmbeddedBroker, free_port
from waitroom import demo
from waitroom.web import demo as web_demo

ERROR_LINE = re.compile(r"(^|\s)(ERROR|CRITICAL)\s|Traceback|ALSA lib")


def test_the_demo_account_is_the_one_the_demo_prints() -> None:
    assert (demo.DEMO_USER, demo.DEMO_PASSWORD) == (web_demo.DEMO_USER, web_demo.DEMO_PASSWORD)


def test_port_probe_noise_is_dropped_and_other_broker_errors_are_kept() -> None:
    f = demo.PortProbeFilter()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("amqtt.broker", logging.ERROR, __file__, 1, msg, None, None)

    assert not f.filter(record("No data from 127.0.0.1:5000 : No data to decode MQTT packet fixed header"))
    assert not f.filter(
        record("Failed to initialize client session: No data to decode MQTT packet fixed header")
    )
    assert f.filter(record("Invalid connection from 127.0.0.1:5000"))


def test_the_demo_broker_sends_a_client_the_retained_messages_of_its_own_subscriptions_only() -> None:
    """docs/mqtt-contract.md: `mosquitto_sub -t .../state -C 1` against the demo shows the current state."""
    import paho.mqtt.client as paho

    broker = EmbeddedBroker(port=free_port()).start()

    def client(name: str) -> paho.Client:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv311)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        return c

    try:
        other = client("other")
        for topic in ("w/state", "w/node/disp-1/status", "w/queue/pass"):
            other.publish(topic, topic.encode(), qos=1, retain=True).wait_for_publish(10)
        # another client's subscriptions are in the broker when the newcomer connects
        other.subscribe([("w/node/+/status", 1), ("w/queue/+", 1)])
        time.sleep(0.5)
        got: list[str] = []
        newcomer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="new", protocol=paho.MQTTv311)
        newcomer.on_message = lambda _c, _u, m: got.append(m.topic)
        newcomer.on_connect = lambda c, *_: c.subscribe("w/state", 1)
        newcomer.connect("127.0.0.1", broker.port)
        newcomer.loop_start()
        deadline = time.monotonic() + 10
        while "w/state" not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything else would have come with it
        newcomer.loop_stop()
        other.loop_stop()
        assert got == ["w/state"]
    finally:
        broker.stop()


def test_no_sound_card_means_silent_output_and_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SDL_AUDIODRIVER", raising=False)
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    snd = tmp_path / "snd"
    snd.mkdir()
    (snd / "controlC0").touch()  # a card without a playback device
    with caplog.at_level(logging.INFO, logger="displays.announce"):
        assert announce.use_silent_output_without_card(snd) is True
        assert os.environ["SDL_AUDIODRIVER"] == "dummy"
        assert announce.use_silent_output_without_card(snd) is False  # chosen already: no second notice
    notices = [r for r in caplog.records if "no sound card" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING


def test_a_playback_device_is_a_sound_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDL_AUDIODRIVER", raising=False)
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "pcmC0D0p").touch()
    assert announce.sound_card_present(tmp_path)
    assert announce.use_silent_output_without_card(tmp_path) is False
    assert "SDL_AUDIODRIVER" not in os.environ
    assert not announce.sound_card_present(tmp_path / "missing")
    (tmp_path / "run" / "pulse").mkdir(parents=True)
    (tmp_path / "run" / "pulse" / "native").touch()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert announce.sound_card_present(tmp_path / "missing")  # a sound server counts as a card


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


def _get(opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None) -> str:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with opener.open(url, data=body, timeout=10) as resp:
        return resp.read().decode("utf-8")


@pytest.mark.slow
def test_demo_starts_clean(tmp_path: Path) -> None:
    port, mqtt_port = free_port(), free_port()
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "SDL_AUDIODRIVER"}
    if announce.sound_card_present():
        env["SDL_AUDIODRIVER"] = "dummy"  # a machine with a sound card: do not play the test's calls aloud
    env.pop("WAITROOM_DATA_DIR", None)
    out = tmp_path / "demo.out"
    argv = [sys.executable, "-m", "waitroom", "demo", "--fresh", "--port", str(port)]
    argv += ["--mqtt-port", str(mqtt_port), "--data-dir", str(data)]
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        logs = data / "logs"
        nodes = ["disp-1", "display-1", "counter-1", "counter-2", "counter-3", "counter-4", "sb-1"]

        def started() -> bool:
            def has(name: str, text: str) -> bool:
                p = logs / f"{name}.log"
                return p.exists() and text in p.read_text(encoding="utf-8", errors="replace")

            return (
                "waitroom demo is running" in out.read_text(errors="replace")
                and has("controller", "controller for office")
                and all(has(n, f"node {n} running") for n in nodes)
            )

        _wait(started, 240, "the demo's processes")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        page = _get(opener, f"{base}/demo/")
        assert 'href="/staff/"' in page and 'href="/admin/"' in page
        assert demo.DEMO_USER in page and demo.DEMO_PASSWORD in page
        login = _get(opener, f"{base}/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token
        form = {"csrf_token": token.group(1), "username": demo.DEMO_USER, "password": demo.DEMO_PASSWORD}
        _get(opener, f"{base}/login", form)
        admin = _get(opener, f"{base}/admin/")
        assert "logout" in admin  # the logout form: the demo account is logged in (as an admin)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    texts = {"demo": out.read_text(errors="replace")}
    texts |= {p.stem: p.read_text(errors="replace") for p in sorted((data / "logs").glob("*.log"))}
    bad = [f"{name}: {line}" for name, text in texts.items() for line in text.splitlines()]
    bad = [line for line in bad if ERROR_LINE.search(line)]
    assert bad == [], "\n".join(bad[:40])
    assert "waitroom demo stopped." in texts["demo"]
    if not announce.sound_card_present():
        assert texts["display-1"].count("no sound card") == 1
