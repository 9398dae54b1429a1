"""The dispenser node: buttons, printing, check-in, offline issuing and the sync with the controller."""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge.dispenser.options import button_services, data_dir, load_options, printer_settings, resolve_pins
from edge.dispenser.ratelimit import RateLimiter
from edge.dispenser.scanner import CodeReader, parse_code
from edge.dispenser.store import OfflineStore
from edge.hardware import Lamp, PressButton, SimInput, close_all, pin_factory
from ticket_printer.layout import Notice, TicketData
from ticket_printer.printer import TicketPrinter
from waitroom import contract
from waitroom.city.advice import Advice
from waitroom.contract import CONTROLLER_NODE_ID, ErrorCode, FaultCode
from waitroom.errors import CommandFailed, PrinterError, RequestTimeout
from waitroom.i18n import both

if TYPE_CHECKING:
    from waitroom.config import Config, Node

log = logging.getLogger(__name__)

# Refusals after which a report or a deferred command is sent again later (nothing was decided, or the
# controller failed inside): dropping the report would lose a ticket that is in a citizen's hand.
RETRY_CODES = frozenset({*(c.value for c in contract.RETRY_LATER), ErrorCode.INTERNAL.value})
# An appointment's ticket in one of these states is printed again at a second check-in (a lost ticket); one
# called and finished since (served, not appeared, cancelled) is not: nobody would call that number again.
QUEUED = ("waiting", "called", "parked")


# What a refusal says (the health's ``last_refusal``), by reason. A refusal of the controller is its stable
# code (waitroom.contract.ErrorCode); one not listed here has no text: the admin page names the code.
REFUSAL_TEXTS = {
    "rate_limited": "dispenser.rate_limited",
    "busy": "dispenser.rate_limited",  # presses faster than tickets print: wait, then press again
    "intake_stopped": "dispenser.intake_stopped",
    "printer": "dispenser.printer_fault",
    "print_failed": "dispenser.printer_fault",
    "no_numbers": "dispenser.no_numbers",
    "store": "dispenser.no_numbers",
    "error": "dispenser.printer_fault",  # the dispenser itself failed: the citizen is sent to the reception
    ErrorCode.OFFICE_CLOSED.value: "office.closed",
}
# A refused lease of offline numbers (the office closed tonight, ...) is asked for again after this long, and
# logged once per new reason: it was asked, and logged, for every service every 5 s all night.
LEASE_RETRY_S = 60.0


# ------------------------------------------------------------------------------------------ node
@dataclass
class Outcome:
    """What one press or scan produced (returned for tests and logged)."""

    kind: Literal["printed", "offline", "refused", "notice"]
    reason: str = ""
    number: str = ""
    path: Path | None = None


def store_fault(exc: BaseException, *, opening: bool) -> FaultCode:
    """The stable code of a failure of the offline number store: it cannot be opened, the disk is full
    (SQLite's "database or disk is full", ENOSPC), or anything else."""
    if opening:
        return FaultCode.STORE_UNUSABLE
    if getattr(exc, "errno", None) == errno.ENOSPC or "full" in str(exc).lower():
        return FaultCode.STORE_FULL
    return FaultCode.STORE_FAILED


def broke_off(exc: PrinterError) -> bool:
    """The printer was reached and the ticket broke off while it was sent: its start may be on paper."""
    return exc.fault == FaultCode.PRINTER_SEND_FAILED


class Dispenser:
    STUCK_POLL_S = 0.5  # how often a button held as stuck is looked at until it is released

    def __init__(
        self,
        runtime: Any,
        cfg: Config,
        node: Node,
        *,
        pins: Any = None,
        simulate: bool = False,
        real_printer: bool = False,
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
        settings = printer_settings(cfg)
        if simulate and not real_printer and settings.backend != "preview":
            log.info("simulation: printing to the preview backend instead of %s", settings.backend)
        if simulate and not real_printer:
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
        self.store_error = ""  # why the offline number store cannot be used ("" = it works)
        self.store_fault = ""  # ... as a stable code (waitroom.contract.FaultCode)
        self.store = self._open_store(data_dir(self.options) / f"dispenser-{node.id}.db")
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
        self._lease_refused: dict[str, tuple[str, float]] = {}  # service -> (code, monotonic time)

    # ----------------------------------------------------------------------------- offline store
    def _open_store(self, path: Path) -> OfflineStore:
        """The offline number store; when its file cannot be used (a read-only or full data directory) the
        dispenser still starts and prints online tickets, from a store in memory that gives no offline numbers
        (a number must be on disk before it is printed, or a restart could give it twice)."""
        try:
            return OfflineStore(path)
        except (OSError, sqlite3.Error) as exc:
            self._store_failed(exc, path)
            return OfflineStore(OfflineStore.MEMORY)

    def _store_failed(self, exc: BaseException, path: Path | None = None) -> None:
        """One log line per new problem of the store (not one per press or sync), and the health says it."""
        where = path or self.store.path
        error = f"{where}: {exc}"
        if error != self.store_error:
            log.error(
                "offline number store %s unusable (%s): tickets only while the controller answers, no "
                "offline numbers; make the data directory writable and free space",
                where,
                exc,
            )
        self.store_error = error
        self.store_fault = store_fault(exc, opening=path is not None)

    def _store_ok(self) -> None:
        """A write to the durable store worked again (space was freed)."""
        if self.store_error and self.store.durable:
            log.info("offline number store %s works again", self.store.path)
            self.store_error = ""
            self.store_fault = ""

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
        self._later(self.STUCK_POLL_S, lambda: self._still_stuck(service))

    def _still_stuck(self, service: str) -> None:
        """Publish the release of a stuck button at once (else only the next sync, which needs the controller,
        would take "stuck" off the health record and the admin page)."""
        if self._stop.is_set():
            return
        if self.buttons[service].is_pressed:
            self._later(self.STUCK_POLL_S, lambda: self._still_stuck(service))
        else:
            log.info("button %s released", service)
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
        if not self._printer_ready():
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
                if exc.code in contract.RETRY_LATER:  # nothing decided there: a number from the lease
                    log.warning("ticket.issue for %s not taken now (%s): issuing offline", service, exc.code)
                    return self._issue_offline(service, priority, lang)
                log.error("ticket.issue for %s refused: %s", service, exc)
                # the controller's stable code (office_closed, unknown_service, ...): the health says what
                # it was, not "printer fault"
                return self._refuse(exc.code or "error", service, signal="beep")
            except RequestTimeout:
                log.warning("controller did not answer ticket.issue %s: issuing offline", rid)
                # It may have arrived there: settle it later (request.void), so no ticket waits without a
                # holder, and none is issued if it never arrived.
                try:
                    self.store.defer(rid, "orphan", args)
                except sqlite3.Error as exc:
                    self._store_failed(exc)
                    log.error("ticket.issue %s cannot be repeated and cancelled later: not stored", rid)
                self._wake.set()
            else:
                return self._print_online(result["ticket"], service, lang)
        return self._issue_offline(service, priority, lang)

    def _printer_ready(self) -> bool:
        """False while the printer is known to be unable to print (asked again first, when it can be)."""
        return self.printer.can_print or (bool(self.printer.query_status()) and self.printer.can_print)

    def _data(self, ticket: dict[str, Any], service: str, lang: str, *, offline: bool = False) -> TicketData:
        svc = self.cfg.service(service)
        tid = ticket.get("id")
        url = f"{self.cfg.office.public_url.rstrip('/')}/t/{tid}" if tid else None
        if url and lang != self.options.languages[0]:
            url += f"?lang={lang}"  # the status page in the language chosen here, whatever the phone's is
        return TicketData(
            office_name=self.cfg.office.name,
            number=str(ticket["number"]),
            service=svc.name.as_dict(),
            issued_at=float(ticket.get("issued_at") or self.clock()),
            timezone=self.cfg.office.timezone,
            ahead=ticket.get("ahead"),
            eta_min=ticket.get("eta_min"),
            offline=offline,
            url=url,
            appointment=ticket.get("appointment"),
            priority=bool(ticket.get("priority")),
            lang=lang,
            alternative=None if offline else self.advice.alternative(service),
        )

    def _print(self, data: TicketData | Notice) -> Path | None:
        """Print with retries; raise PrinterError after the last attempt. A ticket that broke off while it
        was sent (``broke_off``) is not sent again: its start, number included, may be on paper already, and a
        second copy of the same number would follow it."""
        for attempt in range(self.options.print_retries + 1):
            try:
                result = self.printer.print_ticket(data)
            except PrinterError as exc:
                log.error(
                    "printing failed (attempt %d of %d): %s", attempt + 1, self.options.print_retries + 1, exc
                )
                if attempt == self.options.print_retries or broke_off(exc):
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
        except PrinterError as exc:
            if broke_off(exc):  # the citizen may hold its start with the number: it stays in the queue
                log.warning(
                    "ticket %s broke off while printing: kept in the queue (its number may be on paper)",
                    ticket["number"],
                )
            elif not appointment:
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
            try:
                self.store.defer(f"cancel-{args['ticket']}", "cancel", args)
            except sqlite3.Error as store_exc:
                self._store_failed(store_exc)

    def _issue_offline(self, service: str, priority: bool, lang: str) -> Outcome:
        day = self.today()
        try:
            t = self.store.take(day, service, self.clock(), priority)
        except sqlite3.Error as exc:  # a full or failing disk: the number could not be recorded
            self._store_failed(exc)
            return self._refuse("store", service, signal="beep")
        if t is not None:
            self._store_ok()
        else:
            if not self.store.durable:
                return self._refuse("store", service, signal="beep")
            log.error("controller unreachable and no leased numbers left for %s today", service)
            return self._refuse("no_numbers", service, signal="beep")
        ticket = {"number": t.label, "issued_at": t.issued_at, "priority": priority}
        try:
            path = self._print(self._data(ticket, service, lang, offline=True))
        except PrinterError as exc:
            # never handed out: not reported, never reused; one that broke off may be: reported as printed
            self._mark(t, "printed" if broke_off(exc) else "void")
            self._wake.set()
            return self._refuse("print_failed", service, signal="beep", number=t.label)
        self._mark(t, "printed")
        self.tally["offline"] += 1
        self._done(service, t.label, priority)
        self._wake.set()
        return Outcome("offline", number=t.label, path=path)

    def _mark(self, t: Any, state: str) -> None:
        """A state change of an offline ticket; if it cannot be written the ticket stays ``issued``, which is
        reported like a printed one (a void one then too: the controller has a ticket nobody holds)."""
        try:
            self.store.mark(t, state)
        except sqlite3.Error as exc:
            self._store_failed(exc)

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
        # the same code again within press_interval_s is a double read; another code is another citizen
        if not self.limiter.allow(f"checkin:{code or ''}"):
            return self._refuse("rate_limited", "", signal="beep")
        if code is None:
            return self._notice("dispenser.checkin_unknown", "unknown_appointment")
        if not self.controller_reachable:
            return self._notice("dispenser.checkin_offline", "controller_offline")
        if not self._printer_ready():  # as for a walk-in: no place in the queue without a ticket in hand
            return self._refuse("printer", "", signal="beep")
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
            if exc.code in RETRY_CODES:  # nothing decided (clock behind, rate limit): not an unknown code
                return self._notice("dispenser.checkin_offline", exc.code)
            key = {ErrorCode.APPOINTMENT_EXPIRED.value: "dispenser.checkin_expired"}.get(
                exc.code, "dispenser.checkin_unknown"
            )
            return self._notice(key, exc.code)
        ticket = result["ticket"]
        if ticket.get("state") not in (None, *QUEUED):  # checked in before, and called and finished since
            number = str(ticket["number"])
            return self._notice("dispenser.checkin_done", "ticket_done", number=number)
        return self._print_online(ticket, str(ticket["service"]), self.chosen_lang(), appointment=True)

    def _notice(self, key: str, reason: str, **values: str) -> Outcome:
        self._refuse(reason, "", signal="beep", text_key=key, values=values)
        try:
            path = self._print(
                Notice(
                    self.cfg.office.name,
                    key,
                    self.clock(),
                    self.cfg.office.timezone,
                    lang=self.chosen_lang(),
                    values=values,
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
                except sqlite3.Error as exc:  # one line per new problem, not a traceback every few seconds
                    self._store_failed(exc)
                    self._changed()
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
                if exc.code in RETRY_CODES:  # nothing decided (clock behind, rate limit): report it later
                    log.warning("offline ticket %s not reported yet: %s", t.label, exc)
                    return
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
                    self._settle_orphan(key, args, kw)
                elif kind == "cancel":
                    self.runtime.request("ticket.cancel", args, request_id=f"{key[:56]}-c", **kw)
            except CommandFailed as exc:
                if exc.code in RETRY_CODES:
                    log.warning("deferred %s %s not settled yet: %s", kind, key, exc)
                    return
                log.info("deferred %s %s settled by the controller's answer: %s", kind, key, exc)
            except RequestTimeout:
                return
            self.store.done(key)
        if self.day == today and self.store.durable:
            for sid in self.services:
                if self.store.remaining(today, sid) < max(1, opts.lease_low):
                    refused = self._lease_refused.get(sid)
                    if refused is not None and self.monotonic() - refused[1] < LEASE_RETRY_S:
                        continue
                    try:
                        lease = self.runtime.request(
                            "ticket.lease", {"service": sid, "count": opts.lease_size}, **kw
                        )["lease"]
                    except CommandFailed as exc:
                        new = refused is None or refused[0] != exc.code
                        self._lease_refused[sid] = (exc.code, self.monotonic())
                        log.log(
                            logging.WARNING if new else logging.DEBUG,
                            "lease for %s refused: %s (asked again every %.0f s)",
                            sid,
                            exc,
                            LEASE_RETRY_S,
                        )
                        continue
                    except RequestTimeout:
                        return
                    self._lease_refused.pop(sid, None)
                    self.store.add_lease(lease["day"], sid, lease["prefix"], lease["first"], lease["count"])
                    self._store_ok()
                    log.info(
                        "leased %s%03d..%s%03d for offline issuing",
                        lease["prefix"],
                        lease["first"],
                        lease["prefix"],
                        lease["first"] + lease["count"] - 1,
                    )
        self._changed()

    def _settle_orphan(self, key: str, args: dict[str, Any], kw: dict[str, Any]) -> None:
        """A ``ticket.issue`` that got no reply (the citizen got an offline number): ask the controller to
        void it. If it never arrived, nothing was issued and nothing will be (no number taken, no cancelled
        ticket); if it was decided, the ticket it issued is withdrawn, as nobody holds it. Raises what the
        requests raise (CommandFailed, RequestTimeout): the orphan then stays for the next sync."""
        try:
            settled = self.runtime.request("request.void", {"request": key}, request_id=f"{key}-v", **kw)
        except CommandFailed as exc:
            if exc.code != ErrorCode.UNKNOWN_OP:
                raise
            # a controller older than request.void: repeat the request (its stored reply, or a new ticket)
            settled = {
                "request": {
                    "state": "decided",
                    "result": self.runtime.request("ticket.issue", args, request_id=key, **kw),
                }
            }
        request = settled.get("request") or {}
        ticket = (request.get("result") or {}).get("ticket") if request.get("state") == "decided" else None
        if not isinstance(ticket, dict) or not ticket.get("id"):
            log.info(
                "timed-out ticket request %s settled: %s, no ticket to withdraw", key, request.get("state")
            )
            return
        self.runtime.request(
            "ticket.cancel",
            {"ticket": ticket["id"], "reason": "offline_fallback"},
            request_id=f"{key}-c",
            **kw,
        )
        log.warning(
            "ticket %s from a timed-out request cancelled (an offline number was given)", ticket.get("number")
        )

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
        self,
        reason: str,
        service: str,
        *,
        signal: str,
        number: str = "",
        text_key: str | None = None,
        values: dict[str, str] | None = None,
    ) -> Outcome:
        self.tally[f"refused_{reason}"] += 1
        key = text_key or REFUSAL_TEXTS.get(reason)
        name = self.cfg.service(service).name.get("de") if service in self.cfg.service_ids else ""
        self.last_refusal = {
            "reason": reason,
            "service": service or None,
            "ts": round(self.clock(), 3),
            # None for a refusal of the controller without a text of its own: the admin page names its code
            "text": both(key, **{"service": name, **(values or {})}) if key else None,
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
        try:
            unreported = len(self.store.unreported(today))
            numbers_left = {sid: self.store.remaining(today, sid) for sid in self.services}
        except sqlite3.Error as exc:
            self._store_failed(exc)
            unreported, numbers_left = 0, dict.fromkeys(self.services, 0)
        printer = self.printer.status
        status = "ok"
        if printer in ("paper_out", "cover_open", "offline", "error") or stuck:
            status = "error"
        elif printer == "paper_low" or not self.controller_reachable or unreported or self.store_error:
            status = "degraded"
        return {
            "status": status,
            "printer": printer,
            "printer_error": self.printer.last_error or None,
            "printer_fault": self.printer.last_fault or None,
            "printer_backend": self.printer.backend.name,
            "last_ticket_png": self.last_png or None,
            "last_ticket": self.last_ticket or None,
            "controller": "online" if self.controller_reachable else "offline",
            "issued": self.tally["issued"],
            "offline_issued": self.tally["offline"],
            "offline_unreported": unreported,
            "priority_issued": self.tally["priority"],
            "offline_numbers_left": numbers_left,
            "offline_store": self.store_error or "ok",
            "offline_store_fault": self.store_fault or None,
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


def create(
    runtime: Any, cfg: Config, node: Node, *, pins: Any, simulate: bool, real_printer: bool = False
) -> Dispenser:
    """Node factory (waitroom/cli.py NODE_ROLES['dispenser']). ``real_printer``: with ``simulate``, the
    virtual buttons print on the configured printer instead of the PNG preview."""
    return Dispenser(runtime, cfg, node, pins=pins, simulate=simulate, real_printer=real_printer)
