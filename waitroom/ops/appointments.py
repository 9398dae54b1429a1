"""Operations on appointments: book and check in."""

from __future__ import annotations

from typing import Any

from waitroom.contract import ErrorCode, Role
from waitroom.ops.base import OpError
from waitroom.ops.tickets import TicketOps

MAX_BOOKING_AHEAD_S = 400 * 86400  # how far ahead a booking may lie


class AppointmentOps(TicketOps):
    def op_appointment_book(
        self, node_id: str, role: Role, code: Any, service: Any, slot: Any
    ) -> dict[str, Any]:
        sid = self._service(service)
        if not isinstance(code, str) or not 3 <= len(code) <= 32 or not code.isalnum():
            raise OpError(ErrorCode.BAD_REQUEST, "code must be 3-32 letters or digits")
        now = self.clock()
        if (
            not isinstance(slot, int | float)
            or isinstance(slot, bool)
            or not now - 86400 <= slot <= now + MAX_BOOKING_AHEAD_S
        ):
            raise OpError(
                ErrorCode.BAD_REQUEST, "slot must be epoch seconds from yesterday to a year and a bit ahead"
            )
        self._emit("appointment_booked", code=code.upper(), service=sid, slot=float(slot))
        return {"appointment": {"code": code.upper(), "service": sid, "slot": float(slot)}}

    def op_appointment_checkin(self, node_id: str, role: Role, code: Any) -> dict[str, Any]:
        remote = self.checkin_reservation(node_id, code)  # type: ignore[attr-defined]  # ops/remote.py
        if remote is not None:  # a remote ticket's reservation code
            return remote
        if not isinstance(code, str):
            raise OpError(ErrorCode.BAD_REQUEST, "code must be a string")
        a = self.state.appointments.get(code.strip().upper())
        if a is None:
            raise OpError(ErrorCode.UNKNOWN_APPOINTMENT, "unknown booking code")
        self._office_open()
        if a.ticket is not None:
            return {"ticket": self.ticket_info(self.state.tickets[a.ticket])}
        now = self.clock()
        rules = self.cfg.steering.appointments
        if self.cfg.office.today(a.slot) != self.state.day:
            raise OpError(ErrorCode.APPOINTMENT_EXPIRED, "the appointment is not today")
        if now > a.slot + rules.late_min * 60:
            if rules.late_arrival == "refuse" or not self.intake_open(a.service)[0]:
                raise OpError(ErrorCode.APPOINTMENT_EXPIRED, "the appointment time has passed")
            # steering rule: a late arrival becomes a walk-in (queued from now, without the appointment)
            t = self._issue(node_id, a.service, code=a.code)
            return {"ticket": self.ticket_info(t)}
        t = self._issue(node_id, a.service, appointment=a.slot, code=a.code)
        return {"ticket": self.ticket_info(t)}
