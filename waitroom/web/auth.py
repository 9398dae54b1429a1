"""Log in and out (staff and admin), change the own password.

Failed logins are throttled per user name and per client address (Flask-Limiter, counters shared by every
worker through waitroom.web.security.SQLiteStorage): past ``web.login_failures_per_user`` /
``web.login_failures_per_address`` failures within ``web.login_lockout_min`` minutes the login answers 429 -
even with the right password - until the window ends. A login creates a row in the session table; logout
revokes it, a password change revokes every session of the user.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from waitroom.web.common import current_user, login_required, sessions, tr, users
from waitroom.web.security import client_address, limiter, public_limit
from waitroom.web.users import MIN_PASSWORD, UserError

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only local paths: never redirect a login to another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _lockout_min() -> int:
    return max(1, round(current_app.config["WAITROOM_SETTINGS"].login_lockout_min))


def _per_user() -> str:
    return f"{current_app.config['WAITROOM_SETTINGS'].login_failures_per_user} per {_lockout_min()} minutes"


def _per_address() -> str:
    n = current_app.config["WAITROOM_SETTINGS"].login_failures_per_address
    return f"{n} per {_lockout_min()} minutes"


def _login_name() -> str:
    name = request.form.get("username", "")
    return "login-user:" + (name.strip().lower()[:64] if isinstance(name, str) else "")


def _failed(resp: Response) -> bool:
    return resp.status_code == 401


@bp.route("/login", methods=["GET", "POST"])
@limiter.shared_limit(public_limit, scope="public")
@limiter.limit(_per_user, key_func=_login_name, methods=["POST"], deduct_when=_failed, scope="login-user")
@limiter.limit(
    _per_address, key_func=client_address, methods=["POST"], deduct_when=_failed, scope="login-addr"
)
def login() -> str | Response | tuple[str, int]:
    if request.method == "POST":
        name = request.form.get("username", "").strip().lower()
        user = users().verify(name, request.form.get("password", ""))
        if user is None:
            log.warning("failed login for %r from %s", name[:32], client_address())
            flash(tr("web.login_failed"), "error")
            return render_template("login.html", username=name), 401
        lang = session.get("lang")
        session.clear()
        lifetime = current_app.permanent_session_lifetime.total_seconds()
        session["sid"] = sessions().create(user.name, lifetime)
        if lang:
            session["lang"] = lang
        session.permanent = True
        log.info("%s logged in from %s", user.name, client_address())
        if user.must_change:  # an admin set this password: the user chooses their own before anything else
            return redirect(url_for("auth.password"))
        target = _safe_next(request.args.get("next"))
        return redirect(target or url_for("admin.index" if user.is_admin else "staff.index"))
    return render_template("login.html", username="")


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    sid = session.get("sid")
    if isinstance(sid, str):
        sessions().revoke(sid)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    if user:
        log.info("%s logged out", user.name)
    flash(tr("web.logged_out"), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required("any")
@limiter.limit(
    _per_user, key_func=lambda: "pw:" + (session.get("sid") or ""), methods=["POST"], deduct_when=_failed
)
def password() -> str | Response | tuple[str, int]:
    """Change the own password; every session of the user ends (this one too). An error is said at its field
    (aria-invalid, described by it, focused) in the page's language."""
    user = current_user()
    assert user is not None
    if request.method == "POST":
        new = request.form.get("new", "")
        if users().verify(user.name, request.form.get("current", "")) is None:
            return _password_page(401, current=tr("web.password.wrong"))
        if user.must_change and new == request.form.get("current"):
            # the password an admin gave is to be replaced
            return _password_page(400, new=tr("web.password.same"))
        if len(new) < MIN_PASSWORD:  # the policy's own message (users.check_password) is English
            return _password_page(400, new=tr("web.password.too_short", n=MIN_PASSWORD))
        try:
            users().set_password(user.name, new)
        except UserError:  # the account was removed meanwhile
            abort(403)
        n = sessions().revoke_user(user.name)
        log.info("%s changed the password; %d session(s) ended", user.name, n)
        lang = session.get("lang")
        session.clear()
        if lang:
            session["lang"] = lang
        flash(tr("web.password.changed"), "info")
        return redirect(url_for("auth.login"))
    return _password_page(200)


def _password_page(status: int, **errors: str) -> tuple[str, int]:
    return render_template("password.html", errors=errors, min_password=MIN_PASSWORD), status
