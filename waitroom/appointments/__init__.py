"""Appointments (Termine): booking codes, capacity (``capacity``), import from a booking system (``ics``,
``csv_import``, ``importer``) and the ``waitroom appointments`` command (``cli``).

The book itself lives in the controller's state (``waitroom.model.Appointment``); its operations are in
``waitroom.ops.appointments``. Nothing here stores personal data: a booking is a code, a service, a slot
and at most a short note the office can switch off.
"""

from __future__ import annotations

import hashlib
import secrets

# Unambiguous on paper and on the phone: no 0/O, no 1/I/L (31 symbols, a prime: a strong check character).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_N = len(ALPHABET)


def check_char(body: str) -> str:
    """The check character of ``body``: position-weighted sum modulo 31 (a prime, so it catches every single
    wrong character and every swap of two different neighbours, as ISO 7064 checks do)."""
    total = sum((i + 1) * _INDEX[ch] for i, ch in enumerate(body))
    w = len(body) + 1  # the check character's weight; c with total + w * c = 0 (mod 31)
    return ALPHABET[(-total * pow(w, -1, _N)) % _N]


def normalize(code: str) -> str:
    """What a citizen or agent typed, as the book spells it: upper case, without spaces and dashes."""
    return "".join(code.split()).replace("-", "").upper()


def is_generated(code: str) -> bool:
    """Whether ``code`` is one of ours with a correct check character."""
    return len(code) >= 2 and all(c in _INDEX for c in code) and check_char(code[:-1]) == code[-1]


def new_code(length: int = 6, token: bytes | None = None) -> str:
    """A fresh booking code of ``length`` characters, the last one the check character."""
    raw = token if token is not None else secrets.token_bytes(length)
    body = "".join(ALPHABET[b % _N] for b in raw[: length - 1])
    return body + check_char(body)


def code_for_uid(uid: str, length: int = 6) -> str:
    """The booking code of an imported entry without its own code: derived from the booking system's UID,
    so that every import of the same entry gives the same code."""
    return new_code(length, hashlib.sha256(uid.encode()).digest())


def format_code(code: str) -> str:
    """For print: groups of three (``K7P-2QX``)."""
    return "-".join(code[i : i + 3] for i in range(0, len(code), 3))
