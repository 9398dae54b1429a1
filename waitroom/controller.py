"""The office controller: owns the queue of one office.

``Office`` is transport-free: ``handle(node_id, raw_payload)`` validates a command, decides, records the
decision as events in the SQLite log (committed before anything is published) and returns the reply and the
messages to publish. ``ControllerService`` (waitroom.service) connects it to MQTT. The simulator drives
``Office``'s selection and prediction directly.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from waitroom import contract, dbsafe
from waitroom.config import Config
from waitroom.contract import Command, ContractError, ErrorCode, EventKind, Role
from waitroom.model import EventError, OfficeState, Ticket, apply
from waitroom.ops import AppointmentOps, AssistOps, CounterOps, IntakeOps, OpError, RemoteOps, TicketOps
from waitroom.ops.base import iso
from waitroom.predict import Forecast, Predictor, WaitPredictor
from waitroom.staffing import StaffingWatch
from waitroom.steering import RuleSelector, Selector
from waitroom.store import EventStore

log = logging.getLogger(__name__)

# Replies, and the request ids voided by their nodes (``request.void``), are kept this long. A ticket lives
# until the end of its day, so a reply whose ticket may still be waiting is always there to be found; and a
# command arrives within seconds of being sent, or not at all (every client has a clean session: the broker
# keeps no command for a controller that is away, and one node's commands reach the controller in order).
REPLY_KEEP_S = 2 * 86400
# The digest stored for a request id its node voided (``request.void``). A real digest is 32 hex digits, so
# no command can match it: the command with that id, arriving later, finds it and is answered
# ``request_voided``.
VOIDED = "void"
CLOCK_TOLERANCE_S = 120.0  # how far the clock may be behind the last event (an NTP step) before refusing
SUMMARY_TEXT = 40  # characters of a pause or intake reason in the summary (the detail topics carry all)
SUMMARY_TEXT_SHORT = 12  # ... when many long ones at once would pass the summary's bound (then none at all)


def _cut_reasons(summary: dict[str, Any]) -> None:
    """Every counter paused and every intake stopped with a long reason at once: the summary would pass its
    bound (contract.STATE_BOUND_BYTES; 10 KB with 40 counters and 20 intakes, 40 characters each). The
    reasons get shorter, then go; ``counter/<id>`` and the admin page keep them whole."""
    for keep in (SUMMARY_TEXT_SHORT, 0):
        for svc in summary["services"]:
            svc["intake_reason"] = svc["intake_reason"][:keep]
        for c in summary["counters"]:
            if "reason" in c:
                c["reason"] = c["reason"][:keep]
                if not c["reason"]:
                    del c["reason"]
        if len(contract.encode(summary)) <= contract.STATE_BOUND_BYTES:
            return


def _minutes(sec: float | None) -> int | None:
    return None if sec is None or sec == float("inf") else round(sec / 60)


class NodeRateLimit:
    """A token bucket per node: one node flooding its command topic cannot starve the others. The service
    asks before a command reaches the engine, so a flood costs a look-up per message, no decoding."""

    def __init__(self, cfg: Config, limits: dict[Role | None, tuple[float, float]] | None = None):
        self.cfg = cfg
        rate = cfg.controller.node_commands_per_s
        self.limits = limits or {Role.WEB: (10 * rate, 30 * rate), None: (rate, 3 * rate)}
        self._buckets: dict[str, tuple[float, float]] = {}  # node -> (tokens, monotonic time)
        self._lock = threading.Lock()

    def allow(self, node_id: str, now: float | None = None) -> bool:
        rate, burst = self.limits.get(self.cfg.role_of(node_id), self.limits[None])
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(node_id, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            ok = tokens >= 1
            self._buckets[node_id] = (tokens - 1 if ok else tokens, now)
        return ok

    def rate(self, node_id: str) -> float:
        return self.limits.get(self.cfg.role_of(node_id), self.limits[None])[0]


@dataclass
class Outcome:
    """What one command or tick produced: the reply (if any) and the messages to publish."""

    reply: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass
class _ForecastJob:
    """A sliced forecast under way, and what it was started on."""

    state: OfficeState
    day: str
    seq: int
    started: float  # monotonic
    fresh_n: dict[str, int]  # the fresh tickets per service when it started
    slices: Generator[None, None, tuple[Forecast, dict]]
    cost: float = 0.0  # seconds its slices took together


@dataclass
class _Batch:
    """Commands decided but not yet committed (group commit)."""

    outcomes: list[Outcome] = field(default_factory=list)
    pending: list[Outcome] = field(default_factory=list)  # decided since the last flush
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)


class Office(AppointmentOps, RemoteOps, TicketOps, CounterOps, AssistOps, IntakeOps):
    """One office's queue: the command path (``handle``/``handle_batch``: decide, group commit, reply), the
    state rebuilt from the log, the forecast, and what is published. The operations themselves live in
    ``waitroom.ops``, one module per area."""

    def __init__(
        self,
        cfg: Config,
        store: EventStore,
        *,
        clock: Callable[[], float] = time.time,
        selector: Selector | None = None,
        predictor: Predictor | None = None,
        new_id: Callable[[], str] = lambda: secrets.token_hex(5),
    ):
        self.cfg = cfg
        self.store = store
        self.wall = clock  # the system clock: a time sync may step it back
        self._in_step = False  # its clock was in step with the log at least once since this controller began
        self.selector: Selector = selector or RuleSelector()
        self.predictor = predictor or WaitPredictor.learned(store, cfg, clock())
        self.new_id = new_id
        self.state = OfficeState()
        self._pending: list[dict[str, Any]] = []
        self._forecast: Forecast | None = None
        self._forecast_at = 0.0  # monotonic time of the last full forecast
        self._forecast_seq = -1  # state seq it was computed for
        self._fresh: dict[str, int] = {}  # ticket id -> how many of its service were issued before it,
        self._fresh_n: dict[str, int] = {}  # since the last full forecast (service -> count)
        self.forecast_cost = 0.0  # seconds the last full forecast took (its slices together)
        self._job: _ForecastJob | None = None  # the sliced forecast under way (``forecast_slice``)
        self.dirty_services: set[str] = set()  # services whose queue page changed since it was published
        self.parked_changed: set[str] = set()  # ... and among them those whose parked list changed
        self.eta_dirty = False  # the expected waits on the queue pages moved (a new forecast)
        self.dirty_counters: set[str] = set()  # counters whose detail changed since it was published
        self._batch: _Batch | None = None
        self._pruned_at = 0.0
        self._reply_keys = store.reply_keys()  # no SQLite look-up for a request id never seen
        self.learned = self._learned_forecast()  # the model trained on this office's log (waitroom.forecast)
        self._learned_fresh = True
        self._learned_now: dict[tuple[str, bool], tuple[float, float, float]] = {}
        self._call_names: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        # what the admin must know (e.g. the clock), in the summary: ``alerts`` as stable codes with their
        # details (contract.AlarmCode), ``alarms`` the same in English (kept for readers of older versions)
        self.alerts: dict[str, dict[str, Any]] = {}
        self.alarms: dict[str, str] = {}
        self.staffing = StaffingWatch(cfg)  # services whose waiting tickets no open counter can call
        self.rebuild()

    # ------------------------------------------------------------------------------------ state
    def _learned_forecast(self) -> Any:
        """The learned forecast with the newest model in ``<data dir>/forecast`` (None: in-memory log)."""
        if str(self.store.path) == ":memory:":
            return None
        from waitroom.forecast.jobs import ModelStore
        from waitroom.forecast.live import LiveForecast

        try:
            models = ModelStore(self.store.path.parent / "forecast")
            return LiveForecast(tuple(s.id for s in self.cfg.services), self.cfg.office.tz, store=models)
        except Exception:  # a damaged model file must not stop the controller: the simulation forecast stays
            log.exception("could not load the learned forecast; using the simulation forecast only")
            return None

    def _observe_learned(self, event: dict[str, Any]) -> None:
        try:
            self.learned.observe(event)  # type: ignore[union-attr]
        except Exception:
            log.exception("the learned forecast failed on an event; switched off until restart")
            self.learned = None

    def _observe(self, events: list[dict[str, Any]]) -> None:
        getattr(self.predictor, "observe", lambda _: None)(events)  # learn service times
        for e in events:
            if self.learned is None:
                break
            self._observe_learned(e)

    def rebuild(self) -> None:
        """Rebuild the state exactly from the event log (start-up, or after a failed transaction).

        An event that does not fit the state before it raises ``dbsafe.EventDoesNotFit``, except in a log
        that ``waitroom db recover`` salvaged: events lost there leave later ones without their ticket (or
        counter), and those are passed over, so the day goes on, numbered after its highest readable number.
        """
        self.state = OfficeState()
        self.staffing.reset()
        n = 0
        if getattr(self, "learned", None) is not None and not self._learned_fresh:
            self.learned = self._learned_forecast()  # a fresh picture of the day for it too
        self._learned_fresh = False
        salvaged = str(self.store.path) != ":memory:" and self.store.meta("recovered_from") is not None
        passed: list[int] = []
        for event in self.store.events_since_day_start():
            if salvaged and event.get("type") != "day_started":
                self._day_lost(event)
            try:
                self._apply(event)
            except (EventError, LookupError, TypeError, ValueError, AttributeError) as exc:
                if not salvaged:
                    raise dbsafe.EventDoesNotFit(self.store.path, event, exc) from None
                passed.append(event.get("seq", 0))  # its number stays taken: the next event follows it
                self.state.seq = max(self.state.seq, event.get("seq", 0))
                self.state.last_ts = max(self.state.last_ts, event.get("ts") or 0.0)
                continue
            if getattr(self, "learned", None) is not None:
                self._observe_learned(event)
            n += 1
        if passed:
            log.warning(
                "salvaged event log %s: passed over %d event(s) that do not fit the events before them "
                "(their tickets or counters were in events that were lost), seq %s",
                self.store.path,
                len(passed),
                ", ".join(map(str, passed[:20])) + (" ..." if len(passed) > 20 else ""),
            )
        self._forecast = None
        self._job = None
        self._fresh.clear()
        self._fresh_n.clear()
        self.dirty_services.update(self.cfg.service_ids)
        self.dirty_counters.update(self.cfg.counter_ids)
        self.staffing_alerts()
        log.info(
            "state rebuilt from %d events (seq %d, day %s, %d tickets)",
            n,
            self.state.seq,
            self.state.day or "-",
            len(self.state.tickets),
        )

    def _day_lost(self, event: dict[str, Any]) -> None:
        """In a salvaged log: an event of a later day than the state's (or of no day yet) whose day's start
        was lost. The day is started before it as ``_ensure_day`` would have (in memory; so again at every
        rebuild), so its tickets count and the next number follows them instead of starting at 1 again."""
        ts = event.get("ts")
        if not isinstance(ts, int | float):
            return
        day = self.cfg.office.today(ts)
        if self.state.day is not None and day <= self.state.day:
            return
        log.warning("salvaged event log: the start of day %s was lost; rebuilt from its events", day)
        self._apply({"type": "day_started", "ts": ts, "seq": self.state.seq, **self._day_data(day, ts)})

    def _apply(self, event: dict[str, Any]) -> None:
        """Fold one event into the state and note what it changed for the staffing alarm."""
        apply(self.state, event)
        self.staffing.observe(self.state, event)

    def _day_data(self, day: str, now: float) -> dict[str, Any]:
        """The fields of a ``day_started`` event for ``day`` at ``now``."""
        return {
            "day": day,
            "numbers": {s.prefix: self.cfg.office.ticket_start for s in self.cfg.services},
            "counters": {c.id: c.initially for c in self.cfg.counters},
            "appointments": [a.carried() for a in self.state.appointments.values() if a.slot >= now],
        }

    def _emit(self, type_: str, **data: Any) -> dict[str, Any]:
        event = {"type": type_, "ts": round(self.clock(), 3), "seq": self.state.seq + 1, **data}
        tid = data.get("ticket")
        if type_ in ("ticket_parked", "ticket_no_show") or (tid is not None and tid in self.state.parked):
            t = self.state.tickets.get(tid)
            if t is not None:  # a page's parked list changed: the service publishes it without delay
                self.parked_changed.add(t.service)
        elif type_ == "ticket_called" and tid is not None:
            t = self.state.tickets.get(tid)
            if t is not None and t.state == "no_show":  # called back: its page's no-show list changes
                self.parked_changed.add(t.service)
        self._apply(event)
        self._pending.append(event)
        self._touch(event)
        return event

    def _touch(self, event: dict[str, Any]) -> None:
        """Note which queue pages an event changes (they are published coalesced)."""
        if "counter" in event:
            self.dirty_counters.add(event["counter"])
        tid = event.get("ticket") or (event.get("id") if event["type"] == "ticket_issued" else None)
        t = self.state.tickets.get(tid) if tid else None
        if t is not None:
            self.dirty_services.add(t.service)
            if event["type"] == "ticket_issued":
                n = self._fresh_n.get(t.service, 0)
                self._fresh[t.id] = n
                self._fresh_n[t.service] = n + 1
            elif event["type"] == "ticket_transferred":
                self.dirty_services.update(self.cfg.service_ids)
        elif event["type"] in ("day_started", "counter_closed"):  # closed: its transferred tickets move
            self.dirty_services.update(self.cfg.service_ids)
            self.dirty_counters.update(self.cfg.counter_ids)

    def clock(self) -> float:
        """The time events are stamped with and decisions are taken at: the system clock, but once this
        controller has been in step with its log, never before the log's last event. After a time sync stepped
        the clock back while the office runs, the time stands at the last event until the clock has caught up:
        the log stays in order and the day stays the one the log is in."""
        now = self.wall()
        return max(now, self.state.last_ts) if self._in_step else now

    def _check_clock(self) -> None:
        """A clock behind the log by more than the tolerance: after a start (a Pi without a real-time clock
        before its time sync), refuse to act, as numbering a day again would hand out numbers twice; while
        running (a time sync stepped a clock back that ran ahead), go on at the log's time (``clock``) and say
        so in the alarm, as the day the log is in is known to be today."""
        now = self.wall()
        last = self._last_ts()
        behind = last - now
        stepped = contract.AlarmCode.CLOCK_STEPPED_BACK
        if behind > CLOCK_TOLERANCE_S and self._in_step:
            if self.alerts.get("clock", {}).get("code") != stepped:
                log.error(
                    "the clock (%s) stepped back %.0f s behind the event log (%s); events keep the log's "
                    "time until it has caught up",
                    iso(now),
                    behind,
                    iso(last),
                )
            self.alerts["clock"] = contract.alert(stepped, behind_s=round(behind))
            self.alarms["clock"] = f"clock stepped back {behind:.0f} s"  # short: the summary's bound
            return
        if behind > CLOCK_TOLERANCE_S:
            msg = (
                f"the clock ({iso(now)}) is {behind:.0f} s behind the event log ({iso(last)}); "
                "waiting for the time sync"
            )
            if "clock" not in self.alarms:
                log.error("%s; commands are refused until then", msg)
            self.alerts["clock"] = contract.alert(contract.AlarmCode.CLOCK_BEHIND, behind_s=round(behind))
            self.alarms["clock"] = f"clock {behind:.0f} s behind the event log"  # short: the summary's bound
            raise OpError(ErrorCode.CLOCK_BEHIND, msg)
        self._in_step = True
        self.alerts.pop("clock", None)
        if self.alarms.pop("clock", None):
            log.warning("the clock is in step with the event log again")

    def _last_ts(self) -> float:
        return self.state.last_ts

    def staffing_alerts(self) -> None:
        """The ``unstaffed_service`` alarms in ``alerts``: services whose waiting citizens no open counter
        can call, for ``controller.unstaffed_alarm_after_s`` during opening hours (so a short pause does not
        make an alarm come and go); at most ``contract.SUMMARY_UNSTAFFED``, the longest first. After every
        command batch (a counter that opens ends it at once) and every tick (the time passes, the office
        opens or closes); O(services x counters)."""
        due = self.staffing.due(
            self.state, self.cfg, self.clock(), self.cfg.controller.unstaffed_alarm_after_s
        )
        due = due[: contract.SUMMARY_UNSTAFFED]
        keys = {f"unstaffed:{sid}" for sid, _, _ in due}
        for key in [k for k in self.alerts if k.startswith("unstaffed:") and k not in keys]:
            sid = key.partition(":")[2]
            log.info("service %s: an open counter serves its waiting citizens again (or none waits)", sid)
            del self.alerts[key]
        for sid, n, since in due:
            key = f"unstaffed:{sid}"
            if key not in self.alerts:
                log.warning(
                    "service %s: %d waiting and no open counter serves it since %s", sid, n, iso(since)
                )
            self.alerts[key] = contract.alert(
                contract.AlarmCode.UNSTAFFED_SERVICE, service=sid, waiting=n, since=round(since)
            )

    def _ensure_day(self) -> None:
        today = self.cfg.office.today(self.clock())
        if self.state.day and today < self.state.day:
            return  # never start a day earlier than the last one in the log
        if self.state.day != today:
            self._emit("day_started", **self._day_data(today, self.clock()))
            # yesterday's forecast (or one of the state before the first day) says nothing of today: the
            # next reader gets one of the new day (once a day, on whichever path comes first)
            self._forecast, self._job = None, None

    FORECAST_MIN_S = 0.25  # a full forecast at most this often (coalesced over commands)
    FORECAST_REFRESH_S = 30.0  # and at least this often while the queue waits (times move on)

    def forecast(self) -> Forecast:
        """The last full waiting-time forecast. Never computed on a command's path once one exists: the
        service refreshes it coalesced (``forecast_due``/``refresh_forecast``)."""
        if self._forecast is None:
            self.refresh_forecast()
        assert self._forecast is not None
        return self._forecast

    def forecast_due(self, mono: float | None = None) -> float:
        """Seconds until the forecast should be refreshed (0: now)."""
        mono = time.monotonic() if mono is None else mono
        age = mono - self._forecast_at
        if self._forecast is None:
            return 0.0
        if self._forecast_seq != self.state.seq:
            # at least FORECAST_MIN_S apart, and never more than ~5 % of the time
            return max(max(self.FORECAST_MIN_S, 20 * self.forecast_cost) - age, 0.0)
        return max(self.FORECAST_REFRESH_S - age, 0.0)

    def refresh_forecast(self) -> Forecast:
        """A full forecast of the state as it is, now (a sliced one under way is dropped)."""
        self._job = None
        while not self.forecast_slice():
            pass
        assert self._forecast is not None
        return self._forecast

    @property
    def forecasting(self) -> bool:
        """A sliced forecast is under way."""
        return self._job is not None

    def forecast_slice(self) -> bool:
        """One slice (well under a millisecond) of the coalesced forecast, started on the state as it is
        now; True when the forecast is complete and installed. The engine answers commands between the
        slices (``WaitPredictor.forecast_slices`` works on a copy of what it reads), so a press never waits
        for a whole forecast. A job started before the state was rebuilt or a new day began is dropped."""
        job = self._job
        if job is not None and (job.state is not self.state or job.day != self.state.day):
            job = self._job = None
        if job is None:
            now = self.clock()
            self._job = job = _ForecastJob(
                state=self.state,
                day=self.state.day,
                seq=self.state.seq,
                started=time.monotonic(),
                fresh_n=dict(self._fresh_n),
                slices=self._forecast_slices(now),
            )
        t0 = time.monotonic()
        try:
            next(job.slices)
        except StopIteration as done:
            self._install(job, done.value)
            return True
        finally:
            job.cost += time.monotonic() - t0
        return False

    def _forecast_slices(self, now: float) -> Generator[None, None, tuple[Forecast, dict]]:
        sliced = getattr(self.predictor, "forecast_slices", None)
        if sliced is not None:
            fc = yield from sliced(self.state, self.cfg, self.selector, now)
        else:  # a predictor without slices runs in one
            fc = self.predictor.forecast(self.state, self.cfg, self.selector, now)
        learned = yield from self._learned_slices(now)
        return fc, learned

    def _install(self, job: _ForecastJob, result: tuple[Forecast, dict]) -> None:
        self._job = None
        self._forecast, self._learned_now = result
        self.forecast_cost = job.cost
        self._forecast_at, self._forecast_seq = job.started, job.seq
        # the tickets issued while it ran are not in it: they stay fresh, counted from its start
        mark = job.fresh_n
        fresh: dict[str, int] = {}
        for tid, n in self._fresh.items():
            t = self.state.tickets.get(tid)
            if t is not None and n >= mark.get(t.service, 0):
                fresh[tid] = n - mark.get(t.service, 0)
        self._fresh = fresh
        self._fresh_n = {
            sid: n - mark.get(sid, 0) for sid, n in self._fresh_n.items() if n > mark.get(sid, 0)
        }
        self.eta_dirty = True  # the expected waits on the pages moved

    def _learned_slices(self, now: float) -> Generator[None, None, dict]:
        """The learned forecast of a new ticket per walk-in service (with the forecast: off the command
        path), a slice per service."""
        learned = self.learned
        out: dict[tuple[str, bool], tuple[float, float, float]] = {}
        if learned is None or not learned.trained:
            return out
        try:
            for svc in self.cfg.services:
                if svc.walk_in:
                    yield
                    for prio in (False, True):
                        out[(svc.id, prio)] = learned.predict(svc.id, prio, now=now)
        except Exception:
            log.exception("the learned forecast failed; using the simulation forecast only")
            return {}
        return out

    def learned_eta(self, t: Ticket) -> tuple[float, float, float] | None:
        """(expected, 10 %, 90 %) seconds for a ticket issued since the last forecast, from the model trained
        on this office's log; None without a trained model."""
        pred = self._learned_now.get((t.service, t.priority))
        if pred is None or t.id not in self._fresh:
            return None
        fc = self.forecast()
        ahead = self._fresh[t.id] + self.reserved_ahead(t.service, t.issued_at)
        extra = ahead * fc.marginal.get(t.service, 0.0) - (self.clock() - fc.now)
        return tuple(max(v + extra, 0.0) for v in pred)  # type: ignore[return-value]

    def eta_s(self, t: Ticket) -> float:
        """Expected seconds until ``t`` is called, from the last forecast; O(log n)."""
        fc = self.forecast()
        # open remote reservations made before it will queue before it when they check in on time
        reserved = self.reserved_ahead(t.service, t.issued_at) if self.state.open_reservations else 0
        if t.id in self._fresh:  # issued after the forecast: behind everybody it knew
            base = fc.new_ticket_eta(t.service, self._fresh[t.id] + reserved)
        else:
            base = fc.eta(self.state, t)
            if reserved and base != float("inf"):
                base += reserved * fc.marginal.get(t.service, 0.0)
        if base == float("inf"):
            return base
        return max(base - (self.clock() - fc.now), 0.0)

    # ------------------------------------------------------------------------------------ commands
    def handle(self, node_id: str, raw: bytes) -> Outcome:
        """Validate, execute and commit one command from ``node_id``. Never raises for bad input."""
        return self.handle_batch([(node_id, raw)])[0]

    def handle_batch(self, items: list[tuple[str, bytes]]) -> list[Outcome]:
        """Decide every command in order, then commit all of them in one transaction (group commit).

        Nothing of the batch may be published before this returns: the replies and events are durable then.
        A command that needs the state rebuilt (an internal error) first commits the commands before it.
        """
        self._batch = _Batch()
        try:
            for node_id, raw in items:
                self._batch.outcomes.append(self._decide(node_id, raw))
            self._flush()
            self.staffing_alerts()
            return self._batch.outcomes
        finally:
            self._batch = None

    def execute(self, node_id: str, role: Role, cmd: Command) -> Outcome:
        """Execute and commit one parsed command (tests, tools)."""
        self._batch = _Batch()
        try:
            self._batch.outcomes.append(self._run(node_id, role, cmd))
            self._flush()
            self.staffing_alerts()
            return self._batch.outcomes[0]
        finally:
            self._batch = None

    def _decide(self, node_id: str, raw: bytes) -> Outcome:
        rid: str | None = None
        try:
            role = self.cfg.role_of(node_id)
            rid = contract.request_id_of(raw)  # so that even a broken command is answered with its id
            data = contract.decode(raw, max_depth=contract.MAX_DEPTH)
            # a bad id is answered with it (the node can tell which command failed), but not one longer
            # than a request id: the reply would pass its bound (a small node's buffer) by the id alone
            rid = data.get("id") if isinstance(data.get("id"), str) and len(data["id"]) <= 64 else None
            if role is None:
                raise ContractError(
                    ErrorCode.UNKNOWN_NODE, f"node {node_id!r} is not in the office configuration"
                )
            cmd = contract.parse_command(data, role)
        except ContractError as exc:
            log.warning("rejected command from %s: %s %s", node_id, exc.code.value, exc.message[:200])
            return Outcome(contract.error_reply(rid, exc.code, exc.message))
        return self._run(node_id, role, cmd)

    def _run(self, node_id: str, role: Role, cmd: Command) -> Outcome:
        batch = self._batch
        assert batch is not None
        digest = hashlib.sha256(contract.canonical({"op": cmd.op.name, "args": cmd.args})).hexdigest()[:32]
        key = (node_id, cmd.id)
        seen = batch.replies.get(key) or (
            self.store.reply_for(node_id, cmd.id) if key in self._reply_keys else None
        )
        if seen is not None:
            old_digest, reply = seen
            if old_digest == VOIDED:  # its node gave up on it (request.void): nothing is done for it
                log.info(
                    "%s %s from %s arrived after its node voided it: not done", cmd.op.name, cmd.id, node_id
                )
                return self._again(key, reply)
            if old_digest != digest:
                reply = contract.error_reply(
                    cmd.id, ErrorCode.DUPLICATE, f"request id {cmd.id} was already used for another command"
                )
            else:  # the stored reply, marked: the command did nothing now (an importer counts it unchanged)
                reply = {**reply, "repeated": True}
            log.info("repeated request %s from %s: same reply again", cmd.id, node_id)
            return self._again(key, reply)
        self._pending = []
        keep = True
        rebuild = False
        stored = True
        try:
            self._check_clock()
            self._ensure_day()
            handler = getattr(self, "op_" + cmd.op.name.replace(".", "_"))
            result = handler(node_id, role, **cmd.args)
            reply = contract.ok_reply(cmd.id, result)
        except OpError as exc:
            reply = contract.error_reply(cmd.id, exc.code, exc.message, exc.data)
            keep = exc.keep_effects
            log.info("%s %s from %s refused: %s", cmd.op.name, cmd.id, node_id, exc.message)
            # "not now, retry later": not stored, so a retry with this request id is decided again
            stored = exc.code not in contract.RETRY_LATER
        except (TypeError, ValueError, KeyError) as exc:
            reply = contract.error_reply(cmd.id, ErrorCode.BAD_REQUEST, f"{cmd.op.name}: {exc}")
            keep, rebuild = False, True
        except Exception:
            log.exception("internal error in %s from %s", cmd.op.name, node_id)
            self._pending = []
            self._flush(rebuild=True)
            return Outcome(
                contract.error_reply(cmd.id, ErrorCode.INTERNAL, "internal error; nothing changed")
            )
        events, self._pending = self._pending, []
        if not keep and events:
            # A refused operation may have started the day; keep that event but nothing else.
            kept = [e for e in events if e["type"] == "day_started"]
            if len(kept) < len(events):
                rebuild = True
            events = kept
        if rebuild:
            self._flush(rebuild=True)  # commit the commands before this one, then undo this one's effects
            for e in events:
                self._apply(e)
        reply["seq"] = self.state.seq
        outcome = Outcome(reply, events)
        batch.events += events
        if stored and not cmd.op.query:  # a query's repeat is answered anew (contract.Op.query)
            batch.replies[(node_id, cmd.id)] = (digest, reply)
        batch.pending.append(outcome)
        return outcome

    def _again(self, key: tuple[str, str], reply: dict[str, Any]) -> Outcome:
        """The answer to a request id decided before. Decided in this batch, it is not committed yet: if the
        commit fails, this answer is ``internal`` too (``_flush``), as the first one is; a repeated ``ok``
        would hand out a number that is not in the log and is issued again after the retry."""
        outcome = Outcome(reply)
        assert self._batch is not None
        if key in self._batch.replies:
            self._batch.pending.append(outcome)
        return outcome

    def op_request_void(self, node_id: str, role: Role, request: Any, node: Any = None) -> dict[str, Any]:
        """``request.void``: settle a request of this node that got no reply, without doing it. Decided
        already (a stored reply, in this batch or the log): that answer. Else the id is voided, in this
        batch's group commit like a reply (``VOIDED``), so the command arriving later does nothing
        (``_run``)."""
        if node is not None and node != node_id:
            raise OpError(
                ErrorCode.FORBIDDEN,
                f"{node_id} may void only its own request ids, not those of {node!r}",
                data={"node": node} if isinstance(node, str) else None,
            )
        if not isinstance(request, str) or not contract.REQUEST_ID_RE.match(request):
            raise OpError(ErrorCode.BAD_REQUEST, "request must be a request id of 1-64 [A-Za-z0-9_.:-]")
        batch = self._batch
        assert batch is not None
        key = (node_id, request)
        seen = batch.replies.get(key) or (self.store.reply_for(*key) if key in self._reply_keys else None)
        if seen is None:
            voided = contract.error_reply(
                request,
                ErrorCode.REQUEST_VOIDED,
                f"request {request} was voided by {node_id} before it arrived; nothing done",
                {"request": request},
            )
            voided["seq"] = self.state.seq
            batch.replies[key] = (VOIDED, voided)
            log.info("request %s of %s voided: it never arrived", request, node_id)
            return {"request": {"id": request, "state": "voided"}}
        digest, reply = seen
        if digest == VOIDED:
            return {"request": {"id": request, "state": "voided"}}
        answer = {"result": reply.get("result") or {}} if reply.get("ok") else {"error": reply.get("error")}
        return {"request": {"id": request, "state": "decided", **answer}}

    def _flush(self, rebuild: bool = False) -> None:
        """Commit what the batch decided so far; on failure every such command is answered ``internal``."""
        batch = self._batch
        assert batch is not None
        if batch.events or batch.replies:
            records = [(node, rid, d, r) for (node, rid), (d, r) in batch.replies.items()]
            try:
                self.store.commit_batch(batch.events, records, now=self.clock())
            except Exception as exc:
                log.exception("could not write the event log; %d command(s) not done", len(batch.pending))
                if "log" not in self.alerts:  # the admin and every counter are told, until a write succeeds
                    self.alerts["log"] = contract.alert(
                        contract.AlarmCode.LOG_UNWRITABLE, since=int(self.clock()), error=str(exc)[:120]
                    )
                for o in batch.pending:
                    o.reply = contract.error_reply(
                        o.reply["id"] if o.reply else None, ErrorCode.INTERNAL, "event log not writable"
                    )
                    o.events = []
                rebuild = True
            else:
                self.alerts.pop("log", None)
                self._reply_keys.update(batch.replies)
                if batch.events:
                    self._observe(batch.events)
            batch.events, batch.replies, batch.pending = [], {}, []
        if rebuild:
            self.rebuild()

    def prune(self) -> None:
        """Forget replies older than two days (a retry comes within seconds; the log keeps every event)."""
        if self.clock() - self._pruned_at >= 3600:
            self._pruned_at = self.clock()
            n = self.store.prune_replies(self.clock() - REPLY_KEEP_S)
            if n:
                self._reply_keys = self.store.reply_keys()
                log.info("pruned %d stored replies older than %d days", n, REPLY_KEEP_S // 86400)

    def tick(self, *, fresh_forecast: bool = True) -> Outcome:
        """Time-driven changes: a new day, assistance escalation, the automatic intake stop. Call about once a
        second. ``fresh_forecast=False`` (the service, which keeps the forecast fresh in slices) decides the
        intake stop on the last forecast instead of computing one of the state as it is."""
        self._pending = []
        now = self.clock()
        try:
            self._check_clock()
        except OpError:
            return Outcome()  # nothing time-driven while the clock is behind (the alarm says why)
        try:
            self.prune()
            self._ensure_day()
            levels = self.cfg.controller.assist_escalate_s
            for aid in list(self.state.open_assists.values()):
                a = self.state.assists[aid]
                if a.state != "pending":
                    continue
                due = sum(1 for s in levels if now - a.requested_at >= s)
                if due > a.level:
                    log.warning(
                        "assistance %s at %s unacknowledged for %.0f s: escalation level %d",
                        a.id,
                        a.terminal,
                        now - a.requested_at,
                        due,
                    )
                    self._emit("assist_escalated", id=a.id, terminal=a.terminal, level=due)
            self._auto_intake(now, fresh_forecast)
            self._lapse_reservations(now)  # remote tickets not checked in by their deadline (ops/remote.py)
            events, self._pending = self._pending, []
            if events:
                self.store.commit(events, None)
                self._observe(events)
            self.staffing_alerts()
            return Outcome(None, events)
        except Exception:
            log.exception("tick failed")
            self._pending = []
            self.rebuild()
            return Outcome()

    # ------------------------------------------------------------------------------------ publishing
    def snapshot(self) -> dict[str, Any]:
        """The retained office summary (topic ``state``); ``state_message`` gives it with its bytes."""
        return self.state_message()[0]

    def state_message(self) -> tuple[dict[str, Any], bytes]:
        """The retained office summary (topic ``state``) from which displays, counters and dispensers rebuild,
        and its encoding (one encode: the controller publishes these bytes).

        Its size does not depend on the queue: counts and expected waits per service, the state of each
        counter, the recent calls and the open assistance requests (see docs/mqtt-contract.md for the bound).
        Names, zones and spoken names come from the office configuration every node has.
        """
        s, cfg, now = self.state, self.cfg, self.clock()
        fc = self.forecast()
        services = []
        for svc in cfg.services:
            is_open, reason = self.intake_open(svc.id)
            services.append(
                {
                    "id": svc.id,
                    "prefix": svc.prefix,
                    "waiting": s.n_waiting(svc.id),
                    "eta_min": _minutes(self._new_eta(fc, svc.id)),
                    "intake_open": is_open,
                    "intake_reason": reason[:SUMMARY_TEXT],
                }
            )
        counters = []
        for c in cfg.counters:
            cs = s.counters.get(c.id)
            cur = s.tickets.get(cs.current) if cs and cs.current else None
            entry = {
                "id": c.id,
                "state": cs.state if cs else "closed",
                "serving": {"ticket": cur.number, "service": cur.service} if cur else None,
                "served": cs.served if cs else 0,
            }
            if cs and cs.pause_reason:  # only a paused counter has one
                entry["reason"] = cs.pause_reason[:SUMMARY_TEXT]
            counters.append(entry)
        calls = []
        for c in list(s.calls)[: min(cfg.controller.recent_calls, contract.SUMMARY_CALLS)]:
            call = {
                "ticket": c.ticket,
                "service": c.service,
                "counter": c.counter,
                "ts": c.ts,
                "recall": c.recall,
            }
            called = s.tickets.get(c.ticket_id)
            if called is not None and called.lang != "de":  # a display announces a missed call in it too
                call["lang"] = called.lang
            calls.append(call)
        open_ids = list(s.open_assists.values())
        open_ids.sort(key=lambda aid: s.assists[aid].requested_at)
        assists = [self._assist_info(aid) for aid in open_ids[: contract.SUMMARY_ASSISTS]]
        summary = {
            "v": contract.CONTRACT_VERSION,
            "office": cfg.office.id,
            "seq": s.seq,
            "ts": round(now, 3),
            "day": s.day,
            "services": services,
            "counters": counters,
            "calls": calls,
            "assistance": assists,
            "assistance_open": len(open_ids),
            **({"alerts": list(self.alerts.values())} if self.alerts else {}),
            **({"alarms": {k: v[:200] for k, v in self.alarms.items()}} if self.alarms else {}),
        }
        data = contract.encode(summary)
        if len(data) > contract.STATE_BOUND_BYTES:
            _cut_reasons(summary)
            data = contract.encode(summary)
        return summary, data

    def _new_eta(self, fc: Forecast, sid: str) -> float:
        """A ticket drawn now: behind the fresh tickets and the open reservations that can still come."""
        ahead = self._fresh_n.get(sid, 0)
        if self.state.open_reservations:
            ahead += self.reserved_ahead(sid, self.clock())
        base = fc.new_ticket_eta(sid, ahead)
        return base if base == float("inf") else max(base - (self.clock() - fc.now), 0.0)

    def counter_detail(self, cid: str) -> dict[str, Any]:
        """The retained detail of one counter (topic ``counter/<id>``): what its staff page shows."""
        s = self.state
        cs = s.counters.get(cid)
        cur = s.tickets.get(cs.current) if cs and cs.current else None
        return {
            "v": contract.CONTRACT_VERSION,
            "office": self.cfg.office.id,
            "counter": cid,
            "seq": s.seq,
            "ts": round(self.clock(), 3),
            "state": cs.state if cs else "closed",
            "reason": cs.pause_reason if cs else "",
            "since": cs.since if cs else 0.0,
            "served": cs.served if cs else 0,
            "serving": {
                "ticket": cur.number,
                "ticket_id": cur.id,
                "service": cur.service,
                "called_at": cur.called_at,
                "recalls": cur.recalls,
                "reason": cur.reason,
                "lang": cur.lang,
                "priority": cur.priority,
                "appointment": cur.appointment,
            }
            if cur
            else None,
        }

    def queue_page(self, sid: str) -> dict[str, Any]:
        """The retained ticket list of one service (topic ``queue/<service>``) for staff UIs: the first
        ``QUEUE_PAGE`` tickets in the expected call order, the total, the parked tickets, and the last
        ``QUEUE_NO_SHOW`` marked not appeared that staff may still call
        (``controller.no_show_return_min``)."""
        s = self.state
        fc = self.forecast()
        pool = s.pool
        limit = contract.QUEUE_PAGE
        lists = [pool.appointment.get(sid), pool.priority.get(sid), pool.normal.get(sid)]
        heads: list[Ticket] = [t for lst in lists if lst for t in lst.islice(0, limit)]
        heads += [t for lst in pool.targeted.values() for t in lst if t.service == sid][:limit]
        etas = {t.id: self.eta_s(t) for t in heads}
        heads.sort(key=lambda t: (etas[t.id], t.issued_at, t.number))
        parked = [t for t in s.parked.values() if t.service == sid]
        del fc
        no_shows = []  # newest first, within the window in which staff may call them again
        since = self.clock() - self.cfg.controller.no_show_return_min * 60
        if self.cfg.controller.no_show_return_min:
            for t in s.recent_no_shows(sid):
                if len(no_shows) >= contract.QUEUE_NO_SHOW or (t.finished_at or 0.0) < since:
                    break
                no_shows.append({"ticket": t.number, "id": t.id, "at": t.finished_at})
        return {
            "v": contract.CONTRACT_VERSION,
            "office": self.cfg.office.id,
            "service": sid,
            "seq": s.seq,
            "ts": round(self.clock(), 3),
            "total": s.n_waiting(sid),
            "tickets": [
                {
                    "ticket": t.number,
                    "id": t.id,
                    "since": t.issued_at,
                    "priority": t.priority,
                    "appointment": t.appointment,
                    "to_counter": t.target_counter,
                    "eta_min": _minutes(etas[t.id]),
                }
                for t in heads[:limit]
            ],
            "parked": [
                {"ticket": t.number, "id": t.id, "since": t.issued_at}
                for t in parked[-contract.QUEUE_PARKED :]
            ],
            "parked_total": len(parked),
            "no_show": no_shows,
        }

    def public(self, snap: dict[str, Any] | None = None) -> dict[str, Any]:
        """The public part (waiting counts and times): bridged to the city broker."""
        snap = snap or self.snapshot()
        names = {svc.id: svc.name.model_dump() for svc in self.cfg.services}
        return {
            "v": snap["v"],
            "office": snap["office"],
            "name": self.cfg.office.name,
            "ts": snap["ts"],
            "services": [
                {
                    "id": svc["id"],
                    "name": names[svc["id"]],
                    **{k: svc[k] for k in ("waiting", "eta_min", "intake_open")},
                    # no walk-ins (the dispensers do not offer it): a wait on a public page would invite them
                    **({} if self.cfg.service(svc["id"]).walk_in else {"walk_in": False}),
                }
                for svc in snap["services"]
            ],
        }

    def event_messages(self, events: list[dict[str, Any]]) -> list[tuple[EventKind, dict[str, Any]]]:
        """Translate log events into the contract's call / assist / intake / ticket events."""
        out: list[tuple[EventKind, dict[str, Any]]] = []
        for e in events:
            kind = e["type"]
            if kind in ("ticket_called", "ticket_recalled"):
                t = self.state.tickets[e["ticket"]]
                c = self.cfg.counter(e["counter"])
                names = self._call_names.get(c.id)
                if names is None:  # pydantic's model_dump is slow; the names never change
                    names = self._call_names[c.id] = (c.name.model_dump(), (c.spoken or c.name).model_dump())
                out.append(
                    (
                        EventKind.CALL,
                        {
                            "seq": e["seq"],
                            "ticket": t.number,
                            "ticket_id": t.id,
                            "service": t.service,
                            "counter": c.id,
                            "counter_name": dict(names[0]),
                            "spoken": dict(names[1]),
                            "zone": c.zone,
                            "recall": kind == "ticket_recalled",
                            "lang": t.lang,
                            "ts": e["ts"],
                        },
                    )
                )
            elif kind.startswith("assist_"):
                a = self.state.assists[e["id"]]
                node = next((n for n in self.cfg.nodes if n.id == a.terminal), None)
                out.append(
                    (
                        EventKind.ASSIST,
                        {
                            "seq": e["seq"],
                            "id": a.id,
                            "terminal": a.terminal,
                            "terminal_name": node.name.model_dump()
                            if node and node.name
                            else {"de": a.terminal},
                            "state": a.state,
                            "level": a.level,
                            "counter": a.counter,
                            "ts": e["ts"],
                            "event": kind.removeprefix("assist_"),
                        },
                    )
                )
            elif kind == "intake_set":
                is_open, reason = self.intake_open(e["service"])
                out.append(
                    (
                        EventKind.INTAKE,
                        {
                            "seq": e["seq"],
                            "service": e["service"],
                            "open": is_open,
                            "reason": reason,
                            "ts": e["ts"],
                        },
                    )
                )
            elif kind.startswith("ticket_"):
                t = self.state.tickets.get(e.get("ticket") or e.get("id", ""))
                if t is not None:
                    out.append(
                        (
                            EventKind.TICKET,
                            {
                                "seq": e["seq"],
                                "ticket": t.number,
                                "ticket_id": t.id,
                                "service": t.service,
                                "state": t.state,
                                "ts": e["ts"],
                            },
                        )
                    )
        return out
