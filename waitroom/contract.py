"""The MQTT contract: every topic, payload shape, QoS/retain rule, operation and error code.

This module is the only place that builds or parses topic strings. Nodes, the controller, the web app,
the broker ACL generator and the documentation (docs/mqtt-contract.md) all take their names from here.

Topic tree (plain MQTT 3.1.1, JSON payloads, UTF-8)::

    waitroom/v1/<office>/state                       retained office summary      controller -> all
    waitroom/v1/<office>/queue/<service>             retained ticket list page    controller -> web
    waitroom/v1/<office>/counter/<counter>           retained counter detail      controller -> web
    waitroom/v1/<office>/public                      retained public waits        controller -> all, bridged
    waitroom/v1/<office>/event/<kind>                call / assist / intake       controller -> all
    waitroom/v1/<office>/node/<node>/status          retained online/offline      node (will) -> all
    waitroom/v1/<office>/node/<node>/health          retained health + heartbeat  node -> all
    waitroom/v1/<office>/node/<node>/cmd             commands                     node -> controller
    waitroom/v1/<office>/node/<node>/reply           one reply per command        controller -> node
    waitroom/v1/<office>/node/<node>/sim             simulated button presses     demo web -> node (demo only)
    waitroom/v1/<office>/bridge                      retained "1"/"0" city link   office bridge (will) -> city
    waitroom/v1/<office>/city/recommend/<service>    retained advice              city service -> office
    waitroom/v1/city/node/service/status             retained online/offline      city service (will) -> city

The office id ``city`` is reserved for the city service's own topics (see waitroom/city/).

A node publishes only below ``node/<its own id>/``, so a broker ACL ``pattern write .../node/%u/#``
confines its credentials.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
ROOT = f"waitroom/v{CONTRACT_VERSION}"
MAX_PAYLOAD_BYTES = 16 * 1024
NOTE_MAX_BYTES = 400  # an appointment's note in UTF-8: its reply and event stay within their 1024 bytes
# Size bounds of what the controller publishes (docs/mqtt-contract.md, "Message sizes"); none depends on the
# length of the queue. The summary holds at most SUMMARY_CALLS calls and SUMMARY_ASSISTS open requests; a
# queue page the first QUEUE_PAGE tickets of a service in call order, the last QUEUE_PARKED parked ones and
# the last QUEUE_NO_SHOW marked not appeared within controller.no_show_return_min (staff may call them again).
SUMMARY_CALLS = 10
SUMMARY_ASSISTS = 10
SUMMARY_UNSTAFFED = 3  # unstaffed_service alarms in the summary (the longest first)
QUEUE_PAGE = 100
QUEUE_PARKED = 20
QUEUE_NO_SHOW = 10
SHOW_TICKETS = 6  # ticket ids per ticket.show: its reply stays within the 1024 bytes of a reply
STATE_BOUND_BYTES = 8 * 1024  # for up to 20 services and 40 counters with ids of up to 8 characters
QUEUE_BOUND_BYTES = 16 * 1024
ID_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# An MQTT account: a node id, or a web worker's own account <node id>.<n> (config Node.accounts). It is the
# user name the ACL confines and, with client certificates, the certificate's CN.
ACCOUNT_RE = re.compile(r"^[a-z0-9_-]{1,32}(\.[1-9][0-9]?)?$")
# In the office file's client certificate paths (broker.tls.cert/key): the account of the process.
TLS_NODE_PLACEHOLDER = "{node}"
CONTROLLER_NODE_ID = "controller"
CITY_ID = "city"  # reserved office id: the city service's own topics live under waitroom/v1/city/
CITY_SERVICE_NODE_ID = "service"
# The node id an office gives the city service in its configuration, for commands that come over the bridge
# (remote tickets, docs/city-api.md); off unless the office's bridge is generated with remote tickets.
CITY_NODE_ID = "city"


class Role(StrEnum):
    """What a node is; decides which operations it may send and which topics it may use."""

    CONTROLLER = "controller"
    DISPENSER = "dispenser"
    DISPLAY = "display"
    COUNTER = "counter"
    ASSIST = "assist"
    WEB = "web"
    CITY = "city"  # the city service over the office's bridge: remote tickets only (docs/city-api.md)


class EventKind(StrEnum):
    CALL = "call"
    ASSIST = "assist"
    INTAKE = "intake"
    TICKET = "ticket"


class ErrorCode(StrEnum):
    """Stable error codes carried in error replies. Never renamed; new ones are only added."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNKNOWN_OP = "unknown_op"
    FORBIDDEN = "forbidden"
    UNKNOWN_NODE = "unknown_node"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_COUNTER = "unknown_counter"
    UNKNOWN_TICKET = "unknown_ticket"
    UNKNOWN_REQUEST = "unknown_assistance"
    UNKNOWN_APPOINTMENT = "unknown_appointment"
    APPOINTMENT_EXPIRED = "appointment_expired"
    NOBODY_WAITING = "nobody_waiting"
    NOT_SERVING = "not_serving"
    COUNTER_CLOSED = "counter_closed"
    INVALID_STATE = "invalid_state"
    INTAKE_STOPPED = "intake_stopped"
    OFFICE_CLOSED = "office_closed"
    DUPLICATE = "duplicate"
    INTERNAL = "internal"
    NUMBERS_USED_UP = "numbers_used_up"
    RATE_LIMITED = "rate_limited"
    CLOCK_BEHIND = "clock_behind"
    SLOT_UNAVAILABLE = "slot_unavailable"
    APPOINTMENT_EXISTS = "appointment_exists"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    RESERVATIONS_FULL = "reservations_full"
    UNKNOWN_RESERVATION = "unknown_reservation"
    REQUEST_VOIDED = "request_voided"


# Refusals that say "not now, retry later": nothing was decided, so the reply is not stored for the request id
# and a retry with the same id is decided again (every other reply, ok or not, is the same for every retry).
RETRY_LATER: frozenset[ErrorCode] = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.CLOCK_BEHIND})

ERROR_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.BAD_JSON: "the payload is not a JSON object in UTF-8",
    ErrorCode.BAD_REQUEST: "a field is missing, has the wrong type or an invalid value",
    ErrorCode.TOO_LARGE: f"the payload is larger than {MAX_PAYLOAD_BYTES} bytes",
    ErrorCode.UNKNOWN_OP: "the operation name is not part of this contract version",
    ErrorCode.FORBIDDEN: "this node's role may not use the operation, or not for that counter/terminal",
    ErrorCode.UNKNOWN_NODE: "the node id in the topic is not in the office configuration",
    ErrorCode.UNKNOWN_SERVICE: "no service with that id",
    ErrorCode.UNKNOWN_COUNTER: "no counter with that id",
    ErrorCode.UNKNOWN_TICKET: "no ticket with that number or id today in a state the operation accepts; "
    "`data`: `ticket` (when it looks like a number); for `counter.call_ticket` of a ticket marked not "
    "appeared longer ago than `controller.no_show_return_min` minutes also `state`: `no_show` and "
    "`reason`: `no_show_expired` (the citizen takes a new ticket)",
    ErrorCode.UNKNOWN_REQUEST: "no open assistance request with that id",
    ErrorCode.UNKNOWN_APPOINTMENT: "no appointment with that booking code",
    ErrorCode.APPOINTMENT_EXPIRED: "the appointment was on another day, or its check-in window has passed",
    ErrorCode.NOBODY_WAITING: "no ticket is waiting for the services of this counter",
    ErrorCode.NOT_SERVING: "the counter has no called ticket to recall / finish",
    ErrorCode.COUNTER_CLOSED: "the counter is closed or paused; open it first",
    ErrorCode.INVALID_STATE: "the operation does not fit the current state (e.g. already acknowledged)",
    ErrorCode.INTAKE_STOPPED: "the service takes no more walk-in tickets today (Annahmeschluss)",
    ErrorCode.OFFICE_CLOSED: "the office is closed",
    ErrorCode.DUPLICATE: "the same request id was used with different content",
    ErrorCode.INTERNAL: "the controller failed; the command had no effect and may be retried",
    ErrorCode.NUMBERS_USED_UP: "the service has given out every ticket number of its prefix today",
    ErrorCode.RATE_LIMITED: "the node sent more commands than the controller takes from one node, or a "
    "service took as many remote tickets this hour as allowed (remote_tickets.per_hour); retry later",
    ErrorCode.CLOCK_BEHIND: "the controller's clock is behind its event log (no time sync yet); nothing done",
    ErrorCode.SLOT_UNAVAILABLE: "the slot is not offered: not on the slot grid, in the past, or the staffing "
    "(less the walk-in share) has no room left; `data`: `service` and `reason`, one of `full` (booked up: "
    "another slot may be free), `off_grid` (not a slot of the grid within opening hours), `past`, "
    "`beyond_horizon` (more than `appointments.horizon_days` ahead), `no_appointments` (the service takes "
    "none)",
    ErrorCode.APPOINTMENT_EXISTS: "the booking code is already booked for another service or slot",
    ErrorCode.APPOINTMENT_CANCELLED: "the appointment was cancelled",
    ErrorCode.RESERVATIONS_FULL: "the service holds as many open remote tickets as allowed (remote_tickets)",
    ErrorCode.UNKNOWN_RESERVATION: "no remote ticket with that reservation code today",
    ErrorCode.REQUEST_VOIDED: "the node voided this request id (`request.void`) before the command arrived: "
    "nothing was done, and nothing will be for this id; `data`: `request`",
}


class AlarmCode(StrEnum):
    """What the controller's summary warns the office about (``state.alerts[].code``). Stable: never
    renamed; new ones are only added. A receiver shows a code it does not know with the code."""

    CLOCK_BEHIND = "clock_behind"
    CLOCK_STEPPED_BACK = "clock_stepped_back"
    UNSTAFFED_SERVICE = "unstaffed_service"
    LOG_UNWRITABLE = "log_unwritable"


ALARM_DESCRIPTIONS: dict[AlarmCode, str] = {
    AlarmCode.CLOCK_BEHIND: "the controller's clock is behind its event log (a Pi without a real-time clock "
    "before its time sync): it refuses commands with `clock_behind` until the time sync; `data`: `behind_s`, "
    "whole seconds (the log's last event is at the summary's `ts` + `behind_s`)",
    AlarmCode.CLOCK_STEPPED_BACK: "a time sync stepped the controller's clock back behind its event log "
    "while it ran: it goes on, and stamps events at the log's last time until the clock has caught up "
    "(waits and appointments stand still until then); `data`: `behind_s`, whole seconds the system clock "
    "is behind the log's last event",
    AlarmCode.UNSTAFFED_SERVICE: "citizens wait for a service and no open counter can call them (every "
    "counter serving it is closed or paused, or not opened yet; or they were transferred to a counter that "
    "is not open), for `controller.unstaffed_alarm_after_s` during opening hours; one per service, at most "
    "3 (the longest first); it ends when a counter serving it opens or nobody waits any more. The controller "
    "refuses nothing for it. `data`: `service` (id), `waiting` (the tickets no open counter can call), "
    "`since` (epoch seconds, whole: since when, at the earliest the opening time)",
    AlarmCode.LOG_UNWRITABLE: "the controller cannot write its event log (a full or read-only disk, a "
    "damaged database file): every command that changes something is refused `internal` (`event log not "
    "writable`) and nothing is issued or called; it ends with the first write that succeeds. `data`: `since` "
    "(epoch seconds, whole: the first failed write), `error` (the database's own words, English, at most 120 "
    "characters)",
}


def alert(code: AlarmCode, **data: int | float | str) -> dict[str, Any]:
    """One entry of the summary's ``alerts``: a stable code and its details as fields."""
    return {"code": code.value, "data": data}


class FaultCode(StrEnum):
    """What is wrong with a node, in its health record: the field ``<name>_fault`` of FAULT_FIELDS next to
    the free-text detail (``printer_fault`` beside ``printer_error``). Stable: never renamed; new ones are
    only added. A receiver shows the detail (or the code) of a code it does not know."""

    PRINTER_UNREACHABLE = "printer_unreachable"
    PRINTER_SEND_FAILED = "printer_send_failed"
    PRINTER_OUTPUT_UNWRITABLE = "printer_output_unwritable"
    TICKET_UNRENDERABLE = "ticket_unrenderable"
    PRINTER_FAILED = "printer_failed"
    STORE_UNUSABLE = "store_unusable"
    STORE_FULL = "store_full"
    STORE_FAILED = "store_failed"
    FRAME_FAILED = "frame_failed"
    SPEECH_MISSING = "speech_missing"
    SPEECH_TIMEOUT = "speech_timeout"
    SPEECH_FAILED = "speech_failed"
    HEARD_UNWRITABLE = "heard_unwritable"


# a health field with a free-text detail -> the field with its stable fault code
FAULT_FIELDS: dict[str, str] = {
    "printer_error": "printer_fault",
    "offline_store": "offline_store_fault",
    "display_error": "display_fault",
    "speech": "speech_fault",
    "heard_error": "heard_fault",
}

FAULT_DESCRIPTIONS: dict[FaultCode, str] = {
    FaultCode.PRINTER_UNREACHABLE: "the printer does not answer: no connection (network), the port does not "
    "open (serial), the device is not found or not accessible (USB)",
    FaultCode.PRINTER_SEND_FAILED: "the printer was reached, but sending the ticket to it failed",
    FaultCode.PRINTER_OUTPUT_UNWRITABLE: "the file or folder the tickets are written to cannot be written",
    FaultCode.TICKET_UNRENDERABLE: "a ticket could not be laid out (a bug or a broken logo/font file)",
    FaultCode.PRINTER_FAILED: "the printer backend failed in an unforeseen way",
    FaultCode.STORE_UNUSABLE: "the offline number store cannot be opened (a read-only or missing data "
    "directory)",
    FaultCode.STORE_FULL: "the offline number store cannot be written: the disk is full",
    FaultCode.STORE_FAILED: "the offline number store failed otherwise (damaged file, I/O error)",
    FaultCode.FRAME_FAILED: "drawing the display's picture failed; it tries again every second",
    FaultCode.SPEECH_MISSING: "the speech synthesis (espeak-ng, pyttsx3) is not installed or does not start",
    FaultCode.SPEECH_TIMEOUT: "the speech synthesis took too long or hung",
    FaultCode.SPEECH_FAILED: "the speech synthesis failed otherwise",
    FaultCode.HEARD_UNWRITABLE: "the display cannot write the calls it announced to its data directory (a "
    "full or read-only disk): it goes on, but a restart may announce a recent call again",
}


@dataclass(frozen=True)
class Op:
    """One command operation: its name, the roles that may send it and its arguments."""

    name: str
    roles: frozenset[Role]
    args: dict[str, str]  # argument name -> short description (type in brackets)
    required: tuple[str, ...]
    summary: str
    example_args: dict[str, Any] = field(default_factory=dict)
    example_result: dict[str, Any] = field(default_factory=dict)
    # a query: it changes nothing, so its reply is not stored (a repeat is answered anew); public pages and
    # the city ask these, and a flood of them must not fill the controller's disk or memory with replies
    query: bool = False


_STAFF = frozenset({Role.COUNTER, Role.WEB})
# The optional ``current`` of the counter operations that act on or finish the counter's called ticket: the
# ticket the sender shows as called there, so that a stale page or a double click does not act on another one.
_CURRENT = (
    '[str] the ticket the sender shows as called here (number or id; "" for none): if another one (or none) '
    "is called, refused with invalid_state"
)
OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op(
            "ticket.issue",
            frozenset({Role.DISPENSER, Role.WEB}),
            {
                "service": "[id] service id",
                "priority": "[bool] priority ticket (counted)",
                "lang": "[str] the citizen's language (a code of waitroom.i18n.LANGUAGES, default de)",
            },
            ("service",),
            "Issue a walk-in ticket for a service.",
            {"service": "pass"},
            {
                "ticket": {
                    "id": "7f3a9c2e1b",
                    "number": "A012",
                    "service": "pass",
                    "ahead": 3,
                    "eta_min": 14,
                    "issued_at": 1764000000.0,
                }
            },
        ),
        Op(
            "ticket.cancel",
            frozenset({Role.DISPENSER, Role.WEB}),
            {"ticket": "[str] ticket number or id", "reason": "[str] e.g. print_failed"},
            ("ticket",),
            "Withdraw a waiting ticket (a dispenser: only its own, e.g. when printing failed).",
            {"ticket": "A012", "reason": "print_failed"},
            {"ticket": {"number": "A012", "state": "cancelled"}},
        ),
        Op(
            "ticket.lease",
            frozenset({Role.DISPENSER}),
            {"service": "[id] service id", "count": "[int 1..200] how many numbers"},
            ("service",),
            "Reserve a block of numbers for offline issuing.",
            {"service": "pass", "count": 20},
            {"lease": {"service": "pass", "prefix": "A", "first": 900, "count": 20, "day": "2026-11-24"}},
        ),
        Op(
            "ticket.report_offline",
            frozenset({Role.DISPENSER}),
            {
                "service": "[id]",
                "number": "[int] number from a lease",
                "issued_at": "[float] epoch seconds",
                "priority": "[bool]",
            },
            ("service", "number", "issued_at"),
            "Report a ticket issued offline from a leased block.",
            {"service": "pass", "number": 901, "issued_at": 1764000000.0},
            {"ticket": {"number": "A901", "service": "pass"}},
        ),
        Op(
            "request.void",
            frozenset({Role.DISPENSER}),
            {
                "request": "[str] the request id to settle: one of the sender's own (a command that got no "
                "reply)",
                "node": "[id] the node that sent that request: only the sender itself (the default); "
                "another node's is refused with forbidden",
            },
            ("request",),
            "Settle a request that got no reply without doing it: if the controller decided it, the stored "
            "answer (`state` `decided` with its `result` or `error`); if not, the request id is voided for "
            "good (`state` `voided`): the command arriving later does nothing and is answered "
            "`request_voided`.",
            {"request": "3f9a0c1d2e4b5a69"},
            {"request": {"id": "3f9a0c1d2e4b5a69", "state": "voided"}},
        ),
        Op(
            "ticket.reserve",
            frozenset({Role.CITY, Role.WEB}),
            {
                "service": "[id] service id",
                "lang": "[str] the citizen's language (a code of waitroom.i18n.LANGUAGES, default de)",
                "priority": "[bool] priority ticket at check-in (counted)",
            },
            ("service",),
            "Reserve a place for a citizen not there yet (remote ticket); the number comes at check-in.",
            {"service": "pass", "lang": "de"},
            {
                "reservation": {
                    "code": "K7P2QM",
                    "service": "pass",
                    "state": "reserved",
                    "number": None,
                    "eta_min": 35,
                    "arrive_by": 1764002100.0,
                    "arrive_by_local": "10:35",
                    "expires_at": 1764003000.0,
                    "reserved_at": 1764000000.0,
                }
            },
        ),
        Op(
            "ticket.reservation",
            frozenset({Role.CITY, Role.WEB}),
            {"code": "[str] reservation code"},
            ("code",),
            "Where a remote ticket stands: reserved, checked_in (with its number), lapsed.",
            {"code": "K7P2QM"},
            {"reservation": {"code": "K7P2QM", "state": "checked_in", "number": "A014"}},
            query=True,
        ),
        Op(
            "ticket.show",
            frozenset({Role.WEB}),
            {"tickets": f"[list of str] 1-{SHOW_TICKETS} ticket ids"},
            ("tickets",),
            "Where tickets of today stand, by id (no effect): number, service, state, and for one marked not "
            "appeared when (`at`, as in the `no_show` list of `queue/<service>`); an id not known today is "
            "left out. The web app asks only about ids its copy of the office does not know (a ticket page "
            "opened after the app started, whose ticket left the `queue` pages before or waits beyond their "
            "first 100), once per id, in batches: never per page view.",
            {"tickets": ["7f3a9c2e1b", "0b1c2d3e4f"]},
            {
                "tickets": [
                    {
                        "id": "7f3a9c2e1b",
                        "number": "A012",
                        "service": "pass",
                        "state": "no_show",
                        "at": 1764000600.0,
                    }
                ]
            },
            query=True,
        ),
        Op(
            "appointment.book",
            frozenset({Role.WEB}),
            {
                "code": "[str] booking code (3-32 letters/digits); omitted: the controller makes one",
                "service": "[id]",
                "slot": "[float] epoch seconds of the slot",
                "check_slot": "[bool] refuse unless capacity offers the slot (the booking page); default "
                "false: an entry of the booking system, taken as it is",
                "note": "[str] short note (appointments.notes; at most `appointments.note_max` characters "
                "and 400 bytes of UTF-8; no personal data)",
                "version": "[int] revision of an imported entry (SEQUENCE); an older one changes nothing",
            },
            ("service", "slot"),
            "Enter an appointment into the book (no personal data); the same code again with the same "
            "service and slot changes nothing.",
            {"service": "pass", "slot": 1764003600.0, "check_slot": True},
            {"appointment": {"code": "K7P2QX", "service": "pass", "slot": 1764003600.0, "changed": True}},
        ),
        Op(
            "appointment.move",
            frozenset({Role.WEB}),
            {
                "code": "[str] booking code",
                "slot": "[float] epoch seconds of the new slot",
                "service": "[id] new service (default: the same)",
                "check_slot": "[bool] refuse unless capacity offers the slot",
                "version": "[int] revision of an imported entry",
            },
            ("code", "slot"),
            "Move a booked appointment to another slot (not after its check-in).",
            {"code": "K7P2QX", "slot": 1764005400.0, "check_slot": True},
            {"appointment": {"code": "K7P2QX", "service": "pass", "slot": 1764005400.0, "changed": True}},
        ),
        Op(
            "appointment.cancel",
            frozenset({Role.WEB}),
            {"code": "[str] booking code", "version": "[int] revision of an imported entry"},
            ("code",),
            "Cancel an appointment (not after its check-in); cancelling again changes nothing.",
            {"code": "K7P2QX"},
            {"appointment": {"code": "K7P2QX", "cancelled": True, "changed": True}},
        ),
        Op(
            "appointment.slots",
            frozenset({Role.WEB}),
            {"service": "[id]", "day": "[str] YYYY-MM-DD in office time (default: the next day with a slot)"},
            ("service",),
            "The free slots of a service on one day, from the staffing plan less the walk-in share and the "
            "book (no effect; the booking page asks).",
            {"service": "pass", "day": "2026-11-24"},
            {"slots": {"service": "pass", "day": "2026-11-24", "free": [[1764003600.0, 2]], "days": []}},
            query=True,
        ),
        Op(
            "appointment.show",
            frozenset({Role.WEB}),
            {"code": "[str] booking code"},
            ("code",),
            "One appointment of the book (service, slot, state; no effect).",
            {"code": "K7P2QX"},
            {"appointment": {"code": "K7P2QX", "service": "pass", "slot": 1764003600.0, "state": "booked"}},
            query=True,
        ),
        Op(
            "appointment.checkin",
            frozenset({Role.DISPENSER, Role.WEB}),
            {
                "code": "[str] booking code or reservation code typed or scanned",
                "counter": "[id] web only: the citizen is at this counter, call them there at once",
            },
            ("code",),
            "Check in an appointment holder or a remote ticket (reservation code); issues their ticket.",
            {"code": "K7P2Q"},
            {"ticket": {"number": "T003", "service": "pass", "appointment": 1764003600.0}},
        ),
        Op(
            "counter.call_next",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Call the next ticket chosen by the steering rules; finishes the current one as served.",
            {"counter": "c3"},
            {"call": {"ticket": "A012", "counter": "c3", "reason": "longest waiting"}},
        ),
        Op(
            "counter.recall",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Call the current ticket again (shown and announced again).",
            {"counter": "c3"},
            {"call": {"ticket": "A012", "counter": "c3", "recall": True}},
        ),
        Op(
            "counter.served",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Mark the current ticket as served.",
            {"counter": "c3"},
            {"ticket": {"number": "A012", "state": "served"}},
        ),
        Op(
            "counter.no_show",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Mark the current ticket as not appeared.",
            {"counter": "c3"},
            {"ticket": {"number": "A012", "state": "no_show"}},
        ),
        Op(
            "counter.transfer",
            _STAFF,
            {
                "counter": "[id]",
                "service": "[id] target service",
                "to_counter": "[id] target counter",
                "current": _CURRENT,
            },
            ("counter",),
            "Send the current ticket on to another service or counter, keeping its arrival time.",
            {"counter": "c3", "service": "dl"},
            {"ticket": {"number": "A012", "state": "waiting"}},
        ),
        Op(
            "counter.park",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Park the current ticket (e.g. the citizen fetches a document).",
            {"counter": "c3"},
            {"ticket": {"number": "A012", "state": "parked"}},
        ),
        Op(
            "counter.call_ticket",
            _STAFF,
            {"counter": "[id]", "ticket": "[str] number or id", "current": _CURRENT},
            ("counter", "ticket"),
            "Call a specific waiting or parked ticket, or one marked not appeared (`counter.no_show`) "
            "within the last `controller.no_show_return_min` minutes (the citizen came back; later: "
            "`unknown_ticket` with `reason` `no_show_expired`). The ticket keeps its number, service, "
            "arrival and appointment.",
            {"counter": "c3", "ticket": "A012"},
            {"call": {"ticket": "A012", "counter": "c3"}},
        ),
        Op(
            "counter.open",
            _STAFF,
            {"counter": "[id]"},
            ("counter",),
            "Open the counter.",
            {"counter": "c3"},
            {"counter": {"id": "c3", "state": "open"}},
        ),
        Op(
            "counter.pause",
            _STAFF,
            {"counter": "[id]", "reason": "[str] e.g. break", "current": _CURRENT},
            ("counter",),
            "Pause the counter with a reason.",
            {"counter": "c3", "reason": "break"},
            {"counter": {"id": "c3", "state": "paused"}},
        ),
        Op(
            "counter.close",
            _STAFF,
            {"counter": "[id]", "current": _CURRENT},
            ("counter",),
            "Close the counter.",
            {"counter": "c3"},
            {"counter": {"id": "c3", "state": "closed"}},
        ),
        Op(
            "assist.request",
            frozenset({Role.ASSIST, Role.WEB}),
            {"terminal": "[id] the terminal node"},
            ("terminal",),
            "Ask for help at a self-service terminal.",
            {"terminal": "sb1"},
            {"assist": {"id": "h7", "terminal": "sb1", "state": "pending"}},
        ),
        Op(
            "assist.cancel",
            frozenset({Role.ASSIST, Role.WEB}),
            {"terminal": "[id]", "request": "[str]"},
            ("terminal",),
            "Withdraw the open request of a terminal.",
            {"terminal": "sb1"},
            {"assist": {"id": "h7", "state": "cancelled"}},
        ),
        Op(
            "assist.acknowledge",
            _STAFF,
            {"request": "[str] request id", "counter": "[id] who comes"},
            ("request",),
            "A staff member is on the way.",
            {"request": "h7", "counter": "c3"},
            {"assist": {"id": "h7", "state": "acknowledged"}},
        ),
        Op(
            "assist.resolve",
            _STAFF,
            {"request": "[str] request id", "counter": "[id]"},
            ("request",),
            "The citizen has been helped.",
            {"request": "h7"},
            {"assist": {"id": "h7", "state": "resolved"}},
        ),
        Op(
            "intake.set",
            frozenset({Role.WEB}),
            {"service": "[id]", "open": "[bool]", "reason": "[str]", "auto": "[bool] back to automatic"},
            ("service",),
            "Manually stop or reopen walk-in intake for a service, or return it to automatic.",
            {"service": "dl", "open": False, "reason": "Annahmeschluss"},
            {"intake": {"service": "dl", "open": False}},
        ),
    ]
}

# The operations each role may send (derived, for docs and ACL comments).
ROLE_OPS: dict[Role, list[str]] = {r: sorted(n for n, op in OPS.items() if r in op.roles) for r in Role}

# QoS and retain per message type.
QOS = {
    "state": 1,
    "queue": 1,
    "counter": 1,
    "public": 1,
    "event": 1,
    "status": 1,
    "health": 0,
    "cmd": 1,
    "reply": 1,
    "sim": 0,
    "recommend": 1,
}
RETAIN = {
    "state": True,
    "queue": True,
    "counter": True,
    "public": True,
    "recommend": True,
    "event": False,
    "status": True,
    "health": True,
    "cmd": False,
    "reply": False,
    "sim": False,
}


class ContractError(ValueError):
    """A topic or payload does not follow the MQTT contract."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check_account(value: object) -> str:
    """Return ``value`` if it is an MQTT account name (a node id or ``<node id>.<n>``), else raise."""
    if not isinstance(value, str) or not ACCOUNT_RE.match(value):
        raise ContractError(
            ErrorCode.BAD_REQUEST, f"MQTT account {value!r} is not a node id or <node id>.<worker number>"
        )
    return value


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a valid id (``[a-z0-9_-]``, 1-32 characters), else raise ContractError."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ContractError(
            ErrorCode.BAD_REQUEST, f"{what} {value!r} is not a valid id: use 1-32 of [a-z0-9_-]"
        )
    return value


# ---------------------------------------------------------------------------------------------- topics
@dataclass(frozen=True)
class Topics:
    """Topic builders for one office."""

    office: str

    def __post_init__(self) -> None:
        check_id(self.office, "office")

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.office}"

    def state(self) -> str:
        return f"{self.base}/state"

    def queue(self, service: str) -> str:
        """A service's ticket list page; ``queue("+")`` subscribes to all of them."""
        return f"{self.base}/queue/{service if service == '+' else check_id(service, 'service id')}"

    def counter(self, counter: str) -> str:
        """A counter's detail; ``counter("+")`` subscribes to all of them."""
        return f"{self.base}/counter/{counter if counter == '+' else check_id(counter, 'counter id')}"

    def public(self) -> str:
        return f"{self.base}/public"

    def bridge(self) -> str:
        """The office bridge's link state on the city broker: mosquitto's notification ("1" up, "0" down;
        the "0" is the bridge's last will, so a cut link shows at once)."""
        return f"{self.base}/bridge"

    def recommend(self, service: str) -> str:
        """Retained advice from the city service: the office with the shortest wait for ``service``."""
        return f"{self.base}/city/recommend/{check_id(service, 'service')}"

    def recommendations(self) -> str:
        """Subscription filter for every service's recommendation of this office."""
        return f"{self.base}/city/recommend/+"

    def event(self, kind: EventKind | str) -> str:
        return f"{self.base}/event/{EventKind(kind).value}"

    def events(self) -> str:
        """Subscription filter for every event kind."""
        return f"{self.base}/event/+"

    def node(self, node_id: str, kind: str) -> str:
        check_id(node_id, "node")
        if kind not in ("status", "health", "cmd", "reply", "sim"):
            raise ValueError(f"unknown node topic kind {kind!r}")
        return f"{self.base}/node/{node_id}/{kind}"

    def status(self, node_id: str) -> str:
        return self.node(node_id, "status")

    def health(self, node_id: str) -> str:
        return self.node(node_id, "health")

    def cmd(self, node_id: str) -> str:
        return self.node(node_id, "cmd")

    def reply(self, node_id: str) -> str:
        return self.node(node_id, "reply")

    def sim(self, node_id: str) -> str:
        return self.node(node_id, "sim")

    def all_nodes(self, kind: str) -> str:
        """Subscription filter, e.g. every node's cmd topic."""
        return f"{self.base}/node/+/{kind}"

    def parse_node_topic(self, topic: str) -> tuple[str, str]:
        """Split ``.../node/<id>/<kind>`` into (node id, kind); raise ContractError otherwise."""
        prefix = f"{self.base}/node/"
        if not topic.startswith(prefix):
            raise ContractError(
                ErrorCode.BAD_REQUEST, f"topic {topic!r} is not a node topic of {self.office}"
            )
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 2 or not ID_RE.match(parts[0]):
            raise ContractError(ErrorCode.BAD_REQUEST, f"topic {topic!r} is not <node>/<kind>")
        return parts[0], parts[1]


# City-wide subscription filters (the city broker carries every office's bridged topics).
CITY_FILTERS = {
    "public": f"{ROOT}/+/public",
    "bridge": f"{ROOT}/+/bridge",
    "controller": f"{ROOT}/+/node/{CONTROLLER_NODE_ID}/status",
    "reply": f"{ROOT}/+/node/{CITY_NODE_ID}/reply",
}


def parse_city_topic(topic: str) -> tuple[str, str]:
    """Split a city broker topic into (office id, kind) with kind one of CITY_FILTERS or ``recommend:<svc>``;
    raise ContractError for anything else."""
    parts = topic.split("/")
    if len(parts) >= 3 and "/".join(parts[:2]) == ROOT and ID_RE.match(parts[2]):
        rest = parts[3:]
        if rest == ["public"]:
            return parts[2], "public"
        if rest == ["bridge"]:
            return parts[2], "bridge"
        if rest == ["node", CONTROLLER_NODE_ID, "status"]:
            return parts[2], "controller"
        if rest == ["node", CITY_NODE_ID, "reply"]:
            return parts[2], "reply"
        if len(rest) == 3 and rest[:2] == ["city", "recommend"] and ID_RE.match(rest[2]):
            return parts[2], f"recommend:{rest[2]}"
    raise ContractError(ErrorCode.BAD_REQUEST, f"topic {topic!r} is not a city topic")


def validate_publish_topic(topic: str) -> str:
    """Publish topics carry no wildcards and stay under the versioned root."""
    if "+" in topic or "#" in topic or not topic.startswith(ROOT + "/"):
        raise ValueError(f"not a publishable waitroom topic: {topic!r}")
    return topic


def validate_subscribe_filter(topic: str) -> str:
    """Subscription filters may use + and # as whole levels only (# last)."""
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and (level != "#" or i != len(levels) - 1)):
            raise ValueError(f"invalid subscription filter: {topic!r}")
    return topic


# --------------------------------------------------------------------------------------------- payloads
def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. orjson writes it about ten times faster than the standard library (a queue page of
    12 KB: 12 against 150 µs), and the controller encodes every message it publishes and every event it
    stores. What orjson does not take (keys that are not strings, NumPy scalars, ...) the standard library
    writes as before; NaN and Infinity, which no receiver accepts, become null."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(payload: dict[str, Any]) -> bytes:
    """The same JSON with sorted keys: equal content gives equal bytes (request digests)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


MAX_DEPTH = 16  # nesting of a command payload (the contract's deepest is 3)
_ID_IN_RAW = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,64})"')


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return d
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def request_id_of(raw: bytes) -> str | None:
    """The request id of a payload that could not be decoded, when one can be read off it."""
    m = _ID_IN_RAW.search(raw[:4096])
    return m.group(1).decode() if m else None


def decode(raw: bytes, limit: int | None = MAX_PAYLOAD_BYTES, max_depth: int | None = None) -> dict[str, Any]:
    """Decode a JSON object payload or raise ContractError(bad_json / too_large).

    The size limit guards the controller against oversized commands; receivers of the controller's own
    messages pass ``limit=None``. NaN and Infinity are not JSON and are refused; so is text with a lone
    surrogate (it cannot be encoded again) and, with ``max_depth``, deeper nesting.
    """
    if limit is not None and len(raw) > limit:
        raise ContractError(ErrorCode.TOO_LARGE, f"payload has {len(raw)} bytes, limit {limit}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ContractError(ErrorCode.BAD_JSON, "payload is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(ErrorCode.BAD_JSON, f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(ErrorCode.BAD_JSON, "payload must be a JSON object")
    # Both checks walk the payload; a command that cannot fail them (fewer brackets than levels, no escaped
    # surrogate: valid UTF-8 carries none itself) is not walked at all.
    if (
        max_depth is not None
        and raw.count(b"{") + raw.count(b"[") > max_depth
        and _depth(data, max_depth) > max_depth
    ):
        raise ContractError(ErrorCode.BAD_JSON, f"payload is nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ContractError(ErrorCode.BAD_JSON, "payload has a lone surrogate (not UTF-8 text)") from None
    return data


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def command(op: str, args: dict[str, Any] | None = None, request_id: str | None = None) -> dict[str, Any]:
    """Build a command payload."""
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}")
    return {"id": request_id or new_request_id(), "op": op, "args": args or {}}


@dataclass(frozen=True)
class Command:
    id: str
    op: Op
    args: dict[str, Any]


def parse_command(data: dict[str, Any], role: Role) -> Command:
    """Validate a decoded command for a node of ``role``; raise ContractError with a stable code."""
    rid = data.get("id")
    if not isinstance(rid, str) or not REQUEST_ID_RE.match(rid):
        raise ContractError(ErrorCode.BAD_REQUEST, "field 'id' must be a request id of 1-64 [A-Za-z0-9_.:-]")
    name = data.get("op")
    if not isinstance(name, str) or name not in OPS:
        raise ContractError(
            ErrorCode.UNKNOWN_OP, f"unknown operation {name!r}; known: {', '.join(sorted(OPS))}"
        )
    op = OPS[name]
    if role not in op.roles:
        raise ContractError(ErrorCode.FORBIDDEN, f"a {role.value} node may not use {name}")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise ContractError(ErrorCode.BAD_REQUEST, "field 'args' must be an object")
    unknown = sorted(set(args) - set(op.args))
    if unknown:  # a newer node talking to an older controller: ignored (see "Versions" in the contract doc)
        log.warning("%s: ignored unknown argument(s) %s", name, ", ".join(k[:40] for k in unknown[:10]))
        args = {k: v for k, v in args.items() if k in op.args}
    missing = [a for a in op.required if a not in args]
    if missing:
        raise ContractError(ErrorCode.BAD_REQUEST, f"{name}: missing argument(s) {', '.join(missing)}")
    return Command(rid, op, args)


def ok_reply(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


REPLY_MESSAGE_BYTES = 400  # an error message quotes the bad value: cut, so a reply stays within 1024 bytes


REPLY_DATA_CHARS = 40  # each value of an error's ``data`` (ids, ticket numbers, states), cut to this


def error_reply(
    request_id: str | None, code: ErrorCode, message: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An error reply; a message that quotes a long bad value is cut to ``REPLY_MESSAGE_BYTES`` of UTF-8
    (JSON escaping at most doubles it), so a reply stays within its documented bound whatever was sent.

    ``data``: the refusal's details as fields (``{"counter": "c2"}``), so that a node can say them in its own
    words instead of showing the English ``message``. Only text and whole numbers are kept, text cut to
    ``REPLY_DATA_CHARS``; the field is left out when there is nothing to say."""
    raw = message.encode("utf-8", "replace")
    if len(raw) > REPLY_MESSAGE_BYTES:
        message = raw[: REPLY_MESSAGE_BYTES - 3].decode("utf-8", "ignore") + "..."
    error: dict[str, Any] = {"code": code.value, "message": message}
    fields = {
        str(k)[:REPLY_DATA_CHARS]: v[:REPLY_DATA_CHARS] if isinstance(v, str) else v
        for k, v in (data or {}).items()
        if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    }
    if fields:
        error["data"] = dict(list(fields.items())[:8])
    return {"id": request_id, "ok": False, "error": error}


def controller_identity(instance: str, since: float, host: str, pid: int) -> dict[str, Any]:
    """The fields by which the controller's status messages say which process it is: ``instance`` (random
    per start), ``since`` (its start, epoch seconds), ``host`` and ``pid``. A second controller of the office
    steps down on them (waitroom.service.SoleController)."""
    return {"instance": instance, "since": since, "host": host, "pid": pid}


def status_payload(
    node_id: str,
    role: Role | str,
    online: bool,
    version: str = "",
    *,
    identity: Mapping[str, Any] | None = None,
    clean: bool = False,
) -> dict[str, Any]:
    """A node's status message (birth, last will, its own ``offline``). ``identity``: the controller's
    (``controller_identity``); with it, the controller's own ``offline`` (``clean``) says
    ``"clean": true``."""
    payload: dict[str, Any] = {
        "node": node_id,
        "role": str(role),
        "status": "online" if online else "offline",
        "version": version,
        "ts": round(time.time(), 3),
    }
    if identity:
        payload.update(identity)
        if clean and not online:
            payload["clean"] = True
    return payload


# ------------------------------------------------------------------------------------------------- ACL
def acl_rules(office: str) -> list[tuple[Role, str, str]]:
    """Broker ACL as (role, access, topic pattern); ``%u`` is the node's MQTT user name = its node id.

    Every role reads the public office state and events; each writes only below its own node id.
    """
    t = Topics(office)
    own = f"{t.base}/node/%u"
    common_read = [
        ("read", t.state()),
        ("read", t.public()),
        ("read", t.events()),
        ("read", f"{own}/reply"),
        ("read", f"{own}/sim"),
        ("read", t.status(CONTROLLER_NODE_ID)),  # displays show an offline sign when it is gone
        ("read", t.recommendations()),  # the city's advice: another office with a shorter wait
    ]
    node_write = [("write", f"{own}/status"), ("write", f"{own}/health")]
    rules: list[tuple[Role, str, str]] = []
    for role in Role:
        if role is Role.CONTROLLER:
            rules += [(role, "readwrite", f"{t.base}/#")]
            continue
        entries = list(common_read) + list(node_write)
        if ROLE_OPS[role]:
            entries.append(("write", f"{own}/cmd"))
        if role is Role.WEB:
            # The web app shows node health. It publishes only its own status, health and commands: the
            # demo's virtual buttons (``sim``) run on the demo's own broker, which has no ACL; a production
            # web account that could write every node's ``sim`` topic could press any button of a node
            # started with ``--simulate``.
            entries += [
                ("read", t.queue("+")),
                ("read", t.counter("+")),
                ("read", t.all_nodes("status")),
                ("read", t.all_nodes("health")),
            ]
        rules += [(role, access, topic) for access, topic in entries]
    return rules
