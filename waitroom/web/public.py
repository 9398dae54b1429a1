"""Public pages: live waiting times, the JSON API for the city website and the 115 service, and the ticket
status page the QR code on a ticket opens (``/t/<ticket id>``), also for a remote ticket's reservation code
(``/t/<code>``: "be there by", then the ticket once checked in). Read-only, rate-limited, no personal data.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from waitroom.errors import CommandFailed, RequestTimeout
from waitroom.i18n import N_, both
from waitroom.ops.remote import normalize_code
from waitroom.web.common import cfg, json_error, lang, live, tr
from waitroom.web.security import client_network, limiter, public_limit

bp = Blueprint("public", __name__)

TICKET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,40}$")


limiter.shared_limit(public_limit, scope="public")(bp)  # one budget per client address


def service_waits(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    if state is None:
        return []
    c = cfg()
    return [
        {
            "id": s["id"],
            "name": s["name"],
            "waiting": s["waiting"],
            "eta_min": s["eta_min"],
            "intake_open": s.get("intake_open", True),
            # False: by appointment only (the dispensers do not offer it; a wait would invite walk-ins)
            "walk_in": c.service(s["id"]).walk_in if s["id"] in c.service_ids else True,
        }
        for s in state.get("services", [])
    ]


def public_payload() -> dict[str, Any]:
    """The JSON for the city website / 115: every office this web app knows, waiting counts and minutes."""
    lv = live()
    state = lv.public_state()
    offices = []
    if state is not None:
        status, stale_since = lv.office_status()
        services = service_waits(state)
        for s in services:  # the city's advice for this office (waitroom/city/advice.py)
            s["alternative"] = lv.advice.alternative(s["id"]) if status == "live" else None
        offices.append(
            {
                "office": state["office"],
                "name": cfg().office.name,
                "ts": state["ts"],
                "status": status,
                "stale_since": stale_since,
                "services": services,
            }
        )
    return {"v": 1, "offices": offices, "units": {"eta_min": "minutes"}, "note": both("web.public.note")}


@bp.get("/")
def home() -> Response:
    if current_app.config["WAITROOM_DEMO"]:
        return redirect(url_for("demo.page"))
    return redirect(url_for("public.waiting"))


@bp.get("/waiting")
def waiting() -> str:
    tpl = "public_waits_fragment.html" if request.args.get("fragment") else "public_waits.html"
    return render_template(tpl, data=public_payload())


@bp.get("/api/public")
def api_public() -> Response:
    resp = jsonify(public_payload())
    resp.headers["Access-Control-Allow-Origin"] = "*"  # the city website embeds it
    resp.headers["Cache-Control"] = "public, max-age=10"
    return resp


@bp.app_context_processor
def _ticket_warning() -> dict[str, Any]:
    """Minutes from which the ticket status page warns (ticket_fragment.html, also rendered for streams)."""
    return {"warn_min": cfg().remote_tickets.warn_min}


def ticket_status(ticket_id: str) -> dict[str, Any]:
    """Where a ticket stands: waiting (position, minutes), called (counter), parked, not appeared (come
    back by, or expired), or done. An id the web's copy does not know is asked of the controller once
    (``LiveOffice.learn``): the ticket may have left the queue pages before this app started."""
    lv = live()
    lv.learn(ticket_id)
    return lv.ticket_status(ticket_id)


RESERVATION_CACHE_S = 5.0  # a reservation's state is asked of the controller at most this often per code
RESERVATION_ASK_S = 3.0  # how long one asking waits for the controller's answer (it is asked twice)
_reservations: dict[str, tuple[float, dict[str, Any]]] = {}
_reservations_lock = threading.Lock()


def reservation_status(code: str) -> dict[str, Any]:
    """A remote ticket by its code (``ticket.reservation``, asked of the controller as the web node):
    ``reserved`` with "be there by" and the deadline, ``checked_in`` with its ticket id, ``lapsed``, or
    ``unknown``. Cached for a few seconds, so reloading pages cannot flood the controller.

    Only the controller's ``unknown_reservation`` makes a code unknown. Without its answer (no reply, a
    restart, a refusal such as ``clock_behind``) the page keeps the last status it had of the code (its "be
    there by" holds still), else it is ``unavailable``: a citizen whose place is reserved is never told that
    the code is unknown because the controller was away for a moment."""
    now = time.monotonic()
    with _reservations_lock:
        hit = _reservations.get(code)
        if hit is not None and now - hit[0] < RESERVATION_CACHE_S:
            return _with_soon(hit[1])
    try:
        r = live().request("ticket.reservation", {"code": code}, timeout=RESERVATION_ASK_S)["reservation"]
        status: dict[str, Any] = {
            "state": r["state"],
            "reservation": code,
            "ticket": r.get("number"),
            "ticket_id": r.get("ticket_id"),
            "arrive_by": r["arrive_by"],
            "arrive_by_local": r["arrive_by_local"],
            "expires_local": r["expires_local"],
            "soon": False,
        }
    except (CommandFailed, RequestTimeout) as exc:
        if not isinstance(exc, CommandFailed) or exc.code != "unknown_reservation":
            # not cached: the controller may answer in a moment
            return _with_soon(hit[1]) if hit is not None else {"state": "unavailable"}
        status = {"state": "unknown"}
    with _reservations_lock:
        if len(_reservations) > 10_000:
            _reservations.clear()
        _reservations[code] = (now, status)
    return _with_soon(status)


def _with_soon(status: dict[str, Any]) -> dict[str, Any]:
    """A reserved code's status with ``soon``: "be there by" is ``remote_tickets.warn_min`` away or past."""
    if status.get("state") != "reserved":
        return status
    return {**status, "soon": status["arrive_by"] - time.time() <= cfg().remote_tickets.warn_min * 60}


def _check_id(ticket_id: str) -> None:
    if not TICKET_ID_RE.match(ticket_id):
        from flask import abort

        abort(404)


@bp.get("/t/<ticket_id>")
def ticket_page(ticket_id: str) -> str | Response | tuple[str, int]:
    """The page answers 404 for a number or code the office does not know (today), saying so in the page's
    language; it stays live, in case the number is only not here yet. Its fragment answers 200: an open page
    swaps in what it gets, also "not known (any more)" at the end of the day."""
    _check_id(ticket_id)
    fragment = bool(request.args.get("fragment"))
    code = normalize_code(ticket_id)
    tpl = "ticket_fragment.html" if fragment else "ticket.html"
    if code is not None:  # a remote ticket's reservation code
        status = reservation_status(code)
        if status["state"] == "checked_in" and status.get("ticket_id"):
            target = url_for("public.ticket_page", ticket_id=status["ticket_id"])
            if not fragment:
                return redirect(target)
            # the page follows it to the ticket's live status, in the page's language (not the session's)
            status = {
                **status,
                "goto": url_for("public.ticket_page", ticket_id=status["ticket_id"], lang=lang()),
            }
        html = render_template(tpl, ticket_id=code, status=status, reservation=True)
    else:
        status = ticket_status(ticket_id)
        html = render_template(tpl, ticket_id=ticket_id, status=status)
    if status["state"] == "unavailable":  # an open page keeps what it shows (ticket.js swaps only a 200)
        return html, 503
    return (html, 404) if status["state"] == "unknown" and not fragment else html


@bp.get("/api/ticket/<ticket_id>")
def api_ticket(ticket_id: str) -> Response:
    _check_id(ticket_id)
    code = normalize_code(ticket_id)
    status = reservation_status(code) if code is not None else ticket_status(ticket_id)
    if status["state"] == "unavailable":
        return json_error(503, "unavailable", tr("web.no_state"))
    resp = jsonify(status)
    if status["state"] == "unknown":
        resp.status_code = 404
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/api/ticket/<ticket_id>/stream")
def ticket_stream(ticket_id: str) -> Response:
    """SSE ``state`` events for one ticket, sent whenever its status changes: the status as JSON with the
    rendered status fragment in ``html`` (the page swaps it in without another request)."""
    _check_id(ticket_id)
    if normalize_code(ticket_id) is None:
        live().learn(ticket_id)
    try:
        return live().sse_response(ticket=ticket_id)
    except OverflowError:
        return json_error(503, "busy", tr("web.too_many"))


@bp.get("/a/<code>")
def checkin_code(code: str) -> str:
    """What the QR code of a booking confirmation opens on a phone: the check-in form with the code filled
    in (the dispenser's scanner reads the same URL and takes the code at its end)."""
    return render_template("checkin.html", code=code[:40])


def checkin_guesses() -> str:
    """The budget of unknown codes per client network: a booking code has about 25 bits (six characters,
    one a check), so the public budget alone (120 a minute) would find a valid code of the book within
    hours; this budget makes that weeks per network."""
    return f"{current_app.config['WAITROOM_SETTINGS'].checkin_failures_per_hour} per hour"


def _unknown_code(resp: Response) -> bool:
    return resp.status_code == 404


@bp.route("/checkin", methods=["GET", "POST"])
@limiter.limit(
    checkin_guesses,
    key_func=client_network,
    methods=["POST"],
    deduct_when=_unknown_code,
    scope="checkin",
    override_defaults=False,  # the public budget (the blueprint's) still counts
)
def checkin() -> str | Response | tuple[str, int]:
    """Check in with the booking code on a phone or the status page (the dispenser does the same): the
    appointment's ticket is issued and its status page opens. Unknown codes are counted per client network
    (``web.checkin_failures_per_hour``); past that, every check-in from there answers 429 with a text at
    the field until the hour ends (the dispenser's scanner and the reception still check in)."""
    from waitroom.web.common import run_command

    if request.method != "POST":  # GET, and HEAD (Flask answers it with this view: same as GET, no body)
        return render_template("checkin.html", code=request.args.get("code", "")[:40])
    code = request.form.get("code")
    if isinstance(code, str):  # the language links of an answer keep the code (nothing typed is lost)
        g.lang_query = {"code": code.strip()[:40]}
    # an error is shown at the field (aria-invalid, described by it, focused), so a screen reader reads it
    # with the field instead of a page that starts again at the top
    if not isinstance(code, str) or not code.strip() or len(code) > 40:
        return render_template("checkin.html", code="", error=tr("web.ticket.checkin_code_missing")), 400
    res = run_command("appointment.checkin", {"code": code})
    if not res.ok:
        # a citizen reads this in their language: every refusal has a text of its own or a general one (the
        # controller's message, in English, is in the log)
        key = {
            "unknown_appointment": N_("web.ticket.checkin_unknown"),
            "unknown_reservation": N_("web.ticket.checkin_unknown"),
            "appointment_expired": N_("web.ticket.checkin_expired"),
            "appointment_cancelled": N_("web.ticket.checkin_cancelled"),
            "office_closed": N_("web.ticket.checkin_closed"),
        }.get(res.code, N_("web.ticket.checkin_failed"))
        error = tr(key)
        return render_template("checkin.html", code=code.strip()[:40], error=error), res.status
    return redirect(url_for("public.ticket_page", ticket_id=res.result["ticket"]["id"]))
