"""The staff workstation: pick a counter, call and finish tickets, pause, transfer, answer assistance.

Every button is a plain HTML form (works without JavaScript, CSRF-protected); the page refreshes its panel
live from the SSE stream and has keyboard shortcuts. The same actions exist as JSON under /api/counter/.
Closing or pausing the last open counter of a service with citizens waiting asks first (a dialog; without
JavaScript a page with the same question); the JSON API and the counter's buttons do not ask, the
controller's ``unstaffed_service`` alarm covers them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, session, url_for
from flask import request as flask_request
from werkzeug.wrappers import Response

from waitroom.i18n import N_
from waitroom.web.common import (
    CommandResult,
    cfg,
    check_counter,
    current_user,
    lang,
    live,
    login_required,
    run_command,
)

log = logging.getLogger(__name__)

bp = Blueprint("staff", __name__, url_prefix="/staff")


class ActionError(ValueError):
    """A form field of a staff action is missing or invalid."""


def _field(data: Mapping[str, Any], name: str, max_len: int = 40) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ActionError(name)
    value = value.strip()
    if len(value) > max_len:
        raise ActionError(name)
    return value


def _transfer(data: Mapping[str, Any], counter: str) -> dict[str, Any]:
    target = _field(data, "target", 80)  # "service:<id>" or "counter:<id>"
    kind, _, ident = target.partition(":")
    if kind == "service" and ident:
        return {"counter": counter, "service": ident}
    if kind == "counter" and ident:
        return {"counter": counter, "to_counter": ident}
    raise ActionError("target")


def _reason(data: Mapping[str, Any]) -> str:
    """A pause reason id from office.pause_reasons (no free text reaches the public state)."""
    value = data.get("reason")
    allowed = {r.id for r in cfg().office.pause_reasons}
    if not isinstance(value, str) or value not in allowed:
        raise ActionError("reason")
    return value


# action name -> (operation, build the arguments from the form/JSON data and the counter)
ACTIONS: dict[str, tuple[str, Callable[[Mapping[str, Any], str], dict[str, Any]]]] = {
    "next": ("counter.call_next", lambda d, c: {"counter": c}),
    "recall": ("counter.recall", lambda d, c: {"counter": c}),
    "served": ("counter.served", lambda d, c: {"counter": c}),
    "no_show": ("counter.no_show", lambda d, c: {"counter": c}),
    "park": ("counter.park", lambda d, c: {"counter": c}),
    "call": ("counter.call_ticket", lambda d, c: {"counter": c, "ticket": _field(d, "ticket", 12)}),
    "transfer": ("counter.transfer", _transfer),
    "open": ("counter.open", lambda d, c: {"counter": c}),
    "pause": ("counter.pause", lambda d, c: {"counter": c, "reason": _reason(d)}),
    "close": ("counter.close", lambda d, c: {"counter": c}),
    "assist_ack": ("assist.acknowledge", lambda d, c: {"request": _field(d, "request"), "counter": c}),
    "assist_resolve": ("assist.resolve", lambda d, c: {"request": _field(d, "request"), "counter": c}),
    # a citizen with an appointment who comes straight to the counter: check in and call here
    "checkin": ("appointment.checkin", lambda d, c: {"code": _field(d, "code", 40), "counter": c}),
}


# The actions that act on or finish the counter's called ticket: their forms send the ticket the page shows
# as called there ("current", "" for none), and the controller does nothing when another one is called by
# then (a double click on "next", a page older than an action from another tab or the counter's buttons).
EXPECTS_CURRENT = frozenset(
    {"next", "recall", "served", "no_show", "park", "call", "transfer", "pause", "close"}
)


def _current(data: Mapping[str, Any]) -> str | None:
    """The ticket the page showed as called ("" for none); None when the form or JSON request has none."""
    value = data.get("current")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ActionError("current")
    return value.strip()


# a form field -> the key of its label on the workstation (staff_panel.html)
FIELD_LABELS = {
    "ticket": "web.act.call_number",
    "target": "web.act.transfer_to",
    "code": "web.act.checkin_code",
    "reason": "web.act.pause_reason",
}


def perform(counter: str, action: str, data: Mapping[str, Any]) -> CommandResult:
    """Run one staff action for ``counter`` (the caller has checked the permission)."""
    from waitroom.web.common import tr

    if action not in ACTIONS:
        return CommandResult(
            False, code="unknown_action", message=tr("web.err.unknown_action", action=action), status=404
        )
    op, build = ACTIONS[action]
    try:
        args = build(data, counter)
        current = _current(data) if action in EXPECTS_CURRENT else None
        if current is not None:
            args["current"] = current
    except ActionError as exc:
        field = str(exc)  # named as the form's label says it (not the field's code name)
        label = tr(FIELD_LABELS[field]) if field in FIELD_LABELS else field
        return CommandResult(False, code="bad_request", message=tr("web.err.field", field=label), status=400)
    return run_command(op, args)


# Closing or pausing the last open counter of a service while citizens wait for it: the page asks first
# (the controller refuses nothing: a clerk may have to leave; its unstaffed_service alarm tells the office).
CONFIRMED = "confirmed"  # the form field that says the clerk answered the question with yes
ASKS = frozenset({"close", "pause"})
# the question's texts, named by the action in the templates (staff_confirm.html, staff_panel.html)
ASK_TEXTS = (
    N_("web.staff.confirm.close"),
    N_("web.staff.confirm.pause"),
    N_("web.staff.confirm.close_yes"),
    N_("web.staff.confirm.pause_yes"),
)


def last_for(counter: str, state: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    """(service id, waiting) of the services with citizens waiting whose only open counter is ``counter``,
    from the live summary; nothing when ``counter`` is not open itself (then it changes nothing). The count
    is the summary's: it includes tickets transferred to one counter by name (the controller's alarm tells
    those apart; here one number for the question is enough)."""
    if not state:
        return []
    states = {c.get("id"): c.get("state") for c in state.get("counters", []) if isinstance(c, Mapping)}
    if states.get(counter) != "open":
        return []
    waiting = {s.get("id"): s.get("waiting") for s in state.get("services", []) if isinstance(s, Mapping)}
    out = []
    for sid in cfg().counter(counter).services:
        n = waiting.get(sid)
        if not isinstance(n, int) or n <= 0:
            continue
        others = [c.id for c in cfg().counters if sid in c.services and c.id != counter]
        if not any(states.get(cid) == "open" for cid in others):
            out.append((sid, n))
    return out


def last_texts(counter: str, state: Mapping[str, Any] | None) -> list[str]:
    """The sentences the question says: "12 Wartende für Pass; kein anderer Schalter bedient Pass."."""
    from waitroom.web.common import trn

    names = {s.id: s.name.get(lang()) for s in cfg().services}
    return [trn("web.staff.unstaffed", n, count=n, service=names[sid]) for sid, n in last_for(counter, state)]


def no_shows(services: set[str]) -> list[dict[str, Any]]:
    """The recent no-shows of ``services`` that may still be called (the citizen came back): number, service
    and the local time they were marked, the newest first, at most ``contract.QUEUE_NO_SHOW``."""
    import datetime as dt

    tz = cfg().office.tz
    return [
        {**n, "at_local": dt.datetime.fromtimestamp(n["at"], tz).strftime("%H:%M")}
        for n in live().recent_no_shows(services)
    ]


def counter_view(counter: str) -> dict[str, Any]:
    """Everything the workstation shows for one counter, from the live snapshot (numbers only)."""
    c = cfg().counter(counter)
    lv = live()
    state = lv.public_state()
    mine = set(c.services)
    view: dict[str, Any] = {
        "counter": c,
        "state": state,
        "cs": None,
        "waiting": [],
        "parked": [],
        "assistance": [],
        "services": cfg().services,
        "counters": cfg().counters,
        "counter_names": {x.id: x.name.model_dump() for x in cfg().counters},
        "service_names": {s.id: s.name.model_dump() for s in cfg().services},
        "service_text": {s.id: s.name.get(lang()) for s in cfg().services},
        "pause_reasons": cfg().office.pause_reasons,
        "reason_names": {r.id: r.name.model_dump() for r in cfg().office.pause_reasons},
        "seq": lv.seq,
        "closed": set(),
        "last_for": [],
        "no_shows": [],
        "no_show_min": cfg().controller.no_show_return_min,
        "terminals": {
            n.id: (n.name.model_dump() if n.name else {"de": n.id}) for n in cfg().nodes if n.role == "assist"
        },
    }
    if state is None:
        return view
    view["cs"] = next((x for x in state.get("counters", []) if x["id"] == counter), None)
    # a ticket cannot be transferred to a closed counter (the controller refuses: nobody would call it)
    view["closed"] = {x["id"] for x in state.get("counters", []) if x.get("state") == "closed"}
    view["waiting"] = [
        w
        for w in state.get("waiting", [])
        if (w["service"] in mine and not w.get("to_counter")) or w.get("to_counter") == counter
    ]
    view["parked"] = [p for p in state.get("parked", []) if p["service"] in mine]
    view["no_shows"] = no_shows(mine)
    view["assistance"] = list(state.get("assistance", []))
    view["last_for"] = last_texts(counter, state)  # closing or pausing asks first (app.js)
    return view


@bp.get("/")
@login_required("staff")
def index() -> str | Response:
    user = current_user()
    assert user is not None
    allowed = [c for c in cfg().counters if user.may_operate(c.id)]
    last = session.get("counter")
    if last and user.may_operate(last) and last in cfg().counter_ids and not flask_request.args.get("pick"):
        return redirect(url_for("staff.workstation", counter=last))
    return render_template("staff_pick.html", counters=allowed)


def _wait_for_action() -> None:
    """After an action (possibly handled by another worker) show at least the state that includes it."""
    seq = session.pop("seq", None)
    if isinstance(seq, int) and not live().wait_for_seq(seq, timeout=2.0):
        log.warning("state seq %d not here within 2 s (have %d)", seq, live().seq)


def _with_seq(html: str, seq: int) -> Response:
    resp = make_response(html)
    resp.headers["X-Waitroom-Seq"] = str(seq)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/<counter>")
@login_required("staff")
def workstation(counter: str) -> Response:
    check_counter(counter)
    session["counter"] = counter
    _wait_for_action()
    view = counter_view(counter)
    shown, rest = alarms_for(counter)
    return _with_seq(render_template("staff.html", **view, alarms=shown, rest=rest), view["seq"])


@bp.get("/<counter>/panel")
@login_required("staff")
def panel(counter: str) -> Response:
    check_counter(counter)
    view = counter_view(counter)
    return _with_seq(render_template("staff_panel.html", **view), view["seq"])


@bp.post("/<counter>/<action>")
@login_required("staff")
def act(counter: str, action: str) -> Response:
    check_counter(counter)
    if action not in ACTIONS:
        abort(404)
    if action in ASKS and flask_request.form.get(CONFIRMED) != "1" and _valid(counter, action):
        texts = last_texts(counter, live().public_state())
        if texts:  # ask first: the same form again, with the question and the answer yes
            return _ask(counter, action, texts)
    res = perform(counter, action, flask_request.form)
    if res.seq is not None:
        session["seq"] = res.seq  # the page after the redirect shows a state at least this new
    if res.ok:
        flash(_success_text(action, res.result), "ok")
    else:
        flash(res.message, "error")
    return redirect(url_for("staff.workstation", counter=counter))


def _valid(counter: str, action: str) -> bool:
    """The form's fields make a command (a pause without a known reason is answered as such, not asked)."""
    try:
        ACTIONS[action][1](flask_request.form, counter)
        _current(flask_request.form)
    except ActionError:
        return False
    return True


def _ask(counter: str, action: str, texts: list[str]) -> Response:
    """The question as a page of its own (without JavaScript; app.js asks in a dialog before it posts): the
    form posts the same fields again with the answer; cancelling goes back to the workstation, unchanged."""
    fields = {k: v for k, v in flask_request.form.items() if k in ("current", "reason") and len(v) <= 80}
    html = render_template(
        "staff_confirm.html",
        counter=cfg().counter(counter),
        action=action,
        texts=texts,
        fields=fields,
        confirmed=CONFIRMED,
    )
    resp = make_response(html)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _success_text(action: str, result: dict[str, Any]) -> str:
    from waitroom.web.common import tr

    call = result.get("call") or {}
    ticket = result.get("ticket") or {}
    if call:
        return tr("web.ok.called", ticket=call.get("ticket", ""))
    if ticket:
        return tr(f"web.ok.{action}", ticket=ticket.get("number", ""))
    return tr(f"web.ok.{action}", ticket="")


# The alarm area of the workstation: what is wrong in the office that concerns this counter, most urgent first
# (waitroom.web.health decides each alarm and says it; here the subset and the order). At most MAX_ALARMS are
# shown, the rest counted ("+2 weitere Meldungen"): staff open no admin page, so nothing links there.
MAX_ALARMS = 3
URGENCY = (
    "controller_offline",  # nothing the page does reaches the controller
    "clock_behind",  # the controller refuses commands until its clock is set
    "log_unwritable",  # the controller refuses every command: its disk is full or broken
    "display_offline",  # calls do not reach the waiting room: call out loud
    "display_fault",
    "unstaffed_service",  # citizens wait for a service of this counter and nobody calls them
    "sound_fault",  # no gong and no speech
    "speech_fault",
    "paper_out",  # nobody gets a number
    "cover_open",
    "printer_fault",
    "dispenser_offline",
    "clock_stepped_back",
    "paper_low",
    "intake_stopped",
)


def _concerns(counter: Any, alarm: Any) -> bool:
    """Whether an alarm concerns the clerk at ``counter``: a service's alarm one of its services; a
    display's, one that shows its calls (its zone, or all zones); a dispenser's, one that issues tickets for
    its services; the controller's connection, clock and event log, every counter. An alarm this page cannot
    say in words (a code of a newer controller) is the admin's."""
    if not alarm.known:
        return False
    if alarm.code in ("unstaffed_service", "intake_stopped"):
        return alarm.what in counter.services
    if alarm.code in ("display_offline", "display_fault", "sound_fault", "speech_fault"):
        return cfg().node(alarm.what).zone in (None, counter.zone)
    if alarm.code in ("dispenser_offline", "paper_out", "cover_open", "printer_fault", "paper_low"):
        services = cfg().node(alarm.what).services
        return services is None or bool(set(services) & set(counter.services))
    return alarm.code in ("controller_offline", "clock_behind", "clock_stepped_back", "log_unwritable")


def alarms_for(counter: str) -> tuple[list[Any], list[Any]]:
    """(shown, the rest) of the alarms that concern ``counter``, the most urgent first. No connection to the
    controller is said only while the page shows a state: before the first one the panel says so already."""
    from waitroom.web import health

    c = cfg().counter(counter)
    lv = live()
    state = lv.public_state()
    found = []
    if state is not None and lv.office_status()[0] == "stale":
        found.append(health.offline_alarm(lang()))
    found += health.alarms(cfg(), lang(), state, for_staff=True)
    found += health.device_alarms(cfg(), lang(), lv.node_table())
    found += health.intake_alarms(cfg(), lang(), state)
    mine = sorted((a for a in found if _concerns(c, a)), key=lambda a: URGENCY.index(a.code))
    return mine[:MAX_ALARMS], mine[MAX_ALARMS:]


@bp.get("/<counter>/alarms")
@login_required("staff")
def alarms_fragment(counter: str) -> Response:
    """The alarm area (staff_alarms.html): app.js fetches it on every state, controller, link and node
    message of the counter's stream and merges it into the page (a new alarm is said once)."""
    check_counter(counter)
    shown, rest = alarms_for(counter)
    html = render_template("staff_alarms.html", counter=cfg().counter(counter), alarms=shown, rest=rest)
    resp = make_response(html)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/<counter>/stream")
@login_required("staff")
def stream(counter: str) -> Response:
    """The live stream of the alarm area: the general stream with the nodes' status and health (which the
    public /api/stream gives admins only), for a clerk who may operate ``counter``."""
    check_counter(counter)
    try:
        return live().sse_response(nodes=True)
    except OverflowError:
        from waitroom.web.common import json_error, tr

        return json_error(503, "busy", tr("web.too_many"))
