"""The reception desk (Empfang, Infotheke): a clerk asks what the citizen needs and issues a number for the
right service, with priority (a disability, pregnancy, a small child) and in the citizen's language (the
display and the spoken call use it); or checks in an appointment holder's booking or reservation code.

A plain HTML form (works without JavaScript, CSRF-protected). The form's hidden ``form`` field makes the
request id: the same form sent twice (a double click, a reload of the POST) is one ticket. The answer is a
redirect to a page with the number (large), the wait and a QR code of the ticket's status page, printable on
an 80 mm receipt printer. No personal data: the page asks for nothing but the service, priority, language and
a code; its own log lines name the number and the service only.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from werkzeug.wrappers import Response

from waitroom import i18n
from waitroom.i18n import N_
from waitroom.web.booking import _form_request, qr_data_uri
from waitroom.web.common import (
    CommandResult,
    cfg,
    current_user,
    lang,
    live,
    login_required,
    run_command,
    text,
    tr,
)
from waitroom.web.public import TICKET_ID_RE, service_waits

log = logging.getLogger(__name__)

bp = Blueprint("reception", __name__, url_prefix="/reception")

KEEP = 5  # the last tickets of this session whose result page can be shown again (a reload, "Drucken")

# a refused check-in, said as the check-in page says it (the others: refusals.py through run_command)
CHECKIN_REFUSALS = {
    "unknown_appointment": N_("web.ticket.checkin_unknown"),
    "unknown_reservation": N_("web.ticket.checkin_unknown"),
    "appointment_expired": N_("web.ticket.checkin_expired"),
    "appointment_cancelled": N_("web.ticket.checkin_cancelled"),
    "office_closed": N_("web.ticket.checkin_closed"),
}


def _services() -> list[dict[str, Any]]:
    """The office's services in the clerk's language, each with whether it still takes walk-ins today (the
    summary's ``intake_open``; the controller decides anyway)."""
    intake = {s["id"]: s["intake_open"] for s in service_waits(live().state())}
    return [
        {"id": s.id, "name": text(s.name.model_dump(), s.id), "open": intake.get(s.id, True)}
        for s in cfg().services
    ]


def _form(**values: Any) -> dict[str, Any]:
    """The form's values: what the clerk chose (kept after a refusal), a fresh request id."""
    return {
        "services": _services(),
        "citizen_languages": i18n.LANGUAGES,
        "chosen": {"service": None, "priority": False, "lang": "de", "code": "", **values.pop("chosen", {})},
        "online": live().online,
        "form_id": secrets.token_urlsafe(18),
        **values,
    }


def _chosen() -> dict[str, Any]:
    sid = request.form.get("service")
    citizen = i18n.normalize(request.form.get("citizen_lang"))
    return {
        "service": sid if isinstance(sid, str) and sid in cfg().service_ids else None,
        "priority": request.form.get("priority") == "1",
        "lang": citizen or "de",
    }


@bp.before_request
def _booking_only_to_booking() -> Response | None:
    """A 115 agent's account (booking only) is sent to the booking page, as from the staff pages; its forms
    sent here are refused (login_required)."""
    user = current_user()
    if request.method == "GET" and user is not None and user.is_booking_only:
        return redirect(url_for("booking.index"))
    return None


@bp.get("")
@login_required("staff")
def index() -> str:
    return render_template("reception.html", **_form())


def _remember(ticket: dict[str, Any]) -> None:
    kept = [k for k in session.get("reception", []) if isinstance(k, dict) and k.get("id") != ticket["id"]]
    shown = {k: ticket.get(k) for k in ("id", "number", "service", "ahead", "eta_min", "issued_at", "lang")}
    session["reception"] = [*kept, shown][-KEEP:]


def _issued(res: CommandResult) -> Response:
    issued = res.result["ticket"]
    _remember(issued)
    log.info("reception: ticket %s for %s", issued["number"], issued["service"])
    return redirect(url_for("reception.result", ticket_id=issued["id"]))


@bp.post("")
@login_required("staff")
def issue() -> str | Response | tuple[str, int]:
    chosen = _chosen()
    if chosen["service"] is None:
        page = render_template(
            "reception.html", **_form(chosen=chosen, error=tr("web.reception.pick_service"))
        )
        return page, 400
    args = {"service": chosen["service"], "priority": chosen["priority"], "lang": chosen["lang"]}
    res = run_command("ticket.issue", args, request_id=_form_request("reception"))
    if not res.ok:
        return render_template("reception.html", **_form(chosen=chosen, error=res.message)), res.status
    return _issued(res)


@bp.post("/checkin")
@login_required("staff")
def checkin() -> str | Response | tuple[str, int]:
    code = request.form.get("code")
    typed = code.strip()[:40] if isinstance(code, str) else ""
    if not typed or len(code or "") > 40:
        page = render_template(
            "reception.html",
            **_form(chosen={"code": typed}, code_error=tr("web.ticket.checkin_code_missing")),
        )
        return page, 400
    res = run_command("appointment.checkin", {"code": typed}, request_id=_form_request("reception-checkin"))
    if not res.ok:
        error = tr(CHECKIN_REFUSALS[res.code]) if res.code in CHECKIN_REFUSALS else res.message
        return render_template(
            "reception.html", **_form(chosen={"code": typed}, code_error=error)
        ), res.status
    return _issued(res)


def _when(ts: float) -> str:
    local = dt.datetime.fromtimestamp(ts, cfg().office.tz)
    return format_datetime(local, "dd.MM.yyyy, HH:mm" if lang() == "de" else "d MMM y, HH:mm")


@bp.get("/t/<ticket_id>")
@login_required("staff")
def result(ticket_id: str) -> str:
    """The ticket issued from this session: its number, service, people ahead and wait when it was issued,
    the QR code of its status page, printable."""
    if not TICKET_ID_RE.match(ticket_id):
        abort(404)
    shown = next(
        (k for k in session.get("reception", []) if isinstance(k, dict) and k.get("id") == ticket_id), None
    )
    if shown is None:
        abort(404)
    sid = shown["service"]
    name = text(cfg().service(sid).name.model_dump(), sid) if sid in cfg().service_ids else sid
    status_url = cfg().office.public_url.rstrip("/") + url_for("public.ticket_page", ticket_id=ticket_id)
    return render_template(
        "reception_ticket.html",
        ticket=shown,
        service_name=name,
        issued=_when(shown["issued_at"]) if isinstance(shown.get("issued_at"), int | float) else "",
        qr=qr_data_uri(status_url),
        status_url=status_url,
    )
