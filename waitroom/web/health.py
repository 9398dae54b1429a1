"""A node's health record (``node/<id>/health``) as lines an office can read on the admin page.

Every node publishes a flat record (waitroom/node.py ``set_health``): the dispenser its printer, offline
numbers and refusals (edge/dispenser/node.py ``health``), the display its screen and announcements
(displays/node.py, displays/announce.py ``health``), the counter and assistance buttons their light and
presses (edge/counter.py, edge/assist.py), the web app its live pages. Each known field gets a label, a
value in words with its unit, and a warning when it reports a bad state (the page says "Achtung" in text,
not only in colour). A field this web app does not know (a newer node) is still shown, as ``key: value``.

A fault's free-text detail (``printer_error``, ``offline_store``, ``display_error``, ``speech``) comes with a
stable code (``printer_fault``, ...: waitroom.contract.FAULT_FIELDS); a known code is said as a sentence, the
node's own words kept as the line's ``detail`` for the technician. The controller's alarms (the summary's
``alerts``, contract.AlarmCode) are said the same way (``alarms``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from waitroom.config import Config
from waitroom.contract import FAULT_FIELDS, AlarmCode, FaultCode
from waitroom.i18n import N_, Nn_, fmt_number, t, tn

# the record's frame (shown in other columns or not at all)
FRAME = frozenset({"node", "role", "version", "ts"})


@dataclass(frozen=True)
class Line:
    """One line of a node's health: a label, its value in words, and whether it is a bad state."""

    key: str
    label: str
    value: str
    warn: bool = False
    known: bool = True
    detail: str = ""  # the node's own words (often English) behind a sentence, for the technician


# field -> (label key, the states it may report, the states that are bad); values in words: "<label>.<state>"
STATES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "status": (
        N_("web.health.status"),
        (N_("web.health.status.ok"), N_("web.health.status.degraded"), N_("web.health.status.error")),
        ("degraded", "error"),
    ),
    "printer": (
        N_("web.health.printer"),
        (
            N_("web.health.printer.ok"),
            N_("web.health.printer.paper_low"),
            N_("web.health.printer.paper_out"),
            N_("web.health.printer.cover_open"),
            N_("web.health.printer.offline"),
            N_("web.health.printer.error"),
            N_("web.health.printer.unknown"),
        ),
        ("paper_low", "paper_out", "cover_open", "offline", "error"),
    ),
    "controller": (
        N_("web.health.controller"),
        (N_("web.health.controller.online"), N_("web.health.controller.offline")),
        ("offline",),
    ),
    "display": (
        N_("web.health.display"),
        (N_("web.health.display.ok"), N_("web.health.display.error")),
        ("error",),
    ),
    "audio": (
        N_("web.health.audio"),
        (N_("web.health.audio.ok"), N_("web.health.audio.quiet"), N_("web.health.audio.error")),
        ("error",),
    ),
    "mode": (
        N_("web.health.mode"),
        (
            N_("web.health.mode.idle"),
            N_("web.health.mode.serving"),
            N_("web.health.mode.paused"),
            N_("web.health.mode.closed"),
            N_("web.health.mode.offline"),
            N_("web.health.mode.unknown"),
        ),
        ("offline",),
    ),
    "assist": (
        N_("web.health.assist"),
        (
            N_("web.health.assist.none"),
            N_("web.health.assist.pending"),
            N_("web.health.assist.acknowledged"),
        ),
        (),
    ),
}

# field -> label key, for counts (a number of things)
COUNTS: dict[str, str] = {
    "issued": N_("web.health.issued"),
    "offline_issued": N_("web.health.offline_issued"),
    "priority_issued": N_("web.health.priority_issued"),
    "offline_unreported": N_("web.health.offline_unreported"),
    "announce_queue": N_("web.health.announce_queue"),
    "announce_skipped": N_("web.health.announce_skipped"),
    "announce_missed": N_("web.health.announce_missed"),
    "presses": N_("web.health.presses"),
    "doubled": N_("web.health.doubled"),
    "sse_clients": N_("web.health.sse_clients"),
}
# counts that are a problem when above zero
BAD_COUNTS = frozenset({"offline_unreported"})

# dispenser refusal reasons (edge/dispenser/node.py ``_refuse``)
REFUSALS = {
    "rate_limited": N_("web.health.refused.rate_limited"),
    "busy": N_("web.health.refused.busy"),
    "intake_stopped": N_("web.health.refused.intake_stopped"),
    "printer": N_("web.health.refused.printer"),
    "print_failed": N_("web.health.refused.print_failed"),
    "no_numbers": N_("web.health.refused.no_numbers"),
    "store": N_("web.health.refused.store"),
    # a check-in at the dispenser's scanner (edge/dispenser/node.py): its own reasons and the controller's
    "error": N_("web.health.refused.error"),
    "controller_offline": N_("web.health.refused.controller_offline"),
    "unknown_appointment": N_("web.health.refused.unknown_appointment"),
    "ticket_done": N_("web.health.refused.ticket_done"),
    "appointment_expired": N_("web.health.refused.appointment_expired"),
    "appointment_cancelled": N_("web.health.refused.appointment_cancelled"),
    "unknown_service": N_("web.health.refused.unknown_service"),
    "office_closed": N_("web.health.refused.office_closed"),
    "clock_behind": N_("web.health.refused.clock_behind"),
    "internal": N_("web.health.refused.internal"),
}

# a fault's stable code (contract.FAULT_FIELDS: ``printer_fault`` next to ``printer_error``) as a sentence
FAULTS = {
    FaultCode.PRINTER_UNREACHABLE: N_("web.health.fault.printer_unreachable"),
    FaultCode.PRINTER_SEND_FAILED: N_("web.health.fault.printer_send_failed"),
    FaultCode.PRINTER_OUTPUT_UNWRITABLE: N_("web.health.fault.printer_output_unwritable"),
    FaultCode.TICKET_UNRENDERABLE: N_("web.health.fault.ticket_unrenderable"),
    FaultCode.PRINTER_FAILED: N_("web.health.fault.printer_failed"),
    FaultCode.STORE_UNUSABLE: N_("web.health.fault.store_unusable"),
    FaultCode.STORE_FULL: N_("web.health.fault.store_full"),
    FaultCode.STORE_FAILED: N_("web.health.fault.store_failed"),
    FaultCode.FRAME_FAILED: N_("web.health.fault.frame_failed"),
    FaultCode.SPEECH_MISSING: N_("web.health.fault.speech_missing"),
    FaultCode.SPEECH_TIMEOUT: N_("web.health.fault.speech_timeout"),
    FaultCode.SPEECH_FAILED: N_("web.health.fault.speech_failed"),
    FaultCode.HEARD_UNWRITABLE: N_("web.health.fault.heard_unwritable"),
}
# the code fields are said with their detail field, not as lines of their own
FAULT_CODE_FIELDS = frozenset(FAULT_FIELDS.values())

# the controller's alarms (state.alerts, contract.AlarmCode) as sentences
ALARMS = {
    AlarmCode.CLOCK_BEHIND: N_("web.admin.alarm.clock_behind"),
    AlarmCode.CLOCK_STEPPED_BACK: N_("web.admin.alarm.clock_stepped_back"),
    AlarmCode.UNSTAFFED_SERVICE: Nn_("web.admin.alarm.unstaffed_service"),  # by the count of waiting
    AlarmCode.LOG_UNWRITABLE: N_("web.admin.alarm.log_unwritable"),
}
# ... said to a clerk at a counter (the staff page), where the admin's words name a technician's task: what it
# means at the counter and what to do; the others are said the same to both
STAFF_ALARMS = {
    AlarmCode.CLOCK_BEHIND: N_("web.staff.alarm.clock_behind"),
    AlarmCode.CLOCK_STEPPED_BACK: N_("web.staff.alarm.clock_stepped_back"),
    AlarmCode.LOG_UNWRITABLE: N_("web.staff.alarm.log_unwritable"),
}

# the order of the lines: the overall state first, the known fields next, unknown ones last
ORDER = (
    "status",
    "printer",
    "printer_error",
    "controller",
    "offline_store",
    "buttons_stuck",
    "display",
    "display_error",
    "audio",
    "speech",
    "heard_error",
    "counter",
    "mode",
    "last_error",
    "assist",
    "zone",
    "issued",
    "offline_issued",
    "priority_issued",
    "offline_unreported",
    "offline_numbers_left",
    "intake_stopped",
    "refused",
    "last_refusal",
    "last_ticket",
    "advice",
    "announce_queue",
    "announce_skipped",
    "announce_missed",
    "presses",
    "doubled",
    "sse_clients",
    "printer_backend",
    "last_ticket_png",
    "cert_until",
    "broker_cert_until",
    "uptime_s",
)

# the ends of the TLS certificates a node reports (waitroom.mqtt.MqttLink.tls_health): warned about this many
# days before, when `waitroom broker node-certs` renews them (mqtt_broker.pki.OfficePki.renew_days)
CERT_FIELDS = {
    "cert_until": N_("web.health.cert_until"),
    "broker_cert_until": N_("web.health.broker_cert_until"),
}
CERT_WARN_DAYS = 30

# a node's role in words (the admin page's "Rolle" column)
ROLES = {
    "controller": N_("web.admin.role.controller"),
    "dispenser": N_("web.admin.role.dispenser"),
    "display": N_("web.admin.role.display"),
    "counter": N_("web.admin.role.counter"),
    "assist": N_("web.admin.role.assist"),
    "web": N_("web.admin.role.web"),
    "city": N_("web.admin.role.city"),
}


def role(name: str, lang: str) -> str:
    """A node's role in words; a role this page does not know as it is."""
    return t(ROLES[name], lang) if name in ROLES else name


OTHER_KEYS = (
    N_("web.health.warn"),
    N_("web.health.none"),
    N_("web.health.detail"),
    N_("web.admin.alarm.unknown"),
    N_("web.health.printer_error"),
    N_("web.health.offline_store"),
    N_("web.health.offline_store.ok"),
    N_("web.health.buttons_stuck"),
    N_("web.health.display_error"),
    N_("web.health.speech"),
    N_("web.health.heard_error"),
    N_("web.health.speech.ok"),
    N_("web.health.speech.off"),
    N_("web.health.speech.error"),
    N_("web.health.counter"),
    N_("web.health.last_error"),
    N_("web.health.last_error.timeout"),
    N_("web.health.last_error.offline"),
    N_("web.health.zone"),
    N_("web.health.zone.all"),
    N_("web.health.offline_numbers_left"),
    N_("web.health.intake_stopped"),
    N_("web.health.refused"),
    N_("web.health.last_refusal"),
    N_("web.health.last_ticket"),
    N_("web.health.advice"),
    N_("web.health.printer_backend"),
    N_("web.health.last_ticket_png"),
    N_("web.health.uptime_s"),
    N_("web.health.cert.valid"),
    N_("web.health.cert.ends_soon"),
    N_("web.health.cert.ended"),
    N_("web.admin.alarm.certificate"),
    N_("web.health.days_hours"),
    N_("web.health.hours_minutes"),
    N_("web.health.minutes"),
    N_("web.health.seconds"),
)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def raw(value: Any) -> str:
    """A value as it came (unknown fields): text as is, anything else as compact JSON, cut to 200 chars."""
    if isinstance(value, str):
        return value[:200]
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)[:200]
    except (TypeError, ValueError):
        return repr(value)[:200]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def duration(seconds: int, lang: str) -> str:
    """An uptime in words: "3 Tg. 4 Std.", "2 Std. 5 Min.", "7 Min.", "40 s"."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return t("web.health.days_hours", lang, d=days, h=hours)
    if hours:
        return t("web.health.hours_minutes", lang, h=hours, m=minutes)
    if minutes:
        return t("web.health.minutes", lang, m=minutes)
    return t("web.health.seconds", lang, s=secs)


class Describer:
    """Turns one health record into lines, in ``lang``, with the office's names for services and counters."""

    def __init__(self, cfg: Config, lang: str):
        self.cfg, self.lang = cfg, lang

    def tr(self, key: str, **values: Any) -> str:
        return t(key, self.lang, **values)

    def count(self, value: Any) -> str:
        """A count as the page's language writes it ("1.234"); anything else as the node sent it."""
        n = _count(value)
        return raw(value) if n is None else fmt_number(n, self.lang)

    def service(self, sid: Any) -> str:
        sid = str(sid)
        return self.cfg.service(sid).name.get(self.lang) if sid in self.cfg.service_ids else sid

    def counter(self, cid: Any) -> str:
        cid = str(cid)
        return self.cfg.counter(cid).name.get(self.lang) if cid in self.cfg.counter_ids else cid

    def per_service(self, value: Mapping[str, Any], show: Callable[[Any], str]) -> str:
        return ", ".join(f"{self.service(sid)}: {show(v)}" for sid, v in sorted(value.items()))

    def clock(self, ts: Any) -> str:
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            return ""
        try:
            return dt.datetime.fromtimestamp(ts, self.cfg.office.tz).strftime("%H:%M")
        except (OverflowError, OSError, ValueError):
            return ""

    def date(self, ts: int) -> str:
        try:
            return dt.datetime.fromtimestamp(ts, self.cfg.office.tz).strftime("%d.%m.%Y")
        except (OverflowError, OSError, ValueError):
            return str(ts)

    def certificate(self, key: str, until: int, now: float) -> Line:
        """When a TLS certificate ends, a warning from CERT_WARN_DAYS before (mosquitto then refuses it)."""
        label, date = self.tr(CERT_FIELDS[key]), self.date(until)
        if until <= now:
            return Line(key, label, self.tr("web.health.cert.ended", date=date), True)
        if until - now <= CERT_WARN_DAYS * 86400:
            return Line(key, label, self.tr("web.health.cert.ends_soon", date=date), True)
        return Line(key, label, self.tr("web.health.cert.valid", date=date))

    def fault(self, key: str, label: str, detail: Any, code: Any, said: str | None = None) -> Line:
        """A fault's line: the sentence for its code, with the node's own words as the detail; a code this
        page does not know (or none: an older node) as the node said it (``said``: in the page's words)."""
        if isinstance(code, str) and code in FAULTS:
            shown = raw(detail) if not _empty(detail) else ""
            return Line(key, label, self.tr(FAULTS[code]), True, detail=shown if shown != code else "")
        if said is not None:
            return Line(key, label, said, True)
        return Line(key, label, raw(detail if not _empty(detail) else code), True)

    def line(self, key: str, value: Any, code: Any = None) -> Line | None:
        """The line for one known field (None: nothing to say, e.g. no error), or the raw line; ``code``:
        the field's fault code (FAULT_FIELDS), if the node sent one."""
        tr = self.tr
        if key in STATES:
            label, _, bad = STATES[key]
            text_key = f"{label}.{value}"
            if isinstance(value, str) and text_key in STATES[key][1]:
                return Line(key, tr(label), tr(text_key), value in bad)
            return Line(key, tr(label), raw(value), known=False)  # a state this page does not know yet
        if key in COUNTS:
            n = _count(value)
            if n is None:
                return None if value is None else Line(key, tr(COUNTS[key]), raw(value), known=False)
            return Line(key, tr(COUNTS[key]), fmt_number(n, self.lang), key in BAD_COUNTS and n > 0)
        if key in ("printer_error", "display_error", "heard_error"):
            if _empty(value) and _empty(code):
                return None
            return self.fault(key, tr(f"web.health.{key}"), value, code)
        if key == "offline_store":
            if value == "ok":
                return Line(key, tr("web.health.offline_store"), tr("web.health.offline_store.ok"))
            return self.fault(key, tr("web.health.offline_store"), value, code)
        if key == "speech":
            if value in ("ok", "off"):
                return Line(key, tr("web.health.speech"), tr(f"web.health.speech.{value}"))
            detail = str(value).removeprefix("error:").strip()
            said = tr("web.health.speech.error", detail=raw(detail))
            return self.fault(key, tr("web.health.speech"), detail, code, said)
        if key == "buttons_stuck":
            if _empty(value):
                return None
            names = value if isinstance(value, list) else [value]
            return Line(key, tr("web.health.buttons_stuck"), ", ".join(self.service(s) for s in names), True)
        if key == "counter":
            return Line(key, tr("web.health.counter"), self.counter(value))
        if key == "last_error":
            if _empty(value):
                return None
            if value in ("timeout", "offline"):
                return Line(key, tr("web.health.last_error"), tr(f"web.health.last_error.{value}"), True)
            from waitroom.web import refusals

            return Line(key, tr("web.health.last_error"), refusals.text(self.cfg, self.lang, str(value)))
        if key == "zone":
            shown = tr("web.health.zone.all") if value == "all" else raw(value)
            return Line(key, tr("web.health.zone"), shown)
        if key == "offline_numbers_left" and isinstance(value, dict):
            if not value:
                return None
            low = any(_count(v) == 0 for v in value.values())
            return Line(key, tr("web.health.offline_numbers_left"), self.per_service(value, self.count), low)
        if key == "intake_stopped" and isinstance(value, dict):
            if not value:
                return None
            return Line(key, tr("web.health.intake_stopped"), self.per_service(value, raw))
        if key == "advice" and isinstance(value, dict):
            if not value:
                return None
            return Line(key, tr("web.health.advice"), self.per_service(value, raw))
        if key == "refused" and isinstance(value, dict):
            if not value:
                return None
            parts = [
                f"{tr(REFUSALS[r]) if r in REFUSALS else r}: {self.count(n)}"
                for r, n in sorted(value.items())
            ]
            return Line(key, tr("web.health.refused"), ", ".join(parts))
        if key == "last_refusal" and isinstance(value, dict):
            said = value.get("text")
            if isinstance(said, dict):
                said = said.get(self.lang) or said.get("de")
            reason = value.get("reason")
            what = (
                said if isinstance(said, str) and said else tr(REFUSALS.get(str(reason), "web.health.none"))
            )
            when = self.clock(value.get("ts"))
            return Line(key, tr("web.health.last_refusal"), f"{when} {what}".strip())
        if key in ("last_ticket", "printer_backend", "last_ticket_png"):
            return None if _empty(value) else Line(key, tr(f"web.health.{key}"), raw(value))
        if key in CERT_FIELDS:
            n = _count(value)
            if n is None:
                return None if value is None else Line(key, tr(CERT_FIELDS[key]), raw(value), known=False)
            return self.certificate(key, n, time.time())
        if key == "uptime_s":
            n = _count(value)
            return Line(key, tr("web.health.uptime_s"), duration(n, self.lang)) if n is not None else None
        if _empty(value) and key in ORDER:
            return None
        return Line(key, key, raw(value), known=False)

    def lines(self, health: Mapping[str, Any]) -> list[Line]:
        fields = {k: v for k, v in health.items() if k not in FRAME and k not in FAULT_CODE_FIELDS}
        known = [k for k in ORDER if k in fields]
        unknown = sorted(k for k in fields if k not in ORDER)
        out = []
        for key in known:
            line = self.line(key, fields[key], health.get(FAULT_FIELDS.get(key, ""), None))
            if line is not None:
                out.append(line)
        out.extend(Line(k, k, raw(fields[k]), known=False) for k in unknown)
        return out


def describe(cfg: Config, lang: str, health: Mapping[str, Any]) -> list[Line]:
    """The lines of one node's health record in ``lang`` (bad states first among equals: see ORDER)."""
    return Describer(cfg, lang).lines(health)


@dataclass(frozen=True)
class Alarm:
    """One of the controller's alarms as a sentence in the page's language (``detail``: its raw fields)."""

    code: str
    text: str
    detail: str = ""
    what: str = ""  # what it is about, when a code can be there more than once (a service's id)
    known: bool = True  # False: a code (or its fields) this app does not know, said with the code

    @property
    def ident(self) -> str:
        """Its element id on the admin page (the page merges its alarms by it)."""
        return f"{self.code}-{self.what}" if self.what else self.code


def certificate_alarm(
    cfg: Config, lang: str, healths: Mapping[str, Mapping[str, Any]], now: float
) -> Alarm | None:
    """One alarm for every node whose certificate, or the broker's as the node saw it, ends within
    CERT_WARN_DAYS or has ended (``healths``: node id -> its health record); None when there is none."""
    ending = sorted(
        (until, node)
        for node, h in healths.items()
        for key in CERT_FIELDS
        if (until := _count(h.get(key))) is not None and until - now <= CERT_WARN_DAYS * 86400
    )
    if not ending:
        return None
    nodes = ", ".join(sorted({node for _, node in ending}))
    date = Describer(cfg, lang).date(ending[0][0])
    return Alarm("certificate_ending", t("web.admin.alarm.certificate", lang, date=date, nodes=nodes))


def _alarm_text(
    cfg: Config, lang: str, code: str, data: Mapping[str, Any], for_staff: bool = False
) -> str | None:
    """A known alarm with the fields it needs as a sentence; None for anything else (said with its code)."""
    if code in (AlarmCode.CLOCK_BEHIND, AlarmCode.CLOCK_STEPPED_BACK):
        if _count(data.get("behind_s")) is None:
            return None
        key = (STAFF_ALARMS if for_staff else ALARMS)[AlarmCode(code)]
        return t(key, lang, behind=duration(data["behind_s"], lang))
    if code == AlarmCode.LOG_UNWRITABLE:
        if (since := _count(data.get("since"))) is None:
            return None
        key = (STAFF_ALARMS if for_staff else ALARMS)[AlarmCode.LOG_UNWRITABLE]
        return t(key, lang, since=Describer(cfg, lang).clock(since))
    if code == AlarmCode.UNSTAFFED_SERVICE:
        n, since, sid = _count(data.get("waiting")), _count(data.get("since")), data.get("service")
        if n is None or since is None or not isinstance(sid, str):
            return None
        said = Describer(cfg, lang)
        if sid not in cfg.service_ids:
            return None  # a service this page does not know (another configuration): said with its code
        name = said.service(sid)
        return tn(
            ALARMS[AlarmCode.UNSTAFFED_SERVICE], n, lang, count=n, service=name, since=said.clock(since)
        )
    return None


def alarms(
    cfg: Config, lang: str, state: Mapping[str, Any] | None, *, for_staff: bool = False
) -> list[Alarm]:
    """The alarms of the office summary (``alerts``: stable codes with their details) as sentences; from a
    controller older than ``alerts``, its English ``alarms`` texts under the sentence they stand for.
    ``for_staff``: in a clerk's words where they differ from the admin's (STAFF_ALARMS)."""
    if not state:
        return []
    out: list[Alarm] = []
    alerts = state.get("alerts")
    if isinstance(alerts, list):
        for a in alerts:
            if not isinstance(a, Mapping) or not isinstance(a.get("code"), str):
                continue
            code, data = a["code"], a.get("data") if isinstance(a.get("data"), Mapping) else {}
            said = _alarm_text(cfg, lang, code, data, for_staff)
            if said is not None:
                what = data.get("service") if code == AlarmCode.UNSTAFFED_SERVICE else ""
                detail = raw(data.get("error", "")) if code == AlarmCode.LOG_UNWRITABLE else ""
                out.append(Alarm(code, said, detail, what=what))
            else:
                said = t("web.admin.alarm.unknown", lang, code=code[:40])
                out.append(Alarm(code, said, raw(data or ""), known=False))
        return out
    old = state.get("alarms")
    if isinstance(old, Mapping) and old.get("clock"):
        said = t("web.admin.alarm_clock", lang)
        out.append(Alarm(AlarmCode.CLOCK_BEHIND.value, said, raw(old["clock"]), known=False))
    return out


# The staff page's alarms beyond the controller's (web/staff.py picks the ones that concern its counter): the
# web app's connection to the controller, the intake of a service, and the devices every counter relies on,
# from their health records (node/<id>/health) and status. Each says what it means at the counter and what
# the clerk does; the admin page shows the same states as warnings on the node's health lines.
STAFF_OFFLINE = N_("web.staff.alarm.offline")
INTAKE_STOPPED = N_("web.staff.alarm.intake_stopped")
DEVICE_ALARMS = {
    # a call display: calls do not reach the waiting room (or not its ears): the clerk calls out loud
    "display_offline": N_("web.staff.alarm.display_offline"),
    "display_fault": N_("web.staff.alarm.display_fault"),
    "speech_fault": N_("web.staff.alarm.speech_fault"),
    "sound_fault": N_("web.staff.alarm.sound_fault"),
    # the ticket dispenser: citizens get no number (or it reaches the queue late)
    "dispenser_offline": N_("web.staff.alarm.dispenser_offline"),
    "paper_out": N_("web.staff.alarm.paper_out"),
    "cover_open": N_("web.staff.alarm.cover_open"),
    "printer_fault": N_("web.staff.alarm.printer_fault"),
    "paper_low": N_("web.staff.alarm.paper_low"),
}


def offline_alarm(lang: str) -> Alarm:
    """The web app has no connection to the controller (the page shows the last known state)."""
    return Alarm("controller_offline", t(STAFF_OFFLINE, lang))


def intake_alarms(cfg: Config, lang: str, state: Mapping[str, Any] | None) -> list[Alarm]:
    """One alarm for every service whose intake is stopped (the dispenser issues no numbers for it)."""
    services = (state or {}).get("services")
    said = Describer(cfg, lang)
    return [
        Alarm("intake_stopped", t(INTAKE_STOPPED, lang, service=said.service(s["id"])), what=s["id"])
        for s in (services if isinstance(services, list) else ())
        if isinstance(s, Mapping) and s.get("intake_open") is False and s.get("id") in cfg.service_ids
    ]


def _device_codes(role: str, online: bool, record: Mapping[str, Any]) -> list[str]:
    """What is wrong with a display or a dispenser (DEVICE_ALARMS), from its status and health record. The
    display's ``audio`` is "error" from a sound that did not play until one plays again: no gong, no speech
    (its speech is then not said twice)."""
    if not online:
        return [f"{role}_offline"]
    if role == "display":
        codes = []
        if record.get("display") == "error" or not _empty(record.get("display_fault")):
            codes.append("display_fault")
        speech = record.get("speech")
        speech_bad = isinstance(speech, str) and speech.startswith("error")
        if record.get("audio") == "error":
            codes.append("sound_fault")
        elif speech_bad or not _empty(record.get("speech_fault")):
            codes.append("speech_fault")
        return codes
    printer = record.get("printer")
    if printer in ("paper_out", "cover_open", "paper_low"):
        return [str(printer)]
    if printer in ("offline", "error") or not _empty(record.get("printer_fault")):
        return ["printer_fault"]
    return []


def device_alarms(cfg: Config, lang: str, nodes: list[Mapping[str, Any]]) -> list[Alarm]:
    """The alarms of the office's call displays and ticket dispensers (``nodes``: LiveOffice.node_table
    rows), the device named as configured (its name, else its id). A node never heard of since this app
    started (not installed yet, or the broker lost its retained status) is no alarm: the admin page lists
    it."""
    out = []
    for row in nodes:
        role, node = row.get("role"), str(row.get("id"))
        if role not in ("display", "dispenser") or not row.get("known") or cfg.role_of(node) is None:
            continue
        name = cfg.node(node).name
        device = name.get(lang) if name else node
        record = row.get("health") if isinstance(row.get("health"), Mapping) else {}
        for code in _device_codes(str(role), bool(row.get("online")), record):
            out.append(Alarm(code, t(DEVICE_ALARMS[code], lang, device=device), what=node))
    return out
