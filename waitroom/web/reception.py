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
    keys = ("id", "number", "service", "ahead", "eta_min", "issued_at", "lang", "priority", "appointment")
    shown = {k: ticket.get(k) for k in keys}
    session["reception"] = [*kept, shown][-KEEP:]


def _issued(res: CommandResult, citizen: str | None = None) -> Response:
    issued = res.result["ticket"]
    _remember({**issued, "lang": citizen or issued.get("lang") or "de"})
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
    return _issued(res, chosen["lang"])


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


def receipt_lines(shown: dict[str, Any], service: dict[str, str]) -> list[tuple[str, str]]:
    """What the printed receipt says below the number, as the dispenser's ticket does
    (ticket_printer/layout.py): each line in the citizen's language, then in German (English on a German
    ticket) unless it reads the same. The keys are the ticket's, translated into every language."""
    citizen = i18n.normalize(shown.get("lang")) or "de"
    other = "en" if citizen == "de" else "de"

    def both(key: str, n: int | None = None, **values: Any) -> tuple[str, str]:
        def say(code: str) -> str:
            return i18n.t(key, code, **values) if n is None else i18n.tn(key, n, code, **values)

        first, second = say(citizen), say(other)
        return first, "" if second == first else second

    german = service.get("de") or next(iter(service.values()), "")
    first = service.get(citizen) or german
    second = service.get(other) or (german if other == "de" else "")
    lines = [(first, "" if second == first else second)]
    if shown.get("priority"):
        lines.append(both("ticket.priority"))
    ahead, eta = shown.get("ahead"), shown.get("eta_min")
    if shown.get("appointment") is not None:
        slot = dt.datetime.fromtimestamp(shown["appointment"], cfg().office.tz).strftime("%H:%M")
        lines.append(both("ticket.appointment", time=slot))
    elif not isinstance(eta, int):
        lines.append(both("ticket.wait_unknown"))
    else:
        if isinstance(ahead, int):
            lines.append(both("ticket.ahead", ahead, count=ahead) if ahead > 0 else both("ticket.ahead_none"))
        lines.append(both("ticket.wait_short") if eta <= 0 else both("ticket.wait", eta, minutes=eta))
    lines.append(both("ticket.note"))
    return lines


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
    names = cfg().service(sid).name.model_dump() if sid in cfg().service_ids else {"de": sid}
    name = text(names, sid)
    citizen = i18n.normalize(shown.get("lang")) or "de"
    status_url = cfg().office.public_url.rstrip("/") + url_for("public.ticket_page", ticket_id=ticket_id)
    return render_template(
        "reception_ticket.html",
        ticket=shown,
        service_name=name,
        issued=_when(shown["issued_at"]) if isinstance(shown.get("issued_at"), int | float) else "",
        citizen=citizen,
        citizen_dir=i18n.text_dir(citizen),
        lines=receipt_lines(shown, {k: v for k, v in names.items() if v}),
        your_number=i18n.t("ticket.your_number", citizen),
        status_qr=i18n.t("ticket.status_qr", citizen),
        qr=qr_data_uri(status_url),
        status_url=status_url,
    )
