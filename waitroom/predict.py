"""Waiting-time prediction: one predictor for tickets, displays, the public page and the intake stop.

First version (queue-length estimator adapted to skills): a waiting ticket's wait is the work ahead of it in
the steering order, divided among the open counters that can serve it.
"""

from __future__ import annotations

from dataclasses import dataclass

from waitroom.config import Config
from waitroom.model import OfficeState
from waitroom.steering import Selector


@dataclass(frozen=True)
class Forecast:
    per_ticket: dict[str, float]  # ticket id -> expected seconds until called
    per_service: dict[str, float]  # service id -> expected seconds for a ticket issued now
    ahead: dict[str, int]  # service id -> tickets ahead of a new one


class QueueLengthPredictor:
    """(n + 1) / (s · μ) walked through the steering order, per service, with skills."""

    def mean_service_s(self, cfg: Config, service: str) -> float:
        return cfg.service(service).mean_service_min * 60.0

    def forecast(self, state: OfficeState, cfg: Config, selector: Selector, now: float) -> Forecast:
        open_counters = [c for c in cfg.counters if state.counters.get(c.id) and
                         state.counters[c.id].state == "open"]
        servers = {s.id: sum(1 for c in open_counters if s.id in c.services) for s in cfg.services}
        order = selector.order(state, cfg, now)
        per_ticket: dict[str, float] = {}
        ahead_work: dict[str, float] = {s.id: 0.0 for s in cfg.services}
        ahead_n: dict[str, int] = {s.id: 0 for s in cfg.services}
        for t in order:
            n = max(servers.get(t.service, 0), 1)
            per_ticket[t.id] = ahead_work[t.service] / n
            # A ticket occupies the capacity of every service that shares a counter with its own.
            for s in cfg.services:
                if any(t.service in c.services and s.id in c.services for c in cfg.counters):
                    ahead_work[s.id] += self.mean_service_s(cfg, t.service)
                    ahead_n[s.id] += 1 if s.id == t.service else 0
        per_service = {}
        for s in cfg.services:
            n = servers[s.id]
            per_service[s.id] = ahead_work[s.id] / n if n else float("inf")
        return Forecast(per_ticket, per_service, ahead_n)
