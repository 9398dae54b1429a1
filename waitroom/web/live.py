"""The web app's live link to the office: a ``web`` node on MQTT, and the one place where the web reads the
office state.

``LiveOffice`` keeps the web's copy of the office: the retained bounded ``state`` summary, the retained
waiting list of every service (``queue/<service>``, with a fallback to the old ``state["waiting"]`` /
``["parked"]`` lists while a controller still sends them), the names from the office configuration, and the
status and health of every node (admin page). It sends staff actions as commands and fans the office's events
out to the browsers' SSE streams. It is stored in ``app.extensions["waitroom"]``; the display blueprint uses
the same object:

- ``live.state()`` -> the latest state summary (dict, with ticket ids) or None;
- ``live.public_state()`` -> the same without ticket ids, with the names of services and counters from the
  configuration and the merged ``waiting`` / ``parked`` lists (cached until the next change);
- ``live.waiting()`` / ``live.parked()`` -> the waiting lists (with ids; staff and ticket status only);
- ``live.ticket_status(ticket_id)`` -> where one ticket stands (an index rebuilt once per change; a ticket
  known to wait beyond its service's page -- the first 100 -- with lower bounds: ``ahead_at_least``,
  ``eta_min_at_least``);
- ``live.wait_for_seq(seq)`` -> block until the copy includes the state with that seq (staff pages);
- ``live.sse_response(ticket=None, nodes=False)`` -> a streaming text/event-stream response.

Fan-out is built for a crowd of idle streams (the web app runs under gevent, see waitroom/web/cli.py): changes
arriving in one burst (a state and several queues) are coalesced into one flush; the flush serializes the
public state once for every general stream, and a ticket stream gets a message only when its own ticket's
status changed. A stalled client whose queue fills up is dropped, never waited for.

Ticket ids are the citizen's key to the ticket status page, so they are removed from everything this object
hands to browsers; staff work with ticket numbers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context

from waitroom import contract
from waitroom.city.advice import Advice
from waitroom.config import Config
from waitroom.contract import EventKind
from waitroom.node import NodeRuntime

log = logging.getLogger(__name__)

STREAM_EVENTS = ("state", "call", "assist", "intake")
COALESCE_S = 0.03  # changes within this window reach the streams in one flush
FLUSH_BATCH = 100  # streams fed between two turns of the event loop
ASK_AGAIN_S = 60.0  # a ticket id the controller did not know (or left open) is asked about again after this
ASK_PACE_S = 0.05  # between two ticket.show requests: a crowd of unknown ids never crowds out staff commands
ASK_WAIT_S = 1.0  # a ticket page waits at most this long for the answer (its stream gets it when it comes)
FINISHED = ("served", "cancelled", "expired")  # the ticket page says "no longer waiting"


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


def sse_format(name: str | None, data: Any) -> str:
    if name is None:
        return ": keep-alive\n\n"
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _status_key(status: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in status.items() if k != "ts"}, sort_keys=True, default=str)


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    return _without(event, "ticket_id")


class Subscription:
    """One browser's live stream: a bounded buffer of preformatted SSE messages.

    A deque and an Event rather than queue.Queue: under gevent, queue.Queue's Condition costs several
    times more per message, and the fan-out to thousands of streams is made of exactly these calls."""

    def __init__(
        self,
        owner: LiveOffice,
        *,
        ticket: str | None = None,
        nodes: bool = False,
        lang: str = "de",
        maxsize: int = 64,
    ):
        self.owner = owner
        self.ticket = ticket
        self.nodes = nodes
        self.lang = lang
        self.last: str | None = None  # ticket streams: the key of the status last sent
        self.buffer: deque[str] = deque()
        self.maxsize = maxsize
        self.ready = threading.Event()
        self.closed = False

    def put(self, item: str) -> None:
        if len(self.buffer) >= self.maxsize:  # a stalled client: drop it rather than hold memory for it
            log.warning("SSE client too slow; closing its stream")
            self.closed = True
            self.ready.set()
            return
        self.buffer.append(item)
        self.ready.set()

    def items(self, keepalive: float = 15.0) -> Iterator[str | None]:
        """Yield queued messages; None after ``keepalive`` seconds without one."""
        while not self.closed and not self.owner.closed:
            if not self.buffer:
                self.ready.clear()
                if not self.buffer and not self.ready.wait(keepalive):
                    yield None
                    continue
            while self.buffer and not self.closed:
                yield self.buffer.popleft()

    def close(self) -> None:
        self.closed = True
        self.owner.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveOffice:
    """The web node: the office copy, node health, commands and live event fan-out."""

    def __init__(self, cfg: Config, runtime: NodeRuntime, *, max_streams: int = 5000):
        self.cfg = cfg
        self.runtime = runtime
        self.topics = runtime.topics
        self.max_streams = max_streams
        self.nodes: dict[str, dict[str, Any]] = {}
        self.tickets_seen: dict[str, str] = {}  # ticket id -> number, today (status page after the call)
        self.queues: dict[str, dict[str, Any]] = {}  # service -> its retained queue payload (today)
        self.app: Any = None  # the Flask app (set by create_app): renders ticket fragments in a flush
        self._day = ""
        self.counter_details: dict[str, dict[str, Any]] = {}  # counter -> its latest detail
        self._left_queue: dict[str, int] = {}  # ticket number -> seq at which it stopped waiting (today)
        self._calls: dict[str, dict[str, Any]] = {}  # ticket id -> its latest call event (today)
        # ticket id -> {ticket, service, at} of the tickets marked not appeared today, from the ticket events
        # and the queue pages' "no_show" lists; one called again leaves (its status page, the staff list)
        self._no_shows: dict[str, dict[str, Any]] = {}
        # ticket id -> {ticket, service, seq} of tickets known to wait (an issued ticket event, a ticket.show
        # answer), which may be beyond their service's queue page (its first QUEUE_PAGE): see _beyond_page
        self._waiting_known: dict[str, dict[str, Any]] = {}
        # ticket ids this copy did not know, asked of the controller (ticket.show): id -> when (monotonic),
        # the ids still to ask, and the pages waiting for their answer
        self._asked: dict[str, float] = {}
        self._to_ask: dict[str, threading.Event] = {}
        self._in_flight: dict[str, threading.Event] = {}  # the batch being asked
        self._ask_cond = threading.Condition()
        self._asker: threading.Thread | None = None
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._seq_cond = threading.Condition()
        self._public: dict[str, Any] | None = None
        self.controller_offline_since: float | None = None  # when its status (or last will) said offline
        self._index: dict[str, dict[str, Any]] | None = None
        self._flush_pending = False
        self.generation = 0
        self.closed = False
        self._service_names = {s.id: s.name.model_dump() for s in cfg.services}
        self._counter_info = {
            c.id: {
                "name": c.name.model_dump(),
                "spoken": (c.spoken or c.name).model_dump(),
                "zone": c.zone,
                "services": list(c.services),
            }
            for c in cfg.counters
        }
        runtime.on_state(self._on_state)
        runtime.on_event(self._on_event)
        runtime.subscribe(self.topics.queue("+"), self._on_queue)
        runtime.subscribe(self.topics.counter("+"), self._on_counter)
        runtime.subscribe(self.topics.all_nodes("status"), self._on_node_msg)
        runtime.subscribe(self.topics.all_nodes("health"), self._on_node_msg)
        # The city's advice (another office with a shorter wait), bridged down from the city broker.
        self.advice = Advice(cfg.office.id)
        runtime.subscribe(self.topics.recommendations(), self.advice.on_message)
        # this app's own link to the broker: pages that show the office's state say when it is not current
        runtime.link.on_connect_hooks.append(lambda: self.broadcast("link", {"online": True}))
        runtime.link.on_disconnect_hooks.append(lambda: self.broadcast("link", {"online": False}))

    # -- lifecycle
    def start(self, wait: float | None = 10.0) -> bool:
        return self.runtime.start(wait=wait)

    def close(self) -> None:
        self.closed = True
        with self._ask_cond:
            self._ask_cond.notify_all()
        self.runtime.stop()

    @property
    def online(self) -> bool:
        return self.runtime.online

    def office_status(self) -> tuple[str, float | None]:
        """(live | stale, stale since) of the waits this app shows: stale while the controller is offline (its
        retained state stays on the broker, unchanged, as if nothing happened) or while this app has lost the
        broker itself (since: unknown, None)."""
        if self.controller_offline_since is not None:
            return "stale", self.controller_offline_since
        if not self.online:
            return "stale", None
        return "live", None

    # -- the office copy (the only place the web reads the state)
    def state(self) -> dict[str, Any] | None:
        """The latest state summary from the controller (with ticket ids), or None; a counter's
        ``serving`` carries the detail of its ``counter/<id>`` topic (ticket id, call time, recalls, and the
        rule's reason)."""
        st = self.runtime.state
        if st is None or not self.counter_details:
            return st
        counters = []
        for c in st.get("counters", []):
            detail = (self.counter_details.get(c.get("id", "")) or {}).get("serving") or {}
            if c.get("serving") and detail.get("ticket") == c["serving"].get("ticket"):
                c = {**c, "serving": {**c["serving"], **detail}}
            counters.append(c)
        return {**st, "counters": counters}

    @property
    def seq(self) -> int:
        st = self.runtime.state
        return int(st.get("seq", 0)) if st else 0

    def waiting(self) -> list[dict[str, Any]]:
        """Every waiting ticket (with id and service), per service in expected call order.

        From the ``queue/<service>`` topics (at most the first 100 per service); while the controller still
        sends the lists inside the state, from there.
        """
        st = self.runtime.state or {}
        if "waiting" in st and not self.queues:
            return list(st.get("waiting") or [])
        # a page is published at most once a second: a ticket called, parked or cancelled since then is
        # known from the events (each carries the seq of its change), so the list never shows it as waiting
        gone = self._left_queue
        out = []
        for svc in self.cfg.services:
            q = self.queues.get(svc.id)
            if q:
                seq = q.get("seq", 0)
                out.extend(
                    {**w, "service": svc.id} for w in q.get("tickets", []) if gone.get(w["ticket"], -1) <= seq
                )
        return out

    def parked(self) -> list[dict[str, Any]]:
        st = self.runtime.state or {}
        if "parked" in st and not self.queues:
            return list(st.get("parked") or [])
        out = []
        for svc in self.cfg.services:
            q = self.queues.get(svc.id)
            if q:
                out.extend({**t, "service": svc.id} for t in q.get("parked", []))
        return out

    def public_state(self) -> dict[str, Any] | None:
        """The state for browsers: no ticket ids, names from the configuration, waiting lists merged in."""
        cached = self._public
        if cached is not None:
            return cached
        st = self.state()
        if st is None:
            return None
        out = dict(st)
        out.setdefault("name", self.cfg.office.name)
        out["services"] = [
            {"name": self._service_names.get(s.get("id"), {"de": s.get("id", "")}), **s}
            for s in st.get("services", [])
        ]
        counters = []
        for c in st.get("counters", []):
            c = {**self._counter_info.get(c.get("id"), {}), **c}
            if c.get("serving"):
                c["serving"] = _without(c["serving"], "ticket_id")
            counters.append(c)
        out["counters"] = counters
        out["waiting"] = [_without(w, "id") for w in self.waiting()]
        out["parked"] = [_without(p, "id") for p in self.parked()]
        self._public = out
        return out

    def counter_state(self, counter: str) -> dict[str, Any] | None:
        pub = self.public_state() or {}
        return next((c for c in pub.get("counters", []) if c.get("id") == counter), None)

    def _ticket_index(self) -> dict[str, dict[str, Any]]:
        index = self._index
        if index is not None:
            return index
        index = {}
        st = self.state() or {}
        position: dict[str, int] = {}
        last_eta: dict[str, Any] = {}  # service -> the expected wait of its page's last waiting ticket
        for w in self.waiting():
            n = position[w["service"]] = position.get(w["service"], 0) + 1
            last_eta[w["service"]] = w.get("eta_min")
            index[w["id"]] = {
                "state": "waiting",
                "ticket": w["ticket"],
                "service": self._service_names.get(w["service"]),
                "position": n,
                "ahead": n - 1,
                "eta_min": w.get("eta_min"),
            }
        self._beyond_page(index, position, last_eta)
        for tid, ns in self._no_shows.items():  # a live state below (called again) overrides it
            index[tid] = {"state": "no_show", "ticket": ns["ticket"], "at": ns["at"]}
        for p in self.parked():
            index[p["id"]] = {"state": "parked", "ticket": p["ticket"]}
        summary_seq = st.get("seq", 0)
        for tid, call in list(self._calls.items()):  # called after the summary: the event says so first
            if call["seq"] > summary_seq and call["ticket"] in self._left_queue:
                index[tid] = {
                    "state": "called",
                    "ticket": call["ticket"],
                    "counter": call["counter"],
                    "counter_name": self._counter_info.get(call["counter"], {}).get("name"),
                }
        for c in st.get("counters", []):
            serving = c.get("serving")
            if serving and serving.get("ticket_id"):
                index[serving["ticket_id"]] = {
                    "state": "called",
                    "ticket": serving["ticket"],
                    "counter": c["id"],
                    "counter_name": self._counter_info.get(c["id"], {}).get("name"),
                }
        self._index = index
        return index

    def _truncated(self, service: str) -> bool:
        """Whether the service's queue page leaves waiting tickets out: its ``total`` (the summary's count of
        the service while a controller sends none) is larger than its list. The page's own total, not the
        newer summary's: the two describe the same moment."""
        q = self.queues.get(service) or {}
        total = q.get("total")
        if not isinstance(total, int):
            st = self.runtime.state or {}
            total = next((s.get("waiting") for s in st.get("services", []) if s.get("id") == service), 0)
        return isinstance(total, int) and total > len(q.get("tickets") or [])

    def _beyond_page(
        self, index: dict[str, dict[str, Any]], position: dict[str, int], last_eta: dict[str, Any]
    ) -> None:
        """The tickets known to wait that their service's page does not list (``index`` holds the page's):
        beyond its first ``QUEUE_PAGE``, so "at least N before you" (N: the service's tickets on the page) and
        at least the expected wait of the page's last ticket. Only while the page is truncated (or the ticket
        is newer than the page) and no call or ticket event since it was known to wait says it left: a
        ticket event this app missed is corrected by the pages (not truncated and not on it: not waiting)."""
        if not self._waiting_known or not self.queues:
            return  # (a controller that sends the lists inside the state lists every waiting ticket)
        listed = {svc: {w.get("id") for w in q.get("tickets") or []} for svc, q in self.queues.items()}
        cut = {svc: self._truncated(svc) for svc in self._service_names}
        gone = self._left_queue
        for tid, known in list(self._waiting_known.items()):
            svc = known["service"]
            if tid in index or tid in listed.get(svc, ()) or gone.get(known["ticket"], -1) > known["seq"]:
                continue  # on the page (its exact place, or it left since), or it left by an event
            page_seq = (self.queues.get(svc) or {}).get("seq", 0)
            if not cut[svc] and known["seq"] <= page_seq:
                continue  # the page lists every waiting ticket of its service, and not this one
            index[tid] = {
                "state": "waiting",
                "ticket": known["ticket"],
                "service": self._service_names.get(svc),
                "position": None,
                "ahead": None,
                "eta_min": None,
                "ahead_at_least": position.get(svc, 0),
                "eta_min_at_least": last_eta.get(svc),
            }

    def ticket_status(self, ticket_id: str) -> dict[str, Any]:
        """Where a ticket stands: waiting (position, minutes; beyond its service's queue page at least so many
        before it and at least so many minutes), called (counter), parked, done or unknown; ``unavailable``
        while this copy has no state of the office yet (not "unknown": the ticket may well wait)."""
        st = self.runtime.state
        if st is None:
            return {"state": "unavailable"}
        found = self._ticket_index().get(ticket_id)
        if found is None:
            number = self.tickets_seen.get(ticket_id)
            found = {"state": "done" if number else "unknown", "ticket": number}
        elif found["state"] == "no_show":
            found = self._no_show_status(found, st)
        return {**found, "ts": st.get("ts")}

    def learn(self, ticket_id: str, wait: float = ASK_WAIT_S) -> None:
        """A ticket page for an id this copy does not know: ask the controller (``ticket.show``) and wait a
        moment for the answer. A web app started after a ticket left the queue pages (a no-show older than the
        page's last ten, or one past its window; a ticket served before the start) knows nothing of it, and
        its page would say "not known" instead of "come back by HH:MM", "expired" or "no longer waiting"; nor
        does it know a ticket waiting beyond its service's queue page (the first 100), which then waits on its
        page with lower bounds (``_beyond_page``).

        Never per page view: each unknown id is asked about once (again after ``ASK_AGAIN_S`` if the
        controller did not know it), in batches of ``contract.SHOW_TICKETS`` ids paced ``ASK_PACE_S`` apart by
        one thread, and never from a stream's flush. The answer goes into the copy (the no-shows, the numbers
        seen), so the ticket's streams and later pages are served from memory as every other ticket's; a
        stream opened before the answer gets it with the next flush."""
        if self.runtime.state is None or self.known(ticket_id):
            return
        now = time.monotonic()
        with self._ask_cond:
            event = self._to_ask.get(ticket_id) or self._in_flight.get(ticket_id)
            if event is None and now - self._asked.get(ticket_id, -ASK_AGAIN_S) < ASK_AGAIN_S:
                return
            if event is None:
                if len(self._to_ask) >= 10 * contract.SHOW_TICKETS * int(1 / ASK_PACE_S):
                    return  # more than ten seconds of asking queued up: this one says "not known" for now
                event = self._to_ask[ticket_id] = threading.Event()
                if self._asker is None or not self._asker.is_alive():
                    self._asker = threading.Thread(target=self._ask_loop, name="ticket-show", daemon=True)
                    self._asker.start()
                self._ask_cond.notify()
        if wait > 0:
            event.wait(wait)

    def known(self, ticket_id: str) -> bool:
        return ticket_id in self._ticket_index() or ticket_id in self.tickets_seen

    def _ask_loop(self) -> None:
        from waitroom.errors import WaitroomError

        while not self.closed:
            with self._ask_cond:
                while not self._to_ask and not self.closed:
                    self._ask_cond.wait(5.0)
                batch = self._in_flight = dict(list(self._to_ask.items())[: contract.SHOW_TICKETS])
                now = time.monotonic()
                for tid in batch:
                    del self._to_ask[tid]
                    self._asked[tid] = now
                if len(self._asked) > 100_000:  # ids of a day; a flood of made-up ones is rate-limited before
                    self._asked = {k: v for k, v in self._asked.items() if now - v < ASK_AGAIN_S}
            if not batch:
                continue
            try:
                reply = self.runtime.request_reply(
                    "ticket.show", {"tickets": list(batch)}, timeout=2.0, retries=1
                )
                if reply.get("ok"):
                    self._learned((reply.get("result") or {}).get("tickets") or [], reply.get("seq"))
                else:
                    log.warning("ticket.show refused: %s", (reply.get("error") or {}).get("code"))
            except WaitroomError as exc:  # no answer: asked again by the next page after ASK_AGAIN_S
                log.warning("ticket.show: %s", exc)
            finally:
                with self._ask_cond:
                    self._in_flight = {}
                for event in batch.values():
                    event.set()
            time.sleep(ASK_PACE_S)

    def _learned(self, tickets: list[Any], seq: Any) -> None:
        """The controller's answer to ``ticket.show``: a no-show (with the time it was marked) joins the
        no-shows unless a later call of it is known; a finished ticket is one seen (no longer waiting); a
        waiting one is known to wait (beyond its service's page, ``_beyond_page``) unless a later call or
        ticket event of it is known."""
        seq = seq if isinstance(seq, int) else 0
        for entry in tickets:
            named = isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("id", "number"))
            if not named:
                continue
            tid, state = entry["id"], entry.get("state")
            if state == "no_show" and isinstance(entry.get("at"), int | float):
                call = self._calls.get(tid)
                if tid not in self._no_shows and (call is None or call["seq"] <= seq):
                    self._no_shows[tid] = {
                        "ticket": entry["number"],
                        "service": str(entry.get("service", "")),
                        "at": entry["at"],
                        "seq": seq,
                    }
                self.tickets_seen[tid] = entry["number"]
            elif state in FINISHED:
                self.tickets_seen[tid] = entry["number"]
            elif state == "waiting":  # not on its service's page (else it would be known): beyond it
                self._wait_known(tid, entry["number"], entry.get("service"), seq)
        self._changed()

    def no_show_until(self, at: float) -> float | None:
        """Until when a ticket marked not appeared at ``at`` may be called again (None: not at all)."""
        window = self.cfg.controller.no_show_return_min * 60
        return at + window if window else None

    def _no_show_status(self, found: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
        """A no-show's status page: come back to a counter by HH:MM while staff may call it again
        (``controller.no_show_return_min``, on the controller's clock: the summary's ``ts``), else expired."""
        import datetime as dt

        until = self.no_show_until(found["at"])
        if until is None or float(st.get("ts") or 0.0) > until:
            return {"state": "expired", "ticket": found["ticket"]}
        local = dt.datetime.fromtimestamp(until, self.cfg.office.tz).strftime("%H:%M")
        return {"state": "no_show", "ticket": found["ticket"], "until": local}

    def recent_no_shows(
        self, services: set[str], limit: int = contract.QUEUE_NO_SHOW
    ) -> list[dict[str, Any]]:
        """The tickets of ``services`` marked not appeared that staff may still call, the newest first, at
        most ``limit`` (ticket, service, at; no ids)."""
        st = self.runtime.state or {}
        now = float(st.get("ts") or 0.0)
        out = []
        for ns in self._no_shows.values():
            until = self.no_show_until(ns["at"])
            if ns["service"] in services and until is not None and now <= until:
                out.append({k: ns[k] for k in ("ticket", "service", "at")})
        out.sort(key=lambda n: -n["at"])
        return out[:limit]

    def wait_for_seq(self, seq: int, timeout: float = 2.0) -> bool:
        """Block until the copy holds a state with ``seq`` or later; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._seq_cond:
            while self.seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._seq_cond.wait(left)
        return True

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

    def act(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 1,
        request_id: str | None = None,
    ) -> tuple[dict[str, Any], int]:
        """A staff action: send it, then wait until the office copy includes its effect.

        Returns ``(result, seq)``. The reply's ``seq`` (top level or in the result) is the state that holds
        the effect; a controller that does not send one yet is waited for until a newer state arrives
        (at most 1 s: an action without effect publishes none). ``request_id``: the command's id, for a form
        that may be sent twice (the controller answers the same id with its first reply, doing nothing again).
        """
        from waitroom.errors import CommandFailed

        before = self.seq
        reply = self.runtime.request_reply(op, args, timeout=timeout, retries=retries, request_id=request_id)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise CommandFailed(
                str(err.get("code", "internal")),
                str(err.get("message", "")),
                err.get("data") if isinstance(err.get("data"), dict) else None,
            )
        result = reply.get("result") or {}
        seq = reply.get("seq", result.get("seq"))
        if isinstance(seq, int):
            if not self.wait_for_seq(seq, timeout=2.0):
                log.warning("%s: state seq %d not seen within 2 s (have %d)", op, seq, self.seq)
        else:
            self.wait_for_seq(before + 1, timeout=1.0)
            seq = self.seq
        return result, seq

    def simulate(self, node_id: str, button: str, action: str) -> None:
        """Demo only: a virtual button press on a node's sim topic (the node drives its mock pin)."""
        self.runtime.link.publish(self.topics.sim(node_id), {"button": button, "action": action}, "sim")

    # -- live streams
    def subscribe(self, *, ticket: str | None = None, nodes: bool = False, lang: str = "de") -> Subscription:
        sub = Subscription(self, ticket=ticket, nodes=nodes, lang=lang)
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

    def _general_subs(self, nodes_only: bool = False) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subs if s.ticket is None and (s.nodes or not nodes_only)]

    def broadcast(self, name: str, data: Any, *, nodes_only: bool = False) -> None:
        """One event to every general stream (formatted once)."""
        msg = sse_format(name, data)
        for sub in self._general_subs(nodes_only):
            sub.put(msg)

    def _changed(self) -> None:
        """The copy changed: drop the caches and flush to the streams soon (once per burst)."""
        with self._lock:
            self._public = None
            self._index = None
            if self._flush_pending:
                return
            self._flush_pending = True
        timer = threading.Timer(COALESCE_S, self._flush)
        timer.daemon = True
        timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._flush_pending = False
            subs = list(self._subs)
            self.generation += 1
        pub = self.public_state()
        if pub is None:
            return
        msg = sse_format("state", pub)
        keys: dict[str, tuple[str, dict[str, Any]]] = {}
        messages: dict[tuple[str, str], str] = {}
        for i, sub in enumerate(subs):
            if i % FLUSH_BATCH == FLUSH_BATCH - 1:
                # Let the event loop breathe between batches: the streams woken so far send, and a staff page
                # that arrived meanwhile is served now instead of after the whole crowd (under gevent a real
                # sleep is one loop iteration with an I/O poll; sleep(0) would only run callbacks).
                time.sleep(0.001)
            if sub.ticket is None:
                sub.put(msg)
                continue
            found = keys.get(sub.ticket)
            if found is None:
                status = self.ticket_status(sub.ticket)
                found = keys[sub.ticket] = (_status_key(status), status)
            if found[0] != sub.last:
                sub.last = found[0]
                mkey = (sub.ticket, sub.lang)
                text = messages.get(mkey)
                if text is None:
                    text = messages[mkey] = self.ticket_message(sub.ticket, found[1], sub.lang)
                sub.put(text)

    def ticket_message(self, ticket: str, status: dict[str, Any], lang: str) -> str:
        """The SSE message of a ticket stream: the status and its rendered fragment (one render per
        ticket and language per change, shared by every stream that follows that ticket)."""
        from flask import g, has_request_context, render_template

        if has_request_context() or self.app is None:
            html = render_template("ticket_fragment.html", ticket_id=ticket, status=status)
        else:
            with self.app.test_request_context("/"):
                g.lang = lang
                html = render_template("ticket_fragment.html", ticket_id=ticket, status=status)
        return sse_format("state", {**status, "html": html})

    def sse_response(
        self, *, ticket: str | None = None, nodes: bool = False, keepalive: float = 15.0
    ) -> Response:
        """A text/event-stream response: the current state (or ticket status) first, then every change.

        A ticket stream (``ticket=<id>``) gets ``state`` events whose data is that ticket's status with the
        rendered status fragment in ``html``; a general stream gets the public state and the call, assist
        and intake events (and node status/health with ``nodes=True``, for the admin page).
        """
        from waitroom.web.common import lang

        sub = self.subscribe(ticket=ticket, nodes=nodes, lang=lang())
        if ticket is not None:
            status = self.ticket_status(ticket)
            sub.last = _status_key(status)
            first: str | None = self.ticket_message(ticket, status, sub.lang)
        else:
            pub = self.public_state()
            first = sse_format("state", pub) if pub is not None else None

        def generate() -> Iterator[str]:
            try:
                yield "retry: 3000\n\n"
                if first is not None:
                    yield first
                for item in sub.items(keepalive):
                    yield sse_format(None, None) if item is None else item
            finally:
                sub.close()

        resp = Response(stream_with_context(generate()), mimetype="text/event-stream")
        # a HEAD request (or a client gone before the first byte) never runs the generator, so its finally
        # would not end the subscription: it would hold a stream slot (max_streams) for good
        resp.call_on_close(sub.close)
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp

    # -- MQTT callbacks (network thread)
    def _new_day(self, day: str) -> None:
        if day and day != self._day:
            self._day = day
            self.tickets_seen.clear()
            self.queues = {k: v for k, v in self.queues.items() if v.get("day", day) == day}
            self._left_queue.clear()
            self._calls.clear()
            self._no_shows.clear()
            self._waiting_known.clear()
            with self._ask_cond:
                self._asked.clear()

    def _remember(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry.get("id"):
                self.tickets_seen[entry["id"]] = entry["ticket"]

    def _on_state(self, state: dict[str, Any]) -> None:
        self._new_day(state.get("day", ""))
        self._remember(list(state.get("waiting", [])) + list(state.get("parked", [])))
        for c in state.get("counters", []):
            if c.get("serving") and c["serving"].get("ticket_id"):
                self.tickets_seen[c["serving"]["ticket_id"]] = c["serving"]["ticket"]
        self._changed()
        with self._seq_cond:
            self._seq_cond.notify_all()

    def _on_queue(self, topic: str, raw: bytes) -> None:
        try:
            q = contract.decode(raw, limit=None)
            service = q["service"]
            tickets = q.get("tickets", [])
            parked = q.get("parked", [])
            if not isinstance(tickets, list) or not isinstance(parked, list) or not isinstance(service, str):
                raise ValueError("tickets/parked must be lists")
        except (contract.ContractError, KeyError, ValueError, TypeError) as exc:
            log.warning("ignored bad queue message on %s: %s", topic, exc)
            return
        if q.get("office", self.cfg.office.id) != self.cfg.office.id or service not in self._service_names:
            log.debug("ignored queue of unknown service %r", service)
            return
        old = self.queues.get(service)
        if old is not None and q.get("seq", 0) < old.get("seq", 0) and q.get("day") == old.get("day"):
            return  # an older list delivered late
        self.queues[service] = q
        self._remember(tickets + parked)
        self._page_no_shows(q, service)
        self._page_waiting(q, service)
        self._changed()

    def _page_no_shows(self, q: dict[str, Any], service: str) -> None:
        """The page's recent no-shows (a web app started after they were marked learns them here), unless
        this app has seen a newer call of the ticket than the page. And the page corrects this app: a no-show
        it does not list although it would (within the window, among its newest ``QUEUE_NO_SHOW``, marked
        before the page) was called again, also when this app missed that call event (a broker reconnect):
        it leaves the staff list and its status page."""
        entries = q.get("no_show", [])
        page_seq = q.get("seq", 0) if isinstance(q.get("seq"), int) else 0
        listed: dict[str, float] = {}
        for ns in entries if isinstance(entries, list) else []:
            if not (
                isinstance(ns, dict)
                and isinstance(ns.get("id"), str)
                and isinstance(ns.get("ticket"), str)
                and isinstance(ns.get("at"), int | float)
            ):
                continue
            listed[ns["id"]] = ns["at"]
            call = self._calls.get(ns["id"])
            if call is None or call["seq"] <= page_seq:
                self._no_shows[ns["id"]] = {
                    "ticket": ns["ticket"],
                    "service": service,
                    "at": ns["at"],
                    "seq": page_seq,
                }
                self.tickets_seen[ns["id"]] = ns["ticket"]
        window = self.cfg.controller.no_show_return_min * 60
        ts = q.get("ts")
        if not window or not isinstance(ts, int | float):
            return
        oldest = min(listed.values()) if len(listed) >= contract.QUEUE_NO_SHOW else None
        for tid, ns in list(self._no_shows.items()):
            if ns["service"] != service or tid in listed or ns.get("seq", 0) > page_seq:
                continue  # another service's, listed, or marked after the page (its event came first)
            if ns["at"] < ts - window or (oldest is not None and ns["at"] < oldest):
                continue  # expired (its page says so), or older than the page's newest ones
            del self._no_shows[tid]

    def _page_waiting(self, q: dict[str, Any], service: str) -> None:
        """A page that lists every waiting ticket of its service (not truncated) ends what this app knew to
        wait there and the page does not list, if known before the page: it left (an event this app missed).
        Listed or truncated, the entry stays (a ticket on the page may be pushed beyond it again)."""
        if not self._waiting_known or self._truncated(service):
            return
        page_seq = q.get("seq", 0) if isinstance(q.get("seq"), int) else 0
        listed = {w.get("id") for w in q.get("tickets") or [] if isinstance(w, dict)}
        for tid, known in list(self._waiting_known.items()):
            if known["service"] == service and known["seq"] <= page_seq and tid not in listed:
                del self._waiting_known[tid]

    def _wait_known(self, tid: str, number: str, service: Any, seq: int) -> None:
        """A ticket known to wait in ``service`` since ``seq`` (an issued or returned ticket's event, a
        ``ticket.show`` answer): its page shows it also beyond the service's queue page."""
        if not isinstance(service, str) or service not in self._service_names:
            return
        old = self._waiting_known.get(tid)
        if old is None or old["seq"] <= seq:
            self._waiting_known[tid] = {"ticket": number, "service": service, "seq": seq}
        self.tickets_seen[tid] = number

    def _on_counter(self, topic: str, raw: bytes) -> None:
        try:
            detail = contract.decode(raw, limit=None)
            cid = str(detail["counter"])
        except (contract.ContractError, KeyError) as exc:
            log.debug("ignored counter detail on %s: %s", topic, exc)
            return
        old = self.counter_details.get(cid)
        if old is not None and detail.get("seq", 0) < old.get("seq", 0):
            return  # an older detail delivered late
        self.counter_details[cid] = detail
        serving = detail.get("serving")
        if serving and serving.get("ticket_id"):
            self.tickets_seen[serving["ticket_id"]] = serving["ticket"]
        self._changed()

    def _on_event(self, kind: EventKind, event: dict[str, Any]) -> None:
        number, seq = event.get("ticket"), event.get("seq")
        if isinstance(number, str) and isinstance(seq, int):
            waiting = kind is EventKind.TICKET and event.get("state") == "waiting"
            if kind is EventKind.CALL or (kind is EventKind.TICKET and not waiting):
                self._left_queue[number] = seq  # no longer waiting since seq
                if isinstance(event.get("ticket_id"), str):
                    self._waiting_known.pop(event["ticket_id"], None)
            if kind is EventKind.CALL and isinstance(event.get("ticket_id"), str):
                self._calls[event["ticket_id"]] = {"seq": seq, "ticket": number, "counter": event["counter"]}
                self.tickets_seen[event["ticket_id"]] = number
                self._no_shows.pop(event["ticket_id"], None)  # called again: the citizen came back
            elif waiting:
                self._left_queue.pop(number, None)
                if isinstance(event.get("ticket_id"), str):
                    self._wait_known(event["ticket_id"], number, event.get("service"), seq)
            if kind is EventKind.TICKET and isinstance(event.get("ticket_id"), str):
                self._note_no_show(event, number)
            self._changed()
        if kind.value in STREAM_EVENTS:
            self.broadcast(kind.value, public_event(event))

    def _note_no_show(self, event: dict[str, Any], number: str) -> None:
        """A ticket event: marked not appeared (kept with its time), or any other change (no longer)."""
        tid = event["ticket_id"]
        if event.get("state") == "no_show" and isinstance(event.get("ts"), int | float):
            self._no_shows[tid] = {
                "ticket": number,
                "service": event.get("service", ""),
                "at": event["ts"],
                "seq": event.get("seq", 0),
            }
        else:
            self._no_shows.pop(tid, None)

    def _on_node_msg(self, topic: str, payload: bytes) -> None:
        try:
            node_id, kind = self.topics.parse_node_topic(topic)
            data = contract.decode(payload)
        except contract.ContractError as exc:
            log.debug("ignored node message on %s: %s", topic, exc)
            return
        with self._lock:
            self.nodes.setdefault(node_id, {})[kind] = data
        if node_id == contract.CONTROLLER_NODE_ID and kind == "status":
            offline = data.get("status") == "offline"
            if offline != (self.controller_offline_since is not None):
                self.controller_offline_since = time.time() if offline else None
                # public pages listen to this (their waits are no longer current, or current again)
                self.broadcast("controller", {"status": "offline" if offline else "online"})
        if kind == "status" or kind == "health":
            self.broadcast("node", {"node": node_id, "kind": kind, "data": data}, nodes_only=True)
