"""Operations on appointments: book, move, cancel, free slots, look-up and check-in.

The book lives in the state (``OfficeState.appointments``) and is carried from day to day by ``day_started``;
every change is an event (``appointment_booked``, ``appointment_moved``, ``appointment_cancelled``), so it
survives restarts. Each booking is planned on a counter by ``waitroom.appointments.capacity`` (recorded in
the event); ``check_slot`` refuses a slot the staffing, less the walk-in share, cannot serve.
"""

from __future__ import annotations

import bisect
import datetime as dt
import secrets
from typing import Any

from waitroom import appointments as codes
from waitroom import contract
from waitroom.appointments import capacity
from waitroom.appointments.walkins import WalkInProfile
from waitroom.contract import ErrorCode, Role
from waitroom.model import Appointment
from waitroom.ops.base import OpError
from waitroom.ops.counters import CounterOps
from waitroom.ops.tickets import TicketOps

MAX_BOOKING_AHEAD_S = 400 * 86400  # how far ahead a booking may lie


def appointment_info(a: Appointment) -> dict[str, Any]:
    state = "cancelled" if a.cancelled else ("checked_in" if a.ticket else "booked")
    out: dict[str, Any] = {"code": a.code, "service": a.service, "slot": a.slot, "state": state}
    if a.note:
        out["note"] = a.note
    return out


class AppointmentOps(TicketOps, CounterOps):
    # the walk-in work expected per capacity window (learned off the command path; None: the share alone)
    walk_ins: WalkInProfile | None = None

    def set_walk_ins(self, profile: WalkInProfile | None) -> None:
        """Hand over a newly learned profile (any thread: the engine reads the attribute once per plan)."""
        self.walk_ins = profile

    # -- validation that refuses with a stable code
    def _code(self, code: Any) -> str:
        if not isinstance(code, str):
            raise OpError(ErrorCode.BAD_REQUEST, "code must be a string")
        norm = codes.normalize(code)
        if not 3 <= len(norm) <= 32 or not norm.isalnum() or not norm.isascii():
            raise OpError(ErrorCode.BAD_REQUEST, "code must be 3-32 letters or digits")
        return norm

    def _book_entry(self, code: Any) -> Appointment:
        a = self.state.appointments.get(self._code(code))
        if a is None:
            raise OpError(ErrorCode.UNKNOWN_APPOINTMENT, "unknown booking code")
        return a

    def _slot(self, slot: Any) -> float:
        now = self.clock()
        if (
            not isinstance(slot, int | float)
            or isinstance(slot, bool)
            or not now - 86400 <= slot <= now + MAX_BOOKING_AHEAD_S
        ):
            raise OpError(
                ErrorCode.BAD_REQUEST, "slot must be epoch seconds from yesterday to a year and a bit ahead"
            )
        return float(slot)

    @staticmethod
    def _version(version: Any) -> int | None:
        if version is None:
            return None
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**31:
            raise OpError(ErrorCode.BAD_REQUEST, "version must be a whole number from 0")
        return version

    def _note(self, note: Any) -> str:
        if note is None or note == "":
            return ""
        settings = self.cfg.appointments
        if not isinstance(note, str):
            raise OpError(ErrorCode.BAD_REQUEST, "note must be a string")
        if not settings.notes:
            return ""  # the office switched notes off: dropped, never stored
        note = " ".join(note.split())
        # the bytes too: 200 characters of emoji would carry the reply and the event past their 1024 bytes
        if (
            len(note) > settings.note_max
            or len(note.encode()) > contract.NOTE_MAX_BYTES
            or not note.isprintable()
        ):
            raise OpError(
                ErrorCode.BAD_REQUEST,
                f"note must be at most {settings.note_max} printable characters "
                f"({contract.NOTE_MAX_BYTES} bytes of UTF-8)",
            )
        return note

    @staticmethod
    def _stale(a: Appointment, version: int | None) -> bool:
        """An imported revision not newer than the one in the book: nothing to do."""
        return version is not None and a.version is not None and version <= a.version

    # -- capacity
    def day_bookings(self, day: dt.date, exclude: str | None = None) -> list[capacity.Booking]:
        """The day's booked (not cancelled) appointments, in booking order."""
        return self.bookings_by_day([day], exclude)[day]

    def bookings_by_day(
        self, days: list[dt.date], exclude: str | None = None
    ) -> dict[dt.date, list[capacity.Booking]]:
        """The booked appointments of each of ``days`` (consecutive), in booking order, in one pass."""
        tz = self.cfg.office.tz
        out: dict[dt.date, list[capacity.Booking]] = {d: [] for d in days}
        bounds = [
            (dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp(), d)
            for d in (*days, days[-1] + dt.timedelta(1))
        ]
        lo, hi = bounds[0][0], bounds[-1][0]
        starts = [b for b, _ in bounds]
        for a in self.state.appointments.values():
            if a.cancelled or a.code == exclude or not lo <= a.slot < hi:
                continue
            i = bisect.bisect_right(starts, a.slot) - 1
            out[bounds[i][1]].append(capacity.Booking(a.code, a.service, a.slot, a.counter))
        return out

    def day_plan(self, day: dt.date, exclude: str | None = None) -> capacity.DayPlan:
        return capacity.day_plan(self.cfg, day, self.day_bookings(day, exclude), self.walk_ins)

    def _plan_counter(self, sid: str, slot: float, check: bool, exclude: str | None) -> str | None:
        """The counter the appointment is planned on; with ``check``, refuse a slot not offered."""
        plan = self.day_plan(capacity.local_day(self.cfg, slot), exclude)
        cid = capacity.fit(plan, self.cfg, sid, slot)
        if not check:
            return cid
        now = self.clock()
        why = reason = ""
        if sid not in capacity.bookable_services(self.cfg):
            why, reason = f"service {sid} takes no appointments", "no_appointments"
        elif slot < now:
            why, reason = "the slot is in the past", "past"
        elif capacity.local_day(self.cfg, slot) not in capacity.horizon(self.cfg, now):
            why = f"the slot is more than {self.cfg.appointments.horizon_days} days ahead"
            reason = "beyond_horizon"
        elif not capacity.on_grid(plan, slot):
            why, reason = "the slot is not on the slot grid within opening hours", "off_grid"
        elif cid is None:
            why, reason = "no counter has room for it (staffing less the walk-in share)", "full"
        if why:  # the reason as a field: a booking client offers other slots for "full", not for "past"
            raise OpError(ErrorCode.SLOT_UNAVAILABLE, why, data={"service": sid, "reason": reason})
        return cid

    def _new_booking_code(self) -> str:
        for _ in range(100):
            code = codes.new_code(self.cfg.appointments.code_length, secrets.token_bytes(16))
            if code not in self.state.appointments and code not in self.state.reservations:
                return code
        raise OpError(ErrorCode.INTERNAL, "no free booking code found")  # pragma: no cover (31^5 codes)

    # -- operations
    def op_appointment_book(
        self,
        node_id: str,
        role: Role,
        service: Any,
        slot: Any,
        code: Any = None,
        check_slot: Any = False,
        note: Any = None,
        version: Any = None,
    ) -> dict[str, Any]:
        sid = self._service(service)
        when = self._slot(slot)
        check = self._bool(check_slot, "check_slot")
        rev = self._version(version)
        text = self._note(note)
        key = self._new_booking_code() if code is None else self._code(code)
        a = self.state.appointments.get(key)
        if a is not None:
            if self._stale(a, rev) or (not a.cancelled and a.service == sid and a.slot == when):
                return {"appointment": {**appointment_info(a), "changed": False}}
            if rev is None:
                raise OpError(ErrorCode.APPOINTMENT_EXISTS, f"booking code {key} is booked already")
            if a.ticket is not None:
                raise OpError(ErrorCode.INVALID_STATE, f"appointment {key} is checked in already")
            counter = self._plan_counter(sid, when, check, exclude=key)
            self._emit("appointment_moved", code=key, service=sid, slot=when, counter=counter, version=rev)
            info = appointment_info(self.state.appointments[key])
            return {"appointment": {**info, "changed": True, "updated": True}}
        else:
            counter = self._plan_counter(sid, when, check, exclude=None)
            extra: dict[str, Any] = {"counter": counter}
            if text:
                extra["note"] = text
            if rev is not None:
                extra["version"] = rev
            self._emit("appointment_booked", code=key, service=sid, slot=when, **extra)
        return {"appointment": {**appointment_info(self.state.appointments[key]), "changed": True}}

    def op_appointment_move(
        self,
        node_id: str,
        role: Role,
        code: Any,
        slot: Any,
        service: Any = None,
        check_slot: Any = False,
        version: Any = None,
    ) -> dict[str, Any]:
        a = self._book_entry(code)
        when = self._slot(slot)
        sid = a.service if service is None else self._service(service)
        check = self._bool(check_slot, "check_slot")
        rev = self._version(version)
        if self._stale(a, rev) or (not a.cancelled and a.service == sid and a.slot == when):
            return {"appointment": {**appointment_info(a), "changed": False}}
        if a.ticket is not None:
            raise OpError(
                ErrorCode.INVALID_STATE,
                f"appointment {a.code} is checked in already",
                data={"code": a.code, "state": "checked_in"},
            )
        if a.cancelled and rev is None:
            raise OpError(ErrorCode.APPOINTMENT_CANCELLED, f"appointment {a.code} was cancelled")
        counter = self._plan_counter(sid, when, check, exclude=a.code)
        extra = {"version": rev} if rev is not None else {}
        self._emit("appointment_moved", code=a.code, service=sid, slot=when, counter=counter, **extra)
        return {"appointment": {**appointment_info(a), "changed": True}}

    def op_appointment_cancel(
        self, node_id: str, role: Role, code: Any, version: Any = None
    ) -> dict[str, Any]:
        a = self._book_entry(code)
        rev = self._version(version)
        if self._stale(a, rev) or a.cancelled:
            return {"appointment": {**appointment_info(a), "cancelled": a.cancelled, "changed": False}}
        if a.ticket is not None:
            raise OpError(
                ErrorCode.INVALID_STATE,
                f"appointment {a.code} is checked in already",
                data={"code": a.code, "state": "checked_in"},
            )
        self._emit("appointment_cancelled", code=a.code, **({"version": rev} if rev is not None else {}))
        return {"appointment": {**appointment_info(a), "cancelled": True, "changed": True}}

    def op_appointment_show(self, node_id: str, role: Role, code: Any) -> dict[str, Any]:
        a = self._book_entry(code)
        info = appointment_info(a)
        t = self.state.tickets.get(a.ticket) if a.ticket else None
        if t is not None:
            info["ticket"] = {"id": t.id, "number": t.number, "state": t.state}
        return {"appointment": info}

    def op_appointment_slots(self, node_id: str, role: Role, service: Any, day: Any = None) -> dict[str, Any]:
        sid = self._service(service)
        now = self.clock()
        days = capacity.horizon(self.cfg, now)
        not_before = now + self.cfg.appointments.lead_min * 60
        bookable = sid in capacity.bookable_services(self.cfg)
        per_day: list[list[Any]] = []
        chosen: dt.date | None = None
        if day is not None:
            try:
                chosen = dt.date.fromisoformat(day) if isinstance(day, str) else None
            except ValueError:
                chosen = None
            if chosen is None or chosen not in days:
                raise OpError(
                    ErrorCode.BAD_REQUEST,
                    f"day must be YYYY-MM-DD from {days[0]} to {days[-1]}",
                )
        free: list[tuple[float, int]] = []
        book = self.bookings_by_day(days)
        for d in days if bookable else []:
            plan = capacity.day_plan(self.cfg, d, book[d], self.walk_ins)
            slots = capacity.free_slots(plan, self.cfg, sid, not_before=not_before)
            if slots:
                per_day.append([d.isoformat(), len(slots)])
            if d == chosen or (day is None and chosen is None and slots):
                chosen, free = d, slots
        return {
            "slots": {
                "service": sid,
                "day": chosen.isoformat() if chosen else None,
                "free": [[s, n] for s, n in free],
                "days": per_day,
            }
        }

    def op_appointment_checkin(
        self, node_id: str, role: Role, code: Any, counter: Any = None
    ) -> dict[str, Any]:
        cid = None
        if counter is not None:  # at the staff workstation: the citizen stands at this counter
            if role is not Role.WEB:
                raise OpError(ErrorCode.FORBIDDEN, "only the staff workstation checks in at a counter")
            cid = self._counter(node_id, role, counter)
            self._counter_open(cid)
        # a remote ticket's reservation code (ops/remote.py), else a booking code; both are called at once at
        # the counter
        result = self.checkin_reservation(node_id, code)  # type: ignore[attr-defined]
        if result is None:
            if not isinstance(code, str):
                raise OpError(ErrorCode.BAD_REQUEST, "code must be a string")
            a = self.state.appointments.get(codes.normalize(code))
            if a is None:
                # no code in the reply's fields: what was typed may be anything (a name), and replies are kept
                raise OpError(ErrorCode.UNKNOWN_APPOINTMENT, "unknown booking code")
            if a.cancelled:
                raise OpError(
                    ErrorCode.APPOINTMENT_CANCELLED, "the appointment was cancelled", data={"code": a.code}
                )
            result = self._checkin(node_id, a)
        if cid is not None:
            t = self.state.tickets[result["ticket"]["id"]]
            if t.state not in ("waiting", "parked"):
                raise OpError(
                    ErrorCode.INVALID_STATE,
                    f"ticket {t.number} is {t.state} already",
                    data={"ticket": t.number, "state": t.state},
                )
            result["call"] = self._call(cid, t, "appointment at the counter")["call"]
            result["ticket"] = {**result["ticket"], **self.ticket_info(t)}
        return result

    def _checkin(self, node_id: str, a: Appointment) -> dict[str, Any]:
        self._office_open()
        if a.ticket is not None:
            return {"ticket": self.ticket_info(self.state.tickets[a.ticket])}
        if a.service not in self.cfg.service_ids:  # taken out of the office file since it was booked
            raise OpError(
                ErrorCode.UNKNOWN_SERVICE,
                f"the appointment's service {a.service!r} is no longer offered at this office",
                data={"code": a.code, "service": a.service},
            )
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
