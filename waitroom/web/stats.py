"""Statistics from the controller's SQLite event log, opened read-only.

Per day (office time zone): tickets per hour and service, waiting times (issue -> first call), service times
(call -> served), no-shows, cancellations, assistance requests with response times and escalations. The web
app reads the log the controller writes (WAL allows a reader beside the writer); when the web runs on another
machine than the controller, the log is not there and the page says so.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import json
import logging
import math
import sqlite3
import statistics
import time
from dataclasses import dataclass, field, fields
from html import escape
from pathlib import Path
from typing import Any

from waitroom.config import Config
from waitroom.i18n import fmt_number

log = logging.getLogger(__name__)

STAT_TYPES = (
    "ticket_issued",
    "ticket_called",
    "ticket_served",
    "ticket_no_show",
    "ticket_cancelled",
    "ticket_transferred",
    "ticket_parked",
    "counter_paused",
    "counter_closed",
    "assist_requested",
    "assist_acknowledged",
    "assist_escalated",
    "assist_resolved",
    "assist_cancelled",
    "reservation_made",
    "reservation_lapsed",
)


class StatsUnavailable(Exception):
    """The event log is not readable from this machine; ``reason`` (missing, unreadable) and ``path`` for the
    page's own words (admin.py), the message (English) for the log."""

    def __init__(self, message: str, reason: str, path: Path):
        super().__init__(message)
        self.reason, self.path = reason, path


@dataclass
class ServiceStats:
    service: str
    issued: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    transferred_in: int = 0  # tickets of other services transferred to this one
    transferred_out: int = 0
    open: int = 0  # not finished by the end of the day (or yet): waiting, parked or being served
    waits: list[float] = field(default_factory=list)  # seconds
    service_times: list[float] = field(default_factory=list)
    remote_reserved: int = 0  # remote tickets (virtual queue): reserved, checked in, lapsed
    remote_checked_in: int = 0
    remote_lapsed: int = 0


@dataclass
class DayStats:
    day: str
    hours: dict[int, dict[str, int]]  # local hour -> service -> tickets issued
    services: dict[str, ServiceStats]
    assist_requests: int = 0
    assist_acknowledged: int = 0
    assist_cancelled: int = 0
    assist_response: list[float] = field(default_factory=list)  # seconds until acknowledged
    escalations: dict[int, int] = field(default_factory=dict)  # level -> requests that reached it
    appointments: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> outcome -> count

    @property
    def total_issued(self) -> int:
        return sum(s.issued for s in self.services.values())


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "mean_min": None, "median_min": None, "p90_min": None, "max_min": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "mean_min": round(statistics.fmean(values) / 60, 1),
        "median_min": round(statistics.median(values) / 60, 1),
        "p90_min": round(p90 / 60, 1),
        "max_min": round(ordered[-1] / 60, 1),
    }


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StatsUnavailable(f"the event log {path} is not on this machine", "missing", path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        db.execute("SELECT 1 FROM events LIMIT 1")
    except sqlite3.Error as exc:
        raise StatsUnavailable(f"the event log {path} cannot be read: {exc}", "unreadable", path) from None
    return db


def day_bounds(cfg: Config, day: str) -> tuple[float, float]:
    d = dt.date.fromisoformat(day)
    start = dt.datetime.combine(d, dt.time(0), cfg.office.tz)
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def available_days(path: Path, cfg: Config, limit: int = 60) -> list[str]:
    db = open_readonly(path)
    try:
        rows = db.execute(
            "SELECT data FROM events WHERE type='day_started' ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
    finally:
        db.close()
    return [json.loads(r[0])["day"] for r in rows]


MAX_RANGE_DAYS = 366


def compute(path: Path, cfg: Config, day: str) -> DayStats:
    """Statistics of one office day from the event log at ``path``."""
    return compute_range(path, cfg, day, day)[0]


def compute_range(path: Path, cfg: Config, first: str, last: str) -> tuple[DayStats, list[DayStats]]:
    """Statistics of the office days ``first`` to ``last`` (ISO dates, both included): the whole range (its
    ``day`` is ``first``, or ``first..last``) and each day of it. One read of the log; each day is counted
    on its own (a ticket still open at its day's end stays open: the next day starts afresh)."""
    days = [dt.date.fromisoformat(first) + dt.timedelta(days=i) for i in range(range_days(first, last))]
    bounds = [day_bounds(cfg, d.isoformat()) for d in days]
    start, end = bounds[0][0], bounds[-1][1]
    per_day: list[list[tuple[int, str]]] = [[] for _ in days]
    ends = [b[1] for b in bounds]
    db = open_readonly(path)
    try:
        # no ORDER BY: SQLite would sort every row of the range before handing out the first (a temporary
        # B-tree, half a second for a year); each day is put in order by itself below
        cur = db.execute(
            f"SELECT seq, ts, data FROM events WHERE seq > ? AND seq < ? AND ts >= ? AND ts < ? AND type IN "
            f"({','.join('?' * len(STAT_TYPES))})",
            (*seq_window(db, start, end), start, end, *STAT_TYPES),
        )
        while batch := cur.fetchmany(2000):
            for seq, ts, raw in batch:
                per_day[bisect.bisect_right(ends, ts)].append((seq, raw))
            _let_others_run()
    finally:
        db.close()
    each = []
    for d, rows in zip(days, per_day, strict=True):
        rows.sort()
        each.append(_tally(cfg, d.isoformat(), [json.loads(raw) for _, raw in rows]))
        _let_others_run()
    for d, appointments in appointment_outcomes_by_day(path, cfg, first, last).items():
        each[(dt.date.fromisoformat(d) - days[0]).days].appointments = appointments
    whole = each[0] if len(each) == 1 else _merge(f"{first}..{last}", each)
    return whole, each


def seq_window(db: sqlite3.Connection, start: float, end: float) -> tuple[int, float]:
    """The part of the log (``seq`` exclusive bounds) that holds every event with ``start <= ts < end``: from
    the last day start more than a day before ``start`` to the first more than a day after ``end``. The log
    has no index on ``ts``, so a day of a log of years would otherwise be looked for among all of them; the
    controller never writes an event more than CLOCK_TOLERANCE_S (two minutes) before one it wrote earlier,
    so a day's margin holds every event of the window."""
    lo = db.execute(
        "SELECT seq FROM events WHERE type='day_started' AND ts < ? ORDER BY seq DESC LIMIT 1",
        (start - 86400,),
    ).fetchone()
    hi = db.execute(
        "SELECT seq FROM events WHERE type='day_started' AND ts >= ? ORDER BY seq LIMIT 1", (end + 86400,)
    ).fetchone()
    return (lo[0] if lo else 0), (hi[0] if hi else math.inf)


def _let_others_run() -> None:
    """A year of a busy office is about half a million events, seconds of work: under gunicorn's gevent worker
    (the standard library patched) this hands the process to the other requests and live streams between two
    batches, so that the staff pages and the displays do not wait for the statistics."""
    time.sleep(0)


def range_days(first: str, last: str) -> int:
    """The number of days from ``first`` to ``last``; ValueError for a range backwards or over a year."""
    n = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
    if not 1 <= n <= MAX_RANGE_DAYS:
        raise ValueError(f"a range of 1 to {MAX_RANGE_DAYS} days, not {n}")
    return n


def _merge(label: str, days: list[DayStats]) -> DayStats:
    services: dict[str, ServiceStats] = {}
    out = DayStats(label, {}, services)
    for d in days:
        for hour, counts in d.hours.items():
            for sid, n in counts.items():
                out.hours.setdefault(hour, {})[sid] = out.hours.get(hour, {}).get(sid, 0) + n
        for sid, v in d.services.items():
            m = services.setdefault(sid, ServiceStats(sid))
            for f in fields(ServiceStats):
                if f.name != "service":
                    setattr(m, f.name, getattr(m, f.name) + getattr(v, f.name))
        out.assist_requests += d.assist_requests
        out.assist_acknowledged += d.assist_acknowledged
        out.assist_cancelled += d.assist_cancelled
        out.assist_response += d.assist_response
        for level, n in d.escalations.items():
            out.escalations[level] = out.escalations.get(level, 0) + n
        for sid, counts in d.appointments.items():
            into = out.appointments.setdefault(sid, dict.fromkeys(APPOINTMENT_OUTCOMES, 0))
            for k, n in counts.items():
                into[k] += n
    out.appointments = dict(sorted(out.appointments.items()))
    return out


def _tally(cfg: Config, day: str, rows: list[dict[str, Any]]) -> DayStats:
    tz = cfg.office.tz
    services = {s.id: ServiceStats(s.id) for s in cfg.services}
    out = DayStats(day, {}, services)
    tickets: dict[str, dict[str, Any]] = {}
    serving: dict[str, str] = {}  # counter -> the ticket it has called and not finished
    assists: dict[str, dict[str, Any]] = {}

    def finish(tid: str, ts: float, outcome: str) -> None:
        """A called ticket ends: served (also when the counter calls the next one, pauses or closes: the
        controller finishes it as served then, without a ticket_served event) or not appeared."""
        t = tickets[tid]
        if t["state"] != "called":
            return
        t["state"] = outcome
        svc = services[t["service"]]
        if outcome == "served":
            svc.served += 1
            svc.service_times.append(max(0.0, ts - t["called"]))
        else:
            svc.no_show += 1

    def release(counter: str, ts: float) -> None:
        tid = serving.pop(counter, None)
        if tid is not None:
            finish(tid, ts, "served")

    for e in rows:
        kind = e["type"]
        if kind == "ticket_issued":
            arrival = e.get("arrival", e["ts"])
            tickets[e["id"]] = {
                "service": e["service"],
                "arrival": arrival,
                "called": None,
                "state": "waiting",
            }
            svc = services.setdefault(e["service"], ServiceStats(e["service"]))
            svc.issued += 1
            svc.remote_checked_in += 1 if e.get("reservation_code") else 0
            hour = dt.datetime.fromtimestamp(arrival, tz).hour
            out.hours.setdefault(hour, {}).setdefault(e["service"], 0)
            out.hours[hour][e["service"]] += 1
            continue
        if kind in ("counter_paused", "counter_closed"):
            release(e["counter"], e["ts"])
            continue
        if kind.startswith("ticket_"):
            tid = e.get("ticket", "")
            t = tickets.get(tid)
            if t is None:
                continue
            svc = services.setdefault(t["service"], ServiceStats(t["service"]))
            counter = e.get("counter")
            if kind == "ticket_called":
                release(counter, e["ts"])
                if t["called"] is None:
                    svc.waits.append(max(0.0, e["ts"] - t["arrival"]))
                if t["state"] == "no_show":  # called back after not appearing: it was no no-show after all
                    svc.no_show -= 1
                t["called"], t["state"], t["counter"] = e["ts"], "called", counter
                serving[counter] = tid
            elif kind in ("ticket_served", "ticket_no_show"):
                finish(tid, e["ts"], "served" if kind == "ticket_served" else "no_show")
                serving.pop(counter, None)
            elif kind == "ticket_cancelled" and t["state"] in ("waiting", "parked", "called"):
                if serving.get(t.get("counter", "")) == tid:
                    del serving[t["counter"]]
                t["state"] = "cancelled"
                svc.cancelled += 1
            elif kind in ("ticket_parked", "ticket_transferred"):
                if serving.get(counter) == tid:
                    del serving[counter]
                t["state"] = "parked" if kind == "ticket_parked" else "waiting"
                if kind == "ticket_transferred" and e.get("service") and e["service"] != t["service"]:
                    svc.transferred_out += 1
                    t["service"] = e["service"]
                    services.setdefault(e["service"], ServiceStats(e["service"])).transferred_in += 1
            continue
        if kind.startswith("reservation_"):
            svc = services.setdefault(e["service"], ServiceStats(e["service"]))
            if kind == "reservation_made":
                svc.remote_reserved += 1
            else:
                svc.remote_lapsed += 1
            continue
        a = assists.setdefault(e["id"], {})
        if kind == "assist_requested":
            out.assist_requests += 1
            a["requested"] = e["ts"]
        elif kind == "assist_acknowledged":
            out.assist_acknowledged += 1
            if "requested" in a:
                out.assist_response.append(max(0.0, e["ts"] - a["requested"]))
        elif kind == "assist_escalated":
            out.escalations[e["level"]] = out.escalations.get(e["level"], 0) + 1
        elif kind == "assist_cancelled":
            out.assist_cancelled += 1
    for t in tickets.values():
        if t["state"] in ("waiting", "parked", "called"):
            services[t["service"]].open += 1
    return out


APPOINTMENT_OUTCOMES = ("booked", "kept", "early", "late", "missed", "open", "cancelled")


def appointment_outcomes(
    path: Path, cfg: Config, day: str, now: float | None = None, *, last: str | None = None
) -> dict[str, dict[str, int]]:
    """Per service, the appointments whose slot lies on ``day`` (to ``last``): booked (not cancelled), and of
    those kept (checked in from ``early_min`` before the slot to ``late_min`` after it), early (before that),
    late (after it), missed (no check-in and the window is over), open (still to come); and cancelled."""
    merged: dict[str, dict[str, int]] = {}
    for per_service in appointment_outcomes_by_day(path, cfg, day, last or day, now).values():
        for sid, counts in per_service.items():
            into = merged.setdefault(sid, dict.fromkeys(APPOINTMENT_OUTCOMES, 0))
            for k, n in counts.items():
                into[k] += n
    return dict(sorted(merged.items()))


def appointment_outcomes_by_day(
    path: Path, cfg: Config, first: str, last: str, now: float | None = None
) -> dict[str, dict[str, dict[str, int]]]:
    """``appointment_outcomes`` for each day from ``first`` to ``last`` (the slot's day, office time) that
    has appointments: day -> service -> outcome -> count."""
    now = time.time() if now is None else now
    start, end = day_bounds(cfg, first)[0], day_bounds(cfg, last)[1]
    types = ("appointment_booked", "appointment_moved", "appointment_cancelled", "day_started")
    db = open_readonly(path)
    try:
        rows = db.execute(
            f"SELECT data FROM events WHERE ts < ? AND type IN ({','.join('?' * len(types))}) ORDER BY seq",
            (end, *types),
        ).fetchall()
        issued = db.execute(
            "SELECT data FROM events WHERE seq > ? AND seq < ? AND ts >= ? AND ts < ? "
            "AND type='ticket_issued' AND json_extract(data, '$.appointment_code') IS NOT NULL",
            (*seq_window(db, start - 86400, end + 86400), start - 86400, end + 86400),
        ).fetchall()
    finally:
        db.close()
    book: dict[str, dict[str, Any]] = {}
    for (raw,) in rows:
        e = json.loads(raw)
        if e["type"] == "day_started":
            for a in e.get("appointments", []):
                book.setdefault(a["code"], {}).update(a)
        elif e["type"] == "appointment_cancelled":
            book.setdefault(e["code"], {})["cancelled"] = True
        else:
            entry = book.setdefault(e["code"], {})
            entry.update({k: e[k] for k in ("service", "slot") if k in e})
            entry["cancelled"] = False
    checkins: dict[str, float] = {}
    for (raw,) in issued:
        e = json.loads(raw)
        checkins.setdefault(e["appointment_code"], e["ts"])
    rules = cfg.steering.appointments
    tz = cfg.office.tz
    out: dict[str, dict[str, dict[str, int]]] = {}
    for code, a in book.items():
        if "slot" not in a or not start <= a["slot"] < end:
            continue
        day = dt.datetime.fromtimestamp(a["slot"], tz).date().isoformat()
        counts = out.setdefault(day, {}).setdefault(a["service"], dict.fromkeys(APPOINTMENT_OUTCOMES, 0))
        if a.get("cancelled"):
            counts["cancelled"] += 1
            continue
        counts["booked"] += 1
        ts = checkins.get(code)
        if ts is None:
            counts["missed" if now > a["slot"] + rules.late_min * 60 else "open"] += 1
        elif ts < a["slot"] - rules.early_min * 60:
            counts["early"] += 1
        elif ts > a["slot"] + rules.late_min * 60:
            counts["late"] += 1
        else:
            counts["kept"] += 1
    return {d: dict(sorted(v.items())) for d, v in sorted(out.items())}


def _service_dict(v: ServiceStats) -> dict[str, Any]:
    return {
        "issued": v.issued,
        "served": v.served,
        "no_show": v.no_show,
        "cancelled": v.cancelled,
        "transferred_in": v.transferred_in,
        "transferred_out": v.transferred_out,
        "open": v.open,
        "wait": _summary(v.waits),
        "service_time": _summary(v.service_times),
        "remote": {
            "reserved": v.remote_reserved,
            "checked_in": v.remote_checked_in,
            "lapsed": v.remote_lapsed,
        },
    }


def as_dict(s: DayStats) -> dict[str, Any]:
    everyone = ServiceStats("all")  # every service together: a transfer is neither in nor out here
    for v in s.services.values():
        for f in fields(ServiceStats):
            if f.name not in ("service", "transferred_in", "transferred_out"):
                setattr(everyone, f.name, getattr(everyone, f.name) + getattr(v, f.name))
    return {
        "day": s.day,
        "issued": s.total_issued,
        "hours": {str(h): s.hours[h] for h in sorted(s.hours)},
        "services": {sid: _service_dict(v) for sid, v in s.services.items()},
        "all": _service_dict(everyone),
        "appointments": s.appointments,
        "assistance": {
            "requests": s.assist_requests,
            "acknowledged": s.assist_acknowledged,
            "cancelled": s.assist_cancelled,
            "response": _summary(s.assist_response),
            "escalations": {str(k): v for k, v in sorted(s.escalations.items())},
        },
    }


CSV_COLUMNS = (
    "day",
    "hour",
    "service",
    "issued",
    "served",
    "no_show",
    "cancelled",
    "transferred_in",
    "transferred_out",
    "open",
    "wait_mean_min",
    "wait_p90_min",
    "service_mean_min",
    "remote_reserved",
    "remote_checked_in",
    "remote_lapsed",
    *(f"appt_{k}" for k in APPOINTMENT_OUTCOMES),
)


def to_csv(*days: DayStats) -> str:
    """Per day (a range: each of its days, one after the other): one row per hour and service (tickets
    issued), then one row per service (totals and times), then the assistance requests (issued: requests,
    served: acknowledged, cancelled, times: until acknowledged). The appointments (``appt_*``) are those whose
    slot lies on the day, in the service's total row (see ``appointment_outcomes``).

    As German Excel opens it by a double click: a UTF-8 byte order mark, semicolons, decimal commas (it would
    split at commas and read 4.5 as a date). Ids and numbers only."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf, delimiter=";")
    w.writerow(CSV_COLUMNS)
    for s in days:
        _csv_day(w, s)
    return buf.getvalue()


def _csv_day(w: Any, s: DayStats) -> None:
    blank = [""] * (len(CSV_COLUMNS) - 4)
    for hour in sorted(s.hours):
        for sid, n in sorted(s.hours[hour].items()):
            w.writerow([s.day, f"{hour:02d}", sid, n, *blank])
    extra = {sid: ServiceStats(sid) for sid in s.appointments if sid not in s.services}  # taken out since
    for sid, v in {**s.services, **extra}.items():
        wait, serv = _summary(v.waits), _summary(v.service_times)
        appts = s.appointments.get(sid, dict.fromkeys(APPOINTMENT_OUTCOMES, 0))
        w.writerow(
            [
                s.day,
                "total",
                sid,
                v.issued,
                v.served,
                v.no_show,
                v.cancelled,
                v.transferred_in,
                v.transferred_out,
                v.open,
                _csv(wait["mean_min"]),
                _csv(wait["p90_min"]),
                _csv(serv["mean_min"]),
                v.remote_reserved,
                v.remote_checked_in,
                v.remote_lapsed,
                *(appts[k] for k in APPOINTMENT_OUTCOMES),
            ]
        )
    resp = _summary(s.assist_response)
    assist = {
        "issued": s.assist_requests,
        "served": s.assist_acknowledged,
        "cancelled": s.assist_cancelled,
        "wait_mean_min": _csv(resp["mean_min"]),
        "wait_p90_min": _csv(resp["p90_min"]),
    }
    w.writerow([s.day, "total", "assistance", *(assist.get(c, "") for c in CSV_COLUMNS[3:])])


def _csv(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}".replace(".", ",")


# ------------------------------------------------------------------------------------------------ charts
PALETTE = ("#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#0e7490", "#be123c", "#4d7c0f")


def hours_chart(s: DayStats, labels: dict[str, str], title: str, *, lang: str = "de") -> str:
    """A stacked bar chart (inline SVG, no scripts) of tickets per hour and service; its counts written as
    ``lang`` writes numbers ("1.234")."""
    hours = list(range(min(s.hours, default=8), max(s.hours, default=17) + 1))
    sids = list(s.services)
    top = max((sum(s.hours.get(h, {}).values()) for h in hours), default=0) or 1
    width, height, left, bottom = 640, 240, 36, 28
    bw = (width - left - 10) / max(len(hours), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#333"/>'
    )
    scale = (height - bottom - 10) / top
    parts.append(f'<text x="4" y="16" font-size="11">{fmt_number(top, lang)}</text>')
    for i, h in enumerate(hours):
        x, y = left + i * bw + 2, height - bottom
        for j, sid in enumerate(sids):
            n = s.hours.get(h, {}).get(sid, 0)
            if n:
                hgt = n * scale
                y -= hgt
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 4:.1f}" height="{hgt:.1f}" '
                    f'fill="{PALETTE[j % len(PALETTE)]}"><title>{h:02d}:00 {escape(labels.get(sid, sid))}'
                    f": {fmt_number(n, lang)}</title></rect>"
                )
        parts.append(
            f'<text x="{x + (bw - 4) / 2:.1f}" y="{height - bottom + 14}" font-size="11" '
            f'text-anchor="middle">{h:02d}</text>'
        )
    parts.append("</svg>")
    # the legend in the page, not the picture: it wraps with the page's width and names each service in full
    # (in the picture it ran off its right edge from the fifth service on, each name cut at 20 letters)
    parts.append('<ul class="legend">')
    for j, sid in enumerate(sids):
        parts.append(
            '<li><svg width="12" height="12" aria-hidden="true" focusable="false">'
            f'<rect width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/></svg> '
            f"{escape(labels.get(sid, sid))}</li>"
        )
    parts.append("</ul>")
    return "".join(parts)


def bars_chart(
    values: dict[str, float | None], labels: dict[str, str], title: str, unit: str, *, lang: str = "de"
) -> str:
    """Horizontal bars, e.g. mean waiting minutes per service, the values written as ``lang`` writes numbers
    ("12,5 min"); a service without a value (nobody called) has no bar and a dash, not "0.0 min"."""
    width, row = 640, 26
    items = list(values.items())
    top = max((v for _, v in items if v is not None), default=0) or 1
    height = row * len(items) + 10
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" class="chart" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (k, v) in enumerate(items):
        y = 5 + i * row
        w = 0.0 if v is None else (width - 260) * v / top
        said = "–" if v is None else f"{fmt_number(v, lang, 1)} {escape(unit)}"
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="12">{escape(labels.get(k, k)[:28])}</text>'
            f'<rect x="200" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[i % 8]}"/>'
            f'<text x="{205 + w:.1f}" y="{y + 16}" font-size="12">{said}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
