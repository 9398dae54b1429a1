"""What the call display shows, as plain data: built from the retained office state and the call events.

``Board`` is the display's state machine without pygame or MQTT. The node feeds it snapshots, call events and
connection changes (from MQTT threads); the renderer reads an immutable ``Screen`` whose ``version`` changes
only when something visible changed, so text is rendered once per change and not every frame.

The board and the announcements agree (a burst of calls at opening: every counter presses "next" at once, and
the calls are announced one after the other, several seconds each). The node tells the board which calls wait
for their announcement (``queued``), whose gong starts (``announcing``) and whose announcement is over
(``announced``). The large panel shows the call being announced (between two announcements the one before),
else the newest call. A call is never dropped from the screen while it waits for its announcement, nor within
``keep_s`` after its announcement (or, on a quiet display, after it came), unless its counter has called
another ticket since (that call is not announced either). The list then has more rows than ``recent`` (the
renderer makes them lower, and adds a column when they would become too small to read), and the rows of calls
still waiting for their announcement are highlighted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from waitroom import i18n

log = logging.getLogger(__name__)


def texts(value: Any, fallback: dict[str, str] | None = None) -> dict[str, str]:
    """A ``{lang: text}`` map from a message, or ``fallback`` when it is not one (a text map of the wrong type
    from a third-party publisher must not reach the renderer or the announcer)."""
    if isinstance(value, dict):
        good = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and v}
        if good:
            return good
    return dict(fallback or {})


def language(value: Any) -> str | None:
    """The ticket's language from a message: a known code, else None (German)."""
    return i18n.normalize(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class CallView:
    ticket: str
    counter: str
    name: dict[str, str]  # counter display name {de, en}
    spoken: dict[str, str]  # counter spoken name {de, en}
    ts: float
    recall: bool = False
    seq: int | None = None
    lang: str | None = None  # the ticket's language (None: not given, i.e. German)

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.ticket, self.counter, round(self.ts, 3))


@dataclass(frozen=True)
class WaitView:
    service: str
    name: dict[str, str]
    prefix: str
    waiting: int
    eta_min: int | None
    intake_open: bool = True


@dataclass(frozen=True)
class Screen:
    version: int = 0
    office: str = ""
    # the large panel's call first (being announced, else the newest), then the list, newest first: the
    # ``recent`` newest and every call kept on the screen (waiting for its announcement, or just announced)
    calls: tuple[CallView, ...] = ()
    pending: frozenset[tuple[str, str, float]] = frozenset()  # keys of listed calls waiting to be announced
    waits: tuple[WaitView, ...] = ()
    offline: bool = True
    offline_reason: str = "starting"
    has_state: bool = False


@dataclass
class Board:
    """Thread-safe display state. ``zone``: only counters of this zone; ``recent``: calls listed below."""

    zone: str | None = None
    recent: int = 6
    blink_s: float = 10.0
    keep_s: float = 20.0  # a call stays on the screen at least this long after its announcement
    office_name: str = ""
    stale_after_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _screen: Screen = field(default_factory=Screen)
    _snap_calls: list[CallView] = field(default_factory=list)
    _live: list[CallView] = field(default_factory=list)  # call events not yet in a snapshot
    _counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seen_seq: set[int] = field(default_factory=set)
    _snap_seq: int = -1
    _day: str = ""
    _link: bool = False
    _controller: bool | None = None  # None: not heard yet
    _state_at: float | None = None
    _blink_key: tuple[str, str, float] | None = None
    _blink_until: float = 0.0
    _pending: dict[tuple[str, str, float], None] = field(default_factory=dict)  # waiting, in announcing order
    _current: tuple[str, str, float] | None = None  # the call announced now or just before
    _sounding: bool = False  # the current call's announcement is playing
    _kept: dict[tuple[str, str, float], float] = field(default_factory=dict)  # key -> shown at least until

    def __post_init__(self) -> None:
        self._screen = Screen(office=self.office_name)

    # -- inputs
    def apply_state(self, snap: dict[str, Any]) -> tuple[CallView, ...]:
        """A state snapshot; returns its calls for this display's zone (newest first)."""
        with self._lock:
            self._state_at = self.clock()
            self._counters = {c["id"]: c for c in snap.get("counters", []) if isinstance(c, dict)}
            day, seq = str(snap.get("day", "")), int(snap.get("seq", 0))
            held = [c for c in (*self._live, *self._snap_calls) if self._held(c.key)]
            if self._day and day != self._day:  # a new day (not the first state since the start)
                self._live.clear()
                self._seen_seq.clear()
                self._pending.clear()
                self._kept.clear()
                self._current, self._sounding, held = None, False, []
            self._day, self._snap_seq = day, seq
            calls = []
            for c in snap.get("calls", []):
                counter = self._counters.get(c.get("counter"), {})
                if not self._in_zone(counter):
                    continue
                name = texts(counter.get("name"), {"de": str(c["counter"])})
                calls.append(
                    CallView(
                        ticket=str(c["ticket"]),
                        counter=str(c["counter"]),
                        name=name,
                        spoken=texts(counter.get("spoken"), name),
                        ts=float(c.get("ts", 0)),
                        recall=bool(c.get("recall")),
                        lang=language(c.get("lang")),
                    )
                )
            self._snap_calls = calls
            # a call the snapshot no longer holds (it keeps the office's newest 10) stays while it is kept
            self._live = [c for c in self._live if c.seq is not None and c.seq > seq]
            self._live += [c for c in held if c not in self._live]
            waits = tuple(
                WaitView(
                    service=s["id"],
                    name=texts(s.get("name"), {"de": str(s["id"])}),
                    prefix=s.get("prefix", ""),
                    waiting=int(s.get("waiting", 0)),
                    eta_min=s.get("eta_min"),
                    intake_open=bool(s.get("intake_open", True)),
                )
                for s in snap.get("services", [])
                if self._serves_zone(s["id"])
            )
            self._publish(office=str(snap.get("name") or self.office_name), waits=waits, has_state=True)
            return tuple(calls)

    def apply_call(self, event: dict[str, Any]) -> CallView | None:
        """A live call event; returns the call when it is new and for this display's zone (announce it)."""
        with self._lock:
            seq = event.get("seq")
            if isinstance(seq, int):
                if seq in self._seen_seq:
                    return None  # QoS 1 may deliver twice
                self._seen_seq.add(seq)
            zone = event.get("zone")
            if self.zone is not None and zone != self.zone:
                return None
            name = texts(event.get("counter_name"), {"de": str(event["counter"])})
            call = CallView(
                ticket=str(event["ticket"]),
                counter=str(event["counter"]),
                name=name,
                spoken=texts(event.get("spoken"), name),
                ts=float(event.get("ts", 0)),
                recall=bool(event.get("recall")),
                seq=seq if isinstance(seq, int) else None,
                lang=language(event.get("lang")),
            )
            if any(c.key == call.key for c in self._snap_calls):
                return None  # already in the snapshot (a late duplicate)
            self._live.append(call)
            self._kept[call.key] = self.clock() + self.keep_s
            self._publish()
            if self._screen.calls[0].key == call.key:  # in the large panel now (nothing else to announce)
                self._blink_key, self._blink_until = call.key, self.clock() + self.blink_s
            return call

    def queued(self, key: tuple[str, str, float]) -> None:
        """The call waits for its announcement: it stays on the screen, highlighted, until it is over."""
        with self._lock:
            self._pending[key] = None
            self._publish()

    def announcing(self, key: tuple[str, str, float]) -> int:
        """The call's gong starts: it is shown in the large panel and blinks. Returns the screen's version."""
        with self._lock:
            self._pending.pop(key, None)
            self._current, self._sounding = key, True
            self._blink_key, self._blink_until = key, self.clock() + self.blink_s
            self._publish()
            return self._screen.version

    def announced(self, key: tuple[str, str, float], *, played: bool = True) -> None:
        """The call's announcement is over (``played``) or was skipped: kept ``keep_s`` longer when played."""
        with self._lock:
            self._pending.pop(key, None)
            if played:
                self._kept[key] = self.clock() + self.keep_s
            if key == self._current:
                self._sounding = False
                if not self._pending:
                    self._current = None  # nothing more to announce: the newest call takes the panel
            self._publish()

    def flash(self, key: tuple[str, str, float]) -> None:
        """Let a call blink as a live one does (a call announced late); only the newest call blinks."""
        with self._lock:
            self._blink_key, self._blink_until = key, self.clock() + self.blink_s
            self._publish()

    def set_link(self, online: bool) -> None:
        with self._lock:
            if online != self._link:
                self._link = online
                self._publish()

    def set_controller(self, online: bool) -> None:
        with self._lock:
            if online != self._controller:
                self._controller = online
                self._publish()

    def check_stale(self) -> None:
        """Called by the frame loop once a second: a state older than ``stale_after_s`` counts as offline."""
        with self._lock:
            now = self.clock()
            expired = [k for k, until in self._kept.items() if until <= now]
            for k in expired:  # the list may go back to its ``recent`` rows
                del self._kept[k]
            reason = self._offline_reason()
            if reason != self._screen.offline_reason or expired:
                self._publish()

    # -- outputs
    def screen(self) -> Screen:
        return self._screen

    def blinking(self) -> bool:
        s = self._screen
        return bool(s.calls) and s.calls[0].key == self._blink_key and self.clock() < self._blink_until

    # -- internals (under the lock)
    def _in_zone(self, counter: dict[str, Any]) -> bool:
        return self.zone is None or counter.get("zone") == self.zone

    def _serves_zone(self, service: str) -> bool:
        if self.zone is None or not self._counters:
            return True
        return any(service in c.get("services", []) for c in self._counters.values() if self._in_zone(c))

    def _offline_reason(self) -> str:
        if not self._link:
            return "broker"
        if self._controller is False:
            return "controller"
        if self._state_at is None:
            return "no_state"
        if (
            self.stale_after_s
            and self._state_at is not None
            and self.clock() - self._state_at > self.stale_after_s
        ):
            return "stale"
        return ""

    def _held(self, key: tuple[str, str, float]) -> bool:
        """Whether a call must stay on the screen: waiting for (or in) its announcement, or kept."""
        return key in self._pending or key == self._current or self._kept.get(key, 0.0) > self.clock()

    def _hero(self, merged: dict[tuple[str, str, float], CallView]) -> CallView | None:
        """The large panel's call: the one announced now (or just before, while more wait), else the next to
        be announced, else the newest."""
        if self._current in merged and (self._sounding or self._pending):
            return merged[self._current]
        waiting = [merged[k] for k in self._pending if k in merged]
        if waiting and not self._sounding:
            return waiting[0]
        return max(merged.values(), key=lambda c: c.ts, default=None)

    def _publish(self, **changes: Any) -> None:
        merged: dict[tuple[str, str, float], CallView] = {}
        for c in [*self._live, *self._snap_calls]:
            merged.setdefault(c.key, c)
        hero = self._hero(merged)
        # one row per ticket and counter (a recall and its call are one row; not a row for the panel's call)
        rows: dict[tuple[str, str], CallView] = {}
        held: set[tuple[str, str]] = set()
        pending: set[tuple[str, str]] = set()
        serving: dict[str, str] = {}  # counter -> the ticket of its newest call
        for c in sorted(merged.values(), key=lambda c: c.ts, reverse=True):
            where = (c.ticket, c.counter)
            serving.setdefault(c.counter, c.ticket)
            if hero is not None and where == (hero.ticket, hero.counter):
                continue
            rows.setdefault(where, c)
            if serving[c.counter] != c.ticket and c.key != self._current:
                continue  # its counter has called another ticket since: not held (nor announced)
            if self._held(c.key):
                held.add(where)
            if c.key in self._pending:
                pending.add(where)
        # every held call, and the newest others up to ``recent`` rows
        others = [where for where in rows if where not in held][: max(0, self.recent - len(held))]
        chosen = held | set(others)
        listed = [c for where, c in rows.items() if where in chosen]
        calls = (hero, *listed) if hero is not None else ()
        reason = self._offline_reason()
        self._screen = replace(
            self._screen,
            **changes,
            calls=calls,
            pending=frozenset(c.key for c in listed if (c.ticket, c.counter) in pending),
            offline=bool(reason),
            offline_reason=reason,
            version=self._screen.version + 1,
        )
