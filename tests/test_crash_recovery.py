"""SIGKILL the controller in the middle of a burst of commands from 20 clients, restart it, and check
that no ticket is lost or duplicated, numbering continues, and every command that got an ``ok`` is in the
state."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import midday_zone
from waitroom import config
from waitroom.node import NodeRuntime

pytestmark = pytest.mark.slow

CLIENTS = [f"disp-{i}" for i in range(1, 20)] + ["web"]  # 20 clients: commands meet in group commits
PER_CLIENT = 20
SERVICES = ["pass", "melde", "fuehrerschein", "sonstiges"]


def write_config(tmp_path: Path, port: int, office: str = "crash") -> Path:
    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["office"]["id"] = office
    data["office"]["hours"] = {day: ["00:00", "23:59"] for day in config.WEEKDAYS}
    data["office"]["timezone"] = midday_zone(time.time())  # the burst never meets the office's midnight
    data["steering"] = {"intake_stop": {"enabled": False}}  # a burst of 400 tickets would pass closing time
    data["broker"]["port"] = port
    data["nodes"] += [{"id": f"disp-{i}", "role": "dispenser"} for i in range(2, 20)]
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def start_controller(cfg_path: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitroom.cli",
            "controller",
            "--config",
            str(cfg_path),
            "--data-dir",
            str(data_dir),
        ],
        stderr=open(data_dir / "controller.log", "ab"),
    )


def test_sigkill_mid_burst_loses_nothing(broker, tmp_path):
    cfg_path = write_config(tmp_path, broker.port)
    cfg = config.load(cfg_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    replies: dict[str, list[dict]] = {c: [] for c in CLIENTS}
    progress = threading.Semaphore(0)
    clients = [NodeRuntime(cfg, c) for c in CLIENTS]
    for c in clients:
        assert c.start(wait=10)

    def burst(rt: NodeRuntime) -> None:
        for i in range(PER_CLIENT):
            # retries reuse the request id: what reached the controller before the kill is not done twice
            reply = rt.request_reply("ticket.issue", {"service": SERVICES[i % 4]}, timeout=0.5, retries=60)
            replies[rt.node_id].append(reply)
            progress.release()

    # wait for the controller to answer before starting the burst
    first = clients[0].request_reply("ticket.issue", {"service": "pass"}, timeout=0.5, retries=40)
    assert first["ok"]
    threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for _ in range(len(CLIENTS) * PER_CLIENT // 3):
        assert progress.acquire(timeout=30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = sum(len(r) for r in replies.values())
    time.sleep(0.3)
    proc = start_controller(cfg_path, data_dir)
    try:
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        after = clients[0].request("ticket.issue", {"service": "pass"}, timeout=1, retries=5)["ticket"]
    finally:
        for c in clients:
            c.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)

    all_replies = [first] + [r for rs in replies.values() for r in rs]
    assert killed_after < len(CLIENTS) * PER_CLIENT, "the kill came after the burst; nothing was tested"
    assert all(r["ok"] for r in all_replies), [r for r in all_replies if not r["ok"]][:3]
    numbers = [r["result"]["ticket"]["number"] for r in all_replies]
    assert len(set(numbers)) == len(numbers), "a number was given to two requests"

    db = sqlite3.connect(data_dir / "mitte.db")
    issued = [
        row[0]
        for row in db.execute(
            "SELECT json_extract(data, '$.number') FROM events WHERE type='ticket_issued' ORDER BY seq"
        )
    ]
    # group commit: commands of several clients were committed together (one stored time per transaction)
    stored, times = db.execute("SELECT COUNT(*), COUNT(DISTINCT ts) FROM replies").fetchone()
    assert times < stored, "every command was committed on its own"
    counts = Counter(issued)
    assert not [n for n, k in counts.items() if k > 1], "a ticket was issued twice"
    # every ok reply is in the log, and the log holds nothing that no request asked for
    assert set(numbers) | {after["number"]} == set(issued)
    # numbering has no gaps per prefix and continues after the restart
    for prefix in "ABCD":
        nums = sorted(int(n[1:]) for n in issued if n[0] == prefix)
        assert nums == list(range(1, len(nums) + 1)), (prefix, nums)
    a_max = max(int(n[1:]) for n in numbers if n[0] == "A")
    assert after["number"] == f"A{a_max + 1:03d}"


def test_a_voided_request_id_survives_a_sigkill(broker, tmp_path):
    """request.void is answered only once the void is on disk: a controller killed right after it still
    refuses the command that arrives late, and numbers it nothing."""
    cfg_path = write_config(tmp_path, broker.port, office="crash-void")
    cfg = config.load(cfg_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    rt = NodeRuntime(cfg, "disp-1")
    assert rt.start(wait=10)
    try:
        void = rt.request_reply(
            "request.void", {"request": "lost-1"}, request_id="lost-1-v", timeout=0.5, retries=60
        )
        assert void["result"] == {"request": {"id": "lost-1", "state": "voided"}}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = start_controller(cfg_path, data_dir)
        late = rt.request_reply(
            "ticket.issue", {"service": "pass"}, request_id="lost-1", timeout=0.5, retries=60
        )
        assert late["ok"] is False and late["error"]["code"] == "request_voided"
        again = rt.request_reply(
            "request.void", {"request": "lost-1"}, request_id="lost-1-v", timeout=0.5, retries=5
        )
        assert again == {**void, "repeated": True}
        assert (
            rt.request("ticket.issue", {"service": "pass"}, timeout=0.5, retries=5)["ticket"]["number"]
            == "A001"
        )
    finally:
        rt.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    db = sqlite3.connect(data_dir / "mitte.db")
    assert db.execute("SELECT COUNT(*) FROM events WHERE type='ticket_issued'").fetchone()[0] == 1
