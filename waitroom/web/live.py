"""The web app's live link to the office: a ``web`` node on MQTT.

``LiveOffice`` keeps the retained state snapshot (the web's live data), the status and health of every node
(admin page), sends staff actions as commands and fans the office's events out to the browsers' SSE streams.
It is stored in ``app.extensions["waitroom"]``; the display blueprint (waitroom/web/display.py) uses the same
object:

- ``live.state()`` -> the latest snapshot (dict) or None before the controller has published one;
- ``with live.subscribe() as sub: for name, data in sub.events(keepalive=15): ...`` -> live events
  (``state``, ``call``, ``assist``, ``intake``; ``None, None`` as a keep-alive tick);
- ``live.sse_response()`` -> a Flask streaming response in text/event-stream format.

Ticket ids are the citizen's key to the ticket status page, so they are removed from everything this object
hands to browsers (``public_state``); staff work with ticket numbers.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, stream_with_context

from waitroom import contract
from waitroom.city.advice import Advice
from waitroom.config import Config
from waitroom.contract import EventKind
from waitroom.node import NodeRuntime

log = logging.getLogger(__name__)

STREAM_EVENTS = ("state", "call", "assist", "intake")


def public_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of a snapshot without ticket ids (assistance request ids stay: staff acknowledge by them)."""
    if state is None:
        return None
    out = dict(state)
    out["waiting"] = [{k: v for k, v in w.items() if k != "id"} for w in state.get("waiting", [])]
    out["parked"] = [{k: v for k, v in p.items() if k != "id"} for p in state.get("parked", [])]
    counters = []
    for c in state.get("counters", []):
        c = dict(c)
        if c.get("serving"):
            c["serving"] = {k: v for k, v in c["serving"].items() if k != "ticket_id"}
        counters.append(c)
    out["counters"] = counters
    return out


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "ticket_id"}


class Subscription:
    """One browser's live stream: a bounded queue fed by LiveOffice."""

    def __init__(self, owner: LiveOffice, maxsize: int = 200):
        self.owner = owner
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=maxsize)
        self.closed = False

    def put(self, name: str, data: Any) -> None:
        try:
            self.queue.put_nowait((name, data))
        except queue.Full:  # a stalled client: drop it rather than hold memory for it
            log.warning("SSE client too slow; closing its stream")
            self.closed = True

    def get(self, timeout: float) -> tuple[str, Any] | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, keepalive: float = 15.0) -> Iterator[tuple[str | None, Any]]:
        """Yield (name, data) pairs; (None, None) after ``keepalive`` seconds without one."""
        while not self.closed and not self.owner.closed:
            item = self.get(keepalive)
            yield item if item is not None else (None, None)

    def close(self) -> None:
        self.closed = True
        self.owner.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sse_format(name: str | None, data: Any) -> str:
    if name is None:
        return ": keep-alive\n\n"
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


class LiveOffice:
    """The web node: snapshot, node health, commands and live event fan-out."""

    def __init__(self, cfg: Config, runtime: NodeRuntime, *, max_streams: int = 400):
        self.cfg = cfg
        self.runtime = runtime
        self.topics = runtime.topics
        self.max_streams = max_streams
        self.nodes: dict[str, dict[str, Any]] = {}
        self.tickets_seen: dict[str, str] = {}  # ticket id -> number, today (status page after the call)
        self.bridged: dict[str, dict[str, Any]] = {}  # office id -> its public waits (city broker bridge)
        self._day = ""
        self.queues: dict[str, dict[str, Any]] = {}  # service -> its latest queue page
        self.counter_details: dict[str, dict[str, Any]] = {}  # counter -> its latest detail
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closed = False
        runtime.on_state(self._on_state)
        runtime.on_event(self._on_event)
        runtime.subscribe(self.topics.queue("+"), self._on_queue)
        runtime.subscribe(self.topics.counter("+"), self._on_counter)
        runtime.subscribe(self.topics.all_nodes("status"), self._on_node_msg)
        runtime.subscribe(self.topics.all_nodes("health"), self._on_node_msg)
        # The city's advice (another office with a shorter wait), bridged down from the city broker.
        self.advice = Advice(cfg.office.id)
        runtime.subscribe(self.topics.recommendations(), self.advice.on_message)

    # -- lifecycle
    def start(self, wait: float | None = 10.0) -> bool:
        return self.runtime.start(wait=wait)

    def close(self) -> None:
        self.closed = True
        self.runtime.stop()

    # -- data
    def state(self) -> dict[str, Any] | None:
        """The latest office view (with ticket ids), or None: the controller's summary joined with the
        configuration's names, the ticket lists of the queue pages (``waiting``, ``parked``) and the counter
        details (``serving``)."""
        summary = self.runtime.state
        if summary is None:
            return None
        out = dict(summary)
        waiting: list[dict[str, Any]] = []
        parked: list[dict[str, Any]] = []
        # a page published before the summary may still list a ticket that a counter has called since
        serving = {c["serving"]["ticket"] for c in summary.get("counters", []) if c.get("serving")}
        for sid, page in list(self.queues.items()):
            if page.get("day", summary.get("day")) != summary.get("day"):
                continue
            waiting += [{**t, "service": sid} for t in page.get("tickets", []) if t["ticket"] not in serving]
            parked += [{**t, "service": sid} for t in page.get("parked", [])]
        big = 1 << 30
        waiting.sort(key=lambda t: (t["eta_min"] if t.get("eta_min") is not None else big, t["since"]))
        out["waiting"], out["parked"] = waiting, parked
        counters = []
        for c in summary.get("counters", []):
            detail = self.counter_details.get(c.get("id", ""))
            if (
                c.get("serving")
                and detail
                and (detail.get("serving") or {}).get("ticket") == c["serving"].get("ticket")
            ):
                c = {**c, "serving": {**c["serving"], **detail["serving"]}}
            counters.append(c)
        out["counters"] = counters
        return out

    def public_state(self) -> dict[str, Any] | None:
        return public_state(self.state())

    @property
    def online(self) -> bool:
        return self.runtime.online

    def node_table(self) -> list[dict[str, Any]]:
        """Every configured node (plus the controller) with status, last seen, version and health."""
        now = time.time()
        rows = []
        for nid, role in [("controller", "controller"), *((n.id, n.role) for n in self.cfg.nodes)]:
            info = self.nodes.get(nid, {})
            status = info.get("status") or {}
            health = info.get("health") or {}
            last = max(status.get("ts", 0) or 0, health.get("ts", 0) or 0) or None
            online = status.get("status") == "online"
            rows.append(
                {
                    "id": nid,
                    "role": role,
                    "online": online,
                    "known": bool(info),
                    "last_seen": last,
                    "ago_s": round(now - last) if last else None,
                    "version": status.get("version") or health.get("version") or "",
                    "health": {k: v for k, v in health.items() if k not in ("node", "role", "version", "ts")},
                }
            )
        return rows

    # -- commands
    def request(
        self, op: str, args: dict[str, Any] | None = None, *, timeout: float = 2.0, retries: int = 1
    ) -> dict[str, Any]:
        """Send a command as the web node; raises CommandFailed / RequestTimeout (see waitroom.errors)."""
        return self.runtime.request(op, args, timeout=timeout, retries=retries)

    def simulate(self, node_id: str, button: str, action: str) -> None:
        """Demo only: a virtual button press on a node's sim topic (the node drives its mock pin)."""
        self.runtime.link.publish(self.topics.sim(node_id), {"button": button, "action": action}, "sim")

    # -- live streams
    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._lock:
            if len(self._subs) >= self.max_streams:
                raise OverflowError("too many live streams")
            self._subs.add(sub)
            n = len(self._subs)
        self.runtime.health["sse_clients"] = n
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
            n = len(self._subs)
        self.runtime.health["sse_clients"] = n

    @property
    def stream_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def broadcast(self, name: str, data: Any) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.put(name, data)

    def sse_response(
        self, transform: Callable[[str, Any], Any] | None = None, keepalive: float = 15.0
    ) -> Response:
        """A text/event-stream response: the current state first, then every live event.

        ``transform(name, data)`` may rewrite or drop (return None) an event for this stream.
        """
        sub = self.subscribe()
        first = self.public_state()

        def generate() -> Iterator[str]:
            try:
                yield "retry: 3000\n\n"
                if first is not None:
                    item = transform("state", first) if transform else first
                    if item is not None:
                        yield sse_format("state", item)
                for name, data in sub.events(keepalive):
                    if name is not None and transform is not None:
                        data = transform(name, data)
                        if data is None:
                            continue
                    yield sse_format(name, data)
            finally:
                sub.close()

        resp = Response(stream_with_context(generate()), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp

    # -- MQTT callbacks (network thread)
    def watch_offices(self, offices: list[str]) -> None:
        """Also follow the public waits of other offices bridged onto this broker."""
        for office in offices:
            topic = contract.Topics(office).public()
            self.runtime.subscribe(topic, lambda _t, raw, office=office: self._on_public(office, raw))

    def _on_public(self, office: str, raw: bytes) -> None:
        try:
            self.bridged[office] = contract.decode(raw)
        except contract.ContractError as exc:
            log.debug("ignored public waits of %s: %s", office, exc)

    def _on_state(self, state: dict[str, Any]) -> None:
        if state.get("day") != self._day:
            self._day = state.get("day", "")
            self.tickets_seen.clear()
        self.broadcast("state", self.public_state())

    def _on_queue(self, topic: str, raw: bytes) -> None:
        try:
            page = contract.decode(raw, limit=None)
        except contract.ContractError as exc:
            log.debug("ignored queue page on %s: %s", topic, exc)
            return
        sid = str(page.get("service", ""))
        old = self.queues.get(sid)
        if old is not None and page.get("seq", 0) < old.get("seq", 0):
            return  # an older page delivered late
        self.queues[sid] = page
        for entry in (*page.get("tickets", []), *page.get("parked", [])):
            self.tickets_seen[entry["id"]] = entry["ticket"]
        self.broadcast("state", self.public_state())

    def _on_counter(self, topic: str, raw: bytes) -> None:
        try:
            detail = contract.decode(raw, limit=None)
        except contract.ContractError as exc:
            log.debug("ignored counter detail on %s: %s", topic, exc)
            return
        cid = str(detail.get("counter", ""))
        old = self.counter_details.get(cid)
        if old is not None and detail.get("seq", 0) < old.get("seq", 0):
            return
        self.counter_details[cid] = detail
        serving = detail.get("serving")
        if serving:
            self.tickets_seen[serving["ticket_id"]] = serving["ticket"]

    def _on_event(self, kind: EventKind, event: dict[str, Any]) -> None:
        if kind.value in STREAM_EVENTS:
            self.broadcast(kind.value, public_event(event))

    def _on_node_msg(self, topic: str, payload: bytes) -> None:
        try:
            node_id, kind = self.topics.parse_node_topic(topic)
            data = contract.decode(payload)
        except contract.ContractError as exc:
            log.debug("ignored node message on %s: %s", topic, exc)
            return
        with self._lock:
            self.nodes.setdefault(node_id, {})[kind] = data
        if kind == "status" or kind == "health":
            self.broadcast("node", {"node": node_id, "kind": kind, "data": data})
