"""Numbers written the way each language writes them: "12,5" and "1.234" on a German page, "12.5" and "1,234"
on an English one, "80 %" (CLDR's no-break space) against "80%", Latin digits in Arabic (waitroom.i18n
fmt_number/fmt_percent, the ``number``/``percent`` filters, numbers in translated sentences). Machine formats
stay as they were: the JSON answers, the CSV export, attributes and form inputs.

The pages come from Flask's test client over a real SQLite event log written by the real controller (the
statistics) and the real simulator (the what-if comparison); the web node talks to a real mosquitto."""

from __future__ import annotations

import re

import pytest

from waitroom import i18n

NBSP = "\u00a0"
ARABIC_DIGITS = re.compile("[\u0660-\u0669\u06f0-\u06f9]")


# ------------------------------------------------------------------------------------------------ the helper
@pytest.mark.parametrize(
    ("lang", "whole", "fraction", "fixed", "signed", "share"),
    [
        ("de", "1.234", "12,5", "12,0", "+1,5", f"80{NBSP}%"),
        ("de-LS", "1.234", "12,5", "12,0", "+1,5", f"80{NBSP}%"),  # Leichte Sprache writes German numbers
        ("en", "1,234", "12.5", "12.0", "+1.5", "80%"),
        ("tr", "1.234", "12,5", "12,0", "+1,5", "%80"),
        ("ru", f"1{NBSP}234", "12,5", "12,0", "+1,5", f"80{NBSP}%"),
        ("ar", "1,234", "12.5", "12.0", "\u200e+1.5", "80%"),  # Latin digits, CLDR's Arabic with them
    ],
)
def test_numbers_are_written_as_each_language_writes_them(lang, whole, fraction, fixed, signed, share):
    assert i18n.fmt_number(1234, lang) == whole
    assert i18n.fmt_number(12.5, lang) == fraction
    assert i18n.fmt_number(12, lang, 1) == fixed
    assert i18n.fmt_number(1.5, lang, 1, sign=True) == signed
    assert i18n.fmt_percent(0.8, lang) == share


def test_arabic_keeps_the_latin_digits_of_ticket_numbers_and_clock_times():
    """A page in Arabic shows A012 and 10:30 in Latin digits: its counts, minutes and shares are Latin too, so
    one screen never mixes two digit systems (the locale's own default may be Arabic-Indic digits)."""
    for text in (
        i18n.fmt_number(1234567.25, "ar", 2),
        i18n.fmt_number(-3.5, "ar", 1, sign=True),
        i18n.fmt_percent(0.456, "ar", 1),
        i18n.wait_minutes(1500, "ar", formatted=True),
    ):
        assert not ARABIC_DIGITS.search(text), text
    assert "1,500" in i18n.wait_minutes(1500, "ar", formatted=True)
    assert "1.500" in i18n.wait_minutes(1500, "de", formatted=True)
    assert "1500" in i18n.wait_minutes(1500, "de")  # a ticket or a display: digits as they are, no Babel
