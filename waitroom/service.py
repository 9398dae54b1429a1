"""The controller process: ``Office`` on MQTT.

Commands arrive on ``node/+/cmd`` and are handled one at a time (paho's network thread, under a lock shared
with the one-second tick). For each command: decide, commit to the event log, then publish the reply, the
events, the retained state snapshot and the retained public waits -- in that order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from waitroom.config import Config
from waitroom.contract import CONTROLLER_NODE_ID, Role, Topics
from waitroom.controller import Office, Outcome
from waitroom.mqtt import MqttLink
from waitroom.store import EventStore

log = logging.getLogger(__name__)


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
        self.topics = Topics(cfg.office.id)
        self.link = MqttLink(
            cfg.broker, cfg.office.id, CONTROLLER_NODE_ID, Role.CONTROLLER, password=password
        )
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.last_tick = time.monotonic()
        self.link.on_connect_hooks.append(self._republish)

    def start(self, wait: float = 10.0) -> bool:
        self.link.subscribe(self.topics.all_nodes("cmd"), self._on_cmd, qos=1)
        ok = self.link.start(wait=wait)
        self._ticker = threading.Thread(target=self._tick_loop, name="controller-tick", daemon=True)
        self._ticker.start()
        return ok

    def stop(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=3)
        self.link.stop()
        self.store.close()

    def _on_cmd(self, topic: str, payload: bytes) -> None:
        try:
            node_id, _ = self.topics.parse_node_topic(topic)
        except ValueError:
            log.warning("ignored message on %s", topic)
            return
        with self.lock:
            outcome = self.office.handle(node_id, payload)
            self._publish(node_id, outcome)

    def alive(self) -> bool:
        """Liveness for the systemd watchdog: the tick loop (which takes the command lock) ran recently."""
        return time.monotonic() - self.last_tick < 30 and self.link.client_thread_alive()

    def _tick_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.last_tick = time.monotonic()
            with self.lock:
                outcome = self.office.tick()
                if outcome.changed:
                    self._publish(None, outcome)

    def _publish(self, node_id: str | None, outcome: Outcome) -> None:
        if outcome.reply is not None and node_id is not None:
            self.link.publish(self.topics.reply(node_id), outcome.reply, "reply")
        if outcome.changed:
            for kind, payload in self.office.event_messages(outcome.events):
                self.link.publish(self.topics.event(kind), payload, "event")
            self.publish_state()

    def _republish(self) -> None:
        with self.lock:
            self.publish_state()

    def publish_state(self) -> None:
        snap = self.office.snapshot()
        self.link.publish(self.topics.state(), snap, "state")
        self.link.publish(self.topics.public(), self.office.public(snap), "public")
