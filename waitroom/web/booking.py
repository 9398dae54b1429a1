"""The booking page for staff and 115 agents (role ``booking``): pick a service and a free slot, get a booking
code with a printable confirmation and QR code; look a code up, move or cancel it.

Plain HTML forms (no JavaScript needed, CSRF-protected). The free slots come from the controller
(``appointment.slots``: the staffing plan less the walk-in share and the book), and the booking itself is
checked again there (``check_slot``), so two agents never get the same last slot. No personal data: the page
asks for nothing but the service, the slot and (if the office allows) a short note.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import re
import secrets
import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_date
from werkzeug.wrappers import Response

from waitroom import appointments as codes
from waitroom.appointments import capacity
from waitroom.i18n import N_, Nn_
from waitroom.web.common import CommandResult, cfg, lang, live, login_required, run_command, text, tr, trn

log = logging.getLogger(__name__)

bp = Blueprint("booking", __name__, url_prefix="/booking")


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, cfg().office.tz)


def _services() -> list[dict[str, Any]]:
    ids = capacity.bookable_services(cfg())
    return [{"id": s.id, "name": text(s.name.model_dump(), s.id)} for s in cfg().services if s.id in ids]


def _service_arg() -> str | None:
    sid = request.values.get("service")
    return sid if isinstance(sid, str) and sid in capacity.bookable_services(cfg()) else None


def _code_arg(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = codes.normalize(value)
    return code if 3 <= len(code) <= 32 and code.isalnum() and code.isascii() else None


def qr_data_uri(payload: str) -> str:
    """An SVG QR code as a data: URI (a phone opens the check-in page; the dispenser's scanner takes the
    code at the end of the URL)."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(payload, image_factory=qrcode.image.svg.SvgPathImage, box_size=12, border=2)
    buf = io.BytesIO()
    img.save(buf)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _service_name(sid: str) -> str:
    """A service's name; its id when the office file no longer has it (booked before it was taken out)."""
    if sid not in cfg().service_ids:
        return sid
    return text(cfg().service(sid).name.model_dump(), sid)


def _day_label(day: str) -> str:
    return format_date(dt.date.fromisoformat(day), "EEEE, d. MMMM y" if lang() == "de" else "EEEE, d MMMM y")


@bp.get("/")
@login_required("booking")
def index() -> str:
    service = _service_arg()
    move = _code_arg(request.args.get("move"))
    appointment = None
    if move:
        res = run_command("appointment.show", {"code": move})
        if res.ok:
            appointment = res.result["appointment"]
            service = service or appointment["service"]
        else:
            flash(res.message, "error")
            move = None
    slots: dict[str, Any] | None = None
    if service:
        args: dict[str, Any] = {"service": service}
        day = _day_arg(request.args.get("day"))
        if day:
            args["day"] = day
        res = run_command("appointment.slots", args)
        if res.ok:
            slots = res.result["slots"]
        else:
            flash(res.message, "error")
    return render_template(
        "booking.html",
        services=_services(),
        service=service,
        slots=slots,
        times=[(s, _local(s).strftime("%H:%M"), n) for s, n in (slots or {}).get("free", [])],
        days=[(d, _day_label(d), n) for d, n in (slots or {}).get("days", [])],
        day_label=_day_label(slots["day"]) if slots and slots.get("day") else "",
        move=move,
        appointment=appointment,
        moving_code=codes.format_code(appointment["code"]) if appointment else "",
        notes=cfg().appointments.notes,
        note_max=cfg().appointments.note_max,
        online=live().online,
        form_id=secrets.token_urlsafe(18),
    )


def _day_arg(value: Any) -> str | None:
    """The day whose slots the page shows: ``?day=`` if the booking horizon has it. A day it no longer has (a
    page left open since yesterday, its day links then clicked or reloaded) or never had says why, and the
    page shows the first day with free slots instead (the controller would refuse the day, and the page would
    show no days to choose from at all)."""
    if not isinstance(value, str) or not value:
        return None
    days = capacity.horizon(cfg(), time.time())
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        flash(tr("web.booking.bad_day"), "error")
        return None
    if day in days:
        return day.isoformat()
    if day < days[0]:
        flash(tr("web.booking.day_past"), "error")
    else:
        n = cfg().appointments.horizon_days
        flash(trn(SLOT_REFUSALS["beyond_horizon"], n, days=n), "error")
    return None


# why a slot is not offered (the reply's ``reason``), said so that the agent can tell the citizen on the phone
SLOT_REFUSALS = {
    "full": N_("web.booking.slot.full"),
    "past": N_("web.booking.slot.past"),
    "beyond_horizon": Nn_("web.booking.slot.beyond_horizon"),
    "no_appointments": N_("web.booking.slot.no_appointments"),
}


def _refusal(res: CommandResult) -> str:
    """A refused booking or move: for a slot that is not offered, why (taken meanwhile, in the past, too far
    ahead); otherwise the refusal as every staff page says it."""
    reason = (res.data or {}).get("reason") if res.code == "slot_unavailable" else None
    key = SLOT_REFUSALS.get(reason) if isinstance(reason, str) else None
    if key is None:
        return res.message
    days = cfg().appointments.horizon_days  # "höchstens 1 Tag im Voraus", "höchstens 28 Tage im Voraus"
    return trn(key, days, days=days) if reason == "beyond_horizon" else tr(key)


FORM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,40}$")


def _form_request(kind: str) -> str | None:
    """The request id of a booking form as rendered (its hidden ``form`` field, new on every page): the same
    form sent twice (a double click, a reload of the POST) is one booking, not two (the controller answers a
    repeated request id with its first reply)."""
    value = request.form.get("form")
    return f"{kind}-{value}" if isinstance(value, str) and FORM_ID_RE.match(value) else None


def _slot_field() -> float | None:
    """The form's slot in epoch seconds, or None: also for NaN, infinity or a time no calendar of the office
    shows (1e20), which the controller would refuse anyway but the page could not turn into a day."""
    try:
        slot = float(request.form.get("slot", ""))
        _local(slot)
    except (ValueError, OverflowError, OSError):
        return None
    return slot


@bp.post("/book")
@login_required("booking")
def book() -> Response:
    service, slot = _service_arg(), _slot_field()
    if service is None or slot is None:
        flash(tr("web.booking.pick_slot"), "error")
        return redirect(url_for("booking.index", service=service or None))
    args: dict[str, Any] = {"service": service, "slot": slot, "check_slot": True}
    note = (request.form.get("note") or "").strip()
    if note and cfg().appointments.notes:
        args["note"] = note
    res = run_command("appointment.book", args, request_id=_form_request("book"))
    if not res.ok:
        flash(_refusal(res), "error")
        # back to the slots of that day, if the page offers it (not a day past or beyond the horizon, which
        # would be refused a second time)
        day = _local(slot).date()
        shown = day.isoformat() if day in capacity.horizon(cfg(), time.time()) else None
        return redirect(url_for("booking.index", service=service, day=shown))
    code = res.result["appointment"]["code"]
    flash(tr("web.booking.booked", code=codes.format_code(code)), "ok")
    return redirect(url_for("booking.confirmation", code=code))


@bp.get("/find")
@login_required("booking")
def find() -> Response:
    code = _code_arg(request.args.get("code"))
    if code is None:
        flash(tr("web.booking.bad_code"), "error")
        return redirect(url_for("booking.index"))
    return redirect(url_for("booking.confirmation", code=code))


@bp.get("/c/<code>")
@login_required("booking")
def confirmation(code: str) -> str | Response:
    norm = _code_arg(code)
    if norm is None:
        abort(404)
    res = run_command("appointment.show", {"code": norm})
    if not res.ok:
        flash(res.message, "error")
        return redirect(url_for("booking.index"))
    a = res.result["appointment"]
    when = _local(a["slot"])
    base = cfg().office.public_url.rstrip("/")
    return render_template(
        "booking_confirmation.html",
        a=a,
        code=codes.format_code(a["code"]),
        service_name=_service_name(a["service"]),
        day_label=_day_label(when.date().isoformat()),
        time_label=when.strftime("%H:%M"),
        qr=qr_data_uri(base + url_for("public.checkin_code", code=a["code"])),
        checkin_url=base + url_for("public.checkin"),
    )


@bp.post("/c/<code>/move")
@login_required("booking")
def move(code: str) -> Response:
    norm, slot = _code_arg(code), _slot_field()
    service = _service_arg()
    if norm is None or slot is None:
        flash(tr("web.booking.pick_slot"), "error")
        return redirect(url_for("booking.index", move=norm))
    args: dict[str, Any] = {"code": norm, "slot": slot, "check_slot": True}
    if service:
        args["service"] = service
    res = run_command("appointment.move", args, request_id=_form_request("move"))
    if not res.ok:
        flash(_refusal(res), "error")
        return redirect(url_for("booking.index", move=norm, service=service))
    flash(tr("web.booking.moved", code=codes.format_code(norm)), "ok")
    return redirect(url_for("booking.confirmation", code=norm))


@bp.post("/c/<code>/cancel")
@login_required("booking")
def cancel(code: str) -> Response:
    norm = _code_arg(code)
    if norm is None:
        abort(404)
    res = run_command("appointment.cancel", {"code": norm})
    if res.ok:
        flash(tr("web.booking.cancelled", code=codes.format_code(norm)), "ok")
    else:
        flash(res.message, "error")
        if res.code == "unknown_appointment":  # no page to go back to (it would say the same again)
            return redirect(url_for("booking.index"))
    return redirect(url_for("booking.confirmation", code=norm))
