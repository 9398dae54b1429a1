"""The city page for 115 agents in a real headless chromium, in every language it offers: axe-core finds
nothing (WCAG 2.1 AA), the texts are in the page's language, and nothing scrolls sideways at 320 px (WCAG
1.4.10 reflow) or at 200 % text zoom. Every state an office can be in is on the page at once: live, stale,
closed, intake stopped, no estimate, no data yet, and a recommendation; long German office and service
names."""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from tests.test_a11y import WIDEST, axe_script, browser, run_axe  # noqa: F401 (browser is a fixture)
from waitroom import i18n
from waitroom.city import config as city_config
from waitroom.city.view import CityView
from waitroom.city.web import create_app
from waitroom.contract import Topics, encode

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOW = 1764237600.0  # Thursday 2025-11-27 11:00 Europe/Berlin
ALL_DAY = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
LONG_OFFICE = "Bürgerbüro Außenstelle Hohenschönhausen-Nord (Kfz-Zulassung und Führerscheinstelle)"
LONG_SERVICE = "Beglaubigungen, Führungszeugnisse & Gebührenerstattung für Fahrerlaubnisangelegenheiten"


def city_view() -> tuple[city_config.CityConfig, CityView]:
    offices = [
        {"id": "live", "name": "Bürgerbüro Mitte", "hours": ALL_DAY},
        {"id": "long", "name": LONG_OFFICE, "hours": ALL_DAY},
        {"id": "stale", "name": "Bürgerbüro Süd", "hours": ALL_DAY},
        {"id": "closed", "name": "Bürgerbüro Ost", "hours": {"fri": ["08:00", "12:00"]}},
        {"id": "stopped", "name": "Bürgerbüro West", "hours": ALL_DAY},
        {"id": "none", "name": "Bürgerbüro Nord", "hours": ALL_DAY},
    ]
    cfg = city_config.parse(
        {
            "city": {"name": "Stadt Beispiel"},
            "offices": offices,
            "services": [
                {"id": "pass", "name": {"de": "Personalausweis / Reisepass", "en": "ID card / passport"}},
                {"id": "long", "name": {"de": LONG_SERVICE}},
            ],
            "stale_after_min": 30,
            "steering": {"threshold_min": 30, "min_gain_min": 10},
        }
    )
    view = CityView(cfg, clock=lambda: NOW)

    def feed(office: str, ts: float, **services: tuple[int, int | None, bool]) -> None:
        payload = {
            "v": 1,
            "office": office,
            "ts": ts,
            "services": [
                {"id": s, "waiting": w, "eta_min": e, "intake_open": i} for s, (w, e, i) in services.items()
            ],
        }
        assert view.on_message(Topics(office).public(), encode(payload), NOW)

    feed("live", NOW, **{"pass": (14, 45, True), "long": (2, None, True)})
    feed("long", NOW, **{"pass": (3, 10, True), "long": (123, 240, True)})
    feed("stale", NOW - 3 * 3600, **{"pass": (1, 5, True)})
    feed("closed", NOW, **{"pass": (0, 0, True)})
    feed("stopped", NOW, **{"pass": (40, 90, False)})
    return cfg, view


@pytest.fixture
def server():
    cfg, view = city_view()
    srv = make_server("127.0.0.1", 0, create_app(cfg, view), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(5)


PAGES = ["/", "/?service=pass", "/?service=long", "/?service=nosuch", "/nosuch"]


def test_axe_finds_nothing_on_the_city_page_in_any_language(server, browser, artifacts):  # noqa: F811
    script = axe_script()
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    found: dict[str, list[dict]] = {}
    german: dict[str, list[str]] = {}
    for lang in i18n.LANGUAGES:
        for path in PAGES:
            sep = "&" if "?" in path else "?"
            page.goto(f"{server}{path}{sep}lang={lang}")
            page.wait_for_load_state("networkidle")
            assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == [
                lang,
                i18n.text_dir(lang),
            ], (path, lang)
            violations = run_axe(page, script)
            if violations:
                found[f"{path} [{lang}]"] = violations
            if lang not in ("de", "de-LS"):  # German words left on a page that says it is in another language
                body = page.inner_text("main" if page.query_selector("main") else "body")
                words = ("Wartezeit", "Dienstleistung", "geschlossen", "veraltet", "Uhr")
                left = [w for w in words if w in body]
                if left:
                    german[f"{path} [{lang}]"] = left
        if lang in ("ar", "uk"):
            page.goto(f"{server}/?service=pass&lang={lang}")
            page.screenshot(path=str(artifacts / f"a11y-city-{lang}.png"), full_page=True)
    (artifacts / "a11y-city-axe.json").write_text(json.dumps(found, indent=1, ensure_ascii=False))
    assert found == {}, json.dumps(found, indent=1, ensure_ascii=False)
    assert german == {}, german


@pytest.mark.parametrize("width", [320, 640])  # 640 px = a 1280 px window at 200 % zoom
def test_the_city_page_reflows_at_320_px_and_200_percent(server, browser, width):  # noqa: F811
    page = browser.new_page(viewport={"width": width, "height": 700})
    wide = {}
    for lang in i18n.LANGUAGES:
        for path in PAGES[:3]:
            sep = "&" if "?" in path else "?"
            page.goto(f"{server}{path}{sep}lang={lang}")
            page.wait_for_load_state("networkidle")
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            sw = page.evaluate("document.documentElement.scrollWidth")
            if sw > width:
                wide[f"{path} [{lang}]"] = (sw, page.evaluate(WIDEST))
    assert wide == {}, f"pages wider than {width} px: {wide}"


# table cells drawn (partly) outside the window, or tables that must be scrolled sideways to read them
OUTSIDE = """() => [
  ...[...document.querySelectorAll(".table tbody th, .table tbody td")]
    .filter((c) => c.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map((c) => c.textContent.trim().slice(0, 30)),
  ...[...document.querySelectorAll(".table")]
    .filter((t) => t.scrollWidth > t.clientWidth)
    .map((t) => "scrolls: " + t.getAttribute("aria-labelledby")),
]"""


@pytest.mark.parametrize("width", [320, 390])
def test_on_a_phone_every_wait_is_on_the_screen_and_the_tables_stay_tables(server, browser, width):  # noqa: F811
    """On a phone the tables scrolled sideways on their own (allowed for data tables, WCAG 1.4.10), and the
    wait, the figure a citizen looks for, was outside the screen ("ca. 45 M"). Now each row is a block with
    every figure after its header, nothing to scroll, and the browser still exposes tables with their
    headers."""
    page = browser.new_page(viewport={"width": width, "height": 700})
    cdp = page.context.new_cdp_session(page)
    for lang in i18n.LANGUAGES:
        for path in PAGES[:3]:
            sep = "&" if "?" in path else "?"
            page.goto(f"{server}{path}{sep}lang={lang}")
            page.wait_for_load_state("networkidle")
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            assert page.evaluate(OUTSIDE) == [], (path, lang)
            tree = cdp.send("Accessibility.getFullAXTree")["nodes"]
            roles = [n.get("role", {}).get("value") for n in tree if not n.get("ignored")]
            assert roles.count("table") == page.evaluate("document.querySelectorAll('table').length"), roles
            assert roles.count("columnheader") >= 3 * roles.count("table"), (path, lang)


def test_text_zoomed_to_200_percent_stays_within_the_window(server, browser):  # noqa: F811
    """WCAG 1.4.4: text alone at 200 % (the browser's font size, not page zoom) in a 1280 px window."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    wide = {}
    for lang in ("de", "ar", "uk"):
        page.goto(f"{server}/?service=pass&lang={lang}")
        page.wait_for_load_state("networkidle")
        page.evaluate("document.documentElement.style.fontSize = '200%'")
        sw = page.evaluate("document.documentElement.scrollWidth")
        if sw > 1280:
            wide[lang] = (sw, page.evaluate(WIDEST))
    assert wide == {}, wide
