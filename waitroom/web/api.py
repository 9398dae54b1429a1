"""JSON API and the live stream.

- ``GET /api/stream``: server-sent events ``state``, ``call``, ``assist``, ``intake``, ``controller`` (its
  status changed: the waits are current again, or no longer) and ``node`` for the admin page; public data only
  (no ticket ids). Used by every live page and by the display blueprint.
- ``GET /api/state``: the current snapshot (public form).
- ``POST /api/counter/<counter>/<action>``: staff actions as JSON (login + CSRF header ``X-CSRFToken``);
  controller errors come back as ``{"ok": false, "error": {"code", "message", "data"}}`` with HTTP 4xx (the
  message in the user's language, ``data`` the reply's fields when it has any), an unreachable controller as
  503. ``{"current": "A012"}`` (``""``: none) names the ticket the client shows as called there: when another
  one is by then, nothing is done (409 ``invalid_state``; ``waitroom.web.staff.EXPECTS_CURRENT``).
- ``GET /api/nodes``: node status and health (admin).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from waitroom.web.common import check_counter, current_user, json_error, live, login_required, tr
from waitroom.web.security import limiter, public_limit
from waitroom.web.staff import perform

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/stream")
@limiter.shared_limit(public_limit, scope="public")
def stream() -> Response:
    """``?nodes=1`` adds node status and health events (admins only)."""
    user = current_user()
    nodes = request.args.get("nodes") == "1" and user is not None and user.is_admin
    try:
        return live().sse_response(nodes=nodes)
    except OverflowError:
        return json_error(503, "busy", tr("web.too_many"))


@bp.get("/state")
@limiter.shared_limit(public_limit, scope="public")
def state() -> Response:
    snap = live().public_state()
    if snap is None:
        return json_error(503, "no_state", tr("web.no_state"))
    return jsonify(snap)


@bp.post("/counter/<counter>/<action>")
@login_required("staff")
def counter_action(counter: str, action: str) -> Response:
    check_counter(counter)
    if request.is_json:
        data = request.get_json(silent=True)
        if data is None:
            return json_error(400, "bad_request", tr("web.err.json"))
    else:
        data = request.form.to_dict()
    if not isinstance(data, dict):
        return json_error(400, "bad_request", tr("web.err.json"))
    return perform(counter, action, data).response()


@bp.get("/nodes")
@login_required("admin")
def nodes() -> Response:
    return jsonify({"nodes": live().node_table()})
