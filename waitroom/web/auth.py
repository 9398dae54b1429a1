"""Log in and out (staff and admin)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from waitroom.web.common import current_user, tr, users

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


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "POST":
        name = request.form.get("username", "").strip().lower()
        user = users().verify(name, request.form.get("password", ""))
        if user is None:
            log.warning("failed login for %r from %s", name[:32], request.remote_addr)
            flash(tr("web.login_failed"), "error")
            return render_template("login.html", username=name), 401
        lang = session.get("lang")
        session.clear()
        session["user"] = user.name
        if lang:
            session["lang"] = lang
        session.permanent = True
        log.info("%s logged in", user.name)
        target = _safe_next(request.args.get("next"))
        return redirect(target or url_for("admin.index" if user.is_admin else "staff.index"))
    return render_template("login.html", username="")


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    if user:
        log.info("%s logged out", user.name)
    flash(tr("web.logged_out"), "info")
    return redirect(url_for("auth.login"))
