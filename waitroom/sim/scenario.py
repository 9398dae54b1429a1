"""What-if scenarios: the office day to simulate, as YAML (``scenarios/*.yaml``), validated like the config.

A scenario names an office configuration and describes the day: arrival rates per service and hour, service
time distributions, staffing per counter, an appointment book, no-show and abandonment behaviour, and rule
sets to compare. ``plan_day`` draws one random day (a ``DayPlan``) from it; every rule set is run on the same
drawn days (common random numbers), so differences between rule sets are not noise between draws.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waitroom import config as office_config
from waitroom.config import HHMM, WEEKDAYS, Config, Id, Steering
from waitroom.errors import ConfigError

log = logging.getLogger(__name__)

# A fixed reference week for simulated days (Monday 2025-01-06); only the weekday and the time of day matter.
REFERENCE_MONDAY = dt.date(2025, 1, 6)
# Walk-ins per hour of one service at most: a higher, infinite or NaN rate is a typo, and an
# infinite one drew arrivals for ever.
MAX_RATE = 10000
# Rule sets every comparison has (waitroom.sim.builtin_rule_sets): a scenario's own of the same name replaced
# them, and "current" was then shown as the office as configured.
RESERVED_RULE_SETS = ("current", "fifo")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Strict):
    dist: Literal["exponential", "lognormal", "gamma", "deterministic"] = Field(
        "lognormal", description="family of the service-time distribution"
    )
    mean_min: float = Field(gt=0, le=240, description="mean service time in minutes")
    cv: float = Field(0.7, ge=0, le=5, description="coefficient of variation (ignored by exponential: 1)")

    def sample(self, rng: random.Random) -> float:
        m = self.mean_min * 60.0
        if self.dist == "exponential":
            return rng.expovariate(1.0 / m)
        if self.dist == "deterministic" or self.cv == 0:
            return m
        if self.dist == "lognormal":
            s2 = math.log(1.0 + self.cv * self.cv)
            return rng.lognormvariate(math.log(m) - s2 / 2.0, math.sqrt(s2))
        k = 1.0 / (self.cv * self.cv)
        return rng.gammavariate(k, m / k)


class Patience(_Strict):
    """How long a waiting citizen stays before giving up (minutes)."""

    dist: Literal["exponential", "uniform", "lognormal", "empirical"] = Field(
        description="exponential (mean_min), uniform (from_min-to_min, e.g. 'leaves after 45-90 min'), "
        "lognormal (mean_min, cv) or empirical (values_min, drawn with equal probability)"
    )
    mean_min: float | None = Field(None, gt=0, le=1440, description="mean (exponential, lognormal)")
    cv: float = Field(0.5, gt=0, le=5, description="coefficient of variation (lognormal)")
    from_min: float | None = Field(None, ge=0, le=1440, alias="from", description="shortest (uniform)")
    to_min: float | None = Field(None, gt=0, le=1440, alias="to", description="longest (uniform)")
    values_min: list[float] | None = Field(
        None, min_length=1, description="observed patience values (empirical)"
    )

    def model_post_init(self, _: Any) -> None:
        need = {
            "exponential": ("mean_min",),
            "lognormal": ("mean_min",),
            "uniform": ("from_min", "to_min"),
            "empirical": ("values_min",),
        }[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            names = [k.removesuffix("_min") if k in ("from_min", "to_min") else k for k in missing]
            raise ValueError(f"dist {self.dist} needs {', '.join(names)}")
        if self.dist == "uniform" and self.from_min > self.to_min:  # type: ignore[operator]
            raise ValueError("from must not be above to")
        if self.values_min is not None and not all(0 < v <= 1440 for v in self.values_min):
            raise ValueError("values_min must be above 0 and at most 1440")

    def sample(self, rng: random.Random) -> float:
        if self.dist == "exponential":
            return rng.expovariate(1.0 / (self.mean_min * 60.0))  # type: ignore[operator]
        if self.dist == "uniform":
            return rng.uniform(self.from_min * 60.0, self.to_min * 60.0)  # type: ignore[operator]
        if self.dist == "lognormal":
            m = self.mean_min * 60.0  # type: ignore[operator]
            s2 = math.log(1.0 + self.cv * self.cv)
            return rng.lognormvariate(math.log(m) - s2 / 2.0, math.sqrt(s2))
        return rng.choice(self.values_min) * 60.0  # type: ignore[arg-type]


class AppointmentBook(_Strict):
    service: Id = Field(description="service booked")
    start: HHMM = Field("08:00", alias="from", description="first slot")
    until: HHMM = Field("15:00", alias="to", description="no slot at or after this time")
    every_min: float = Field(30, gt=0, le=480, description="minutes between two slots")


class Behaviour(_Strict):
    no_show: float = Field(0.03, ge=0, le=1, description="share of walk-ins gone when called")
    no_show_min: float = Field(1.5, ge=0, le=30, description="minutes a counter loses on a no-show")
    patience_min: float | None = Field(
        90,
        gt=0,
        le=1440,
        description="mean patience of a waiting citizen (exponential); null = nobody leaves",
    )
    patience: Patience | None = Field(
        None,
        description="patience distribution; replaces patience_min (e.g. {dist: uniform, from: 45, to: 90})",
    )
    abandoned_called: bool = Field(
        True,
        description="a citizen who gave up keeps a ticket in the queue and is called in vain (a no-show "
        "costing no_show_min); false = the ticket disappears at no cost",
    )
    priority_share: float = Field(0.03, ge=0, le=1, description="share of walk-ins with a priority ticket")
    appointment_no_show: float = Field(
        0.1, ge=0, le=1, description="share of booked citizens who do not come"
    )
    arrival_offset_min: float = Field(
        -5, ge=-120, le=120, description="mean arrival of appointment holders relative to the slot"
    )
    arrival_sd_min: float = Field(6, ge=0, le=120, description="standard deviation of that arrival")


class RuleSet(_Strict):
    steering: dict[str, Any] | None = Field(None, description="steering rules replacing the office's")
    skills: dict[Id, list[Id]] | None = Field(
        None, description="counter -> services, replacing those counters' skills"
    )


class Scenario(_Strict):
    name: str = Field(description="what the scenario shows")
    config: str | None = Field(
        None,
        description="office configuration file, relative to the scenario; "
        "default: the bundled example office",
    )
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="day simulated"
    )
    arrivals: dict[Id, dict[str, float]] = Field(
        description='per service: walk-ins per hour, keyed by the hour it starts ("08": 30 or 8: 30)'
    )
    service_times: dict[Id, Distribution] = Field(
        default_factory=dict, description="per service; default lognormal, cv 0.7, the configured mean"
    )
    staffing: dict[Id, list[tuple[HHMM, HHMM]]] | None = Field(
        None,
        description="per counter its shifts; when given, only the counters listed work (one left out is "
        "closed all day, unlike appointments.staffing in the office file); default: the counters that are "
        "initially open, during the opening hours",
    )
    appointments: list[AppointmentBook] = Field(default_factory=list, description="the appointment book")
    behaviour: Behaviour = Field(default_factory=lambda: Behaviour(), description="citizens' behaviour")
    rule_sets: dict[str, RuleSet] = Field(
        default_factory=dict,
        description="named alternatives to compare; the office's own rules are 'current'",
    )
    arrival_scale: float = Field(
        1.0,
        gt=0,
        le=10,
        description="multiplies every walk-in rate and the density of the appointment book (a lighter or "
        "busier day of the same kind)",
    )
    replications: int = Field(20, ge=1, le=10000, description="simulated days per rule set")
    seed: int = Field(1, description="random seed of the first day")

    @field_validator("arrivals", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        """Hours as YAML gives them: ``8: 30`` and ``"08": 30`` alike (an unquoted ``10`` is a number, an
        unquoted ``08`` a string); the same hour twice is an error, not the sum."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for sid, rates in value.items():
            if not isinstance(rates, dict):
                out[sid] = rates
                continue
            hours: dict[Any, Any] = {}
            for hour, rate in rates.items():
                key = hour
                if isinstance(hour, int) and not isinstance(hour, bool):
                    key = f"{hour:02d}"
                elif isinstance(hour, str) and hour.isdigit() and len(hour) <= 2:
                    key = f"{int(hour):02d}"
                if key in hours:
                    raise ValueError(f"{sid}: hour {key} given twice")
                hours[key] = rate
            out[sid] = hours
        return out


def load(path: str | Path) -> tuple[Scenario, Config]:
    """Load a scenario file and the office configuration it names; ConfigError lists problems by path."""
    p = Path(path)
    text = office_config.read_text(p)
    try:
        data = office_config.yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), [f"(yaml): {exc}"]) from None
    except RecursionError:
        raise ConfigError(str(p), ["(yaml): nested too deeply"]) from None
    sc = parse(data, str(p))
    cfg = office_config.load(
        office_config.resolve_path(p, sc.config) if sc.config else office_config.EXAMPLE_CONFIG
    )
    check(sc, cfg, str(p))
    return sc, cfg


def parse(data: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): a scenario must be a YAML mapping"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, office_config.validation_errors(exc, "docs/steering.md")) from None


def check(sc: Scenario, cfg: Config, source: str = "<scenario>") -> None:
    """Cross-check a scenario against its office: services and counters must exist."""
    errors: list[str] = []
    sids, cids = cfg.service_ids, cfg.counter_ids
    for key in ("arrivals", "service_times"):
        for sid in getattr(sc, key):
            if sid not in sids:
                errors.append(f"{key}.{sid}: unknown service {sid!r} (known: {', '.join(sorted(sids))})")
    for sid, rates in sc.arrivals.items():
        for hour, rate in rates.items():
            if not (hour.isdigit() and 0 <= int(hour) <= 23) or not 0 <= rate <= MAX_RATE:
                errors.append(
                    f"arrivals.{sid}.{hour}: give hours 00-23 and rates of at least 0 and at most "
                    f"{MAX_RATE} walk-ins per hour"
                )
    hours = cfg.office.hours.get(sc.weekday)
    if not hours:
        errors.append(f"weekday: the office is closed on {sc.weekday} (office.hours)")
    for cid, spans in (sc.staffing or {}).items():
        if cid not in cids:
            errors.append(f"staffing.{cid}: unknown counter {cid!r} (known: {', '.join(sorted(cids))})")
        for j, (a, z) in enumerate(spans):
            if a >= z:
                errors.append(f"staffing.{cid}[{j}]: the shift {a}-{z} does not end after it starts")
    for i, b in enumerate(sc.appointments):
        if b.service not in sids:
            errors.append(f"appointments[{i}].service: unknown service {b.service!r}")
        if b.start >= b.until:
            errors.append(f"appointments[{i}]: from {b.start} is not before to {b.until} (no slot)")
        elif hours and (b.start < hours[0] or b.until > hours[1]):
            errors.append(
                f"appointments[{i}]: slots {b.start}-{b.until} lie outside the opening hours "
                f"{hours[0]}-{hours[1]} on {sc.weekday} (to is the first time without a slot)"
            )
    for name, rs in sc.rule_sets.items():
        if name in RESERVED_RULE_SETS:
            errors.append(
                f"rule_sets.{name}: the name is taken ('current' = the office as configured, 'fifo' = "
                "its rules first come first served); choose another"
            )
            continue
        try:
            apply_rule_set(cfg, rs)
        except ConfigError as exc:
            errors += [f"rule_sets.{name}: {e}" for e in exc.errors]
    if errors:
        raise ConfigError(source, errors)


def apply_rule_set(cfg: Config, rs: RuleSet | dict[str, Any] | Steering | None) -> Config:
    """The office configuration with a rule set's steering rules and skills (validated like the config)."""
    if rs is None:
        return cfg
    if isinstance(rs, Steering):
        rs = RuleSet(steering=rs.model_dump())
    elif isinstance(rs, dict):
        rs = RuleSet(**rs) if set(rs) <= {"steering", "skills"} and rs else RuleSet(steering=rs)
    data = cfg.model_dump(mode="json")
    if rs.steering is not None:
        data["steering"] = rs.steering
    for c in data["counters"]:
        if rs.skills and c["id"] in rs.skills:
            c["services"] = rs.skills[c["id"]]
    if rs.skills:
        unknown = set(rs.skills) - cfg.counter_ids
        if unknown:
            raise ConfigError("<rule set>", [f"skills.{c}: unknown counter {c!r}" for c in sorted(unknown)])
    return office_config.parse(data, "<rule set>")


# ------------------------------------------------------------------------------------------------ day plans
@dataclass
class Arrival:
    t: float  # epoch seconds
    service: str
    duration: float  # service time drawn in advance (common random numbers across rule sets)
    priority: bool = False
    slot: float | None = None  # appointment holders: their slot
    code: str | None = None
    patience: float | None = None  # seconds until they give up waiting; None = never
    no_show: bool = False  # gone when called


@dataclass
class DayPlan:
    start: float  # simulation start (epoch)
    open: float
    close: float
    arrivals: list[Arrival]
    shifts: dict[str, list[tuple[float, float]]]  # counter -> [(from, to)]
    appointments: list[tuple[str, str, float]] = field(default_factory=list)  # (code, service, slot)
    no_show_s: float = 90.0
    abandoned_called: bool = False  # abandoned tickets stay in the queue and are called as no-shows


def day_epoch(cfg: Config, weekday: str, hhmm: str, date: dt.date | None = None) -> float:
    d = date or REFERENCE_MONDAY + dt.timedelta(days=WEEKDAYS.index(weekday))
    h, m = map(int, hhmm.split(":"))
    return dt.datetime(d.year, d.month, d.day, h, m, tzinfo=cfg.office.tz).timestamp()


def plan_day(sc: Scenario, cfg: Config, seed: int) -> DayPlan:
    """Draw one day of the scenario."""
    rng = random.Random(seed)
    hours = cfg.office.hours.get(sc.weekday)
    if not hours:
        raise ConfigError("<scenario>", [f"weekday: the office is closed on {sc.weekday}"])
    t_open, t_close = (day_epoch(cfg, sc.weekday, h) for h in hours)
    b = sc.behaviour
    dists = {
        s.id: sc.service_times.get(s.id) or Distribution(mean_min=s.mean_service_min) for s in cfg.services
    }
    arrivals: list[Arrival] = []

    def patience() -> float | None:
        if b.patience is not None:
            return b.patience.sample(rng)
        return rng.expovariate(1.0 / (b.patience_min * 60.0)) if b.patience_min else None

    for sid, rates in sc.arrivals.items():
        for hour, rate in sorted(rates.items()):
            # the hour's own part of the opening hours only: 07:00-08:00 with opening at 07:30 -> 07:30-08:00
            h0 = day_epoch(cfg, sc.weekday, f"{int(hour):02d}:00")
            lo, hi = max(h0, t_open), min(h0 + 3600.0, t_close)
            t = lo
            rate *= sc.arrival_scale
            while rate > 0:
                t += rng.expovariate(rate / 3600.0)
                if t >= hi:
                    break
                arrivals.append(
                    Arrival(
                        t,
                        sid,
                        dists[sid].sample(rng),
                        priority=rng.random() < b.priority_share,
                        patience=patience(),
                        no_show=rng.random() < b.no_show,
                    )
                )
    appointments: list[tuple[str, str, float]] = []
    for i, book in enumerate(sc.appointments):
        slot, end = day_epoch(cfg, sc.weekday, book.start), day_epoch(cfg, sc.weekday, book.until)
        while slot < end:
            code = f"S{i}X{len(appointments):04d}"
            appointments.append((code, book.service, slot))
            if rng.random() >= b.appointment_no_show:
                t = slot + rng.gauss(b.arrival_offset_min * 60.0, b.arrival_sd_min * 60.0)
                arrivals.append(
                    Arrival(
                        max(t, t_open),
                        book.service,
                        dists[book.service].sample(rng),
                        slot=slot,
                        code=code,
                        patience=patience(),
                    )
                )
            slot += book.every_min * 60.0 / sc.arrival_scale
    arrivals.sort(key=lambda a: a.t)
    if sc.staffing is not None:
        shifts = {
            cid: [(day_epoch(cfg, sc.weekday, a), day_epoch(cfg, sc.weekday, z)) for a, z in spans]
            for cid, spans in sc.staffing.items()
        }
    else:
        shifts = {c.id: [(t_open, t_close)] for c in cfg.counters if c.initially == "open"}
    return DayPlan(
        t_open - 60.0,
        t_open,
        t_close,
        arrivals,
        shifts,
        appointments,
        b.no_show_min * 60.0,
        b.abandoned_called,
    )
