"""Every user-facing text, from gettext catalogs (tickets, displays, announcements, web, dispenser notices).

The catalogs live in ``waitroom/translations/<locale>/LC_MESSAGES/messages.po`` (compiled
``messages.mo`` next to them) and are managed with Babel: ``make translations`` extracts the keys used in the
code and templates (``babel.cfg``), updates every catalog and compiles it. Message ids are stable keys such as
``ticket.your_number``; the German catalog holds the source texts, every other language falls back to German
key by key. Placeholders use str.format names: ``t("announce.call", "de", ticket="A 12", counter="...")``.

Counts: a text that puts a number next to a noun ("ca. 5 Min.", "5 Menschen warten") is a gettext plural
message (``msgid``/``msgid_plural`` both the key, one ``msgstr[i]`` per form of the catalog's
``Plural-Forms``): ``tn("wait.minutes", 5, "ar", minutes=5)`` picks the form that agrees with 5 (Arabic has
six: 0, 1, 2, 3-10, 11-99, 100-102; Russian and Ukrainian three; German, English and Turkish two). An
interval ("10-20 Min.") takes the form of its upper bound.

Languages: German first; English; Turkish, Arabic (right to left), Ukrainian, Russian and Leichte Sprache
(``de-LS``) for the citizen texts (tickets, displays, announcements, dispenser notices, public pages).
Staff and admin pages are German and English (:data:`STAFF_LANGUAGES`).

The code ``de-LS`` for Leichte Sprache: BCP 47 has no subtag for it; ``de-LS`` keeps the primary subtag ``de``
(screen readers, espeak-ng and hyphenation treat it as German) and is the code
the project brief asked for. Strictly, ``LS`` is the region Lesotho; the private-use form ``de-x-ls`` is
accepted as an alias.
"""

from __future__ import annotations

import copy
import functools
import gettext
import logging
import string
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Every language a citizen can choose (tickets, displays, announcements, public pages). German first.
LANGUAGES: tuple[str, ...] = ("de", "en", "tr", "ar", "uk", "ru", "de-LS")
#: Languages of the staff and admin pages (their texts are translated into these only).
STAFF_LANGUAGES: tuple[str, ...] = ("de", "en")
#: Written right to left.
RTL_LANGUAGES: frozenset[str] = frozenset({"ar"})
#: Each language in its own words (autonyms, shown on language buttons and links; not translated).
LANGUAGE_NAMES: dict[str, str] = {
    "de": "Deutsch",
    "en": "English",
    "tr": "Türkçe",
    "ar": "العربية",
    "uk": "Українська",
    "ru": "Русский",
    "de-LS": "Leichte Sprache",
}
#: Other spellings accepted in configuration files and requests.
ALIASES: dict[str, str] = {
    "de-ls": "de-LS",
    "de_ls": "de-LS",
    "de_LS": "de-LS",
    "de-x-ls": "de-LS",
    "ls": "de-LS",
}
#: The espeak-ng voice that speaks each language (a display can override it per language).
ESPEAK_VOICES: dict[str, str] = {
    "de": "de",
    "en": "en",
    "tr": "tr",
    "ar": "ar",
    "uk": "uk",
    "ru": "ru",
    "de-LS": "de",
}
#: Key prefixes of the citizen texts: these must be translated into every language of LANGUAGES.
CITIZEN_PREFIXES: tuple[str, ...] = (
    "office.",
    "wait.",
    "queue.",
    "ticket.",
    "dispenser.",
    "display.",
    "announce.",
    "web.public.",
    "web.ticket.",
)
#: Single citizen keys outside those prefixes (page frame, login link, errors any visitor can see).
CITIZEN_KEYS: frozenset[str] = frozenset(
    {
        "web.skip",
        "web.nav",
        "web.nav.waiting",
        "web.nav.staff",
        "web.nav.admin",
        "web.nav.stats",
        "web.language",
        "web.login",
        "web.logout",
        "web.username",
        "web.password",
        "web.login_failed",
        "web.logged_out",
        "web.login_required",
        "web.forbidden",
        "web.not_found",
        "web.not_allowed",
        "web.too_many",
        "web.no_state",
        "web.err.csrf",
        "web.service",
        "web.waiting",
        "web.eta",
        "city.alternative",  # printed on the ticket and shown on the public page
        "city.alternative_short",
    }
)

#: The what-if simulator's report and printed tables (``waitroom simulate --lang``) come in every language of
#: LANGUAGES: its own keys and the what-if page's texts it shares (one term, one translation).
REPORT_PREFIXES: tuple[str, ...] = ("sim.",)
REPORT_KEYS: frozenset[str] = frozenset(
    f"web.whatif.{k}"
    for k in (
        *("title", "intro", "summary", "all_services", "rule_set", "mean", "median", "max", "service_level"),
        *("utilisation", "arrived", "abandoned", "turned_away", "per_service", "configured", "chart_waits"),
        *("chart_cdf", "method"),
    )
)

CATALOG_DIR = Path(__file__).with_name("translations")
DOMAIN = "messages"
PO_NEWER_S = 2.0  # a .po file this much newer than its .mo holds changes not compiled yet


def _germanic(n: int) -> int:
    return int(n != 1)


class Catalog(dict[str, str]):
    """A language's texts (key -> text) and its plural messages: ``plurals`` (key -> one text per form) and
    ``plural`` (a count -> the index of its form, from the catalog's Plural-Forms header)."""

    def __init__(
        self,
        texts: Mapping[str, str] | None = None,
        plurals: Mapping[str, tuple[str, ...]] | None = None,
        plural: Callable[[int], int] = _germanic,
    ) -> None:
        super().__init__(texts or {})
        self.plurals: dict[str, tuple[str, ...]] = dict(plurals or {})
        self.plural = plural


def N_(key: str) -> str:
    """Marks a key for extraction where the code builds it at run time (see KEYS_BUILT_AT_RUN_TIME)."""
    return key


def Nn_(key: str) -> str:
    """Marks a plural message's key (see tn) for extraction: ``-k Nn_:1,1`` takes it as msgid and plural."""
    return key


# Keys the code builds at run time (f"web.err.{code}", f"steering.{rule}", dict/tuple literals): listed
# here so that `pybabel extract` sees them and `pybabel update` never drops them as obsolete. Nn_ marks the
# plural messages (tn), also those passed on by key (the ticket layout's bilingual lines).
KEYS_BUILT_AT_RUN_TIME = (
    # the city view (waitroom/city) and the web app's security and job texts
    Nn_("city.alternative"),
    N_("city.alternative_short"),
    N_("city.title"),
    N_("city.pick_service"),
    N_("city.all_services"),
    N_("city.show"),
    N_("city.office"),
    N_("city.wait_today"),
    N_("city.waiting"),
    N_("city.hours_today"),
    N_("city.status"),
    N_("city.open"),
    N_("city.closed"),
    N_("city.closed_today"),
    N_("city.stale_since"),
    N_("city.unknown"),
    N_("city.live"),
    N_("city.intake_stopped"),
    N_("city.not_offered"),
    N_("city.updated"),
    N_("city.refresh"),
    N_("city.note"),
    N_("city.recommend"),
    N_("city.api"),
    N_("city.opens"),
    N_("city.week_hours"),
    N_("city.day.mon"),
    N_("city.day.tue"),
    N_("city.day.wed"),
    N_("city.day.thu"),
    N_("city.day.fri"),
    N_("city.day.sat"),
    N_("city.day.sun"),
    N_("city.unknown_service"),
    N_("web.err.origin"),
    N_("web.err.bad_body"),
    N_("web.err.too_large"),
    N_("web.err.reason"),
    Nn_("web.login_locked"),
    N_("web.password.title"),
    N_("web.password.current"),
    N_("web.password.new"),
    N_("web.password.wrong"),
    N_("web.password.changed"),
    N_("web.whatif.running"),
    N_("web.whatif.queued"),
    N_("web.whatif.failed"),
    N_("web.whatif.unknown_job"),
    Nn_("web.whatif.err.max_days"),
    N_("display.now_calling"),
    N_("display.recall"),
    N_("display.please_go"),
    N_("display.recent"),
    N_("display.waits"),
    Nn_("display.waiting_count"),
    N_("display.intake_closed"),
    N_("display.no_calls"),
    N_("display.offline"),
    N_("display.sound_on"),
    N_("display.number"),
    N_("display.counter"),
    N_("announce.ticket"),
    N_("announce.letters"),
    N_("announce.call"),
    N_("announce.recall"),
    N_("office.closed"),
    N_("queue.waiting"),
    Nn_("wait.minutes"),
    N_("wait.under_minute"),
    N_("wait.unknown"),
    N_("ticket.your_number"),
    Nn_("ticket.ahead"),
    N_("ticket.ahead_none"),
    Nn_("ticket.wait"),
    N_("ticket.wait_short"),
    N_("ticket.wait_unknown"),
    N_("ticket.note"),
    N_("ticket.appointment"),
    N_("ticket.priority"),
    N_("ticket.status_qr"),
    N_("ticket.issued"),
    N_("ticket.notice"),
    N_("dispenser.checkin_unknown"),
    N_("dispenser.checkin_expired"),
    N_("dispenser.checkin_offline"),
    N_("dispenser.checkin_done"),
    N_("dispenser.intake_stopped"),
    N_("dispenser.rate_limited"),
    N_("dispenser.printer_fault"),
    N_("dispenser.no_numbers"),
    N_("web.forbidden"),
    N_("web.not_found"),
    N_("web.not_allowed"),
    N_("web.too_many"),
    N_("web.err.nobody_waiting"),
    N_("web.err.not_serving"),
    N_("web.err.unknown_ticket"),
    N_("web.err.unknown_assistance"),
    N_("web.err.invalid_state"),
    N_("web.err.counter_closed"),
    N_("web.err.slot_unavailable"),
    N_("web.err.appointment_exists"),
    N_("web.err.appointment_cancelled"),
    N_("web.err.duplicate"),
    N_("web.err.bad_request"),
    N_("web.err.forbidden"),
    N_("web.err.unknown_service"),
    N_("web.err.unknown_counter"),
    N_("web.err.unknown_appointment"),
    N_("web.err.appointment_expired"),
    N_("web.err.intake_stopped"),
    N_("web.err.office_closed"),
    N_("web.err.numbers_used_up"),
    N_("web.err.rate_limited"),
    N_("web.err.clock_behind"),
    N_("web.err.reservations_full"),
    N_("web.err.unknown_reservation"),
    N_("web.err.request_voided"),
    N_("web.err.internal"),
    N_("web.ok.called"),
    N_("web.ok.served"),
    N_("web.ok.no_show"),
    N_("web.ok.park"),
    N_("web.ok.transfer"),
    N_("web.ok.open"),
    N_("web.ok.pause"),
    N_("web.ok.close"),
    N_("web.ok.assist_ack"),
    N_("web.ok.assist_resolve"),
    N_("web.ok.intake"),
    N_("web.counter.open"),
    N_("web.counter.paused"),
    N_("web.counter.closed"),
    N_("web.assist.pending"),
    N_("web.assist.acknowledged"),
    N_("web.assist.resolved"),
    N_("web.assist.cancelled"),
    N_("steering.transferred"),
    N_("steering.appointment"),
    N_("steering.appointment_early"),
    N_("steering.appointment_waiting"),
    N_("steering.condition"),
    N_("steering.service_level"),
    N_("steering.behind_priority"),
    N_("steering.behind_appointments"),
    N_("steering.priority"),
    Nn_("steering.fairness"),
    N_("steering.longest"),
    N_("steering.secondary"),
    N_("web.whatif.err.int_range"),
    N_("web.whatif.err.num_range"),
    N_("web.whatif.err.name"),
    N_("web.whatif.err.counter"),
    N_("web.whatif.err.service"),
    N_("web.whatif.err.skills_list"),
    N_("web.whatif.err.no_skills"),
    N_("web.whatif.err.no_variant"),
    N_("web.whatif.err.too_many"),
    N_("web.whatif.err.scenario"),
    N_("web.whatif.err.scenario_invalid"),
    N_("web.whatif.err.too_big"),
    N_("web.whatif.err.rules"),
    N_("web.whatif.err.json"),
    N_("web.whatif.err.key"),
    N_("web.whatif.err.busy"),
    N_("web.whatif.err.too_slow"),
    N_("web.demo.btn.next"),
    N_("web.demo.btn.recall"),
    N_("web.demo.btn.served"),
    N_("web.demo.btn.no_show"),
    N_("web.demo.btn.pause"),
    N_("web.demo.btn.priority"),
    N_("web.demo.btn.lang"),
    N_("web.demo.btn.help"),
)


def normalize(lang: str | None) -> str | None:
    """The canonical code for ``lang`` (aliases resolved), or None when it is not a known language."""
    if not lang:
        return None
    lang = ALIASES.get(lang, lang)
    return lang if lang in LANGUAGES else None


def is_rtl(lang: str | None) -> bool:
    """True for languages written right to left (Arabic)."""
    return lang in RTL_LANGUAGES


def text_dir(lang: str | None) -> str:
    """The HTML ``dir`` value for ``lang``: "rtl" or "ltr"."""
    return "rtl" if is_rtl(lang) else "ltr"


def locale_dir(lang: str) -> str:
    """The gettext locale directory of a language code: "de-LS" -> "de_LS"."""
    return lang.replace("-", "_")


def babel_locale(lang: str) -> str:
    """The CLDR locale for dates and numbers (Flask-Babel): Leichte Sprache formats like German."""
    return "de" if lang == "de-LS" else lang


# -- numbers for people: Babel's formats (CLDR) in the page's language
#: Every number is written in Latin digits, Arabic too: the offices print ticket numbers and show clock times
#: in Latin digits (A012, 10:30), so an Arabic page with Arabic-Indic digits in its counts and minutes would
#: mix two digit systems on one screen. CLDR's Arabic with Latin digits ("latn") writes 1,234.5 and 80%.
#: (CLDR's plain ``ar`` has had Latin digits by default since CLDR 42, its regional locales such as ``ar_EG``
#: Arabic-Indic ones; the setting keeps Latin digits whatever the locale data says.)
NUMBERING_SYSTEM = "latn"


@functools.cache
def _number_locale(lang: str) -> Any:
    from babel import Locale  # imported here: a node process that never formats a number never loads Babel

    return Locale.parse(locale_dir(babel_locale(normalize(lang) or "de")))


def fmt_number(
    value: float, lang: str | None = "de", digits: int | None = None, *, sign: bool = False
) -> str:
    """A number as ``lang`` writes it, for people (never for JSON, CSV, attributes or inputs): German
    "1.234" and "12,5", English "1,234" and "12.5", Russian "1 234,5" (Babel's format_decimal, CLDR).
    ``digits``: exactly that many decimals ("12,0" for 12 with digits=1); None: the locale's own pattern (a
    whole number without decimals, a fraction with up to three). ``sign``: a plus sign before a positive
    value (a difference: "+1,5")."""
    from babel.numbers import format_decimal, get_plus_sign_symbol

    loc = _number_locale(lang or "de")
    if digits is None:
        text = format_decimal(value, locale=loc, numbering_system=NUMBERING_SYSTEM)
    else:
        pattern = copy.copy(loc.decimal_formats[None])  # the locale's grouping, only the decimals fixed
        pattern.frac_prec = (digits, digits)
        text = pattern.apply(value, loc, numbering_system=NUMBERING_SYSTEM)
    if sign and text[:1].isdigit() and any(c in "123456789" for c in text):  # not "+0,0"
        text = get_plus_sign_symbol(loc, numbering_system=NUMBERING_SYSTEM) + text
    return text


def fmt_percent(fraction: float, lang: str | None = "de", digits: int = 0) -> str:
    """A share (0.8) as ``lang`` writes a percentage: German "80 %" (with a no-break space, as CLDR says),
    English "80%", Turkish "%80" (Babel's format_percent)."""
    loc = _number_locale(lang or "de")
    pattern = copy.copy(loc.percent_formats[None])
    pattern.frac_prec = (digits, digits)
    return pattern.apply(fraction, loc, numbering_system=NUMBERING_SYSTEM)


def is_citizen_key(key: str) -> bool:
    return key in CITIZEN_KEYS or key.startswith(CITIZEN_PREFIXES)


def is_report_key(key: str) -> bool:
    return key in REPORT_KEYS or key.startswith(REPORT_PREFIXES)


def languages_for(key: str) -> tuple[str, ...]:
    """The languages ``key`` must be translated into: every language for citizen texts and the simulator's
    report, else staff ones."""
    return LANGUAGES if is_citizen_key(key) or is_report_key(key) else STAFF_LANGUAGES


def placeholders(text: str) -> set[str]:
    """The str.format field names in ``text`` ("{minutes} Min." -> {"minutes"})."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@functools.cache
def catalog(lang: str) -> Catalog:
    """Every translated text of ``lang`` (key -> text, plural messages in ``.plurals``) from the compiled
    catalog, else from the .po file.

    The compiled catalog is read with the standard library's gettext, so a node prints and shows texts
    without loading Babel (about 2 MB of its memory, issue 17). The .po file is read (with Babel) only when
    it was changed after the last compile: newer by more than PO_NEWER_S, since a checkout or a copy writes
    both files in the same moment, the .po one a little later. A plural message counts as translated only
    with every form filled in."""
    folder = CATALOG_DIR / locale_dir(lang) / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    try:
        if mo.exists() and (not po.exists() or po.stat().st_mtime <= mo.stat().st_mtime + PO_NEWER_S):
            with mo.open("rb") as f:
                compiled = gettext.GNUTranslations(f)
            table = compiled._catalog  # the parsed table: {msgid: text, (msgid, form index): text}
            forms: dict[str, dict[int, str]] = {}
            for k, v in table.items():
                if isinstance(k, tuple):  # pybabel compile writes an untranslated form as its msgid: the key
                    forms.setdefault(k[0], {})[k[1]] = "" if v == k[0] else v
            # pybabel compile leaves fuzzy and untranslated entries out; "" is the catalog's header
            return Catalog(
                {k: v for k, v in table.items() if isinstance(k, str) and k and v},
                {k: tuple(f[i] for i in range(len(f))) for k, f in forms.items() if _complete(f)},
                compiled.plural,
            )
        from babel.messages.pofile import read_po

        with po.open("rb") as f:
            cat = read_po(f, locale=locale_dir(lang))
    except FileNotFoundError:
        log.error("no translation catalog for %s in %s", lang, CATALOG_DIR)
        return Catalog()
    texts, plurals = {}, {}
    for m in cat:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple | list):
            if isinstance(m.string, tuple | list) and _complete(dict(enumerate(m.string))):
                plurals[str(m.id[0])] = tuple(str(x) for x in m.string)
        elif m.string:
            texts[str(m.id)] = str(m.string)
    return Catalog(texts, plurals, gettext.c2py(cat.plural_expr))


def _complete(forms: Mapping[int, str]) -> bool:
    return bool(forms) and set(forms) == set(range(len(forms))) and all(forms.values())


def _fill(key: str, code: str, text: str, values: Mapping[str, Any], german: Any) -> str:
    """``text`` with its placeholders filled in; the German text when the translation does not fit."""
    if not values:
        return text
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        log.error("translation %r (%s) does not fit the values %s", key, code, sorted(values))
        return str(german()).format(**values)


def t(key: str, lang: str | None = "de", **values: Any) -> str:
    """The text for ``key`` in ``lang`` (German when it has none), with placeholders filled in."""
    code = normalize(lang) or "de"
    text = catalog(code).get(key) if code != "de" else None
    if text is None:
        text = catalog("de").get(key)
        if text is None:
            log.error("missing translation key %r", key)
            return key
    return _fill(key, code, text, values, lambda: catalog("de")[key])


def forms(key: str, lang: str | None = "de") -> tuple[tuple[str, ...], Callable[[int], int]]:
    """The forms of the plural message ``key`` in ``lang`` and the function that picks one for a count
    (German's when ``lang`` has no complete translation of ``key``); ((), ...) for an unknown key."""
    code = normalize(lang) or "de"
    cat = catalog(code)
    found = cat.plurals.get(key)
    if found is None:
        cat = catalog("de")
        found = cat.plurals.get(key, ())
    return found, cat.plural


def tn(key: str, n: int, lang: str | None = "de", /, **values: Any) -> str:
    """The text for ``key`` whose noun agrees with the count ``n`` (ngettext with keyed messages): the form
    the catalog's Plural-Forms picks for ``n``, placeholders filled in. ``tn("wait.minutes", 5, "ar",
    minutes=5)`` -> "حوالي 5 دقائق". An interval passes its upper bound as ``n``."""
    code = normalize(lang) or "de"
    texts, plural = forms(key, code)
    if not texts:
        log.error("missing plural translation key %r", key)
        return key
    try:
        count = int(n)
    except (TypeError, ValueError):
        log.error("plural %r (%s) needs a whole number, not %r", key, code, n)
        count = 100  # the general form in every catalog
    index = plural(count)
    text = texts[index] if 0 <= index < len(texts) else texts[-1]

    def german() -> str:
        de, de_plural = forms(key, "de")
        return de[min(de_plural(count), len(de) - 1)]

    return _fill(key, code, text, values, german)


PLURAL_TABLE_SIZE = 200


def plural_table(plural: Callable[[int], int]) -> list[int]:
    """The form index of every count 0..199, for a browser that picks forms itself (the call display's
    page): a count n >= 200 takes the entry of 100 + n % 100. This holds for every Plural-Forms rule that
    looks at n only through n % 10, n % 100 and comparisons with numbers below 200 (the rules of all seven
    catalogs; tests/test_i18n.py checks them up to 10,000)."""
    return [plural(n) for n in range(PLURAL_TABLE_SIZE)]


def has(key: str, lang: str = "de") -> bool:
    """True when ``lang`` has its own text for ``key`` (no German fallback)."""
    cat = catalog(normalize(lang) or "de")
    return key in cat or key in cat.plurals


def both(key: str, **values: Any) -> dict[str, str]:
    """The text in every language, e.g. for a JSON API."""
    return {lang: t(key, lang, **values) for lang in LANGUAGES}


class _Texts(Mapping[str, dict[str, str]]):
    """``TEXTS[key][lang]``: the catalogs as the table they replace (read-only; JSON, web display)."""

    def __getitem__(self, key: str) -> dict[str, str]:
        if key not in catalog("de"):
            raise KeyError(key)
        return {lang: t(key, lang) for lang in LANGUAGES}

    def __iter__(self) -> Iterator[str]:
        return iter(catalog("de"))

    def __len__(self) -> int:
        return len(catalog("de"))


TEXTS: Mapping[str, dict[str, str]] = _Texts()


# -- displays and announcements: spoken text building (pure functions)
def wait_minutes(minutes: int, lang: str | None = "de", *, formatted: bool = False) -> str:
    """An expected wait in words: "ca. 12 Min.", and "weniger als 1 Min." for one that rounds to 0 (not
    "ca. 0 Min." for the first in line, or a service whose counters are free). ``formatted``: the minutes
    written as the language writes numbers ("ca. 1.234 Min.", fmt_number: loads Babel, for the web pages;
    tickets and displays show waits far below a thousand minutes and keep their processes small)."""
    if minutes <= 0:
        return t("wait.under_minute", lang)
    shown = fmt_number(minutes, lang) if formatted else minutes
    return tn("wait.minutes", minutes, lang, minutes=shown)


def wait_at_least(minutes: int, lang: str | None = "de", *, formatted: bool = False) -> str:
    """A lower bound of a wait in words: "mindestens 45 Min." (a ticket beyond its service's queue page
    waits at least as long as the page's last ticket; ``formatted`` as in ``wait_minutes``)."""
    shown = fmt_number(minutes, lang) if formatted else minutes
    return tn("wait.at_least", minutes, lang, minutes=shown)


def alternative(office: str, minutes: int, lang: str | None = "de", *, formatted: bool = False) -> str:
    """The city's advice in words: "Kürzer warten: Bürgerbüro Süd: ca. 10 Min.", and "...: weniger als 1 Min."
    for a wait that rounds to 0 (as ``wait_minutes``, also ``formatted``)."""
    if minutes <= 0:
        return t("city.alternative_short", lang, office=office)
    shown = fmt_number(minutes, lang) if formatted else minutes
    return tn("city.alternative", minutes, lang, office=office, minutes=shown)


def spoken_letter(letter: str, lang: str = "de") -> str:
    """The name of a ticket's letter A-Z as the language's voice should say it: 'B' -> 'Бэ' (ru). The
    catalog's ``announce.letters`` holds the 26 names; a voice that reads Latin letters well keeps them
    (de, en, tr; espeak-ng's ru and uk voices would switch to English: "эй", "би")."""
    names = t("announce.letters", lang).split()
    if len(letter) == 1 and "A" <= letter <= "Z" and len(names) == 26:
        return names[ord(letter) - ord("A")]
    return letter


def spoken_ticket(number: str, lang: str = "de") -> str:
    """A ticket number as a person says it: 'A012' -> 'A 12' (de), 'A-12' (en), 'А 12' (ru); other forms
    unchanged."""
    number = number.strip().upper()
    if len(number) >= 2 and number[0].isalpha() and number[1:].isdigit():
        return t("announce.ticket", lang, letter=spoken_letter(number[0], lang), number=int(number[1:]))
    return number


def spoken_counter(names: Mapping[str, str] | None, lang: str = "de", fallback: str = "") -> str:
    """The counter's spoken name in ``lang`` from a {de, en, ...} mapping (else German, else ``fallback``)."""
    names = names or {}
    code = normalize(lang) or "de"
    return names.get(code) or names.get("de") or fallback


def announcement(
    number: str,
    counter: Mapping[str, str] | None,
    lang: str = "de",
    *,
    recall: bool = False,
    fallback_counter: str = "",
) -> str:
    """The spoken call, e.g. 'Nummer A 12, bitte zu Schalter drei.'"""
    key = "announce.recall" if recall else "announce.call"
    return t(
        key,
        lang,
        ticket=spoken_ticket(number, lang),
        counter=spoken_counter(counter, lang, fallback_counter),
    )
