"""The controller process under a hostile day, seen from outside (a real mosquitto, the real controller
process, 20 node runtimes): the broker restarts in the middle of a burst, the controller is frozen longer
than its keepalive, and a second controller of the same office is started by mistake."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mqtt_broker.local import Mosquitto
from tests.test_crash_recovery import CLIENTS, PER_CLIENT, SERVICES, start_controller, write_config
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


def test_broker_restart_mid_burst_decides_every_request_once(fresh_broker, tmp_path: Path) -> None:
    port = fresh_broker.port
    cfg_path = write_config(tmp_path, port)
    cfg = config.load(cfg_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    replies: dict[str, list[dict]] = {c: [] for c in CLIENTS}
    progress = threading.Semaphore(0)
    clients = [NodeRuntime(cfg, c) for c in CLIENTS]
    broker = fresh_broker
    try:
        for c in clients:
            assert c.start(wait=10)

        def burst(rt: NodeRuntime) -> None:
            for i in range(PER_CLIENT):
                # the same request id until a reply comes, however long the broker is away
                reply = rt.request_reply(
                    "ticket.issue", {"service": SERVICES[i % 4]}, timeout=0.5, retries=120
                )
                replies[rt.node_id].append(reply)
                progress.release()

        first = clients[0].request_reply("ticket.issue", {"service": "pass"}, timeout=0.5, retries=40)
        assert first["ok"]
        threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for _ in range(len(CLIENTS) * PER_CLIENT // 3):
            assert progress.acquire(timeout=60)
        broker.proc.kill()  # the broker dies: no clean goodbye to anybody
        broker.proc.wait()
        stopped_after = sum(len(r) for r in replies.values())
        time.sleep(1.0)
        broker = Mosquitto(port=port).start()  # the same port: every client reconnects by itself
        for t in threads:
            t.join(timeout=180)
        assert not any(t.is_alive() for t in threads)
        assert proc.poll() is None, "the controller survived the broker's restart"
    finally:
        for c in clients:
            c.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        if broker is not fresh_broker:
            broker.stop()

    all_replies = [first] + [r for rs in replies.values() for r in rs]
    assert stopped_after < len(CLIENTS) * PER_CLIENT, "the broker died after the burst; nothing was tested"
    assert len(all_replies) == len(CLIENTS) * PER_CLIENT + 1
    assert all(r["ok"] for r in all_replies), [r for r in all_replies if not r["ok"]][:3]
    numbers = [r["result"]["ticket"]["number"] for r in all_replies]
    assert len(set(numbers)) == len(numbers), "a number was given to two requests"
    issued = issued_numbers(data_dir / "mitte.db")
    assert not [n for n, k in Counter(issued).items() if k > 1], "a ticket was issued twice"
    assert set(numbers) == set(issued), "every ok is in the log and the log holds nothing nobody asked for"


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


def test_a_controller_frozen_past_its_keepalive_comes_back_and_decides_once(broker, tmp_path: Path) -> None:
    """SIGSTOP for longer than 1.5 keepalives: the broker publishes its will (offline) and drops it; after
    SIGCONT it logs in again, says online, publishes the state, and the commands sent meanwhile (retried with
    their request id) are decided once."""
    cfg_path = write_config(tmp_path, broker.port)
    text = cfg_path.read_text().replace("id: crash", "id: frozen")
    cfg_path.write_text(text.replace("broker:\n", "broker:\n  keepalive: 5\n", 1))
    cfg = config.load(cfg_path)
    assert cfg.office.id == "frozen" and cfg.broker.keepalive == 5
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    rt = NodeRuntime(cfg, "disp-1")
    statuses: list[str] = []
    rt.on_controller(lambda online: statuses.append("online" if online else "offline"))
    results: list[dict] = []
    try:
        assert rt.start(wait=10)
        assert rt.request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=30)["ok"]
        proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 60
        while "offline" not in statuses and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "offline" in statuses, "the broker gave up on the frozen controller (its will)"
        sender = threading.Thread(
            target=lambda: results.append(
                rt.request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=120)
            )
        )
        sender.start()
        time.sleep(3)  # a few retries of the same request reach nobody
        statuses.clear()
        proc.send_signal(signal.SIGCONT)
        sender.join(timeout=120)
        assert not sender.is_alive()
        after = rt.request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (rt.state or {}).get("seq", 0) < after["seq"]:
            time.sleep(0.1)
        assert statuses and statuses[-1] == "online", statuses
        assert proc.poll() is None
    finally:
        rt.stop()
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert results[0]["ok"] and results[0]["result"]["ticket"]["number"] == "A002", results
    assert after["result"]["ticket"]["number"] == "A003"
    assert rt.state["seq"] >= after["seq"], "the retained summary is the controller's newest"
    assert issued_numbers(data_dir / "mitte.db") == ["A001", "A002", "A003"]


FULL_DISK_CONTROLLER = """
import runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the size limit fails (EFBIG), as on a full disk
sys.argv = ["waitroom", *sys.argv[1:]]
runpy.run_module("waitroom.cli", run_name="__main__")
"""


def test_the_disk_fills_mid_burst_nothing_is_half_done_and_it_recovers(broker, tmp_path: Path) -> None:
    """The event log cannot grow in the middle of a burst from 20 nodes (the controller's file size limit is
    lowered to what its files hold, which fails writes as a full disk does, without root): the commands get
    ``internal``, "event log not writable", and no number is used by a command that failed; once there is
    room again the same request ids are decided, and numbering has no gap."""
    import resource
    import subprocess
    import sys

    cfg_path = write_config(tmp_path, broker.port)
    cfg_path.write_text(cfg_path.read_text().replace("id: crash", "id: fulldisk"))
    cfg = config.load(cfg_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # its log goes to a pipe: the file size limit is for regular files only
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FULL_DISK_CONTROLLER,
            "controller",
            "--config",
            str(cfg_path),
            "--data-dir",
            str(data_dir),
        ],
        stderr=subprocess.PIPE,
    )
    log_lines: list[bytes] = []
    reader = threading.Thread(target=lambda: log_lines.extend(proc.stderr), daemon=True)
    reader.start()
    clients = [NodeRuntime(cfg, c) for c in CLIENTS]
    oks: dict[str, list[dict]] = {c: [] for c in CLIENTS}
    refusals: list[dict] = []
    lock = threading.Lock()
    progress = threading.Semaphore(0)

    def burst(rt: NodeRuntime) -> None:
        for i in range(PER_CLIENT):
            rid = f"{rt.node_id}-{i}"
            while True:  # a node tries the same request again until it is done
                reply = rt.request_reply(
                    "ticket.issue", {"service": SERVICES[i % 4]}, timeout=1.0, retries=120, request_id=rid
                )
                if reply["ok"]:
                    oks[rt.node_id].append(reply)
                    progress.release()
                    break
                with lock:
                    refusals.append(reply)
                time.sleep(0.2)

    try:
        for c in clients:
            assert c.start(wait=10)
        assert clients[0].request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=30)["ok"]
        threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for _ in range(len(CLIENTS) * PER_CLIENT // 4):
            assert progress.acquire(timeout=60)
        biggest = max(p.stat().st_size for p in data_dir.glob("mitte.db*"))
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (biggest // 2, resource.RLIM_INFINITY))
        deadline = time.monotonic() + 60
        while len(refusals) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        full_at = sum(len(r) for r in oks.values())
        assert len(refusals) >= 10, "the full disk was hit"
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        for t in threads:
            t.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "every command was done once there was room"
        assert proc.poll() is None, "the controller did not die on the full disk"
        after = clients[0].request_reply("ticket.issue", {"service": "pass"}, timeout=1.0, retries=30)
    finally:
        for c in clients:
            c.stop()
        proc.terminate()
        proc.wait(10)
    assert full_at < len(CLIENTS) * PER_CLIENT, "the disk filled after the burst; nothing was tested"
    assert {(r["error"]["code"], r["error"]["message"]) for r in refusals} == {
        ("internal", "event log not writable")
    }, refusals[:3]
    numbers = [r["result"]["ticket"]["number"] for rs in oks.values() for r in rs]
    assert len(numbers) == len(CLIENTS) * PER_CLIENT and len(set(numbers)) == len(numbers)
    issued = issued_numbers(data_dir / "mitte.db")
    assert len(issued) == len(set(issued)) == len(numbers) + 2
    assert set(numbers) | {after["result"]["ticket"]["number"]} <= set(issued)
    for prefix in "ABCD":  # a command that failed used no number
        nums = sorted(int(n[1:]) for n in issued if n[0] == prefix)
        assert nums == list(range(1, len(nums) + 1)), (prefix, nums)


def test_a_neighbour_flooding_garbage_costs_the_others_nothing_and_gets_bounded_answers(
    cfg, controller
) -> None:
    """A node floods its command topic with garbage, oversize, non-UTF-8 payloads at QoS 0, 1 and 2, while
    another node works: the other node's commands are answered first time, the flood gets at most one answer
    per message, each a clear refusal, far fewer than it sent, and the controller lives on."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from waitroom.contract import MAX_PAYLOAD_BYTES

    topics = controller.topics
    flood_replies: list[dict] = []
    subscribed = threading.Event()
    flooder = paho.Client(CallbackAPIVersion.VERSION2, client_id="flooder", protocol=paho.MQTTv311)
    flooder.max_inflight_messages_set(1000)
    flooder.max_queued_messages_set(0)
    flooder.on_subscribe = lambda *a: subscribed.set()
    flooder.on_message = lambda c, u, msg: flood_replies.append(json.loads(msg.payload))
    flooder.connect("127.0.0.1", cfg.broker.port)
    flooder.loop_start()
    flooder.subscribe(topics.reply("counter-2"), qos=1)
    assert subscribed.wait(10)
    payloads = [
        b"\xff\xfe\x00 not utf-8",
        b'{"id": "g", "op": "ticket.issue", "args": {"service": "' + b"x" * (2 * MAX_PAYLOAD_BYTES) + b'"}}',
        b"[" * 5000,
        b"",
        b'{"id": 7, "op": ["ticket.issue"]}',
        b'{"id": "x", "op": "ticket.issue", "args": {"service": "pass"}, "extra": "\\ud800"}',
    ]
    sent = 3000
    done = threading.Event()

    def flood() -> None:
        for i in range(sent):
            flooder.publish(topics.cmd("counter-2"), payloads[i % len(payloads)], qos=i % 3)
        done.set()

    rt = NodeRuntime(cfg, "disp-1")
    answered: list[dict] = []
    try:
        assert rt.start(wait=10)
        threading.Thread(target=flood, daemon=True).start()
        for i in range(10):
            reply = rt.request_reply(
                "ticket.issue", {"service": "pass"}, timeout=10, retries=0, request_id=f"work-{i}"
            )
            answered.append(reply)
        assert done.wait(120), "the flood was sent"
        # the controller is through with the flood when a last command of the node is answered
        last = rt.request_reply("ticket.issue", {"service": "melde"}, timeout=2, retries=30)
        assert last["ok"]
        time.sleep(0.5)
    finally:
        flooder.loop_stop()
        flooder.disconnect()
        rt.stop()
    assert [r["result"]["ticket"]["number"] for r in answered] == [f"A{i:03d}" for i in range(1, 11)]
    codes = Counter(r["error"]["code"] for r in flood_replies if not r["ok"])
    assert not [r for r in flood_replies if r["ok"]], "no garbage did anything"
    assert set(codes) <= {"bad_json", "too_large", "bad_request", "rate_limited"}, codes
    assert len(flood_replies) < sent // 2, "a flood is not answered one for one"
    assert controller.alive()
    assert sum(1 for t in controller.office.state.tickets.values()) == 11


def test_a_reconnect_while_the_engine_plans_its_wait_costs_no_rebuild(cfg, tmp_path: Path) -> None:
    """The engine looked at the dirty queue pages outside its lock while a reconnect (paho's network thread)
    published them all again: "Set changed size during iteration", logged as a failed engine step, and the
    whole state rebuilt from the log -- seen while two controllers threw each other out."""
    from waitroom.service import ControllerService

    svc = ControllerService(cfg, str(tmp_path / "events.db"))  # not connected: publishing only queues
    svc.sole.deciding.set()  # as once it decides
    reconnects: list[threading.Thread] = []

    class ReconnectMidway(set):
        def __iter__(self):
            it = super().__iter__()
            yield next(it)
            if not reconnects:  # the first look at the pages: a reconnect comes in between
                reconnects.append(threading.Thread(target=svc._republish, daemon=True))
                reconnects[0].start()
                reconnects[0].join(2.0)  # it waits for the engine's lock, or it runs now
            yield from it

    try:
        svc.publish_state()  # the forecast is made: a republish takes milliseconds
        svc.office.dirty_services = ReconnectMidway(cfg.service_ids)
        svc._engine_step()
        reconnects[0].join(10)
        assert not reconnects[0].is_alive()
    finally:
        svc.stop()


def test_a_controller_waiting_for_its_broker_at_start_stays_alive_for_the_watchdog(tmp_path: Path) -> None:
    """Until its own status comes back through the broker the controller decides nothing (a second controller
    of the office may run); meanwhile its engine loop still counts as alive, or systemd's watchdog would kill
    and restart a controller whose broker is late at boot."""
    from mqtt_broker.local import free_port
    from tests.conftest import office_config
    from waitroom.service import ControllerService

    svc = ControllerService(office_config(free_port(), office_id="late"), str(tmp_path / "events.db"))
    try:
        assert not svc.start(wait=0.5), "nothing listens on that port"
        svc.last_tick = time.monotonic() - 60  # as if the engine had not looked for a minute
        deadline = time.monotonic() + 20
        while not svc.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.alive()
        assert not svc.sole.deciding.is_set() and not svc.stepped_down.is_set()
    finally:
        svc.stop()


def _status(online: bool, **fields: object) -> bytes:
    return json.dumps({"node": "controller", "status": "online" if online else "offline", **fields}).encode()


def test_one_controller_per_office_decisions() -> None:
    """How a controller reads the statuses on its own topic (waitroom.service.SoleController), on a clock of
    its own: the retained status from before its birth, then every later one."""
    import subprocess
    import sys

    from waitroom.service import SoleController

    now = [100.0]

    def sole() -> SoleController:
        return SoleController(clock=lambda: now[0])

    def own(s: SoleController, online: bool = True) -> bytes:
        return _status(online, **s.identity())

    # the last one said goodbye: deciding as soon as our own birth comes back
    s = sole()
    assert not s.on_status(_status(False, instance="old", clean=True, host="elsewhere", pid=1))
    assert not s.may_decide()
    s.on_status(own(s))
    assert s.may_decide()
    # a process of this host that is gone (its will): no hold either
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    s = sole()
    s.on_status(_status(False, instance="old", host=s.host, pid=gone.pid, since=1.0))
    s.on_status(own(s))
    assert s.may_decide()
    # its will from another host: it may have been thrown out by our login; hold, then decide
    s = sole()
    s.on_status(_status(False, instance="old", host="spare-pi", pid=4242, since=1.0))
    s.on_status(own(s))
    assert not s.may_decide()
    now[0] += SoleController.HOLD_S
    assert s.may_decide() and not s.stepped_down.is_set()
    # ... and it comes back within the hold: step down, nothing decided
    s = sole()
    s.on_status(_status(False, instance="old", host="spare-pi", pid=4242, since=1.0))
    s.on_status(own(s))
    s.on_status(_status(True, instance="old", host="spare-pi", pid=4242, since=1.0))
    assert s.stepped_down.is_set()
    now[0] += SoleController.HOLD_S
    assert not s.may_decide()
    # deciding, a newer one logs in: we keep the office and put our status back after its will
    s = sole()
    s.on_status(own(s))
    assert s.may_decide()
    newer = {"instance": "new", "host": "spare-pi", "pid": 4242, "since": s.since + 10}
    assert not s.on_status(_status(True, **newer))
    assert s.on_status(_status(False, **newer))
    assert not s.stepped_down.is_set()
    # deciding, an older one comes back after our hold (a very busy machine): the older one keeps it
    s = sole()
    s.on_status(own(s))
    assert s.may_decide()
    s.on_status(_status(True, instance="old", host="spare-pi", pid=4242, since=s.since - 10))
    assert s.stepped_down.is_set()
    # garbage on the topic is nobody's
    s = sole()
    for junk in (b"", b"\xff", b"[1]", b'"x"'):
        assert not s.on_status(junk)
    s.on_status(own(s))
    assert s.may_decide()


def test_the_controller_says_which_process_it_is_and_that_it_ended_cleanly(cfg, tmp_path: Path) -> None:
    """Its birth carries its identity (contract.controller_identity); its own goodbye adds ``clean``, which
    lets the next controller start at once instead of holding the commands (a will has no ``clean``)."""
    import os

    from waitroom.service import ControllerService

    watcher = NodeRuntime(cfg, "web")
    statuses: list[dict] = []
    watcher.subscribe(watcher.topics.status("controller"), lambda t, p: statuses.append(json.loads(p)))
    assert watcher.start(wait=10)
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    try:
        assert svc.start(wait=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(s.get("status") == "online" for s in statuses):
            time.sleep(0.02)
        birth = next(s for s in statuses if s.get("status") == "online")
        assert {k: birth[k] for k in ("instance", "host", "pid")} == {
            "instance": svc.sole.instance,
            "host": svc.sole.host,
            "pid": os.getpid(),
        }
        assert "clean" not in birth and birth["since"] == svc.sole.since
    finally:
        svc.stop()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and statuses[-1].get("status") != "offline":
            time.sleep(0.02)
        assert statuses[-1]["status"] == "offline" and statuses[-1]["clean"] is True
        assert statuses[-1]["instance"] == svc.sole.instance
    finally:
        watcher.stop()
