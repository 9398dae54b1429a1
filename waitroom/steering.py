"""Steering (Kundensteuerung): which waiting ticket a counter calls next.

Selection is a pure function of the queue state, the configuration and the time, so the controller, the
simulator and the tests share the very same code. ``Selector`` is the one replaceable piece: the controller
takes any object with this ``select`` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from waitroom.config import Config
from waitroom.model import OfficeState, Ticket


@dataclass(frozen=True)
class Decision:
    ticket: str  # ticket id
    reason: str  # human-readable explanation shown to staff and recorded in the event log


class Selector(Protocol):
    def select(self, state: OfficeState, counter: str, cfg: Config, now: float) -> Decision | None: ...

    def order(self, state: OfficeState, cfg: Config, now: float) -> list[Ticket]:
        """All waiting tickets in the order they are expected to be called (for waiting-time prediction)."""
        ...


def eligible(t: Ticket, counter: str, services: frozenset[str] | set[str] | list[str]) -> bool:
    """A counter may call a waiting ticket of a service it serves, or one transferred to it by name."""
    if t.state != "waiting":
        return False
    if t.target_counter is not None:
        return t.target_counter == counter
    return t.service in services


class PriorityThenFifo:
    """First version: only the counter's services; priority tickets first; otherwise the longest waiting."""

    def key(self, t: Ticket) -> tuple[bool, float, str]:
        return (not t.priority, t.issued_at, t.number)

    def select(self, state: OfficeState, counter: str, cfg: Config, now: float) -> Decision | None:
        services = cfg.counter(counter).services
        candidates = [t for t in state.tickets.values() if eligible(t, counter, services)]
        if not candidates:
            return None
        best = min(candidates, key=self.key)
        if best.target_counter:
            why = "transferred to this counter"
        elif best.priority:
            why = "priority ticket"
        else:
            why = f"longest waiting ({round((now - best.issued_at) / 60)} min)"
        return Decision(best.id, why)

    def order(self, state: OfficeState, cfg: Config, now: float) -> list[Ticket]:
        return sorted(state.waiting(), key=self.key)
