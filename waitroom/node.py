"""The node runtime shared by every Pi node (dispenser, display, counter, assistance button, web).

It keeps the MQTT connection (reconnect with back-off, last will, birth status), publishes a retained health
record with a heartbeat, delivers the retained office state and the events to the node's logic, and sends
commands with request/reply: a request id chosen here, a timeout, and retries that reuse the same id, so the
controller applies the command at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from waitroom import __version__, contract
from waitroom.contract import EventKind, Role, Topics
from waitroom.errors import CommandFailed, RequestTimeout
from waitroom.mqtt import MqttLink
from waitroom.view import with_static

if TYPE_CHECKING:  # the schema (pydantic); a node runs on light records of it (waitroom.nodeconfig)
    from waitroom.config import Config

log = logging.getLogger(__name__)

StateHandler = Callable[[dict[str, Any]], None]
EventHandler = Callable[[EventKind, dict[str, Any]], None]


class NodeRuntime:
    HEARTBEAT_S = 15.0

    def __init__(
        self, cfg: Config, node_id: str, *, password: str | None = None, link: MqttLink | None = None
    ):
        role = cfg.role_of(node_id)
        if role is None:
            raise ValueError(f"node {node_id!r} is not in the configuration of office {cfg.office.id}")
        self.cfg = cfg
        self.node_id = node_id
        self.role = role
        self.topics = Topics(cfg.office.id)
        self.link = link or MqttLink(cfg.broker, cfg.office.id, node_id, role, password=password)
        self.state: dict[str, Any] | None = None
        self.health: dict[str, Any] = {"status": "ok"}
        self._state_handlers: list[StateHandler] = []
        self._event_handlers: list[EventHandler] = []
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.time()
        self._hb: threading.Thread | None = None
        self.link.on_connect_hooks.append(self.publish_health)

    # -- lifecycle
    def start(self, wait: float | None = 10.0) -> bool:
        self.link.subscribe(self.topics.state(), self._on_state)
        self.link.subscribe(self.topics.events(), self._on_event)
        self.link.subscribe(self.topics.reply(self.node_id), self._on_reply)
        ok = self.link.start(wait=wait)
        self._hb = threading.Thread(target=self._heartbeat, name=f"{self.node_id}-heartbeat", daemon=True)
        self._hb.start()
        return ok

    def stop(self) -> None:
        self._stop.set()
        self.link.stop()

    def alive(self) -> bool:
        """Liveness for the systemd watchdog: the MQTT network thread and the heartbeat thread run."""
        return self.link.client_thread_alive() and self._hb is not None and self._hb.is_alive()

    @property
    def online(self) -> bool:
        return self.link.connected.is_set()

    # -- subscriptions
    def on_state(self, handler: StateHandler) -> None:
        self._state_handlers.append(handler)
        if self.state is not None:
            handler(self.state)

    def on_event(self, handler: EventHandler) -> None:
        self._event_handlers.append(handler)

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        self.link.subscribe(topic_filter, handler)

    def on_controller(self, handler: Callable[[bool], None]) -> None:
        """``handler(online)`` for each status of the controller (retained; its last will says offline). The
        broker keeps the office state retained, so only this tells a node that nobody is deciding."""

        def status(topic: str, payload: bytes) -> None:
            try:
                value = contract.decode(payload).get("status")
            except contract.ContractError as exc:
                log.warning("ignored bad controller status: %s", exc)
                return
            handler(value == "online")

        self.subscribe(self.topics.status(contract.CONTROLLER_NODE_ID), status)

    def _on_state(self, topic: str, payload: bytes) -> None:
        try:
            state = contract.decode(payload, limit=None)
        except contract.ContractError as exc:
            log.warning("ignored bad state message: %s", exc)
            return
        if (
            self.state is not None
            and state.get("seq", 0) < self.state.get("seq", 0)
            and state.get("day") == self.state.get("day")
        ):
            return  # an older snapshot delivered late
        state = with_static(state, self.cfg)  # names, zones, spoken names from the office configuration
        self.state = state
        for h in self._state_handlers:
            h(state)

    def _on_event(self, topic: str, payload: bytes) -> None:
        try:
            kind = EventKind(topic.rsplit("/", 1)[1])
            event = contract.decode(payload, limit=None)
        except (ValueError, contract.ContractError) as exc:
            log.warning("ignored bad event on %s: %s", topic, exc)
            return
        for h in self._event_handlers:
            h(kind, event)

    def _on_reply(self, topic: str, payload: bytes) -> None:
        try:
            reply = contract.decode(payload, limit=None)
        except contract.ContractError as exc:
            log.warning("ignored bad reply: %s", exc)
            return
        with self._lock:
            fut = self._pending.pop(str(reply.get("id")), None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    # -- commands
    def request(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        request_id: str | None = None,
        on_reply: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its reply's result; raise CommandFailed / RequestTimeout.

        Each retry republishes the same request id, so a command that did reach the controller is not
        applied twice; the controller answers a repeat with the reply it gave the first time. ``on_reply``
        sees the whole reply first, ok or not (its ``seq`` orders it against the state snapshots).
        """
        reply = self.request_reply(op, args, timeout=timeout, retries=retries, request_id=request_id)
        if on_reply is not None:
            on_reply(reply)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise CommandFailed(
                str(err.get("code", "internal")),
                str(err.get("message", "")),
                err.get("data") if isinstance(err.get("data"), dict) else None,
            )
        return reply.get("result") or {}

    def request_reply(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        payload = contract.command(op, args, request_id)
        rid = payload["id"]
        for attempt in range(retries + 1):
            fut: Future[dict[str, Any]] = Future()
            with self._lock:
                self._pending[rid] = fut
            if self.online:
                self.link.publish(self.topics.cmd(self.node_id), payload, "cmd")
            try:
                return fut.result(timeout=timeout)
            except TimeoutError:
                log.warning(
                    "%s %s: no reply within %.1f s (attempt %d of %d)",
                    op,
                    rid,
                    timeout,
                    attempt + 1,
                    retries + 1,
                )
            finally:
                with self._lock:
                    self._pending.pop(rid, None)
        raise RequestTimeout(f"{op}: the controller did not answer (request {rid})")

    # -- health
    def set_health(self, **fields: Any) -> None:
        """Merge fields into the retained health record (e.g. printer='paper_low') and publish it."""
        self.health.update(fields)
        self.publish_health()

    def publish_health(self) -> None:
        if not self.online and not self.link.connected.is_set():
            return
        body = {
            "node": self.node_id,
            "role": self.role.value,
            "version": __version__,
            "ts": round(time.time(), 3),
            "uptime_s": round(time.time() - self._started),
            **self.link.tls_health(),
            **self.health,
        }
        self.link.publish(self.topics.health(self.node_id), body, "health")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.HEARTBEAT_S):
            self.publish_health()


def role_of(cfg: Config, node_id: str) -> Role:
    role = cfg.role_of(node_id)
    if role is None:
        raise ValueError(f"unknown node {node_id!r}")
    return role
