"""The node runtime against a real mosquitto: request/reply, retries reusing the id, reconnect, health."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from tests.conftest import office_config
from waitroom import config
from waitroom.errors import CommandFailed, RequestTimeout
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_error_reply_raises_with_code(controller, node):
    disp = node("disp-1")
    with pytest.raises(CommandFailed) as exc:
        disp.request("ticket.issue", {"service": "mars"})
    assert exc.value.code == "unknown_service" and "mars" in exc.value.message


def test_timeout_when_no_controller(cfg, node):
    disp = node("disp-1")
    t0 = time.monotonic()
    with pytest.raises(RequestTimeout):
        disp.request("ticket.issue", {"service": "pass"}, timeout=0.2, retries=2)
    assert time.monotonic() - t0 >= 0.6


def test_retry_reaches_a_controller_that_starts_late_and_counts_once(cfg, node, tmp_path):
    disp = node("disp-1")
    result: dict = {}
    t = threading.Thread(
        target=lambda: result.update(
            disp.request("ticket.issue", {"service": "pass"}, timeout=0.3, retries=30, request_id="late-1")
        )
    )
    t.start()
    time.sleep(0.8)  # several attempts go unanswered
    svc = ControllerService(cfg, str(tmp_path / "e.db"))
    svc.start()
    try:
        t.join(15)
        assert result["ticket"]["number"] == "A001"
        again = disp.request("ticket.issue", {"service": "pass"}, request_id="late-1")
        assert again == result
        assert len(svc.office.state.tickets) == 1
    finally:
        svc.stop()


def test_reconnect_after_broker_restart_rebuilds_from_retained_state(fresh_broker, tmp_path):
    from mqtt_broker.local import Mosquitto

    cfg = office_config(fresh_broker.port, office_id="reconn")
    svc = ControllerService(cfg, str(tmp_path / "e.db"))
    svc.start()
    disp = NodeRuntime(cfg, "disp-1")
    disp.start()
    seen_offline = threading.Event()
    disp.link.on_disconnect_hooks.append(seen_offline.set)
    try:
        disp.request("ticket.issue", {"service": "pass"})
        fresh_broker.stop()
        assert seen_offline.wait(10) and not disp.online
        # the broker comes back on the same port (persistence off: the retained state is gone too)
        m2 = Mosquitto(port=fresh_broker.port, workdir=tmp_path / "m2").start()
        try:
            assert wait_until(lambda: disp.online and svc.link.connected.is_set(), 40)
            ticket = disp.request("ticket.issue", {"service": "pass"}, timeout=2, retries=5)["ticket"]
            assert ticket["number"] == "A002"  # the controller kept its state
            # a node that starts now rebuilds from the retained snapshot the controller re-published
            late = NodeRuntime(cfg, "display-1")
            late.start()
            try:
                assert wait_until(
                    lambda: late.state is not None and late.state["services"][0]["waiting"] == 2
                )
            finally:
                late.stop()
        finally:
            m2.stop()
    finally:
        disp.stop()
        svc.stop()


def test_health_is_published_retained(cfg, broker, node):
    disp = node("disp-1")
    disp.set_health(printer="paper_low")
    seen: list[dict] = []
    watcher = node("web")
    watcher.subscribe(disp.topics.health("disp-1"), lambda t, p: seen.append(json.loads(p)))
    assert wait_until(lambda: any(h.get("printer") == "paper_low" for h in seen))
    assert seen[-1]["node"] == "disp-1" and seen[-1]["role"] == "dispenser" and "uptime_s" in seen[-1]


def test_unknown_node_is_refused_at_construction(cfg):
    with pytest.raises(ValueError, match="not in the configuration"):
        NodeRuntime(cfg, "ghost")


def test_two_handlers_on_one_topic_both_receive(cfg, broker, node):
    rt = node("disp-1")
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    rt.subscribe(rt.topics.sim("disp-1"), lambda t, p: got["a"].append(p))
    rt.subscribe(rt.topics.sim("disp-1"), lambda t, p: got["b"].append(p))
    web = node("web")
    web.link.publish(web.topics.sim("disp-1"), {"button": "pass", "action": "press"}, "sim")
    assert wait_until(lambda: got["a"] and got["b"])
    assert len(got["a"]) == len(got["b"]) == 1


def test_a_node_started_while_its_broker_is_down_says_so(tmp_path):
    """A node whose broker cannot be reached (down, or a wrong ``broker.host``) does not only log that it
    runs: one warning names the broker (every failed attempt is a debug line, retried in the background)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = yaml.safe_load(config.EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    doc["broker"]["port"] = port
    office = tmp_path / "office.yaml"
    office.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "WAITROOM_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(root)}
    argv = [sys.executable, "-m", "waitroom", "node", "assist", "--config", str(office), "--node", "sb-1"]
    proc = subprocess.Popen(
        [*argv, "--pins", "mock", "--wait", "0.5"], stderr=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "node sb-1 running" in line:
                break
    finally:
        proc.kill()
        _, rest = proc.communicate(timeout=20)
    text = "".join(lines) + rest
    assert f"WARNING waitroom: MQTT broker 127.0.0.1:{port} not reachable yet" in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("role", "node_id", "args", "env", "why"),
    [
        ("counter", "counter-3", ["--pins", "nosuch"], {}, "unknown pin factory 'nosuch'"),
        ("assist", "sb-1", ["--pins", "rpigpio"], {}, "pin factory rpigpio: No module named 'RPi'"),
        (
            "display",
            "display-1",
            [],
            {"SDL_VIDEODRIVER": "nosuch"},
            "has no screen to draw on: error: nosuch",
        ),
    ],
    ids=["unknown-pin-factory", "pin-library-missing", "no-screen"],
)
def test_a_node_that_cannot_get_its_hardware_says_why_in_one_line_and_exits_1(
    tmp_path, role, node_id, args, env, why
):
    """A pin factory that is unknown or whose library is missing, no screen for the display: one CRITICAL
    line naming the node and the cause, exit code 1 (systemd starts it again), not gpiozero's or pygame's
    traceback."""
    if role == "assist" and find_spec("RPi") is not None:
        pytest.skip("RPi.GPIO is installed here")
    doc = yaml.safe_load(config.EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    with socket.socket() as s:  # no broker: the node must not need one to say this
        s.bind(("127.0.0.1", 0))
        doc["broker"]["port"] = s.getsockname()[1]
    office = tmp_path / "office.yaml"
    office.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "WAITROOM_DATA_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(root),
        "SDL_AUDIODRIVER": "dummy",
        **env,
    }
    argv = [sys.executable, "-m", "waitroom", "node", role, "--config", str(office), "--node", node_id]
    out = subprocess.run([*argv, *args, "--wait", "0.2"], capture_output=True, text=True, env=env, timeout=90)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert f"CRITICAL waitroom: {role} node {node_id} cannot start: " in out.stderr, out.stderr
    assert why in out.stderr, out.stderr
