"""Calls the display did not hear: announced late when they are recent, never twice.

Call events are not retained. A display whose connection dropped for a few seconds (a Wi-Fi blip, a broker
restart) misses the events of that time and sees those calls only in the retained office state: ``calls``
with the controller's time of each call (``ts``) and ``counters[].serving``. ``MissedCalls`` decides which of
them to announce: a call that is recent (``display.announce_missed_s``) and whose ticket its counter still
serves; the others are stale, shown and never announced. Every call, heard live or decided here, is
remembered, so none is announced twice (also not after a reconnect during its announcement). With a
``store`` (``displays.heard.HeardFile``) the calls of the window are remembered across a restart as well: a
display that restarts shows a call it had heard before and does not announce it again, while one it missed
while it was down is announced late as after a lost connection.

A call's age is measured on the controller's clock, not the display's (the two may differ): the display keeps
the controller's time as an offset from its own monotonic clock, taken from the ``ts`` of what it receives.
Every message's ``ts`` is a lower bound of the controller's time when it arrives. Events are never retained,
and a state message after the first one of a connection is a live one: their ``ts`` is the controller's time
at arrival (*fresh*). The first state message after a (re)connect may be the broker's retained copy, and the
controller publishes the state only when something in it changed, so that copy may be hours old (a display
rebooted in the evening gets the state of the last call of the day): its ``ts`` only raises the lower bound.
Until a display has had one fresh message (just after its start), a call that looks recent by that bound is
held, neither announced nor dropped, and decided at the next state message; one that is older than the window
even by the lower bound is stale at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from displays.board import CallView

log = logging.getLogger(__name__)

CallKey = tuple[str, str, float]
KEEP_AFTER_WINDOW_S = 30.0  # a stored call is kept this much longer than the window (messages take time)


class HeardStore(Protocol):
    """Where the heard calls outlive the process (``displays.heard.HeardFile``); never raises."""

    def load(self) -> Iterable[CallKey]: ...

    def save(self, keys: Iterable[CallKey]) -> None: ...


def serving_of(snap: dict[str, Any]) -> dict[str, str | None]:
    """Counter id -> the ticket it serves (``counters[].serving.ticket``), from a state snapshot."""
    out: dict[str, str | None] = {}
    for c in snap.get("counters") or []:
        if isinstance(c, dict) and isinstance(c.get("id"), str):
            serving = c.get("serving")
            ticket = serving.get("ticket") if isinstance(serving, dict) else None
            out[c["id"]] = ticket if isinstance(ticket, str) else None
    return out


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class MissedCalls:
    """Which calls of a state snapshot to announce late. ``window_s``: how old a call may be (0: none);
    ``store``: the calls heard before a restart (read here), and where the recent ones are saved."""

    def __init__(
        self,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 1000,
        store: HeardStore | None = None,
    ):
        self.window_s = window_s
        self.clock = clock
        self.keep = keep  # calls remembered; the state lists at most 10, so far more than it can show again
        self.store = store
        self._lock = threading.Lock()
        self._handled: OrderedDict[CallKey, None] = OrderedDict()
        self._unplayed: set[CallKey] = set()  # handled, queued for the gong, not played yet: not stored
        self._saved: list[CallKey] = []  # what the store was given last
        self._offset: float | None = None  # the controller's time minus clock()
        self.fresh = False  # the offset comes from a live message (not only from a retained state)
        self.announced = 0  # calls announced late
        self.stale = 0  # calls in a state snapshot not announced: too old, or their counter moved on
        self.restored = 0  # calls heard before the start (from the store)
        if store is not None:
            for key in store.load():
                self._remember(key)
            self._saved = list(self._handled)
            self.restored = len(self._handled)

    def observe(self, ts: Any, *, fresh: bool) -> None:
        """The ``ts`` of a message from the controller, as it arrives (``fresh``: a live message)."""
        seconds = _seconds(ts)
        if seconds is None:
            return
        offset = seconds - self.clock()
        with self._lock:
            if fresh:  # the controller's time now (a clock set back on the controller is taken too)
                self._offset, self.fresh = offset, True
            elif self._offset is None or offset > self._offset:
                self._offset = offset

    def controller_now(self) -> float | None:
        """The controller's time now, as far as the display knows it (a lower bound until ``fresh``)."""
        with self._lock:
            return self._now()

    def heard(self, key: CallKey, *, announcing: bool = False) -> None:
        """A call the display took live (from its event): never announced again from a snapshot.
        ``announcing``: it waits for its gong, and is stored (not announced again after a restart) only once
        ``played``; a display that restarts before then announces it from the next snapshot."""
        with self._lock:
            self._remember(key)
            if announcing:
                self._unplayed.add(key)
            self._save()

    def played(self, key: CallKey) -> None:
        """The announcement of a call began (its first sound was played): a restart does not repeat it."""
        with self._lock:
            if key in self._unplayed:
                self._unplayed.discard(key)
                self._save()

    def decide(
        self, calls: Iterable[CallView], serving: dict[str, str | None], *, announcing: bool = False
    ) -> list[CallView]:
        """The calls of a snapshot to announce now, oldest first. They and the stale ones are remembered;
        a call held for want of a fresh time is decided again with the next snapshot. ``announcing``: as in
        ``heard``, the calls to announce are stored once ``played``."""
        now = self.controller_now()
        out: list[CallView] = []
        with self._lock:
            for call in sorted(calls, key=lambda c: c.ts):
                if call.key in self._handled:
                    continue
                age = None if now is None else now - call.ts
                if self.window_s > 0 and serving.get(call.counter) == call.ticket:
                    if age is None or (age <= self.window_s and not self.fresh):
                        continue  # held: the controller's time is not known yet
                    if age <= self.window_s:
                        self._remember(call.key)
                        if announcing:
                            self._unplayed.add(call.key)
                        self.announced += 1
                        out.append(call)
                        log.info(
                            "call %s at %s not heard live (%.0f s ago, display offline): announced now",
                            call.ticket,
                            call.counter,
                            max(age, 0.0),
                        )
                        continue
                self._remember(call.key)
                self.stale += 1
            self._save()
        return out

    def recent(self) -> list[CallKey]:
        """The remembered calls that a restart must not announce again: those of the window (and a little
        more) on the controller's clock; all of them while its time is not known. A call still waiting for
        its gong is not among them."""
        with self._lock:
            return self._recent()

    # -- under the lock
    def _now(self) -> float | None:
        return None if self._offset is None else self.clock() + self._offset

    def _recent(self) -> list[CallKey]:
        now = self._now()
        if now is None:
            return [k for k in self._handled if k not in self._unplayed]
        oldest = now - self.window_s - KEEP_AFTER_WINDOW_S
        return [k for k in self._handled if k[2] >= oldest and k not in self._unplayed]

    def _save(self) -> None:
        """Hand the recent calls to the store when they changed (it writes on its own thread)."""
        if self.store is None:
            return
        keys = self._recent()
        if keys != self._saved:
            self._saved = keys
            self.store.save(keys)

    def _remember(self, key: CallKey) -> None:
        self._handled[key] = None
        self._handled.move_to_end(key)
        while len(self._handled) > self.keep:
            self._unplayed.discard(self._handled.popitem(last=False)[0])
