"""Numbers written the way each language writes them: "12,5" and "1.234" on a German page, "12.5" and "1,234"
on an English one, "80 %" (CLDR's no-break space) against "80%", Latin digits in Arabic (waitroom.i18n
fmt_number/fmt_percent, the ``number``/``percent`` filters, numbers in translated sentences). Machine formats
stay as they were: the JSON answers, the CSV export, attributes and form inputs.

The pages come from Flask's test client over a real SQLite event log written by the real controller (the
statistics) and the real simulator (the what-if comparison); the web node talks to a real mosquitto."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest

from tests.test_controller import Clock, cmd, ok
from tests.test_web_stats import MONDAY_9, step
from tests.web_helpers import PASSWORD, csrf_token, in_berlin, login
from waitroom import config, i18n
from waitroom.controller import Office
from waitroom.store import EventStore

NBSP = "\u00a0"
ARABIC_DIGITS = re.compile("[\u0660-\u0669\u06f0-\u06f9]")
ISSUED = 1234  # more than a thousand tickets in the statistics: a German page writes "1.234"


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


# ------------------------------------------------------------------------------------------------ the pages
class TextNodes(HTMLParser):
    """The text a person reads: every text node of the page (SVG labels too), no attribute, no script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "textarea"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "textarea") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(data)


def text_nodes(html: str) -> list[str]:
    parser = TextNodes()
    parser.feed(html)
    return parser.texts


GERMAN_DATE = re.compile(r"\b\d{1,2}\.\d{1,2}\.\d{4}\b")  # 07.12.2026: a date, not a decimal point


# a decimal point: "12.5", "0.029"; not German's thousands separator ("1.234", "1.234.567")
DECIMAL_POINT = re.compile(r"\b0\.\d|\d\.(?!\d{3}(?!\d))\d")


def decimal_points(html: str) -> list[str]:
    """The text nodes of a page that write a number with a decimal point ("12.5"), which German does not."""
    return [t for t in text_nodes(html) if DECIMAL_POINT.search(GERMAN_DATE.sub("", t))]


def busy_day(office: Office, clock: Clock) -> None:
    """More than a thousand tickets on one day, over the four services (each has three-digit numbers), two of
    them served in 4 and 5 minutes (a mean of 4.5), one assistance request answered after 2.5 minutes."""
    services = [s.id for s in office.cfg.services]
    for i in range(ISSUED):
        out = cmd(office, "disp-1", "ticket.issue", service=services[i % len(services)])
        assert out.reply["ok"], out.reply
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    step(office, clock, "counter-1", "counter.call_next", 4, counter="c1")
    step(office, clock, "counter-1", "counter.served", 5, counter="c1")
    a = ok(office, "sb-1", "assist.request", terminal="sb-1")["assist"]
    step(office, clock, "counter-2", "assist.acknowledge", 2.5, request=a["id"])


@pytest.fixture
def stats_client(cfg, tmp_path):
    """An admin logged in to a web app whose statistics read the busy day's event log."""
    from waitroom.web import create_app

    clock = Clock(MONDAY_9)
    store = EventStore(tmp_path / "e.db")
    try:
        office = Office(config.load(config.EXAMPLE_CONFIG), store, clock=clock)
        busy_day(office, clock)
        day = office.state.day
    finally:
        store.close()
    app = create_app(
        in_berlin(cfg),  # the day is Berlin's, as that of the office that wrote the log
        data_dir=tmp_path / "web",
        test_config={"SECRET_KEY": "k" * 32, "TESTING": True, "WAITROOM_STATS_DB": tmp_path / "e.db"},
    )
    try:
        app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
        client = app.test_client()
        assert login(client, "admin").status_code == 302
        yield client, day
    finally:
        app.extensions["waitroom"].close()


def total_row(html: str) -> list[str]:
    row = re.search(r"<tfoot><tr><th scope=\"row\">[^<]+</th>((?:\s*<td>[^<]*</td>)+)", html)
    assert row, "no total row"
    return re.findall(r"<td>([^<]*)</td>", row.group(1))


def test_the_statistics_page_writes_numbers_the_german_or_the_english_way(stats_client):
    client, day = stats_client
    de = client.get(f"/admin/stats?day={day}&lang=de").get_data(as_text=True)
    en = client.get(f"/admin/stats?day={day}&lang=en").get_data(as_text=True)
    # issued, served, no-show, cancelled, -, -, open; mean wait, p90 wait, mean service time
    assert total_row(de)[0] == "1.234" and total_row(en)[0] == "1,234"
    assert total_row(de)[6] == "1.232" and total_row(en)[6] == "1,232"
    assert total_row(de)[-1] == "4,5" and total_row(en)[-1] == "4.5"
    assert "(1.234)</h2>" in de and "(1,234)</h2>" in en  # tickets per hour
    assert ">4,5 min</text>" in de and ">4.5 min</text>" in en  # the chart of service times
    # a number put into a translated sentence: the mean response to an assistance request
    assert "Mittlere Reaktionszeit: 2,5 Min." in de
    assert "2.5 min" in en and not any("2,5" in t for t in text_nodes(en))
    assert decimal_points(de) == []
    # the input keeps the machine's date, the links their query
    assert f'value="{day}"' in de and f'href="?day={day}"' in de


def test_the_csv_export_is_the_same_whatever_the_page_s_language(stats_client):
    """The CSV is for German Excel in every language of the page: semicolons, decimal commas, and counts
    without thousands separators (a "1.234" would be read as 1.234 by a program and as a date by Excel)."""
    client, day = stats_client
    de = client.get(f"/admin/stats.csv?day={day}&lang=de").get_data(as_text=True)
    en = client.get(f"/admin/stats.csv?day={day}&lang=en").get_data(as_text=True)
    assert de == en
    rows = list(csv.DictReader(io.StringIO(de[1:]), delimiter=";"))
    issued = sum(int(r["issued"]) for r in rows if r["hour"] == "total" and r["service"] != "assistance")
    assert issued == ISSUED
    assert "4,5" in [r["service_mean_min"] for r in rows if r["hour"] == "total"]


def test_the_what_if_page_writes_numbers_and_shares_the_page_s_way(cfg, tmp_path):
    """The comparison of the real simulator: minutes "12,3", shares "80 %" (no-break space) in German,
    "12.3" and "80%" in English; the JSON answer keeps its numbers."""
    from tests.test_web_whatif import form, submit
    from waitroom.web import create_app

    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    try:
        app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
        pages = {}
        for lang in ("de", "en"):
            client = app.test_client()
            assert login(client, "admin").status_code == 302
            client.get(f"/admin/whatif?lang={lang}")
            r = submit(client, form(client, replications="2"))
            assert r.status_code == 200
            pages[lang] = r.get_data(as_text=True)
            if lang == "de":  # the JSON answer of a German session: numbers as JSON writes them
                body = {
                    "scenario": "mitte-monday",
                    "replications": 1,
                    "seed": 1,
                    "rule_sets": {"x": {"ageing_from": 0.5}},
                }
                token = csrf_token(client)
                r = client.post("/admin/whatif.json", json=body, headers={"X-CSRFToken": token})
                assert r.status_code == 200, r.get_data(as_text=True)
                assert re.search(r'"mean_wait_min": ?\d+\.\d', r.get_data(as_text=True))
                assert isinstance(r.json["report"]["rule_sets"]["current"]["overall"]["mean_wait_min"], float)
    finally:
        app.extensions["waitroom"].close()
    de, en = pages["de"], pages["en"]
    mean = re.compile(r'<tr data-rule-set="current">.*?data-metric="mean">([^<]+)<', re.S)
    level = re.compile(r'<tr data-rule-set="current">.*?data-metric="service_level">([^<]+)<', re.S)
    assert re.fullmatch(r"\d+,\d", mean.search(de).group(1)), mean.search(de).group(1)
    assert re.fullmatch(r"\d+\.\d", mean.search(en).group(1)), mean.search(en).group(1)
    assert mean.search(de).group(1).replace(",", ".") == mean.search(en).group(1)
    assert re.fullmatch(rf"\d+{NBSP}%", level.search(de).group(1)), level.search(de).group(1)
    assert re.fullmatch(r"\d+%", level.search(en).group(1)), level.search(en).group(1)
    assert f">50{NBSP}%</text>" in de and ">50%</text>" in en  # the chart's axis
    assert decimal_points(de) == []


@pytest.mark.parametrize(("lang", "written"), [("de", "1.234"), ("en", "1,234")])
def test_a_node_s_counts_on_the_admin_page_are_written_the_page_s_way(lang, written):
    """The health lines of the admin page: a dispenser's day of 1,234 tickets, its refusals and the numbers
    it has left for offline tickets (the node sends JSON integers)."""
    from waitroom.web import health

    cfg = config.load(config.EXAMPLE_CONFIG)
    lines = {
        line.key: line.value
        for line in health.describe(
            cfg,
            lang,
            {"issued": ISSUED, "refused": {"rate_limited": ISSUED}, "offline_numbers_left": {"pass": ISSUED}},
        )
    }
    assert lines["issued"] == written
    assert lines["refused"].endswith(f": {written}")
    assert lines["offline_numbers_left"].endswith(f": {written}")


@pytest.mark.parametrize(
    ("lang", "waiting", "wait"), [("de", "1.234", "ca. 3.702 Min."), ("en", "1,234", "approx. 3,702 min")]
)
def test_the_city_view_writes_large_counts_and_waits_the_page_s_way(lang, waiting, wait):
    """The city page of an office with 1,234 citizens waiting about 3,702 minutes for a passport (a
    snowed-in day): its count and its wait in the page's way, in the table and in the wait's sentence."""
    from tests.test_city import NOW, feed, make_cfg
    from waitroom.city.view import CityView
    from waitroom.city.web import create_app

    cfg = make_cfg()
    view = CityView(cfg, clock=lambda: NOW)
    feed(view, "o0", **{"pass": 3 * ISSUED})  # the test feed has eta // 3 citizens waiting
    client = create_app(cfg, view).test_client()
    html = client.get(f"/?service=pass&lang={lang}").get_data(as_text=True).replace(NBSP, " ")
    assert f">{waiting}</td>" in html and wait in html
