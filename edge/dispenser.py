"""The ticket dispenser node: service buttons, ticket printing, appointment check-in, offline numbers.

What the citizen sees (documented behaviour; docs/dispenser.md repeats it for staff):

- A press on a service button prints a ticket. The button's LED is lit while the service takes walk-ins.
- **Intake stopped** (Annahmeschluss): the button's LED is dark; a press prints nothing, the LED flashes three
  times and the buzzer beeps twice. The reason is in the state snapshot (displays and web show it) and in this
  node's health (``last_refusal``).
- **Rate limit**: the same button again within ``press_interval_s`` (default 3 s), or more tickets than the
  bucket allows (``burst`` in a row, then ``per_minute``), print nothing: the LED flickers fast for a moment,
  no beep. A stuck button prints nothing at all (tickets are given on release) and shows up in the health as
  ``buttons_stuck``. So a child hammering a button, or a jammed one, cannot empty the paper roll.
- **Printer fault** (paper out, cover open, offline): the status LED blinks fast, a press beeps three times
  and prints nothing. When a ticket was already issued and printing then fails (after ``print_retries``), the
  ticket is cancelled at the controller (reason ``print_failed``), so it never waits in the queue without a
  holder; if the controller cannot be reached for that, the cancel is stored and sent later. An appointment
  check-in is *not* cancelled: the citizen did arrive, and scanning the code again reprints the same ticket.
- **Controller not answering** (``request_timeout_s``): the ticket comes from a block of numbers leased in
  advance (``lease_size`` per service) and says "Wartezeit wird ermittelt"; the status LED blinks slowly.
  Each offline number is written to the node's SQLite file *before* it is printed, so no number is given
  twice, also across a restart; the tickets are reported (``ticket.report_offline``, idempotent) when the
  controller answers again. Without numbers left (or before the first lease of the day) the press beeps three
  times. Leasing takes the next numbers of the day, so with the default ``lease_size: 10`` a day's walk-in
  numbers start after the first ten reserved ones.
- A command that timed out may still have reached the controller; when it is back, the dispenser repeats it
  with the same request id (the controller answers repeats from its log) and cancels that ticket, so no
  ticket without a holder stays in the queue.
- **Priority button**: arms the next ticket (within ``priority_window_s``) as a priority ticket; its LED
  blinks while armed. **Language button**: the next ticket's texts in English first (LED on); back to German
  after the ticket or ``lang_window_s``.
- **Appointment check-in**: a USB QR scanner / keyboard (``scanner``: an evdev device, or ``-`` for stdin)
  sends the booking code; the ticket shows the appointment time. Unknown or expired codes print a short
  notice saying so; without the controller, a notice asks the citizen to take a walk-in ticket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import sqlite3
import struct
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.hardware import Lamp, PressButton, SimInput, close_all, pin_factory
from ticket_printer.layout import Notice, TicketData
from ticket_printer.printer import TicketPrinter
from ticket_printer.settings import load_settings
from waitroom import contract
from waitroom.city.advice import Advice
from waitroom.config import Config, Node
from waitroom.config import data_dir as config_data_dir
from waitroom.contract import CONTROLLER_NODE_ID, ErrorCode
from waitroom.errors import CommandFailed, ConfigError, PrinterError, RequestTimeout
from waitroom.i18n import LANGUAGES, both, normalize

log = logging.getLogger(__name__)

MAX_BUTTONS = 6
# Default pin map (BCM numbers), the same as firmware_config/pinmaps/dispenser.yaml. button<i> is the i-th
# service of the node's ``services``; optional parts can be switched off with "none" in ``nodes[].pins``.
DEFAULT_PINS: dict[str, int] = {
    "button1": 5,
    "button2": 6,
    "button3": 13,
    "button4": 19,
    "button5": 26,
    "button6": 21,
    "led1": 12,
    "led2": 16,
    "led3": 20,
    "led4": 25,
    "led5": 24,
    "led6": 23,
    "priority": 17,
    "priority_led": 27,
    "lang": 22,
    "lang_led": 9,
    "status_led": 4,
    "buzzer": 18,
}
PIN_NAMES = frozenset(DEFAULT_PINS)
OFF = ("", "none", "off", "-")
CODE_RE = re.compile(r"^[A-Z0-9]{3,32}$")


class DispenserOptions(BaseModel):
    """``nodes[].options`` of a dispenser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_timeout_s: float = Field(1.0, gt=0, le=10, description="wait for the controller per attempt")
    request_retries: int = Field(1, ge=0, le=5, description="repeats (same request id) before going offline")
    lease_size: int = Field(10, ge=1, le=200, description="numbers leased per service for offline issuing")
    lease_low: int = Field(3, ge=0, le=200, description="lease a new block when fewer numbers remain")
    press_interval_s: float = Field(3.0, ge=0, le=60, description="same button again within this: ignored")
    burst: int = Field(4, ge=1, le=50, description="tickets in a row before the per-minute limit applies")
    per_minute: float = Field(10.0, gt=0, le=600, description="sustained tickets per minute (all buttons)")
    priority_window_s: float = Field(10.0, gt=0, le=120, description="priority button arms the next ticket")
    lang_window_s: float = Field(30.0, gt=0, le=600, description="language choice holds this long")
    languages: tuple[str, ...] = Field(
        ("de", "en"),
        min_length=1,
        max_length=len(LANGUAGES),
        description="languages the language button steps through, the first is the default "
        f"(codes: {', '.join(LANGUAGES)})",
        examples=[["de", "en", "tr", "ar", "uk", "ru", "de-LS"]],
    )
    debounce_ms: float = Field(30.0, ge=0, le=500, description="contact bounce filter")
    stuck_s: float = Field(10.0, ge=1, le=600, description="a button held this long counts as stuck")
    print_retries: int = Field(1, ge=0, le=5, description="print attempts after a failure before cancelling")
    scanner: str | None = Field(None, description="booking-code scanner: evdev device path, or '-' for stdin")
    scanner_layout: Literal["de", "us"] = Field("de", description="keyboard layout the scanner types in")
    hardware: str | None = Field(
        None, description="pin map revision (firmware_config/pinmaps/dispenser.yaml)"
    )
    data_dir: str | None = Field(
        None, description="folder of the offline-number store (default: $WAITROOM_DATA_DIR or ./var)"
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        codes = []
        for code in v:
            canonical = normalize(code)
            if canonical is None:
                raise ValueError(f"unknown language {code!r}; known: {', '.join(LANGUAGES)}")
            codes.append(canonical)
        if len(set(codes)) != len(codes):
            raise ValueError(f"languages {list(v)} name a language twice")
        return tuple(codes)


def node_index(cfg: Config, node: Node) -> int:
    return next((i for i, n in enumerate(cfg.nodes) if n.id == node.id), 0)


def load_options(cfg: Config, node: Node) -> DispenserOptions:
    try:
        return DispenserOptions.model_validate(node.options)
    except ValidationError as exc:
        p = f"nodes[{node_index(cfg, node)}].options"
        errors = [
            f"{p}.{'.'.join(map(str, e['loc']))}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        ]
        raise ConfigError("dispenser", errors) from None


def button_services(cfg: Config, node: Node) -> list[str]:
    """The services on the node's buttons, in order (default: every walk-in service)."""
    return list(node.services) if node.services else [s.id for s in cfg.services if s.walk_in]


def _base_pins(cfg: Config, node: Node) -> dict[str, int | str]:
    """The pin map revision (firmware_config/pinmaps/dispenser.yaml) or DEFAULT_PINS, plus node.pins."""
    p = f"nodes[{node_index(cfg, node)}]"
    try:
        from firmware_config.pins import resolve
    except ImportError:  # a node image without the firmware_config package
        return {**DEFAULT_PINS, **node.pins}
    try:
        return resolve(node)
    except KeyError as exc:
        raise ConfigError("dispenser", [f"{p}.options.hardware: unknown revision {exc}"]) from None


def resolve_pins(cfg: Config, node: Node) -> dict[str, int | str | None]:
    """Pins by name (None = not fitted); raises ConfigError naming the bad key."""
    p = f"nodes[{node_index(cfg, node)}].pins"
    errors = []
    pins: dict[str, int | str | None] = {}
    for key, value in _base_pins(cfg, node).items():
        if key not in PIN_NAMES:
            errors.append(f"{p}.{key}: unknown pin name (known: {', '.join(sorted(PIN_NAMES))})")
            continue
        pins[key] = None if isinstance(value, str) and value.lower() in OFF else value
    services = button_services(cfg, node)
    if len(services) > MAX_BUTTONS:
        errors.append(f"nodes[{node_index(cfg, node)}].services: at most {MAX_BUTTONS} service buttons")
    for i, sid in enumerate(services[:MAX_BUTTONS], start=1):
        if pins.get(f"button{i}") is None:
            errors.append(f"{p}.button{i}: service {sid} needs a button pin")
    if errors:
        raise ConfigError("dispenser", errors)
    return pins


def data_dir(options: DispenserOptions) -> Path:
    return config_data_dir(options.data_dir)


# ------------------------------------------------------------------------------------------ rate limit
class RateLimiter:
    """Per-button minimum interval plus a token bucket over all buttons (``burst``, refilled per minute)."""

    def __init__(self, *, interval_s: float, burst: int, per_minute: float, clock: Callable[[], float]):
        self.interval_s = interval_s
        self.burst = burst
        self.rate = per_minute / 60.0
        self.clock = clock
        self.tokens = float(burst)
        self._stamp = clock()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            last = self._last.get(key)
            self._last[key] = now  # a held-down hammering keeps extending the pause
            if last is not None and now - last < self.interval_s:
                return False
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


# ------------------------------------------------------------------------------------ offline store
@dataclass(frozen=True)
class OfflineTicket:
    day: str
    service: str
    prefix: str
    number: int
    issued_at: float
    priority: bool
    state: str

    @property
    def label(self) -> str:
        return f"{self.prefix}{self.number:03d}"


class OfflineStore:
    """Leases, offline-issued numbers and deferred commands in SQLite (WAL, synchronous=FULL).

    A number is recorded as ``issued`` before it is printed; ``void`` when printing failed (never reused,
    never reported), ``printed``, then ``reported`` once the controller has it.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS lease (day TEXT, service TEXT, prefix TEXT, first INTEGER, count INTEGER,
                                      PRIMARY KEY (day, prefix, first));
    CREATE TABLE IF NOT EXISTS offline_ticket (day TEXT, service TEXT, prefix TEXT, number INTEGER,
                                               issued_at REAL, priority INTEGER, state TEXT,
                                               PRIMARY KEY (day, prefix, number));
    CREATE TABLE IF NOT EXISTS deferred (key TEXT PRIMARY KEY, kind TEXT, payload TEXT, created REAL);
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(self.SCHEMA)
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextlib.contextmanager
    def _tx(self) -> Any:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def add_lease(self, day: str, service: str, prefix: str, first: int, count: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO lease VALUES (?,?,?,?,?)", (day, service, prefix, first, count))

    def _free(self, db: sqlite3.Connection, day: str, service: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for prefix, first, count in db.execute(
            "SELECT prefix, first, count FROM lease WHERE day=? AND service=? ORDER BY first", (day, service)
        ):
            used = {
                r[0]
                for r in db.execute(
                    "SELECT number FROM offline_ticket WHERE day=? AND prefix=? AND number BETWEEN ? AND ?",
                    (day, prefix, first, first + count - 1),
                )
            }
            out += [(prefix, n) for n in range(first, first + count) if n not in used]
        return out

    def remaining(self, day: str, service: str) -> int:
        with self.lock:
            return len(self._free(self.db, day, service))

    def take(self, day: str, service: str, issued_at: float, priority: bool) -> OfflineTicket | None:
        """Reserve the next free leased number (committed before the ticket is printed)."""
        with self._tx() as db:
            free = self._free(db, day, service)
            if not free:
                return None
            prefix, number = free[0]
            db.execute(
                "INSERT INTO offline_ticket VALUES (?,?,?,?,?,?,?)",
                (day, service, prefix, number, issued_at, int(priority), "issued"),
            )
        return OfflineTicket(day, service, prefix, number, issued_at, priority, "issued")

    def mark(self, t: OfflineTicket, state: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE offline_ticket SET state=? WHERE day=? AND prefix=? AND number=?",
                (state, t.day, t.prefix, t.number),
            )

    def unreported(self, day: str) -> list[OfflineTicket]:
        """Tickets the controller does not know yet (``issued`` too: after a crash it may be in a hand)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE day=? AND state IN ('issued', 'printed') "
                "ORDER BY issued_at",
                (day,),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def tickets(self, day: str | None = None) -> list[OfflineTicket]:
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE ? IS NULL OR day=? ORDER BY issued_at",
                (day, day),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def stale_unreported(self, today: str) -> list[OfflineTicket]:
        with self.lock:
            rows = self.db.execute(
                "SELECT day, service, prefix, number, issued_at, priority, state FROM "
                "offline_ticket WHERE day<>? AND state IN ('issued', 'printed')",
                (today,),
            ).fetchall()
        return [OfflineTicket(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def defer(self, key: str, kind: str, payload: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO deferred VALUES (?,?,?,?)",
                (key, kind, json.dumps(payload), time.time()),
            )

    def deferred(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.lock:
            rows = self.db.execute("SELECT key, kind, payload FROM deferred ORDER BY created").fetchall()
        return [(k, kind, json.loads(p)) for k, kind, p in rows]

    def done(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM deferred WHERE key=?", (key,))


# ----------------------------------------------------------------------------------- code scanner
# Linux input event codes of the keys a booking code uses (US positions).
_KEYS = {
    2: "1",
    3: "2",
    4: "3",
    5: "4",
    6: "5",
    7: "6",
    8: "7",
    9: "8",
    10: "9",
    11: "0",
    12: "-",
    16: "Q",
    17: "W",
    18: "E",
    19: "R",
    20: "T",
    21: "Y",
    22: "U",
    23: "I",
    24: "O",
    25: "P",
    30: "A",
    31: "S",
    32: "D",
    33: "F",
    34: "G",
    35: "H",
    36: "J",
    37: "K",
    38: "L",
    44: "Z",
    45: "X",
    46: "C",
    47: "V",
    48: "B",
    49: "N",
    50: "M",
    52: ".",
    53: "/",
    57: " ",
    71: "7",
    72: "8",
    73: "9",
    75: "4",
    76: "5",
    77: "6",
    79: "1",
    80: "2",
    81: "3",
    82: "0",
}
_ENTER = (28, 96)
EV_KEY = 1
EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux
EVIOCGRAB = 0x40044590


def key_char(code: int, layout: str) -> str | None:
    ch = _KEYS.get(code)
    if layout == "de" and ch in ("Y", "Z"):  # QWERTZ: the keys are swapped
        return "Z" if ch == "Y" else "Y"
    if layout == "de" and ch == "/":
        return "-"
    return ch


def parse_code(text: str) -> str | None:
    """A booking code from what was typed or scanned (a bare code or a URL ending in it)."""
    text = text.strip().rstrip("/")
    if "/" in text:
        text = text.rsplit("/", 1)[1]
    text = text.split("?", 1)[0].replace("-", "").replace(" ", "").upper()
    return text if CODE_RE.match(text) else None


class CodeReader:
    """Reads booking codes from a keyboard-like scanner (evdev device, grabbed) or stdin lines."""

    def __init__(self, source: str, layout: str, on_code: Callable[[str], None]):
        self.source = source
        self.layout = layout
        self.on_code = on_code
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="code-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            if self.source == "-":
                for line in sys.stdin:
                    if self._stop.is_set():
                        return
                    if line.strip():
                        self.on_code(line.strip())
                return
            with open(self.source, "rb", buffering=0) as f:
                with contextlib.suppress(OSError):
                    import fcntl

                    fcntl.ioctl(f, EVIOCGRAB, 1)  # keep the scanned keys away from the console
                self.read_events(f)
        except OSError as exc:
            log.error("booking-code scanner %s: %s", self.source, exc)

    def read_events(self, f: Any) -> None:
        """Turn key-down events into text lines; each Enter delivers one code."""
        buf: list[str] = []
        while not self._stop.is_set():
            raw = f.read(EVENT.size)
            if not raw or len(raw) < EVENT.size:
                return
            _, _, etype, code, value = EVENT.unpack(raw)
            if etype != EV_KEY or value != 1:
                continue
            if code in _ENTER:
                if buf:
                    self.on_code("".join(buf))
                buf = []
            else:
                ch = key_char(code, self.layout)
                if ch:
                    buf.append(ch)
                    del buf[:-64]


# ------------------------------------------------------------------------------------------ node
@dataclass
class Outcome:
    """What one press or scan produced (returned for tests and logged)."""

    kind: Literal["printed", "offline", "refused", "notice"]
    reason: str = ""
    number: str = ""
    path: Path | None = None


class Dispenser:
    def __init__(
        self,
        runtime: Any,
        cfg: Config,
        node: Node,
        *,
        pins: Any = None,
        simulate: bool = False,
        printer: TicketPrinter | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.runtime = runtime
        self.cfg = cfg
        self.node = node
        self.simulate = simulate
        self.clock = clock
        self.options = load_options(cfg, node)
        self.pin_map = resolve_pins(cfg, node)
        self.services = button_services(cfg, node)
        settings = load_settings(cfg.printer, "printer")
        if simulate and settings.backend != "preview":
            log.info("simulation: printing to the preview backend instead of %s", settings.backend)
        if simulate:
            settings = settings.model_copy(update={"backend": "preview"})
        elif settings.backend == "preview":
            log.warning(
                "printer.backend is preview: tickets are only rendered as PNG in %s", settings.preview.folder
            )
        self.printer = printer or TicketPrinter(settings)
        if simulate and pins is None:
            pins = pin_factory("mock")
        self.pins = pins
        self.limiter = RateLimiter(
            interval_s=self.options.press_interval_s,
            burst=self.options.burst,
            per_minute=self.options.per_minute,
            clock=monotonic,
        )
        self.monotonic = monotonic
        self.store = OfflineStore(data_dir(self.options) / f"dispenser-{node.id}.db")
        self.buttons: dict[str, PressButton] = {}
        self.leds: dict[str, Lamp] = {}
        self.status_led: Lamp | None = None
        self.buzzer: Lamp | None = None
        self.priority_led: Lamp | None = None
        self.lang_led: Lamp | None = None
        self.intake: dict[str, tuple[bool, str]] = {}
        self.day = ""
        self.controller_status = "unknown"
        self.priority_until = 0.0
        self.lang = self.options.languages[0]
        self.lang_until = 0.0
        self.tally: Tally[str] = Tally()
        self.last_refusal: dict[str, Any] | None = None
        self.last_png = ""
        self.last_ticket = ""
        self._jobs: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue(maxsize=3)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self.sim: SimInput | None = None
        self.reader: CodeReader | None = None
        self.on_outcome: Callable[[Outcome], None] | None = None
        self._health_lock = threading.Lock()
        self._busy: dict[str, float] = {}  # lamp name -> monotonic time its feedback flash ends
        self.stuck: set[str] = set()
        self.advice = Advice(cfg.office.id, clock=clock)  # the city's advice: a shorter wait elsewhere

    # ----------------------------------------------------------------------------- lifecycle
    def _device_pins(self) -> None:
        f, pm = self.pins, self.pin_map
        debounce = self.options.debounce_ms / 1000
        for i, sid in enumerate(self.services, start=1):
            b = PressButton(
                pm[f"button{i}"],
                factory=f,
                debounce_s=debounce,
                long_press_s=self.options.stuck_s,
                clock=self.monotonic,
                name=sid,
            )
            b.on_press = lambda sid=sid: self.press(sid)
            b.on_long_press = lambda sid=sid: self._stuck(sid)
            self.buttons[sid] = b
            if pm.get(f"led{i}") is not None:
                self.leds[sid] = Lamp(pm[f"led{i}"], factory=f, name=f"led-{sid}")
        if pm.get("priority") is not None:
            b = PressButton(
                pm["priority"], factory=f, debounce_s=debounce, clock=self.monotonic, name="priority"
            )
            b.on_press = self.press_priority
            self.buttons["priority"] = b
        if pm.get("lang") is not None:
            b = PressButton(pm["lang"], factory=f, debounce_s=debounce, clock=self.monotonic, name="lang")
            b.on_press = self.press_lang
            self.buttons["lang"] = b
        for key, attr in (
            ("status_led", "status_led"),
            ("buzzer", "buzzer"),
            ("priority_led", "priority_led"),
            ("lang_led", "lang_led"),
        ):
            if pm.get(key) is not None:
                setattr(self, attr, Lamp(pm[key], factory=f, name=key))

    def start(self) -> None:
        self._device_pins()
        if self.simulate:
            self.sim = SimInput(self.runtime, self.buttons)
            self.runtime.subscribe(self.runtime.topics.sim(self.runtime.node_id), self._on_sim_code)
        self.runtime.subscribe(self.runtime.topics.status(CONTROLLER_NODE_ID), self._on_controller_status)
        self.runtime.on_state(self._on_state)
        self.runtime.subscribe(self.runtime.topics.recommendations(), self._on_advice)
        if self.options.scanner:
            self.reader = CodeReader(self.options.scanner, self.options.scanner_layout, self.checkin)
            self.reader.start()
        for target, name in ((self._worker, "dispenser-worker"), (self._maintain, "dispenser-sync")):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        self.printer.start_monitor(lambda status: self._changed())
        self._changed()
        log.info(
            "dispenser %s: buttons %s, printer %s",
            self.node.id,
            ", ".join(self.services),
            self.printer.backend.describe(),
        )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(("stop", ()))
        for th in self._threads:
            th.join(timeout=5)
        for t in self._timers:
            t.cancel()
        if self.reader:
            self.reader.stop()
        self.printer.close()
        close_all(
            [
                *self.buttons.values(),
                *self.leds.values(),
                *[x for x in (self.status_led, self.buzzer, self.priority_led, self.lang_led) if x],
            ]
        )
        self.store.close()

    # ----------------------------------------------------------------------------- inputs
    def press(self, service: str) -> bool:
        """A service button was pressed (button callback thread): quick checks, then queue the ticket."""
        if service not in self.services:
            raise ValueError(f"no button for service {service!r}")
        if not self.limiter.allow(service):
            self._refuse("rate_limited", service, signal="flicker")
            return False
        is_open, _reason = self.intake.get(service, (True, ""))
        if not is_open:
            self._refuse("intake_stopped", service, signal="intake")
            return False
        now = self.monotonic()
        priority = now < self.priority_until
        lang = self.chosen_lang(now)
        self.priority_until = 0.0
        self._set_lamp(self.priority_led, "off")
        try:
            self._jobs.put_nowait(("issue", (service, priority, lang)))
        except queue.Full:
            self._refuse("busy", service, signal="flicker")
            return False
        return True

    def press_priority(self) -> None:
        self.priority_until = self.monotonic() + self.options.priority_window_s
        self._set_lamp(self.priority_led, "blink")
        self._later(self.options.priority_window_s + 0.05, self._refresh_leds)

    def chosen_lang(self, now: float | None = None) -> str:
        """The language chosen with the language button within ``lang_window_s``, else the default."""
        now = self.monotonic() if now is None else now
        return self.lang if now < self.lang_until else self.options.languages[0]

    def press_lang(self) -> None:
        """Each press steps to the next configured language (after the last: back to the first)."""
        now = self.monotonic()
        langs = self.options.languages
        current = self.chosen_lang(now)
        self.lang = langs[(langs.index(current) + 1) % len(langs)] if current in langs else langs[0]
        self.lang_until = now + self.options.lang_window_s
        self._set_lamp(self.lang_led, "on" if self.lang != langs[0] else "off")
        self._later(self.options.lang_window_s + 0.05, self._refresh_leds)

    def checkin(self, text: str) -> None:
        """A booking code was typed or scanned (reader thread)."""
        try:
            self._jobs.put_nowait(("checkin", (text,)))
        except queue.Full:
            self._refuse("busy", "", signal="beep")

    def _stuck(self, service: str) -> None:
        log.warning(
            "button %s held for %.0f s: stuck? (no ticket is printed while it is held)",
            service,
            self.options.stuck_s,
        )
        self.tally["stuck"] += 1
        self.stuck.add(service)
        self._changed()

    def _on_sim_code(self, topic: str, payload: bytes) -> None:
        try:
            data = contract.decode(payload)
        except contract.ContractError:
            return
        if isinstance(data.get("code"), str):
            self.checkin(data["code"])

    # ----------------------------------------------------------------------------- controller view
    def _on_controller_status(self, topic: str, payload: bytes) -> None:
        try:
            status = contract.decode(payload).get("status")
        except contract.ContractError:
            return
        if status in ("online", "offline") and status != self.controller_status:
            log.info("controller is %s", status)
            self.controller_status = status
            self._wake.set()
            self._changed()

    def _on_state(self, state: dict[str, Any]) -> None:
        intake = {}
        for s in state.get("services", []):
            if s.get("id") in self.services:
                intake[s["id"]] = (bool(s.get("intake_open", True)), str(s.get("intake_reason") or ""))
        changed = intake != self.intake or state.get("day", "") != self.day
        self.intake = intake
        self.day = str(state.get("day") or "")
        self._wake.set()
        if changed:
            self._changed()

    def _on_advice(self, topic: str, payload: bytes) -> None:
        self.advice.on_message(topic, payload)
        self._changed()

    def advice_text(self, service: str, lang: str = "de") -> str | None:
        """What a screen at the dispenser shows before a ticket is taken: 'Kürzer warten: ...' or None."""
        return self.advice.text(service, lang)

    @property
    def controller_reachable(self) -> bool:
        return self.runtime.online and self.controller_status != "offline"

    def today(self) -> str:
        return self.cfg.office.today(self.clock())

    # ----------------------------------------------------------------------------- worker
    def _worker(self) -> None:
        while not self._stop.is_set():
            kind, args = self._jobs.get()
            if kind == "stop":
                return
            try:
                out = self.issue(*args) if kind == "issue" else self._checkin(*args)
                if self.on_outcome:
                    self.on_outcome(out)
            except Exception:
                log.exception("dispenser %s failed", kind)
                self._refuse("error", "", signal="beep")

    def issue(self, service: str, priority: bool = False, lang: str = "de") -> Outcome:
        """Issue and print one walk-in ticket (online, or from the offline block). Runs on the worker."""
        if not self.printer.can_print and self.printer.query_status() and not self.printer.can_print:
            return self._refuse("printer", service, signal="beep")
        if self.controller_reachable:
            rid = contract.new_request_id()
            args = {"service": service, "priority": priority, "lang": lang}
            try:
                result = self.runtime.request(
                    "ticket.issue",
                    args,
                    timeout=self.options.request_timeout_s,
                    retries=self.options.request_retries,
                    request_id=rid,
                )
            except CommandFailed as exc:
                if exc.code == ErrorCode.INTAKE_STOPPED:
                    self.intake[service] = (False, exc.message)
                    self._refresh_leds()
                    return self._refuse("intake_stopped", service, signal="intake")
                log.error("ticket.issue for %s refused: %s", service, exc)
                return self._refuse("error", service, signal="beep")
            except RequestTimeout:
                log.warning("controller did not answer ticket.issue %s: issuing offline", rid)
                # It may still arrive there: repeat and cancel it later, so no ticket waits without a holder.
                self.store.defer(rid, "orphan", args)
                self._wake.set()
            else:
                return self._print_online(result["ticket"], service, lang)
        return self._issue_offline(service, priority, lang)

    def _data(self, ticket: dict[str, Any], service: str, lang: str, *, offline: bool = False) -> TicketData:
        svc = self.cfg.service(service)
        tid = ticket.get("id")
        return TicketData(
            office_name=self.cfg.office.name,
            number=str(ticket["number"]),
            service=svc.name.model_dump(),
            issued_at=float(ticket.get("issued_at") or self.clock()),
            timezone=self.cfg.office.timezone,
            ahead=ticket.get("ahead"),
            eta_min=ticket.get("eta_min"),
            offline=offline,
            url=f"{self.cfg.office.public_url.rstrip('/')}/t/{tid}" if tid else None,
            appointment=ticket.get("appointment"),
            priority=bool(ticket.get("priority")),
            lang=lang,
            alternative=None if offline else self.advice.alternative(service),
        )

    def _print(self, data: TicketData | Notice) -> Path | None:
        """Print with retries; raise PrinterError after the last attempt."""
        for attempt in range(self.options.print_retries + 1):
            try:
                result = self.printer.print_ticket(data)
            except PrinterError as exc:
                log.error(
                    "printing failed (attempt %d of %d): %s", attempt + 1, self.options.print_retries + 1, exc
                )
                if attempt == self.options.print_retries:
                    self._changed()
                    raise
                time.sleep(0.3)
            else:
                if result.path is not None and result.path.suffix == ".png":
                    self.last_png = result.path.name
                return result.path
        return None  # not reached

    def _print_online(
        self, ticket: dict[str, Any], service: str, lang: str, appointment: bool = False
    ) -> Outcome:
        try:
            path = self._print(self._data(ticket, service, lang))
        except PrinterError:
            if not appointment:
                self._cancel(ticket)
            return self._refuse("print_failed", service, signal="beep", number=str(ticket["number"]))
        self._done(service, str(ticket["number"]), bool(ticket.get("priority")))
        return Outcome("printed", number=str(ticket["number"]), path=path)

    def _cancel(self, ticket: dict[str, Any]) -> None:
        args = {"ticket": ticket.get("id") or ticket["number"], "reason": "print_failed"}
        try:
            self.runtime.request(
                "ticket.cancel",
                args,
                timeout=self.options.request_timeout_s,
                retries=self.options.request_retries,
            )
            log.warning("ticket %s cancelled: it could not be printed", ticket["number"])
        except (RequestTimeout, CommandFailed) as exc:
            log.error("could not cancel unprinted ticket %s now (%s); will retry", ticket["number"], exc)
            self.store.defer(f"cancel-{args['ticket']}", "cancel", args)

    def _issue_offline(self, service: str, priority: bool, lang: str) -> Outcome:
        day = self.today()
        t = self.store.take(day, service, self.clock(), priority)
        if t is None:
            log.error("controller unreachable and no leased numbers left for %s today", service)
            return self._refuse("no_numbers", service, signal="beep")
        ticket = {"number": t.label, "issued_at": t.issued_at, "priority": priority}
        try:
            path = self._print(self._data(ticket, service, lang, offline=True))
        except PrinterError:
            self.store.mark(t, "void")  # never handed out: not reported, never reused
            return self._refuse("print_failed", service, signal="beep", number=t.label)
        self.store.mark(t, "printed")
        self.tally["offline"] += 1
        self._done(service, t.label, priority)
        self._wake.set()
        return Outcome("offline", number=t.label, path=path)

    def _done(self, service: str, number: str, priority: bool) -> None:
        self.tally["issued"] += 1
        if priority:
            self.tally["priority"] += 1
        self.last_ticket = number
        self.lang_until = 0.0
        self._flash(self.leds.get(service), 1)
        self._beep(1)
        self._changed()

    def _checkin(self, text: str) -> Outcome:
        code = parse_code(text)
        if not self.limiter.allow("checkin"):
            return self._refuse("rate_limited", "", signal="beep")
        if code is None:
            return self._notice("dispenser.checkin_unknown", "unknown_appointment")
        if not self.controller_reachable:
            return self._notice("dispenser.checkin_offline", "controller_offline")
        try:
            result = self.runtime.request(
                "appointment.checkin",
                {"code": code},
                timeout=self.options.request_timeout_s,
                retries=self.options.request_retries,
            )
        except RequestTimeout:
            return self._notice("dispenser.checkin_offline", "controller_offline")
        except CommandFailed as exc:
            key = {ErrorCode.APPOINTMENT_EXPIRED.value: "dispenser.checkin_expired"}.get(
                exc.code, "dispenser.checkin_unknown"
            )
            return self._notice(key, exc.code)
        ticket = result["ticket"]
        return self._print_online(ticket, str(ticket["service"]), self.chosen_lang(), appointment=True)

    def _notice(self, key: str, reason: str) -> Outcome:
        self._refuse(reason, "", signal="beep", text_key=key)
        try:
            path = self._print(
                Notice(
                    self.cfg.office.name, key, self.clock(), self.cfg.office.timezone, lang=self.chosen_lang()
                )
            )
        except PrinterError:
            return Outcome("refused", reason=reason)
        return Outcome("notice", reason=reason, path=path)

    # ----------------------------------------------------------------------------- sync with controller
    def _maintain(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(5.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self.controller_reachable and self.runtime.state is not None:
                try:
                    self.sync()
                except Exception:
                    log.exception("sync with the controller failed")
            self._refresh_leds()

    def sync(self) -> None:
        """Report offline tickets, settle deferred commands, top up the leases. Needs the controller."""
        opts = self.options
        kw: dict[str, Any] = {"timeout": opts.request_timeout_s * 2, "retries": opts.request_retries}
        today = self.today()
        for t in self.store.stale_unreported(today):
            log.error("offline ticket %s of %s was never reported (the day is over); dropped", t.label, t.day)
            self.store.mark(t, "expired")
        for t in self.store.unreported(today):
            try:
                self.runtime.request(
                    "ticket.report_offline",
                    {
                        "service": t.service,
                        "number": t.number,
                        "issued_at": t.issued_at,
                        "priority": t.priority,
                    },
                    request_id=f"off-{self.node.id}-{t.day}-{t.label}",
                    **kw,
                )
            except CommandFailed as exc:
                log.error("controller refused offline ticket %s: %s", t.label, exc)
                self.store.mark(t, "rejected")
                continue
            except RequestTimeout:
                return
            self.store.mark(t, "reported")
            log.info("offline ticket %s reported", t.label)
        for key, kind, args in self.store.deferred():
            try:
                if kind == "orphan":
                    result = self.runtime.request("ticket.issue", args, request_id=key, **kw)
                    ticket = result["ticket"]
                    self.runtime.request(
                        "ticket.cancel",
                        {"ticket": ticket["id"], "reason": "offline_fallback"},
                        request_id=f"{key}-c",
                        **kw,
                    )
                    log.warning(
                        "ticket %s from a timed-out request cancelled (an offline number was given)",
                        ticket["number"],
                    )
                elif kind == "cancel":
                    self.runtime.request("ticket.cancel", args, request_id=f"{key[:56]}-c", **kw)
            except CommandFailed as exc:
                log.info("deferred %s %s settled by the controller's answer: %s", kind, key, exc)
            except RequestTimeout:
                return
            self.store.done(key)
        if self.day == today:
            for sid in self.services:
                if self.store.remaining(today, sid) < max(1, opts.lease_low):
                    try:
                        lease = self.runtime.request(
                            "ticket.lease", {"service": sid, "count": opts.lease_size}, **kw
                        )["lease"]
                    except CommandFailed as exc:
                        log.warning("lease for %s refused: %s", sid, exc)
                        continue
                    except RequestTimeout:
                        return
                    self.store.add_lease(lease["day"], sid, lease["prefix"], lease["first"], lease["count"])
                    log.info(
                        "leased %s%03d..%s%03d for offline issuing",
                        lease["prefix"],
                        lease["first"],
                        lease["prefix"],
                        lease["first"] + lease["count"] - 1,
                    )
        self._changed()

    # ----------------------------------------------------------------------------- signals and health
    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        t = threading.Timer(seconds, fn)
        t.daemon = True
        t.start()
        self._timers = [x for x in self._timers if x.is_alive()] + [t]

    @staticmethod
    def _set_lamp(lamp: Lamp | None, pattern: str, n: int | None = None) -> None:
        if lamp is not None:
            try:
                lamp.set(pattern, n)
            except Exception:
                log.debug("lamp %s", lamp.name, exc_info=True)

    def _flash(self, lamp: Lamp | None, n: int, pattern: str = "flash") -> None:
        if lamp is None:
            return
        duration = 1.5 if pattern == "fast" else 0.2 * n + 0.05
        self._busy[lamp.name] = time.monotonic() + duration
        self._set_lamp(lamp, pattern, None if pattern == "fast" else n)
        self._later(duration + 0.02, self._refresh_leds)

    def _beep(self, n: int) -> None:
        if self.buzzer is not None:
            self._set_lamp(self.buzzer, "flash", n)

    def _refuse(
        self, reason: str, service: str, *, signal: str, number: str = "", text_key: str | None = None
    ) -> Outcome:
        self.tally[f"refused_{reason}"] += 1
        key = text_key or {
            "rate_limited": "dispenser.rate_limited",
            "intake_stopped": "dispenser.intake_stopped",
            "printer": "dispenser.printer_fault",
            "print_failed": "dispenser.printer_fault",
            "no_numbers": "dispenser.no_numbers",
        }.get(reason, "dispenser.printer_fault")
        name = self.cfg.service(service).name.get("de") if service in self.cfg.service_ids else ""
        self.last_refusal = {
            "reason": reason,
            "service": service or None,
            "ts": round(self.clock(), 3),
            "text": both(key, service=name),
            "number": number or None,
        }
        if service == "" or reason != "rate_limited":
            log.info("dispenser: no ticket (%s) %s", reason, service)
        lamp = self.leds.get(service)
        if signal == "flicker":
            self._flash(lamp, 0, pattern="fast")
        elif signal == "intake":
            self._flash(lamp, 3)
            self._beep(2)
        else:
            self._flash(self.status_led, 3)
            self._beep(3)
        self._changed()
        return Outcome("refused", reason=reason, number=number)

    def _refresh_leds(self) -> None:
        if self._stop.is_set():
            return
        now = time.monotonic()

        def steady(lamp: Lamp | None, pattern: str) -> None:
            if lamp is not None and self._busy.get(lamp.name, 0.0) <= now:  # let a feedback flash finish
                self._set_lamp(lamp, pattern)

        for sid, lamp in self.leds.items():
            steady(lamp, "on" if self.intake.get(sid, (True, ""))[0] else "off")
        if self.printer.status in ("paper_out", "cover_open", "offline", "error"):
            steady(self.status_led, "fast")
        elif not self.controller_reachable:
            steady(self.status_led, "blink")
        else:
            steady(self.status_led, "off")
        now = self.monotonic()
        if now >= self.priority_until:
            self._set_lamp(self.priority_led, "off")
        if now >= self.lang_until:
            self._set_lamp(self.lang_led, "off")

    def health(self) -> dict[str, Any]:
        today = self.today()
        self.stuck = {sid for sid in self.stuck if self.buttons[sid].is_pressed}
        stuck = sorted(self.stuck)
        unreported = len(self.store.unreported(today))
        printer = self.printer.status
        status = "ok"
        if printer in ("paper_out", "cover_open", "offline", "error") or stuck:
            status = "error"
        elif printer == "paper_low" or not self.controller_reachable or unreported:
            status = "degraded"
        return {
            "status": status,
            "printer": printer,
            "printer_error": self.printer.last_error or None,
            "printer_backend": self.printer.backend.name,
            "last_ticket_png": self.last_png or None,
            "last_ticket": self.last_ticket or None,
            "controller": "online" if self.controller_reachable else "offline",
            "issued": self.tally["issued"],
            "offline_issued": self.tally["offline"],
            "offline_unreported": unreported,
            "priority_issued": self.tally["priority"],
            "offline_numbers_left": {sid: self.store.remaining(today, sid) for sid in self.services},
            "intake_stopped": {sid: why for sid, (ok, why) in self.intake.items() if not ok},
            "refused": {
                k.removeprefix("refused_"): v for k, v in self.tally.items() if k.startswith("refused_")
            },
            "last_refusal": self.last_refusal,
            "buttons_stuck": stuck,
            "advice": {sid: text for sid in self.services if (text := self.advice.text(sid))},
        }

    def _changed(self) -> None:
        """Refresh the LEDs and publish the health record."""
        if self._stop.is_set():
            return
        self._refresh_leds()
        with self._health_lock:
            try:
                self.runtime.set_health(**self.health())
            except Exception:
                log.exception("publishing health failed")


def create(runtime: Any, cfg: Config, node: Node, *, pins: Any, simulate: bool) -> Dispenser:
    """Node factory (waitroom/cli.py NODE_ROLES['dispenser'])."""
    return Dispenser(runtime, cfg, node, pins=pins, simulate=simulate)
