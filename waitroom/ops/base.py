"""What every group of operations shares: the refusal, the look-ups that refuse, and what the office gives."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from waitroom.config import Config
from waitroom.contract import ErrorCode, Role
from waitroom.model import OfficeState, Ticket

if TYPE_CHECKING:
    from waitroom.predict import Forecast
    from waitroom.steering import Selector


NUMBER_SHAPE = re.compile(r"[A-Za-z]{0,3}[0-9]{1,6}")  # a ticket number as typed: letters and digits


class OpError(Exception):
    """An operation was refused; becomes an error reply with a stable code."""

    def __init__(
        self, code: ErrorCode, message: str, *, keep_effects: bool = False, data: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.keep_effects = keep_effects  # the events emitted before the refusal still count
        self.data = data or {}  # the details as fields (ids, numbers, states): the reply's error.data


def local_time(cfg: Config, ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, cfg.office.tz).strftime("%H:%M")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class OpsBase:
    """The part of ``Office`` the operations use (``waitroom.controller.Office`` provides it)."""

    cfg: Config
    state: OfficeState
    clock: Callable[[], float]
    selector: Selector
    new_id: Callable[[], str]
    _forecast_seq: int

    # provided by Office (annotations only, so that the real methods are found)
    _emit: Callable[..., dict[str, Any]]
    forecast: Callable[[], Forecast]
    refresh_forecast: Callable[[], Forecast]
    eta_s: Callable[[Ticket], float]
    learned_eta: Callable[[Ticket], tuple[float, float, float] | None]
    intake_open: Callable[[str], tuple[bool, str]]

    # -- look-ups that refuse with a stable code
    def _service(self, sid: Any) -> str:
        if not isinstance(sid, str) or sid not in self.cfg.service_ids:
            raise OpError(
                ErrorCode.UNKNOWN_SERVICE,
                f"unknown service {sid!r}; known: {', '.join(sorted(self.cfg.service_ids))}",
                data={"service": sid} if isinstance(sid, str) else None,
            )
        return sid

    def _counter(self, node_id: str, role: Role, cid: Any) -> str:
        if not isinstance(cid, str) or cid not in self.cfg.counter_ids:
            raise OpError(
                ErrorCode.UNKNOWN_COUNTER,
                f"unknown counter {cid!r}",
                data={"counter": cid} if isinstance(cid, str) else None,
            )
        if role is Role.COUNTER and self.cfg.node(node_id).counter != cid:
            raise OpError(
                ErrorCode.FORBIDDEN,
                f"node {node_id} operates counter {self.cfg.node(node_id).counter}, not {cid}",
            )
        return cid

    def _ticket(self, ref: Any, states: tuple[str, ...]) -> Ticket:
        t = self.state.ticket(ref) if isinstance(ref, str) else None
        if t is None or t.state not in states:
            raise OpError(
                ErrorCode.UNKNOWN_TICKET,
                f"no {'/'.join(states)} ticket {ref!r} today",
                # as a field only when it looks like a number ("A12"): what was typed may be anything
                data={"ticket": ref} if isinstance(ref, str) and NUMBER_SHAPE.fullmatch(ref) else None,
            )
        return t

    def _counter_open(self, cid: str) -> None:
        c = self.state.counters[cid]
        if c.state != "open":
            raise OpError(
                ErrorCode.COUNTER_CLOSED,
                f"counter {cid} is {c.state}; open it (counter.open) before calling",
                data={"counter": cid, "state": c.state},
            )

    def _current(self, cid: str) -> Ticket:
        c = self.state.counters[cid]
        if c.current is None:
            raise OpError(ErrorCode.NOT_SERVING, f"counter {cid} has no called ticket", data={"counter": cid})
        return self.state.tickets[c.current]

    @staticmethod
    def _reason(v: Any, limit: int) -> str:
        """A free-text reason: a string (cut to ``limit`` characters); anything else is refused, not shown on
        the displays as the text of a number, a list or an object."""
        if v is None:
            return ""
        if not isinstance(v, str):
            raise OpError(ErrorCode.BAD_REQUEST, "reason must be a text")
        return v[:limit]

    @staticmethod
    def _bool(v: Any, name: str) -> bool:
        if not isinstance(v, bool):
            raise OpError(ErrorCode.BAD_REQUEST, f"{name} must be true or false")
        return v
