"""systemd readiness and watchdog: a real controller process talks to a real notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import yaml

from waitroom import config


def test_controller_says_ready_and_pets_the_watchdog(broker, tmp_path):
    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["broker"]["port"] = broker.port
    data["office"]["id"] = "sdnotify"
    cfg = tmp_path / "office.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(15)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000")  # WatchdogSec=2
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitroom.cli",
            "controller",
            "--config",
            str(cfg),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        messages = []
        deadline = time.monotonic() + 15
        while messages.count("WATCHDOG=1") < 2 and time.monotonic() < deadline:
            messages.append(sock.recv(256).decode())
        assert messages[0] == "READY=1"
        assert messages.count("WATCHDOG=1") >= 2  # every second (half of WatchdogSec)
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(256).decode())
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_no_watchdog_ping_when_not_alive(tmp_path, monkeypatch):
    from waitroom.systemd import Watchdog

    sock_path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.3)
    monkeypatch.setenv("NOTIFY_SOCKET", sock_path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    now = [0.0]
    healthy = [True]
    dog = Watchdog(lambda: healthy[0], clock=lambda: now[0])
    dog.poll()
    assert sock.recv(64) == b"WATCHDOG=1"
    healthy[0] = False
    now[0] += 1
    dog.poll()
    try:
        got = sock.recv(64)
    except TimeoutError:
        got = None
    assert got is None and dog.pets == 1
    sock.close()
