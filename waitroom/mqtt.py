"""Thin adapter over paho-mqtt 2.x: the only module that imports paho.

``MqttLink`` connects with a last will (retained ``offline`` status), publishes the retained ``online`` birth
status on every (re)connect, re-subscribes, reconnects with exponential back-off, and publishes ``offline``
itself before a clean disconnect (a graceful disconnect suppresses the will).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from waitroom import __version__, contract
from waitroom.config import Broker
from waitroom.contract import Role, Topics

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


def broker_password(broker: Broker) -> str | None:
    if os.environ.get("WAITROOM_MQTT_PASSWORD"):
        return os.environ["WAITROOM_MQTT_PASSWORD"]
    if broker.password_file:
        return Path(broker.password_file).read_text(encoding="utf-8").strip()
    return None


class MqttLink:
    """One MQTT connection of one node (or the controller) of an office."""

    def __init__(
        self,
        broker: Broker,
        office: str,
        node_id: str,
        role: Role,
        *,
        password: str | None = None,
        client_suffix: str = "",
    ):
        self.broker = broker
        self.topics = Topics(office)
        self.node_id = node_id
        self.role = role
        self._subs: dict[str, tuple[int, list[Handler]]] = {}  # filter -> (qos, handlers)
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._stopping = False
        self.on_connect_hooks: list[Callable[[], None]] = []
        self.on_disconnect_hooks: list[Callable[[], None]] = []
        # Client ids must be unique on the broker; the node id is, per office. A node served by several
        # processes (the web app's gunicorn workers) adds a suffix per process.
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"waitroom-{office}-{node_id}{client_suffix}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        self.client.enable_logger(logging.getLogger("waitroom.paho"))
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(1000)
        user = broker.username or node_id
        pw = password if password is not None else broker_password(broker)
        if pw is not None:
            self.client.username_pw_set(user, pw)
        if broker.tls is not None:
            self.client.tls_set(
                ca_certs=broker.tls.ca,
                certfile=broker.tls.cert,
                keyfile=broker.tls.key,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.will_set(
            self.topics.status(node_id),
            contract.encode(contract.status_payload(node_id, role, False, __version__)),
            qos=contract.QOS["status"],
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- lifecycle
    def start(self, wait: float | None = 10.0) -> bool:
        """Connect in the background (reconnecting forever); optionally wait for the first connection."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self.client.loop_start()
        if wait:
            return self.connected.wait(wait)
        return False

    def stop(self) -> None:
        """Publish ``offline`` ourselves, then disconnect cleanly."""
        self._stopping = True
        if self.connected.is_set():
            info = self.client.publish(
                self.topics.status(self.node_id),
                contract.encode(contract.status_payload(self.node_id, self.role, False, __version__)),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def client_thread_alive(self) -> bool:
        """The paho network thread runs (it reconnects by itself; if it died, nothing would)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    # -- messaging
    def publish(self, topic: str, payload: dict[str, Any] | bytes, kind: str) -> None:
        """Publish with the contract's QoS and retain flag for this message kind."""
        contract.validate_publish_topic(topic)
        data = payload if isinstance(payload, bytes) else contract.encode(payload)
        self.client.publish(topic, data, qos=contract.QOS[kind], retain=contract.RETAIN[kind])

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        contract.validate_subscribe_filter(topic_filter)
        with self._lock:
            known = topic_filter in self._subs
            old_qos, handlers = self._subs.get(topic_filter, (qos, []))
            self._subs[topic_filter] = (max(qos, old_qos), [*handlers, handler])
        if self.connected.is_set() and not known:
            self.client.subscribe(topic_filter, qos)

    # -- paho callbacks (network thread)
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection to %s:%s refused: %s", self.broker.host, self.broker.port, reason)
            return
        log.info("connected to MQTT broker %s:%s as %s", self.broker.host, self.broker.port, self.node_id)
        sock = client.socket()
        with contextlib.suppress(OSError, AttributeError):
            # Small messages both ways: without this, Nagle's algorithm and delayed ACKs add ~40 ms per reply.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            subs = list(self._subs.items())
        for topic_filter, (qos, _) in subs:
            client.subscribe(topic_filter, qos)
        self.publish(
            self.topics.status(self.node_id),
            contract.status_payload(self.node_id, self.role, True, __version__),
            "status",
        )
        self.connected.set()
        for hook in self.on_connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set() and not self._stopping:
            log.warning("MQTT connection lost (%s); reconnecting", reason)
        self.connected.clear()
        for hook in self.on_disconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-disconnect hook failed")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            handlers = [
                h for f, (_, hs) in self._subs.items() if paho.topic_matches_sub(f, msg.topic) for h in hs
            ]
        for handler in handlers:
            try:
                handler(msg.topic, msg.payload)
            except Exception:
                log.exception("handler for %s failed", msg.topic)
