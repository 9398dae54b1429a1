"""The counter node: staff buttons and a status light at one counter (Schalter).

Buttons (names from firmware_config/pinmaps/counter.yaml, overridable per node with ``pins:``):

=========  ==========================  =======================================================
button     short press                 long press
=========  ==========================  =======================================================
next       call the next ticket        recall the current ticket
recall     recall the current ticket   take the oldest help request signalled here (else recall)
served     current ticket served       --
no_show    current ticket no-show      --
pause      pause / reopen the counter  close the counter
=========  ==========================  =======================================================

Status light (an RGB LED ``status_red/green/blue``; with only ``status_green`` the patterns fall back to it):

- serving a ticket: green steady; open and idle: green heartbeat; paused: yellow (red+green) steady;
  closed: off; broker or controller unreachable: red fast blink;
- feedback: three amber flashes when nobody is waiting, three red flashes when an action was refused;
- assistance: blue blinks while a request at or above this counter's escalation level waits, blue steady while
  the request this counter acknowledged is open; the ``buzzer`` beeps twice for each new or escalated request.

Each press that acts on the called ticket (next, recall, served, no-show, pause, close) names the ticket this
node knows as called at its counter (``current``; from the office state and the replies to its own presses,
ordered by their ``seq``): when another workstation has called, finished or recalled meanwhile, the controller
does nothing (``invalid_state``), the light flashes red, and the next press acts on the ticket called now. So
"served" pressed just after a staff page finished that ticket and called the next one does not mark the new
one as served before its citizen has reached the counter.

A pause or close by button is not asked again, as the staff page asks before it closes or pauses the last open
counter of a service with citizens waiting: a button has no screen to ask on, and a clerk who has to leave
must be able to. The controller's ``unstaffed_service`` alarm (waitroom/staffing.py) tells the office when
citizens then wait with no open counter for their service.

Presses are never lost silently: each is sent with request/reply and retried with the same request id; when
the controller stays silent the light blinks red fast (refused visibly), and a press while the broker is
unreachable is refused at once the same way. A press of the same button (same command) again before the first
one's answer is dropped (a double press, or an impatient one while the controller is slow): when the
controller answers late, one ticket is called, not several in a row that would each finish the one
before unseen.

"next" pressed again within ``next_guard_s`` (2 s) of a call that got through is refused the same way (red
flashes): the second press of a double press, or an impatient one before the display showed the call, would
call the next ticket and finish the one just called as served before its citizen had stood up.

Number display (Platzanzeige; pin map revision ``display``: a multiplexed 7-segment display of 4 characters
above the counter): the number called here (``A012``), blinking for ``display_blink_s`` after each call and
recall, so that the citizen who hears "A 12, Schalter 3" finds the counter; dashes while the counter is paused
or closed; nothing while it is open and nobody is called. While the controller is unreachable it keeps what it
showed: the citizen at the counter is still being served. ``check-config`` refuses a service letter that a
7-segment display cannot show (K, M, V, W, X, Z) when a counter node has one, naming the service.

Node options (``OPTIONS``; docs/configuration.md): ``long_press_s``, ``assist_from_level``,
``request_timeout_s``, ``retries``, ``next_guard_s``, ``display_blink_s``, ``display_common_anode``, and
``hardware`` (the pin map revision).
Any other key is an error naming it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from edge.hardware import CharDisplay, Lamp, PressButton, SimInput, close_all
from waitroom.configbase import prepared
from waitroom.contract import EventKind
from waitroom.errors import CommandFailed, ConfigError, RequestTimeout

if TYPE_CHECKING:  # the schema (pydantic); a node runs on light records of it (waitroom.nodeconfig)
    from waitroom.config import Config, Node

log = logging.getLogger(__name__)

DEFAULT_PINS: dict[str, int] = {
    "next": 17,
    "recall": 27,
    "served": 22,
    "no_show": 23,
    "pause": 24,
    "status_red": 5,
    "status_green": 6,
    "status_blue": 13,
    "buzzer": 26,
}
BUTTONS = ("next", "recall", "served", "no_show", "pause")
# the operations that act on (or finish) the called ticket: they carry ``current`` (docs/mqtt-contract.md)
EXPECTS_CURRENT = frozenset(
    {
        "counter.call_next",
        "counter.recall",
        "counter.served",
        "counter.no_show",
        "counter.pause",
        "counter.close",
    }
)
FEEDBACK_S = 1.0  # how long a feedback flash pattern shows before the state pattern returns
# ``nodes[].options`` of a counter node: name -> (default, lowest, highest, description). ``hardware`` (the
# pin map revision) is checked with the pins (firmware_config.pins). docs/configuration.md lists these.
OPTIONS: dict[str, tuple[float, float, float, str]] = {
    "long_press_s": (
        1.0,
        0.2,
        10,
        "seconds a press must be held to count as long (next: recall, "
        "recall: take the oldest help request, pause: close)",
    ),
    "assist_from_level": (
        1,
        0,
        2,
        "signal help requests from this escalation level on (0: at once, "
        "1: when they escalate to all counters, 2: to the manager)",
    ),
    "request_timeout_s": (2.0, 0.1, 30, "seconds to wait for the controller's reply to a press, per attempt"),
    "retries": (2, 0, 10, "repeats of a press (same request id) before it is refused visibly"),
    "next_guard_s": (
        2.0,
        0,
        30,
        "seconds after a call in which 'next' is taken as pressed twice and refused (red flashes), so the "
        "ticket just called is not finished before its citizen has stood up; 0: off",
    ),
    "display_blink_s": (
        5.0,
        0,
        60,
        "seconds the number display blinks a number after it was called or recalled (0: steady at once)",
    ),
    "display_common_anode": (
        0,
        0,
        1,
        "1: the number display has a common anode (PNP transistors on the digit pins), 0: a common cathode",
    ),
}
SEGMENT_PINS = ("seg_a", "seg_b", "seg_c", "seg_d", "seg_e", "seg_f", "seg_g", "seg_dp")
# ``nodes[].options`` of an assistance node, as ``OPTIONS``.
ASSIST_OPTIONS: dict[str, tuple[float, float, float, str]] = {
    "long_press_s": (2.0, 0.2, 10, "seconds the button must be held to cancel the open request"),
    "request_timeout_s": (2.0, 0.1, 30, "seconds to wait for the controller's reply to a press, per attempt"),
    "retries": (2, 0, 10, "repeats of a press (same request id) before it is refused visibly"),
}
INTEGER_OPTIONS = frozenset({"assist_from_level", "retries", "display_common_anode"})
PIN_OPTIONS = frozenset({"hardware"})


class StatusLamp(Lamp):
    """A Lamp with a heartbeat pattern (short blip every two seconds) for "open, nobody called"."""

    PATTERNS = {**Lamp.PATTERNS, "heartbeat": (0.1, 1.9)}


def node_pins(node: Node, cfg: Config | None = None) -> dict[str, Any]:
    """Effective pins: the role's pin map revision (firmware_config) with the node's overrides (resolved
    already when the node started from its validated-config cache: then firmware_config is not loaded)."""
    done = prepared(cfg, "pins")
    if done is not None:
        return dict(done)
    try:
        from firmware_config.pins import resolve
    except ImportError:  # pragma: no cover - firmware_config ships with waitroom
        return {**DEFAULT_PINS, **node.pins}
    return resolve(node)


def prepare(cfg: Config, node: Node) -> dict[str, Any]:
    """What a counter or assistance node resolves at start, for its validated-config cache
    (``waitroom.nodeconfig``): its pins, after its options are checked (a ConfigError naming the key)."""
    table = ASSIST_OPTIONS if node.role == "assist" else OPTIONS
    index = next((i for i, n in enumerate(cfg.nodes) if n.id == node.id), 0)
    errors = check_options(node, table, f"nodes[{index}].options")
    pins = node_pins(node)
    if node.role == "counter" and has_display(pins):
        errors += check_letters(cfg, node)
    if errors:
        raise ConfigError(node.role, errors)
    return {"pins": pins}


def has_display(pins: dict[str, Any]) -> bool:
    return all(pins.get(n) is not None for n in SEGMENT_PINS[:7]) and pins.get("digit_1") is not None


# The letters gpiozero's 7-segment font has (it has no K, M, V, W, X, Z: no seven segments can draw them).
DISPLAY_LETTERS = frozenset("ABCDEFGHIJLNOPQRSTUY")


def check_letters(cfg: Config, node: Node) -> list[str]:
    """Errors for the services whose ticket letter a counter's number display cannot show: any ticket of the
    office can come to this counter (a transfer), so every service counts."""
    return [
        f"services[{i}].prefix: the number display of counter node {node.id} cannot show the letter "
        f"{svc.prefix!r} (a 7-segment display shows {''.join(sorted(DISPLAY_LETTERS))})"
        for i, svc in enumerate(cfg.services)
        if svc.prefix not in DISPLAY_LETTERS
    ]


def check_options(node: Node, table: dict[str, tuple[float, float, float, str]], path: str) -> list[str]:
    """Errors of a counter's or assistance node's ``options``, each naming its key."""
    errors = []
    for name in node.options:
        if name in PIN_OPTIONS:
            continue
        if name not in table:
            known = ", ".join(sorted({*table, *PIN_OPTIONS}))
            errors.append(f"{path}.{name}: unknown option (known: {known})")
            continue
        try:
            _option(node, name, table)
        except ValueError as exc:
            errors.append(f"{path}.{name}: {str(exc).partition(': ')[2]}")
    return errors


def _option(node: Node, name: str, table: dict[str, tuple[float, float, float, str]]) -> float:
    default, lo, hi, _ = table[name]
    value = node.options.get(name, default)
    whole = name in INTEGER_OPTIONS
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not lo <= value <= hi
        or (whole and value != int(value))
    ):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"node {node.id}: options.{name} must be {kind} {lo}..{hi}, not {value!r}")
    return float(value)


class CounterNode:
    def __init__(self, runtime: Any, cfg: Config, node: Node, *, pins: Any = None, simulate: bool = False):
        if node.counter is None:
            raise ValueError(f"node {node.id}: a counter node must name its counter")
        self.runtime = runtime
        self.cfg = cfg
        self.node = node
        self.counter = node.counter
        self.long_press_s = _option(node, "long_press_s", OPTIONS)
        self.assist_from_level = int(_option(node, "assist_from_level", OPTIONS))
        self.timeout_s = _option(node, "request_timeout_s", OPTIONS)
        self.retries = int(_option(node, "retries", OPTIONS))
        self.next_guard_s = _option(node, "next_guard_s", OPTIONS)
        self._called_at = -1e9  # monotonic time of the last "next" of this node that called a ticket
        pinmap = node_pins(node, cfg)
        self.buttons: dict[str, PressButton] = {}
        for name in BUTTONS:
            if pinmap.get(name) is None:
                continue
            b = PressButton(
                pinmap[name],
                factory=pins,
                name=f"{node.id}.{name}",
                long_press_s=self.long_press_s if name in ("next", "recall", "pause") else None,
            )
            self.buttons[name] = b
        if "next" not in self.buttons:
            raise ValueError(f"node {node.id}: the counter node needs at least the 'next' button")
        self.lamps: dict[str, Lamp] = {}
        for colour in ("red", "green", "blue"):
            pin = pinmap.get(f"status_{colour}")
            if pin is not None:
                self.lamps[colour] = StatusLamp(pin, factory=pins, name=f"{node.id}.{colour}")
        if not self.lamps:
            raise ValueError(f"node {node.id}: the counter node needs a status LED (status_green)")
        self.buzzer = (
            Lamp(pinmap["buzzer"], factory=pins, name=f"{node.id}.buzzer")
            if pinmap.get("buzzer") is not None
            else None
        )
        self.display_blink_s = _option(node, "display_blink_s", OPTIONS)
        self.display: CharDisplay | None = None
        if has_display(pinmap):
            digits = sorted((k for k in pinmap if k.startswith("digit_") and pinmap[k] is not None), key=str)
            self.display = CharDisplay(
                [pinmap[n] for n in SEGMENT_PINS if pinmap.get(n) is not None],
                [pinmap[k] for k in digits],
                factory=pins,
                common_anode=bool(_option(node, "display_common_anode", OPTIONS)),
                name=f"{node.id}.display",
            )
        self._wire()
        self.sim = SimInput(runtime, self.buttons) if simulate else None
        self._jobs: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"{node.id}-presses", daemon=True)
        self._lock = threading.RLock()
        self._closed = False
        self._feedback_timer: threading.Timer | None = None
        self._feedback_until = False
        self.offline = not runtime.online
        # the controller's retained status (its last will says "offline"); None until it arrives. The broker
        # keeps the office state retained, so a state arriving does not mean that the controller is up.
        self.controller_up: bool | None = None
        self.counter_state: dict[str, Any] | None = None
        self.assist_signal = "off"  # off | pending | mine
        self._assist_seen: dict[str, int] = {}
        self.last_error: str = ""
        self.mode = "unknown"
        self._unanswered: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()  # presses queued or in flight
        self.doubled = 0  # presses dropped because the same press was still unanswered
        # the ticket this node knows as called at its counter ("" none; None: not known yet) and the ``seq``
        # of the state or reply it is from: sent as ``current`` with the presses that act on it
        self.called: str | None = None
        self._called_seq = -1

    # -- wiring
    def _wire(self) -> None:
        c = self.counter
        b = self.buttons
        b["next"].on_press = lambda: self.submit("counter.call_next", {"counter": c})
        b["next"].on_long_press = lambda: self.submit("counter.recall", {"counter": c})
        if "recall" in b:
            b["recall"].on_press = lambda: self.submit("counter.recall", {"counter": c})
            b["recall"].on_long_press = self.acknowledge_assist
        if "served" in b:
            b["served"].on_press = lambda: self.submit("counter.served", {"counter": c})
        if "no_show" in b:
            b["no_show"].on_press = lambda: self.submit("counter.no_show", {"counter": c})
        if "pause" in b:
            b["pause"].on_press = self.toggle_pause
            b["pause"].on_long_press = lambda: self.submit("counter.close", {"counter": c})

    def start(self) -> None:
        self._worker.start()
        self.runtime.link.on_connect_hooks.append(self._connected)
        self.runtime.link.on_disconnect_hooks.append(self._disconnected)
        self.runtime.on_state(self._on_state)
        self.runtime.on_event(self._on_event)
        self.runtime.on_controller(self._on_controller)
        self.offline = not self.runtime.online
        self.show()
        log.info(
            "counter node %s for %s: buttons %s, status LED %s",
            self.node.id,
            self.counter,
            ", ".join(self.buttons),
            "/".join(self.lamps),
        )

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        self._jobs.put(None)
        if self._feedback_timer:
            self._feedback_timer.cancel()
        for lamp in [*self.lamps.values(), *([self.buzzer] if self.buzzer else [])]:
            lamp.set("off")
        extra = [d for d in (self.buzzer, self.display) if d is not None]
        close_all([*self.buttons.values(), *self.lamps.values(), *extra])

    # -- actions
    def toggle_pause(self) -> None:
        state = (self.counter_state or {}).get("state")
        if state == "paused" or state == "closed":
            self.submit("counter.open", {"counter": self.counter})
        else:
            self.submit("counter.pause", {"counter": self.counter, "reason": "Pause"})

    def acknowledge_assist(self) -> None:
        """A long press on "recall": the oldest help request this counter signals (blue blinking), else the
        recall the clerk meant (held a little long). It took the oldest request of the office, also one below
        this counter's ``assist_from_level`` that nobody here had seen, instead of the recall."""
        pending = [
            a
            for a in (self.runtime.state or {}).get("assistance", [])
            if a["state"] == "pending" and a.get("level", 0) >= self.assist_from_level
        ]
        if not pending:
            self.submit("counter.recall", {"counter": self.counter})
            return
        oldest = min(pending, key=lambda a: a.get("requested_at", 0))
        self.submit("assist.acknowledge", {"request": oldest["id"], "counter": self.counter})

    def submit(self, op: str, args: dict[str, Any]) -> None:
        """Queue a press for the controller; refused at once (red blink) while the broker is unreachable."""
        if not self.runtime.online:
            log.warning("%s: %s refused, no connection to the broker", self.node.id, op)
            self.last_error = "offline"
            self.offline = True
            self.show()
            return
        key = (op, tuple(sorted(args.items())))
        if op == "counter.call_next" and time.monotonic() - self._called_at < self.next_guard_s:
            log.info("%s: next pressed again right after a call; not sent (next_guard_s)", self.node.id)
            self.doubled += 1
            self.last_error = "double_press"
            self.feedback("error")
            self._health()
            return
        with self._lock:
            if key in self._unanswered:  # a second press before the first one's answer: a double press
                log.info(
                    "%s: %s pressed again before its answer; the press is not sent twice", self.node.id, op
                )
                self.doubled += 1
                return
            self._unanswered.add(key)
        self._jobs.put((op, args))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            op, args = job
            try:
                self._send(op, args)
            finally:
                with self._lock:
                    self._unanswered.discard((op, tuple(sorted(args.items()))))

    def _send(self, op: str, args: dict[str, Any]) -> None:
        with self._lock:  # what is known when it goes out (a press queued behind another one sees its reply)
            if op in EXPECTS_CURRENT and self.called is not None:
                args = {**args, "current": self.called}
        try:
            self.runtime.request(
                op, args, timeout=self.timeout_s, retries=self.retries, on_reply=lambda r: self._learn(op, r)
            )
        except CommandFailed as exc:
            self.last_error = exc.code
            log.info("%s: %s refused: %s", self.node.id, op, exc)
            self.feedback("nobody" if exc.code == "nobody_waiting" else "error")
        except RequestTimeout:
            self.last_error = "timeout"
            log.warning("%s: %s got no reply from the controller", self.node.id, op)
            self.offline = True
            self.show()
        else:
            self.last_error = ""
            self.controller_up = True  # it answered
            if op == "counter.call_next":
                self._called_at = time.monotonic()
            if self.offline:
                self.offline = False
                self.show()
        self._health()

    def _health(self) -> None:
        self.runtime.set_health(
            counter=self.counter,
            mode=self.mode,
            last_error=self.last_error,
            presses=sum(b.presses for b in self.buttons.values()),
            doubled=self.doubled,
        )

    # -- state from the controller
    def _learn(self, op: str, reply: dict[str, Any]) -> None:
        """The ticket called at this counter after a reply to one of this node's presses."""
        seq = reply.get("seq")
        if not isinstance(seq, int):
            return
        result = reply.get("result") or {}
        error = reply.get("error") or {}
        code, data = error.get("code"), error.get("data") or {}
        called: str | None
        if reply.get("ok") and isinstance(result.get("call"), dict):
            called = str(result["call"].get("ticket") or "")  # call_next, recall
        elif reply.get("ok") and op in EXPECTS_CURRENT:
            called = ""  # served, no-show, pause, close finish it
        elif code == "invalid_state" and isinstance(data, dict) and data.get("counter") == self.counter:
            called = str(data.get("ticket") or "")  # what the controller says is called now
            with self._lock:  # its word on the present, whatever seq was known (a restored event log)
                self.called, self._called_seq = called, seq
            return
        elif code in ("nobody_waiting", "not_serving"):
            called = ""  # call_next finished the called ticket; or nothing was called
        else:
            return
        with self._lock:
            if seq >= self._called_seq:
                self.called, self._called_seq = called, seq

    def _connected(self) -> None:
        pass  # stays "offline" until the controller's state arrives (broker up does not mean controller up)

    def _disconnected(self) -> None:
        self.offline = True
        self.show()

    def _on_controller(self, online: bool) -> None:
        with self._lock:
            self.controller_up = online
            if not self.controller_up:
                log.warning("%s: the controller is offline", self.node.id)
                self.offline = True
            elif self.counter_state is not None and self.runtime.online:
                self.offline = False
        self.show()

    def _on_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.offline = self.controller_up is False
            self.counter_state = next((c for c in state.get("counters", []) if c["id"] == self.counter), None)
            seq = state.get("seq")
            if self.counter_state is not None and isinstance(seq, int) and seq >= self._called_seq:
                self.called = str((self.counter_state.get("serving") or {}).get("ticket") or "")
                self._called_seq = seq
            self._update_assist(state.get("assistance", []))
        self.show()

    def _update_assist(self, assists: list[dict[str, Any]]) -> None:
        signalled = {
            a["id"]: a["level"]
            for a in assists
            if a["state"] == "pending" and a["level"] >= self.assist_from_level
        }
        mine = any(a["state"] == "acknowledged" and a.get("counter") == self.counter for a in assists)
        new = [aid for aid, lvl in signalled.items() if self._assist_seen.get(aid, -1) < lvl]
        self._assist_seen = {**{k: v for k, v in self._assist_seen.items() if k in signalled}, **signalled}
        self.assist_signal = "pending" if signalled else "mine" if mine else "off"
        if new and self.buzzer is not None and not self._closed:
            self.buzzer.set("flash", n=2)

    def _on_event(self, kind: EventKind, event: dict[str, Any]) -> None:
        if kind is EventKind.CALL and event.get("counter") == self.counter and self.display is not None:
            ticket = event.get("ticket")
            with self._lock:
                if isinstance(ticket, str) and not self._closed:
                    self.display.blink(ticket, self.display_blink_s)
            return
        if kind is EventKind.ASSIST:
            log.info(
                "%s: assistance %s at %s: %s (level %s)",
                self.node.id,
                event.get("id"),
                event.get("terminal"),
                event.get("event"),
                event.get("level"),
            )

    # -- the light
    def feedback(self, kind: str) -> None:
        """Three flashes (amber = nobody waiting, red = refused), then the state pattern again."""
        with self._lock:
            if self._closed:
                return
            if self._feedback_timer:
                self._feedback_timer.cancel()
            self._feedback_until = True
            colours = ("red", "green") if kind == "nobody" else ("red",)
            lit = [c for c in colours if c in self.lamps] or list(self.lamps)[:1]
            for name, lamp in self.lamps.items():
                if name in lit:
                    lamp.set("flash", n=3)
                elif name != "blue":
                    lamp.set("off")
            self._feedback_timer = threading.Timer(FEEDBACK_S, self._end_feedback)
            self._feedback_timer.daemon = True
            self._feedback_timer.start()

    def _end_feedback(self) -> None:
        with self._lock:
            self._feedback_until = False
        self.show()

    def _patterns(self) -> tuple[str, dict[str, str]]:
        cs = self.counter_state
        if self.offline:
            return "offline", {"red": "fast"}
        if cs is None:
            return "unknown", {"red": "blink"}
        if cs["state"] == "closed":
            return "closed", {}
        if cs["state"] == "paused":
            return "paused", {"red": "on", "green": "on"}
        if cs.get("serving"):
            return "serving", {"green": "on"}
        return "idle", {"green": "heartbeat"}

    def show(self) -> None:
        with self._lock:
            if self._closed:
                return
            mode, want = self._patterns()
            self.mode = mode
            self._show_number(mode)
            if len(self.lamps) == 1:  # a single LED: fold the colours onto it
                only = next(iter(self.lamps.values()))
                single = {
                    "offline": "fast",
                    "unknown": "blink",
                    "closed": "off",
                    "paused": "blink",
                    "serving": "on",
                    "idle": "heartbeat",
                }[mode]
                if not self._feedback_until:
                    only.set(single)
                return
            if not self._feedback_until:
                for colour in ("red", "green"):
                    if colour in self.lamps:
                        self.lamps[colour].set(want.get(colour, "off"))
            if "blue" in self.lamps:
                self.lamps["blue"].set({"pending": "blink", "mine": "on"}.get(self.assist_signal, "off"))

    def _show_number(self, mode: str) -> None:
        """The number display after the counter's state changed (a call event blinks it first)."""
        d = self.display
        if d is None or mode == "offline":  # the citizen at the counter is still being served
            return
        if mode in ("paused", "closed"):
            text = "-" * d.width
        elif mode == "serving":
            text = str(((self.counter_state or {}).get("serving") or {}).get("ticket") or "")
        else:
            text = ""
        if d.fit(text) != d.text:
            d.show(text)


def create(runtime: Any, cfg: Config, node: Node, *, pins: Any = None, simulate: bool = False) -> CounterNode:
    """Node factory (waitroom/cli.py NODE_ROLES['counter'])."""
    return CounterNode(runtime, cfg, node, pins=pins, simulate=simulate)
