"""The admin's what-if page: compare steering rules on simulated office days (``waitroom.sim.whatif``).

- ``GET /admin/whatif``: the form -- a scenario (a bundled file, one of the office's own in
  ``<data dir>/scenarios/``, or pasted YAML), the simulated days per rule set, and up to three variants of the
  office's rules: per counter the services it takes, the service-level target per service, the priority ratio
  (``priority.normal_per_priority``), ``ageing_from`` and the walk-ins' bound behind appointments
  (``appointments.max_wait_behind_appointments_min``, empty = none).
- ``POST /admin/whatif`` (CSRF): runs the simulation in the request thread, bounded in time, and renders the
  comparison with the office as configured: waits (mean, median, p90, p95, max) per service and overall,
  service-level attainment, utilisation, citizens who left or were turned away, and two inline SVG charts.
- ``POST /admin/whatif.json`` (CSRF header ``X-CSRFToken``): the same for scripts, JSON in and out::

      {"scenario": "mitte-monday", "replications": 10, "seed": 1,
       "rule_sets": {"c3-fs": {"skills": {"c3": ["melde", "sonstiges", "fuehrerschein"]},
                               "targets": {"pass": 15}, "normal_per_priority": 2, "ageing_from": 0.75,
                               "walk_in_bound": 30}}}

  ``scenario`` may also be a scenario mapping. The office as configured is always compared as ``current``.

Bad input is an HTTP 400 with a message naming the field; one simulation runs at a time (503 while busy).
"""

from __future__ import annotations

import html
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from waitroom.config import EXAMPLE_CONFIG, Config, yaml_load
from waitroom.errors import ConfigError, WaitroomError
from waitroom.i18n import fmt_number, fmt_percent
from waitroom.web.common import cfg, current_user, json_error, lang, login_required, tr, trn
from waitroom.web.stats import PALETTE

log = logging.getLogger(__name__)

bp = Blueprint("whatif", __name__, url_prefix="/admin")

BASELINE = "current"
MAX_VARIANTS = 3
MAX_REPLICATIONS = 50
DEFAULT_REPLICATIONS = 10
MAX_SEED = 2**31 - 1
MAX_CITIZENS_PER_DAY = 3000  # a large Bürgerbüro sees ~1,000; beyond this a pasted scenario is a mistake
MAX_NAME = 40
BUNDLED_SCENARIOS = EXAMPLE_CONFIG.parent / "scenarios"  # installed with the package

SCENARIO_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
# one simulation at a time: it is CPU-bound and shares the worker process with the live streams


class WhatIfInputError(WaitroomError, ValueError):
    """A what-if request field is missing or out of range; ``key`` and ``values`` make the message."""

    def __init__(self, field_name: str, text_key: str, *, count: int | None = None, **values: Any):
        self.field = field_name
        self.text_key = text_key
        self.count = count  # a plural message's count (the text agrees with it), else None
        self.values = values
        super().__init__(f"{field_name}: {text_key} {values}")

    def message(self) -> str:
        if self.count is not None:
            return trn(self.text_key, self.count, **self.values)
        return tr(self.text_key, **self.values)


class WhatIfBusy(WaitroomError, RuntimeError):
    """Another what-if simulation is running."""


# ------------------------------------------------------------------------------------------------ input
@dataclass
class Variant:
    """One rule set to compare, in the terms of the form."""

    name: str
    skills: dict[str, list[str]]  # counter -> services, only the counters that differ from the office
    targets: dict[str, float]  # service -> target waiting minutes
    normal_per_priority: int
    ageing_from: float
    steering: dict[str, Any] | None = None  # JSON only: a full steering mapping replacing the office's
    walk_in_bound: float | None = None  # appointments.max_wait_behind_appointments_min (None: no bound)


@dataclass
class WhatIfRequest:
    scenario: Any  # a scenario mapping (parsed YAML)
    scenario_label: str
    replications: int
    seed: int | None
    variants: list[Variant]
    notes: list[str] = field(default_factory=list)


def scenario_dirs() -> list[Path]:
    """The office's own scenarios (``<data dir>/scenarios``) first, then the bundled ones."""
    configured = current_app.config.get("WAITROOM_SCENARIO_DIRS")
    if configured is not None:
        return [Path(p) for p in configured]
    return [Path(current_app.config["WAITROOM_DATA_DIR"]) / "scenarios", BUNDLED_SCENARIOS]


def scenario_catalog() -> dict[str, Path]:
    """Scenario id (file stem) -> file; an office scenario shadows a bundled one of the same name."""
    found: dict[str, Path] = {}
    for folder in scenario_dirs():
        if not folder.is_dir():
            continue
        for p in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            if SCENARIO_ID_RE.match(p.stem) and p.stem not in found:
                found[p.stem] = p
    return found


def scenario_options(office: Config) -> list[dict[str, Any]]:
    """The catalog for the form, each with its name and whether it fits this office."""
    from waitroom.sim.scenario import check, parse

    out = []
    for sid, path in scenario_catalog().items():
        entry: dict[str, Any] = {"id": sid, "name": sid, "error": None, "replications": None}
        try:
            sc = parse(yaml_load(path.read_text(encoding="utf-8")), path.name)
            check(sc, office, path.name)
            entry.update(name=sc.name, replications=sc.replications)
        except (OSError, yaml.YAMLError) as exc:
            entry["error"] = str(exc)[:200]
        except ConfigError as exc:
            entry["error"] = "; ".join(exc.errors)[:300]
        out.append(entry)
    return out


def _number(raw: Any, field_name: str, label: str, lo: float, hi: float, *, integer: bool) -> float:
    """A number from a form string ("0,75" too) or JSON, within [lo, hi]."""
    key = "web.whatif.err.int_range" if integer else "web.whatif.err.num_range"
    err = WhatIfInputError(field_name, key, field=label, lo=_fmt(lo), hi=_fmt(hi))
    if isinstance(raw, bool) or raw is None:
        raise err
    if isinstance(raw, str):
        raw = raw.strip().replace(",", ".")
        if not raw:
            raise err
        try:
            value = float(raw)
        except ValueError:
            raise err from None
    elif isinstance(raw, int | float):
        value = float(raw)
    else:
        raise err
    if not math.isfinite(value) or not lo <= value <= hi or (integer and value != int(value)):
        raise err
    return int(value) if integer else value


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _name(raw: Any, default: str, taken: set[str]) -> str:
    name = (raw if isinstance(raw, str) else default).strip() or default
    if len(name) > MAX_NAME or name.lower() in taken or not name.isprintable():
        raise WhatIfInputError("name", "web.whatif.err.name", name=name[:MAX_NAME], max=MAX_NAME)
    taken.add(name.lower())
    return name


def _skills(office: Config, given: dict[str, Any], vname: str) -> dict[str, list[str]]:
    """Validate counter -> services; keep only the counters whose services differ from the office's."""
    out: dict[str, list[str]] = {}
    for cid, services in given.items():
        if cid not in office.counter_ids:
            raise WhatIfInputError("skills", "web.whatif.err.counter", counter=str(cid)[:40])
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise WhatIfInputError("skills", "web.whatif.err.skills_list", counter=cid)
        for sid in services:
            if sid not in office.service_ids:
                raise WhatIfInputError("skills", "web.whatif.err.service", service=sid[:40])
        ordered = [s.id for s in office.services if s.id in services]  # the office's order, no duplicates
        current = office.counter(cid).services
        ordered = [s for s in current if s in ordered] + [s for s in ordered if s not in current]
        if not ordered:
            raise WhatIfInputError(
                "skills", "web.whatif.err.no_skills", name=vname, counter=_counter_name(office, cid)
            )
        if ordered != list(current):
            out[cid] = ordered
    return out


def _bound(get: Any, vname: str, prefix: str, default: float | None) -> float | None:
    """The walk-ins' bound behind appointments in minutes; empty (or JSON null) = no bound."""
    raw = get(f"{prefix}walk_in_bound", default)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    label = f"{vname}: {tr('web.whatif.walk_in_bound')}"
    return _number(raw, f"{prefix}walk_in_bound", label, 1, 480, integer=False)


def _knobs(office: Config, get: Any, vname: str, prefix: str) -> tuple[dict[str, float], int, float]:
    targets = {}
    for s in office.services:
        raw = get(f"{prefix}target_{s.id}", office.steering.target_s(s.id) / 60.0)
        label = f"{vname}: {tr('web.whatif.target')} {s.name.get(lang())}"
        targets[s.id] = _number(raw, f"{prefix}target_{s.id}", label, 1, 480, integer=False)
    npp = _number(
        get(f"{prefix}normal_per_priority", office.steering.priority.normal_per_priority),
        f"{prefix}normal_per_priority",
        f"{vname}: {tr('web.whatif.normal_per_priority')}",
        0,
        20,
        integer=True,
    )
    ageing = _number(
        get(f"{prefix}ageing_from", office.steering.ageing_from),
        f"{prefix}ageing_from",
        f"{vname}: {tr('web.whatif.ageing_from')}",
        0.05,
        10,
        integer=False,
    )
    return targets, int(npp), ageing


def _common(office: Config, get: Any, scenario_yaml: str, scenario_id: str) -> tuple[Any, str, int, Any]:
    """Scenario, replications and seed, from the form or JSON."""
    if scenario_yaml.strip():
        try:
            data = yaml_load(scenario_yaml)
        except yaml.YAMLError as exc:
            raise WhatIfInputError(
                "scenario_yaml", "web.whatif.err.scenario_invalid", details=str(exc)[:300]
            ) from None
        label = tr("web.whatif.own_scenario")
    else:
        path = scenario_catalog().get(scenario_id)
        if path is None:
            raise WhatIfInputError("scenario", "web.whatif.err.scenario", name=scenario_id[:80])
        try:
            data = yaml_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise WhatIfInputError(
                "scenario", "web.whatif.err.scenario_invalid", details=str(exc)[:300]
            ) from None
        label = scenario_id
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "config"}  # always this office, never another file
        if get("slot_plan", None):
            data["appointments"] = slot_plan_blocks(office, data.get("weekday", "mon"))
    reps = _number(
        get("replications", DEFAULT_REPLICATIONS),
        "replications",
        tr("web.whatif.replications"),
        1,
        MAX_REPLICATIONS,
        integer=True,
    )
    raw_seed = get("seed", None)
    seed = None
    if raw_seed not in (None, ""):
        seed = _number(raw_seed, "seed", tr("web.whatif.seed"), 0, MAX_SEED, integer=True)
    return data, label, int(reps), None if seed is None else int(seed)


def slot_plan_blocks(office: Config, weekday: Any) -> list[dict[str, Any]]:
    """The scenario's appointment book replaced by the office's slot plan of a fully booked day
    (``waitroom.appointments.capacity.fill_day``): one single-slot block per appointment."""
    import datetime as dt

    from waitroom.appointments import capacity
    from waitroom.sim.scenario import REFERENCE_MONDAY

    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    day = REFERENCE_MONDAY + dt.timedelta(days=days.index(weekday) if weekday in days else 0)
    blocks = []
    for b in capacity.fill_day(office, day):
        t = dt.datetime.fromtimestamp(b.slot, office.office.tz)
        blocks.append(
            {
                "service": b.service,
                "from": t.strftime("%H:%M"),
                "to": (t + dt.timedelta(minutes=1)).strftime("%H:%M"),
                "every_min": 1,
            }
        )
    return blocks


def parse_form(office: Config, form: Any) -> WhatIfRequest:
    """The what-if form -> a request; WhatIfInputError names the first bad field."""
    data, label, reps, seed = _common(
        office, form.get, form.get("scenario_yaml", ""), form.get("scenario", "")
    )
    variants: list[Variant] = []
    taken = {BASELINE, tr("web.whatif.configured").lower()}
    for i in range(1, MAX_VARIANTS + 1):
        prefix = f"v{i}_"
        if not form.get(f"{prefix}on"):
            continue
        vname = _name(form.get(f"{prefix}name"), tr("web.whatif.variant", n=i), taken)
        given = {c.id: form.getlist(f"{prefix}skill_{c.id}") for c in office.counters}
        skills = _skills(office, given, vname)
        targets, npp, ageing = _knobs(office, form.get, vname, prefix)
        bound = _bound(form.get, vname, prefix, None)
        variants.append(Variant(vname, skills, targets, npp, ageing, walk_in_bound=bound))
    if not variants:
        raise WhatIfInputError("v1_on", "web.whatif.err.no_variant")
    return WhatIfRequest(data, label, reps, seed, variants)


def parse_json(office: Config, body: Any) -> WhatIfRequest:
    """The JSON body -> a request; missing knobs keep the office's values."""
    if not isinstance(body, dict):
        raise WhatIfInputError("(body)", "web.whatif.err.json")
    unknown = set(body) - {"scenario", "replications", "seed", "rule_sets"}
    if unknown:
        raise WhatIfInputError(sorted(unknown)[0], "web.whatif.err.key", name=sorted(unknown)[0][:40])
    sc = body.get("scenario")
    if isinstance(sc, dict):
        data, label, reps, seed = _common(office, body.get, yaml.safe_dump(sc), "")
    elif isinstance(sc, str):
        data, label, reps, seed = _common(office, body.get, "", sc)
    else:
        raise WhatIfInputError("scenario", "web.whatif.err.scenario", name=str(sc)[:80])
    sets = body.get("rule_sets")
    if not isinstance(sets, dict) or not sets:
        raise WhatIfInputError("rule_sets", "web.whatif.err.no_variant")
    sets = {k: v for k, v in sets.items() if not (k == BASELINE and v is None)}  # the baseline is implicit
    if len(sets) > MAX_VARIANTS:
        raise WhatIfInputError("rule_sets", "web.whatif.err.too_many", n=MAX_VARIANTS)
    taken = {BASELINE}
    variants = []
    for raw_name, rs in sets.items():
        vname = _name(raw_name, "", taken)
        rs = {} if rs is None else rs  # null = the office's rules (a named copy of the baseline)
        if not isinstance(rs, dict):
            raise WhatIfInputError(f"rule_sets.{vname}", "web.whatif.err.json")
        extra = set(rs) - {
            "skills",
            "targets",
            "normal_per_priority",
            "ageing_from",
            "walk_in_bound",
            "steering",
        }
        if extra:
            key = f"rule_sets.{vname}.{sorted(extra)[0]}"
            raise WhatIfInputError(key, "web.whatif.err.key", name=key[:80])
        skills_in = rs.get("skills") or {}
        targets_in = rs.get("targets") or {}
        if not isinstance(skills_in, dict) or not isinstance(targets_in, dict):
            raise WhatIfInputError(f"rule_sets.{vname}", "web.whatif.err.json")
        for sid in targets_in:
            if sid not in office.service_ids:
                raise WhatIfInputError("targets", "web.whatif.err.service", service=str(sid)[:40])
        steering = rs.get("steering")
        if steering is not None and not isinstance(steering, dict):
            raise WhatIfInputError(f"rule_sets.{vname}.steering", "web.whatif.err.json")

        def get(key: str, default: Any, rs: dict[str, Any] = rs, tg: dict[str, Any] = targets_in) -> Any:
            if key.startswith("target_"):
                return tg.get(key.removeprefix("target_"), default)
            return rs.get(key, default)

        skills = _skills(office, skills_in, vname)
        targets, npp, ageing = _knobs(office, get, vname, "")
        # without the knob: the bound of the given steering (none when it has none), else the office's
        given = office.steering.appointments.max_wait_behind_appointments_min
        if steering is not None:
            appts = steering.get("appointments")
            given = appts.get("max_wait_behind_appointments_min") if isinstance(appts, dict) else None
        bound = _bound(get, vname, "", given)
        variants.append(Variant(vname, skills, targets, npp, ageing, steering, walk_in_bound=bound))
    return WhatIfRequest(data, label, reps, seed, variants)


# ------------------------------------------------------------------------------------------------ rules
def rule_set(office: Config, v: Variant) -> dict[str, Any]:
    """The variant as a ``whatif`` rule set: the office's steering with the knobs applied, and the skills.

    Weights and condition counters that name a service a counter no longer takes are dropped, and so are
    ``counters: secondary`` conditions once no counter takes the service as a secondary skill, as the config
    check would otherwise (rightly) refuse them.
    """
    st = dict(v.steering) if v.steering is not None else office.steering.model_dump(mode="json")
    st["ageing_from"] = v.ageing_from
    st["priority"] = {**(st.get("priority") or {}), "normal_per_priority": v.normal_per_priority}
    st["appointments"] = {
        **(st.get("appointments") or {}),
        "max_wait_behind_appointments_min": v.walk_in_bound,
    }
    levels = dict(st.get("service_levels") or {})
    default_pct = (st.get("default_service_level") or {}).get("percent", 80.0)
    for sid, minutes in v.targets.items():
        levels[sid] = {**(levels.get(sid) or {"percent": default_pct}), "within_min": minutes}
    st["service_levels"] = levels
    takes = {c.id: v.skills.get(c.id, list(c.services)) for c in office.counters}
    weights = st.get("weights") or {}
    st["weights"] = {
        cid: {sid: w for sid, w in ws.items() if sid in takes.get(cid, [])} for cid, ws in weights.items()
    }

    def secondary(sid: Any) -> bool:  # some counter still takes sid with a weight below its highest
        def w(cid: str, s: str) -> float:
            return float(st["weights"].get(cid, {}).get(s, 1.0))

        return any(sid in ss and w(cid, sid) < max(w(cid, s) for s in ss) for cid, ss in takes.items() if ss)

    conditions = []
    for cond in st.get("conditions") or []:
        if isinstance(cond, dict) and isinstance(cond.get("counters"), list):
            kept = [cid for cid in cond["counters"] if cond.get("service") in takes.get(cid, [])]
            if not kept:
                continue
            cond = {**cond, "counters": kept}
        elif (
            isinstance(cond, dict)
            and cond.get("counters", "secondary") == "secondary"
            and not secondary(cond.get("service"))
        ):
            continue  # the variant leaves nobody with it as a secondary skill
        conditions.append(cond)
    st["conditions"] = conditions
    out: dict[str, Any] = {"steering": st}
    if v.skills:
        out["skills"] = v.skills
    return out


def _counter_name(office: Config, cid: str) -> str:
    return office.counter(cid).name.get(lang()) if cid in office.counter_ids else cid


def check_request(office: Config, req: WhatIfRequest) -> tuple[Any, dict[str, Any]]:
    """Validate the scenario and every rule set against the office; returns (Scenario, rule sets)."""
    from waitroom.sim.scenario import apply_rule_set, check, parse

    try:
        sc = parse(req.scenario, req.scenario_label)
        check(sc, office, req.scenario_label)
        if not office.office.hours.get(sc.weekday):
            raise ConfigError(req.scenario_label, [f"weekday: the office is closed on {sc.weekday}"])
    except ConfigError as exc:
        raise WhatIfInputError(
            "scenario", "web.whatif.err.scenario_invalid", details="; ".join(exc.errors)[:600]
        ) from None
    per_day = citizens_per_day(sc)
    if per_day > MAX_CITIZENS_PER_DAY:
        raise WhatIfInputError(
            "scenario", "web.whatif.err.too_big", n=round(per_day), max=MAX_CITIZENS_PER_DAY
        )
    sets: dict[str, Any] = {BASELINE: None}
    for v in req.variants:
        rs = rule_set(office, v)
        try:
            applied = apply_rule_set(office, rs)
        except ConfigError as exc:
            raise WhatIfInputError(
                v.name, "web.whatif.err.rules", name=v.name, details="; ".join(exc.errors)[:600]
            ) from None
        sets[v.name] = rs
        served = {sid for c in applied.counters for sid in c.services}
        for s in office.services:
            if s.id not in served and sc.arrivals.get(s.id):
                req.notes.append(tr("web.whatif.no_counter", name=v.name, service=s.name.get(lang())))
    return sc, sets


def citizens_per_day(sc: Any) -> float:
    """Expected arrivals of one scenario day (walk-ins by the hourly rates, plus appointment slots)."""
    walk_ins = sum(sum(rates.values()) for rates in sc.arrivals.values())
    slots = 0.0
    for book in sc.appointments:
        (h1, m1), (h2, m2) = (map(int, x.split(":")) for x in (book.start, book.until))
        slots += max(0.0, ((h2 * 60 + m2) - (h1 * 60 + m1)) / book.every_min)
    return walk_ins + slots


# ------------------------------------------------------------------------------------------------ running
def jobs() -> Any:
    from waitroom.web.whatif_jobs import JobStore

    return current_app.extensions.setdefault(
        "waitroom_whatif_jobs", JobStore(Path(current_app.config["WAITROOM_DATA_DIR"]) / "whatif-jobs")
    )


def max_days() -> int:
    return int(current_app.config.get("WAITROOM_WHATIF_MAX_DAYS", 20))


def start(office: Config, req: WhatIfRequest) -> str:
    """Validate the request and start it as a background job (every requested day runs); returns its id.

    Raises WhatIfInputError (400) for a request over ``web.whatif_max_days``, WhatIfBusy while a job runs."""
    from waitroom.web.whatif_jobs import JobBusy

    if req.replications > max_days():
        raise WhatIfInputError(
            "replications", "web.whatif.err.max_days", count=max_days(), n=max_days(), wanted=req.replications
        )
    sc, sets = check_request(office, req)
    extra = {
        "scenario_file": req.scenario_label,
        "notes": list(req.notes),
        "inputs": {BASELINE: None, **{v.name: sets[v.name] for v in req.variants}},
        "order": [BASELINE, *(v.name for v in req.variants)],  # JSON objects may lose their order
    }
    payload = {
        "office": office,
        "scenario": sc,
        "sets": sets,
        "days": req.replications,
        "seed": req.seed,
        "total": req.replications * len(sets),
        "extra": extra,
    }
    try:
        return str(jobs().start(payload, payload["total"]))
    except JobBusy:
        raise WhatIfBusy("a what-if simulation is running") from None


def run(office: Config, req: WhatIfRequest, timeout: float = 600.0) -> dict[str, Any]:
    """Start the job and wait for its report (the JSON API's synchronous mode)."""
    job_id = start(office, req)
    st = jobs().wait(job_id, timeout)
    if st is None or st["state"] != "done":
        raise WhatIfFailed(str((st or {}).get("error") or "the simulation did not finish in time"))
    return dict(st["report"])


class WhatIfFailed(WaitroomError, RuntimeError):
    """The simulation job failed or did not finish."""


# ------------------------------------------------------------------------------------------------ charts
def waits_chart(report: dict[str, Any], labels: dict[str, str], title: str, *, lang: str = "de") -> str:
    """Horizontal grouped bars: mean wait per service (and overall) per rule set, p90 as a tick; the minutes
    written as ``lang`` writes numbers ("12,5")."""
    sets = report["rule_sets"]
    names = list(sets)
    groups = [*next(iter(sets.values()))["per_service"], "__all__"]
    row, gap, left, width = 15, 12, 210, 640
    top = max(
        [
            (s["overall"] if g == "__all__" else s["per_service"][g]).get(k) or 0
            for s in sets.values()
            for g in groups
            for k in ("mean_wait_min", "p90_wait_min")
        ]
        or [0]
    )
    top = top or 1.0
    scale = (width - left - 70) / top
    legend_h = 20 * len(names)
    height = legend_h + len(groups) * (row * len(names) + gap) + 10
    e = html.escape
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}" class="chart" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>'
    ]
    for i, name in enumerate(names):
        parts.append(
            f'<rect x="{left}" y="{4 + 20 * i}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + 18}" y="{14 + 20 * i}" font-size="12">{e(labels.get(name, name))}</text>'
        )
    y = legend_h + 4
    for g in groups:
        label = labels.get(g, g)
        parts.append(
            f'<text x="0" y="{y + row * len(names) / 2 + 4:.1f}" font-size="12">{e(label[:30])}</text>'
        )
        for i, name in enumerate(names):
            data = sets[name]["overall"] if g == "__all__" else sets[name]["per_service"][g]
            mean, p90 = data.get("mean_wait_min") or 0.0, data.get("p90_wait_min") or 0.0
            w = mean * scale
            said, said_p90 = fmt_number(mean, lang, 1), fmt_number(p90, lang, 1)
            parts.append(
                f'<rect x="{left}" y="{y + 1}" width="{w:.1f}" height="{row - 3}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{e(labels.get(name, name))}, {e(label)}: '
                f"{said} min (p90 {said_p90})</title></rect>"
                f'<line x1="{left + p90 * scale:.1f}" x2="{left + p90 * scale:.1f}" y1="{y}" '
                f'y2="{y + row - 1}" '
                f'stroke="#111" stroke-width="2"/>'
                f'<text x="{left + max(w, p90 * scale) + 5:.1f}" y="{y + row - 4}" font-size="11">'
                f"{said} (p90 {said_p90})</text>"
            )
            y += row
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def cdf_chart(
    report: dict[str, Any], labels: dict[str, str], title: str, bin_min: int = 5, *, lang: str = "de"
) -> str:
    """The share of called citizens called within x minutes, one line per rule set (its axes written as
    ``lang`` writes numbers and percentages: "50 %" in German, "50%" in English)."""
    sets = report["rule_sets"]
    hists = {name: s["overall"]["histogram"] for name, s in sets.items()}
    cums: dict[str, list[float]] = {}
    for name, hist in hists.items():
        total, acc, cum = sum(hist) or 1, 0, [0.0]
        for h in hist:
            acc += h
            cum.append(acc / total)
        cums[name] = cum
    last = max(
        (next((i for i, v in enumerate(c) if v >= 0.995), len(c) - 1) for c in cums.values()), default=1
    )
    n_bins = max(min(last + 1, len(next(iter(cums.values())))), 4)
    width, height, left, bottom, right = 640, 260, 44, 30, 12
    xs = (width - left - right) / (n_bins - 1)
    ys = height - bottom - 10
    e = html.escape
    parts = [
        f'<svg viewBox="0 0 {width} {height + 20 * len(cums)}" role="img" aria-label="{e(title)}" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>'
    ]
    for pct in (0, 25, 50, 75, 100):
        y = height - bottom - ys * pct / 100
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{fmt_percent(pct / 100, lang)}</text>"
        )
    step = 3 if n_bins > 14 else 1
    for i in range(0, n_bins, step):
        parts.append(
            f'<text x="{left + i * xs:.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{fmt_number(i * bin_min, lang)}</text>'
        )
    parts.append(f'<text x="{width - right}" y="{height - 2}" font-size="11" text-anchor="end">min</text>')
    for k, (name, cum) in enumerate(cums.items()):
        pts = " ".join(
            f"{left + i * xs:.1f},{height - bottom - ys * v:.1f}" for i, v in enumerate(cum[:n_bins])
        )
        color = PALETTE[k % len(PALETTE)]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        parts.append(
            f'<rect x="{left}" y="{height + 6 + 20 * k}" width="12" height="12" fill="{color}"/>'
            f'<text x="{left + 18}" y="{height + 16 + 20 * k}" font-size="12">{e(labels.get(name, name))}'
            "</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------------ views
def _form_defaults(office: Config) -> dict[str, Any]:
    """The form's values: variant 1 on, every variant prefilled with the office's rules."""
    values: dict[str, Any] = {
        "replications": str(DEFAULT_REPLICATIONS),
        "seed": "",
        "scenario_yaml": "",
        "slot_plan": False,
    }
    for i in range(1, MAX_VARIANTS + 1):
        p = f"v{i}_"
        values[f"{p}on"] = i == 1
        values[f"{p}name"] = tr("web.whatif.variant", n=i)
        for c in office.counters:
            values[f"{p}skill_{c.id}"] = list(c.services)
        for s in office.services:
            values[f"{p}target_{s.id}"] = _fmt(round(office.steering.target_s(s.id) / 60.0, 2))
        values[f"{p}normal_per_priority"] = str(office.steering.priority.normal_per_priority)
        values[f"{p}ageing_from"] = _fmt(office.steering.ageing_from)
        bound = office.steering.appointments.max_wait_behind_appointments_min
        values[f"{p}walk_in_bound"] = "" if bound is None else _fmt(bound)
    return values


def _form_values(office: Config, form: Any) -> dict[str, Any]:
    values = _form_defaults(office)
    for key in values:
        if key.startswith("v") and "_skill_" in key:
            values[key] = form.getlist(key)
        elif key.endswith("_on"):
            values[key] = bool(form.get(key))
        elif key in form:
            values[key] = form.get(key, "")[:20000]
    values["scenario"] = form.get("scenario", "")
    values["slot_plan"] = bool(form.get("slot_plan"))
    return values


def _labels(office: Config) -> dict[str, str]:
    labels = {s.id: s.name.get(lang()) for s in office.services}
    labels.update({c.id: c.name.get(lang()) for c in office.counters})
    labels[BASELINE] = tr("web.whatif.configured")
    labels["__all__"] = tr("web.whatif.all_services")
    return labels


def _page(
    values: dict[str, Any],
    *,
    report: dict[str, Any] | None = None,
    error: str | None = None,
    error_field: str | None = None,
) -> str:
    office = cfg()
    options = scenario_options(office)
    if not values.get("scenario"):
        usable = [o for o in options if not o["error"]]
        values["scenario"] = usable[0]["id"] if usable else ""
    labels = _labels(office)
    charts = None
    if report is not None:
        charts = {
            "waits": waits_chart(report, labels, tr("web.whatif.chart_waits"), lang=lang()),
            "cdf": cdf_chart(report, labels, tr("web.whatif.chart_cdf"), lang=lang()),
        }
    return render_template(
        "admin_whatif.html",
        values=values,
        options=options,
        office_cfg=office,
        labels=labels,
        report=report,
        charts=charts,
        error=error,
        error_field=error_field,
        max_variants=MAX_VARIANTS,
        max_replications=min(MAX_REPLICATIONS, max_days()),
        own_folder=str(scenario_dirs()[0]) if scenario_dirs() else "",
        baseline=BASELINE,
    )


@bp.get("/whatif")
@login_required("admin")
def page() -> str:
    return _page(_form_defaults(cfg()))


@bp.post("/whatif")
@login_required("admin")
def compare() -> tuple[str, int] | str | Response:
    office = cfg()
    values = _form_values(office, request.form)
    try:
        req = parse_form(office, request.form)
        job_id = start(office, req)
    except ConfigError as exc:  # the simulator refused what the checks above let through
        log.warning("what-if refused by the simulator: %s", exc)
        details = "; ".join(exc.errors)[:600]
        return _page(values, error=tr("web.whatif.err.scenario_invalid", details=details)), 400
    except WhatIfInputError as exc:
        log.info("what-if refused: %s", exc)
        return _page(values, error=exc.message(), error_field=exc.field), 400
    except WhatIfBusy:
        return _page(values, error=tr("web.whatif.err.busy")), 503
    user = current_user()
    log.info(
        "what-if job %s by %s: %s, %d days",
        job_id,
        user.name if user else "-",
        req.scenario_label,
        req.replications,
    )
    session_forms = current_app.extensions.setdefault("waitroom_whatif_forms", {})
    session_forms[job_id] = values  # the form as sent, shown again with the result (this worker)
    return redirect(url_for("whatif.job_page", job_id=job_id), code=303)


@bp.get("/whatif/job/<job_id>")
@login_required("admin")
def job_page(job_id: str) -> str | tuple[str, int]:
    """The job's progress bar (the page polls the JSON below), then its result."""
    st = jobs().status(job_id)
    if st is None:
        return _page(_form_defaults(cfg()), error=tr("web.whatif.unknown_job")), 404
    values = current_app.extensions.get("waitroom_whatif_forms", {}).get(job_id) or _form_defaults(cfg())
    if st["state"] == "done":
        return _page(values, report=st["report"])
    if st["state"] == "failed":
        return _page(values, error=tr("web.whatif.failed", error=st.get("error", "?"))), 500
    return render_template(
        "admin_whatif_progress.html",
        job_id=job_id,
        status=st,
        status_url=url_for("whatif.job_status", job_id=job_id),
    )


@bp.get("/whatif/job/<job_id>.json")
@login_required("admin")
def job_status(job_id: str) -> Response:
    st = jobs().status(job_id)
    if st is None:
        return json_error(404, "unknown_job", tr("web.whatif.unknown_job"))
    body = {"ok": True, "job": job_id, **st}
    if st["state"] in ("queued", "running"):
        body["text"] = tr("web.whatif.running", done=st.get("done") or 0, total=st.get("total") or 0)
    return jsonify(body)


@bp.post("/whatif.json")
def compare_json() -> Response:
    """Start a comparison. ``?async=1``: answer 202 with the job and its status URL at once; otherwise wait
    for the report (the simulation runs in its own process either way)."""
    user = current_user()  # scripts get JSON errors, not the login page
    if user is None:
        return json_error(401, "login_required", tr("web.login_required"))
    if not user.is_admin:
        return json_error(403, "forbidden", tr("web.forbidden"))
    office = cfg()
    body = request.get_json(silent=True)
    try:
        req = parse_json(office, body)
        if request.args.get("async") == "1":
            job_id = start(office, req)
            resp = jsonify(
                {"ok": True, "job": job_id, "status_url": url_for("whatif.job_status", job_id=job_id)}
            )
            resp.status_code = 202
            return resp
        report = run(office, req)
    except ConfigError as exc:  # the simulator refused what the checks above let through
        log.warning("what-if refused by the simulator: %s", exc)
        details = "; ".join(exc.errors)[:600]
        return json_error(400, "bad_request", tr("web.whatif.err.scenario_invalid", details=details))
    except WhatIfInputError as exc:
        log.info("what-if (json) refused: %s", exc)
        resp = jsonify(
            {"ok": False, "error": {"code": "bad_request", "message": exc.message(), "field": exc.field}}
        )
        resp.status_code = 400
        return resp
    except WhatIfBusy:
        resp = json_error(503, "busy", tr("web.whatif.err.busy"))
        resp.headers["Retry-After"] = "10"
        return resp
    except WhatIfFailed as exc:
        return json_error(500, "failed", tr("web.whatif.failed", error=str(exc)))
    return jsonify({"ok": True, "report": report})
