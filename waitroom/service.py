"""The controller process: ``Office`` on MQTT, with group commit and coalesced publication.

paho's network thread only sorts incoming commands into the link's fair inbox (a queue per node, served in
turn). One engine thread takes everything that has arrived from the inbox itself (round robin over the
nodes, no thread in between), decides the commands in order, commits them in one transaction
(``Office.handle_batch``), and only then publishes their replies and events -- call events at once. The
retained summary (``state``) and the counter details are published coalesced, at most every
``STATE_MIN_S``; the queue page of a service whose tickets changed goes out just before the summary, at most
every ``PAGE_MIN_S`` per service, and every page again for new expected waits alone at most every
``QUEUE_MIN_S``. The full waiting-time forecast is refreshed off the command path (``Office.forecast_due``).
The one-second tick (new day, escalations, intake stop) runs on the same thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from waitroom import contract
from waitroom.config import Config
from waitroom.contract import CONTROLLER_NODE_ID, ErrorCode, Role, Topics
from waitroom.controller import NodeRateLimit, Office, Outcome
from waitroom.mqtt import MqttLink
from waitroom.store import EventStore

log = logging.getLogger(__name__)

MAX_BATCH = 256  # commands decided and committed together at most
STATE_MIN_S = 0.1  # the summary and counter details at most this often
PAGE_MIN_S = 0.5  # one service's queue page at most this often (its list changes with every command)
QUEUE_MIN_S = 1.0  # every queue page again for new expected waits alone at most this often
TICK_S = 1.0


class FileClock:
    """A test-only time source: the epoch seconds written in a file (``WAITROOM_CLOCK_FILE``, or
    ``waitroom controller --clock-file``), read at every call. Time stands still between
    two writes, so a driver such as ``python -m bench soak`` runs office days at speed, steps the clock back
    and forward and crosses midnight and DST at will. Write it atomically (a temporary file, then rename).
    Never set in production: the controller's clock is the system clock."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._now = self._read()

    def _read(self) -> float:
        try:
            with open(self.path) as f:
                return float(f.read().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise ValueError(f"clock file {self.path}: no epoch seconds in it ({exc})") from None

    def __call__(self) -> float:
        try:  # read every time (some µs): a cached stamp could miss two writes within a timer tick
            self._now = self._read()
        except ValueError:
            log.warning("clock file %s unreadable; keeping %.3f", self.path, self._now)
        return self._now


class SoleController:
    """One controller per office, also across machines and data directories.

    The data directory's lock (``waitroom.dbsafe``) stops a second controller on the same data. A second one
    with data of its own (another ``--data-dir``, a spare Pi with the same office file) would log in with the
    same account: the broker binds the client id to it, so each login throws the other out, and each in
    turn decided the commands that reached it from its own log -- every ticket number twice.

    So the controller says in its status messages (birth, will, its own offline) which process it is
    (``instance``, ``since``, ``host``, ``pid``) and reads its own status topic in the network thread,
    before any command that came after it. The status the broker keeps from before our birth tells how the
    last controller ended: its own clean ``offline``, or a process of this host that is gone, and we start
    at once; otherwise it may be alive and just thrown out by our login, so we hold the commands (they wait
    in the inbox, answered by nobody yet) for ``HOLD_S``. A status of another process after our own birth
    proves a second controller: while holding we step down (the running one keeps the office); once
    deciding we keep on and put our status back after its ``offline`` (the newcomer steps down itself),
    unless the other one started before us (it came back after our hold: the older one keeps the office)."""

    HOLD_S = 4.0  # longer than a controller thrown out takes to log in again (reconnect back-off 1 s + login)

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.instance = secrets.token_hex(6)
        self.since = round(time.time(), 3)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.armed = False  # our own birth came back: every other status since is a live one
        self.hold_until: float | None = None
        self._subscribed_at: float | None = None
        self.deciding = threading.Event()
        self.stepped_down = threading.Event()
        self.rival: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return contract.controller_identity(self.instance, self.since, self.host, self.pid)

    def on_status(self, payload: bytes) -> bool:
        """A message on the controller's status topic (network thread). True: put our status back."""
        try:
            status = json.loads(payload)
            if not isinstance(status, dict):
                raise ValueError("not an object")
        except ValueError:  # an empty payload (a cleared retained status) or garbage: nobody's
            return False
        with self._lock:
            if status.get("instance") == self.instance:
                self.armed = True
                return False
            if not self.armed:  # kept by the broker from before our birth: how did the last one end?
                if self.hold_until is None and self.last_one_is_gone(status):
                    return False
                if self.hold_until is None:
                    self.hold_until = self.clock() + self.HOLD_S
                    log.warning(
                        "the last controller (%s) may still run: commands wait %.0f s to see if it logs in "
                        "again",
                        self._who(status),
                        self.HOLD_S,
                    )
                return False
            # while holding we yield; once deciding, only to an older controller that may still run (one
            # that held for longer than HOLD_S, on a very busy machine, before the first came back)
            yields = not self.deciding.is_set() or (self._older(status) and not self.last_one_is_gone(status))
            if self.rival is None or self.rival.get("instance") != status.get("instance"):
                self.rival = status
                if yields:
                    log.critical(
                        "another controller of this office is running (%s): this one (%s) steps down%s -- "
                        "two controllers would number tickets twice",
                        self._who(status),
                        self._who(self.identity()),
                        "" if self.deciding.is_set() else " and decides nothing",
                    )
                else:
                    log.critical(
                        "another controller of this office (%s) logged in with this controller's account; it "
                        "must stop: two controllers number tickets twice",
                        self._who(status),
                    )
            if yields:
                self.stepped_down.set()
                return False
            # its will or its goodbye replaced our retained status: put ours back (not for its "online": two
            # deciding controllers would answer each other's status forever)
            return status.get("status") == "offline"

    def _older(self, status: dict[str, Any]) -> bool:
        """Did the controller of ``status`` start before this one?"""
        since = status.get("since")
        if not isinstance(since, (int, float)) or isinstance(since, bool):
            return False
        return (since, str(status.get("instance"))) < (self.since, self.instance)

    def last_one_is_gone(self, status: dict[str, Any]) -> bool:
        if status.get("status") == "offline" and status.get("clean") is True:
            return True  # it said goodbye itself
        pid = status.get("pid")
        if status.get("host") == self.host and isinstance(pid, int) and pid > 0:
            if pid == self.pid:
                return True
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True  # a process of this host that is gone (killed, crashed)
            except OSError:
                return False
        return False

    def may_decide(self, subscribed: bool = True) -> bool:
        """Engine thread: may commands be decided now? (True from then on.) ``subscribed``: the broker
        acknowledged our subscriptions (our status should come back to us)."""
        if self.deciding.is_set():
            return True
        with self._lock:
            if self.stepped_down.is_set():
                return False
            if not self.armed:
                if not subscribed:
                    return False
                now = self.clock()
                self._subscribed_at = self._subscribed_at or now
                if now - self._subscribed_at < self.HOLD_S:
                    return False
                # a broker that does not send our own messages back: the hold is all we can do
                log.warning("our own status did not come back within %.0f s: deciding commands", self.HOLD_S)
                self.armed = True
            if self.hold_until is not None and self.clock() < self.hold_until:
                return False
            if self.hold_until is not None:
                log.warning("no other controller logged in within %.0f s: deciding commands", self.HOLD_S)
            self.deciding.set()
            return True

    @staticmethod
    def _who(status: dict[str, Any]) -> str:
        return (
            f"process {str(status.get('pid', '?'))[:10]} on {str(status.get('host', '?'))[:64]}, "
            f"instance {str(status.get('instance', '?'))[:16]}"
        )


class ControllerService:
    def __init__(
        self,
        cfg: Config,
        db_path: str,
        *,
        clock: Callable[[], float] = time.time,
        password: str | None = None,
    ):
        self.cfg = cfg
        self.store = EventStore(db_path)
        self.office = Office(cfg, self.store, clock=clock)
        self.limits = NodeRateLimit(cfg)  # one node flooding its command topic cannot starve the others
        self.topics = Topics(cfg.office.id)
        self.sole = SoleController()
        self.link = MqttLink(
            cfg.broker,
            cfg.office.id,
            CONTROLLER_NODE_ID,
            Role.CONTROLLER,
            password=password,
            pull=True,
            identity=self.sole.identity(),
        )
        self.link.client.max_inflight_messages_set(1000)  # many replies in flight on a busy morning
        self.lock = threading.Lock()
        # the engine pulls its commands from the link's fair inbox: when it is behind, the inbox holds back
        # per node (and refuses a node whose queue is full, see _on_overflow)
        assert self.link.inbox is not None
        self.inbox = self.link.inbox
        self._stop = threading.Event()
        self._engine: threading.Thread | None = None
        self.last_tick = time.monotonic()
        self._next_tick = time.monotonic() + TICK_S
        self._state_at = 0.0
        self._queue_at = 0.0
        self._page_at: dict[str, float] = {}  # service -> when its page was last published (monotonic)
        self._published_seq = -1
        self._announced = False  # the retained messages published once this controller decides
        self._published_fc = -1.0
        self._published_alerts: dict[str, Any] = {}  # an alarm (the clock) reaches the admin page at once
        self.batches = 0  # statistics for benchmarks and the admin page
        self.commands = 0
        self.link.on_connect_hooks.append(self._republish)
        self.link.on_overflow.append(self._on_overflow)
        self._overflow_budget: dict[str, tuple[float, float]] = {}
        self._budget_lock = threading.Lock()
        self.flood_dropped = 0  # commands of a flooding node left without an answer
        self.final_seq: int | None = None  # the log's last seq at stop

    def start(self, wait: float = 10.0) -> bool:
        # a command is taken once, live: one published with the retain flag is not taken again from the
        # broker's retained store after a reconnect or a restart
        self.link.subscribe(self.topics.all_nodes("cmd"), self._no_handler, qos=1, retained=False)
        self.link.subscribe(self.topics.status(CONTROLLER_NODE_ID), self._on_status, qos=1, direct=True)
        self.inbox.admit = self._admit
        ok = self.link.start(wait=wait)  # publishing before the CONNECT is out would break the session
        self._engine = threading.Thread(target=self._engine_loop, name="controller-engine", daemon=True)
        self._engine.start()
        self._start_training()
        self._start_walk_ins()
        return ok

    def _start_walk_ins(self, poll_s: float = 600.0) -> None:
        """Learn the walk-in work per capacity window from the office's own log now and on every new day
        (``waitroom.appointments.walkins``), in a thread of its own: reading weeks of the log stays off the
        command path. Until it is learned, capacity keeps ``appointments.walk_in_share`` free."""
        if self.cfg.appointments.walk_in_weeks == 0 or str(self.store.path) == ":memory:":
            return
        from waitroom.appointments.walkins import learn_from_store

        db_path, tz = self.store.path, self.cfg.office.tz

        def loop() -> None:
            learned_for = None
            while not self._stop.is_set():
                now = self.office.clock()
                today = dt.datetime.fromtimestamp(now, tz).date()
                if today != learned_for:
                    try:
                        store = EventStore.reader(db_path)  # the engine thread keeps writing
                        try:
                            profile = learn_from_store(store, self.cfg, now)
                        finally:
                            store.close()
                        self.office.set_walk_ins(profile)
                        learned_for = today
                        log.info("walk-in work per capacity window learned from %d office days", profile.days)
                    except Exception:  # capacity keeps the configured share; tried again next round
                        log.exception("learning the walk-in work from the log failed")
                self._stop.wait(poll_s)

        threading.Thread(target=loop, name="walk-ins", daemon=True).start()

    def _start_training(self) -> None:
        """Retrain the learned forecast from the office's own log every night at 02:00 (no load then)."""
        learned = self.office.learned
        if learned is None:
            return
        from waitroom.forecast.events import rows_from_store_events
        from waitroom.forecast.jobs import ModelStore, Trainer

        services = tuple(s.id for s in self.cfg.services)
        tz = self.cfg.office.tz
        db_path = self.store.path

        def rows() -> list:
            store = EventStore.reader(db_path)  # read-only: the engine thread keeps writing
            try:
                return list(rows_from_store_events(store.events(), services, tz))
            finally:
                store.close()

        self.trainer = Trainer(rows, services, ModelStore(db_path.parent / "forecast"), learned.set_model)
        self.trainer.run_nightly(hour=2, tz=tz)

    def stop(self) -> None:
        self._stop.set()
        if getattr(self, "trainer", None) is not None:
            self.trainer.stop()
        self.inbox.wake()
        if self._engine:
            self._engine.join(timeout=5)
        self.link.stop()
        with contextlib.suppress(sqlite3.Error):  # for the status (waitroom.dbsafe.note_log)
            self.final_seq = self.store.last_seq()
        self.store.close()

    @property
    def stepped_down(self) -> threading.Event:
        """Set when this controller found another one of the office running and stepped down."""
        return self.sole.stepped_down

    def _on_status(self, topic: str, payload: bytes) -> None:
        if self.sole.on_status(payload) and self.link.connected.is_set():
            # the other one's login threw us out (its will) or it said it is online: the office's status is
            # ours again
            self.link.publish(topic, self.link.status_message(True), "status")

    @staticmethod
    def _no_handler(topic: str, payload: bytes) -> None:
        """Commands are not handled per message: the engine takes them from the inbox in batches."""

    def _admit(self, topic: str) -> bool:
        """Network thread, before a command is queued: within its node's rate? (no decoding)"""
        parts = topic.rsplit("/", 2)
        return len(parts) < 3 or self.limits.allow(parts[-2])

    def _on_overflow(self, topic: str, payload: bytes) -> None:
        """A node sent more than its share (the link's fair inbox is full for it): one clear answer."""
        try:
            node_id, _ = self.topics.parse_node_topic(topic)
        except ValueError:
            return
        self._refuse_flood(node_id, payload)

    def _refuse_flood(self, node_id: str, payload: bytes) -> None:
        try:
            contract.check_id(node_id)
        except contract.ContractError:
            return
        if not self._answer_flood(node_id):
            return
        reply = contract.error_reply(
            contract.request_id_of(payload),
            ErrorCode.RATE_LIMITED,
            f"node {node_id} sends more than {self.limits.rate(node_id):g} commands a second; retry later",
        )
        self.link.publish(self.topics.reply(node_id), reply, "reply")

    def _answer_flood(self, node_id: str) -> bool:
        """Answering every message of a flood would only feed it: at most 5 such answers a second a node."""
        with self._budget_lock:
            now = time.monotonic()
            tokens, last = self._overflow_budget.get(node_id, (10.0, now))
            tokens = min(10.0, tokens + (now - last) * 5.0)
            ok = tokens >= 1
            self._overflow_budget[node_id] = (tokens - 1 if ok else tokens, now)
        if not ok:
            self.flood_dropped += 1
        return ok

    def alive(self) -> bool:
        """Liveness for the systemd watchdog: the engine loop ran recently and paho's thread lives."""
        return (
            time.monotonic() - self.last_tick < 30
            and self.link.client_thread_alive()
            and self._engine is not None
            and self._engine.is_alive()
        )

    # -- the engine thread
    def _engine_loop(self) -> None:
        while not self._stop.is_set():
            if self.sole.stepped_down.is_set():
                # leave without a word: the retained status and state are the other controller's
                self.link.stop(publish_offline=False)
                self.inbox.stop()
                return
            if not self.sole.may_decide(self.link.subscribed.is_set()):
                self.last_tick = time.monotonic()  # holding is not hanging (the systemd watchdog)
                self._stop.wait(0.05)  # the commands wait in the inbox
                continue
            if not self._announced:
                self._announced = True
                self._republish()  # held until now: the retained messages were not ours to publish
            try:
                self._engine_step()
            except Exception:  # never let the engine die: log, rebuild, go on
                log.exception("controller engine step failed; rebuilding the state from the log")
                with self.lock:
                    self.office.rebuild()
                time.sleep(0.05)

    def _wait_s(self) -> float:
        mono = time.monotonic()
        if self.office.forecasting:
            return 0.0  # a sliced forecast under way: only look whether a command came first
        waits = [self._next_tick - mono, self.office.forecast_due(mono)]
        if self._publish_pending():
            waits.append(self._state_at + STATE_MIN_S - mono)
        if self.office.eta_dirty:
            waits.append(self._queue_at + QUEUE_MIN_S - mono)
        if self.office.dirty_services:
            waits.append(
                min(self._page_at.get(s, -PAGE_MIN_S) for s in self.office.dirty_services) + PAGE_MIN_S - mono
            )
        return min(max(min(waits), 0.0), TICK_S)

    def _engine_step(self) -> None:
        with self.lock:  # a reconnect (network thread) marks every page dirty meanwhile
            wait = self._wait_s()
        items = self.inbox.take(MAX_BATCH, wait)
        with self.lock:
            if items:
                self._run_batch(items)
            mono = time.monotonic()
            if mono >= self._next_tick:
                self._next_tick = mono + TICK_S
                self.last_tick = mono
                outcome = self.office.tick(fresh_forecast=False)
                if outcome.changed:
                    self._publish_events(outcome)
        # the forecast first (when due), so that the summary that follows carries it; a command that arrives
        # meanwhile is not held up by it, and then the summary goes out with the last forecast
        self._forecast_slices()
        with self.lock:
            self._publish_coalesced(time.monotonic())

    def _forecast_slices(self) -> None:
        """The coalesced forecast when it is due, slice by slice; a command that arrives meanwhile goes
        first (the forecast goes on after its batch). A press never waits for a whole forecast."""
        while True:
            with self.lock:
                o = self.office
                if not o.forecasting and o.forecast_due(time.monotonic()) > 0:
                    return
                if o.forecast_slice():
                    return  # installed: its summary and pages go out next
            if self._yield_to_commands():
                return

    def _yield_to_commands(self) -> bool:
        """Let the network thread hand over what arrived (it needs the interpreter for that); True when a
        command waits."""
        time.sleep(0)
        return self.inbox.ready()

    def _run_batch(self, items: list[tuple[str, bytes]]) -> None:
        cmds: list[tuple[str, bytes]] = []
        for topic, payload in items:
            try:
                node_id, _ = self.topics.parse_node_topic(topic)
            except ValueError:
                log.warning("ignored a command on the invalid topic %r", topic[:200])
                continue
            cmds.append((node_id, payload))
        if not cmds:
            return
        outcomes = self.office.handle_batch(cmds)  # committed when it returns
        self.batches += 1
        self.commands += len(cmds)
        for (node_id, _), outcome in zip(cmds, outcomes, strict=True):
            if outcome.reply is not None:
                self.link.publish(self.topics.reply(node_id), outcome.reply, "reply")
            if outcome.changed:
                self._publish_events(outcome)
        self.link.write_now()  # the replies and calls go out before the summary and forecast are computed

    def _publish_events(self, outcome: Outcome) -> None:
        for kind, payload in self.office.event_messages(outcome.events):
            self.link.publish(self.topics.event(kind), payload, "event")

    def _publish_pending(self) -> bool:
        o = self.office
        return (
            o.state.seq != self._published_seq
            or o._forecast_at != self._published_fc
            or o.alerts != self._published_alerts
        )

    def _publish_coalesced(self, mono: float) -> None:
        if not self.link.connected.is_set():
            return  # everything retained is published again on (re)connect
        o = self.office
        if self._publish_pending() and mono - self._state_at >= STATE_MIN_S:
            self._state_at = mono
            self._publish_queues(mono)  # the pages whose tickets changed, just before the summary they fit
            self._publish_summary()
        elif o.dirty_services:
            self._publish_queues(mono, yielding=True)  # pages held back by PAGE_MIN_S
        if o.eta_dirty and mono - self._queue_at >= QUEUE_MIN_S:
            self._queue_at = mono
            o.eta_dirty = False  # new expected waits alone: every page, at most once a second
            o.dirty_services.update(self.cfg.service_ids)
            self._publish_queues(mono, yielding=True)

    def _publish_summary(self) -> None:
        o = self.office
        self._published_seq, self._published_fc = o.state.seq, o._forecast_at
        self._published_alerts = dict(o.alerts)
        # the counter details first: a page that sees the summary's seq has the details that fit it
        for cid in sorted(o.dirty_counters):
            if cid in self.cfg.counter_ids:
                self.link.publish(self.topics.counter(cid), o.counter_detail(cid), "counter")
        o.dirty_counters.clear()
        snap, data = o.state_message()
        self.link.publish(self.topics.state(), data, "state")
        self.link.publish(self.topics.public(), o.public(snap), "public")

    def _publish_queues(self, mono: float | None = None, yielding: bool = False) -> None:
        """The pages of the services whose tickets changed; with ``mono``, only those not published in the
        last ``PAGE_MIN_S`` or whose parked list changed (the others stay due: the web app hides a called or
        cancelled ticket from its event at once). ``yielding``: stop after a page when a command waits (the
        rest stay due and go out after its batch)."""
        o = self.office
        for k, sid in enumerate(sorted(o.dirty_services)):
            if yielding and k and self._yield_to_commands():
                return
            # a parked list is not corrected from the events as the waiting list is: no delay for it
            due = mono is None or sid in o.parked_changed
            if not due and mono - self._page_at.get(sid, -PAGE_MIN_S) < PAGE_MIN_S:
                continue
            o.dirty_services.discard(sid)
            o.parked_changed.discard(sid)
            if sid in self.cfg.service_ids:
                self._page_at[sid] = time.monotonic()
                self.link.publish(self.topics.queue(sid), o.queue_page(sid), "queue")

    def _republish(self) -> None:
        """After (re)connecting: every retained message again (once this controller decides)."""
        if not self.sole.deciding.is_set():
            return
        with self.lock:
            self.office.dirty_services.update(self.cfg.service_ids)
            self.office.dirty_counters.update(self.cfg.counter_ids)
            self.publish_state()

    def publish_state(self) -> None:
        """Publish the summary, the counter details and the queue pages now (start-up, reconnect, tests)."""
        self._state_at = self._queue_at = time.monotonic()
        self._publish_summary()
        self._publish_queues()
