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
    "ticket.your_number": {"de": "Ihre Nummer", "en": "Your number"},
    "ticket.ahead": {"de": "Vor Ihnen: {count}", "en": "Ahead of you: {count}"},
    "ticket.ahead_none": {"de": "Sie sind als Nächste/r dran", "en": "You are next"},
    "ticket.wait": {"de": "Wartezeit: ca. {minutes} Min.", "en": "Waiting time: approx. {minutes} min"},
    "ticket.wait_unknown": {"de": "Wartezeit wird ermittelt", "en": "Waiting time being determined"},
    "ticket.note": {"de": "Bitte achten Sie auf die Anzeige", "en": "Please watch the display"},
    "ticket.appointment": {"de": "Termin: {time} Uhr", "en": "Appointment: {time}"},
    "ticket.priority": {"de": "Vorrang", "en": "Priority"},
    "ticket.status_qr": {"de": "Wartestand online:", "en": "Live status:"},
    "ticket.issued": {"de": "{date}, {time} Uhr", "en": "{date}, {time}"},
    "ticket.notice": {"de": "Hinweis", "en": "Notice"},
    "dispenser.checkin_unknown": {
        "de": "Buchungscode unbekannt. Bitte wenden Sie sich an den Empfang.",
        "en": "Unknown booking code. Please ask at the reception.",
    },
    "dispenser.checkin_expired": {
        "de": "Ihr Termin ist nicht heute oder die Zeit ist abgelaufen. Bitte "
        "ziehen Sie eine Wartenummer oder fragen Sie am Empfang.",
        "en": "Your appointment is not today or its time has passed. Please take a "
        "ticket or ask at the reception.",
    },
    "dispenser.checkin_offline": {
        "de": "Check-in gerade nicht möglich. Bitte ziehen Sie eine Wartenummer.",
        "en": "Check-in not possible right now. Please take a ticket.",
    },
    "dispenser.intake_stopped": {
        "de": "Heute keine Wartenummern mehr für {service}.",
        "en": "No more tickets today for {service}.",
    },
    "dispenser.rate_limited": {
        "de": "Bitte einen Moment warten, dann erneut drücken.",
        "en": "Please wait a moment, then press again.",
    },
    "dispenser.printer_fault": {
        "de": "Drucker gestört – bitte wenden Sie sich an den Empfang.",
        "en": "Printer fault – please ask at the reception.",
    },
    "dispenser.no_numbers": {
        "de": "Keine Verbindung – bitte wenden Sie sich an den Empfang.",
        "en": "No connection – please ask at the reception.",
    },
    # -- displays and announcements
    "display.now_calling": {"de": "Aufruf", "en": "Now calling"},
    "display.recall": {"de": "Erneuter Aufruf", "en": "Called again"},
    "display.please_go": {"de": "bitte zu", "en": "please go to"},
    "display.recent": {"de": "Letzte Aufrufe", "en": "Recent calls"},
    "display.number": {"de": "Nummer", "en": "Number"},
    "display.counter": {"de": "Schalter", "en": "Counter"},
    "display.waits": {"de": "Wartezeiten", "en": "Waiting times"},
    "display.waiting_count": {"de": "{count} wartend", "en": "{count} waiting"},
    "display.intake_closed": {"de": "Heute keine Annahme mehr", "en": "No more tickets today"},
    "display.no_calls": {
        "de": "Bitte warten Sie, bis Ihre Nummer aufgerufen wird.",
        "en": "Please wait until your number is called.",
    },
    "display.offline": {
        "de": "Keine Verbindung – Anzeige nicht aktuell",
        "en": "No connection – display not up to date",
    },
    "display.sound_on": {"de": "Ton einschalten", "en": "Enable sound"},
    # Spoken texts: the ticket as a person says it (letter, then the number as a number) and the phrases.
    # English joins letter and number with a hyphen so that espeak-ng says the letter's name ("ay"), not "a".
    "announce.ticket": {"de": "{letter} {number}", "en": "{letter}-{number}"},
    "announce.call": {
        "de": "Nummer {ticket}, bitte zu {counter}.",
        "en": "Number {ticket}, please go to {counter}.",
    },
    "announce.recall": {
        "de": "Noch einmal: Nummer {ticket}, bitte zu {counter}.",
        "en": "Once again: number {ticket}, please go to {counter}.",
    },
    # -- web
    "web.skip": {"de": "Zum Inhalt springen", "en": "Skip to content"},
    "web.nav": {"de": "Navigation", "en": "Navigation"},
    "web.nav.waiting": {"de": "Wartezeiten", "en": "Waiting times"},
    "web.nav.staff": {"de": "Arbeitsplatz", "en": "Workstation"},
    "web.nav.admin": {"de": "Verwaltung", "en": "Administration"},
    "web.nav.stats": {"de": "Statistik", "en": "Statistics"},
    "web.login": {"de": "Anmelden", "en": "Log in"},
    "web.logout": {"de": "Abmelden", "en": "Log out"},
    "web.username": {"de": "Benutzername", "en": "User name"},
    "web.password": {"de": "Passwort", "en": "Password"},
    "web.login_failed": {
        "de": "Benutzername oder Passwort ist falsch.",
        "en": "Wrong user name or password.",
    },
    "web.logged_out": {"de": "Sie sind abgemeldet.", "en": "You are logged out."},
    "web.login_required": {"de": "Bitte melden Sie sich an.", "en": "Please log in."},
    "web.forbidden": {"de": "Dafür fehlt Ihnen die Berechtigung.", "en": "You are not allowed to do this."},
    "web.not_found": {"de": "Seite nicht gefunden.", "en": "Page not found."},
    "web.not_allowed": {
        "de": "Diese Aktion ist hier nicht möglich.",
        "en": "This action is not possible here.",
    },
    "web.too_many": {
        "de": "Zu viele Anfragen. Bitte warten Sie eine Minute.",
        "en": "Too many requests. Please wait a minute.",
    },
    "web.no_state": {
        "de": "Noch keine Daten von der Steuerung – bitte einen Moment Geduld.",
        "en": "No data from the controller yet – please wait a moment.",
    },
    "web.unknown_counter": {"de": "Unbekannter Schalter {counter}.", "en": "Unknown counter {counter}."},
    "web.wrong_counter": {
        "de": "Sie dürfen Schalter {counter} nicht bedienen.",
        "en": "You may not operate counter {counter}.",
    },
    "web.err.offline": {
        "de": "Keine Verbindung zur Steuerung (MQTT). Die Aktion wurde nicht ausgeführt.",
        "en": "No connection to the controller (MQTT). The action was not carried out.",
    },
    "web.err.timeout": {
        "de": "Die Steuerung antwortet nicht. Bitte erneut versuchen.",
        "en": "The controller does not answer. Please try again.",
    },
    "web.err.csrf": {
        "de": "Das Formular ist abgelaufen. Bitte die Seite neu laden.",
        "en": "The form has expired. Please reload the page.",
    },
    "web.err.json": {
        "de": "Ungültige Anfrage (JSON-Objekt erwartet).",
        "en": "Bad request (JSON object expected).",
    },
    "web.err.field": {
        "de": "Feld „{field}“ fehlt oder ist ungültig.",
        "en": "Field '{field}' is missing or invalid.",
    },
    "web.err.unknown_action": {"de": "Unbekannte Aktion {action}.", "en": "Unknown action {action}."},
    "web.err.nobody_waiting": {"de": "Niemand wartet.", "en": "Nobody is waiting."},
    "web.err.not_serving": {"de": "Es ist keine Nummer aufgerufen.", "en": "No number is being served."},
    "web.err.unknown_ticket": {"de": "Diese Nummer wartet nicht.", "en": "This number is not waiting."},
    "web.err.unknown_assistance": {
        "de": "Diese Hilfeanfrage ist nicht mehr offen.",
        "en": "This assistance request is no longer open.",
    },
    "web.err.invalid_state": {
        "de": "Das passt nicht zum aktuellen Stand.",
        "en": "This does not fit the current state.",
    },
    "web.err.counter_closed": {"de": "Der Schalter ist geschlossen.", "en": "The counter is closed."},
    "web.ok.called": {"de": "{ticket} aufgerufen.", "en": "{ticket} called."},
    "web.ok.served": {"de": "{ticket} erledigt.", "en": "{ticket} served."},
    "web.ok.no_show": {"de": "{ticket} nicht erschienen.", "en": "{ticket} did not show up."},
    "web.ok.park": {"de": "{ticket} geparkt.", "en": "{ticket} parked."},
    "web.ok.transfer": {"de": "{ticket} weitergeleitet.", "en": "{ticket} transferred."},
    "web.ok.open": {"de": "Schalter geöffnet.", "en": "Counter opened."},
    "web.ok.pause": {"de": "Schalter pausiert.", "en": "Counter paused."},
    "web.ok.close": {"de": "Schalter geschlossen.", "en": "Counter closed."},
    "web.ok.assist_ack": {"de": "Hilfe ist unterwegs.", "en": "Help is on the way."},
    "web.ok.assist_resolve": {"de": "Hilfeanfrage erledigt.", "en": "Assistance request resolved."},
    "web.ok.intake": {"de": "Annahme geändert.", "en": "Intake changed."},
    "web.counter.open": {"de": "Geöffnet", "en": "Open"},
    "web.counter.paused": {"de": "Pause", "en": "Paused"},
    "web.counter.closed": {"de": "Geschlossen", "en": "Closed"},
    "web.counters": {"de": "Schalter", "en": "Counters"},
    "web.services": {"de": "Anliegen", "en": "Services"},
    "web.service": {"de": "Anliegen", "en": "Service"},
    "web.number": {"de": "Nummer", "en": "Number"},
    "web.state": {"de": "Zustand", "en": "State"},
    "web.waiting": {"de": "Wartende", "en": "Waiting"},
    "web.waiting_since": {"de": "Wartet seit", "en": "Waiting for"},
    "web.eta": {"de": "Wartezeit", "en": "Waiting time"},
    "web.staff.pick": {"de": "Schalter wählen", "en": "Choose your counter"},
    "web.staff.no_counters": {
        "de": "Ihnen ist kein Schalter zugeordnet.",
        "en": "No counter is assigned to you.",
    },
    "web.staff.change": {"de": "wechseln", "en": "change"},
    "web.staff.now": {"de": "Aktuell", "en": "Now"},
    "web.staff.serving": {"de": "Aufgerufen", "en": "Serving"},
    "web.staff.why": {"de": "Aufgerufen, weil", "en": "Called because"},
    "web.staff.nobody": {"de": "Keine Nummer aufgerufen", "en": "No number called"},
    "web.staff.waiting": {"de": "Warteschlange", "en": "Queue"},
    "web.staff.none_waiting": {"de": "Niemand wartet.", "en": "Nobody is waiting."},
    "web.staff.parked": {"de": "Geparkt", "en": "Parked"},
    "web.staff.shortcuts": {"de": "Tastenkürzel", "en": "Keyboard shortcuts"},
    "web.staff.shortcut_help": {
        "de": "N nächste Nummer · R erneut aufrufen · S erledigt · X nicht erschienen · K parken · P Pause · "
        "O öffnen · A Hilfeanfrage annehmen",
        "en": "N next · R recall · S served · X no-show · K park · P pause · O open · "
        "A acknowledge assistance",
    },
    "web.act.next": {"de": "Nächste Nummer", "en": "Next number"},
    "web.act.recall": {"de": "Erneut aufrufen", "en": "Recall"},
    "web.act.served": {"de": "Erledigt", "en": "Served"},
    "web.act.no_show": {"de": "Nicht erschienen", "en": "No-show"},
    "web.act.park": {"de": "Parken", "en": "Park"},
    "web.act.transfer": {"de": "Weiterleiten", "en": "Transfer"},
    "web.act.transfer_to": {"de": "Weiterleiten an", "en": "Transfer to"},
    "web.act.call": {"de": "Aufrufen", "en": "Call"},
    "web.act.call_back": {"de": "Zurückrufen", "en": "Call back"},
    "web.act.call_number": {"de": "Nummer aufrufen", "en": "Call number"},
    "web.act.open": {"de": "Öffnen", "en": "Open"},
    "web.act.pause": {"de": "Pause", "en": "Pause"},
    "web.act.pause_reason": {"de": "Grund", "en": "Reason"},
    "web.act.close": {"de": "Schließen", "en": "Close"},
    "web.assist.title": {"de": "Hilfeanfragen", "en": "Assistance requests"},
    "web.assist.none": {"de": "Keine offenen Hilfeanfragen.", "en": "No open assistance requests."},
    "web.assist.pending": {"de": "wartet auf Hilfe", "en": "waiting for help"},
    "web.assist.acknowledged": {"de": "Hilfe unterwegs", "en": "help on the way"},
    "web.assist.resolved": {"de": "erledigt", "en": "resolved"},
    "web.assist.cancelled": {"de": "zurückgezogen", "en": "cancelled"},
    "web.assist.level": {"de": "Eskalation {level}", "en": "escalation {level}"},
    "web.assist.ack": {"de": "Ich komme", "en": "I'm coming"},
    "web.assist.resolve": {"de": "Erledigt", "en": "Resolved"},
    "web.assist.escalated": {
        "de": "{n} Hilfeanfrage(n) seit langem unbeantwortet!",
        "en": "{n} assistance request(s) unanswered for a long time!",
    },
    "web.admin.nodes": {"de": "Geräte", "en": "Nodes"},
    "web.admin.role": {"de": "Rolle", "en": "Role"},
    "web.admin.online": {"de": "online", "en": "online"},
    "web.admin.offline": {"de": "offline", "en": "offline"},
    "web.admin.last_seen": {"de": "Zuletzt gesehen", "en": "Last seen"},
    "web.admin.ago": {"de": "vor {s} s", "en": "{s} s ago"},
    "web.admin.health": {"de": "Zustand (Health)", "en": "Health"},
    "web.admin.queue": {"de": "Warteschlange live", "en": "Live queue"},
    "web.admin.served": {"de": "Bedient", "en": "Served"},
    "web.admin.intake": {"de": "Annahme", "en": "Intake"},
    "web.admin.intake_open": {"de": "offen", "en": "open"},
    "web.admin.intake_stopped": {"de": "gestoppt", "en": "stopped"},
    "web.admin.intake_stop": {"de": "stoppen", "en": "stop"},
    "web.admin.intake_auto": {"de": "automatisch", "en": "automatic"},
    "web.admin.config": {"de": "Geltende Konfiguration", "en": "Configuration in force"},
    "web.admin.users": {"de": "Benutzer", "en": "Users"},
    "web.admin.users_help": {
        "de": "Benutzer anlegen: waitroom web add-user --username NAME [--role admin]",
        "en": "Add users: waitroom web add-user --username NAME [--role admin]",
    },
    "web.stats.day": {"de": "Tag", "en": "Day"},
    "web.stats.show": {"de": "Anzeigen", "en": "Show"},
    "web.stats.csv": {"de": "CSV herunterladen", "en": "Download CSV"},
    "web.stats.per_hour": {"de": "Nummern pro Stunde und Anliegen", "en": "Tickets per hour and service"},
    "web.stats.by_service": {"de": "Nach Anliegen", "en": "By service"},
    "web.stats.issued": {"de": "Ausgegeben", "en": "Issued"},
    "web.stats.served": {"de": "Bedient", "en": "Served"},
    "web.stats.no_show": {"de": "Nicht erschienen", "en": "No-shows"},
    "web.stats.cancelled": {"de": "Storniert", "en": "Cancelled"},
    "web.stats.mean_wait": {"de": "Mittlere Wartezeit (Min.)", "en": "Mean waiting time (min)"},
    "web.stats.p90_wait": {"de": "90 % warten höchstens (Min.)", "en": "90 % wait at most (min)"},
    "web.stats.mean_service": {"de": "Mittlere Bearbeitungszeit (Min.)", "en": "Mean service time (min)"},
    "web.stats.assist_requests": {"de": "Anfragen", "en": "Requests"},
    "web.stats.assist_ack": {"de": "Angenommen", "en": "Acknowledged"},
    "web.stats.assist_response": {"de": "Mittlere Reaktionszeit", "en": "Mean response time"},
    "web.stats.escalations": {"de": "Eskalationen", "en": "Escalations"},
    "web.stats.unavailable": {
        "de": "Statistik nicht verfügbar: Das Ereignisprotokoll der Steuerung liegt "
        "nicht auf diesem Rechner.",
        "en": "Statistics unavailable: the controller's event log is not on this machine.",
    },
    "web.public.title": {"de": "Aktuelle Wartezeiten", "en": "Current waiting times"},
    "web.public.intake_stopped": {"de": "Heute keine Nummern mehr", "en": "No more tickets today"},
    "web.public.note": {
        "de": "Geschätzte Wartezeit in Minuten für eine jetzt gezogene Nummer.",
        "en": "Estimated waiting time in minutes for a ticket drawn now.",
    },
    "web.public.api": {"de": "Maschinenlesbar: {url}", "en": "Machine-readable: {url}"},
    # -- cross-office advice (city service, issue 16): tickets, public page, dispenser
    "city.alternative": {
        "de": "Kürzer warten: {office}: ca. {minutes} Min.",
        "en": "Shorter wait: {office}: approx. {minutes} min",
    },
    # -- the city view for 115 agents (waitroom/city/)
    "city.title": {"de": "Wartezeiten der Bürgerbüros", "en": "Waiting times of the citizen offices"},
    "city.pick_service": {"de": "Dienstleistung", "en": "Service"},
    "city.all_services": {"de": "Alle Dienstleistungen", "en": "All services"},
    "city.show": {"de": "Anzeigen", "en": "Show"},
    "city.office": {"de": "Bürgerbüro", "en": "Office"},
    "city.wait_today": {"de": "Wartezeit jetzt", "en": "Wait now"},
    "city.waiting": {"de": "Wartende", "en": "Waiting"},
    "city.hours_today": {"de": "Öffnungszeiten heute", "en": "Opening hours today"},
    "city.status": {"de": "Stand", "en": "Status"},
    "city.open": {"de": "geöffnet", "en": "open"},
    "city.closed": {"de": "geschlossen", "en": "closed"},
    "city.closed_today": {"de": "heute geschlossen", "en": "closed today"},
    "city.stale_since": {"de": "veraltet seit {time} Uhr", "en": "out of date since {time}"},
    "city.unknown": {"de": "keine Daten", "en": "no data"},
    "city.live": {"de": "aktuell ({time} Uhr)", "en": "current ({time})"},
    "city.intake_stopped": {"de": "Annahmeschluss", "en": "No more tickets today"},
    "city.not_offered": {"de": "nicht angeboten", "en": "not offered"},
    "city.updated": {"de": "Aktualisiert: {time} Uhr", "en": "Updated: {time}"},
    "city.refresh": {"de": "Aktualisieren", "en": "Refresh"},
    "city.note": {
        "de": "Geschätzte Wartezeit für eine jetzt gezogene Nummer; sortiert nach Wartezeit.",
        "en": "Estimated wait for a ticket drawn now; ordered by waiting time.",
    },
    "city.recommend": {
        "de": "Empfehlung: {office} (ca. {minutes} Min.)",
        "en": "Advice: {office} ({minutes} min)",
    },
    "city.api": {"de": "Schnittstelle (JSON): {url}", "en": "API (JSON): {url}"},
    "city.opens": {"de": "öffnet {day} {time} Uhr", "en": "opens {day} {time}"},
    "city.week_hours": {"de": "Öffnungszeiten der Woche", "en": "Opening hours this week"},
    "city.day.mon": {"de": "Mo", "en": "Mon"},
    "city.day.tue": {"de": "Di", "en": "Tue"},
    "city.day.wed": {"de": "Mi", "en": "Wed"},
    "city.day.thu": {"de": "Do", "en": "Thu"},
    "city.day.fri": {"de": "Fr", "en": "Fri"},
    "city.day.sat": {"de": "Sa", "en": "Sat"},
    "city.day.sun": {"de": "So", "en": "Sun"},
    "city.unknown_service": {
        "de": "Keine Dienstleistung „{service}“ bekannt.",
        "en": "No service “{service}” is known.",
    },
    "web.ticket.title": {"de": "Ihre Wartenummer", "en": "Your ticket"},
    "web.ticket.waiting": {"de": "Sie warten.", "en": "You are waiting."},
    "web.ticket.position": {
        "de": "Position {position} in der Warteschlange",
        "en": "Position {position} in the queue",
    },
    "web.ticket.called": {
        "de": "Sie sind dran: bitte zu {counter}!",
        "en": "It's your turn: please go to {counter}!",
    },
    "web.ticket.parked": {
        "de": "Ihre Nummer ist geparkt. Sie werden wieder aufgerufen.",
        "en": "Your number is parked. You will be called again.",
    },
    "web.ticket.done": {"de": "Diese Nummer wartet nicht mehr.", "en": "This number is no longer waiting."},
    "web.ticket.unknown": {
        "de": "Diese Nummer ist heute nicht (mehr) bekannt.",
        "en": "This number is not known (any more) today.",
    },
    "web.ticket.privacy": {
        "de": "Diese Seite zeigt nur Ihre Nummer – keine persönlichen Daten. Sie aktualisiert sich selbst.",
        "en": "This page shows only your number – no personal data. It updates itself.",
    },
    "web.demo.intro": {
        "de": "Virtuelle Tasten für jedes Gerät des Amts. Ein Druck läuft über MQTT zum Gerät "
        "und löst dort dieselbe Logik aus wie eine echte Taste.",
        "en": "Virtual buttons for every node of the office. A press travels over MQTT to the "
        "node and runs the same code as a real button.",
    },
    "web.demo.buttons": {"de": "Tasten", "en": "Buttons"},
    "web.demo.hold": {"de": "lang", "en": "hold"},
    "web.demo.hold_help": {
        "de": "„lang“ = langer Druck: Nächste lang = erneut aufrufen, Erneut lang = "
        "Hilfeanfrage annehmen, Pause lang = schließen, Hilfe lang = Hilfe "
        "abbrechen.",
        "en": "'hold' = long press: Next held = recall, Recall held = acknowledge "
        "assistance, Pause held = close, Help held = cancel help.",
    },
    "web.demo.btn.next": {"de": "Nächste", "en": "Next"},
    "web.demo.btn.recall": {"de": "Erneut", "en": "Recall"},
    "web.demo.btn.served": {"de": "Erledigt", "en": "Served"},
    "web.demo.btn.no_show": {"de": "Nicht erschienen", "en": "No-show"},
    "web.demo.btn.pause": {"de": "Pause", "en": "Pause"},
    "web.demo.btn.priority": {"de": "Vorrang", "en": "Priority"},
    "web.demo.btn.lang": {"de": "English", "en": "English"},
    "web.demo.btn.help": {"de": "Hilfe", "en": "Help"},
    "web.demo.state": {"de": "Amt live", "en": "Office live"},
    "web.demo.calls": {"de": "Letzte Aufrufe", "en": "Recent calls"},
    "web.demo.media": {"de": "Tickets und Anzeigen", "en": "Tickets and displays"},
    "web.demo.tickets": {"de": "Letzte Tickets", "en": "Latest tickets"},
    "web.demo.screens": {"de": "Anzeigen", "en": "Displays"},
    "web.demo.no_media": {"de": "Noch nichts.", "en": "Nothing yet."},
    "web.demo.unknown_node": {"de": "Kein Gerät {node} mit Tasten.", "en": "No node {node} with buttons."},
    "web.demo.bad_button": {
        "de": "Unbekannte Taste oder Aktion für {node}.",
        "en": "Unknown button or action for {node}.",
    },
    # web admin: what-if page (waitroom/web/whatif.py)
    "web.whatif.title": {"de": "Was wäre, wenn …?", "en": "What if …?"},
    "web.whatif.intro": {
        "de": "Vergleicht andere Regeln mit den geltenden an simulierten Tagen: dieselben "
        "Ankünfte und Bearbeitungszeiten, nur die Regeln unterscheiden sich.",
        "en": "Compares other rules with those in force on simulated days: the same "
        "arrivals and service times, only the rules differ.",
    },
    "web.whatif.scenario": {"de": "Szenario", "en": "Scenario"},
    "web.whatif.unusable": {"de": "passt nicht zu diesem Amt", "en": "does not fit this office"},
    "web.whatif.no_scenarios": {
        "de": "Kein Szenario gefunden. Szenario-Dateien (*.yaml) in {folder} ablegen oder unten einfügen.",
        "en": "No scenario found. Put scenario files (*.yaml) into {folder} or paste one below.",
    },
    "web.whatif.own_scenario": {"de": "Eigenes Szenario (YAML)", "en": "Own scenario (YAML)"},
    "web.whatif.own_help": {
        "de": "Eingefügtes YAML ersetzt die Auswahl oben (Aufbau wie "
        "waitroom/examples/scenarios/mitte-monday.yaml). Dauerhaft: Datei in {folder} ablegen.",
        "en": "Pasted YAML replaces the choice above (laid out like "
        "waitroom/examples/scenarios/mitte-monday.yaml). To keep it: put the file into {folder}.",
    },
    "web.whatif.replications": {"de": "Simulierte Tage je Regelwerk", "en": "Simulated days per rule set"},
    "web.whatif.seed": {"de": "Startwert (Zufall)", "en": "Random seed"},
    "web.whatif.seed_default": {"de": "wie Szenario", "en": "as scenario"},
    "web.whatif.variants_help": {
        "de": "Bis zu drei Varianten, vorbelegt mit den geltenden Regeln. Ändern "
        "Sie, was Sie ausprobieren möchten.",
        "en": "Up to three variants, prefilled with the rules in force. Change what you want to try.",
    },
    "web.whatif.variant": {"de": "Variante {n}", "en": "Variant {n}"},
    "web.whatif.use": {"de": "vergleichen", "en": "compare"},
    "web.whatif.name": {"de": "Name", "en": "Name"},
    "web.whatif.skills": {
        "de": "Welcher Schalter nimmt welche Anliegen",
        "en": "Which counter takes which services",
    },
    "web.whatif.target": {"de": "Zielwartezeit", "en": "Target wait"},
    "web.whatif.normal_per_priority": {
        "de": "Normale Nummern zwischen zwei Vorrangnummern",
        "en": "Normal tickets between two priority tickets",
    },
    "web.whatif.ageing_from": {
        "de": "Vorziehen ab Anteil der Zielwartezeit",
        "en": "Call first from this share of the target",
    },
    "web.whatif.run": {"de": "Vergleichen", "en": "Compare"},
    "web.whatif.duration": {
        "de": "Die Simulation dauert einige Sekunden.",
        "en": "The simulation takes a few seconds.",
    },
    "web.whatif.configured": {"de": "Wie konfiguriert", "en": "As configured"},
    "web.whatif.all_services": {"de": "Alle Anliegen", "en": "All services"},
    "web.whatif.result": {"de": "Ergebnis", "en": "Result"},
    "web.whatif.summary": {
        "de": "{scenario}: {days} simulierte Tage je Regelwerk (Startwert {seed}), "
        "{citizens} Bürger:innen in {seconds} s.",
        "en": "{scenario}: {days} simulated days per rule set (seed {seed}), {citizens} "
        "citizens in {seconds} s.",
    },
    "web.whatif.reduced": {
        "de": "Wegen des Zeitlimits auf {days} Tage je Regelwerk verkürzt (gewünscht: {wanted}).",
        "en": "Cut to {days} days per rule set by the time limit (asked: {wanted}).",
    },
    "web.whatif.no_counter": {
        "de": "{name}: Kein Schalter nimmt „{service}“ – diese Bürger:innen warten, bis sie gehen.",
        "en": "{name}: no counter takes '{service}' – these citizens wait until they leave.",
    },
    "web.whatif.rule_set": {"de": "Regelwerk", "en": "Rule set"},
    "web.whatif.mean": {"de": "Mittel", "en": "Mean"},
    "web.whatif.median": {"de": "Median", "en": "Median"},
    "web.whatif.max": {"de": "Max.", "en": "Max"},
    "web.whatif.service_level": {"de": "Ziel erreicht", "en": "Target met"},
    "web.whatif.utilisation": {"de": "Auslastung", "en": "Utilisation"},
    "web.whatif.arrived": {"de": "Ankünfte/Tag", "en": "Arrivals/day"},
    "web.whatif.abandoned": {"de": "Gegangen/Tag", "en": "Left/day"},
    "web.whatif.turned_away": {"de": "Abgewiesen/Tag", "en": "Turned away/day"},
    "web.whatif.units": {
        "de": "Wartezeiten in Minuten bis zum Aufruf; Δ = Mittel gegenüber „Wie "
        "konfiguriert“; „Ziel erreicht“ = Anteil innerhalb der Zielwartezeit.",
        "en": "Waiting times in minutes until the call; Δ = mean against 'As configured'; "
        "'Target met' = share within the target wait.",
    },
    "web.whatif.ci": {
        "de": "95-%-Vertrauensbereich des Mittels wie konfiguriert: {lo}–{hi} Min.",
        "en": "95 % confidence interval of the mean as configured: {lo}–{hi} min.",
    },
    "web.whatif.per_service": {"de": "Nach Anliegen", "en": "By service"},
    "web.whatif.per_counter": {"de": "Auslastung je Schalter", "en": "Utilisation per counter"},
    "web.whatif.chart_waits": {
        "de": "Mittlere Wartezeit (Balken) und 90-%-Wert (Strich) in Minuten",
        "en": "Mean wait (bar) and 90th percentile (tick) in minutes",
    },
    "web.whatif.chart_cdf": {
        "de": "Anteil aufgerufen innerhalb von … Minuten",
        "en": "Share called within … minutes",
    },
    "web.whatif.method": {
        "de": "Simuliert mit den echten Aufrufregeln und der echten Wartezeitprognose "
        "(Annahmeschluss inklusive); alle Regelwerke sehen dieselben Tage.",
        "en": "Simulated with the real calling rules and the real waiting-time forecast "
        "(intake stop included); every rule set sees the same days.",
    },
    "web.whatif.err.int_range": {
        "de": "{field}: bitte eine ganze Zahl von {lo} bis {hi}.",
        "en": "{field}: please a whole number from {lo} to {hi}.",
    },
    "web.whatif.err.num_range": {
        "de": "{field}: bitte eine Zahl von {lo} bis {hi}.",
        "en": "{field}: please a number from {lo} to {hi}.",
    },
    "web.whatif.err.name": {
        "de": "Name „{name}“: bitte 1 bis {max} Zeichen, jeder Name nur einmal.",
        "en": "Name '{name}': please 1 to {max} characters, each name only once.",
    },
    "web.whatif.err.counter": {"de": "Unbekannter Schalter {counter}.", "en": "Unknown counter {counter}."},
    "web.whatif.err.service": {"de": "Unbekanntes Anliegen {service}.", "en": "Unknown service {service}."},
    "web.whatif.err.skills_list": {
        "de": "{counter}: Anliegen als Liste angeben.",
        "en": "{counter}: give the services as a list.",
    },
    "web.whatif.err.no_skills": {
        "de": "{name}: {counter} muss mindestens ein Anliegen nehmen.",
        "en": "{name}: {counter} must take at least one service.",
    },
    "web.whatif.err.no_variant": {
        "de": "Bitte mindestens eine Variante zum Vergleichen auswählen.",
        "en": "Please choose at least one variant to compare.",
    },
    "web.whatif.err.too_many": {"de": "Höchstens {n} Varianten.", "en": "At most {n} variants."},
    "web.whatif.err.scenario": {"de": "Unbekanntes Szenario „{name}“.", "en": "Unknown scenario '{name}'."},
    "web.whatif.err.scenario_invalid": {
        "de": "Das Szenario ist ungültig oder passt nicht zu diesem Amt: {details}",
        "en": "The scenario is invalid or does not fit this office: {details}",
    },
    "web.whatif.err.too_big": {
        "de": "Das Szenario ist zu groß: etwa {n} Bürger:innen am Tag (höchstens {max}).",
        "en": "The scenario is too large: about {n} citizens a day (at most {max}).",
    },
    "web.whatif.err.rules": {
        "de": "{name}: Die Regeln sind ungültig: {details}",
        "en": "{name}: the rules are invalid: {details}",
    },
    "web.whatif.err.json": {
        "de": "Ungültige Anfrage (JSON-Objekt erwartet).",
        "en": "Invalid request (JSON object expected).",
    },
    "web.whatif.err.key": {"de": "Unbekannter Schlüssel {name}.", "en": "Unknown key {name}."},
    "web.whatif.err.busy": {
        "de": "Es läuft bereits eine Simulation. Bitte in einigen Sekunden erneut versuchen.",
        "en": "A simulation is already running. Please try again in a few seconds.",
    },
    "web.whatif.err.too_slow": {
        "de": "Die Simulation würde zu lange dauern. Bitte weniger Tage wählen (etwa {n}).",
        "en": "The simulation would take too long. Please choose fewer days (about {n}).",
    },
    # -- counter and assistance nodes
    # -- steering explanations and intake stop (waitroom/steering.py, waitroom/predict.py)
    "steering.transferred": {"de": "an diesen Schalter weitergeleitet", "en": "transferred to this counter"},
    "steering.appointment": {"de": "Termin um {slot} Uhr", "en": "appointment at {slot}"},
    "steering.appointment_early": {
        "de": "Termin um {slot} Uhr, früh aufgerufen (sonst niemand wartet)",
        "en": "appointment at {slot}, called early (nobody else waiting)",
    },
    "steering.condition": {
        "de": "Regel: längste Wartezeit {service} {wait} Min. (über {limit} Min.)",
        "en": "rule: longest wait for {service} {wait} min (over {limit} min)",
    },
    "steering.service_level": {
        "de": "Servicelevel: wartet {wait} Min. (Ziel {target} Min.)",
        "en": "service level: waiting {wait} min (target {target} min)",
    },
    "steering.behind_priority": {
        "de": "wartet {wait} Min. hinter Vorrangnummern (Grenze {limit} Min.)",
        "en": "waiting {wait} min behind priority tickets (limit {limit} min)",
    },
    "steering.priority": {"de": "Vorrangnummer", "en": "priority ticket"},
    "steering.fairness": {
        "de": "am längsten wartend ({wait} Min.); Vorrang erst nach {n} normalen Aufrufen",
        "en": "longest waiting ({wait} min); priority only after {n} normal calls",
    },
    "steering.longest": {"de": "am längsten wartend ({wait} Min.)", "en": "longest waiting ({wait} min)"},
    "steering.secondary": {
        "de": "Zweitaufgabe: wartet {wait} Min. (Gewicht {weight})",
        "en": "secondary skill: waiting {wait} min (weight {weight})",
    },
    "intake.auto_stop": {
        "de": "Annahmeschluss: heute voraussichtlich keine Bedienung mehr",
        "en": "Intake closed: service today is no longer expected",
    },
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


# -- displays and announcements: spoken text building (pure functions)
def spoken_ticket(number: str, lang: str = "de") -> str:
    """A ticket number as a person says it: 'A012' -> 'A 12' (de), 'A-12' (en); other forms unchanged."""
    number = number.strip().upper()
    if len(number) >= 2 and number[0].isalpha() and number[1:].isdigit():
        return t("announce.ticket", lang, letter=number[0], number=int(number[1:]))
    return number


def spoken_counter(names: dict[str, str] | None, lang: str = "de", fallback: str = "") -> str:
    """The counter's spoken name in ``lang`` from a {de, en} mapping (else German, else ``fallback``)."""
    names = names or {}
    return names.get(lang) or names.get("de") or fallback


def announcement(
    number: str,
    counter: dict[str, str] | None,
    lang: str = "de",
    *,
    recall: bool = False,
    fallback_counter: str = "",
) -> str:
    """The spoken call, e.g. 'Nummer A 12, bitte zu Schalter drei.'"""
    return t(
        "announce.recall" if recall else "announce.call",
        lang,
        ticket=spoken_ticket(number, lang),
        counter=spoken_counter(counter, lang, fallback_counter),
    )
