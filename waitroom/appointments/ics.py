"""iCalendar (RFC 5545) appointments: the ``icalendar`` library parses (VTIMEZONE, TZID, UTC and floating
times), ``recurring_ical_events`` unfolds series (RRULE, RDATE, EXDATE, changed or cancelled occurrences by
RECURRENCE-ID).

Read per VEVENT: UID, SEQUENCE (revision), DTSTART (the slot), STATUS (CANCELLED cancels; so does a calendar
with METHOD:CANCEL), the service from ``booking_system.ics_service_property`` (CATEGORIES by default) and the
booking code from ``booking_system.ics_code_property`` (else derived from the UID). SUMMARY, DESCRIPTION,
ATTENDEE and the like are never read: they may hold names.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import icalendar
import recurring_ical_events

from waitroom import appointments as codes
from waitroom.appointments.importer import Entry, EntryError, FeedError, Parsed, service_of, window
from waitroom.config import Config

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "cats"):  # CATEGORIES: the first category names the service
        return str(value.cats[0]) if value.cats else ""
    if isinstance(value, list):
        return _text(value[0]) if value else ""
    return str(value)


def _utc_id(value: Any) -> str:
    d = getattr(value, "dt", value)
    if isinstance(d, dt.datetime):
        if d.tzinfo is not None:
            d = d.astimezone(dt.UTC)
        return d.strftime("%Y%m%dT%H%M%SZ")
    return str(d)


def parse(data: bytes | str, cfg: Config, now: float) -> Parsed:
    """The entries of an iCalendar document within the import window."""
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise FeedError(f"not an iCalendar document: {exc}") from None
    except OSError as exc:  # a TZID naming a folder of the time zone database ("Europe"): the library's
        # look-up opens it as a zone file (other names that are no zone it handles itself)
        name = os.path.basename(str(exc.filename or "")) or str(exc)
        raise FeedError(
            f"a TZID of the calendar is {name!r}, which is no time zone (e.g. Europe/Berlin)"
        ) from None
    tz = cfg.office.tz
    bs = cfg.appointments.booking_system
    cancel_all = str(cal.get("METHOD", "")).upper() == "CANCEL"
    out = Parsed()
    _set_aside_broken(
        cal,
        out,
        {
            "UID",
            "DTSTART",
            "SEQUENCE",
            "STATUS",
            "RRULE",
            "RDATE",
            "EXDATE",
            "RECURRENCE-ID",
            bs.ics_service_property.upper(),
            bs.ics_code_property.upper(),
        },
    )
    series = {
        str(c.get("UID"))
        for c in cal.walk("VEVENT")
        if c.get("RRULE") or c.get("RDATE") or c.get("RECURRENCE-ID")
    }
    lo, hi = window(cfg, now)
    # single entries moved beyond the window are still in the feed: not gone (waitroom.appointments.importer)
    out.present = {
        str(c.get("UID")) for c in cal.walk("VEVENT") if c.get("UID") and str(c.get("UID")) not in series
    }
    start = dt.datetime.fromtimestamp(lo, tz)
    end = dt.datetime.fromtimestamp(hi, tz)
    try:
        events = recurring_ical_events.of(cal).between(start, end)
    except Exception as exc:  # a broken RRULE: the library raises its own errors
        raise FeedError(f"cannot unfold the events: {exc}") from None
    for ev in events:
        uid = str(ev.get("UID") or "")
        where = f"UID {uid}" if uid else "VEVENT without UID"
        try:
            out.entries.append(
                _entry(ev, uid, where, series, cfg, cancel_all, bs.ics_service_property, bs.ics_code_property)
            )
        except ValueError as exc:
            out.errors.append(EntryError(where, str(exc)))
            if uid:  # the booking system still lists it: not gone
                rid = ev.get("RECURRENCE-ID") or ev.get("DTSTART")
                out.broken.add(f"{uid}#{_utc_id(rid)}" if uid in series and rid is not None else uid)
    return out


def _set_aside_broken(cal: Any, out: Parsed, read: set[str]) -> None:
    """Take the VEVENTs out that cannot be unfolded or read - a property this import reads that does not
    parse (a DTSTART "2026-11-24 13:00", a SEQUENCE "eins"), or no DTSTART - each UID one error naming the
    property: one such entry made the series library fail the whole feed. All VEVENTs of such a UID go (a
    changed occurrence of a series without its series, or the series without its changes, would be imported
    at the wrong time); the UID is ``broken``, so what an earlier import booked for it stays."""
    problems: dict[str, str] = {}
    for c in cal.walk("VEVENT"):
        uid = str(c.get("UID") or "")
        bad = [f"{name}: {msg}" for name, msg in getattr(c, "errors", []) if str(name).upper() in read]
        if not bad and c.get("DTSTART") is None:
            bad = ["no DTSTART"]
        if bad:
            problems.setdefault(uid, bad[0])
    if not problems:
        return
    cal.subcomponents[:] = [
        c for c in cal.subcomponents if not (c.name == "VEVENT" and str(c.get("UID") or "") in problems)
    ]
    for uid, problem in problems.items():
        out.errors.append(EntryError(f"UID {uid}" if uid else "VEVENT without UID", problem))
        if uid:
            out.broken.add(uid)


def _entry(
    ev: Any,
    uid: str,
    where: str,
    series: set[str],
    cfg: Config,
    cancel_all: bool,
    service_prop: str,
    code_prop: str,
) -> Entry:
    if not uid:
        raise ValueError("no UID: cannot be updated or cancelled later, not imported")
    start = ev.get("DTSTART")
    if start is None:
        raise ValueError("no DTSTART")
    d = start.dt
    if not isinstance(d, dt.datetime):
        raise ValueError(f"all-day entry ({d}) has no slot time")
    if d.tzinfo is None:  # floating time: the office's local time
        d = d.replace(tzinfo=cfg.office.tz)
    key = uid
    if uid in series:
        rid = ev.get("RECURRENCE-ID") or start
        key = f"{uid}#{_utc_id(rid)}"
        where = f"{where} at {_utc_id(rid)}"
    name = _text(ev.get(service_prop))
    sid = service_of(cfg, name) if name else None
    if sid is None:
        raise ValueError(
            f"service {name!r} maps to no service (add it to appointments.booking_system.service_map)"
        )
    raw_code = _text(ev.get(code_prop))
    code = codes.normalize(raw_code) if raw_code else codes.code_for_uid(key, cfg.appointments.code_length)
    if not (3 <= len(code) <= 32 and code.isalnum() and code.isascii()):
        raise ValueError(f"booking code {raw_code!r} is not 3-32 letters or digits")
    seq = ev.get("SEQUENCE")
    status = str(ev.get("STATUS", "")).upper()
    return Entry(
        key=key,
        code=code,
        service=sid,
        slot=d.timestamp(),
        version=int(seq) if seq is not None else 0,
        cancelled=cancel_all or status == "CANCELLED",
        where=where,
    )
