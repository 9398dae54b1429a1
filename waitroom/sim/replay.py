"""Replay a recorded service log through the simulator: the "Anonymous Bank" call-centre log (February 1999,
../shared/data/anonymous-bank-1999-02.tsv, README beside it).

Each day becomes a ``DayPlan`` with the recorded arrivals and service times: a served call arrives when it
joined the queue (or, without queueing, when its service started) and keeps its recorded service time; a call
that hung up keeps its recorded patience (a served one waits at most SERVED_PATIENCE_S). Each agent becomes a
counter, on shift from its first to its last call of the day, split where it took no call for ``break_min``.
PHANTOM calls and the few NO_SERVER services are left out. The office is one service ("call"), first come
first served, without intake stop.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from waitroom import config as office_config
from waitroom.config import Config
from waitroom.errors import ConfigError
from waitroom.sim.scenario import Arrival, DayPlan

log = logging.getLogger(__name__)

TZ = "Asia/Jerusalem"
# A served caller's patience is unknown (at least the recorded wait); the replay gives up after 30 minutes so
# that a call the inferred shifts cannot answer does not wait for hours.
SERVED_PATIENCE_S = 1800.0
COLUMNS = (
    "vru+line",
    "call_id",
    "priority",
    "type",
    "date",
    "vru_exit",
    "q_start",
    "q_time",
    "outcome",
    "ser_start",
    "ser_exit",
    "ser_time",
    "server",
)
LINE = "\0line"  # the row's line in the file (for errors)
MAX_ERRORS = 10


def _secs(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + s


def _counter_id(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", name.lower())[:32] or "agent"


def read_bank(path: str | Path) -> list[dict[str, str]]:
    """The log's rows, each checked; a row that cannot be replayed is a ConfigError naming its line."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            rows = []
            for r in reader:
                r[LINE] = str(reader.line_num)
                rows.append(r)
    except OSError as exc:
        raise ConfigError(str(p), [f"(file): cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [f"(file): not a text file ({exc.reason})"]) from None
    except csv.Error as exc:
        raise ConfigError(str(p), [f"(file): not a tab-separated file ({exc})"]) from None
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ConfigError(
            str(p), [f"(columns): not an anonymous-bank log; missing {', '.join(missing) or 'rows'}"]
        )
    errors = [e for e in (_row_error(r) for r in rows) if e]
    if errors:
        more = [f"... and {len(errors) - MAX_ERRORS} more"] if len(errors) > MAX_ERRORS else []
        raise ConfigError(str(p), errors[:MAX_ERRORS] + more)
    return rows


def _row_error(r: dict[str, Any]) -> str | None:
    """What is wrong with one row (None: it can be replayed)."""
    where = f"line {r[LINE]}"
    if None in r or any(r.get(c) is None for c in COLUMNS):
        return f"{where}: wrong number of columns"
    try:
        _date(r["date"])
    except ValueError:
        return f"{where}: date {r['date']!r} is not yymmdd"
    if not r["q_time"].isdigit():
        return f"{where}: q_time {r['q_time']!r} is not a whole number of seconds"
    if r["outcome"] not in ("AGENT", "HANG"):
        return None
    cols = ("q_start", "ser_start") if r["outcome"] == "AGENT" else ("q_start",)
    for col in cols:
        if not re.fullmatch(r"\d{1,2}:[0-5]\d:[0-5]\d", r[col]):
            return f"{where}: {col} {r[col]!r} is not a time H:MM:SS"
    if r["outcome"] == "AGENT" and not r["ser_time"].isdigit():
        return f"{where}: ser_time {r['ser_time']!r} is not a whole number of seconds"
    return None


def _date(yymmdd: str) -> dt.date:
    if not re.fullmatch(r"\d{6}", yymmdd):
        raise ValueError(yymmdd)
    yy = int(yymmdd[:2])
    return dt.date(1900 + yy if yy > 50 else 2000 + yy, int(yymmdd[2:4]), int(yymmdd[4:6]))


def bank_config(agents: list[str]) -> Config:
    data: dict[str, Any] = {
        "office": {
            "id": "bank",
            "name": "Anonymous Bank call centre (replay)",
            "timezone": TZ,
            "hours": {d: ["00:00", "23:59"] for d in office_config.WEEKDAYS},
        },
        "services": [
            {"id": "call", "prefix": "A", "name": {"de": "Anruf", "en": "call"}, "mean_service_min": 3}
        ],
        "counters": [{"id": _counter_id(a), "name": {"de": a}, "services": ["call"]} for a in agents],
        "steering": {"intake_stop": {"enabled": False}, "priority": {"normal_per_priority": 0}},
    }
    return office_config.parse(data, "<bank replay>")


def bank_days(
    path: str | Path, *, break_min: float = 30.0, max_days: int | None = None
) -> tuple[Config, list[DayPlan], dict[str, Any]]:
    """The office, one plan per day of the log, and the log's own figures (recorded waits) for comparison."""
    rows = read_bank(path)
    tz = office_config.ZoneInfo(TZ)
    by_day: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_day[r["date"]].append(r)
    agents = sorted({r["server"] for r in rows if r["server"] != "NO_SERVER" and r["outcome"] == "AGENT"})
    if not agents:  # no agent to become a counter (was "<bank replay>: counters: List should have ...")
        raise ConfigError(
            str(path), ["(rows): no call was answered by an agent (outcome AGENT): nothing to replay"]
        )
    cfg = bank_config(agents)
    plans: list[DayPlan] = []
    recorded_waits: list[float] = []
    for date in sorted(by_day)[:max_days]:
        d = _date(date)
        midnight = dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()
        arrivals: list[Arrival] = []
        services: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in by_day[date]:
            q_time = int(r["q_time"])
            if r["outcome"] == "AGENT" and r["server"] != "NO_SERVER":
                start = midnight + _secs(r["ser_start"])
                duration = float(r["ser_time"])
                arrive = midnight + _secs(r["q_start"]) if q_time > 0 else start
                arrivals.append(Arrival(arrive, "call", max(duration, 1.0), patience=SERVED_PATIENCE_S))
                services[_counter_id(r["server"])].append((start, start + duration))
                if q_time > 0:
                    recorded_waits.append(float(q_time))
            elif r["outcome"] == "HANG" and q_time > 0:
                arrivals.append(
                    Arrival(midnight + _secs(r["q_start"]), "call", 180.0, patience=float(q_time))
                )
        if not arrivals:
            continue
        arrivals.sort(key=lambda a: a.t)
        shifts: dict[str, list[tuple[float, float]]] = {}
        for cid, spans in services.items():
            spans.sort()
            out = [list(spans[0])]
            for a, z in spans[1:]:
                if a - out[-1][1] > break_min * 60:
                    out.append([a, z])
                else:
                    out[-1][1] = max(out[-1][1], z)
            shifts[cid] = [(a, z) for a, z in out]
        first = min(a.t for a in arrivals)
        plans.append(DayPlan(first - 1.0, midnight, midnight + 86340.0, arrivals, shifts))
    figures = {
        "days": len(plans),
        "rows": len(rows),
        "recorded_mean_wait_s_queued_served": round(sum(recorded_waits) / len(recorded_waits), 1)
        if recorded_waits
        else None,
    }
    log.info("bank log %s: %d days, %d arrivals", path, len(plans), sum(len(p.arrivals) for p in plans))
    return cfg, plans, figures
