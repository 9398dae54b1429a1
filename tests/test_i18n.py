"""The gettext catalogs: complete for every language they promise, placeholders match, .mo files fresh,
every key the code uses is in the German catalog and extraction sees every key (so `pybabel update` never
drops one)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import string
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from waitroom import i18n

ROOT = Path(__file__).resolve().parents[1]


def po(lang: str) -> Catalog:
    path = i18n.CATALOG_DIR / i18n.locale_dir(lang) / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return read_po(f, locale=i18n.locale_dir(lang))


def key_of(m) -> str:  # type: ignore[no-untyped-def]
    """A message's key: a plural message's msgid and msgid_plural are both the key."""
    return str(m.id[0]) if isinstance(m.id, tuple | list) else str(m.id)


def forms_of(m) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    """A message's texts: one, or one per plural form."""
    return tuple(str(x) for x in m.string) if isinstance(m.string, tuple | list) else (str(m.string),)


GERMAN_FORMS = {key_of(m): forms_of(m) for m in po("de") if m.id}
GERMAN = {k: v[-1] for k, v in GERMAN_FORMS.items()}  # a plural message by its general form
PLURAL_KEYS = {key_of(m) for m in po("de") if m.id and isinstance(m.id, tuple | list)}
COUNTS = (0, 1, 2, 3, 5, 11, 21, 100)


def test_languages_german_first_and_rtl() -> None:
    assert i18n.LANGUAGES[0] == "de"
    assert set(i18n.LANGUAGES) == {"de", "en", "tr", "ar", "uk", "ru", "de-LS"}
    assert i18n.is_rtl("ar") and not i18n.is_rtl("de") and not i18n.is_rtl("tr")
    assert i18n.text_dir("ar") == "rtl" and i18n.text_dir("uk") == "ltr"
    assert set(i18n.LANGUAGE_NAMES) == set(i18n.LANGUAGES) == set(i18n.ESPEAK_VOICES)
    assert i18n.normalize("de-x-ls") == i18n.normalize("de_LS") == "de-LS"
    assert i18n.normalize("fr") is None and i18n.normalize("") is None


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_catalog_complete_for_its_scope(lang: str) -> None:
    cat = po(lang)
    strings = {key_of(m): forms_of(m) for m in cat if m.id}
    assert set(strings) == set(GERMAN), "every catalog holds every key (run make translations)"
    plural = {key_of(m) for m in cat if m.id and isinstance(m.id, tuple | list)}
    assert plural == PLURAL_KEYS, "a plural message is one in every catalog"
    missing = [k for k in GERMAN if lang in i18n.languages_for(k) and not all(x.strip() for x in strings[k])]
    assert missing == [], f"{lang}: untranslated citizen texts {missing}"
    assert [m.id for m in cat if m.id and m.fuzzy] == []
    for message, errors in cat.check():
        pytest.fail(f"{lang} {message.id}: {errors}")


@pytest.mark.parametrize("lang", [x for x in i18n.LANGUAGES if x != "de"])
def test_placeholders_match_german(lang: str) -> None:
    """Every text has the German placeholders. A plural form may leave one out only when it stands for a
    single count (Arabic "حوالي دقيقتين" says 2 without the digit)."""
    cat = po(lang)
    import gettext

    plural = gettext.c2py(cat.plural_expr)
    for m in cat:
        if not m.id or not any(forms_of(m)):
            continue
        want = set().union(*(i18n.placeholders(x) for x in GERMAN_FORMS[key_of(m)]))
        for i, text in enumerate(forms_of(m)):
            got = i18n.placeholders(text)
            if got != want and isinstance(m.id, tuple | list) and got < want:
                counts = [n for n in range(1000) if plural(n) == i]
                assert len(counts) == 1, f"{lang} {key_of(m)}[{i}] {text!r} leaves out a number: {counts[:5]}"
            else:
                assert got == want, f"{lang} {key_of(m)}: {text!r} needs {want}"


def test_citizen_texts_really_translated() -> None:
    """A catalog that copies the German text is not a translation (short names like "Pause" may be equal)."""
    for lang in ("en", "tr", "ar", "uk", "ru"):
        strings = {key_of(m): forms_of(m)[-1] for m in po(lang) if m.id}
        same = [
            k
            for k in GERMAN
            if i18n.is_citizen_key(k)
            and k != "announce.letters"  # Latin letters where the language's voice reads them well
            and strings[k] == GERMAN[k]
            and len(re.sub(r"\{\w+\}", "", GERMAN[k])) > 12
        ]
        assert same == [], f"{lang} copies German for {same}"
    script = {"ar": "\u0600-\u06ff", "uk": "\u0400-\u04ff", "ru": "\u0400-\u04ff"}
    for lang, block in script.items():
        text = i18n.t("ticket.your_number", lang)
        assert re.search(f"[{block}]", text), (lang, text)


# The words a citizen meets again and again (on the ticket, at the dispenser, on the phone): each German term
# has one translation per language, so "Buchungscode" on the ticket page is the code the dispenser asks for.
# German term (a pattern over the German text) -> per language a pattern every translation must contain.
GLOSSARY: dict[str, dict[str, str]] = {
    "Buchungscode": {
        "en": "booking code",
        "tr": "randevu kod",
        "ar": "رمز الحجز",
        "uk": "коду? запису",
        "ru": "кода? записи",
        "de-LS": "Code",
    },
    "Empfang": {
        "en": "at reception",
        "tr": "danışma",
        "ar": "الاستقبال",
        "uk": "на рецепцію",
        "ru": "к администратору",
        "de-LS": "Empfang",
    },
    "Termin": {"en": "appointment", "tr": "randevu", "ar": "موعد", "uk": "запис", "ru": "запис"},
    "Schalter": {
        "en": "counter",
        "tr": "gişe",
        "ar": "الشباك",
        "uk": "вікно",
        "ru": "окно",
        "de-LS": "Schalter",
    },
    "Check-in|einchecken": {
        "en": "check in|check-in",
        "tr": "randevu giriş",
        "ar": "تسجيل الوصول",
        "uk": "реєстрац|зареєстр",
        "ru": "регистрац|зарегистр",
        "de-LS": "Ich bin da|Ihren Termin",
    },
}


@pytest.mark.parametrize("lang", [x for x in i18n.LANGUAGES if x != "de"])
def test_citizen_terms_are_the_same_in_every_text(lang: str) -> None:
    strings = {key_of(m): forms_of(m) for m in po(lang) if m.id}
    wrong = []
    for term, by_lang in GLOSSARY.items():
        if lang not in by_lang:  # Leichte Sprache may leave the appointment out where it says nothing
            continue
        for key, german in GERMAN_FORMS.items():
            if not i18n.is_citizen_key(key) or not any(re.search(term, x, re.IGNORECASE) for x in german):
                continue
            wrong += [
                (key, text) for text in strings[key] if not re.search(by_lang[lang], text, re.IGNORECASE)
            ]
    assert wrong == [], f"{lang}: a term is translated otherwise than in GLOSSARY: {wrong}"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_check_in_is_not_the_staff_login(lang: str) -> None:
    """A citizen with an appointment checks in; "Anmelden" / "Giriş yap" is the staff login on the same page
    (and "Anmeldung" is a service of a Bürgerbüro: registering an address)."""
    login = {i18n.t(k, lang).casefold() for k in ("web.login", "web.nav.staff")}
    for key in ("web.ticket.checkin_button", "web.ticket.checkin_title", "web.public.checkin_link"):
        assert i18n.t(key, lang).casefold() not in login, (lang, key)
    if lang.startswith("de"):
        checkin = [k for k in GERMAN if "checkin" in k and i18n.is_citizen_key(k)] + ["web.ticket.expires"]
        assert [k for k in checkin if re.search(r"\banmeld|melden sie sich an", i18n.t(k, lang), re.I)] == []


def test_expected_wait_says_approximately_once() -> None:
    """The ticket page puts the wait ("ca. 5 Min.") after its own label: the label must not say it too."""
    for lang in i18n.LANGUAGES:
        approx = i18n.tn("wait.minutes", 5, lang, minutes=5).split()[0]
        text = i18n.t("web.ticket.eta", lang, wait=i18n.wait_minutes(5, lang))
        assert text.count(approx) == 1, (lang, text)


# The staff and admin pages (German, the staff's language, and English): one word per thing, plain German
# without English loan words or internal names where a German word exists. A pattern a staff text must not
# contain -> the word to use instead. (The city portal is public and keeps its own "Dienstleistung".)
STAFF_WORDING: dict[str, dict[str, str]] = {
    "de": {
        r"Dienstleistung": "Anliegen",
        r"Controller": "Steuerung",
        r"\b[Ll]ive\b|Live-": "aktuell, laufend",
        r"Health|Servicelevel": "Zustand, Zielwartezeit",
        r"\(MQTT\)": "(nothing: staff need not know the protocol)",
        r"\bHilferuf\b(?!-)": "Hilfeanfrage (the request; the button is the Hilferuf-Taste)",
        r"Abweisung|Abgewiesene Tastendr": "Ablehnung, abgelehnt",
        r"Schaltertaster": "Schaltertasten",
        r"\bTickets?\b": "Nummer, Bon (the paper)",
        r"erneut versuchen": "noch einmal versuchen",
        r"Regelsatz": "Regelwerk",
        r"„(day|to)“": "the form's field names „Tag“, „bis“",
        r"Zurückrufen": "Wieder aufrufen (a parked number; zurückrufen is a telephone call)",
        r"Durchsagen in der Warteschlange": "anstehende Durchsagen (the Warteschlange is the citizens')",
        r"Offline-Speicher": "Speicher für Offline-Nummern",
    },
    "en": {
        r"(?i)\bnodes?\b(?!-)": "device",
        r"\bhelp request": "assistance request",
        r"^Bad request": "Invalid request",
    },
}


@pytest.mark.parametrize("lang", sorted(STAFF_WORDING))
def test_staff_texts_use_one_word_per_thing(lang: str) -> None:
    wrong = []
    for m in po(lang):
        key = key_of(m)
        if not m.id or i18n.is_citizen_key(key) or key.startswith("city."):
            continue
        for text in forms_of(m):
            text = re.sub(r"\{\w+\}", "", text)
            wrong += [(key, text, use) for bad, use in STAFF_WORDING[lang].items() if re.search(bad, text)]
    assert wrong == [], f"{lang}: staff texts with another word than the pages' one: {wrong}"
    # column headers of the statistics start with a capital letter like their neighbours
    assert all(i18n.t(f"web.stats.appt_{k}", lang)[0].isupper() for k in ("booked", "kept", "missed"))


# Leichte Sprache (Netzwerk Leichte Sprache, Forschungsstelle Leichte Sprache): no abbreviations, long words
# split with the Mediopunkt (not a hyphen), short sentences, no gender slashes ("Nächste/r")
ABBREVIATIONS = re.compile(r"\b(ca|Min|Std|Nr|z\.\s?B|bzw|usw|ggf|evtl|inkl|d\.\s?h|u\.\s?a)\.")
HYPHENATED_WORD = re.compile(r"\b[A-Za-zÄÖÜäöüß]{2,}-[A-Za-zÄÖÜäöüß]{2,}")


def test_easy_german_citizen_texts_follow_its_rules() -> None:
    strings = {key_of(m): forms_of(m) for m in po("de-LS") if m.id}
    for key, forms in strings.items():
        if not i18n.is_citizen_key(key) or key == "announce.letters":
            continue
        for text in forms:
            assert not ABBREVIATIONS.search(text), (key, text)
            assert not HYPHENATED_WORD.search(text), f"{key}: {text!r} (a long word takes the Mediopunkt ·)"
            assert "/" not in text, (key, text)
            for sentence in re.split(r"[.?!:]\s", text):
                assert len(sentence.split()) <= 12, f"{key}: {sentence!r} is a long sentence"
    assert [k for k, v in GERMAN.items() if i18n.is_citizen_key(k) and re.search(r"\w/\w\b", v)] == []


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_compiled_catalogs_are_fresh(lang: str) -> None:
    folder = i18n.CATALOG_DIR / i18n.locale_dir(lang) / "LC_MESSAGES"
    with (folder / "messages.mo").open("rb") as f:
        stored = {str(m.id): str(m.string) for m in read_mo(f) if m.id}
    buf = io.BytesIO()
    write_mo(buf, po(lang))
    buf.seek(0)
    fresh = {str(m.id): str(m.string) for m in read_mo(buf) if m.id}
    assert stored == fresh, f"{folder}/messages.mo is stale: run make translations"


def test_catalog_reads_the_compiled_file_without_babel(tmp_path: Path) -> None:
    """A node reads the .mo with the standard library's gettext (no Babel in its memory) and gets exactly the
    texts of the .po file; a checkout writes the .po a moment after the .mo, which must not count as newer."""
    shutil.copytree(i18n.CATALOG_DIR, tmp_path / "translations")
    for mo in (tmp_path / "translations").glob("*/LC_MESSAGES/messages.mo"):
        t = mo.stat().st_mtime
        os.utime(mo.with_suffix(".po"), (t + 0.5, t + 0.5))
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from waitroom import i18n\n"
        "i18n.CATALOG_DIR = Path(sys.argv[1])\n"
        "out = {lang: [i18n.catalog(lang), i18n.catalog(lang).plurals,\n"
        "              [i18n.catalog(lang).plural(n) for n in range(300)]] for lang in i18n.LANGUAGES}\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] == 'babel'), out]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "translations")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    babel_modules, catalogs = json.loads(run.stdout)
    assert babel_modules == []
    import gettext

    for lang in i18n.LANGUAGES:
        cat = po(lang)
        texts, plurals, indexes = catalogs[lang]
        want = {str(m.id): str(m.string) for m in cat if isinstance(m.id, str) and m.id and m.string}
        assert texts == want, lang
        # a plural message counts when every form is filled in (staff texts stay empty in citizen languages)
        want_plurals = {
            key_of(m): list(forms_of(m)) for m in cat if isinstance(m.id, tuple | list) and all(forms_of(m))
        }
        assert plurals == want_plurals, lang
        assert set(plurals) == {k for k in PLURAL_KEYS if lang in i18n.languages_for(k)}, lang
        assert indexes == [gettext.c2py(cat.plural_expr)(n) for n in range(300)], lang


def test_catalog_takes_a_po_file_edited_after_the_compile(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    source = i18n.CATALOG_DIR / "de" / "LC_MESSAGES"
    for name in ("messages.mo", "messages.po"):
        (folder / name).write_bytes((source / name).read_bytes())
    mo = (folder / "messages.mo").stat().st_mtime
    po_file = folder / "messages.po"
    po_file.write_text(
        po_file.read_text(encoding="utf-8").replace('"Ihre Nummer"', '"Ihre Wartenummer"'), encoding="utf-8"
    )
    monkeypatch.setattr(i18n, "CATALOG_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        os.utime(po_file, (mo + 1, mo + 1))  # within the moment of a checkout: the compiled file counts
        assert i18n.catalog("de")["ticket.your_number"] == GERMAN["ticket.your_number"]
        i18n.catalog.cache_clear()
        os.utime(po_file, (mo + 60, mo + 60))  # edited a minute after the compile: the .po file counts
        assert i18n.catalog("de")["ticket.your_number"] == "Ihre Wartenummer"
    finally:
        i18n.catalog.cache_clear()


def test_extraction_sees_exactly_the_german_keys() -> None:
    """Every key used in code/templates has a German text, and `pybabel update` keeps every German key."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"t": None, "tr": None, "both": None, "N_": None, "tn": (1, 1), "trn": (1, 1), "Nn_": (1, 1)}
    messages = [
        msg
        for _file, _line, msg, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    ]
    found = {msg if isinstance(msg, str) else msg[0] for msg in messages}
    assert sorted(found - set(GERMAN)) == [], "keys used in code without a German text"
    assert sorted(set(GERMAN) - found) == [], "keys extraction cannot see: add them to KEYS_BUILT_AT_RUN_TIME"
    plural = {msg[0] for msg in messages if not isinstance(msg, str)}
    assert plural == PLURAL_KEYS, "a key is a plural message (tn, Nn_) everywhere or nowhere"
    assert {"wait.minutes", "ticket.wait", "ticket.ahead", "display.waiting_count"} <= PLURAL_KEYS


def test_every_language_has_cldr_formats_for_flask_babel() -> None:
    import datetime as dt

    from babel import Locale
    from babel.dates import format_datetime

    when = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
    for lang in i18n.LANGUAGES:
        loc = Locale.parse(i18n.babel_locale(lang))
        assert (loc.text_direction == "rtl") == i18n.is_rtl(lang)
        assert format_datetime(when, "short", tzinfo="Europe/Berlin", locale=loc)
    assert (
        format_datetime(when, "dd.MM.yyyy HH:mm", tzinfo="Europe/Berlin", locale="de") == "05.01.2026 08:00"
    )


def test_t_fills_in_and_falls_back_to_german(caplog: pytest.LogCaptureFixture) -> None:
    assert i18n.tn("wait.minutes", 7, "de", minutes=7) == "ca. 7 Min."
    assert i18n.tn("wait.minutes", 7, "de-LS", minutes=7) == "ungefähr 7 Minuten"
    assert i18n.tn("wait.minutes", 7, "ar", minutes=7) == "حوالي 7 دقائق"
    assert i18n.t("web.staff.pick", "tr") == "Schalter wählen"  # staff text: German, not the key
    assert i18n.t("ticket.note", "fr") == "Bitte achten Sie auf die Anzeige"  # unknown language: German
    # the callers in steering.py and predict.py
    assert i18n.t("steering.longest", "de", wait=4) == "am längsten wartend (4 Min.)"
    assert i18n.t("intake.auto_stop", "de").startswith("Annahmeschluss")
    with caplog.at_level(logging.ERROR, logger="waitroom.i18n"):
        assert i18n.t("no.such.key", "de") == "no.such.key"
    assert "no.such.key" in caplog.text
    assert i18n.TEXTS["display.recent"]["uk"] == "Останні виклики"
    assert set(i18n.both("ticket.note")) == set(i18n.LANGUAGES)


def test_announcement_in_every_language_names_ticket_and_counter() -> None:
    for lang in i18n.LANGUAGES:
        text = i18n.announcement("A012", {"de": "Schalter drei", "tr": "üç numaralı gişe"}, lang)
        assert "12" in text, (lang, text)
        assert ("üç numaralı gişe" if lang == "tr" else "Schalter drei") in text, (lang, text)


def test_ticket_letters_are_spoken_by_the_voice_of_the_language() -> None:
    """espeak-ng's Russian and Ukrainian voices read a Latin "A 12" in English ("эй двенадцать"); the
    catalog names the letters in the language ("А", "Бэ"). Arabic keeps the English names (the letters
    Arabic speakers know; Arabic has no P: "بي" would be B and P alike)."""
    for lang in i18n.LANGUAGES:
        names = i18n.t("announce.letters", lang).split()
        assert len(names) == len(set(names)) == 26, (lang, names)
    assert i18n.spoken_ticket("B007", "ru") == "Бэ 7" and i18n.spoken_ticket("A012", "uk") == "А 12"
    assert i18n.spoken_ticket("A012", "de") == "A 12" and i18n.spoken_ticket("A012", "en") == "A-12"
    for lang in [x for x in i18n.LANGUAGES if x != "ar"]:
        calls = " ".join(i18n.spoken_ticket(f"{letter}012", lang) + "." for letter in string.ascii_uppercase)
        voice = i18n.ESPEAK_VOICES[lang]
        phonemes = subprocess.run(
            ["espeak-ng", "-q", "-x", "-v", voice, calls], capture_output=True, text=True, check=True
        ).stdout
        assert phonemes.count("\n") >= 26 and "(en)" not in phonemes, (lang, phonemes)


def test_office_config_rejects_unknown_language_codes_naming_the_key(tmp_path):
    import yaml

    from waitroom import config
    from waitroom.errors import ConfigError

    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["display"] = {**data.get("display", {}), "languages": ["de", "tr"], "second_language": "ar"}
    disp = next(n for n in data["nodes"] if n["role"] == "dispenser")
    disp["options"] = {**disp.get("options", {}), "languages": ["de", "tr", "ar", "uk", "ru", "de-LS", "en"]}
    data["services"][0]["name"] = {
        "de": "Reisepass",
        "tr": "Pasaport",
        "ar": "جواز السفر",
        "de-LS": "Reise·pass",
    }
    good = config.parse(data)
    assert good.services[0].name.get("ar") == "جواز السفر" and good.services[0].name.get("uk") == "Reisepass"
    data["display"]["languages"] = ["de", "fr"]
    data["display"]["second_language"] = "klingon"
    disp["options"]["languages"] = ["de", "xx"]
    data["services"][0]["name"]["fr"] = "Passeport"
    with pytest.raises(ConfigError) as exc:
        config.parse(data)
    text = str(exc.value)
    assert "services[0].name.fr: unknown key" in text  # schema stage stops first
    del data["services"][0]["name"]["fr"]
    with pytest.raises(ConfigError) as exc:
        config.parse(data)
    text = str(exc.value)
    i = data["nodes"].index(disp)
    for key in (
        "display.languages[1]: unknown language 'fr'",
        "display.second_language: unknown language",
        f"nodes[{i}].options.languages[1]: unknown language 'xx'",
    ):
        assert key in text, text


# The forms a reader expects, per count of COUNTS (0, 1, 2, 3, 5, 11, 21, 100).
WAIT_FORMS = {
    # Modern Standard Arabic: 0 and 11+ singular (tamyiz), 1 and 2 by the noun alone (دقيقتين: genitive after
    # حوالي), 3-10 the plural دقائق, 100 singular
    "ar": [
        "حوالي 0 دقيقة",
        "حوالي دقيقة واحدة",
        "حوالي دقيقتين",
        "حوالي 3 دقائق",
        "حوالي 5 دقائق",
        "حوالي 11 دقيقة",
        "حوالي 21 دقيقة",
        "حوالي 100 دقيقة",
    ],
    # the abbreviations мин / хв are the usual short form and agree with every count
    "ru": [f"ок. {n} мин" for n in COUNTS],
    "uk": [f"бл. {n} хв" for n in COUNTS],
    "de-LS": [f"ungefähr {n} {'Minute' if n == 1 else 'Minuten'}" for n in COUNTS],
    "de": [f"ca. {n} Min." for n in COUNTS],
    "en": [f"approx. {n} min" for n in COUNTS],
    "tr": [f"yaklaşık {n} dk." for n in COUNTS],
}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_a_count_takes_the_form_that_agrees_with_it(lang: str) -> None:
    assert [i18n.tn("wait.minutes", n, lang, minutes=n) for n in COUNTS] == WAIT_FORMS[lang]
    for key in sorted(PLURAL_KEYS):  # every form of every count is a filled-in text with its number or word
        for n in COUNTS:
            values = {name: n for name in set().union(*map(i18n.placeholders, GERMAN_FORMS[key]))}
            text = i18n.tn(key, n, lang, **values | {"office": "Bürgerbüro Süd"})
            assert text != key and "{" not in text, (lang, key, n, text)
    forms, plural = i18n.forms("wait.minutes", lang)
    assert len({plural(n) for n in range(1000)}) == len(forms)  # every form is used by some count


def test_plural_forms_in_arabic_russian_ukrainian_and_easy_german() -> None:
    ar = {n: i18n.tn("ticket.wait", n, "ar", minutes=n) for n in (1, 2, 3, 10, 11, 99, 100, 101, 102, 103)}
    assert ar[1] == "مدة الانتظار: حوالي دقيقة واحدة"
    assert ar[2] == "مدة الانتظار: حوالي دقيقتين"
    assert ar[3] == "مدة الانتظار: حوالي 3 دقائق" and ar[10] == "مدة الانتظار: حوالي 10 دقائق"
    assert ar[11] == "مدة الانتظار: حوالي 11 دقيقة" and ar[99] == "مدة الانتظار: حوالي 99 دقيقة"
    assert (
        ar[100] == ar[100] == "مدة الانتظار: حوالي 100 دقيقة" and ar[102] == "مدة الانتظار: حوالي 102 دقيقة"
    )
    assert ar[103] == "مدة الانتظار: حوالي 103 دقائق"  # n % 100 counts: 103 like 3
    assert i18n.tn("city.alternative", 2, "ar", office="س", minutes=2) == "انتظار أقصر: س: حوالي دقيقتين"
    assert i18n.tn("ticket.ahead", 1, "de-LS", count=1) == "Vor Ihnen wartet 1 Mensch."
    assert i18n.tn("ticket.ahead", 21, "de-LS", count=21) == "Vor Ihnen warten 21 Menschen."
    assert i18n.tn("display.waiting_count", 1, "de-LS", count=1) == "1 Mensch wartet"
    assert i18n.tn("display.waiting_count", 0, "de-LS", count=0) == "0 Menschen warten"
    # Russian and Ukrainian pick among their three forms (1, 21 / 2-4, 22 / 0, 5-20, 11, 100)
    ru_forms, ru = i18n.forms("ticket.wait", "ru")
    assert [ru(n) for n in (1, 21, 2, 4, 22, 0, 5, 11, 12, 100, 111)] == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert len(ru_forms) == 3 and len(i18n.forms("ticket.wait", "uk")[0]) == 3
    assert i18n.tn("ticket.wait", 21, "uk", minutes=21) == "Час очікування: бл. 21 хв"


def test_plural_fallbacks_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A language without the message uses German's forms and German's rule; an unknown key or a count that
    is no number is logged and still gives a text."""
    from waitroom.i18n import Catalog

    german = i18n.catalog("de")
    i18n.catalog.cache_clear()
    try:
        ar = i18n.catalog("ar")
        saved = dict(ar.plurals)
        ar.plurals.pop("wait.minutes")
        assert i18n.tn("wait.minutes", 2, "ar", minutes=2) == "ca. 2 Min."
        assert i18n.forms("wait.minutes", "ar")[1](2) == german.plural(2) == 1
        ar.plurals.update(saved)
    finally:
        i18n.catalog.cache_clear()
    assert isinstance(i18n.catalog("ar"), Catalog)
    with caplog.at_level(logging.ERROR, logger="waitroom.i18n"):
        assert i18n.tn("no.such.plural", 3, "ar") == "no.such.plural"
        assert i18n.tn("wait.minutes", "x", "ru", minutes="x") == "ок. x мин"  # type: ignore[arg-type]
    assert "no.such.plural" in caplog.text and "needs a whole number" in caplog.text
    assert i18n.has("wait.minutes", "ar") and not i18n.has("web.staff.pick", "ar")


def test_plural_table_for_the_browser_holds_for_every_count() -> None:
    """The call display's page picks forms from a table of 0..199 (100 + n % 100 beyond): the same form as
    the catalog's rule for every count up to 10,000 in every language."""
    for lang in i18n.LANGUAGES:
        plural = i18n.catalog(lang).plural
        table = i18n.plural_table(plural)
        for n in range(10_000):
            assert table[n if n < 200 else 100 + n % 100] == plural(n), (lang, n)


def test_a_po_file_edited_after_the_compile_gives_its_plural_forms(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "ar" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    source = i18n.CATALOG_DIR / "ar" / "LC_MESSAGES"
    for name in ("messages.mo", "messages.po"):
        (folder / name).write_bytes((source / name).read_bytes())
    po_file = folder / "messages.po"
    po_file.write_text(
        po_file.read_text(encoding="utf-8").replace('"حوالي دقيقتين"', '"قرابة دقيقتين"'), encoding="utf-8"
    )
    mo = (folder / "messages.mo").stat().st_mtime
    os.utime(po_file, (mo + 60, mo + 60))
    monkeypatch.setattr(i18n, "CATALOG_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        assert i18n.tn("wait.minutes", 2, "ar", minutes=2) == "قرابة دقيقتين"
        assert i18n.tn("wait.minutes", 5, "ar", minutes=5) == "حوالي 5 دقائق"
    finally:
        i18n.catalog.cache_clear()


# -- every count agrees with its words: the catalogs as real gettext reads them
AGREEMENT_COUNTS = (0, 1, 2, 3, 5, 11, 21, 101)
# the form each count takes, by the grammar of the language (CLDR categories, in gettext's order)
FORM_OF_COUNT = {
    "de": {0: 1, 1: 0, 2: 1, 3: 1, 5: 1, 11: 1, 21: 1, 101: 1},  # one, other
    "ru": {0: 2, 1: 0, 2: 1, 3: 1, 5: 2, 11: 2, 21: 0, 101: 0},  # one (1, 21, 101), few (2-4), many
    "ar": {0: 0, 1: 1, 2: 2, 3: 3, 5: 3, 11: 4, 21: 4, 101: 5},  # zero, one, two, few, many, other
}
FORM_OF_COUNT |= {"en": FORM_OF_COUNT["de"], "tr": FORM_OF_COUNT["de"], "de-LS": FORM_OF_COUNT["de"]}
FORM_OF_COUNT["uk"] = FORM_OF_COUNT["ru"]
# Plural messages whose text is the same for every count in a language, and why: an abbreviation that
# agrees with every count (Min., min, dk., мин, хв), a label before the number ("Vor Ihnen: 5"), a
# participle ("5 wartend"); Turkish keeps the noun singular after a number ("5 kişi"). Every other plural
# message must change with the count where the language's grammar does.
SAME_FOR_EVERY_COUNT: dict[str, set[str]] = {
    "de": {
        *("wait.minutes", "wait.at_least", "ticket.wait", "city.alternative", "ticket.ahead"),
        "display.waiting_count",
    },
    "ru": {"wait.minutes", "wait.at_least", "ticket.wait", "city.alternative"},
    "ar": set(),
    "de-LS": set(),
}
SAME_FOR_EVERY_COUNT |= {"en": SAME_FOR_EVERY_COUNT["de"], "tr": set(PLURAL_KEYS)}
SAME_FOR_EVERY_COUNT["uk"] = SAME_FOR_EVERY_COUNT["ru"]


def gnu(lang: str):  # type: ignore[no-untyped-def]
    """The compiled catalog as the standard library's gettext reads it (as every node does)."""
    import gettext

    path = i18n.CATALOG_DIR / i18n.locale_dir(lang) / "LC_MESSAGES" / "messages.mo"
    with path.open("rb") as f:
        return gettext.GNUTranslations(f)


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_catalog_states_the_plural_rule_of_its_language(lang: str) -> None:
    """The Plural-Forms header is written in the .po file (Leichte Sprache had none: gettext guessed) and
    picks, for every whole count, the CLDR category of the language (German's for Leichte Sprache)."""
    import gettext

    from babel import Locale
    from babel.plural import to_gettext

    path = i18n.CATALOG_DIR / i18n.locale_dir(lang) / "LC_MESSAGES" / "messages.po"
    header = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert '"Plural-Forms: nplurals=' in header, f"{path}: no Plural-Forms header"
    cldr = gettext.c2py(
        to_gettext(Locale.parse(i18n.babel_locale(lang)).plural_form).split("plural=")[1].rstrip(";")
    )
    cat = po(lang)
    ours = gettext.c2py(cat.plural_expr)
    compiled = gnu(lang)
    counts = range(10_000)
    assert [ours(n) for n in counts] == [cldr(n) for n in counts] == [compiled.plural(n) for n in counts]
    assert cat.num_plurals == len({cldr(n) for n in counts})
    assert [compiled.plural(n) for n in AGREEMENT_COUNTS] == [
        FORM_OF_COUNT[lang][n] for n in AGREEMENT_COUNTS
    ]


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_plural_message_changes_with_the_count_where_the_language_needs_it(lang: str) -> None:
    """Rendered with real gettext (ngettext over the .mo) for 0, 1, 2, 3, 5, 11, 21 and 101: each count takes
    the form its category asks for, every form is filled in where the message is translated at all, and
    a message whose noun or verb agrees with the count reads differently for counts of different
    categories (before, Russian said "ожидают: 1", a plural verb for one person, in all three forms)."""
    compiled = gnu(lang)
    cat = po(lang)
    for m in cat:
        if not m.id or not isinstance(m.id, tuple | list):
            continue
        key, forms = key_of(m), forms_of(m)
        assert len(forms) == cat.num_plurals, (lang, key)
        if lang not in i18n.languages_for(key) and not any(forms):
            continue  # a staff text: German and English only
        assert all(x.strip() for x in forms), f"{lang} {key}: a form is empty {forms}"
        shown = {n: compiled.ngettext(key, key, n) for n in AGREEMENT_COUNTS}
        assert shown == {n: forms[FORM_OF_COUNT[lang][n]] for n in AGREEMENT_COUNTS}, (lang, key)
        texts = {re.sub(r"\d+", "#", x.format_map(defaultdict(lambda n=n: n))) for n, x in shown.items()}
        if key in SAME_FOR_EVERY_COUNT[lang]:
            assert len(texts) == 1, f"{lang} {key}: forms differ, update SAME_FOR_EVERY_COUNT: {texts}"
        else:
            assert len(texts) > 1, f"{lang} {key}: the same words for every count: {texts}"


# The words next to the number, per count of AGREEMENT_COUNTS: people waiting on the board and ahead on the
# ticket (ru/uk: 1, 21, 101 one; 2-4 few; 0, 5-20 many; Arabic: 0 and 1 and 2 in words, 3-10 plural,
# 11-99 accusative singular, 100-102 genitive singular)
PEOPLE = {
    "ru": ("человек", "человек", "человека", "человека", "человек", "человек", "человек", "человек"),
    "uk": ("людей", "людина", "людини", "людини", "людей", "людей", "людина", "людина"),
    "ar": ("لا أحد", "شخص واحد", "شخصان", "أشخاص", "أشخاص", "شخصًا", "شخصًا", "شخص"),
}


@pytest.mark.parametrize("lang", sorted(PEOPLE))
def test_people_waiting_agree_with_their_number(lang: str) -> None:
    for key in ("display.waiting_count", "ticket.ahead"):
        for n, word in zip(AGREEMENT_COUNTS, PEOPLE[lang], strict=True):
            text = i18n.tn(key, n, lang, count=n)
            assert re.search(rf"(^|\s){word}(\s|$)", text), (lang, key, n, text)
            if lang != "ar" or n > 2:
                assert str(n) in text.split(), (lang, key, n, text)
    assert i18n.tn("display.waiting_count", 21, "ru", count=21) == "21 человек в очереди"
    assert i18n.tn("display.waiting_count", 3, "uk", count=3) == "3 людини в черзі"
    assert i18n.tn("ticket.ahead", 11, "ar", count=11) == "قبلك 11 شخصًا"
