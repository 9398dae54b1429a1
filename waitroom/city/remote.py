"""Remote tickets, the city side: a 115 agent or the city website reserves a place for a citizen who is not
there yet; the office's controller answers over the bridge.

The controller operations are ``ticket.reserve`` and ``ticket.reservation`` (contract v1, role ``city``;
waitroom/ops/remote.py). The city service sends them as the office's node ``city`` on
``Topics(office).cmd("city")``; the office's bridge (generated with ``remote_tickets``) carries them in and
the reply on ``.reply("city")`` out. A controller that predates them answers ``unknown_op``, which the API
passes on as ``501 not_supported``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from waitroom.city.config import CityConfig
from waitroom.city.view import CityView
from waitroom.contract import (
    CITY_FILTERS,
    CITY_NODE_ID,
    ID_RE,
    ContractError,
    Topics,
    decode,
    parse_city_topic,
)
from waitroom.errors import RequestTimeout
from waitroom.i18n import LANGUAGES

log = logging.getLogger(__name__)

RESERVE_OP = "ticket.reserve"
STATUS_OP = "ticket.reservation"
CLIENT_REQUEST_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
CODE_RE = re.compile(r"^[2-9A-Za-z-]{6,8}$")  # a reservation code as typed (waitroom.ops.remote.CODE_RE)
SHOWN_CHARS = 40  # a value from the request is echoed in an error message at most this long


def shown(value: str) -> str:
    """A value from the request as an error message quotes it: bounded, so a long URL is not sent back."""
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…")


# Controller error codes -> HTTP status of the city API.
STATUS_FOR = {
    "bad_request": 400,
    "unknown_service": 404,
    "intake_stopped": 409,
    "office_closed": 409,
    "reservations_full": 409,
    "rate_limited": 429,
    "unknown_reservation": 404,
    "appointment_expired": 410,
    "duplicate": 409,
    "unknown_op": 501,
    "forbidden": 502,
    "unknown_node": 502,
}


class OfficeCommands:
    """Request/reply with office controllers over their bridges, as each office's node ``city``."""

    def __init__(self, link: Any):
        self.link = link
        # keyed by office and request id: only the office asked may answer (another office's bridge may
        # write only its own reply topic, and it sees the ids of a back end in its own commands)
        self._pending: dict[tuple[str, str], Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        link.subscribe(CITY_FILTERS["reply"], self._on_reply, qos=1)

    def _on_reply(self, topic: str, payload: bytes) -> None:
        try:
            office, _ = parse_city_topic(topic)
            reply = decode(payload)
        except ContractError as exc:
            log.warning("ignored reply on %s: %s", topic, exc.message)
            return
        with self._lock:
            fut = self._pending.pop((office, str(reply.get("id"))), None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def request(
        self, office: str, op: str, args: dict[str, Any], timeout: float, request_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return the controller's reply; raise RequestTimeout. The same
        ``request_id`` again gets the controller's same reply (it keeps replies for two days)."""
        rid = "city-" + (request_id or uuid.uuid4().hex[:16])
        fut: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[(office, rid)] = fut
        try:
            self.link.publish(Topics(office).cmd(CITY_NODE_ID), {"id": rid, "op": op, "args": args}, "cmd")
            return fut.result(timeout=timeout)
        except TimeoutError:
            raise RequestTimeout(f"{op}: office {office} did not answer within {timeout} s") from None
        finally:
            with self._lock:
                self._pending.pop((office, rid), None)


def load_tokens(cfg: CityConfig) -> list[bytes]:
    path = cfg.remote_tickets.token_file
    if not path:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip().encode() for ln in lines if ln.strip() and not ln.startswith("#")]


def authorized(header: str | None, tokens: list[bytes]) -> bool:
    if not header or not header.startswith("Bearer ") or not tokens:
        return False
    given = header[len("Bearer ") :].strip().encode()
    return any(hmac.compare_digest(given, t) for t in tokens)


def client_of(header: str | None) -> str:
    """A short name for the back end behind a bearer token, so that two back ends' request ids never meet."""
    given = (header or "")[len("Bearer ") :].strip().encode()
    return hashlib.sha256(given).hexdigest()[:8]


def reserve(
    cfg: CityConfig,
    view: CityView,
    commands: OfficeCommands | None,
    office: str,
    body: Any,
    client: str = "",
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON) for POST /api/v1/offices/<office>/reservations; ``client`` names the back end
    (``client_of``), whose ``request_id`` values are its own."""

    def err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": code, "message": message}}

    if commands is None or office not in cfg.remote_offices():
        if cfg.office(office) is None:
            return err(404, "unknown_office", f"no office {shown(office)} in this city")
        return err(501, "not_supported", f"office {office} takes no remote tickets (remote_tickets)")
    if not isinstance(body, dict):
        return err(400, "bad_request", "the body must be a JSON object {service, lang}")
    unknown = sorted(set(body) - {"service", "lang", "priority", "request_id"})
    if unknown:
        return err(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    service, lang = body.get("service"), body.get("lang", "de")
    if not isinstance(service, str) or not ID_RE.match(service):
        return err(400, "bad_request", "field 'service' must be a service id")
    if lang not in LANGUAGES:
        return err(400, "bad_request", f"field 'lang' must be one of {', '.join(LANGUAGES)}")
    priority = body.get("priority", False)
    if not isinstance(priority, bool):
        return err(400, "bad_request", "field 'priority' must be true or false")
    request_id = body.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or not CLIENT_REQUEST_RE.match(request_id)
    ):
        return err(400, "bad_request", "field 'request_id' must be 1-40 of [A-Za-z0-9_.:-]")
    bad = _reachable(cfg, view, office)
    if bad is not None:
        return bad
    with view.lock:
        office_cfg = cfg.office(office)
        assert office_cfg is not None
        live = view.offices[office]
        if view.offers(office_cfg, live, service) is False:
            return err(404, "unknown_service", f"office {office} does not offer {service!r}")
    args: dict[str, Any] = {"service": service, "lang": lang, **({"priority": True} if priority else {})}
    rid = f"{client}-{request_id}" if request_id else None
    return _forward(cfg, commands, office, RESERVE_OP, args, 201, rid)


def _err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def _reachable(cfg: CityConfig, view: CityView, office: str) -> tuple[int, dict[str, Any]] | None:
    """503 office_unreachable when the office is not live (a command could not come back)."""
    with view.lock:
        status = view.status(view.offices[office], view.clock())[0]
    if status != "live":
        return _err(503, "office_unreachable", f"office {office} is {status}; try another office")
    return None


def _forward(
    cfg: CityConfig,
    commands: OfficeCommands,
    office: str,
    op: str,
    args: dict[str, Any],
    ok_status: int,
    request_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    err = _err
    try:
        reply = commands.request(office, op, args, cfg.remote_tickets.timeout_s, request_id)
    except RequestTimeout as exc:
        return err(503, "office_unreachable", str(exc))
    result, e = reply.get("result"), reply.get("error")
    # What comes back is the office's word: a reply that is not one (a result or an error that is no
    # object, an error without a code) was a 500 here; it is the office's fault, so a 502 that says so.
    if (
        reply.get("ok") is True
        and isinstance(result, dict)
        and isinstance(result.get("reservation", {}), dict)
    ):
        if "reservation" in result:  # the ticket's inner detail stays in the office
            result = {
                **result,
                "reservation": {k: v for k, v in result["reservation"].items() if k != "ticket"},
            }
        return ok_status, {"v": 1, "office": office, **result}
    if reply.get("ok") is not False or not isinstance(e, dict) or not isinstance(e.get("code"), str):
        return err(502, "bad_reply", f"office {office} answered {op} with a malformed reply")
    code = e["code"][:40]
    message = str(e.get("message", ""))[:400]
    if code == "unknown_op":
        return err(501, "not_supported", f"the controller of {office} does not support {op} yet: {message}")
    return err(STATUS_FOR.get(code, 502), code, message)


def reservation(
    cfg: CityConfig, view: CityView, commands: OfficeCommands | None, office: str, code: str
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON) for GET /api/v1/offices/<office>/reservations/<code>: where a remote ticket
    stands (reserved, checked_in with its number, lapsed)."""
    if commands is None or office not in cfg.remote_offices():
        if cfg.office(office) is None:
            return _err(404, "unknown_office", f"no office {shown(office)} in this city")
        return _err(501, "not_supported", f"office {office} takes no remote tickets (remote_tickets)")
    if not CODE_RE.match(code):
        return _err(404, "unknown_reservation", "no remote ticket with that code")
    bad = _reachable(cfg, view, office)
    if bad is not None:
        return bad
    return _forward(cfg, commands, office, STATUS_OP, {"code": code}, 200)
