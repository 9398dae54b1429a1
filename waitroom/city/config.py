"""The city configuration: which offices the city service follows, their opening hours, the steering rules.

One YAML file per city, validated like an office file (schema, then cross-references; every problem is
reported by path; unknown keys are errors). ``waitroom city check-config FILE`` prints them and exits 1.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator

from waitroom.config import HHMM, WEEKDAYS, Broker, Id, Strict, Texts, validation_errors, yaml_load
from waitroom.contract import CITY_ID
from waitroom.errors import ConfigError

log = logging.getLogger(__name__)

Hours = dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], tuple[HHMM, HHMM]]
EXAMPLE_CITY = Path(__file__).with_name("examples") / "city.yaml"


def _check_tz(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder: IsADirectoryError
        raise ValueError(f"unknown time zone {v!r}") from None
    return v


class CityInfo(Strict):
    """The city itself."""

    name: str = Field(min_length=1, description="city name on the 115 page", examples=["Stadt Beispiel"])
    timezone: str = Field("Europe/Berlin", description="IANA time zone of the offices (unless they set one)")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_tz(v)


class CityOffice(Strict):
    """One office the city follows: its id (as in its office configuration), name and opening hours."""

    id: Id = Field(description="office id (the office configuration's office.id)", examples=["mitte"])
    name: str = Field(
        min_length=1, description="name shown to 115 agents and on tickets", examples=["Bürgerbüro Mitte"]
    )
    hours: Hours | None = Field(
        None,
        description="opening hours per weekday [open, close]; a missing day is closed; default: the hours "
        "the office publishes in its public waits, else closed",
        examples=[{"mon": ["08:00", "16:00"], "thu": ["10:00", "18:00"]}],
    )
    timezone: str | None = Field(None, description="time zone; default: the city's")
    services: list[Id] | None = Field(
        None, description="services the office offers; default: those in its public waits"
    )
    recommend: bool = Field(True, description="whether other offices may send citizens here")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_tz(v)


class CityService(Strict):
    """A service as the city names it (the id is the same in every office)."""

    id: Id = Field(description="service id", examples=["pass"])
    name: Texts = Field(description="service name on the 115 page")


class SteeringRules(Strict):
    """When and where the city sends citizens to another office (docs/city-api.md, Recommendations)."""

    enabled: bool = Field(True, description="publish recommendations to the offices")
    threshold_min: float = Field(
        30.0, gt=0, le=600, description="recommend another office once the predicted wait passes this"
    )
    thresholds: dict[Id, float] = Field(
        default_factory=dict, description="per-service thresholds in minutes (default: threshold_min)"
    )
    hysteresis_min: float = Field(
        5.0, ge=0, le=120, description="the advice ends only when the wait is this much below the threshold"
    )
    min_gain_min: float = Field(
        15.0,
        ge=0,
        le=600,
        description="the other office's wait must be shorter by at least this (the way there)",
    )
    reach_min: float = Field(
        20.0,
        ge=0,
        le=240,
        description="minutes to get to the other office: it must be open then, and still open after its wait",
    )
    valid_s: int = Field(
        300,
        ge=30,
        le=3600,
        description="a recommendation lapses after this unless renewed (city service down)",
    )


class CityWeb(Strict):
    """The city service's web page, API and open-data feed."""

    rate_per_min: int = Field(120, ge=1, le=100000, description="API and page requests per minute and client")
    open_data_max_age_s: int = Field(
        30, ge=0, le=3600, description="Cache-Control max-age of the open-data feed"
    )
    proxies: int = Field(
        0,
        ge=0,
        le=5,
        description="reverse proxies in front of the service whose X-Forwarded-For is trusted (the rate "
        "limit then counts the real client address)",
    )
    open_data_license: str = Field(
        "dl-de/by-2-0", description="licence named in the open-data feed", examples=["dl-de/zero-2-0"]
    )


class RemoteTickets(Strict):
    """Tickets taken by a 115 agent or the city website for a citizen not there yet (docs/city-api.md).

    The controller answers ``ticket.reserve`` / ``ticket.reservation`` (waitroom/ops/remote.py); each taking
    office lists the node ``{id: city, role: city}`` in its file, and its bridge then carries the commands."""

    enabled: bool = Field(False, description="accept reservations on POST /api/v1/offices/<id>/reservations")
    token_file: str | None = Field(
        None,
        description="file with one API token per line for the 115 and website back ends (Authorization: "
        "Bearer <token>); required when enabled",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="seconds to wait for the office's answer")
    offices: list[Id] | None = Field(None, description="offices that take remote tickets (default: all)")


class CityConfig(Strict):
    city: CityInfo
    broker: Broker = Field(default_factory=lambda: Broker(username="city-service"))
    offices: list[CityOffice] = Field(min_length=1, max_length=500)
    services: list[CityService] = Field(default_factory=list, description="city-wide service names")
    stale_after_min: float | None = Field(
        60.0,
        gt=0,
        le=1440,
        description="when the bridge's link state or the controller's status is not known, an office whose "
        "last update is older than this counts as stale (null: never by age)",
    )
    steering: SteeringRules = Field(default_factory=lambda: SteeringRules())
    web: CityWeb = Field(default_factory=lambda: CityWeb())
    remote_tickets: RemoteTickets = Field(default_factory=lambda: RemoteTickets())

    def remote_offices(self) -> list[str]:
        if not self.remote_tickets.enabled:
            return []
        wanted = self.remote_tickets.offices
        return [o.id for o in self.offices if wanted is None or o.id in wanted]

    def office(self, oid: str) -> CityOffice | None:
        return next((o for o in self.offices if o.id == oid), None)

    def tz(self, office: CityOffice) -> ZoneInfo:
        return ZoneInfo(office.timezone or self.city.timezone)

    def threshold(self, service: str) -> float:
        return self.steering.thresholds.get(service, self.steering.threshold_min)


def opening_today(hours: dict[str, Any] | None, tz: ZoneInfo, now: float) -> tuple[float, float] | None:
    """(open, close) epoch seconds of the local day containing ``now``, or None when closed that day."""
    if not hours:
        return None
    local = dt.datetime.fromtimestamp(now, tz)
    span = hours.get(WEEKDAYS[local.weekday()])
    if not span:
        return None

    def at(hhmm: str) -> float:
        h, m = map(int, hhmm.split(":"))
        return local.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()

    return at(span[0]), at(span[1])


def next_opening(hours: dict[str, Any] | None, tz: ZoneInfo, now: float) -> float | None:
    """Epoch seconds of the next opening after ``now`` within a week (None: never open)."""
    if not hours:
        return None
    local = dt.datetime.fromtimestamp(now, tz)
    for days in range(8):
        day = (local + dt.timedelta(days=days)).date()
        span = hours.get(WEEKDAYS[day.weekday()])
        if not span:
            continue
        h, m = map(int, span[0].split(":"))
        at = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()
        if at > now:
            return at
    return None


def _cross_check(cfg: CityConfig) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for i, o in enumerate(cfg.offices):
        if o.id == CITY_ID:
            errors.append(f"offices[{i}].id: {CITY_ID!r} is reserved for the city service's own topics")
        if o.id in seen:
            errors.append(f"offices[{i}].id: duplicate id {o.id!r}")
        seen.add(o.id)
        for day, (a, b) in (o.hours or {}).items():
            if a >= b:
                errors.append(f"offices[{i}].hours.{day}: opening {a} is not before closing {b}")
    sids = [s.id for s in cfg.services]
    for i, s in enumerate(sids):
        if s in sids[:i]:
            errors.append(f"services[{i}].id: duplicate id {s!r}")
    if sids:
        for i, o in enumerate(cfg.offices):
            for j, s in enumerate(o.services or []):
                if s not in sids:
                    errors.append(
                        f"offices[{i}].services[{j}]: unknown service {s!r} (known: {', '.join(sids)})"
                    )
        for s in cfg.steering.thresholds:
            if s not in sids:
                errors.append(f"steering.thresholds.{s}: unknown service {s!r}")
    rt = cfg.remote_tickets
    if rt.enabled and not rt.token_file:
        errors.append("remote_tickets.token_file: required when remote tickets are enabled")
    elif rt.enabled and rt.token_file:  # read at start: a missing file stopped `city run` with a traceback
        try:
            lines = Path(rt.token_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            errors.append(f"remote_tickets.token_file: cannot read {rt.token_file}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            errors.append(f"remote_tickets.token_file: {rt.token_file} is not UTF-8 text")
        else:
            if not any(ln.strip() and not ln.startswith("#") for ln in lines):
                errors.append(
                    f"remote_tickets.token_file: {rt.token_file} holds no token (one per line): "
                    "every reservation would be refused"
                )
    for i, oid in enumerate(rt.offices or []):
        if cfg.office(oid) is None:
            errors.append(f"remote_tickets.offices[{i}]: unknown office {oid!r}")
    for s, v in cfg.steering.thresholds.items():
        if not 0 < v <= 600:
            errors.append(f"steering.thresholds.{s}: {v} must be above 0 and at most 600 minutes")
    return errors


def parse(data: Any, source: str = "<city config>") -> CityConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): the file must be a YAML mapping"])
    try:
        cfg = CityConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_errors(exc, "docs/city-api.md")) from None
    errors = _cross_check(cfg)
    if errors:
        raise ConfigError(source, errors)
    return cfg


def load(path: str | os.PathLike[str]) -> CityConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"(file): cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [f"(file): not UTF-8 text (byte {exc.start}): save it as UTF-8"]) from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), [f"(yaml): {exc}"]) from None
    except RecursionError:
        raise ConfigError(str(p), ["(yaml): nested too deeply"]) from None
    return parse(data, str(p))
