"""The fault soak: ``python -m bench soak [--days 10] [--faults 60] [--seed 1] [--json]``.

Office days at speed against the real controller process (``waitroom controller --clock-file``: the time comes
from a file this driver writes) and a real mosquitto, with faults injected at random moments:

- ``sigkill``: the controller is killed (SIGKILL) in the middle of a burst of commands from five nodes and
  started again; the nodes retry with the same request ids.
- ``broker_restart``: mosquitto is killed and started again on the same port after 0.3-2 s.
- ``dispenser_cutoff``: a dispenser loses its connection for 5-30 simulated minutes, prints offline tickets
  from its lease meanwhile and reports them when it is back.
- ``clock_back``: the controller's clock steps back by 5-100 s (an NTP correction, tolerated).
- ``clock_forward``: the clock steps forward by 10-60 minutes.
- ``boot_behind``: the controller is killed and starts with a clock hours behind its log (a Pi without a
  real-time clock); it must refuse (``clock_behind``, alarm in the summary) until the time sync comes.
- ``midnight_step``: just after midnight the clock steps back 20-60 s, across midnight.
- ``clock_step_back``: the clock runs 10-40 minutes ahead for a while (a bad time source), then the time sync
  steps it back while the controller runs: it must go on (no ``clock_behind``), with the
  ``clock_stepped_back`` alarm until the clock has caught up.
- ``disk_full``: the data directory (a small tmpfs) fills up; commands get ``internal`` or a true ``ok``,
  never a false one, and the controller answers normally once space is free again.

After every fault the invariants are checked against the event log: no acknowledged command lost (every ``ok``
reply is stored and its ticket, call or lease is in the log), no number issued twice the same day, no day
started twice or earlier than the last, no event stamped before an earlier one, every offline ticket
reported, the controller answering within ``--max-answer`` seconds (default 2) after a restart. Exit code 1 on
any violation.

The data directory is a tmpfs of its own (``mount -t tmpfs``, needs root); without root the disk-full
episodes are left out and the report says so.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from mqtt_broker.local import Mosquitto, free_port, render_local_config  # noqa: E402
from waitroom import config  # noqa: E402
from waitroom.mqtt import RECONNECT_CAP  # noqa: E402
from waitroom.node import NodeRuntime  # noqa: E402

log = logging.getLogger("bench.soak")

TZ = ZoneInfo("Europe/Berlin")
KINDS = (
    "sigkill",
    "broker_restart",
    "dispenser_cutoff",
    "clock_back",
    "clock_forward",
    "boot_behind",
    "midnight_step",
    "clock_step_back",
    "disk_full",
)
SERVICES = ("pass", "melde", "fuehrerschein", "sonstiges")
COUNTERS = {"counter-1": "c1", "counter-2": "c2", "counter-3": "c3", "counter-4": "c4"}
OPEN, CLOSE = (8, 0), (16, 0)
LEASE_AT = (7, 30)
TMPFS_MB = 48
BROKER_ANSWER_S = RECONNECT_CAP + 1.0  # nodes retry at least every RECONNECT_CAP seconds (waitroom.mqtt)
DISK_FULL_COMMANDS = 800  # tickets tried on a full disk at most (the WAL may hold a few hundred first)


class Violation(AssertionError):
    """An invariant of the soak did not hold."""


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local(day: dt.date, hh: int, mm: int, ss: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ).timestamp()


def office_yaml(port: int) -> dict[str, Any]:
    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["office"]["id"] = "soak"
    # open every day, all day: the soak crosses midnight with commands (the driver keeps to office hours)
    data["office"]["hours"] = {day: ["00:00", "23:59"] for day in config.WEEKDAYS}
    data["steering"] = {"intake_stop": {"enabled": False}}
    data["broker"]["port"] = port
    data["nodes"].append({"id": "disp-2", "role": "dispenser", "services": ["pass", "melde"]})
    data["controller"] = {"database": "soak.db", "node_commands_per_s": 1000}
    return data


@dataclass
class Stats:
    faults: Counter[str] = field(default_factory=Counter)
    commands: int = 0
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    controller_restarts: int = 0
    broker_restarts: int = 0
    answer_after_restart_s: list[float] = field(default_factory=list)
    answer_after_broker_s: list[float] = field(default_factory=list)
    cpu_to_answer_s: list[float] = field(default_factory=list)  # the controller's own CPU time until then
    load: list[float] = field(default_factory=list)  # 1-minute load average, sampled after each fault
    offline_tickets: int = 0
    after_kill: int = 0  # burst commands not yet answered when the controller was killed
    disk_full_internal: int = 0
    disk_full_ok: int = 0
    clock_refusals: int = 0
    stepped_back_ok: int = 0  # tickets issued at once after a step back while running
    violations: list[str] = field(default_factory=list)
    events: int = 0
    days: int = 0
    notes: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, work: Path, *, seed: int, step_s: float, max_answer_s: float, start: dt.date):
        self.work = work
        self.rng = random.Random(seed)
        self.step_s = step_s
        self.max_answer_s = max_answer_s
        self.start_day = start
        self.stats = Stats()
        self.port = free_port()
        self.broker_dir = work / "broker"
        self.broker_dir.mkdir()
        self.broker_conf = render_local_config(self.port, self.broker_dir / "mosquitto.conf")
        self.broker: Mosquitto | None = None
        self.data = work / "data"
        self.data.mkdir()
        self.tmpfs = self._mount_tmpfs()
        data = office_yaml(self.port)
        self.cfg_path = work / "office.yaml"
        self.cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True))
        self.cfg = config.load(self.cfg_path)
        self.db = self.data / "soak.db"
        self.clock_path = work / "clock"  # outside the tmpfs: a full disk must not stop the clock
        self.now = 0.0  # the true time of the simulation
        self.skew = 0.0  # how far the controller's clock is off it
        self.proc: subprocess.Popen[bytes] | None = None
        self.nodes: dict[str, NodeRuntime] = {}
        self.lock = threading.Lock()
        # what the driver was told: every ok reply must be in the log
        self.acked: list[tuple[str, str]] = []  # (node, request id) since the last check
        self.acked_tickets: dict[str, str] = {}  # ticket id -> number
        self.acked_calls: set[str] = set()  # ticket ids
        self.acked_leases: set[tuple[str, str, int]] = set()  # (day, prefix, first)
        self.lease: dict[str, Any] | None = None  # disp-2's lease of today
        self.lease_used = 0
        self.offline: list[tuple[str, int, float]] = []  # (service, number, issued_at) not yet reported
        self.offline_reported: set[tuple[str, str]] = set()  # (day, number)
        self.cut_off_until: float | None = None
        # the log as read so far
        self._seq = 0
        self._ts = 0.0  # the latest event time read: none may come before it
        self._day: str | None = None
        self._numbers: dict[str, set[str]] = {}
        self._log_tickets: dict[str, tuple[str, str, bool]] = {}  # id -> (day, number, offline)
        self._log_calls: set[str] = set()
        self._log_leases: set[tuple[str, str, int]] = set()

    # ------------------------------------------------------------------------------ set-up
    def _mount_tmpfs(self) -> bool:
        if os.geteuid() != 0:
            self.stats.notes.append("not root: no tmpfs, so no disk-full episodes")
            return False
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0755", "tmpfs", str(self.data)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            self.stats.notes.append(f"mount tmpfs failed ({r.stderr.strip()}): no disk-full episodes")
            return False
        return True

    def close(self) -> None:
        for rt in self.nodes.values():
            with contextlib.suppress(Exception):
                rt.stop()
        self.stop_controller()
        if self.broker:
            self.broker.stop()
        if self.db.exists():  # keep the log for a look afterwards: the tmpfs goes
            with (
                contextlib.suppress(sqlite3.Error),
                contextlib.closing(sqlite3.connect(self.db)) as src,
                contextlib.closing(sqlite3.connect(self.work / "soak.db")) as dst,
            ):
                src.backup(dst)
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.data)], check=False)

    def set_clock(self) -> None:
        tmp = self.clock_path.with_suffix(".tmp")
        tmp.write_text(f"{self.now + self.skew:.3f}\n")
        os.replace(tmp, self.clock_path)

    def controller_now(self) -> float:
        return self.now + self.skew

    def start_broker(self) -> None:
        self.broker = Mosquitto(port=self.port, config=self.broker_conf, workdir=self.broker_dir).start()

    def start_controller(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "waitroom", "--log-level", "WARNING", "controller", "-c"]
        cmd += [str(self.cfg_path), "--data-dir", str(self.data), "--clock-file", str(self.clock_path)]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "controller.log").open("ab"),
        )

    def stop_controller(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill_controller(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def node(self, node_id: str) -> NodeRuntime:
        rt = self.nodes.get(node_id)
        if rt is None:
            rt = self.nodes[node_id] = NodeRuntime(self.cfg, node_id)
            if not rt.start(wait=15):
                raise RuntimeError(f"{node_id} did not connect to the broker")
        return rt

    # ------------------------------------------------------------------------------ commands
    def send(
        self, node_id: str, op: str, args: dict[str, Any], *, timeout: float = 0.5, retries: int = 60
    ) -> dict[str, Any] | None:
        """One command with the node runtime's retries (same request id); None when never answered."""
        rt = self.node(node_id)
        try:
            reply = rt.request_reply(op, args, timeout=timeout, retries=retries)
        except Exception:  # RequestTimeout
            with self.lock:
                self.stats.commands += 1
                self.stats.refused["no_answer"] += 1
            return None
        with self.lock:
            self.stats.commands += 1
            if reply.get("ok"):
                self.stats.ok += 1
                self.acked.append((node_id, str(reply["id"])))
                self._note_ack(op, reply.get("result") or {})
            else:
                code = (reply.get("error") or {}).get("code", "?")
                self.stats.refused[code] += 1
        return reply

    def _note_ack(self, op: str, result: dict[str, Any]) -> None:
        if op in ("ticket.issue", "ticket.report_offline"):
            t = result["ticket"]
            self.acked_tickets[t["id"]] = t["number"]
        elif op == "counter.call_next":
            self.acked_calls.add(result["call"]["ticket_id"])
        elif op == "ticket.lease":
            le = result["lease"]
            self.acked_leases.add((le["day"], le["prefix"], le["first"]))

    def probe(self, limit: float = 60.0) -> float:
        """Seconds until the controller answers a harmless command (counter.open of an open counter)."""
        t0 = time.monotonic()
        rt = self.node("counter-4")
        reply = None
        with contextlib.suppress(Exception):
            reply = rt.request_reply("counter.open", {"counter": "c4"}, timeout=0.1, retries=int(limit / 0.1))
        if reply is None:
            raise Violation(f"the controller did not answer within {limit:.0f} s")
        return time.monotonic() - t0

    def workload_step(self) -> None:
        """One step of an office day: walk-ins at disp-1, calls at the counters."""
        for _ in range(self.rng.choice((0, 1, 1, 2, 2, 3))):
            self.send("disp-1", "ticket.issue", {"service": self.rng.choice(SERVICES)})
        for node_id, cid in COUNTERS.items():
            r = self.rng.random()
            if r < 0.45:
                self.send(node_id, "counter.call_next", {"counter": cid})
            elif r < 0.55:
                self.send(node_id, "counter.served", {"counter": cid})
        if self.cut_off_until is not None:
            if self.now >= self.cut_off_until:
                self.reconnect_dispenser()
            elif self.rng.random() < 0.5:
                self.print_offline()

    def burst(self) -> list[threading.Thread]:
        """Commands from five nodes at once (threads): a kill then meets some of them in flight."""

        def run(node_id: str, op: str, args: dict[str, Any], n: int) -> None:
            for _ in range(n):
                self.send(node_id, op, args)

        jobs = [("disp-1", "ticket.issue", {"service": s}, 4) for s in SERVICES[:2]]
        jobs += [(n, "counter.call_next", {"counter": c}, 3) for n, c in COUNTERS.items()]
        threads = [threading.Thread(target=run, args=j, daemon=True) for j in jobs]
        for t in threads:
            t.start()
        return threads

    # ------------------------------------------------------------------------------ the dispenser's lease
    def take_lease(self) -> None:
        reply = self.send("disp-2", "ticket.lease", {"service": "pass", "count": 60})
        if reply and reply.get("ok"):
            self.lease, self.lease_used = reply["result"]["lease"], 0

    def cut_off_dispenser(self, minutes: float) -> None:
        if self.lease is None or self.lease_used > self.lease["count"] - 20:
            self.take_lease()  # enough numbers for the time away
        rt = self.nodes.pop("disp-2", None)
        if rt is not None:
            rt.stop()
        self.cut_off_until = self.now + minutes * 60

    def print_offline(self) -> None:
        if self.lease is None or self.lease_used >= self.lease["count"]:
            return
        number = self.lease["first"] + self.lease_used
        self.lease_used += 1
        self.offline.append(("pass", number, round(self.controller_now(), 3)))
        self.stats.offline_tickets += 1

    def reconnect_dispenser(self) -> None:
        self.cut_off_until = None
        self.node("disp-2")
        while self.offline:
            service, number, issued_at = self.offline[0]
            args = {"service": service, "number": number, "issued_at": issued_at}
            reply = self.send("disp-2", "ticket.report_offline", args)
            if reply is None or not reply.get("ok"):
                code = reply and reply["error"]["code"]
                if code == "clock_behind":  # the time sync will come; the dispenser keeps it and retries
                    return
                self.violation(f"offline ticket {number} not taken: {reply}")
            else:
                self.offline_reported.add((self.controller_day(), reply["result"]["ticket"]["number"]))
            self.offline.pop(0)

    def controller_day(self) -> str:
        return self.cfg.office.today(self.controller_now())

    # ------------------------------------------------------------------------------ invariants
    def violation(self, text: str) -> None:
        log.error("VIOLATION: %s", text)
        self.stats.violations.append(text)

    def read_log(self) -> None:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT seq, type, data FROM events WHERE seq > ? ORDER BY seq", (self._seq,)
            ).fetchall()
            replies = {
                (n, r): json.loads(rep) for n, r, rep in db.execute("SELECT node, rid, reply FROM replies")
            }
        finally:
            db.close()
        for seq, type_, data in rows:
            e = json.loads(data)
            self._seq = seq
            if e["ts"] < self._ts:
                self.violation(
                    f"event {seq} ({type_}) is stamped {self._ts - e['ts']:.1f} s before an earlier one"
                )
            self._ts = max(self._ts, e["ts"])
            if type_ == "day_started":
                if self._day is not None and e["day"] <= self._day:
                    self.violation(f"day {e['day']} started after day {self._day} (seq {seq})")
                self._day = e["day"]
                self._numbers.setdefault(self._day, set())
            elif type_ == "ticket_issued":
                day = self._day or "?"
                if e["number"] in self._numbers.setdefault(day, set()):
                    self.violation(f"{e['number']} issued twice on {day} (seq {seq})")
                self._numbers[day].add(e["number"])
                self._log_tickets[e["id"]] = (day, e["number"], bool(e.get("offline")))
            elif type_ == "ticket_called":
                self._log_calls.add(e["ticket"])
            elif type_ == "lease_granted":
                self._log_leases.add((self._day or "?", e["prefix"], e["first"]))
        self.stats.events = self._seq
        with self.lock:
            acked, self.acked = self.acked, []
        for key in acked:
            stored = replies.get(key)
            if stored is None or not stored.get("ok"):
                self.violation(f"acked command {key} is not in the stored replies: {stored}")

    def check(self, after: str) -> None:
        """Every invariant, against the log as it is now."""
        if self.proc is None or self.proc.poll() is not None:
            self.violation(f"the controller is not running after {after}")
            self.start_controller()
            self.stats.controller_restarts += 1
        self.check_log(after)

    def check_log(self, after: str) -> None:
        """The invariants that the event log alone answers."""
        self.read_log()
        for tid, number in self.acked_tickets.items():
            got = self._log_tickets.get(tid)
            if got is None or got[1] != number:
                self.violation(f"acked ticket {number} ({tid}) is not in the log after {after}")
        for tid in self.acked_calls - self._log_calls:
            self.violation(f"acked call of ticket {tid} is not in the log after {after}")
        for lease in self.acked_leases - self._log_leases:
            self.violation(f"acked lease {lease} is not in the log after {after}")
        offline_in_log = {(d, n) for d, n, off in self._log_tickets.values() if off}
        for key in self.offline_reported - offline_in_log:
            self.violation(f"reported offline ticket {key} is not in the log after {after}")
        # the log is complete: check each id once, keep the memory small over many days
        self.acked_tickets.clear()
        self.acked_calls.clear()
        self.acked_leases.clear()
        self.offline_reported.clear()

    def timed_answer(self, what: str, into: list[float], limit: float) -> None:
        took = self.probe()
        into.append(took)
        if into is self.stats.answer_after_restart_s and self.proc is not None:
            self.stats.cpu_to_answer_s.append(cpu_s(self.proc.pid))
        if took > limit:
            self.violation(f"the controller answered {took:.2f} s after {what} (limit {limit:g} s)")

    # ------------------------------------------------------------------------------ faults
    def fault(self, kind: str) -> None:
        log.info("fault %s at %s", kind, dt.datetime.fromtimestamp(self.now, TZ).isoformat())
        self.stats.faults[kind] += 1
        getattr(self, "fault_" + kind)()
        self.check(kind)
        self.stats.load.append(os.getloadavg()[0])

    def fault_sigkill(self) -> None:
        before = self.stats.commands
        threads = self.burst()
        deadline = time.monotonic() + 10
        target = before + self.rng.randint(1, 12)
        while self.stats.commands < target and time.monotonic() < deadline:
            time.sleep(0.005)
        self.kill_controller()
        done = self.stats.commands - before
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.start_controller()
        self.stats.controller_restarts += 1
        self.timed_answer("a SIGKILL", self.stats.answer_after_restart_s, self.max_answer_s)
        for t in threads:
            t.join(120)
        self.stats.after_kill += self.stats.commands - before - done  # answered only after the restart

    def fault_broker_restart(self) -> None:
        assert self.broker and self.broker.proc
        self.broker.proc.kill()
        self.broker.proc.wait()
        self.broker.stop()
        time.sleep(self.rng.uniform(0.3, 2.0))
        self.start_broker()
        self.stats.broker_restarts += 1
        # both the controller and the asking node reconnect, each within the back-off cap
        self.timed_answer("a broker restart", self.stats.answer_after_broker_s, BROKER_ANSWER_S)

    def fault_dispenser_cutoff(self) -> None:
        if self.cut_off_until is not None:
            self.reconnect_dispenser()
        self.cut_off_dispenser(self.rng.uniform(5, 30))

    def fault_clock_back(self) -> None:
        self.skew = -self.rng.uniform(5, 100)
        self.set_clock()
        self.workload_step()  # commands go on: a step within the tolerance is not refused

    def fault_clock_forward(self) -> None:
        self.now += self.rng.uniform(600, 3600)
        self.set_clock()
        self.workload_step()

    def fault_midnight_step(self) -> None:
        self.skew = -self.rng.uniform(20, 60)
        self.set_clock()
        for _ in range(2):
            self.send("disp-1", "ticket.issue", {"service": self.rng.choice(SERVICES)})

    def fault_boot_behind(self) -> None:
        self.kill_controller()
        self.skew = -self.rng.uniform(4 * 3600, 30 * 3600)  # fake-hwclock: the time of the last shutdown
        self.set_clock()
        self.start_controller()
        self.stats.controller_restarts += 1
        self.timed_answer(
            "a restart with the clock behind", self.stats.answer_after_restart_s, self.max_answer_s
        )
        reply = self.send("disp-1", "ticket.issue", {"service": "pass"})
        if reply is None or reply.get("ok") or reply["error"]["code"] != "clock_behind":
            self.violation(f"a ticket with the clock {-self.skew:.0f} s behind the log: {reply}")
        else:
            self.stats.clock_refusals += 1
        self.wait_for_alarm()
        self.skew = 0.0  # the time sync
        self.set_clock()

    def wait_for_alarm(self, code: str = "clock_behind", timeout: float = 10.0) -> None:
        rt = self.node("disp-1")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(a.get("code") == code for a in (rt.state or {}).get("alerts", [])):
                return
            time.sleep(0.05)
        self.violation(f"no {code} alarm in the office summary while the clock was behind")

    def fault_clock_step_back(self) -> None:
        ahead = self.rng.uniform(600, 2400)
        self.skew = ahead  # a bad time source: the events of these minutes are stamped ahead
        self.set_clock()
        self.workload_step()
        self.send("disp-1", "ticket.issue", {"service": "pass"})
        self.skew = 0.0  # the time sync steps the clock back while the controller runs: it goes on
        self.set_clock()
        reply = self.send("disp-1", "ticket.issue", {"service": "pass"})
        if reply is None or not reply.get("ok"):
            self.violation(f"a ticket after the clock stepped back {ahead:.0f} s while running: {reply}")
        else:
            self.stats.stepped_back_ok += 1
        self.wait_for_alarm("clock_stepped_back")
        self.workload_step()

    def fault_disk_full(self) -> None:
        if not self.tmpfs:
            return
        ballast = self.data / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 1 << 12, 1 << 9):
                chunk = b"\0" * size
                with contextlib.suppress(OSError):
                    while os.write(fd, chunk):
                        pass
        finally:
            os.close(fd)
        # WAL space already allocated may still take a commit: that is a true ok, checked like every other
        internal = 0
        for _ in range(DISK_FULL_COMMANDS):  # until the log cannot grow: then "internal", never a false ok
            reply = self.send("disp-1", "ticket.issue", {"service": "melde"}, timeout=1.0, retries=5)
            if reply is None:
                continue
            if reply.get("ok"):
                self.stats.disk_full_ok += 1
            elif reply["error"]["code"] == "internal":
                self.stats.disk_full_internal += 1
                internal += 1
                if internal >= 3:
                    break
        if self.proc is None or self.proc.poll() is not None:
            self.violation("the controller died on a full disk")
        ballast.unlink()
        for _ in range(50):  # it answers normally again once there is space
            reply = self.send("disp-1", "ticket.issue", {"service": "melde"}, timeout=1.0, retries=5)
            if reply and reply.get("ok"):
                return
            time.sleep(0.1)
        self.violation("the controller does not take tickets again after the disk was freed")

    # ------------------------------------------------------------------------------ the days
    def plan(self, days: int, faults: int) -> list[list[tuple[int, str]]]:
        """Per day: (step, kind) of the faults; step -1 is the window around the next midnight."""
        kinds = list(KINDS if self.tmpfs else [k for k in KINDS if k != "disk_full"])
        bag: list[str] = []
        while len(bag) < faults:
            self.rng.shuffle(kinds)
            bag += kinds
        bag = bag[:faults]
        self.rng.shuffle(bag)
        steps = int((local(self.start_day, *CLOSE) - local(self.start_day, *OPEN)) / self.step_s)
        out: list[list[tuple[int, str]]] = [[] for _ in range(days)]
        for i, kind in enumerate(bag):
            day = i % days
            out[day].append((-1 if kind == "midnight_step" else self.rng.randrange(1, steps), kind))
        return [sorted(d) for d in out]

    def run_day(self, day: dt.date, faults: list[tuple[int, str]]) -> None:
        self.now = local(day, *LEASE_AT)
        self.skew = 0.0
        self.set_clock()
        self.lease = None
        if self.cut_off_until is None:
            self.take_lease()
        step = 0
        pending = [f for f in faults if f[0] >= 0]
        close = local(day, *CLOSE)
        self.now = local(day, *OPEN)
        while self.now < close:
            self.set_clock()
            self.workload_step()
            while pending and pending[0][0] <= step:
                self.fault(pending.pop(0)[1])
            step += 1
            self.now += self.step_s
            if self.skew and self.rng.random() < 0.2:
                self.skew = 0.0  # the NTP correction of an earlier step back
        for _, kind in pending:  # a forward step skipped past them: still today
            self.fault(kind)
        self.skew = 0.0
        self.set_clock()
        if self.cut_off_until is not None or self.offline:
            self.reconnect_dispenser()
        if self.offline:
            self.violation(f"{len(self.offline)} offline tickets of {day} were never reported")
            self.offline.clear()
        self.check(f"the day {day}")
        # around midnight: a late ticket, the next day's first ones, and the clock steps planned for it
        nxt = day + dt.timedelta(days=1)
        self.now = local(day, 23, 59, 30)
        midnight = [k for s, k in faults if s < 0]
        while self.now < local(nxt, 0, 1):
            self.set_clock()
            self.send("disp-1", "ticket.issue", {"service": self.rng.choice(SERVICES)})
            if self.now >= local(nxt, 0, 0) and midnight:
                self.fault(midnight.pop())
            self.now += 10
        self.skew = 0.0
        self.set_clock()
        self.check(f"midnight after {day}")
        self.stats.days += 1

    def run(self, days: int, faults: int) -> Stats:
        self.now = local(self.start_day, *LEASE_AT)
        self.set_clock()
        self.start_broker()
        self.start_controller()
        for n in ("disp-1", "disp-2", *COUNTERS):
            self.node(n)
        self.probe()
        for i, planned in enumerate(self.plan(days, faults)):
            day = self.start_day + dt.timedelta(days=i)
            self.run_day(day, planned)
            log.info("day %s done: %d faults, %d commands", day, len(planned), self.stats.commands)
        self.check("the last day")
        return self.stats


def summary(stats: Stats, wall_s: float) -> dict[str, Any]:
    def mx(v: list[float]) -> float | None:
        return round(max(v), 3) if v else None

    def med(v: list[float]) -> float | None:
        return round(sorted(v)[len(v) // 2], 3) if v else None

    return {
        "days": stats.days,
        "faults": sum(stats.faults.values()),
        "faults_by_kind": dict(sorted(stats.faults.items())),
        "commands": stats.commands,
        "ok": stats.ok,
        "refused": dict(sorted(stats.refused.items())),
        "events": stats.events,
        "controller_restarts": stats.controller_restarts,
        "broker_restarts": stats.broker_restarts,
        "max_answer_after_restart_s": mx(stats.answer_after_restart_s),
        "max_answer_after_broker_s": mx(stats.answer_after_broker_s),
        "median_answer_after_restart_s": med(stats.answer_after_restart_s),
        "max_cpu_to_answer_s": mx(stats.cpu_to_answer_s),
        "load_avg_1min": [round(min(stats.load), 1), round(max(stats.load), 1)] if stats.load else None,
        "offline_tickets": stats.offline_tickets,
        "burst_commands_answered_after_a_kill": stats.after_kill,
        "clock_refusals": stats.clock_refusals,
        "stepped_back_ok": stats.stepped_back_ok,
        "disk_full_internal": stats.disk_full_internal,
        "disk_full_ok": stats.disk_full_ok,
        "violations": stats.violations,
        "notes": stats.notes,
        "wall_s": round(wall_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=10, help="simulated office days (default 10)")
    p.add_argument("--faults", type=int, default=60, help="faults injected over all days (default 60)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the workload and the faults")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--step", type=float, default=120.0, help="simulated seconds per step of a day")
    p.add_argument(
        "--start", default="2026-03-26", help="first day (default: ten days across the DST change)"
    )
    p.add_argument(
        "--max-answer", type=float, default=2.0, help="seconds the controller may take after a restart"
    )
    p.add_argument("--workdir", help="keep the broker, the controller's log and the data here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("waitroom.node", "waitroom.mqtt", "waitroom.paho"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)  # reconnects and retries are the point here
    work = Path(args.workdir or tempfile.mkdtemp(prefix="waitroom-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    soak = Soak(
        work,
        seed=args.seed,
        step_s=args.step,
        max_answer_s=args.max_answer,
        start=dt.date.fromisoformat(args.start),
    )
    t0 = time.monotonic()
    try:
        stats = soak.run(args.days, args.faults)
    except Violation as exc:
        soak.stats.violations.append(str(exc))
        stats = soak.stats
    finally:
        soak.close()
    out = summary(stats, time.monotonic() - t0)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"soak: {out['days']} office days, {out['faults']} faults, {out['wall_s']} s")
        print("  faults by kind: " + ", ".join(f"{k} {v}" for k, v in out["faults_by_kind"].items()))
        print(
            f"  commands {out['commands']}: ok {out['ok']}, refused {out['refused']}; "
            f"log {out['events']} events"
        )
        print(
            f"  SIGKILLs met {out['burst_commands_answered_after_a_kill']} burst commands not yet answered "
            "(retried with their request ids)\n"
            f"  restarts: controller {out['controller_restarts']}, broker {out['broker_restarts']}; "
            "max answer "
            f"after a controller restart {out['max_answer_after_restart_s']} s, after the broker "
            f"{out['max_answer_after_broker_s']} s"
        )
        print(
            f"  after a controller restart: median {out['median_answer_after_restart_s']} s, the "
            f"controller's own CPU until then at most {out['max_cpu_to_answer_s']} s; load average "
            f"{out['load_avg_1min']} on {os.cpu_count()} cores"
        )
        print(
            f"  offline tickets {out['offline_tickets']} (all reported), "
            f"clock refusals {out['clock_refusals']}, "
            f"disk full: {out['disk_full_internal']} internal, {out['disk_full_ok']} true ok"
        )
        for note in out["notes"]:
            print(f"  note: {note}")
        print(f"  violations: {len(out['violations'])}")
        for v in out["violations"][:20]:
            print(f"    {v}")
        print(f"  work dir: {work}")
    return 1 if out["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
