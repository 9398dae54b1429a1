"""Office configuration: one YAML file per office, validated at load.

Validation runs in two stages, as in mqtt-io: the schema (types, unknown keys, formats) and then the
cross-references (a counter names a service that does not exist, a node names a counter that does not exist).
All errors are collected and reported by path; ``waitroom check-config FILE`` prints them and exits 1.
Every key has a description in its ``Field``; docs/configuration.md is generated from these models.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from waitroom.configbase import WEEKDAYS, ConfigLookups, NodeMethods, OfficeMethods, TextsMethods
from waitroom.contract import ID_RE, TLS_NODE_PLACEHOLDER, Role  # noqa: F401 (re-exported)
from waitroom.errors import ConfigError
from waitroom.i18n import LANGUAGES
from waitroom.i18n import normalize as normalize_language
from waitroom.paths import EXAMPLE_CONFIG, data_dir, in_data_dir, resolve_path  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

Id = Annotated[str, Field(pattern=ID_RE.pattern, description="id of [a-z0-9_-], 1-32 characters")]
HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


def _time_of_day(value: Any) -> Any:
    """ "7:30" as "07:30": a time of day as people write it (the pattern checks the rest)."""
    if isinstance(value, str) and len(value) == 4 and value[0].isdigit() and value[1] == ":":
        return "0" + value
    return value


HHMM = Annotated[
    str, BeforeValidator(_time_of_day), Field(pattern=HHMM_PATTERN, description="time of day HH:MM")
]


def _pin(value: Any) -> Any:
    """A pin as a file gives it: a GPIO number or a name. YAML reads an unquoted off, no or false as false
    (and on, yes, true as true), which the number type would take as GPIO 0 (or 1): the part meant to be
    switched off would be driven on the HAT's EEPROM pin. A bool is an error, and so is what is neither a
    number nor a name (one message, not one per member of the type)."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "pin_bool",
            "{word} is not a pin (YAML reads an unquoted off, no, false as false, and on, yes, true as "
            "true): write none to leave the part out, or its GPIO number",
            {"word": str(value).lower()},
        )
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int | str):
        raise PydanticCustomError(
            "pin_type",
            "{value} is not a pin: a BCM GPIO number (17), GPIO17, BOARD11, or none",
            {"value": value},
        )
    return value


Pin = Annotated[int | str, BeforeValidator(_pin)]
# what a pattern means, for the error message (pydantic would print the regular expression)
_PATTERN_MEANS = {
    HHMM_PATTERN: 'a time of day as HH:MM, 00:00 to 23:59, e.g. "07:30"',
    ID_RE.pattern: 'an id of lower-case letters a-z, digits, _ and -, at most 32 characters, e.g. "c1"',
}


class DuplicateKey(yaml.YAMLError):
    """A key written twice in one mapping: YAML would keep the second silently and drop the first."""

    def __init__(self, key: Any, line: int, first: int):
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first

    def __str__(self) -> str:
        return (
            f"line {self.line}: key {self.key!r} appears twice in one section (also on line {self.first}); "
            "the second would silently replace the first: keep one"
        )


class _Loader(yaml.SafeLoader):
    """YAML as an office's IT writes it: an unquoted 16:00 is the text "16:00", not YAML 1.1's base-60
    integer 960 (YAML 1.2 has no base-60 numbers either), and a key written twice in one mapping is an error
    (``DuplicateKey``), not a section silently lost."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base": its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKey(key, line, seen[key])
                seen[key] = line
            except TypeError:  # a key that cannot be hashed: SafeLoader reports it
                continue
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:  # type: ignore[override]
        if ":" in node.value:
            return self.construct_scalar(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:  # type: ignore[override]
        if ":" in node.value:
            return self.construct_scalar(node)
        return super().construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


def yaml_load(text: str) -> Any:
    """A configuration file's YAML (office, city, scenario): times of day stay text (``_Loader``)."""
    return yaml.load(text, Loader=_Loader)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Texts(TextsMethods, Strict):
    """A user-facing text in German (required) and other languages (optional, each falls back to German).

    Keys are the codes of waitroom.i18n.LANGUAGES: de, en, tr, ar, uk, ru and de-LS (Leichte Sprache).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    de: str = Field(min_length=1, description="German text", examples=["Personalausweis / Reisepass"])
    en: str | None = Field(None, description="English text", examples=["ID card / passport"])
    tr: str | None = Field(None, description="Turkish text", examples=["Kimlik kartı / pasaport"])
    ar: str | None = Field(None, description="Arabic text", examples=["بطاقة الهوية / جواز السفر"])
    uk: str | None = Field(None, description="Ukrainian text", examples=["ID-картка / паспорт"])
    ru: str | None = Field(None, description="Russian text", examples=["Удостоверение личности / паспорт"])
    de_LS: str | None = Field(
        None, alias="de-LS", description="Leichte Sprache (key de-LS)", examples=["Ausweis oder Reise·pass"]
    )

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, str]:
        """{code: text} for the languages given, e.g. {"de": ..., "tr": ...} (JSON, MQTT, templates)."""
        return self.as_dict()


class PauseReason(Strict):
    """One reason staff may give for pausing a counter (the reason id is what the state shows)."""

    id: Id = Field(description="reason id, sent to the controller and shown in the state", examples=["pause"])
    name: Texts = Field(description="what the staff page shows", examples=[{"de": "Pause", "en": "Break"}])


def _default_pause_reasons() -> list[PauseReason]:
    return [
        PauseReason(id="pause", name=Texts(de="Pause", en="Break")),
        PauseReason(id="rueckfrage", name=Texts(de="Rückfrage", en="Consultation")),
        PauseReason(id="besprechung", name=Texts(de="Besprechung", en="Meeting")),
        PauseReason(id="technik", name=Texts(de="Technische Störung", en="Technical problem")),
    ]


class OfficeInfo(OfficeMethods, Strict):
    """The office: identity, opening hours and ticket numbering."""

    id: Id = Field(description="office id, used in every MQTT topic", examples=["mitte"])
    name: str = Field(
        min_length=1, description="office name shown on tickets and displays", examples=["Bürgerbüro Mitte"]
    )
    timezone: str = Field("Europe/Berlin", description="IANA time zone of the office")
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], tuple[HHMM, HHMM]] = Field(
        default_factory=lambda: {d: ("08:00", "18:00") for d in WEEKDAYS[:5]},
        description="opening hours per weekday [open, close]; a missing day is closed",
        examples=[{"mon": ["08:00", "16:00"], "thu": ["10:00", "18:00"]}],
    )
    ticket_start: int = Field(1, ge=0, le=899, description="first ticket number of each day and service")
    offline_numbers_from: int = Field(
        900,
        ge=100,
        le=999,
        description="numbers from here to 999 are kept for dispensers to print offline (leased in blocks); "
        "walk-in numbers count from ticket_start up to below it",
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="base URL of the web app, used in QR codes",
        examples=["https://warten.example-stadt.de"],
    )
    pause_reasons: list[PauseReason] = Field(
        default_factory=_default_pause_reasons,
        min_length=1,
        description="the reasons staff may choose when they pause a counter (no free text)",
        examples=[[{"id": "pause", "name": {"de": "Pause", "en": "Break"}}]],
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the zone database
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Service(Strict):
    """A service citizens choose at the dispenser (Dienstleistung)."""

    id: Id = Field(description="service id", examples=["pass"])
    prefix: str = Field(
        pattern=r"^[A-Z]$", description="ticket letter; numbers count per prefix", examples=["A"]
    )
    name: Texts = Field(description="service name on buttons, tickets, displays")
    mean_service_min: float = Field(
        8.0, gt=0, le=240, description="expected minutes per citizen until the office has learned it"
    )
    walk_in: bool = Field(True, description="whether the dispensers offer this service to walk-ins")


class Counter(Strict):
    """A counter (Schalter) and the services it serves."""

    id: Id = Field(description="counter id", examples=["c1"])
    name: Texts = Field(description="counter name on displays", examples=[{"de": "Schalter 1"}])
    spoken: Texts | None = Field(
        None,
        description="how announcements say the counter; default: name",
        examples=[{"de": "Schalter eins", "en": "counter one"}],
    )
    services: list[Id] = Field(min_length=1, description="services this counter serves (skills)")
    zone: Id = Field("main", description="display zone (e.g. a floor); displays can show one zone only")
    initially: Literal["open", "closed"] = Field("closed", description="state when the day starts")


class Node(NodeMethods, Strict):
    """A device of the office: its MQTT user name, role and wiring."""

    id: Id = Field(description="node id = MQTT user name", examples=["disp-1"])
    role: Literal["dispenser", "display", "counter", "assist", "web", "city"] = Field(
        description="what the node is (city: the city service over the bridge, remote tickets only)"
    )
    counter: Id | None = Field(None, description="counter node: the counter it operates")
    services: list[Id] | None = Field(None, description="dispenser: services on its buttons, in order")
    zone: Id | None = Field(None, description="display: show only calls of counters in this zone")
    name: Texts | None = Field(None, description="assist terminal: name shown to staff")
    pins: dict[str, Pin] = Field(
        default_factory=dict,
        description="GPIO pin map (BCM numbers or names); default from the role's "
        "pin map in firmware_config/",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="role-specific settings")
    workers: int = Field(
        1,
        ge=1,
        le=32,
        description="web node: how many worker processes may serve it (`waitroom web --workers`); each logs "
        "in to the broker with an account of its own: <id>, <id>.2, <id>.3, ...",
    )

    @field_validator("workers")
    @classmethod
    def _workers_only_for_web(cls, v: int, info: Any) -> int:
        if v != 1 and info.data.get("role") != "web":
            raise ValueError("only a web node has workers")
        return v


class Tls(Strict):
    """TLS for the MQTT connection.

    The office file is the same on every node, so the client certificate's paths name the node with
    ``{node}``: each process reads its own account's files (a web worker's: ``web.2``)."""

    ca: str = Field(description="CA certificate file (the office CA)")
    cert: str | None = Field(
        None,
        description="client certificate file (optional; required when the broker requires certificates); "
        "`{node}` stands for the node id (a web worker's account: web.2)",
        examples=["/etc/waitroom/tls/{node}.crt"],
    )
    key: str | None = Field(
        None,
        description="private key of the client certificate (with `cert`); `{node}` as in `cert`",
        examples=["/etc/waitroom/tls/{node}.key"],
    )

    @field_validator("cert", "key")
    @classmethod
    def _only_the_node_placeholder(cls, v: str | None) -> str | None:
        if v is not None:
            rest = v.replace(TLS_NODE_PLACEHOLDER, "")
            if not v.strip() or "{" in rest or "}" in rest:
                raise ValueError(f"a file path; the only placeholder is {TLS_NODE_PLACEHOLDER} (got {v!r})")
        return v

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Tls:
        if (self.key is None) != (self.cert is None):
            raise ValueError("cert and key go together: give both or neither")
        return self


class Broker(Strict):
    """How this process reaches the office's MQTT broker."""

    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 with TLS)")
    tls: Tls | None = Field(None, description="TLS settings; omit for a plain local listener")
    username: str | None = Field(None, description="MQTT user; default: the node id")
    password_file: str | None = Field(
        None, description="file holding this node's MQTT password (or set WAITROOM_MQTT_PASSWORD)"
    )
    keepalive: int = Field(30, ge=5, le=600, description="MQTT keepalive seconds")


class ControllerSettings(Strict):
    """The controller's event log and timing."""

    database: str = Field(
        "waitroom.db",
        description="SQLite event log (WAL); a relative path is inside the data directory "
        "(--data-dir, $WAITROOM_DATA_DIR, default ./var)",
    )
    recent_calls: int = Field(10, ge=1, le=50, description="calls kept in the state snapshot")
    node_commands_per_s: float = Field(
        20.0,
        gt=0,
        description="commands a second one node may send (a burst of three times as many); more get "
        "rate_limited, so a flooding node cannot starve the others (the web app may send ten times as many)",
    )
    assist_escalate_s: list[int] = Field(
        [120, 300], description="seconds unacknowledged until escalation level 1 (all counters), 2 (manager)"
    )
    unstaffed_alarm_after_s: int = Field(
        120,
        ge=0,
        le=3600,
        description="seconds a service may have waiting citizens and no open counter (closed, paused, not "
        "opened yet) during opening hours before the controller raises the alarm unstaffed_service; a short "
        "pause (a file fetched, a colleague asked) should not make the alarm come and go",
    )
    no_show_return_min: int = Field(
        60,
        ge=0,
        le=600,
        description="minutes after a ticket was marked not appeared (counter.no_show) during which staff may "
        "still call it (counter.call_ticket), for a citizen who was outside for a moment and comes back; "
        "the same day only; 0 = never (the citizen takes a new ticket)",
    )


# -- steering rules (issue 6; docs/steering.md). Checked against services and counters in _check_steering.
class ServiceLevel(Strict):
    percent: float = Field(80.0, gt=0, le=100, description="share of citizens to be called within the target")
    within_min: float = Field(20.0, gt=0, le=480, description="target waiting time in minutes")


class PriorityRules(Strict):
    normal_per_priority: int = Field(
        2,
        ge=0,
        le=20,
        description="when priority and normal tickets both wait, a counter calls at least this many normal "
        "tickets between two priority tickets; 0 = priority tickets always first",
    )
    max_wait_behind_priority_min: float | None = Field(
        30.0,
        gt=0,
        le=480,
        description="a normal ticket waiting this long is called before priority tickets; null = no cap",
    )


class AppointmentRules(Strict):
    early_min: float = Field(
        10.0, ge=0, le=240, description="minutes before the slot from which an appointment may be called"
    )
    late_min: float = Field(
        15.0, ge=0, le=240, description="minutes after the slot until which a check-in keeps the appointment"
    )
    late_arrival: Literal["walk_in", "refuse"] = Field(
        "walk_in",
        description="a later check-in gets a walk-in ticket (walk_in, the default) or is refused (refuse)",
    )
    grace_min: float = Field(
        2.0,
        ge=0,
        le=30,
        description="recommended policy: a counter still calls a walk-in when it expects to be done by the "
        "next due appointment's slot (or check-in, if later) plus this many minutes",
    )
    max_wait_behind_appointments_min: float | None = Field(
        None,
        gt=0,
        le=480,
        description="recommended policy: a walk-in who has waited this long is called before the "
        "appointments that became due after it came (a bound on how long appointments hold the walk-ins "
        "back, at the cost of their punctuality); null = no bound",
    )


class SteeringCondition(Strict):
    service: Id = Field(description="service the condition watches", examples=["fuehrerschein"])
    longest_wait_over_min: float = Field(
        gt=0, le=480, description="fires when the longest wait of the service exceeds this many minutes"
    )
    counters: Literal["secondary", "all"] | list[Id] = Field(
        "secondary",
        description="counters that then call this service first: those with it as a secondary skill (weight "
        "below their highest), all counters serving it, or a list of counter ids",
    )


class IntakeStopRules(Strict):
    enabled: bool = Field(True, description="stop walk-in intake automatically (Annahmeschluss)")
    margin_min: float = Field(
        0.0,
        ge=0,
        le=240,
        description="stop when a new ticket's predicted completion passes closing time minus this",
    )
    reopen_min: float = Field(
        10.0,
        ge=0,
        le=240,
        description="reopen only when the predicted completion is this much before the stop line",
    )


class Steering(Strict):
    policy: Literal["recommended", "fifo"] = Field(
        "recommended",
        description="recommended: appointments planned into counters' time, priority bounded both ways, "
        "service-level ageing and skill weights (docs/steering.md); fifo: the baseline, every counter calls "
        "the longest waiting ticket of its services (appointments and priority tickets included)",
    )
    weights: dict[Id, dict[Id, float]] = Field(
        default_factory=dict,
        description="skill weights per counter and service in (0, 1]: a counter compares waiting times "
        "times its weight: 1 = primary, below 1 = secondary skill; unlisted services weigh 1",
        examples=[{"c4": {"fuehrerschein": 1.0, "pass": 0.5}}],
    )
    service_levels: dict[Id, ServiceLevel] = Field(
        default_factory=dict,
        description="service-level target per service (default: default_service_level)",
        examples=[{"pass": {"percent": 80, "within_min": 20}}],
    )
    default_service_level: ServiceLevel = Field(
        default_factory=lambda: ServiceLevel(), description="target of services without their own"
    )
    ageing_from: float = Field(
        0.75,
        gt=0,
        le=10,
        description="a ticket that has waited this fraction of its target is called before all others",
    )
    priority: PriorityRules = Field(default_factory=lambda: PriorityRules(), description="priority fairness")
    appointments: AppointmentRules = Field(
        default_factory=lambda: AppointmentRules(), description="appointment windows"
    )
    conditions: list[SteeringCondition] = Field(default_factory=list, description="conditional rules")
    intake_stop: IntakeStopRules = Field(
        default_factory=lambda: IntakeStopRules(), description="automatic intake stop before closing time"
    )

    def weight(self, counter: str, service: str) -> float:
        return self.weights.get(counter, {}).get(service, 1.0)

    def target_s(self, service: str) -> float:
        return self.service_levels.get(service, self.default_service_level).within_min * 60.0


def secondary_counters(cfg: Config, service: str) -> list[str]:
    """The counters serving ``service`` as a secondary skill: its weight is below the counter's highest."""
    st = cfg.steering
    return [
        c.id
        for c in cfg.counters
        if service in c.services and st.weight(c.id, service) < max(st.weight(c.id, s) for s in c.services)
    ]


def _check_steering(cfg: Config) -> list[str]:
    errors: list[str] = []
    st, sids, cids = cfg.steering, cfg.service_ids, cfg.counter_ids
    for cid, ws in st.weights.items():
        if cid not in cids:
            errors.append(f"steering.weights.{cid}: unknown counter {cid!r}")
            continue
        served = set(cfg.counter(cid).services)
        for sid, w in ws.items():
            if sid not in served:
                errors.append(
                    f"steering.weights.{cid}.{sid}: counter {cid} does not serve {sid!r} "
                    f"(it serves {', '.join(sorted(served))})"
                )
            elif not 0 < w <= 1:
                errors.append(f"steering.weights.{cid}.{sid}: weight {w} must be above 0 and at most 1")
    for sid in st.service_levels:
        if sid not in sids:
            errors.append(f"steering.service_levels.{sid}: unknown service {sid!r}")
    for i, c in enumerate(st.conditions):
        if c.service not in sids:
            errors.append(f"steering.conditions[{i}].service: unknown service {c.service!r}")
        elif c.counters == "secondary" and not secondary_counters(cfg, c.service):
            errors.append(
                f"steering.conditions[{i}].counters: no counter has {c.service!r} as a secondary skill (a "
                "weight below the counter's highest in steering.weights), so the condition would never fire; "
                "give that weight, list the counters (counters: [c4]) or use counters: all"
            )
        if isinstance(c.counters, list):
            for j, cid in enumerate(c.counters):
                if cid not in cids:
                    errors.append(f"steering.conditions[{i}].counters[{j}]: unknown counter {cid!r}")
                elif c.service in sids and c.service not in cfg.counter(cid).services:
                    errors.append(
                        f"steering.conditions[{i}].counters[{j}]: counter {cid} does not serve {c.service!r}"
                    )
    return errors


# -- appointments (issue 15; docs/appointments.md). Cross-checked in _check_appointments.
class CsvColumns(Strict):
    """Which CSV column holds what (header names of the booking system's export)."""

    code: str | None = Field("code", description="booking code column (null: derived from the uid)")
    uid: str | None = Field("uid", description="stable id of the booking (null: the code is the id)")
    service: str = Field("service", description="service name or id of the booking system")
    start: str = Field("start", description="slot start: ISO 8601 (with or without offset) or start_format")
    status: str | None = Field(
        "status", description="booked / cancelled (also storniert, abgesagt, CANCELLED); empty = booked"
    )
    sequence: str | None = Field("sequence", description="revision number (higher wins), optional")
    note: str | None = Field(None, description="note column (imported only when appointments.notes is on)")


class CsvImport(Strict):
    delimiter: str = Field(";", min_length=1, max_length=1, description="field separator")
    encoding: str = Field("utf-8-sig", description="file encoding (utf-8-sig drops a BOM)")
    start_format: str | None = Field(
        None,
        description="strptime format of the start column when it is not ISO 8601 (local office time)",
        examples=["%d.%m.%Y %H:%M"],
    )
    columns: CsvColumns = Field(default_factory=lambda: CsvColumns(), description="column mapping")


class AppointmentImport(Strict):
    """Import of the booking system's appointments (``waitroom appointments import FILE|URL``)."""

    service_map: dict[str, Id] = Field(
        default_factory=dict,
        description="booking system's service name or id -> service id (matched case-insensitively after "
        "the service ids themselves); an entry that maps to nothing is reported and skipped",
        examples=[{"Personalausweis beantragen": "pass", "10115": "melde"}],
    )
    ics_code_property: str = Field(
        "X-BOOKING-CODE", description="iCalendar property with the booking code (else derived from the UID)"
    )
    ics_service_property: str = Field(
        "CATEGORIES", description="iCalendar property with the service (CATEGORIES, SUMMARY or an X- name)"
    )
    feed_url: str | None = Field(
        None, description="iCalendar or CSV feed polled by ``waitroom appointments import --poll``"
    )
    poll_min: float = Field(15.0, ge=1, le=1440, description="minutes between two polls of the feed")
    days: int = Field(28, ge=1, le=400, description="import slots from today up to this many days ahead")
    csv: CsvImport = Field(default_factory=lambda: CsvImport(), description="CSV format")


class AppointmentSettings(Strict):
    """Booking, capacity and import of appointments (Terminvergabe)."""

    slot_min: int = Field(15, ge=5, le=120, description="slot grid in minutes from opening time")
    window_min: int = Field(
        60,
        ge=5,
        le=480,
        description="capacity window in minutes: in each, a counter spends at most (1 - walk_in_share) of "
        "its staffed time on appointments",
    )
    walk_in_share: float = Field(
        0.4,
        ge=0,
        le=1,
        description="share of counter time kept free for walk-ins at least (0 = all bookable); a window "
        "whose expected walk-in work is larger keeps that much free",
    )
    walk_in_weeks: int = Field(
        8,
        ge=0,
        le=52,
        description="weeks of the office's own log from which the walk-in work per weekday and capacity "
        "window is learned (0 = use walk_in_share alone)",
    )
    horizon_days: int = Field(
        28, ge=1, le=400, description="the booking page offers slots this many days ahead"
    )
    lead_min: float = Field(30.0, ge=0, le=1440, description="no slot offered sooner than this from now")
    services: list[Id] | None = Field(
        None, description="services the booking page offers (default: every service)", examples=[["pass"]]
    )
    staffing: dict[
        Id, dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[tuple[HHMM, HHMM]]]
    ] = Field(
        default_factory=dict,
        description="per counter and weekday the staffed times [from, to]; a counter not listed is staffed "
        "during the opening hours; a listed counter without the weekday is not staffed that day",
        examples=[{"c5": {"mon": [["08:00", "12:00"], ["12:30", "16:00"]]}}],
    )
    pauses: list[tuple[HHMM, HHMM]] = Field(
        default_factory=list,
        description="times no counter takes appointments (e.g. a team meeting), every day",
        examples=[[["12:00", "12:30"]]],
    )
    notes: bool = Field(True, description="allow a short free-text note with a booking (no personal data)")
    note_max: int = Field(
        80, ge=1, le=200, description="maximum characters of a note (and at most 400 bytes of UTF-8)"
    )
    code_length: int = Field(
        6, ge=4, le=12, description="characters of a generated booking code (incl. check)"
    )
    booking_system: AppointmentImport = Field(
        default_factory=lambda: AppointmentImport(),
        description="the booking system the appointments are imported from",
    )


def _check_appointments(cfg: Config) -> list[str]:
    errors: list[str] = []
    a, sids, cids = cfg.appointments, cfg.service_ids, cfg.counter_ids
    for i, sid in enumerate(a.services or []):
        if sid not in sids:
            errors.append(f"appointments.services[{i}]: unknown service {sid!r}")
    for cid, days in a.staffing.items():
        if cid not in cids:
            errors.append(f"appointments.staffing.{cid}: unknown counter {cid!r}")
        for day, spans in days.items():
            for j, (x, y) in enumerate(spans):
                if x >= y:
                    errors.append(f"appointments.staffing.{cid}.{day}[{j}]: {x} is not before {y}")
    for j, (x, y) in enumerate(a.pauses):
        if x >= y:
            errors.append(f"appointments.pauses[{j}]: {x} is not before {y}")
    for name, sid in a.booking_system.service_map.items():
        if sid not in sids:
            errors.append(f"appointments.booking_system.service_map.{name}: unknown service {sid!r}")
    return errors


class RemoteTicketRules(Strict):
    """Remote tickets (virtual queue): places reserved by the city website or a 115 agent for a citizen who
    is not there yet (docs/city-api.md "Remote tickets"). Taken from node ``city`` (role city) or ``web``."""

    enabled: bool = Field(True, description="accept ticket.reserve (from a node of role city or web)")
    max_open_per_service: int = Field(
        10,
        ge=1,
        le=500,
        description="open (not yet checked in) reservations a service may hold; more get reservations_full, "
        "so the virtual queue cannot crowd out walk-ins",
    )
    per_hour: int = Field(
        30, ge=1, le=5000, description="reservations per service and rolling hour; more get rate_limited"
    )
    lead_min: int = Field(
        15, ge=0, le=240, description="'be there by' is at least this far ahead (the way to the office)"
    )
    early_min: int = Field(
        10, ge=0, le=120, description="'be there by' is this many minutes before the forecast turn"
    )
    grace_min: int = Field(
        15,
        ge=1,
        le=240,
        description="a reservation not checked in this long after 'be there by' lapses; checked in late "
        "(after 'be there by') it queues from its check-in, like a walk-in",
    )
    warn_min: int = Field(
        10, ge=1, le=120, description="the ticket status page warns when the expected wait is this short"
    )


class Config(ConfigLookups, Strict):
    office: OfficeInfo
    services: list[Service] = Field(min_length=1)
    counters: list[Counter] = Field(min_length=1)
    nodes: list[Node] = Field(default_factory=list)
    broker: Broker = Field(default_factory=Broker)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    steering: Steering = Field(
        default_factory=lambda: Steering(), description="steering rules (docs/steering.md)"
    )
    display: dict[str, Any] = Field(default_factory=dict, description="display and announcement settings")
    printer: dict[str, Any] = Field(default_factory=dict, description="ticket printer settings")
    web: dict[str, Any] = Field(default_factory=dict, description="web app settings")
    appointments: AppointmentSettings = Field(
        default_factory=lambda: AppointmentSettings(),
        description="booking, capacity and import of appointments",
    )
    remote_tickets: RemoteTicketRules = Field(
        default_factory=lambda: RemoteTicketRules(), description="remote tickets (docs/city-api.md)"
    )


def _cross_check(cfg: Config) -> list[str]:
    errors: list[str] = []

    def dupes(items: list[Any], key: str, path: str) -> None:
        seen: set[Any] = set()
        for i, item in enumerate(items):
            v = getattr(item, key)
            if v in seen:
                errors.append(f"{path}[{i}].{key}: duplicate {key} {v!r}")
            seen.add(v)

    dupes(cfg.services, "id", "services")
    dupes(cfg.services, "prefix", "services")
    office = cfg.office
    if office.ticket_start >= office.offline_numbers_from:  # else every walk-in is numbers_used_up
        errors.append(
            f"office.ticket_start: {office.ticket_start} leaves no walk-in number below "
            f"office.offline_numbers_from ({office.offline_numbers_from}); make it smaller"
        )
    dupes(cfg.counters, "id", "counters")
    dupes(cfg.nodes, "id", "nodes")
    sids, cids = cfg.service_ids, cfg.counter_ids
    for i, c in enumerate(cfg.counters):
        for j, s in enumerate(c.services):
            if s not in sids:
                errors.append(
                    f"counters[{i}].services[{j}]: unknown service {s!r} (known: {', '.join(sorted(sids))})"
                )
    for i, n in enumerate(cfg.nodes):
        p = f"nodes[{i}]"
        if n.id == "controller":
            errors.append(f"{p}.id: 'controller' is reserved for the controller")
        if n.role == "counter":
            if n.counter is None:
                errors.append(f"{p}.counter: a counter node must name its counter")
            elif n.counter not in cids:
                errors.append(
                    f"{p}.counter: unknown counter {n.counter!r} (known: {', '.join(sorted(cids))})"
                )
        elif n.counter is not None:
            errors.append(f"{p}.counter: only counter nodes operate a counter")
        if n.role == "dispenser":
            for j, s in enumerate(n.services or []):
                if s not in sids:
                    errors.append(f"{p}.services[{j}]: unknown service {s!r}")
        elif n.services is not None:
            errors.append(f"{p}.services: only dispensers have service buttons")
        if n.zone is not None and n.role != "display":
            errors.append(f"{p}.zone: only displays have a zone")
        if n.role == "display" and n.zone and n.zone not in {c.zone for c in cfg.counters}:
            errors.append(f"{p}.zone: no counter is in zone {n.zone!r}")
    errors += _check_steering(cfg)
    errors += _check_appointments(cfg)
    errors += _check_languages(cfg)
    from firmware_config.pins import check_nodes as check_pins  # pin maps live with the firmware settings

    errors += check_pins(cfg)
    o = cfg.office
    for day, (a, b) in o.hours.items():
        if a >= b:
            errors.append(f"office.hours.{day}: opening {a} is not before closing {b}")
    return errors


def _check_languages(cfg: Config) -> list[str]:
    """Language codes in the display section and in display/dispenser node options (early, for check-config;
    the nodes validate their whole settings again when they start)."""
    errors: list[str] = []

    def codes(value: Any, path: str, *, many: bool) -> None:
        items = value if many and isinstance(value, list | tuple) else [value]
        if many and not isinstance(value, list | tuple):
            errors.append(f"{path}: a list of language codes, e.g. [de, tr]")
            return
        for j, code in enumerate(items):
            if not isinstance(code, str) or normalize_language(code) is None:
                where = f"{path}[{j}]" if many else path
                errors.append(f"{where}: unknown language {code!r} (known: {', '.join(LANGUAGES)})")

    def section(d: dict[str, Any], path: str) -> None:
        if "languages" in d:
            codes(d["languages"], f"{path}.languages", many=True)
        if d.get("second_language") is not None:
            codes(d["second_language"], f"{path}.second_language", many=False)
        if isinstance(d.get("voices"), dict):
            for code in d["voices"]:
                codes(code, f"{path}.voices", many=False)

    section(cfg.display, "display")
    for i, n in enumerate(cfg.nodes):
        if n.role in ("display", "dispenser") and n.options:
            section(n.options, f"nodes[{i}].options")
    return errors


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validation_errors(exc: ValidationError, doc: str = "docs/configuration.md") -> list[str]:
    """pydantic's errors as "key.path: what is wrong", in words an office's IT can act on."""
    errs = []
    for e in exc.errors():
        msg = e["msg"]
        pattern = (e.get("ctx") or {}).get("pattern")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (check the spelling; see {doc})"
        elif e["type"] == "string_pattern_mismatch" and pattern in _PATTERN_MEANS:
            msg = f"{e['input']!r} is not {_PATTERN_MEANS[pattern]}"
        errs.append(f"{_fmt_loc(e['loc'])}: {msg}")
    return errs


def parse(data: Any, source: str = "<config>") -> Config:
    """Validate a decoded YAML document; raise ConfigError listing every problem by path."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): the file must be a YAML mapping"])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_errors(exc)) from None
    errors = _cross_check(cfg)
    if errors:
        raise ConfigError(source, errors)
    return cfg


def load(path: str | os.PathLike[str]) -> Config:
    """Load and validate an office configuration file."""
    p = Path(path)
    cfg = files_beside(loads(read_text(p), str(p)), p)
    log.debug("loaded configuration %s for office %s", p, cfg.office.id)
    return cfg


def files_beside(cfg: Config, config_file: str | os.PathLike[str]) -> Config:
    """The configuration with a relative ``printer.logo`` taken relative to the configuration file's folder:
    a node runs in its data directory (systemd's WorkingDirectory), not where the file and its logo are."""
    logo = cfg.printer.get("logo")
    if isinstance(logo, str) and logo and not Path(logo).is_absolute():
        printer = {**cfg.printer, "logo": str(resolve_path(config_file, logo))}
        return cfg.model_copy(update={"printer": printer})
    return cfg


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a configuration file; ConfigError when it cannot be read or is not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    return decode_text(raw, str(path))


def decode_text(raw: bytes, source: str) -> str:
    """UTF-8 bytes of a configuration file as text; ConfigError naming the first bad byte otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"(file): not UTF-8 text (byte {exc.start}): save it as UTF-8"]) from None


def loads(text: str, source: str = "<config>") -> Config:
    """Validate an office configuration given as YAML text (``load`` once the file is read)."""
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"(yaml): {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, ["(yaml): nested too deeply"]) from None
    return parse(data, source)


def load_or_exit(path: str | Path) -> Config:
    """``load`` for a command: a configuration error is printed (it names the key) and the command exits 1."""
    import sys

    try:
        return load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
