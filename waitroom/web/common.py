"""Helpers shared by the blueprints: language, the logged-in user, permissions, commands and their errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import abort, current_app, g, jsonify, redirect, request, session, url_for
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from waitroom import i18n
from waitroom.config import Config
from waitroom.errors import CommandFailed, RequestTimeout
from waitroom.i18n import t, tn
from waitroom.web import refusals
from waitroom.web.live import LiveOffice
from waitroom.web.users import User, UserStore

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Controller error codes -> HTTP status for the JSON API.
HTTP_STATUS = {
    "bad_json": 400,
    "bad_request": 400,
    "too_large": 413,
    "unknown_op": 400,
    "forbidden": 403,
    "unknown_node": 404,
    "unknown_service": 404,
    "unknown_counter": 404,
    "unknown_ticket": 404,
    "unknown_assistance": 404,
    "unknown_appointment": 404,
    "appointment_expired": 409,
    "nobody_waiting": 409,
    "not_serving": 409,
    "counter_closed": 409,
    "invalid_state": 409,
    "intake_stopped": 409,
    "office_closed": 409,
    "duplicate": 409,
    "internal": 502,
    "slot_unavailable": 409,
    "appointment_exists": 409,
    "appointment_cancelled": 409,
    "numbers_used_up": 409,
    "reservations_full": 409,
    "unknown_reservation": 404,
    "request_voided": 409,
    # "retry later": nothing was decided (contract.RETRY_LATER); the answer says when to try again
    "rate_limited": 429,
    "clock_behind": 503,
}
RETRY_AFTER_S = {429: 60, 503: 10}


def live() -> LiveOffice:
    return cast(LiveOffice, current_app.extensions["waitroom"])


def cfg() -> Config:
    return cast(Config, current_app.extensions["waitroom_config"])


def users() -> UserStore:
    return cast(UserStore, current_app.extensions["waitroom_users"])


STAFF_BLUEPRINTS = frozenset({"staff", "admin", "accounts", "whatif", "demo", "booking", "reception"})


def languages() -> tuple[str, ...]:
    """The languages this page offers: every citizen language, German and English on staff pages."""
    return i18n.STAFF_LANGUAGES if request.blueprint in STAFF_BLUEPRINTS else i18n.LANGUAGES


def lang() -> str:
    """?lang=tr switches (and is remembered in the session); else the session, the browser, German.

    Staff pages are German or English: a citizen language chosen elsewhere shows them in German. A live
    fragment or stream of an open page (``?fragment=1``, see ``live_url``) takes its page's ``lang`` without
    remembering it: the tabs of one browser share the session, and a tab's updates must neither come in
    another tab's language nor switch the language of the next page the citizen opens."""
    if "lang" in g:
        return cast(str, g.lang)
    offered = languages()
    chosen = i18n.normalize(request.args.get("lang"))
    if chosen is not None and not request.args.get("fragment"):
        session["lang"] = chosen
    value = (
        chosen or i18n.normalize(session.get("lang")) or request.accept_languages.best_match(offered) or "de"
    )
    g.lang = value if value in offered else "de"
    return cast(str, g.lang)


def live_url(endpoint: str, **values: Any) -> str:
    """The URL an open page fetches its live updates from (a fragment, a stream): in the page's language,
    marked as a fragment so that fetching it does not change the session's language (``lang``)."""
    return url_for(endpoint, **values, fragment=1, lang=lang())


NO_VALUE = "–"  # what a table cell shows for a number nobody measured (no ticket was called, ...)


def number(value: float | None, digits: int | None = None, sign: bool = False) -> str:
    """A number for people in the page's language (the ``number`` filter): "12,5" and "1.234" on a German
    page, "12.5" and "1,234" on an English one (i18n.fmt_number); None as a dash. Never for JSON, CSV,
    attributes or form inputs: those keep the machine's "12.5"."""
    return NO_VALUE if value is None else i18n.fmt_number(value, lang(), digits, sign=sign)


def percent(fraction: float | None, digits: int = 0) -> str:
    """A share (0.8) as the page's language writes a percentage (the ``percent`` filter): German "80 %"
    with a no-break space, English "80%" (i18n.fmt_percent); None as a dash."""
    return NO_VALUE if fraction is None else i18n.fmt_percent(fraction, lang(), digits)


def _numbers(values: dict[str, Any]) -> dict[str, Any]:
    """A sentence's values with every number written the page's way ("{minutes}" of 2.5 -> "2,5" in German);
    a number that is a name (a seed, a year) is passed as a string and stays as it is."""
    return {
        k: i18n.fmt_number(v, lang()) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in values.items()
    }


def tr(key: str, **values: Any) -> str:
    """The text ``key`` in the page's language, its numbers written the page's way."""
    return t(key, lang(), **_numbers(values))


def trn(key: str, n: int, /, **values: Any) -> str:
    """The plural message ``key`` for the count ``n`` in the page's language (i18n.tn), its numbers written
    the page's way."""
    return tn(key, n, lang(), **_numbers(values))


def text(obj: dict[str, str] | None, fallback: str = "") -> str:
    """A {de, en, ...} text from the snapshot or the configuration in the current language."""
    if not obj:
        return fallback
    return obj.get(lang()) or obj.get("de") or fallback


def named(obj: dict[str, str] | None, fallback: str = "") -> Markup:
    """A name from the configuration (a service, a counter) for the page: ``text``, and where the office has
    none in the page's language, the German one marked as German (``<span lang="de">``, WCAG 3.1.2), so that
    a screen reader reads "Meldeangelegenheiten" on a Turkish page with a German voice."""
    value = text(obj, fallback)
    page = lang()
    if obj and value and not obj.get(page) and page.split("-")[0] != "de" and value == obj.get("de"):
        return Markup('<span lang="de" dir="ltr">%s</span>') % value
    return escape(value)


def tr_markup(key: str, **values: Any) -> Markup:
    """``tr`` for a sentence that holds markup (a ``named`` name): the sentence escaped, the values as they
    are (escaped unless already Markup)."""
    slots = {k: f"\x00{i}\x00" for i, k in enumerate(values)}
    out = escape(tr(key, **slots))
    for i, v in enumerate(values.values()):
        out = Markup(str(out).replace(f"\x00{i}\x00", str(escape(v))))
    return out


def sessions() -> Any:
    return current_app.extensions["waitroom_sessions"]


def current_user() -> User | None:
    """The logged-in user: the cookie's session id must name a live row of the session table (logout and
    password changes revoke rows, in every worker at once)."""
    if "user" not in g:
        sid = session.get("sid")
        name = sessions().user_of(sid) if isinstance(sid, str) else None
        g.user = users().get(name) if name else None
        if (sid or session.get("user")) and g.user is None:  # revoked, expired or account removed
            keep = session.get("lang")
            session.clear()
            if keep:
                session["lang"] = keep
    return cast(User | None, g.user)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def login_required(role: str = "staff") -> Callable[[F], F]:
    """Staff pages need a login (not a booking-only account); admin pages need the admin role (403 otherwise);
    ``booking`` and ``any``: every logged-in user."""

    def deco(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if wants_json():
                    return json_error(401, "login_required", tr("web.login_required"))
                if request.method == "GET":
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                # a form sent after the session ended (its hours are over, a password change): not done, and
                # after the login back to its page, not to the form's address (a GET there is refused)
                from flask import flash

                flash(tr("web.session_ended"), "error")
                back = page_of_form()
                return redirect(url_for("auth.login", next=back) if back else url_for("auth.login"))
            if role == "admin" and not user.is_admin:
                if wants_json():
                    return json_error(403, "forbidden", tr("web.forbidden"))
                abort(403)
            if role == "staff" and user.is_booking_only:  # a 115 agent: the booking page only
                if wants_json():
                    return json_error(403, "forbidden", tr("web.forbidden"))
                if request.method == "GET" and request.blueprint == "staff":
                    return redirect(url_for("booking.index"))
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return deco


def page_of_form() -> str | None:
    """The page a form was posted from: a staff action's workstation, else the referring page of this site."""
    from urllib.parse import urlsplit

    counter = (request.view_args or {}).get("counter")
    if request.blueprint == "staff" and isinstance(counter, str) and counter in cfg().counter_ids:
        return url_for("staff.workstation", counter=counter)
    ref = urlsplit(request.referrer or "")
    if (
        ref.netloc
        and ref.netloc == request.host
        and ref.path.startswith("/")
        and not ref.path.startswith("//")
    ):
        return ref.path + (f"?{ref.query}" if ref.query else "")
    return None


def check_counter(counter: str) -> None:
    """404 for an unknown counter, 403 when the user may not operate it."""
    if counter not in cfg().counter_ids:
        if wants_json():
            abort(json_error(404, "unknown_counter", tr("web.unknown_counter", counter=counter)))
        abort(404)
    user = current_user()
    if user is None or not user.may_operate(counter):
        if wants_json():
            abort(json_error(403, "forbidden", tr("web.wrong_counter", counter=counter)))
        abort(403)


def json_error(status: int, code: str, message: str, data: dict[str, Any] | None = None) -> Response:
    """``{"ok": false, "error": {"code", "message"[, "data"]}}``: ``data`` are the controller reply's fields
    (e.g. ``{"counter": "c2", "state": "paused"}``), for a client that acts on them rather than on the
    sentence."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    resp = jsonify({"ok": False, "error": error})
    resp.status_code = status
    if status in RETRY_AFTER_S:
        resp.headers["Retry-After"] = str(RETRY_AFTER_S[status])
    return resp


class CommandResult:
    """The outcome of one staff action: ok + result, or an error code, message and HTTP status."""

    def __init__(
        self,
        ok: bool,
        result: dict[str, Any] | None = None,
        code: str = "",
        message: str = "",
        status: int = 200,
        seq: int | None = None,
        counter: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ):
        self.ok, self.result, self.code, self.message, self.status = ok, result or {}, code, message, status
        self.seq, self.counter, self.data = seq, counter, data

    def response(self) -> Response:
        if self.ok:
            body: dict[str, Any] = {"ok": True, "result": self.result, "seq": self.seq}
            if self.counter is not None:
                body["counter"] = self.counter
            return jsonify(body)
        return json_error(self.status, self.code, self.message, self.data)


def run_command(op: str, args: dict[str, Any], request_id: str | None = None) -> CommandResult:
    """Send ``op`` as the web node and wait until the office copy includes its effect (the reply's seq);
    controller errors and timeouts become a CommandResult. The result carries that seq and, for a counter
    action, the counter's new state. ``request_id``: see ``LiveOffice.act``."""
    lv = live()
    user = current_user()
    if not lv.online:
        return CommandResult(False, code="unavailable", message=tr("web.err.offline"), status=503)
    try:
        result, seq = lv.act(op, args, request_id=request_id)
    except CommandFailed as exc:
        # one sentence in the page's language, details from the reply's fields; the English message is logged
        log.info("%s by %s refused: %s %s", op, user.name if user else "-", exc.code, exc.message)
        return CommandResult(
            False,
            code=exc.code,
            message=refusals.text(cfg(), lang(), exc.code, exc.data),
            status=HTTP_STATUS.get(exc.code, 400),
            data=exc.data if isinstance(exc.data, dict) else None,
        )
    except RequestTimeout:
        log.warning("%s by %s: controller did not answer", op, user.name if user else "-")
        return CommandResult(False, code="timeout", message=tr("web.err.timeout"), status=503)
    log.info("%s %s by %s (seq %d)", op, loggable(args), user.name if user else "-", seq)
    counter = lv.counter_state(args["counter"]) if isinstance(args.get("counter"), str) else None
    return CommandResult(True, result, seq=seq, counter=counter)


FREE_TEXT = frozenset({"note"})  # what a person typed in freely: it may name someone, whatever the form says


def loggable(args: dict[str, Any]) -> dict[str, Any]:
    """A command's arguments for the log: free text only by its length (the event log keeps the note where
    the office allows notes; the web's log is not another copy of it)."""
    return {
        k: f"<{len(v)} characters>" if k in FREE_TEXT and isinstance(v, str) else v for k, v in args.items()
    }
