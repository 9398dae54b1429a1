"""Remote tickets (virtual queue): a place reserved by the city website or a 115 agent for a citizen who is
not there yet, checked in at the dispenser with its code, lapsed in the tick when nobody comes.

The rules (docs/city-api.md "Remote tickets"):

- ``ticket.reserve`` answers a code of six characters from an alphabet without look-alikes (no 0/O, 1/I/L),
  the forecast wait of a ticket drawn now, "be there by" (the forecast turn minus ``early_min``, at least
  ``lead_min`` from now) and the deadline (``grace_min`` after "be there by"). No number yet: the number comes
  at check-in, from the same sequence as walk-ins, so a lapsed reservation leaves no gap on the displays.
- The place: checked in by "be there by", the ticket queues from the time of the reservation (the citizen
  waited elsewhere, which is the point); checked in later but before the deadline, it queues from the check-in
  like a walk-in. Walk-ins are protected by a cap of open reservations per service and a rate per hour.
- Not checked in by the deadline, the reservation lapses (event ``reservation_lapsed``, counted in the
  statistics); checking in after that is refused with ``appointment_expired``.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from waitroom.contract import ErrorCode, Role
from waitroom.i18n import LANGUAGES, normalize
from waitroom.model import Reservation, format_number
from waitroom.ops.base import OpError, local_time
from waitroom.ops.tickets import TicketOps

log = logging.getLogger("waitroom.controller")

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out on the phone, typed at the kiosk
CODE_LENGTH = 6
CODE_RE = re.compile(f"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")


def normalize_code(code: Any) -> str | None:
    """A reservation code from what was typed or scanned (case, spaces and dashes do not matter)."""
    if not isinstance(code, str):
        return None
    text = code.strip().replace("-", "").replace(" ", "").upper()
    return text if CODE_RE.match(text) else None


class RemoteOps(TicketOps):
    def _new_reservation_code(self) -> str:
        taken = self.state.reservations.keys() | self.state.appointments.keys()
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in taken:
                return code

    def reservation_eta_s(self, sid: str) -> float:
        """Expected seconds until a ticket drawn now is called, counting the open reservations of the service
        as tickets before it (they hold earlier places)."""
        fc = self.forecast()
        ahead = self._fresh_n.get(sid, 0) + self.reserved_ahead(sid, self.clock(), inclusive=True)
        base = fc.new_ticket_eta(sid, ahead)
        return base if base == float("inf") else max(base - (self.clock() - fc.now), 0.0)

    def open_reservations(self, sid: str) -> int:
        return len(self.state.open_reservations.get(sid, ()))

    def reserved_ahead(self, sid: str, since: float, *, inclusive: bool = False) -> int:
        """Open reservations of ``sid`` that will queue before a ticket drawn at ``since``: reserved before
        it (``inclusive``: or at the same time, for another reservation) and still able to check in on time
        (a later check-in queues from the check-in). A checked-in reservation queues by its reservation
        time and then its number, which it gets at check-in: behind a ticket drawn in the same second.
        At most ``remote_tickets.max_open_per_service``: no scan of the day."""
        now = self.clock()
        return sum(
            1
            for r in self.state.open_reservations.get(sid, {}).values()
            if (r.reserved_at <= since if inclusive else r.reserved_at < since) and r.arrive_by >= now
        )

    def reservation_info(self, r: Reservation) -> dict[str, Any]:
        t = self.state.tickets.get(r.ticket) if r.ticket else None
        return {
            "code": r.code,
            "service": r.service,
            "state": r.state,
            "number": t.number if t else None,
            "ticket_id": t.id if t else None,
            "ticket_state": t.state if t else None,
            "reserved_at": r.reserved_at,
            "arrive_by": r.arrive_by,
            "arrive_by_local": local_time(self.cfg, r.arrive_by),
            "expires_at": r.expires_at,
            "expires_local": local_time(self.cfg, r.expires_at),
            "lang": r.lang,
            "priority": r.priority,
        }

    def op_ticket_reserve(
        self, node_id: str, role: Role, service: Any, lang: Any = "de", priority: Any = False
    ) -> dict[str, Any]:
        rules = self.cfg.remote_tickets
        if not rules.enabled:
            raise OpError(ErrorCode.FORBIDDEN, "this office takes no remote tickets (remote_tickets.enabled)")
        sid = self._service(service)
        code = normalize(lang) if isinstance(lang, str) else None
        if code is None:
            raise OpError(ErrorCode.BAD_REQUEST, f"lang must be one of {', '.join(LANGUAGES)}")
        prio = self._bool(priority, "priority")
        self._office_open()
        is_open, reason = self.intake_open(sid)
        if not is_open or not self.cfg.service(sid).walk_in:
            raise OpError(ErrorCode.INTAKE_STOPPED, reason or f"{sid} takes no more tickets today")
        now = self.clock()
        mine = [r for r in self.state.reservations.values() if r.service == sid]
        if sum(1 for r in mine if r.state == "reserved") >= rules.max_open_per_service:
            raise OpError(
                ErrorCode.RESERVATIONS_FULL,
                f"{sid} holds {rules.max_open_per_service} open remote tickets already; come as a walk-in",
            )
        if sum(1 for r in mine if r.reserved_at > now - 3600) >= rules.per_hour:
            raise OpError(
                ErrorCode.RATE_LIMITED, f"{sid} took {rules.per_hour} remote tickets in the last hour; retry"
            )
        eta = self.reservation_eta_s(sid)
        lead = rules.lead_min * 60.0
        arrive_by = now + (lead if eta == float("inf") else max(eta - rules.early_min * 60.0, lead))
        arrive_by = float(int(arrive_by // 60 * 60))  # a whole minute: "bis etwa 10:40 Uhr"
        hours = self.cfg.office.opening(now)
        assert hours is not None  # _office_open
        if arrive_by > hours[1]:
            raise OpError(
                ErrorCode.OFFICE_CLOSED,
                f"the office closes at {local_time(self.cfg, hours[1])}, before a remote ticket's turn today",
            )
        expires_at = min(arrive_by + rules.grace_min * 60.0, hours[1])
        rcode = self._new_reservation_code()
        self._emit(
            "reservation_made",
            code=rcode,
            service=sid,
            arrive_by=arrive_by,
            expires_at=expires_at,
            node=node_id,
            **({"lang": code} if code != "de" else {}),
            **({"priority": True} if prio else {}),
        )
        info = self.reservation_info(self.state.reservations[rcode])
        info["eta_min"] = None if eta == float("inf") else round(eta / 60)
        return {"reservation": info}

    def op_ticket_reservation(self, node_id: str, role: Role, code: Any) -> dict[str, Any]:
        r = self.state.reservations.get(normalize_code(code) or "")
        if r is None:
            raise OpError(ErrorCode.UNKNOWN_RESERVATION, "no remote ticket with that code today")
        info = self.reservation_info(r)
        if r.ticket:
            t = self.state.tickets[r.ticket]
            info["ticket"] = self.ticket_info(t)
        return {"reservation": info}

    def checkin_reservation(self, node_id: str, code: Any) -> dict[str, Any] | None:
        """``appointment.checkin`` with a reservation code: the ticket, or None when ``code`` is none."""
        r = self.state.reservations.get(normalize_code(code) or "")
        if r is None:
            return None
        self._office_open()
        if r.ticket is not None:  # checked in before (a lost reply, a second scan): the same ticket
            return {"ticket": self.ticket_info(self.state.tickets[r.ticket])}
        now = self.clock()
        if r.state == "lapsed" or now > r.expires_at:
            raise OpError(ErrorCode.APPOINTMENT_EXPIRED, "the remote ticket has lapsed: draw a new ticket")
        prefix = self.cfg.service(r.service).prefix
        n = self.state.next_number.get(prefix, self.cfg.office.ticket_start)
        if n >= self.cfg.office.offline_numbers_from:
            raise OpError(ErrorCode.NUMBERS_USED_UP, f"ticket numbers for {prefix} are used up today")
        on_time = now <= r.arrive_by
        e = self._emit(
            "ticket_issued",
            id=self.new_id(),
            number=format_number(prefix, n),
            service=r.service,
            priority=r.priority,
            appointment=None,
            node=node_id,
            reservation_code=r.code,
            **({"arrival": r.reserved_at} if on_time else {}),
            **({"lang": r.lang} if r.lang != "de" else {}),
        )
        t = self.state.tickets[e["id"]]
        log.info("remote ticket %s checked in %s as %s", r.code, "on time" if on_time else "late", t.number)
        return {"ticket": {**self.ticket_info(t), "reservation": r.code}}

    def _lapse_reservations(self, now: float) -> None:
        """Tick: reservations not checked in by their deadline lapse."""
        for r in list(self.state.reservations.values()):
            if r.state == "reserved" and now > r.expires_at:
                log.info("remote ticket %s for %s lapsed (not checked in)", r.code, r.service)
                self._emit("reservation_lapsed", code=r.code, service=r.service)
