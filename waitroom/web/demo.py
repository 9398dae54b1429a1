"""The demo page (only with ``create_app(demo=True)``): the live office and virtual buttons for every node.

A virtual press is published on the node's ``sim`` topic; the node process (run with ``--pins mock
--simulate``) drives its mock pin through edge.hardware.SimInput, so the press takes the same code path as
a real button on a Pi. The page also shows the newest ticket previews (PNG, written by the dispenser) and
the display screenshots (var/display/), and links the staff and admin pages with the demo account.

The demo account (``DEMO_USER`` / ``DEMO_PASSWORD``, an admin, documented in the README) is created by the
demo app only (``create_app(demo=True)``, i.e. ``waitroom web --demo`` as ``waitroom demo`` starts it) in the
demo's own data directory; ``waitroom web`` without ``--demo`` never creates it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from waitroom.config import Config
from waitroom.i18n import LANGUAGE_NAMES
from waitroom.web.common import cfg, json_error, live, tr
from waitroom.web.users import UserError, UserStore

log = logging.getLogger(__name__)

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-waitroom"  # printed on the demo page: the account exists only in the demo
COUNTER_BUTTONS = ("next", "recall", "served", "no_show", "pause")
DISPENSER_EXTRA = ("priority", "lang")
ASSIST_BUTTONS = ("help",)
ACTIONS = ("press", "hold")


def ensure_account(users: UserStore) -> None:
    """Create the demo's admin account (once; its password is reset to the documented one at every start)."""
    try:
        if users.get(DEMO_USER) is None:
            users.add(DEMO_USER, DEMO_PASSWORD, "admin", [])
            log.info("demo account %s created (password on the demo page)", DEMO_USER)
        elif users.verify(DEMO_USER, DEMO_PASSWORD) is None:
            users.set_password(DEMO_USER, DEMO_PASSWORD)
    except UserError:  # another worker of the demo app created it in the same moment
        log.debug("demo account created by another worker", exc_info=True)


def dispenser_languages(config: Config) -> dict[str, list[str]]:
    """dispenser node id -> the names of the languages its language button steps through, in order."""
    from edge.dispenser.schema import DispenserOptions

    out: dict[str, list[str]] = {}
    for n in config.nodes:
        if n.role == "dispenser":
            given = n.options.get("languages")
            opts = DispenserOptions.model_validate({} if given is None else {"languages": given})
            out[n.id] = [LANGUAGE_NAMES.get(code, code) for code in opts.languages]
    return out


def node_buttons(config: Config) -> dict[str, list[str]]:
    """node id -> the names of its virtual buttons (the names the node's SimInput knows)."""
    out: dict[str, list[str]] = {}
    for n in config.nodes:
        if n.role == "dispenser":
            out[n.id] = [*(n.services or [s.id for s in config.services if s.walk_in]), *DISPENSER_EXTRA]
        elif n.role == "counter":
            out[n.id] = list(COUNTER_BUTTONS)
        elif n.role == "assist":
            out[n.id] = list(ASSIST_BUTTONS)
    return out


@bp.get("/")
def page() -> str:
    c = cfg()
    nodes = [n for n in c.nodes if n.role in ("dispenser", "counter", "assist")]
    tpl = "demo_state.html" if request.args.get("fragment") else "demo.html"
    return render_template(
        tpl,
        nodes=nodes,
        buttons=node_buttons(c),
        dispenser_langs=dispenser_languages(c),
        state=live().public_state(),
        service_names={s.id: s.name.model_dump() for s in c.services},
        counter_names={x.id: x.name.model_dump() for x in c.counters},
        demo_user=DEMO_USER,
        demo_password=DEMO_PASSWORD,
    )


@bp.post("/press/<node_id>")
def press(node_id: str) -> Response:
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(data, dict):
        return json_error(400, "bad_request", tr("web.err.json"))
    buttons = node_buttons(cfg())
    button, action = data.get("button"), data.get("action", "press")
    if node_id not in buttons:
        return json_error(404, "unknown_node", tr("web.demo.unknown_node", node=node_id))
    if button not in buttons[node_id] or action not in ACTIONS:
        return json_error(400, "bad_request", tr("web.demo.bad_button", node=node_id))
    if not live().online:
        return json_error(503, "unavailable", tr("web.err.offline"))
    live().simulate(node_id, button, action)
    log.info("demo: %s %s on %s", action, button, node_id)
    resp = jsonify({"ok": True, "node": node_id, "button": button, "action": action})
    resp.status_code = 202
    return resp


def _newest_tickets(folder: Path, n: int) -> list[Path]:
    from ticket_printer import preview

    return preview.latest(folder, n)


def _newest_screens(folder: Path, n: int) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)[:n]


def _listing(files: list[Path], endpoint: str) -> list[dict[str, Any]]:
    out = []
    for p in files:
        try:
            mtime = p.stat().st_mtime
        except OSError:
            continue
        out.append({"name": p.name, "url": url_for(endpoint, name=p.name, v=int(mtime * 1000)), "ts": mtime})
    return out


@bp.get("/media")
def media() -> Response:
    """Newest ticket previews and display screenshots (the page polls this)."""
    conf = current_app.config
    screens = _listing(_newest_screens(conf["WAITROOM_DISPLAY_SCREENSHOTS"], 4), "demo.screen")
    tickets = _listing(_newest_tickets(conf["WAITROOM_TICKET_PREVIEWS"], 3), "demo.ticket")
    return jsonify({"tickets": tickets, "screens": screens})


def _send(folder: Path, name: str) -> Response:
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".png"):
        abort(404)
    path = folder / name
    if not path.is_file():
        abort(404)
    resp = send_file(path, mimetype="image/png", max_age=0)
    return resp


@bp.get("/ticket/<name>")
def ticket(name: str) -> Response:
    return _send(current_app.config["WAITROOM_TICKET_PREVIEWS"], name)


@bp.get("/screen/<name>")
def screen(name: str) -> Response:
    return _send(current_app.config["WAITROOM_DISPLAY_SCREENSHOTS"], name)
