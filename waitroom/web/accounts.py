"""The accounts page of the admin (``/admin/accounts``): add an account, give it its counters, reset a
forgotten password, change a role, remove the account of someone who left - without a shell on the Pi.

The rules are the command line's (waitroom/web/cli.py, waitroom.web.users): the same name rules and password
policy, the office always keeps an admin. A password set here (a new account, a reset) is shown once, on the
answer to the POST (never stored in clear, in the cookie or in a log), and the user must choose their own at
the next login: until then every staff or admin page leads to ``/account/password``. A reset and a removal
end every session of that user at once; a new role or new counters count from the user's next request.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from waitroom.i18n import N_
from waitroom.web.common import (
    STAFF_BLUEPRINTS,
    cfg,
    current_user,
    json_error,
    login_required,
    sessions,
    tr,
    users,
)
from waitroom.web.users import MIN_PASSWORD, NAME_RE, ROLES, User, UserError

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__, url_prefix="/admin/accounts")

ROLE_KEYS = {
    "staff": N_("web.accounts.role.staff"),
    "admin": N_("web.accounts.role.admin"),
    "booking": N_("web.accounts.role.booking"),
}

# a generated password: no 0/O, 1/l/I, easy to read out and to type; 4 groups of 4 (about 80 bits)
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def generate_password() -> str:
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(4))


# the public reads of the API stay open to a user who has still to choose a password (the page's stream)
OPEN_ENDPOINTS = frozenset({"static", "api.stream", "api.state"})


@bp.before_app_request
def _password_first() -> Any:
    """A user whose password an admin set (``must_change``) sees no staff, booking or admin page and sends
    no command until they have chosen their own: a page leads to ``/account/password``, a JSON call gets
    403."""
    if request.blueprint not in (*STAFF_BLUEPRINTS, "api") or request.endpoint in OPEN_ENDPOINTS:
        return None
    user = current_user()
    if user is None or not user.must_change:
        return None
    if request.blueprint == "api":
        return json_error(403, "password_change_required", tr("web.accounts.must_change"))
    if request.method != "GET":
        flash(tr("web.accounts.must_change"), "error")
    return redirect(url_for("auth.password"))


def _counters_of(form_key: str = "counters") -> tuple[list[str], bool]:
    """The counters ticked in the form, and whether every one of them is a counter of the office."""
    known = cfg().counter_ids
    ticked = [c for c in request.form.getlist(form_key) if isinstance(c, str)]
    return [c for c in known if c in ticked], all(c in known for c in ticked)


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    values = {"name": "", "role": "staff", "counters": [], **extra.pop("values", {})}
    page = render_template(
        "admin_accounts.html",
        accounts=users().all(),
        counters=cfg().counters,
        roles=ROLES,
        role_name=lambda role: tr(ROLE_KEYS[role]),
        min_password=MIN_PASSWORD,
        me=current_user(),
        values=values,
        errors=extra.pop("errors", {}),
        **extra,
    )
    return page, status


def _back(message: str, category: str = "ok", anchor: str | None = None) -> Response:
    flash(message, category)
    return redirect(url_for("accounts.page", _anchor=anchor))


def _account(name: str) -> User:
    user = users().get(name)
    if user is None:
        abort(404)
    return user


def _admin_name() -> str:
    me = current_user()
    assert me is not None  # login_required("admin")
    return me.name


@bp.get("/")
@login_required("admin")
def page() -> tuple[str, int]:
    return _page()


@bp.post("/")
@login_required("admin")
def add() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip().lower()
    role = request.form.get("role", "")
    typed = request.form.get("password", "")
    counters, known = _counters_of()
    errors: dict[str, str] = {}
    if not NAME_RE.match(name):
        errors["name"] = tr("web.accounts.err.name")
    elif users().get(name) is not None:
        errors["name"] = tr("web.accounts.err.exists", name=name)
    if role not in ROLES:
        errors["role"] = tr("web.accounts.err.role")
    if not known:
        errors["counters"] = tr("web.accounts.err.counters")
    if typed and len(typed) < MIN_PASSWORD:
        errors["password"] = tr("web.accounts.err.password", n=MIN_PASSWORD)
    values = {"name": name, "role": role, "counters": counters}
    if errors:
        return _page(400, errors=errors, values=values)
    password = typed or generate_password()
    try:
        users().add(name, password, role, counters if role == "staff" else (), must_change=True)
    except UserError:  # taken by another admin meanwhile
        return _page(400, errors={"name": tr("web.accounts.err.exists", name=name)}, values=values)
    log.info("admin %s added account %s (role %s)", _admin_name(), name, role)
    done = tr("web.accounts.added", name=name)
    return _page(200, done=done, shown=password if not typed else None, shown_for=name)


@bp.post("/<name>/password")
@login_required("admin")
def reset(name: str) -> Response | tuple[str, int]:
    """A new password for someone who forgot theirs: generated, shown once; every session of that user ends
    and they choose their own at the next login."""
    user = _account(name)
    if user.name == _admin_name():
        return _back(tr("web.accounts.err.self_reset"), "error", f"account-{name}")
    password = generate_password()
    users().set_password(user.name, password, must_change=True)
    ended = sessions().revoke_user(user.name)
    log.info("admin %s reset the password of account %s; %d session(s) ended", _admin_name(), name, ended)
    return _page(200, done=tr("web.accounts.reset_done", name=name), shown=password, shown_for=name)


@bp.post("/<name>/role")
@login_required("admin")
def change(name: str) -> Response:
    user = _account(name)
    role = request.form.get("role", "")
    counters, known = _counters_of()
    anchor = f"account-{name}"
    if role not in ROLES:
        return _back(tr("web.accounts.err.role"), "error", anchor)
    if not known:
        return _back(tr("web.accounts.err.counters"), "error", anchor)
    try:
        users().set_role(user.name, role, counters if role == "staff" else ())
    except UserError:
        return _back(tr("web.accounts.err.last_admin", name=name), "error", anchor)
    log.info(
        "admin %s changed account %s (role %s, counters %s)",
        _admin_name(),
        name,
        role,
        ",".join(counters) if role == "staff" and counters else "all",
    )
    return _back(tr("web.accounts.changed", name=name), "ok", anchor)


@bp.post("/<name>/remove")
@login_required("admin")
def remove(name: str) -> Response:
    user = _account(name)
    if user.name == _admin_name():
        return _back(tr("web.accounts.err.self_remove"), "error", f"account-{name}")
    try:
        users().remove(user.name)
    except UserError:
        return _back(tr("web.accounts.err.last_admin", name=name), "error", f"account-{name}")
    ended = sessions().revoke_user(user.name)
    log.info(
        "admin %s removed account %s (role %s); %d session(s) ended", _admin_name(), name, user.role, ended
    )
    return _back(tr("web.accounts.removed", name=name))
