"""The controller process under a hostile day, seen from outside (a real mosquitto, the real controller
process, 20 node runtimes): the broker restarts in the middle of a burst, the controller is frozen longer
than its keepalive, and a second controller of the same office is started by mistake."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.test_crash_recovery import start_controller, write_config
from waitroom import config
from waitroom.node import NodeRuntime

pytestmark = pytest.mark.slow


def issued_numbers(db_path: Path) -> list[str]:
    db = sqlite3.connect(db_path)
    try:
        return [
            row[0]
            for row in db.execute(
                "SELECT json_extract(data, '$.number') FROM events WHERE type='ticket_issued' ORDER BY seq"
            )
        ]
    finally:
        db.close()


def test_a_second_controller_of_the_office_steps_down_and_issues_nothing(broker, tmp_path: Path) -> None:
    """Started by mistake with data of its own (another --data-dir, a spare Pi): both log in with the
    controller's account, so each login threw the other out and each in turn issued numbers from its own
    log -- A001 twice. Now the second one holds the commands until it knows, and steps down (exit 73, which
    systemd does not restart); the first keeps the office and its retained status."""
    cfg_path = write_config(tmp_path, broker.port)
    cfg_path.write_text(cfg_path.read_text().replace("id: crash", "id: twice"))  # the session broker
    cfg = config.load(cfg_path)
    assert cfg.office.id == "twice"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = start_controller(cfg_path, first_dir)
    second = None
    rt = NodeRuntime(cfg, "disp-1")
    watcher = NodeRuntime(cfg, "web")
    statuses: list[dict] = []
    watcher.subscribe(watcher.topics.status("controller"), lambda t, p: statuses.append(json.loads(p)))
    numbers: list[str] = []
    try:
        assert rt.start(wait=10) and watcher.start(wait=10)

        def issue() -> None:
            reply = rt.request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=60)
            assert reply["ok"], reply
            numbers.append(reply["result"]["ticket"]["number"])

        for _ in range(3):
            issue()
        second = start_controller(cfg_path, second_dir)
        deadline = time.monotonic() + 60
        while second.poll() is None and time.monotonic() < deadline:
            issue()  # the office keeps working meanwhile
            time.sleep(0.05)
        assert second.wait(timeout=10) == 73, "the second controller stepped down"
        for _ in range(3):
            issue()
        assert first.poll() is None, "the first controller keeps the office"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not statuses or statuses[-1]["status"] != "online"):
            time.sleep(0.05)
        assert statuses[-1]["status"] == "online", statuses[-3:]
        assert statuses[-1]["pid"] == first.pid, "the retained status is the running controller's"
    finally:
        rt.stop()
        watcher.stop()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    assert first.returncode == 0, "the first controller ran until it was told to stop"
    assert len(set(numbers)) == len(numbers), f"a number was given twice: {numbers}"
    assert numbers == [f"A{i:03d}" for i in range(1, len(numbers) + 1)]
    assert issued_numbers(first_dir / "mitte.db") == numbers
    assert issued_numbers(second_dir / "mitte.db") == [], "the second controller issued nothing"
    log = (second_dir / "controller.log").read_text()
    assert "another controller of this office is running" in log
