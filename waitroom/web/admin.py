"""Admin pages: nodes and their health, the live queue, intake control, the configuration in force, and the
statistics with charts and CSV export. Admin role required.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any, NoReturn

import yaml
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from waitroom import dbsafe
from waitroom.i18n import N_
from waitroom.web import health, stats
from waitroom.web.common import cfg, lang, live, login_required, run_command, tr, trn, users

if TYPE_CHECKING:
    from waitroom.web.live import LiveOffice

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

N_("web.admin.alarm.offline")

# why the statistics cannot be shown, in the page's words (the English reason goes to the log)
STATS_UNAVAILABLE = {"missing": N_("web.stats.unavailable"), "unreadable": N_("web.stats.unreadable")}

SECRET_KEYS = ("secret_key", "password_file", "password", "key")


def _redact(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@bp.get("/")
@login_required("admin")
def index() -> str:
    lv = live()
    state = lv.public_state()
    return render_template(
        "admin.html",
        nodes=lv.node_table(),
        state=state,
        alarms=_alarms(state, lv),
        now=time.time(),
        users=users().all(),
        service_names={s.id: s.name.model_dump() for s in cfg().services},
        reason_names=_reason_names(),
        health_lines=_health_lines,
        role_name=_role_name,
    )


def _reason_names() -> dict[str, dict[str, str]]:
    """A paused counter's reason as the office names it (office.pause_reasons), not its id."""
    return {r.id: r.name.model_dump() for r in cfg().office.pause_reasons}


def _health_lines(record: dict[str, object]) -> list[health.Line]:
    return health.describe(cfg(), lang(), record)


def _role_name(role: str) -> str:
    return health.role(role, lang())


@bp.get("/nodes")
@login_required("admin")
def nodes_fragment() -> str:
    return render_template(
        "admin_nodes.html", nodes=live().node_table(), health_lines=_health_lines, role_name=_role_name
    )


@bp.get("/alarms")
@login_required("admin")
def alarms_fragment() -> str:
    """The alarms as on the admin page: app.js fetches this on every state or node message and merges it into
    the page (an alarm that begins is added, one that ends removed, one that changed is updated)."""
    lv = live()
    return render_template("admin_alarms.html", alarms=_alarms(lv.public_state(), lv))


@bp.get("/queue")
@login_required("admin")
def queue_fragment() -> str:
    """The queue section of the admin page (services, counters, waiting tickets), fetched on every state
    message; app.js does not swap it while the admin's focus is in it (an intake form being filled in)."""
    return render_template("admin_queue.html", state=live().public_state(), reason_names=_reason_names())


def _alarms(state: dict[str, Any] | None, lv: LiveOffice) -> list[health.Alarm]:
    """The admin page's alarms: no connection to the controller (it is offline, or this app has lost the
    broker: what the page shows is the last known state), help requests escalated to the office manager, then
    the controller's own alarms."""
    out: list[health.Alarm] = []
    if lv.office_status()[0] == "stale":
        out.append(health.Alarm("controller_offline", tr("web.admin.alarm.offline")))
    requests = (state or {}).get("assistance")
    escalated = sum(
        1
        for a in (requests if isinstance(requests, list) else ())
        if isinstance(a, dict) and isinstance(a.get("level"), int) and a["level"] >= 2
    )
    if escalated:
        out.append(health.Alarm("help_escalated", trn("web.assist.escalated", escalated, count=escalated)))
    log_alarm = _event_log_alarm()
    if log_alarm:
        out.append(log_alarm)
    healths = {row["id"]: row["health"] for row in lv.node_table()}
    ending = health.certificate_alarm(cfg(), lang(), healths, time.time())
    return out + ([ending] if ending else []) + health.alarms(cfg(), lang(), state)


# the event log's states (``<data dir>/database-status.json``, waitroom.dbsafe) in which the controller does
# not start: the page says so in words, with the controller's own message (what to do) as the detail
EVENT_LOG_ALARMS = {
    "damaged": N_("web.admin.alarm.log_damaged"),
    "missing": N_("web.admin.alarm.log_missing"),
    "replaced": N_("web.admin.alarm.log_replaced"),
}


def _event_log_alarm() -> health.Alarm | None:
    """Why the controller does not start, when its event log stopped it: the status it wrote to the data
    directory this app shares with it (waitroom.dbsafe). The admin page showed only "no connection to the
    controller", and the reason was in the journal of another machine's shell."""
    status = dbsafe.read_status(current_app.config["WAITROOM_DATA_DIR"]) or {}
    key = EVENT_LOG_ALARMS.get(str(status.get("status")))
    if key is None:
        return None
    message = status.get("message")
    return health.Alarm(f"event_log_{status['status']}", tr(key), message if isinstance(message, str) else "")


@bp.get("/config")
@login_required("admin")
def config_view() -> str:
    data = _redact(cfg().model_dump(mode="json"))
    return render_template(
        "admin_config.html", config_yaml=yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    )


@bp.post("/intake/<service>")
@login_required("admin")
def intake(service: str) -> Response:
    if service not in cfg().service_ids:
        abort(404)
    mode = request.form.get("mode", "")
    if mode == "auto":
        args = {"service": service, "auto": True}
    elif mode in ("open", "stop"):
        args = {"service": service, "open": mode == "open", "reason": request.form.get("reason", "")[:120]}
    else:
        abort(400)
    res = run_command("intake.set", args)
    flash(tr("web.ok.intake") if res.ok else res.message, "ok" if res.ok else "error")
    return redirect(url_for("admin.index"))


def _unavailable(exc: stats.StatsUnavailable) -> str:
    """Why the statistics cannot be shown, in the page's words (the English reason goes to the log)."""
    return tr(STATS_UNAVAILABLE.get(exc.reason, STATS_UNAVAILABLE["missing"]), path=str(exc.path))


def _bad_request(message: str) -> NoReturn:
    abort(make_response(render_template("error.html", code=400, message=message), 400))


STATS_FIELDS = {"day": "web.stats.day", "to": "web.stats.to"}  # a parameter -> its label on the form


def _range_arg() -> tuple[str, str]:
    """The statistics' days: ``day`` (default today) and optionally ``to``, the last day of a range (both
    included, at most ``stats.MAX_RANGE_DAYS``)."""
    given = {"day": request.args.get("day") or cfg().office.today(time.time())}
    given["to"] = request.args.get("to") or given["day"]
    for name, value in given.items():
        try:
            given[name] = dt.date.fromisoformat(value).isoformat()  # 20261123 too, shown as 2026-11-23
            stats.day_bounds(cfg(), value)  # also a day whose end no calendar has (9999-12-31)
        except (ValueError, OverflowError):
            _bad_request(tr("web.err.field", field=tr(STATS_FIELDS[name])))  # the form's word, not the URL's
    day, last = given["day"], given["to"]
    try:
        stats.range_days(day, last)
    except ValueError:
        _bad_request(tr("web.stats.bad_range", days=stats.MAX_RANGE_DAYS))
    return day, last


@bp.get("/stats")
@login_required("admin")
def stats_page() -> str | tuple[str, int]:
    day, last = _range_arg()
    path = current_app.config["WAITROOM_STATS_DB"]
    labels = {s.id: s.name.get(lang()) for s in cfg().services}
    page = {
        "day": day,
        "last": last,
        "label": day if last == day else f"{day} – {last}",
        "max_days": stats.MAX_RANGE_DAYS,
    }
    try:
        result, _ = stats.compute_range(path, cfg(), day, last)
        days = stats.available_days(path, cfg())
    except stats.StatsUnavailable as exc:
        log.info("statistics unavailable: %s", exc)
        said = _unavailable(exc)
        return render_template("admin_stats.html", **page, unavailable=said, data=None, days=[]), 200
    data = stats.as_dict(result)
    charts = {
        "hours": stats.hours_chart(result, labels, tr("web.stats.per_hour"), lang=lang()),
        "wait": stats.bars_chart(
            {k: v["wait"]["mean_min"] for k, v in data["services"].items()},
            labels,
            tr("web.stats.mean_wait"),
            "min",
            lang=lang(),
        ),
        "service": stats.bars_chart(
            {k: v["service_time"]["mean_min"] for k, v in data["services"].items()},
            labels,
            tr("web.stats.mean_service"),
            "min",
            lang=lang(),
        ),
    }
    return render_template(
        "admin_stats.html",
        **page,
        data=data,
        charts=charts,
        labels=labels,
        days=days,
        unavailable=None,
        appointment_rules=cfg().steering.appointments,
    )


@bp.get("/stats.csv")
@login_required("admin")
def stats_csv() -> Response:
    day, last = _range_arg()
    try:
        _, each = stats.compute_range(current_app.config["WAITROOM_STATS_DB"], cfg(), day, last)
    except stats.StatsUnavailable as exc:
        log.info("statistics unavailable: %s", exc)
        return Response(f"{_unavailable(exc)}\n", status=503, mimetype="text/plain")
    name = f"waitroom-{cfg().office.id}-{day}" + (f"-{last}" if last != day else "")
    return Response(
        stats.to_csv(*each),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
