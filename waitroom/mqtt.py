"""Thin adapter over paho-mqtt 2.x: the only module that imports paho.

``MqttLink`` connects with a last will (retained ``offline`` status), publishes the retained ``online`` birth
status on every (re)connect, re-subscribes, reconnects with exponential back-off and full jitter, and
publishes ``offline`` itself before a clean disconnect (a graceful disconnect suppresses the will).

Reconnect: before attempt n (n = 0 after a lost connection) the link waits a uniformly random time between
``RECONNECT_MIN`` and ``min(RECONNECT_CAP, RECONNECT_BASE * 2**n)`` ("full jitter"). However long the broker
was away, a node retries at least every ``RECONNECT_CAP`` seconds, so it is back at most that long after the
broker, and a fleet of nodes spreads its reconnects over the whole window instead of arriving in one burst.

Inbox: the controller receives every node's commands over one connection. If it handled them in paho's
network thread, one node flooding its command topic would stop the controller reading its socket, the
broker's queue for the controller would fill and the broker would drop other nodes' commands. So a
``fair`` link (the controller's) only sorts incoming messages into a bounded queue per topic (= per node)
in the network thread and hands them to the handlers in a worker thread, round robin over the topics: the
socket is drained at network speed, a flooding node waits behind itself only, and what exceeds its queue
goes to ``on_overflow`` (the controller answers it, e.g. ``rate_limited``) instead of pushing others out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from waitroom import __version__, contract
from waitroom.contract import CITY_ID, Role, Topics
from waitroom.errors import ConfigError

if TYPE_CHECKING:  # the schema (pydantic); a node runs on light records of it (waitroom.nodeconfig)
    from waitroom.config import Broker

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]

# Reconnect back-off (seconds): full jitter between RECONNECT_MIN and min(RECONNECT_CAP, BASE * 2**attempt).
RECONNECT_MIN = 0.25
RECONNECT_BASE = 0.5
RECONNECT_CAP = 5.0
# Largest MQTT packet the office broker accepts (mqtt_broker.office writes it as max_packet_size). Larger
# publishes are refused here with a log line: mosquitto would otherwise drop the whole connection.
MAX_PACKET_BYTES = 256 * 1024
# Fair inbox: messages waiting per topic (= per node for commands) before new ones go to on_overflow.
INBOX_PER_TOPIC = 256


def stop_loop(client: paho.Client) -> None:
    """``client.loop_stop()`` after a ``disconnect()``. paho 2.x races there (issue #872 of
    eclipse-paho/paho.mqtt.python, open): the network thread clears ``client._thread`` as it ends, and when
    the disconnect ends it between loop_stop's check and its join, loop_stop raises AttributeError. Then the
    thread has ended already."""
    with contextlib.suppress(AttributeError):
        client.loop_stop()


class _QuietRetries(logging.Filter):
    """paho logs an ERROR for every failed reconnect attempt (every few seconds while the broker is away);
    the link says once that the connection is lost, so those become DEBUG lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


PAHO_LOG = logging.getLogger("waitroom.paho")
PAHO_LOG.addFilter(_QuietRetries())


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based): full jitter, capped."""
    upper = min(RECONNECT_CAP, RECONNECT_BASE * 2 ** min(attempt, 16))
    return (rng or random).uniform(RECONNECT_MIN, max(RECONNECT_MIN, upper))


def packet_size(topic: str, payload: bytes) -> int:
    """Size of an MQTT 3.1.1 PUBLISH packet with QoS > 0: header, topic, packet id and payload."""
    remaining = 2 + len(topic.encode("utf-8")) + 2 + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


class FairInbox:
    """Incoming messages queued per topic and handed out round robin: to ``deliver`` in a worker thread of
    its own, or (``deliver=None``) to a consumer that pulls them in batches with ``take`` (the controller's
    engine thread: one hand-off less per command)."""

    def __init__(
        self,
        deliver: Callable[[str, bytes], None] | None,
        *,
        per_topic: int = INBOX_PER_TOPIC,
        name: str = "mqtt-inbox",
    ):
        self.deliver = deliver
        self.per_topic = per_topic
        self.on_overflow: list[Callable[[str, bytes], None]] = []
        # admit(topic) -> False refuses a message in the network thread before it is queued (a node over its
        # rate); refused ones go to on_overflow too, and the worker is not even woken for them
        self.admit: Callable[[str], bool] | None = None
        self.dropped = 0
        self._queues: dict[str, deque[bytes]] = {}
        self._ready: deque[str] = deque()  # topics with waiting messages, in turn order
        self._cond = threading.Condition()
        self._stopping = False
        self._waiting = 0  # consumers blocked in wait (notify only then: it costs a wake-up)
        self._last_warning: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        if deliver is not None:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def put(self, topic: str, payload: bytes) -> bool:
        """Queue a message (network thread); False when its topic's queue is full (see ``on_overflow``)."""
        if self.admit is not None and not self.admit(topic):
            self.dropped += 1
            for hook in self.on_overflow:
                try:
                    hook(topic, payload)
                except Exception:
                    log.exception("overflow hook failed")
            return False
        with self._cond:
            q = self._queues.get(topic)
            if q is None:
                q = self._queues[topic] = deque()
            if len(q) < self.per_topic:
                if not q:
                    self._ready.append(topic)
                q.append(payload)
                if self._waiting:
                    self._cond.notify()
                return True
            self.dropped += 1
        self._overflow(topic, payload)
        return False

    def _overflow(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(topic, -60.0) >= 10.0:
            self._last_warning[topic] = now
            log.warning(
                "%s sends faster than it is served: more than %d messages waiting; extra ones are refused",
                topic,
                self.per_topic,
            )
        for hook in self.on_overflow:
            try:
                hook(topic, payload)
            except Exception:
                log.exception("overflow hook failed")

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def ready(self) -> bool:
        """Whether a message waits (without the lock: a hint for a consumer between two slices of work)."""
        return bool(self._ready)

    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def take(self, limit: int, timeout: float) -> list[tuple[str, bytes]]:
        """Up to ``limit`` messages, round robin over the topics (a flooding node gets one turn like every
        other); waits up to ``timeout`` seconds for the first one. Empty after ``stop`` or ``wake``."""
        out: list[tuple[str, bytes]] = []
        with self._cond:
            if not self._ready and not self._stopping and timeout > 0:
                self._waiting += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1
            ready, queues = self._ready, self._queues
            while ready and len(out) < limit:
                topic = ready.popleft()
                q = queues[topic]
                out.append((topic, q.popleft()))
                if q:
                    ready.append(topic)  # back of the line: every other topic goes first
                else:
                    del queues[topic]
        return out

    def wake(self) -> None:
        """Let a consumer blocked in ``take`` return now (e.g. to stop)."""
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        assert self.deliver is not None
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._waiting += 1
                    try:
                        self._cond.wait()
                    finally:
                        self._waiting -= 1
                if self._stopping:
                    return
                topic = self._ready.popleft()
                q = self._queues[topic]
                payload = q.popleft()
                if q:
                    self._ready.append(topic)  # back of the line: every other topic goes first
                else:
                    del self._queues[topic]
            try:
                self.deliver(topic, payload)
            except Exception:
                log.exception("handling a message on %s failed", topic)


class _ChunkedSocket:
    """The broker connection read in chunks.

    paho reads every packet with three or more ``recv`` calls (the command byte, each byte of the remaining
    length, then the rest), each a system call that releases and retakes the GIL. The controller gets three
    packets per command (the command and the PUBACKs of its reply and event), so at thousands of commands a
    second those calls were most of its network thread, and every GIL hand-off delayed the engine thread.
    This wrapper reads up to ``CHUNK`` bytes at once and hands them out as paho asks. It reports what it
    holds through ``pending()``, the hook paho already uses for TLS sockets (which buffer decrypted data the
    same way): paho then reads on instead of waiting in ``select`` for a socket that has nothing new.

    ``lock`` (TLS only): the client's connection lock, held while the connection is read (and asked what it
    holds), so that no other thread writes the TLS connection meanwhile (``_Client.write_now``)."""

    CHUNK = 65536
    __slots__ = ("_buf", "_lock", "_pos", "_sock")

    def __init__(self, sock: Any, lock: Any = None):
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._lock = lock if lock is not None else contextlib.nullcontext()

    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            with self._lock:
                data = self._sock.recv(max(bufsize, self.CHUNK))  # BlockingIOError, TLS errors: as before
            if len(data) <= bufsize:
                return data  # all of it (b"" at the end of the connection)
            self._buf, self._pos = data, bufsize
            return data[:bufsize]
        end = min(pos + bufsize, len(self._buf))
        self._pos = end
        return self._buf[pos:end]

    def pending(self) -> int:
        if hasattr(self._sock, "pending"):
            with self._lock:
                inner = self._sock.pending()
        else:
            inner = 0
        return len(self._buf) - self._pos + inner

    def __getattr__(self, name: str) -> Any:  # send, fileno, setblocking, setsockopt, close, ...
        return getattr(self._sock, name)


_PUBLISH, _DISCONNECT = 0x30, 0xE0
# Packets sent in one write at most (a reply, its events and the PUBACKs of a batch of commands).
COALESCE_MAX = 64


def _plain(packet: Any) -> bool:
    """A queued packet that paho does nothing more with once it is written: not a QoS 0 PUBLISH (paho
    reports it published after the write) and not a DISCONNECT."""
    kind = packet["command"] & 0xF0
    return not (kind == _DISCONNECT or (kind == _PUBLISH and packet["qos"] == 0))


class _Client(paho.Client):
    """paho's client with its TCP (or TLS) connection read in chunks (see ``_ChunkedSocket``) and the
    packets that wait to be sent written together.

    paho writes every queued packet with a send call of its own; with TCP_NODELAY each becomes a TCP
    segment that the broker reads and handles on its own. The controller queues a reply, its events and
    the PUBACKs of a whole batch at once, so ``_packet_write`` first joins the packets at the head of the
    queue into one. Only packets that paho does nothing more with once they are written are joined: not a
    QoS 0 PUBLISH (paho reports it published after the write) and not a DISCONNECT."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # the connection lock: paho uses the connection only from its network thread; ``write_now`` lets the
        # thread that queued a packet write it too, so every use of the connection takes this lock -- the
        # writes (two writers could interleave the bytes of partly sent packets), over TLS the reads and
        # pending() (OpenSSL: no write while another thread reads), a reconnect (a packet put back after a
        # failed write must not land on the new connection before its CONNECT) and the close. Re-entrant:
        # without a network thread paho writes from within reconnect.
        self._conn_lock = threading.RLock()

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock
        # reads take the connection lock only over TLS: a plain socket may be read and written at once, and
        # a read that held the lock would send the engine's write back to the network thread
        return _ChunkedSocket(sock, self._conn_lock if self._ssl else None)

    def write_now(self) -> None:
        """Write the queued packets from this thread, now, as far as the socket takes them.

        A packet published from another thread waits for paho's network thread, which needs the GIL for it:
        while the publishing thread goes on computing, that can take up to the interpreter's switch interval
        (5 ms). The controller calls this right after a batch's replies and events, before it computes
        anything else. Only packets that paho does nothing more with once written are written here (as in
        ``_packet_write``); the rest, what the socket does not take now, and everything while the network
        thread is writing are left to the network thread, which was woken when they were queued. A failed
        write leaves its bytes queued: the network thread's next write meets the same error and reconnects.

        Every use of the connection takes the client's connection lock: the writes (here and paho's own),
        over TLS the reads and ``pending()`` (``_ChunkedSocket``), a reconnect (with its TLS handshake) and
        the close. OpenSSL does not allow one thread to write a TLS connection while another reads it (paho 2
        writes only from its network thread for that reason), and a packet put back after a failed write must
        not reach a new connection before its CONNECT. This thread only tries the lock: when the network
        thread holds it, it does nothing. Not over websockets (paho's wrapper frames what it sends itself)."""
        if (
            self._sock is None
            or self._transport == "websockets"
            or not self._conn_lock.acquire(blocking=False)
        ):
            return
        out = self._out_packet
        try:
            while out:
                joined: list[Any] = []
                while out and len(joined) < COALESCE_MAX and _plain(out[0]):
                    joined.append(out.popleft())
                if not joined:
                    return
                data = b"".join(bytes(p["packet"][p["pos"] :]) for p in joined)
                try:
                    sent = self._sock_send(data)
                except (OSError, ValueError, AttributeError):
                    sent = 0
                if sent > 0:
                    with self._msgtime_mutex:
                        self._last_msg_out = time.monotonic()
                if sent < len(data):
                    rest = data[sent:]
                    out.appendleft({**joined[0], "pos": 0, "to_process": len(rest), "packet": rest})
                    return
        finally:
            self._conn_lock.release()
            if out:
                # what is left is the network thread's: it may have looked at the queue while this thread
                # held the packets and be waiting in select without wanting to write; wake it, as paho's
                # publish does
                with contextlib.suppress(OSError, AttributeError):
                    self._sockpairW.send(b"0")

    def _packet_write(self) -> Any:
        with self._conn_lock:
            return self._packet_write_joined()

    def reconnect(self) -> Any:
        with self._conn_lock:
            return super().reconnect()

    def _sock_close(self) -> None:
        with self._conn_lock:  # not while another thread writes: its bytes could reach a new connection
            super()._sock_close()

    def _packet_write_joined(self) -> Any:
        out = self._out_packet
        if len(out) > 1:
            joined: list[Any] = []
            # other threads only append on the right: taking from the left keeps the order
            while out and len(joined) < COALESCE_MAX:
                if not _plain(out[0]):
                    break
                joined.append(out.popleft())
            if len(joined) > 1:
                data = b"".join(bytes(p["packet"][p["pos"] :]) for p in joined)
                first = joined[0]
                out.appendleft({**first, "pos": 0, "to_process": len(data), "packet": data})
            elif joined:
                out.appendleft(joined[0])
        return super()._packet_write()


def broker_password(broker: Broker) -> str | None:
    if os.environ.get("WAITROOM_MQTT_PASSWORD"):
        return os.environ["WAITROOM_MQTT_PASSWORD"]
    if broker.password_file:
        return Path(broker.password_file).read_text(encoding="utf-8").strip()
    return None


def certificate_until(path: str) -> int | None:
    """When the PEM certificate in ``path`` ends (epoch seconds); None when it cannot be read. The nodes
    report it in their health, so that the admin page warns before a certificate ends (mosquitto then refuses
    the node, or every node when it is the broker's)."""
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        return int(cert.not_valid_after_utc.timestamp())
    except (ImportError, OSError, ValueError) as exc:
        log.warning("cannot read the end of certificate %s: %s", path, exc)
        return None


def client_certificate(broker: Broker, user: str) -> tuple[str | None, str | None]:
    """The client certificate and key files of the MQTT account ``user`` (``{node}`` in the office file's
    paths stands for it), or (None, None) without one. A missing or unreadable file is a ConfigError naming
    the setting: paho would fail later, with a bare ssl error or FileNotFoundError."""
    tls = broker.tls
    if tls is None or tls.cert is None:
        return None, None
    cert = tls.cert.replace(contract.TLS_NODE_PLACEHOLDER, user)
    key = (tls.key or tls.cert).replace(contract.TLS_NODE_PLACEHOLDER, user)
    for setting, path in (("broker.tls.cert", cert), ("broker.tls.key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                setting,
                [
                    f"cannot read {path} ({exc.strerror}): the client certificate of MQTT account {user} "
                    "(docs/deployment.md, client certificates)"
                ],
            ) from None
    return cert, key


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
        fair: bool | None = None,
        pull: bool = False,
        client_suffix: str = "",
        user: str | None = None,
        identity: dict[str, Any] | None = None,
    ):
        self.broker = broker
        self.topics = Topics(office)
        self.node_id = node_id
        self.role = role
        self._subs: dict[str, tuple[int, list[Handler]]] = {}  # filter -> (qos, handlers)
        self._live_only: set[str] = set()  # filters whose retained messages are dropped (see subscribe)
        self._direct: set[str] = set()  # filters handled in the network thread, not queued (see subscribe)
        # the controller's status messages (birth, will, own offline) say which process it is
        # (contract.controller_identity, see waitroom.service.SoleController)
        self.identity = dict(identity or {})
        self._lock = threading.Lock()
        self.connected = threading.Event()
        # Set once the broker acknowledged the subscriptions of this connection (SUBACK): a message published
        # by another client before that would not reach us (the broker keeps no message for a filter it does
        # not know yet), so ``start(wait)`` waits for it too.
        self.subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._stopping = False
        self.on_connect_hooks: list[Callable[[], None]] = []
        self.on_disconnect_hooks: list[Callable[[], None]] = []
        # Client ids must be unique on the broker; the node id is, per office. The office broker replaces
        # the id by the user name (use_username_as_clientid), which is the node id too.
        # A node served by several processes (the web app's gunicorn workers) adds a suffix per process.
        self.client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"waitroom-{office}-{node_id}{client_suffix}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        self.client.enable_logger(PAHO_LOG)
        self._attempt = 0
        self._rng = random.Random()
        self._next_delay()
        self.client.max_queued_messages_set(1000)
        # ``user``: one of the node's own accounts (a web worker: "web.2", see Node.accounts)
        user = user or broker.username or node_id
        # The city service logs in to the city broker as city-service by design (waitroom.city.broker).
        if office != CITY_ID and user != node_id and not user.startswith(node_id + "."):
            log.warning(
                "MQTT user %r is not the node id %r: the office broker's ACL and client ids need the node id",
                user,
                node_id,
            )
        pw = password if password is not None else broker_password(broker)
        if pw is not None:
            self.client.username_pw_set(user, pw)
        # the ends of this node's client certificate and of the broker's (at the handshake), epoch seconds
        self.cert_until: int | None = None
        self.broker_cert_until: int | None = None
        if broker.tls is not None:
            cert, key = client_certificate(broker, user)
            if cert is not None:
                self.cert_until = certificate_until(cert)
            self.client.tls_set(
                ca_certs=broker.tls.ca, certfile=cert, keyfile=key, tls_version=ssl.PROTOCOL_TLS_CLIENT
            )
        self.client.will_set(
            self.topics.status(node_id),
            contract.encode(self.status_message(False)),
            qos=contract.QOS["status"],
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        # The controller's messages go through the fair inbox (see the module docstring); nodes handle theirs
        # in the network thread, in arrival order.
        # ``pull``: the owner takes the messages from the inbox (``inbox.take``); handlers are not called.
        use_inbox = pull or (role is Role.CONTROLLER if fair is None else fair)
        deliver = None if pull else self._dispatch
        self.inbox = FairInbox(deliver, name=f"mqtt-inbox-{node_id}") if use_inbox else None

    @property
    def on_overflow(self) -> list[Callable[[str, bytes], None]]:
        """Hooks called (network thread) with each message refused because its topic's inbox is full."""
        return self.inbox.on_overflow if self.inbox is not None else []

    def _next_delay(self) -> float:
        """Arm paho's next reconnect wait with a fresh jittered delay (paho waits min_delay first)."""
        delay = backoff_delay(self._attempt, self._rng)
        self._attempt += 1
        self.client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
        return delay

    # -- lifecycle
    def start(self, wait: float | None = 10.0) -> bool:
        """Connect in the background (reconnecting forever); optionally wait (True) until the first connection
        is up and the broker has acknowledged the subscriptions made before it."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self.client.loop_start()
        if wait:
            deadline = time.monotonic() + wait
            return self.connected.wait(wait) and self.subscribed.wait(max(0.0, deadline - time.monotonic()))
        return False

    def status_message(self, online: bool, *, clean: bool = False) -> dict[str, Any]:
        """This node's status message (birth, will or its own ``offline``: ``clean``)."""
        return contract.status_payload(
            self.node_id, self.role, online, __version__, identity=self.identity, clean=clean
        )

    def stop(self, *, publish_offline: bool = True) -> None:
        """Publish ``offline`` ourselves, then disconnect cleanly (which suppresses the will).
        ``publish_offline=False``: leave the retained status alone (it is another process's)."""
        self._stopping = True
        if self.connected.is_set() and publish_offline:
            info = self.client.publish(
                self.topics.status(self.node_id),
                contract.encode(self.status_message(False, clean=True)),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        stop_loop(self.client)
        self.connected.clear()
        if self.inbox is not None:
            self.inbox.stop()

    def client_thread_alive(self) -> bool:
        """The paho network thread (and the inbox worker) run; if one died, nothing would revive it."""
        thread = getattr(self.client, "_thread", None)
        inbox_ok = self.inbox is None or self.inbox.alive()
        return thread is not None and thread.is_alive() and inbox_ok

    # -- messaging
    def publish(self, topic: str, payload: dict[str, Any] | bytes, kind: str) -> None:
        """Publish with the contract's QoS and retain flag for this message kind."""
        contract.validate_publish_topic(topic)
        data = payload if isinstance(payload, bytes) else contract.encode(payload)
        size = packet_size(topic, data)
        if size > MAX_PACKET_BYTES:
            # The broker would close the connection (and a retained one would do so on every reconnect).
            log.error(
                "not sent: %s message on %s has %d bytes, the broker accepts at most %d",
                kind,
                topic,
                size,
                MAX_PACKET_BYTES,
            )
            return
        self.client.publish(topic, data, qos=contract.QOS[kind], retain=contract.RETAIN[kind])

    def write_now(self) -> None:
        """Send what was published so far from this thread, without waiting for the network thread (see
        ``_Client.write_now``)."""
        self.client.write_now()

    def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        qos: int = 1,
        *,
        retained: bool = True,
        direct: bool = False,
    ) -> None:
        """Receive ``topic_filter``; ``retained=False`` drops (and logs) what the broker sends from its
        retained store on every (re)subscription: a command published with the retain flag would otherwise
        come again after every reconnect and restart of the controller (and be executed again once its
        stored reply is pruned). The live delivery of such a publish carries no retain flag and is kept.
        ``direct=True``: the handler runs in the network thread even on a link with an inbox, so it sees
        the message before any command that came after it on the connection is taken from the inbox."""
        contract.validate_subscribe_filter(topic_filter)
        with self._lock:
            if not retained:
                self._live_only.add(topic_filter)
            if direct:
                self._direct.add(topic_filter)
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
        self._attempt = 0
        self._next_delay()
        sock = client.socket()
        with contextlib.suppress(OSError, AttributeError):
            # Small messages both ways: without this, Nagle's algorithm and delayed ACKs add ~40 ms per reply.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the broker's certificate, verified against the office CA (the TLS socket, in a _ChunkedSocket)
        if self.broker.tls is not None:
            with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
                self.broker_cert_until = int(ssl.cert_time_to_seconds(sock.getpeercert()["notAfter"]))
        with self._lock:
            subs = list(self._subs.items())
        self.subscribed.clear()
        if subs:  # one SUBSCRIBE for all: its SUBACK says they are all in place
            _, self._sub_mid = client.subscribe([(topic_filter, qos) for topic_filter, (qos, _) in subs])
        else:
            self.subscribed.set()
        self.publish(self.topics.status(self.node_id), self.status_message(True), "status")
        self.connected.set()
        for hook in self.on_connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def tls_health(self) -> dict[str, int]:
        """The known ends of the certificates as health fields (``cert_until``, ``broker_cert_until``)."""
        fields = {"cert_until": self.cert_until, "broker_cert_until": self.broker_cert_until}
        return {k: v for k, v in fields.items() if v is not None}

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid == self._sub_mid:
            failed = [r for r in reasons if getattr(r, "is_failure", False)]
            if failed:
                log.error("the MQTT broker refused subscriptions of %s: %s", self.node_id, failed)
            self.subscribed.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        delay = self._next_delay()
        log.debug("MQTT broker %s:%s unreachable; retry in %.2f s", self.broker.host, self.broker.port, delay)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set() and not self._stopping:
            log.warning("MQTT connection lost (%s); reconnecting", reason)
        if not self._stopping:
            self._next_delay()
        self.connected.clear()
        self.subscribed.clear()
        for hook in self.on_disconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-disconnect hook failed")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if (
            msg.retain
            and self._live_only
            and any(paho.topic_matches_sub(f, msg.topic) for f in self._live_only)
        ):
            log.warning(
                "ignored a retained message on %s (%d bytes): not taken again",
                msg.topic[:200],
                len(msg.payload),
            )
            return
        if self.inbox is not None and not (
            self._direct and any(paho.topic_matches_sub(f, msg.topic) for f in self._direct)
        ):
            self.inbox.put(msg.topic, msg.payload)
        else:
            self._dispatch(msg.topic, msg.payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        with self._lock:
            handlers = [
                h for f, (_, hs) in self._subs.items() if paho.topic_matches_sub(f, topic) for h in hs
            ]
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("handler for %s failed", topic)
