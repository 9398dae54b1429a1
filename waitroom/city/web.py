"""The city service's web side: the page for 115 agents, the versioned JSON API and the open-data feed.

    GET /                              page: pick a service, offices ordered by expected wait (German first)
    GET /api/v1/offices                every office: status, opening, waits per service, recommendations
    GET /api/v1/services/<service>     the offices for one service, where to go first
    GET /api/v1/schema/<name>.json     JSON schemas of the above (offices, service, open-data, recommendation)
    GET /open-data/v1/waits.json       the public waits of all offices: cacheable (ETag, 304), CORS
    GET /healthz                       the service's own state (JSON; 503 while the city broker is away)

Every response is rate-limited per client (429 with Retry-After); every error is JSON
``{"error": {"code", "message"}}`` with a stable code (docs/city-api.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, render_template, request
from werkzeug.exceptions import HTTPException

from waitroom.city.config import CityConfig
from waitroom.city.remote import (
    SHOWN_CHARS,
    authorized,
    client_of,
    load_tokens,
    reservation,
    reserve,
    shown,
)
from waitroom.city.view import CityView
from waitroom.config import WEEKDAYS
from waitroom.flaskjson import JSONProvider
from waitroom.hyphen import keep_numbers
from waitroom.i18n import LANGUAGE_NAMES, LANGUAGES, fmt_number, normalize, t, text_dir, tn, wait_minutes

SCHEMAS = Path(__file__).with_name("schemas")
SCHEMA_NAMES = ("offices", "service", "open-data", "recommendation")


class RateLimiter:
    """A sliding one-minute window per client address."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self.lock:
            q = self.hits[client]
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            if len(self.hits) > 10000:
                for k in [k for k, v in self.hits.items() if not v or v[-1] <= now - 60]:
                    del self.hits[k]
            return True


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return Response(body, status=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    resp = _json({"error": {"code": code, "message": message}}, status)
    resp.headers["Cache-Control"] = "no-store"  # a 404 is cacheable by default; the service may appear soon
    return resp


def _etag_response(data: Any, cache_control: str, *, volatile: tuple[str, ...] = ()) -> Response:
    """JSON with a strong ETag; 304 when the client has it already. The tag leaves out the ``volatile``
    top-level keys (``generated_at``: otherwise the tag changed with every request and no 304 ever came)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    if volatile:
        stable = {k: v for k, v in data.items() if k not in volatile}
        basis = json.dumps(stable, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    else:
        basis = body
    tag = hashlib.sha256(basis).hexdigest()[:32]
    headers = {"ETag": f'"{tag}"', "Cache-Control": cache_control}
    if tag in request.if_none_match:
        return Response(status=304, headers=headers)
    return Response(body, status=200, mimetype="application/json", headers=headers)


# CORS: the public documents are read by the city website's scripts from another origin. Every answer on
# these paths carries it, errors and 429 too (else a script sees only "network error", not the code or
# Retry-After); a preflight (a script that sets If-None-Match itself) is answered here.
CORS_PATHS = ("/api/v1/offices", "/api/v1/services/", "/api/v1/schema/", "/open-data/")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Retry-After",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD",
    "Access-Control-Allow-Headers": "If-None-Match",
    "Access-Control-Max-Age": "86400",
}


def _public_path(path: str) -> bool:
    """The open documents (not the remote tickets, which are for back ends with a token)."""
    return path.startswith(CORS_PATHS) and "/reservations" not in path


def create_app(cfg: CityConfig, view: CityView, *, service: Any = None) -> Flask:
    """The Flask app over a live ``CityView`` (``service``: the running CityService, for /healthz)."""
    app = Flask(__name__, template_folder=str(Path(__file__).with_name("templates")))
    app.json = JSONProvider(app)  # a body nested too deeply is a 400, not a RecursionError
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if cfg.web.proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.web.proxies)  # type: ignore[method-assign]
    limiter = RateLimiter(cfg.web.rate_per_min)
    city_tz = ZoneInfo(cfg.city.timezone)

    def lang() -> str:
        return normalize(request.args.get("lang")) or "de"

    @app.template_filter("number")
    def _number(value: float | None) -> str:
        """A count for people in the page's language ("1.234" in German, "1,234" in English)."""
        return "–" if value is None else fmt_number(value, lang())

    @app.before_request
    def _limit() -> Response | None:
        if request.path == "/healthz":
            return None
        if request.method == "OPTIONS" and _public_path(request.path):  # CORS preflight
            return Response(status=204, headers={**PREFLIGHT_HEADERS, "Allow": "GET, HEAD, OPTIONS"})
        if not limiter.allow(request.remote_addr or "-"):
            resp = _error(429, "rate_limited", t("web.too_many", lang()))
            resp.headers["Retry-After"] = "60"
            return resp
        return None

    @app.after_request
    def _cors(resp: Response) -> Response:
        if _public_path(request.path):
            resp.headers.update(CORS_HEADERS)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        resp = _http_error_body(exc)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return resp

    def _http_error_body(exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(exc.code or 500, "error")
        status = exc.code or 500
        if request.path.startswith(("/api/", "/open-data/", "/healthz")):
            return _error(status, code, exc.description or code)
        lg = lang()
        message = exc.description or code
        if message == type(exc).description:  # werkzeug's own English text: the page's language instead
            key = {403: "web.forbidden", 404: "web.not_found", 405: "web.not_allowed", 429: "web.too_many"}
            message = t(key[status], lg) if status in key else message
        html = render_template(
            "city_error.html",
            lang=lg,
            dir=text_dir(lg),
            status=status,
            title=t("city.title", lg),
            message=message,
            back=t("city.all_services", lg),
        )
        return Response(html, status=status, mimetype="text/html")

    @app.get("/api/v1/offices")
    def api_offices() -> Response:
        return _etag_response(view.document(), "no-cache", volatile=("generated_at",))

    @app.get("/api/v1/services/<service>")
    def api_service(service: str) -> Response:
        ranking = view.ranking(service)
        if ranking is None:
            known = ", ".join(view.service_ids()) or "none yet"
            return _error(
                404, "unknown_service", f"no office offers a service {shown(service)} (known: {known})"
            )
        return _etag_response(ranking, "no-cache", volatile=("generated_at",))

    tokens = load_tokens(cfg) if cfg.remote_tickets.enabled else []

    def _unauthorized() -> Response | None:
        if cfg.remote_tickets.enabled and not authorized(request.headers.get("Authorization"), tokens):
            resp = _error(
                401, "unauthorized", "send Authorization: Bearer <token> (remote_tickets.token_file)"
            )
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
        return None

    @app.post("/api/v1/offices/<office>/reservations")
    def api_reserve(office: str) -> Response:
        refused = _unauthorized()
        if refused is not None:
            return refused
        body = request.get_json(silent=True)
        client = client_of(request.headers.get("Authorization"))
        status, data = reserve(cfg, view, getattr(service, "commands", None), office, body, client)
        resp = _json(data, status)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/api/v1/offices/<office>/reservations/<code>")
    def api_reservation(office: str, code: str) -> Response:
        refused = _unauthorized()
        if refused is not None:
            return refused
        status, data = reservation(cfg, view, getattr(service, "commands", None), office, code)
        resp = _json(data, status)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/api/v1/schema/<name>.json")
    def api_schema(name: str) -> Response:
        if name not in SCHEMA_NAMES:
            return _error(
                404, "unknown_schema", f"no schema {shown(name)} (known: {', '.join(SCHEMA_NAMES)})"
            )
        data = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
        return _etag_response(data, "public, max-age=3600")

    @app.get("/open-data/v1/waits.json")
    def open_data() -> Response:
        return _etag_response(view.open_data(), f"public, max-age={cfg.web.open_data_max_age_s}")

    @app.get("/open-data/v1/schema.json")
    def open_data_schema() -> Response:
        return api_schema("open-data")

    @app.get("/healthz")
    def healthz() -> Response:
        connected = bool(service and service.link.connected.is_set())
        data = {
            "v": 1,
            "mqtt": "connected" if connected else ("none" if service is None else "disconnected"),
            "offices": len(cfg.offices),
            "live": sum(1 for o in view.offices.values() if view.status(o, view.clock())[0] == "live"),
            "updates": view.updates,
            "rejected": sum(o.rejected for o in view.offices.values()),
            "recommendations_published": service.published if service else 0,
        }
        return _json(data, 200 if connected or service is None else 503)

    def _when(ts: float, now: float, lg: str) -> str:
        """A past moment for "veraltet seit ..." / "aktuell (...)": the time today, else with its weekday
        (within a week) or its date, so data from yesterday does not read as this morning's."""
        moment = dt.datetime.fromtimestamp(ts, city_tz)
        today = dt.datetime.fromtimestamp(now, city_tz).date()
        hhmm = moment.strftime("%H:%M")
        days = (today - moment.date()).days
        if days <= 0:
            return hhmm
        if days < 7:
            return f"{t(f'city.day.{WEEKDAYS[moment.weekday()]}', lg)} {hhmm}"
        return f"{moment:%d.%m.%Y} {hhmm}"

    @app.get("/")
    def page() -> str:
        lg = lang()
        sid = request.args.get("service") or ""
        names = view.service_names()
        if sid and sid not in names:
            abort(404, description=t("city.unknown_service", lg, service=sid[:SHOWN_CHARS]))
        now = view.clock()
        ctx = {
            "lang": lg,
            "dir": text_dir(lg),
            "t": lambda key, **v: t(key, lg, **v),
            "tn": lambda key, n, **v: tn(key, n, lg, **v),
            "wait_minutes": lambda minutes: keep_numbers(
                wait_minutes(minutes, lg, formatted=True)
            ),  # "ca. 12 Min." whole
            "text": lambda texts: (texts or {}).get(lg) or (texts or {}).get("de", ""),
            "services": [(s, names[s]) for s in view.service_ids()],
            "selected": sid,
            "ranking": view.ranking(sid, now) if sid else None,
            "doc": None if sid else view.document(now),
            "clock": lambda ts: dt.datetime.fromtimestamp(ts, city_tz).strftime("%H:%M"),
            "when": lambda ts: _when(ts, now, lg),
            "weekday": lambda ts: t(
                f"city.day.{WEEKDAYS[dt.datetime.fromtimestamp(ts, city_tz).weekday()]}", lg
            ),
            "weekdays": WEEKDAYS,
            "now": now,
            "city": cfg.city.name,
            "languages": LANGUAGES,
            "language_names": LANGUAGE_NAMES,
            "text_dir": text_dir,
        }
        tpl = "city_fragment.html" if request.args.get("fragment") else "city.html"
        return render_template(tpl, **ctx)

    return app
