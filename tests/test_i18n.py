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
import subprocess
import sys
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


GERMAN = {str(m.id): str(m.string) for m in po("de") if m.id}


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
    strings = {str(m.id): str(m.string) for m in cat if m.id}
    assert set(strings) == set(GERMAN), "every catalog holds every key (run make translations)"
    missing = [k for k in GERMAN if lang in i18n.languages_for(k) and not strings[k].strip()]
    assert missing == [], f"{lang}: untranslated citizen texts {missing}"
    assert [m.id for m in cat if m.id and m.fuzzy] == []
    for message, errors in cat.check():
        pytest.fail(f"{lang} {message.id}: {errors}")


@pytest.mark.parametrize("lang", [x for x in i18n.LANGUAGES if x != "de"])
def test_placeholders_match_german(lang: str) -> None:
    for m in po(lang):
        if m.id and m.string:
            want = i18n.placeholders(GERMAN[str(m.id)])
            assert i18n.placeholders(str(m.string)) == want, f"{lang} {m.id}: {m.string!r} needs {want}"


def test_citizen_texts_really_translated() -> None:
    """A catalog that copies the German text is not a translation (short names like "Pause" may be equal)."""
    for lang in ("en", "tr", "ar", "uk", "ru"):
        strings = {str(m.id): str(m.string) for m in po(lang) if m.id}
        same = [
            k
            for k in GERMAN
            if i18n.is_citizen_key(k)
            and strings[k] == GERMAN[k]
            and len(re.sub(r"\{\w+\}", "", GERMAN[k])) > 12
        ]
        assert same == [], f"{lang} copies German for {same}"
    script = {"ar": "\u0600-\u06ff", "uk": "\u0400-\u04ff", "ru": "\u0400-\u04ff"}
    for lang, block in script.items():
        text = i18n.t("ticket.your_number", lang)
        assert re.search(f"[{block}]", text), (lang, text)


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
        "out = {lang: i18n.catalog(lang) for lang in i18n.LANGUAGES}\n"
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
    for lang in i18n.LANGUAGES:
        want = {str(m.id): str(m.string) for m in po(lang) if m.id and m.string and not m.fuzzy}
        assert catalogs[lang] == want, lang


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
    keywords = {"t": None, "tr": None, "both": None, "N_": None}
    found = {
        msg if isinstance(msg, str) else msg[0]
        for _file, _line, msg, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }
    assert sorted(found - set(GERMAN)) == [], "keys used in code without a German text"
    assert sorted(set(GERMAN) - found) == [], "keys extraction cannot see: add them to KEYS_BUILT_AT_RUN_TIME"


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
    assert i18n.t("wait.minutes", "de", minutes=7) == "ca. 7 Min."
    assert i18n.t("wait.minutes", "de-LS", minutes=7) == "ungefähr 7 Minuten"
    assert i18n.t("wait.minutes", "ar", minutes=7) == "حوالي 7 دقيقة"
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
