"""The web app: staff workstation, admin pages, public waiting times and ticket status, and the demo page.

``create_app(cfg, ...)`` is a Flask app factory with one blueprint per area (auth, staff, admin, public, api,
demo, display). The app is itself an MQTT node with role ``web``: see ``waitroom.web.live.LiveOffice`` in
``app.extensions["waitroom"]``. ``waitroom web`` (waitroom/web/cli.py) serves it with gunicorn.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, g, redirect, render_template, request
from flask_babel import Babel
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from waitroom import __version__, config, hyphen, i18n
from waitroom.config import Config
from waitroom.config import data_dir as config_data_dir
from waitroom.flaskjson import JSONProvider
from waitroom.web import common, security
from waitroom.web.live import LiveOffice
from waitroom.web.settings import in_data_dir, secret_key, web_settings
from waitroom.web.users import UserStore

log = logging.getLogger(__name__)

csrf = CSRFProtect()


def default_data_dir() -> Path:
    return config_data_dir()


def stats_database(cfg: Config, data_dir: Path) -> Path:
    """The controller's event log, resolved like ``waitroom controller`` does (relative = in the data dir)."""
    settings = web_settings(cfg)
    return in_data_dir(data_dir, settings.stats_database or cfg.controller.database)


def _ticket_previews(cfg: Config, data_dir: Path, default: str) -> Path:
    """The dispenser's PNG preview folder: printer.preview.folder if configured, else web.ticket_previews."""
    folder = (cfg.printer.get("preview") or {}).get("folder") if isinstance(cfg.printer, dict) else None
    return Path(folder) if isinstance(folder, str) and folder else in_data_dir(data_dir, default)


def create_app(
    cfg: Config | None = None,
    *,
    test_config: dict[str, Any] | None = None,
    demo: bool = False,
    node_id: str = "web",
    data_dir: str | Path | None = None,
    live: LiveOffice | None = None,
    connect_wait: float | None = 10.0,
) -> Flask:
    """Build the web app for one office and connect its ``web`` node to the broker."""
    if cfg is None:
        cfg = config.load(os.environ.get("WAITROOM_CONFIG") or config.EXAMPLE_CONFIG)
    settings = web_settings(cfg)
    # absolute: Flask resolves relative file paths against the package, not the working directory
    ddir = (Path(data_dir) if data_dir is not None else default_data_dir()).resolve()
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.update(
        SECRET_KEY=(test_config or {}).get("SECRET_KEY") or secret_key(settings, demo=demo),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_hours),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cfg.office.public_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which expires
        MAX_CONTENT_LENGTH=64 * 1024,
        WAITROOM_DEMO=demo,
        WAITROOM_DATA_DIR=ddir,
        WAITROOM_STATS_DB=stats_database(cfg, ddir),
        WAITROOM_TICKET_PREVIEWS=_ticket_previews(cfg, ddir, settings.ticket_previews),
        WAITROOM_DISPLAY_SCREENSHOTS=in_data_dir(ddir, settings.display_screenshots),
        WAITROOM_PUBLIC_RATE=settings.public_rate_per_min,
        WAITROOM_SETTINGS=settings,
        WAITROOM_WHATIF_MAX_DAYS=settings.whatif_max_days,
    )
    if test_config:
        app.config.update(test_config)

    if live is None:
        from waitroom.node import NodeRuntime

        if cfg.role_of(node_id) is None or cfg.node(node_id).role != "web":
            from waitroom.errors import ConfigError

            raise ConfigError(
                "<config>",
                [f"nodes: no node {node_id!r} with role web (add {{id: {node_id}, role: web}} to nodes)"],
            )
        from waitroom.mqtt import MqttLink

        # every gunicorn worker (and every web process of one node) is its own MQTT client of the same web
        # node: a client id per process, and -- since the office broker binds client ids to user names --
        # an account of its own (web, web.2, ...: nodes[].workers), else one would disconnect the other
        suffix = f"-{os.getpid()}"
        user = _claim_account(cfg.node(node_id), ddir)
        link = MqttLink(
            cfg.broker, cfg.office.id, node_id, cfg.role_of(node_id), client_suffix=suffix, user=user
        )
        live = LiveOffice(cfg, NodeRuntime(cfg, node_id, link=link), max_streams=settings.max_streams)
        if not live.start(wait=connect_wait):
            log.warning(
                "broker %s:%d not reachable yet; the web node keeps trying", cfg.broker.host, cfg.broker.port
            )
    app.extensions["waitroom"] = live
    live.app = app
    app.extensions["waitroom_config"] = cfg
    users_db = app.config.get("WAITROOM_USERS_DB") or in_data_dir(ddir, settings.users_db)
    app.extensions["waitroom_users"] = UserStore(users_db)
    app.extensions["waitroom_sessions"] = security.SessionStore(users_db)
    csrf.init_app(app)
    # Flask-Babel: the locale and the office time zone for dates and numbers (format_datetime, ...); the
    # page texts come from the same gettext catalogs through waitroom.i18n.t (German key by key as fallback).
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(i18n.CATALOG_DIR))
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", cfg.office.timezone)
    Babel(
        app,
        locale_selector=lambda: i18n.babel_locale(common.lang()),
        timezone_selector=lambda: cfg.office.timezone,
    )
    security.init_limiter(app, app.config.get("WAITROOM_LIMITS_DB") or in_data_dir(ddir, settings.limits_db))
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]

    from waitroom.web import accounts, admin, api, auth, booking, public, reception, staff, whatif

    app.register_blueprint(auth.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(whatif.bp)
    app.register_blueprint(booking.bp)
    app.register_blueprint(reception.bp)
    if demo:
        from waitroom.web import demo as demo_bp

        app.register_blueprint(demo_bp.bp)
        demo_bp.ensure_account(app.extensions["waitroom_users"])  # the documented demo login, demo only
    try:
        display = importlib.import_module("waitroom.web.display")
    except ModuleNotFoundError as exc:  # the display blueprint ships separately; the rest works without it
        if exc.name != "waitroom.web.display":
            raise
        log.warning("waitroom.web.display is not installed; /display is not served")
    else:
        app.register_blueprint(display.bp, url_prefix="/display")

    # numbers for people in the page's language: {{ v|number(1) }} -> "12,5" / "12.5", {{ share|percent }}
    app.add_template_filter(common.number, "number")
    app.add_template_filter(common.percent, "percent")

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {
            "t": common.tr,
            "tn": common.trn,
            "wait_minutes": lambda minutes: hyphen.keep_numbers(
                i18n.wait_minutes(minutes, common.lang(), formatted=True)
            ),
            "wait_at_least": lambda minutes: hyphen.keep_numbers(
                i18n.wait_at_least(minutes, common.lang(), formatted=True)
            ),
            "alternative": lambda office, minutes: hyphen.keep_numbers(
                i18n.alternative(office, minutes, common.lang(), formatted=True)
            ),
            "lang": common.lang(),
            "user": common.current_user(),
            "office": cfg.office,
            "demo": app.config["WAITROOM_DEMO"],
            "text": common.text,
            "named": common.named,
            "t_markup": common.tr_markup,
            "version": __version__,
            "other_lang": "en" if common.lang() == "de" else "de",
            "dir": i18n.text_dir(common.lang()),
            "languages": common.languages(),
            "language_names": i18n.LANGUAGE_NAMES,
            "text_dir": i18n.text_dir,
            "lang_href": _lang_href,
            "live_url": common.live_url,
        }

    def _lang_href(code: str) -> str:
        """This page in another language: its query kept (a check-in code, the booking page's day), lang
        replaced; and what a form answered with itself wants kept (``g.lang_query``: the check-in code a
        citizen typed, when the answer is in a language they cannot read)."""
        from urllib.parse import urlencode

        kept = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
        kept += [(k, v) for k, v in g.get("lang_query", {}).items() if v and k not in request.args]
        return "?" + urlencode([*kept, ("lang", code)])

    allowed_origins = tuple(settings.allowed_origins)

    @app.before_request
    def _origin_and_language() -> Any:
        if security.origin_refused(allowed_origins):
            return _error_response(403, "bad_origin", common.tr("web.err.origin"))
        g.setdefault("lang_checked", common.lang())
        return None

    @app.after_request
    def _headers(resp: Any) -> Any:
        from flask import session

        # PERMANENT_SESSION_LIFETIME applies to a session with something in it (a login, a language, a form's
        # CSRF token); an empty one sets no cookie: the public API and the status pages leave none behind
        if session and not session.permanent:
            session.permanent = True
        return security.security_headers(resp)

    def _error_response(code: int, err: str, message: str) -> Any:
        if common.wants_json() or request.is_json:
            return common.json_error(code, err, message)
        return app.make_response((render_template("error.html", code=code, message=message), code))

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest) -> Any:
        if isinstance(exc, CSRFError):
            return _csrf(exc)
        return _error_response(400, "bad_request", common.tr("web.err.bad_body"))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: Any) -> Any:
        return _error_response(413, "too_large", common.tr("web.err.too_large"))

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        if common.wants_json() or request.is_json:
            return common.json_error(400, "csrf", common.tr("web.err.csrf"))
        if request.endpoint == "public.checkin":
            # a phone's check-in page left open since the day before: the form again, the code kept, a fresh
            # token; pressing the button once more checks in (not a page that lost the code)
            code = request.form.get("code", "")
            g.lang_query = {"code": code.strip()[:40]}
            error = common.tr("web.ticket.checkin_failed")
            return render_template("checkin.html", code=code.strip()[:40], error=error), 400
        from flask import flash

        # no login any more: the browser dropped the session cookie (and the form's token with it) while the
        # page was open. Back to the form's page, through the login (reloading an error page here sent the
        # same stale form again); a logged-in user's form that does not match stays a 400
        gone = request.method == "POST" and common.current_user() is None
        back = common.page_of_form() if gone else None
        if back:
            flash(common.tr("web.err.csrf_back"), "error")
            return redirect(back)
        return render_template("error.html", code=400, message=common.tr("web.err.csrf")), 400

    for code in (403, 404, 405, 429):  # 429: Flask-Limiter's RateLimitExceeded is an HTTPException 429

        @app.errorhandler(code)
        def _err(exc: Any, code: int = code) -> Any:
            key = {403: "web.forbidden", 404: "web.not_found", 405: "web.not_allowed", 429: "web.too_many"}[
                code
            ]
            if code == 429 and request.endpoint == "auth.login" and request.method == "POST":
                from flask import flash

                minutes = max(1, round(settings.login_lockout_min))
                flash(common.trn("web.login_locked", minutes, minutes=minutes), "error")
                resp = app.make_response((render_template("login.html", username=""), 429))
            elif code == 429 and request.endpoint == "public.checkin" and request.method == "POST":
                # at the field, as every check-in error (what was typed stays: it may be right)
                typed = request.form.get("code")
                typed = typed.strip()[:40] if isinstance(typed, str) else ""
                g.lang_query = {"code": typed}
                error = common.tr("web.ticket.checkin_locked")
                page = render_template("checkin.html", code=typed, error=error)
                resp = app.make_response((page, 429))
            elif common.wants_json():
                resp = common.json_error(
                    code,
                    {403: "forbidden", 404: "not_found", 405: "not_allowed", 429: "rate_limited"}[code],
                    common.tr(key),
                )
            else:
                resp = app.make_response(
                    (render_template("error.html", code=code, message=common.tr(key)), code)
                )
            if code == 429:
                retry = getattr(exc, "retry_after", None)
                resp.headers.setdefault("Retry-After", str(int(retry)) if retry else "60")
            if code == 405 and getattr(exc, "valid_methods", None):
                resp.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110: a 405 names what is allowed
            return resp

    log.info("web app for office %s ready (demo=%s, data dir %s)", cfg.office.id, demo, ddir)
    return app


_claimed: list[Any] = []  # the open lock files of this process's accounts (a lock lives with its process)


def _claim_account(node: config.Node, ddir: Path) -> str | None:
    """The first of the web node's MQTT accounts that no other live process of this data directory holds
    (``<data dir>/mqtt-accounts/<user>.lock``, locked while the process lives, so a restarted worker takes
    the account its predecessor left). None: every account is taken (the node id then, with an error)."""
    import fcntl

    folder = ddir / "mqtt-accounts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("cannot keep MQTT account locks in %s (%s); logging in as %s", folder, exc, node.id)
        return None
    for user in node.accounts():
        f = (folder / f"{user}.lock").open("a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _claimed.append(f)
        return user
    log.error(
        "all %d MQTT accounts of web node %s are in use by other processes; raise nodes[%s].workers in the "
        "office configuration (and regenerate the broker's password file and ACL)",
        node.workers,
        node.id,
        node.id,
    )
    return None
