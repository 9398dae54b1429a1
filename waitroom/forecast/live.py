"""The forecast as the controller holds it: feed it every event it records, ask it for a new ticket's wait.

    fc = LiveForecast(services=("melde", "pass"), tz="Europe/Berlin", store=ModelStore(data_dir / "forecast"))
    fc.observe(event)                       # each event the controller commits (dicts of waitroom.store)
    point, lo, hi = fc.predict("pass", priority=False, now=time.time())

Training runs elsewhere (``Trainer``); ``set_model`` swaps the model in one assignment, so a prediction never
sees half of it. Without a model the ``Fallback`` answers.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from waitroom.forecast.events import StoreEventAdapter, apply
from waitroom.forecast.features import QueueState
from waitroom.forecast.jobs import ModelStore
from waitroom.forecast.model import Fallback, Model

log = logging.getLogger(__name__)


class LiveForecast:
    def __init__(self, services: tuple[str, ...], tz: Any = "Europe/Berlin", store: ModelStore | None = None):
        self.services = tuple(services)
        self.adapter = StoreEventAdapter(tz)
        self.state = QueueState(self.services)
        self.day: str | None = None
        self.model: Model | Fallback = Fallback()
        if store is not None:
            self.set_model(store.current())

    @property
    def trained(self) -> bool:
        """True with a model trained on the office's own log (not the fallback)."""
        return isinstance(self.model, Model)

    def set_model(self, model: Model | None) -> None:
        self.model = model if model is not None else Fallback()
        log.info("forecast: using the %s", "trained model" if model is not None else "fallback")

    def _day(self, ts: float) -> float:
        day, wd, t = self.adapter.local(ts)
        if day != self.day:
            self.day = day
            self.state.new_day(wd)
        return t

    def observe(self, event: dict[str, Any]) -> None:
        """One controller event (O(1) amortised)."""
        for e in self.adapter.convert(event):
            if e.day != self.day:
                self._day(event.get("arrival", event["ts"]))
            apply(self.state, e)

    def features(self, service: str, priority: bool, now: float) -> list[float]:
        t = self._day(now)
        services = self.model.services if isinstance(self.model, Model) else None
        return self.state.features(t, service, 2 if priority else 1, services)

    def predict(self, service: str, priority: bool = False, *, now: float) -> tuple[float, float, float]:
        """(expected seconds until called, 10 % and 90 % bounds) for a ``service`` ticket issued ``now``."""
        return self.model.predict(self.features(service, priority, now))


def minutes_range(lo_s: float, hi_s: float, step: int = 5) -> tuple[int, int]:
    """An interval in whole minutes for a ticket or a page ("ca. 10–20 Min."): the lower bound rounded down,
    the upper up, to ``step`` minutes, at least ``step`` apart."""
    lo = int(max(0.0, lo_s) // 60) // step * step
    hi = -(-math.ceil(max(0.0, hi_s) / 60) // step) * step
    return lo, max(hi, lo + step)
