"""CSV appointments with a configurable column mapping (``appointments.booking_system.csv``).

One row per appointment; the header names the columns. Defaults (``;``-separated, UTF-8 with or without BOM):

    uid;code;service;start;status;sequence
    4711;ZMS4711;Personalausweis beantragen;2026-11-24T09:15;gebucht;0

``start`` is ISO 8601 (an offset is honoured, none means office time) or ``csv.start_format``; ``status``
cancels with cancelled/canceled/storniert/abgesagt (any case); ``sequence`` is the revision (higher wins).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from waitroom import appointments as codes
from waitroom.appointments.importer import Entry, EntryError, FeedError, Parsed, service_of
from waitroom.config import Config

CANCELLED = {"cancelled", "canceled", "storniert", "abgesagt", "gelöscht", "deleted"}
BOOKED = {"", "booked", "gebucht", "confirmed", "bestätigt", "reserviert", "reserved"}


def parse(data: bytes | str, cfg: Config, now: float) -> Parsed:
    spec = cfg.appointments.booking_system.csv
    cols = spec.columns
    if isinstance(data, bytes):
        try:
            text = data.decode(spec.encoding)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise FeedError(
                f"line {line}: not {spec.encoding} text (byte {data[exc.start]:#04x}); set "
                "appointments.booking_system.csv.encoding to the file's encoding (e.g. cp1252)"
            ) from None
        except LookupError as exc:
            raise FeedError(f"appointments.booking_system.csv.encoding: {exc}") from None
    else:
        text = data
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=spec.delimiter)
    header = reader.fieldnames or []
    needed = [c for c in (cols.service, cols.start) if c] + [c for c in (cols.code, cols.uid) if c][:1]
    missing = [c for c in needed if c not in header]
    if not text.strip():
        raise FeedError("the file is empty (not even a header line)")
    if missing and len(header) == 1:
        other = next((d for d in ";,\t|" if d != spec.delimiter and d in header[0]), None)
        if other:
            raise FeedError(
                f"the header is one column: the file is separated by {other!r}, not {spec.delimiter!r} "
                "(set appointments.booking_system.csv.delimiter)"
            )
    if not header or missing:
        raise FeedError(
            f"the header {header!r} lacks the column(s) {missing or needed} "
            "(see appointments.booking_system.csv.columns)"
        )
    out = Parsed()
    mapped = [c for c in (cols.uid, cols.code, cols.service, cols.start, cols.status, cols.sequence) if c]
    if cols.note and cfg.appointments.notes:
        mapped.append(cols.note)
    for row in reader:
        where = f"line {reader.line_num}"  # the file's line: blank lines and quoted line breaks count
        try:
            _check_fields(row, header, mapped, spec.delimiter)
            out.entries.append(_entry(row, cfg, where))
        except ValueError as exc:
            out.errors.append(EntryError(where, str(exc)))
            key = _cell(row, cols.uid) or _cell(row, cols.code)
            if key:  # the booking system still lists it: not gone
                out.broken.add(key)
    return out


def _check_fields(row: dict[Any, Any], header: list[str], mapped: list[str], delimiter: str) -> None:
    """A row with more fields than the header (an unquoted separator inside a field) has its values in the
    wrong columns, and one without a mapped column lacks them: refused, and the message shows no value (an
    unmapped column may hold a name or an e-mail address). Empty fields after the last column are allowed (an
    export that ends every line with the separator)."""
    rest = row.get(None) or []  # csv.DictReader puts the fields beyond the header there
    if any(v.strip() for v in rest):
        raise ValueError(
            f"{len(header) + len(rest)} fields, the header has {len(header)} "
            f"(a {delimiter!r} inside a field that is not quoted?); values not shown"
        )
    absent = [c for c in mapped if row.get(c) is None]
    if absent:
        n = sum(1 for k, v in row.items() if k is not None and v is not None)
        raise ValueError(f"{n} fields, the header has {len(header)}: no column {', '.join(absent)}")


def _cell(row: dict[str, str | None], col: str | None) -> str:
    if not col:
        return ""
    return (row.get(col) or "").strip()


def _entry(row: dict[str, str | None], cfg: Config, where: str) -> Entry:
    spec = cfg.appointments.booking_system.csv
    cols = spec.columns
    uid, raw_code = _cell(row, cols.uid), _cell(row, cols.code)
    if not uid and not raw_code:
        raise ValueError("neither uid nor code: cannot be updated or cancelled later")
    key = uid or raw_code
    code = codes.normalize(raw_code) if raw_code else codes.code_for_uid(key, cfg.appointments.code_length)
    if not (3 <= len(code) <= 32 and code.isalnum() and code.isascii()):
        raise ValueError(f"booking code {raw_code!r} is not 3-32 letters or digits")
    name = _cell(row, cols.service)
    sid = service_of(cfg, name) if name else None
    if sid is None:
        raise ValueError(
            f"service {name!r} maps to no service (add it to appointments.booking_system.service_map)"
        )
    start = _cell(row, cols.start)
    try:
        when = (
            dt.datetime.strptime(start, spec.start_format)
            if spec.start_format
            else dt.datetime.fromisoformat(start)
        )
    except ValueError:
        raise ValueError(f"start {start!r} is not a time ({spec.start_format or 'ISO 8601'})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=cfg.office.tz)
    status = _cell(row, cols.status).casefold()
    if status not in CANCELLED and status not in BOOKED:
        raise ValueError(f"status {status!r} is neither booked nor cancelled")
    seq = _cell(row, cols.sequence)
    if seq and not seq.isdigit():
        raise ValueError(f"sequence {seq!r} is not a whole number")
    note = _cell(row, cols.note) if cols.note and cfg.appointments.notes else ""
    return Entry(
        key=key,
        code=code,
        service=sid,
        slot=when.timestamp(),
        version=int(seq) if seq else None,
        cancelled=status in CANCELLED,
        note=" ".join(note.split())[: cfg.appointments.note_max],
        where=where,
    )
