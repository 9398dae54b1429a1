"""JSON API and the live stream.

- ``GET /api/stream``: server-sent events ``state``, ``call``, ``assist``, ``intake`` (and ``node`` for the
  admin page), public data only (no ticket ids). Used by every live page and by the display blueprint.
- ``GET /api/state``: the current snapshot (public form).
- ``POST /api/counter/<counter>/<action>``: staff actions as JSON (login + CSRF header ``X-CSRFToken``);
  controller errors come back as ``{"ok": false, "error": {"code", "message"}}`` with HTTP 4xx, an
  unreachable controller as 503.
- ``GET /api/nodes``: node status and health (admin).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from waitroom.web.common import check_counter, json_error, live, login_required, tr
from waitroom.web.public import rate_limited
from waitroom.web.staff import perform

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/stream")
def stream() -> Response:
    limited = rate_limited(streams=True)
    if limited is not None:
        return limited
    try:
        return live().sse_response()
    except OverflowError:
        return json_error(503, "busy", tr("web.too_many"))


@bp.get("/state")
def state() -> Response:
    limited = rate_limited()
    if limited is not None:
        return limited
    snap = live().public_state()
    if snap is None:
        return json_error(503, "no_state", tr("web.no_state"))
    return jsonify(snap)


@bp.post("/counter/<counter>/<action>")
@login_required("staff")
def counter_action(counter: str, action: str) -> Response:
    check_counter(counter)
    data = request.get_json(silent=True)
    if data is None:
        data = request.form.to_dict()
    if not isinstance(data, dict):
        return json_error(400, "bad_request", tr("web.err.json"))
    return perform(counter, action, data).response()


@bp.get("/nodes")
@login_required("admin")
def nodes() -> Response:
    return jsonify({"nodes": live().node_table()})
