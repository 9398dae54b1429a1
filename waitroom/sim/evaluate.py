"""Figures of simulated days: waiting times, service levels, utilisation, turned-away citizens, appointment
punctuality and the error of every waiting-time predictor (RASE).

RASE (relative average squared error) = sqrt(mean((predicted - actual)²)) / mean(actual), over the citizens
who were called (abandoned ones have no actual wait). ``rase_delayed`` counts only citizens who found no free
counter on arrival -- the classical definition, for which QL on an M/M/s FCFS queue gives sqrt(1 - ρ).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from waitroom.config import Config
from waitroom.sim.engine import PREDICTORS, DayResult, Record

HIST_BIN_MIN = 5
HIST_BINS = 36  # 0-180 minutes, the last bin holds everything longer


def percentile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rase(pairs: Iterable[tuple[float, float]]) -> tuple[float, int]:
    """(RASE, n) of (predicted, actual) pairs; infinite predictions are left out."""
    se = total = 0.0
    n = 0
    for pred, actual in pairs:
        if math.isinf(pred):
            continue
        se += (pred - actual) ** 2
        total += actual
        n += 1
    if n == 0 or total <= 0:
        return float("nan"), n
    return math.sqrt(se / n) / (total / n), n


def _round(x: float, nd: int = 2) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(x, nd)


def wait_stats(records: list[Record], target_s: float | None) -> dict[str, Any]:
    called = [r.wait / 60.0 for r in records if r.wait is not None]
    abandoned = [r for r in records if r.outcome == "abandoned"]
    out: dict[str, Any] = {
        "arrived": len(records),
        "served": sum(1 for r in records if r.outcome == "served"),
        "no_show": sum(1 for r in records if r.outcome == "no_show"),
        "abandoned": len(abandoned),
        "turned_away": sum(1 for r in records if r.outcome == "turned_away"),
        "unserved": sum(1 for r in records if r.outcome == "unserved"),
        "mean_wait_min": _round(statistics.fmean(called)) if called else None,
        "median_wait_min": _round(percentile(called, 50)),
        "p90_wait_min": _round(percentile(called, 90)),
        "p95_wait_min": _round(percentile(called, 95)),
        "max_wait_min": _round(max(called)) if called else None,
    }
    if target_s is not None:
        within = sum(1 for w in called if w * 60.0 <= target_s)
        # a ticket nobody called (given up, or still waiting when the last counter closed) missed the target
        missed = sum(1 for r in records if r.outcome in ("abandoned", "unserved") and r.ticket is not None)
        denom = len(called) + missed
        out["service_level"] = _round(within / denom, 4) if denom else None
        out["target_min"] = _round(target_s / 60.0)
    hist = [0] * HIST_BINS
    for w in called:
        hist[min(int(w // HIST_BIN_MIN), HIST_BINS - 1)] += 1
    out["histogram"] = hist
    return out


def predictor_errors(records: list[Record], warmup_until: float | None = None) -> dict[str, Any]:
    usable = [
        r
        for r in records
        if r.wait is not None
        and r.predictions
        and (warmup_until is None or r.arrival >= warmup_until)
        and not any(math.isinf(v) for v in r.predictions.values())
    ]  # the same citizens for every predictor
    out: dict[str, Any] = {}
    for name in PREDICTORS:
        all_r, n_all = rase((r.predictions[name], r.wait) for r in usable if name in r.predictions)
        del_r, n_del = rase(
            (r.predictions[name], r.wait) for r in usable if r.delayed and name in r.predictions
        )
        errs = [
            abs(r.predictions[name] - r.wait) / 60.0
            for r in usable
            if name in r.predictions and not math.isinf(r.predictions[name])
        ]
        out[name] = {
            "rase": _round(all_r, 4),
            "rase_delayed": _round(del_r, 4),
            "n": n_all,
            "n_delayed": n_del,
            "mean_abs_error_min": _round(statistics.fmean(errs)) if errs else None,
        }
    return out


# ------------------------------------------------------------------------------------------- per-day figures
GROUPS = {
    "all": lambda r: True,
    "walk_in": lambda r: r.kind != "appointment",
    "appointment": lambda r: r.kind == "appointment",
    "priority": lambda r: r.priority,
    "normal": lambda r: r.kind != "appointment" and not r.priority,
}
APPOINTMENT_WINDOW_S = 300.0  # "called within 5 minutes of the slot"


# Figures that are shares (0..1); every figure is at least 0.
SHARES = frozenset(
    {
        "within_target",
        "appointments_within_5_min_of_slot",
        "appointments_within_5_min_of_due",
        "appointments_arrived_over_5_min_late",
        "utilisation",
    }
)


def ci95(values: Sequence[float], high: float | None = None) -> dict[str, Any]:
    """Mean of per-day values with its 95 % confidence interval (normal approximation over days), kept within
    what the figure can be (at least 0, a share at most ``high`` = 1): "3.7 [0.0-7.5]", never "[-0.0-7.5]"."""
    xs = [v for v in values if v is not None and not math.isnan(v)]
    if not xs:
        return {"mean": None, "ci95": None, "days": 0}
    m = statistics.fmean(xs)
    half = 1.96 * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
    lo, hi = max(m - half, 0.0), m + half
    if high is not None:
        hi = min(hi, high)
    return {"mean": _round(m, 3), "ci95": [_round(lo, 3), _round(hi, 3)], "days": len(xs)}


def _day_figures(d: DayResult, cfg: Config) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for g, keep in GROUPS.items():
        ws = [r.wait / 60.0 for r in d.records if r.wait is not None and keep(r)]
        out[f"{g}.mean_wait_min"] = statistics.fmean(ws) if ws else None
        out[f"{g}.p95_wait_min"] = percentile(ws, 95) if ws else None
        out[f"{g}.max_wait_min"] = max(ws) if ws else None
    called = [r for r in d.records if r.wait is not None]
    gone = sum(1 for r in d.records if r.outcome in ("abandoned", "unserved") and r.ticket is not None)
    within = sum(1 for r in called if r.wait <= cfg.steering.target_s(r.service))  # type: ignore[operator]
    out["within_target"] = within / (len(called) + gone) if called or gone else None
    appts = [r for r in d.records if r.kind == "appointment" and r.called is not None]
    out["appointments_within_5_min_of_slot"] = (
        sum(1 for r in appts if r.called - r.slot <= APPOINTMENT_WINDOW_S) / len(appts) if appts else None  # type: ignore[operator]
    )
    out["appointments_within_5_min_of_due"] = (
        sum(1 for r in appts if r.called - max(r.slot, r.arrival) <= APPOINTMENT_WINDOW_S) / len(appts)  # type: ignore[operator,type-var]
        if appts
        else None
    )
    # the ceiling of the figure above: no rule set calls a holder within 5 minutes of a slot missed by more
    out["appointments_arrived_over_5_min_late"] = (
        sum(1 for r in appts if r.arrival - r.slot > APPOINTMENT_WINDOW_S) / len(appts)  # type: ignore[operator]
        if appts
        else None
    )
    over = [r for r in d.records if r.overtaken_wait is not None]
    out["overtaken_max_wait_when_overtaken_min"] = max((r.overtaken_wait for r in over), default=0.0) / 60.0  # type: ignore[type-var]
    out["overtaken_max_wait_min"] = max((r.wait for r in over if r.wait is not None), default=0.0) / 60.0
    out["turned_away"] = float(sum(1 for r in d.records if r.outcome == "turned_away"))
    out["abandoned"] = float(sum(1 for r in d.records if r.outcome == "abandoned"))
    # still waiting when the day ended: no counter on shift served their service any more
    out["unserved"] = float(sum(1 for r in d.records if r.outcome == "unserved"))
    staffed = sum(d.staffed.values())
    out["utilisation"] = sum(d.busy.values()) / staffed if staffed > 0 else None
    out["overtime_min"] = max(0.0, d.end - d.close) / 60.0
    return out


def figures(days: list[DayResult], cfg: Config) -> dict[str, Any]:
    """Every figure of the comparison as the mean over days with a 95 % confidence interval (``ci95``)."""
    per_day = [_day_figures(d, cfg) for d in days]
    out: dict[str, Any] = {}
    for key in per_day[0] if per_day else ():
        v = ci95([x[key] for x in per_day], 1.0 if key in SHARES else None)  # type: ignore[misc]
        if key.endswith("max_wait_min") or key.startswith("overtaken"):
            v["worst"] = _round(max((x[key] for x in per_day if x[key] is not None), default=float("nan")), 3)  # type: ignore[type-var]
        group, _, name = key.rpartition(".")
        (out.setdefault(group, {}) if group else out)[name] = v
    return out


def summarize(days: list[DayResult], cfg: Config, *, warmup_s: float = 0.0) -> dict[str, Any]:
    """The JSON-able summary of simulated days of one rule set."""
    records = [r for d in days for r in d.records]
    warm = [r for d in days for r in d.records if r.arrival >= d.open + warmup_s]
    per_service = {
        s.id: wait_stats([r for r in warm if r.service == s.id], cfg.steering.target_s(s.id))
        for s in cfg.services
    }
    overall = wait_stats(warm, None)
    slv = [
        v["service_level"] * (v["served"] + v["no_show"] + v["abandoned"] + v["unserved"])
        for v in per_service.values()
        if v.get("service_level") is not None
    ]
    weight = sum(
        v["served"] + v["no_show"] + v["abandoned"] + v["unserved"]
        for v in per_service.values()
        if v.get("service_level") is not None
    )
    overall["service_level"] = _round(sum(slv) / weight, 4) if weight else None
    day_means = [
        statistics.fmean(ws)
        for d in days
        if (ws := [r.wait / 60.0 for r in d.records if r.wait is not None and r.arrival >= d.open + warmup_s])
    ]
    if len(day_means) > 1:
        half = 1.96 * statistics.stdev(day_means) / math.sqrt(len(day_means))
        overall["mean_wait_ci95_min"] = [
            _round(max(statistics.fmean(day_means) - half, 0.0)),
            _round(statistics.fmean(day_means) + half),
        ]
    busy = {c.id: sum(d.busy[c.id] for d in days) for c in cfg.counters}
    staffed = {c.id: sum(d.staffed[c.id] for d in days) for c in cfg.counters}
    utilisation = {cid: _round(busy[cid] / staffed[cid], 4) if staffed[cid] > 0 else None for cid in busy}
    total_staffed = sum(staffed.values())
    appts = [r for r in records if r.slot is not None]
    on_time = [r for r in appts if r.kind == "appointment" and r.called is not None]
    lateness = [max(0.0, r.called - r.slot) / 60.0 for r in on_time]  # type: ignore[operator]
    appointments = {
        "arrived": len(appts),
        "called": len(on_time),
        "late_walk_in": sum(1 for r in appts if r.kind == "late_walk_in"),
        "mean_delay_after_slot_min": _round(statistics.fmean(lateness)) if lateness else None,
        "p90_delay_after_slot_min": _round(percentile(lateness, 90)),
        "within_10_min": _round(sum(1 for x in lateness if x <= 10) / len(lateness), 4) if lateness else None,
    }
    reasons: dict[str, int] = {}
    for r in records:
        if r.reason:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    return {
        "days": len(days),
        "policy": cfg.steering.policy,
        "figures": figures(days, cfg),
        "overall": overall,
        "per_service": per_service,
        "utilisation": utilisation,
        "utilisation_overall": _round(sum(busy.values()) / total_staffed, 4) if total_staffed else None,
        "overtime_min_per_day": _round(statistics.fmean(max(0.0, d.end - d.close) / 60.0 for d in days)),
        "appointments": appointments,
        "predictors": predictor_errors(records, None)
        if warmup_s == 0
        else predictor_errors([r for d in days for r in d.records if r.arrival >= d.open + warmup_s]),
        "decisions": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "intake_stops_per_day": _round(
            statistics.fmean(sum(1 for _, _, op in d.intake_changes if not op) for d in days)
        ),
    }
