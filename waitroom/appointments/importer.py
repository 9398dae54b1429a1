"""Import the booking system's appointments: parse (``ics``, ``csv_import``), map, send as commands.

Each entry of a feed becomes one command with a request id derived from the entry's id and content, sent by
a ``web`` node: the same entry imported again has the same request id, so the controller answers with its
stored reply and changes nothing, even after a restart of either side. Beyond the stored replies (two days)
the operations themselves are idempotent: booking a code again with the same service and slot changes
nothing, a revision (SEQUENCE) not newer than the booked one changes nothing, cancelling twice changes
nothing. Errors are reported per entry and never stop the import; an entry that cannot be read is not taken
for one that is gone from the feed (``Parsed.broken``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waitroom.config import Config
from waitroom.errors import WaitroomError

log = logging.getLogger(__name__)


class FeedError(WaitroomError, ValueError):
    """A feed could not be read at all (not one entry of it: those are reported one by one)."""


@dataclass(frozen=True)
class Entry:
    """One appointment of the booking system, mapped to this office (no personal data)."""

    key: str  # the booking system's id of the entry (UID, for a series UID#occurrence)
    code: str
    service: str
    slot: float
    version: int | None  # SEQUENCE; None when the source has no revisions
    cancelled: bool = False
    note: str = ""
    where: str = ""  # line or UID for messages


@dataclass
class EntryError:
    where: str
    message: str


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    errors: list[EntryError] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # keys the feed lists outside the window too (not gone)
    # keys (CSV: uid or code; iCalendar: the UID, for a series each of its occurrences) of entries the feed
    # lists but that could not be read: reported as errors, and not gone (their appointments stay booked)
    broken: set[str] = field(default_factory=set)

    def is_broken(self, key: str) -> bool:
        return key in self.broken or key.split("#", 1)[0] in self.broken


@dataclass
class Report:
    booked: int = 0
    moved: int = 0
    cancelled: int = 0
    unchanged: int = 0
    skipped: int = 0  # outside the import window, or a cancellation of something never booked
    errors: list[EntryError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "booked": self.booked,
            "moved": self.moved,
            "cancelled": self.cancelled,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": [{"entry": e.where, "message": e.message} for e in self.errors],
        }

    def summary(self) -> str:
        return (
            f"{self.booked} booked, {self.moved} moved, {self.cancelled} cancelled, "
            f"{self.unchanged} unchanged, {self.skipped} skipped, {len(self.errors)} error(s)"
        )


def service_of(cfg: Config, name: str) -> str | None:
    """Our service id for the booking system's service name or id: the service ids themselves, then
    ``appointments.booking_system.service_map`` (both case-insensitive)."""
    wanted = " ".join(name.split()).casefold()
    for sid in cfg.service_ids:
        if sid.casefold() == wanted:
            return sid
    for k, sid in cfg.appointments.booking_system.service_map.items():
        if " ".join(k.split()).casefold() == wanted:
            return sid
    return None


def request_id(entry: Entry, op: str) -> str:
    """A request id that is the same whenever the same entry with the same content is imported."""
    key = hashlib.sha256(entry.key.encode()).hexdigest()[:16]
    content = f"{op}|{entry.code}|{entry.service}|{entry.slot}|{entry.version}|{entry.cancelled}|{entry.note}"
    return f"imp-{key}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def window(cfg: Config, now: float) -> tuple[float, float]:
    """From the start of today to the end of ``booking_system.days`` ahead (office time)."""
    tz = cfg.office.tz
    today = dt.datetime.fromtimestamp(now, tz).date()
    start = dt.datetime(today.year, today.month, today.day, tzinfo=tz)
    end_day = today + dt.timedelta(days=cfg.appointments.booking_system.days + 1)
    return start.timestamp(), dt.datetime(end_day.year, end_day.month, end_day.day, tzinfo=tz).timestamp()


Send = Callable[[str, dict[str, Any], str], dict[str, Any]]  # (op, args, request id) -> reply


def apply_entries(
    cfg: Config,
    parsed: Parsed,
    send: Send,
    now: float,
    since_seq: int | None = None,
    memory: FeedMemory | None = None,
) -> Report:
    """Send one command per entry of ``parsed`` (in the window) and count what changed.

    A reply marked ``repeated`` is the stored reply of an earlier import of the same entry (the same
    request id), so nothing changed now; so is, with ``since_seq`` (the office state's seq before this
    import), a reply whose seq is not above it."""
    rep = Report(errors=list(parsed.errors))
    inner = send

    def send(op: str, args: dict[str, Any], rid: str) -> dict[str, Any]:
        reply = inner(op, args, rid)
        old = isinstance(reply.get("seq"), int) and since_seq is not None and reply["seq"] <= since_seq
        if reply.get("ok") and (reply.get("repeated") is True or old):
            a = (reply.get("result") or {}).get("appointment")
            if isinstance(a, dict):
                reply = {**reply, "result": {"appointment": {**a, "changed": False}}}
        return reply

    lo, hi = window(cfg, now)
    clash = _code_clashes(parsed.entries)
    for e in _latest(parsed.entries):
        if e.key in clash:
            msg = f"booking code {e.code} is already the code of {clash[e.key].where}; not imported"
            rep.errors.append(EntryError(e.where, msg))
            continue
        if not lo <= e.slot < hi:
            rep.skipped += 1
            continue
        try:
            _one(cfg, e, send, rep)
        except Exception as exc:  # a timeout or a broken reply: this entry fails, the others go on
            log.warning("import of %s failed: %s", e.where, exc)
            rep.errors.append(EntryError(e.where, f"not sent: {exc}"))
    if memory is not None:
        _gone(cfg, parsed, memory, send, now, rep)
    log.info("import: %s", rep.summary())
    return rep


class FeedMemory:
    """What the last import of one source booked (``<data dir>/appointments-import/<source hash>.json``), so
    that an entry that silently disappears from a feed (an EXDATE added to a series, a row deleted from a
    CSV) is cancelled. A feed that comes back empty cancels nothing (a broken export, not a day off)."""

    def __init__(self, folder: Path, source: str):
        self.path = Path(folder) / (hashlib.sha256(source.encode()).hexdigest()[:20] + ".json")

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def _gone(cfg: Config, parsed: Parsed, memory: FeedMemory, send: Send, now: float, rep: Report) -> None:
    """Cancel what the last import booked and this feed no longer lists; remember this feed's bookings."""
    lo, hi = window(cfg, now)
    before = memory.load()
    listed = {e.key for e in parsed.entries} | parsed.present
    clash = _code_clashes(parsed.entries)
    keep = {
        e.key: {"code": e.code, "slot": e.slot}
        for e in _latest(parsed.entries)
        if not e.cancelled and lo <= e.slot < hi and e.key not in clash
    }
    if not parsed.entries and before:
        rep.errors.append(EntryError("(feed)", "the feed lists no entries at all; nothing was cancelled"))
        return
    for key, old in before.items():
        if parsed.is_broken(key) and isinstance(old, dict):
            keep[key] = old  # listed but unreadable now: neither gone nor forgotten
            continue
        if key in listed or not isinstance(old, dict) or not now <= float(old.get("slot", 0)) < hi:
            continue
        gone = Entry(key, str(old.get("code", "")), "", float(old["slot"]), None, True, where=f"{key} (gone)")
        try:
            reply = send("appointment.cancel", {"code": gone.code}, request_id(gone, "gone"))
        except Exception as exc:
            rep.errors.append(EntryError(gone.where, f"not sent: {exc}"))
            keep[key] = old  # try again next time
            continue
        if reply.get("ok") and reply["result"]["appointment"].get("changed"):
            rep.cancelled += 1
        elif not reply.get("ok") and _code(reply) not in ("unknown_appointment", "invalid_state"):
            rep.errors.append(EntryError(gone.where, _message(reply)))
    try:
        memory.save(keep)
    except OSError as exc:  # a full or read-only disk: the import is done, only its memory is not kept
        rep.errors.append(
            EntryError(
                "(feed)",
                f"cannot keep what this import booked in {memory.path} ({exc.strerror or exc}): entries "
                "that disappear from the feed before it can are not cancelled",
            )
        )


def _latest(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per key: the highest revision (a feed may list an entry twice)."""
    best: dict[str, Entry] = {}
    for e in entries:
        old = best.get(e.key)
        if old is None or (e.version or 0) >= (old.version or 0):
            best[e.key] = e
    return list(best.values())


def _code_clashes(entries: Iterable[Entry]) -> dict[str, Entry]:
    """Entries whose code an earlier entry of the feed (another booking: another key) has already, each
    with that entry. The book holds one appointment per code, so importing the later one would move or
    cancel the first citizen's appointment, or be dropped as unchanged without a word."""
    owner: dict[str, Entry] = {}
    clash: dict[str, Entry] = {}
    for e in _latest(entries):
        first = owner.setdefault(e.code, e)
        if first is not e:
            clash[e.key] = first
    return clash


def _one(cfg: Config, e: Entry, send: Send, rep: Report) -> None:
    if e.cancelled:
        args: dict[str, Any] = {"code": e.code}
        if e.version is not None:
            args["version"] = e.version
        reply = send("appointment.cancel", args, request_id(e, "cancel"))
        if reply.get("ok"):
            changed = reply["result"]["appointment"].get("changed")
            rep.cancelled += 1 if changed else 0
            rep.unchanged += 0 if changed else 1
        elif _code(reply) == "unknown_appointment":
            rep.skipped += 1  # cancelled before we ever saw it
        else:
            rep.errors.append(EntryError(e.where, _message(reply)))
        return
    args = {"code": e.code, "service": e.service, "slot": e.slot}
    if e.version is not None:
        args["version"] = e.version
    if e.note and cfg.appointments.notes:
        args["note"] = e.note
    reply = send("appointment.book", args, request_id(e, "book"))
    if not reply.get("ok") and _code(reply) == "appointment_exists":
        # a source without revisions: the file is the truth, so the entry moved
        margs = {"code": e.code, "service": e.service, "slot": e.slot}
        reply = send("appointment.move", margs, request_id(e, "move"))
        if reply.get("ok"):
            rep.moved += 1 if reply["result"]["appointment"].get("changed") else 0
            rep.unchanged += 0 if reply["result"]["appointment"].get("changed") else 1
            return
    if not reply.get("ok"):
        rep.errors.append(EntryError(e.where, _message(reply)))
        return
    a = reply["result"]["appointment"]
    if not a.get("changed"):
        rep.unchanged += 1
    elif e.version is not None and _existed(reply):
        rep.moved += 1
    else:
        rep.booked += 1


def _existed(reply: dict[str, Any]) -> bool:
    return bool(reply["result"]["appointment"].get("updated"))


def _code(reply: dict[str, Any]) -> str:
    return str((reply.get("error") or {}).get("code", ""))


def _message(reply: dict[str, Any]) -> str:
    err = reply.get("error") or {}
    return f"{err.get('code', 'error')}: {err.get('message', '')}"
