"""Texts of the web app's hardening, live and background-job features, merged into the one translation
table (``waitroom.i18n.TEXTS``) when the web app is imported; a key already in the table wins."""

from __future__ import annotations

from waitroom.i18n import TEXTS

WEB_TEXTS: dict[str, dict[str, str]] = {
    "web.err.origin": {
        "de": "Anfrage von einer fremden Seite abgelehnt.",
        "en": "Request from another site refused.",
    },
    "web.err.bad_body": {
        "de": "Die Anfrage ist fehlerhaft (Formular oder JSON).",
        "en": "The request is malformed (form or JSON).",
    },
    "web.err.too_large": {"de": "Die Anfrage ist zu groß.", "en": "The request is too large."},
    "web.err.reason": {
        "de": "Bitte einen Pausengrund aus der Liste wählen.",
        "en": "Please choose a pause reason from the list.",
    },
    "web.login_locked": {
        "de": "Zu viele fehlgeschlagene Anmeldungen. Bitte in {minutes} Minuten erneut versuchen.",
        "en": "Too many failed logins. Please try again in {minutes} minutes.",
    },
    "web.password.title": {"de": "Passwort ändern", "en": "Change password"},
    "web.password.current": {"de": "Bisheriges Passwort", "en": "Current password"},
    "web.password.new": {"de": "Neues Passwort", "en": "New password"},
    "web.password.wrong": {
        "de": "Das bisherige Passwort stimmt nicht.",
        "en": "The current password is wrong.",
    },
    "web.password.changed": {
        "de": "Passwort geändert. Alle Anmeldungen wurden beendet; bitte neu anmelden.",
        "en": "Password changed. Every login was ended; please log in again.",
    },
    "web.whatif.running": {
        "de": "Simulation läuft: {done} von {total} Tagen.",
        "en": "Simulation running: {done} of {total} days.",
    },
    "web.whatif.queued": {"de": "Simulation wird gestartet …", "en": "Starting the simulation …"},
    "web.whatif.failed": {
        "de": "Die Simulation ist fehlgeschlagen: {error}",
        "en": "The simulation failed: {error}",
    },
    "web.whatif.unknown_job": {
        "de": "Diese Simulation ist nicht (mehr) bekannt.",
        "en": "This simulation is not known (any more).",
    },
    "web.whatif.err.max_days": {
        "de": "Höchstens {n} Tage je Regelsatz (web.whatif_max_days); angefragt: {wanted}.",
        "en": "At most {n} days per rule set (web.whatif_max_days); requested: {wanted}.",
    },
}

for _key, _value in WEB_TEXTS.items():
    TEXTS.setdefault(_key, _value)
