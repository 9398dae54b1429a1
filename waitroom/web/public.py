"""Public pages: live waiting times, the JSON API for the city website and the 115 service, and the ticket
status page the QR code on a ticket opens (``/t/<ticket id>``). Read-only, rate-limited, no personal data.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from waitroom.i18n import both
from waitroom.web.common import json_error, live, tr, wants_json

bp = Blueprint("public", __name__)

TICKET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,40}$")


class RateLimiter:
    """A sliding one-minute window per client address (in memory; one web process per office)."""

    def __init__(self) -> None:
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.streams: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def allow(self, client: str, per_minute: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self.lock:
            q = self.hits[client]
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= per_minute:
                return False
            q.append(now)
            if len(self.hits) > 10000:  # forget idle clients
                for k in [k for k, v in self.hits.items() if not v or v[-1] <= now - 60]:
                    del self.hits[k]
            return True


def _limiter() -> RateLimiter:
    return current_app.extensions.setdefault("waitroom_ratelimit", RateLimiter())


def rate_limited(streams: bool = False) -> Response | None:
    """None when the request may go on, else a 429 response."""
    client = request.remote_addr or "-"
    if not _limiter().allow(client, current_app.config["WAITROOM_PUBLIC_RATE"]):
        if wants_json() or streams:
            resp = json_error(429, "rate_limited", tr("web.too_many"))
        else:
            resp = current_app.make_response(
                (render_template("error.html", code=429, message=tr("web.too_many")), 429)
            )
        resp.headers["Retry-After"] = "60"
        return resp
    return None


@bp.before_request
def _limit() -> Response | None:
    return rate_limited()


def service_waits(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    if state is None:
        return []
    return [
        {
            "id": s["id"],
            "name": s["name"],
            "waiting": s["waiting"],
            "eta_min": s["eta_min"],
            "intake_open": s.get("intake_open", True),
        }
        for s in state.get("services", [])
    ]


def public_payload() -> dict[str, Any]:
    """The JSON for the city website / 115: every office this web app knows, waiting counts and minutes."""
    lv = live()
    state = lv.state()
    offices = []
    if state is not None:
        services = service_waits(state)
        for s in services:  # the city's advice for this office (waitroom/city/advice.py)
            s["alternative"] = lv.advice.alternative(s["id"])
        offices.append(
            {
                "office": state["office"],
                "name": state.get("name", lv.cfg.office.name),
                "ts": state["ts"],
                "services": services,
            }
        )
    for office, pub in sorted(lv.bridged.items()):
        offices.append(
            {
                "office": office,
                "name": pub.get("name", office),
                "ts": pub.get("ts"),
                "services": service_waits(pub),
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


def ticket_status(ticket_id: str) -> dict[str, Any]:
    """Where a ticket stands: waiting (position, minutes), called (counter), parked, or done."""
    lv = live()
    state = lv.state()
    if state is None:
        return {"state": "unknown"}
    names = {c["id"]: c["name"] for c in state.get("counters", [])}
    services = {s["id"]: s["name"] for s in state.get("services", [])}
    waiting = state.get("waiting", [])
    for entry in waiting:
        if entry["id"] == ticket_id:
            same = [w for w in waiting if w["service"] == entry["service"]]
            position = next(i for i, w in enumerate(same) if w["id"] == ticket_id) + 1
            return {
                "state": "waiting",
                "ticket": entry["ticket"],
                "service": services.get(entry["service"]),
                "position": position,
                "ahead": position - 1,
                "eta_min": entry.get("eta_min"),
                "ts": state["ts"],
            }
    for c in state.get("counters", []):
        serving = c.get("serving")
        if serving and serving.get("ticket_id") == ticket_id:
            return {
                "state": "called",
                "ticket": serving["ticket"],
                "counter": c["id"],
                "counter_name": names.get(c["id"]),
                "ts": state["ts"],
            }
    for entry in state.get("parked", []):
        if entry["id"] == ticket_id:
            return {"state": "parked", "ticket": entry["ticket"], "ts": state["ts"]}
    number = lv.tickets_seen.get(ticket_id)
    return {"state": "done" if number else "unknown", "ticket": number, "ts": state["ts"]}


def _check_id(ticket_id: str) -> None:
    if not TICKET_ID_RE.match(ticket_id):
        from flask import abort

        abort(404)


@bp.get("/t/<ticket_id>")
def ticket_page(ticket_id: str) -> str:
    _check_id(ticket_id)
    tpl = "ticket_fragment.html" if request.args.get("fragment") else "ticket.html"
    return render_template(tpl, ticket_id=ticket_id, status=ticket_status(ticket_id))


@bp.get("/api/ticket/<ticket_id>")
def api_ticket(ticket_id: str) -> Response:
    _check_id(ticket_id)
    status = ticket_status(ticket_id)
    resp = jsonify(status)
    if status["state"] == "unknown":
        resp.status_code = 404
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/api/ticket/<ticket_id>/stream")
def ticket_stream(ticket_id: str) -> Response:
    """SSE ``ticket`` events for one ticket: sent whenever its status changes."""
    _check_id(ticket_id)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    last: dict[str, Any] = {}

    def transform(name: str, data: Any) -> Any:
        if name != "state":
            return None
        with app.app_context():
            status = ticket_status(ticket_id)
        comparable = {k: v for k, v in status.items() if k != "ts"}
        if comparable == last.get("s"):
            return None
        last["s"] = comparable
        return status

    try:
        resp = live().sse_response(transform=transform)
    except OverflowError:
        return json_error(503, "busy", tr("web.too_many"))
    # The event name stays "state" for simplicity of the page script; the data is the ticket status.
    return resp
