"""The one translation table for every user-facing text (tickets, displays, announcements, web, LEDs' help).

German is the first language. Add a language by adding a column: every key needs "de"; other languages fall
back to German. Placeholders use str.format names: ``t("call.spoken", "de", number="A 12", counter="...")``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en")

TEXTS: dict[str, dict[str, str]] = {
    # -- common
    "office.closed": {"de": "Geschlossen", "en": "Closed"},
    "wait.minutes": {"de": "ca. {minutes} Min.", "en": "approx. {minutes} min"},
    "wait.unknown": {"de": "Wartezeit wird ermittelt", "en": "Waiting time being determined"},
    "queue.waiting": {"de": "Wartende", "en": "Waiting"},
    # -- tickets (ticket_printer, dispenser)
    # -- displays and announcements
    # -- web
    # -- counter and assistance nodes
}


def t(key: str, lang: str = "de", **values: Any) -> str:
    """The text for ``key`` in ``lang`` (German when missing), with placeholders filled in."""
    entry = TEXTS.get(key)
    if entry is None:
        log.error("missing translation key %r", key)
        return key
    text = entry.get(lang) or entry["de"]
    return text.format(**values) if values else text


def both(key: str, **values: Any) -> dict[str, str]:
    """The text in every language, e.g. for a JSON API."""
    return {lang: t(key, lang, **values) for lang in LANGUAGES}
