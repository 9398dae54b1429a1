"""Read a recorded call-centre log in the "Anonymous Bank" format (tab separated, one header line; the columns
are described in ``shared/data/README.md``) into forecast events.

The rules are those of the reference evaluation (``shared/eval/classical_predictors.py``): PHANTOM calls are
ignored; a call with ``q_start`` 0:00:00 and ``q_time`` 0 never queued (an agent took it at once: it keeps
that agent busy, which the forecast counts); a queued call joins at ``q_start`` and leaves the queue after
``q_time`` seconds, served (AGENT) or abandoned (HANG). Service ends at ``ser_exit``. ``NO_SERVER`` is not an
agent.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from waitroom.forecast.errors import LogFormatError
from waitroom.forecast.events import Event, sort_key

log = logging.getLogger(__name__)

COLUMNS = (
    "priority",
    "type",
    "date",
    "q_start",
    "q_time",
    "outcome",
    "ser_start",
    "ser_exit",
    "ser_time",
    "server",
)
OUTCOMES = ("AGENT", "HANG", "PHANTOM")
NO_SERVER = "NO_SERVER"


@dataclass(frozen=True)
class Call:
    """A queued call (the population of the evaluation when ``served``)."""

    day: str
    ticket: str
    type: str
    priority: int
    q0: int
    wait: int
    served: bool


@dataclass
class BankLog:
    path: str
    events: list[Event]
    calls: list[Call]  # every queued call, in file order
    types: tuple[str, ...]


def _secs(value: str, where: str, col: str) -> int:
    try:
        h, m, s = (int(x) for x in value.split(":"))
    except ValueError:
        raise LogFormatError(f"{where}: {col} {value!r} is not a time H:MM:SS") from None
    if not (0 <= h < 48 and 0 <= m < 60 and 0 <= s < 60):
        raise LogFormatError(f"{where}: {col} {value!r} is not a time H:MM:SS")
    return h * 3600 + m * 60 + s


def _int(value: str, where: str, col: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise LogFormatError(f"{where}: {col} {value!r} is not a whole number") from None
    if v < 0:
        raise LogFormatError(f"{where}: {col} {value!r} is negative")
    return v


def _weekday(day: str, where: str) -> int:
    try:
        return dt.datetime.strptime(day, "%y%m%d").weekday()
    except ValueError:
        raise LogFormatError(f"{where}: date {day!r} is not yymmdd") from None


def load(path: str | Path) -> BankLog:
    """Read the log; any problem raises ``LogFormatError`` naming the file, the line and the column."""
    p = Path(path)
    if not p.is_file():
        raise LogFormatError(f"{p}: no such file")
    events: list[Event] = []
    calls: list[Call] = []
    types: set[str] = set()
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise LogFormatError(
                    f"{p}: not an anonymous-bank log (tab separated with a header line); "
                    f"missing column(s): {', '.join(missing)}"
                )
            for r in reader:
                n = reader.line_num  # the file's line: blank lines are skipped by the reader, not counted
                where = f"{p} line {n}"
                if None in r or any(r[c] is None for c in COLUMNS):
                    raise LogFormatError(f"{where}: wrong number of columns")
                outcome = r["outcome"].strip()
                if outcome not in OUTCOMES:
                    raise LogFormatError(f"{where}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
                if outcome == "PHANTOM":
                    continue
                day = r["date"].strip()
                wd = _weekday(day, where)
                q0 = _secs(r["q_start"], where, "q_start")
                qt = _int(r["q_time"], where, "q_time")
                kind = r["type"].strip() or "?"
                prio = _int(r["priority"], where, "priority")
                server = r["server"].strip()
                agent = None if server in ("", NO_SERVER) else server
                tid = f"{day}:{n}"
                served = outcome == "AGENT"
                if served:
                    s0 = _secs(r["ser_start"], where, "ser_start")
                    s1 = _secs(r["ser_exit"], where, "ser_exit")
                if q0 == 0 and qt == 0:  # never queued
                    if served:
                        events.append(Event(day, wd, s0, "direct", tid, kind, prio, agent))
                        end = max(s0, s1) if s0 or s1 else s0 + 0.001
                        events.append(Event(day, wd, end, "end", tid, kind, prio, agent))
                    continue
                types.add(kind)
                calls.append(Call(day, tid, kind, prio, q0, qt, served))
                events.append(Event(day, wd, q0, "arrival", tid, kind, prio))
                if served:
                    start = q0 + qt
                    # served without service times (ser_start 0:00:00): the service is unknown, end it at once
                    end = max(start, s1) if s0 or s1 else start + 0.001
                    events.append(Event(day, wd, start, "start", tid, kind, prio, agent))
                    events.append(Event(day, wd, end, "end", tid, kind, prio, agent))
                else:
                    events.append(Event(day, wd, q0 + qt, "abandon", tid, kind, prio))
    except UnicodeDecodeError as exc:
        raise LogFormatError(f"{p}: not a text file ({exc.reason})") from None
    except csv.Error as exc:
        raise LogFormatError(f"{p}: not a tab-separated file ({exc})") from None
    if not calls:
        raise LogFormatError(f"{p}: no queued calls in the log")
    if not any(c.served for c in calls):  # no wait was ever observed (the reference divided by zero)
        raise LogFormatError(
            f"{p}: no queued call was served (every caller hung up): nothing to learn or score"
        )
    events.sort(key=sort_key)
    log.info("%s: %d queued calls on %d days", p, len(calls), len({c.day for c in calls}))
    return BankLog(str(p), events, calls, tuple(sorted(types)))
