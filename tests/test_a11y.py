"""Accessibility (WCAG 2.1 AA / BITV 2.0) in a real headless chromium: axe-core on every page in every
language it offers (right to left included), keyboard operation, and no sideways scrolling on 320-390 px
phones and at 200 % zoom. axe-core comes from the npm registry at the version pinned in tests/axe
(scripts/install-axe.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI, require_tool
from tests.web_helpers import PASSWORD, log_in
from waitroom import i18n

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# Real names from German offices, longer than any label is meant for.
LONG_SERVICE = "Beglaubigungen, Führungszeugnisse & Gebührenerstattung für Fahrerlaubnisangelegenheiten"
LONG_COUNTER = "Raum 2.14 (Bürgerservice Außenstelle Süd)"


def axe_script() -> str:
    if not AXE.is_file():
        subprocess.run(["bash", str(ROOT / "scripts" / "install-axe.sh")], check=False)
    if not AXE.is_file():
        message = "axe-core is missing: bash scripts/install-axe.sh (needs npm: apt-get install npm)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def server(cfg, controller, tmp_path):
    from mqtt_broker.local import free_port, wait_for_port
    from waitroom.web.users import UserStore

    data = cfg.model_dump(mode="json", exclude_none=True)
    data["services"][0]["name"] = {"de": LONG_SERVICE, "en": "Certifications, certificates of good conduct"}
    data["counters"][0]["name"] = {"de": LONG_COUNTER}
    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(data, allow_unicode=True))
    store = UserStore(tmp_path / "web-users.db")
    store.add("anna", PASSWORD, "admin")
    store.close()
    port = free_port()
    env = {**os.environ, "WAITROOM_SECRET_KEY": "a11y-secret-key-0123456789abcdef"}
    proc = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "waitroom.cli",
                "web",
                "--config",
                str(conf),
                "--data-dir",
                str(tmp_path),
            ),
            *("--bind", f"127.0.0.1:{port}", "--threads", "32", "--demo"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        (ROOT / "test-artifacts" / "a11y-web-server.log").write_bytes(out)


@pytest.fixture
def browser():
    chromium = require_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def run_axe(page, script: str) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=script)
    result = page.evaluate(
        "async (tags) => await axe.run(document, "
        "{runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def login(page, base: str) -> None:
    log_in(page, f"{base}/login?lang=de", "anna")


def citizen_pages(base: str, ticket_id: str, reservation: str | None = None) -> list[str]:
    return [
        f"{base}/waiting",
        f"{base}/t/{ticket_id}",
        f"{base}/t/unknown0000",
        f"{base}/login",
        f"{base}/no-such-page",
        f"{base}/display/?sound=0",
        f"{base}/checkin",
        *([f"{base}/t/{reservation}"] if reservation else []),  # a remote ticket before its check-in
    ]


STAFF_PAGES = ["/staff/", "/staff/c1", "/admin/", "/admin/config", "/admin/stats", "/admin/whatif", "/demo/"]
STAFF_PAGES += ["/admin/accounts/"]
STAFF_PAGES += ["/booking/", "/booking/?service=pass"]  # and a booking's confirmation (added in the test)
STAFF_PAGES += ["/reception"]  # and a ticket it issued (added in the test: the result page is the session's)


def reception_ticket(page, server: str) -> str:
    """The path of the reception's result page of a ticket issued in this browser (it is the session's)."""
    page.goto(f"{server}/reception")
    page.check("#service-pass")
    page.click("#issue")
    page.wait_for_url("**/reception/t/*")
    return page.url.removeprefix(server)


def test_axe_finds_nothing_on_any_page_in_any_language(server, browser, node, artifacts):
    script = axe_script()
    disp = node("disp-1")
    disp.set_health(  # the admin page: a warning, a fault with its folded detail and an unknown field
        printer="paper_low",
        printer_error="printer 10.0.0.7:9100 not reachable: timed out",
        printer_fault="printer_unreachable",
        clock_offset_s=3,
    )
    first = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    missed = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    node("counter-1").request("counter.call_next", {"counter": "c1"})
    # a citizen marked not appeared: their ticket page, and the list on the staff page that calls them again
    node("counter-2").request("counter.call_next", {"counter": "c2"})
    node("counter-2").request("counter.no_show", {"counter": "c2"})
    booking = node("web").request("appointment.book", {"service": "pass", "slot": first["issued_at"] + 3600})
    staff_pages = [*STAFF_PAGES, f"/booking/c/{booking['appointment']['code']}"]
    code = node("web").request("ticket.reserve", {"service": "pass"})["reservation"]["code"]
    found: dict[str, list[dict]] = {}
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # axe is injected
    page.set_content('<html><body><input type="text"><img src="a.png"></body></html>')
    assert {"html-has-lang", "image-alt", "label"} <= {v["id"] for v in run_axe(page, script)}  # axe runs
    for lang in i18n.LANGUAGES:
        for url in [*citizen_pages(server, first["id"], code), f"{server}/t/{missed['id']}"]:
            sep = "&" if "?" in url else "?"
            page.goto("about:blank")  # ends the previous page's live streams
            page.goto(f"{url}{sep}lang={lang}")
            page.wait_for_load_state("networkidle")
            html_lang, html_dir = page.evaluate(
                "[document.documentElement.lang, document.documentElement.dir]"
            )
            assert html_lang == lang, (url, html_lang)
            assert html_dir == i18n.text_dir(lang), (url, html_dir)
            violations = run_axe(page, script)
            if violations:
                found[f"{url} [{lang}]"] = violations
        if lang in ("ar", "tr"):
            page.goto(f"{server}/waiting?lang={lang}")
            page.screenshot(path=str(artifacts / f"a11y-waiting-{lang}.png"), full_page=True)
    login(page, server)
    staff_pages.append(reception_ticket(page, server))
    for lang in i18n.STAFF_LANGUAGES:
        for path in staff_pages:
            page.goto("about:blank")
            page.goto(f"{server}{path}{'&' if '?' in path else '?'}lang={lang}")
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.lang") == lang, path
            if path == "/staff/c1":  # the list of the no-shows is there to be checked
                assert page.locator("ul.no-shows li").count() == 1, lang
            violations = run_axe(page, script)
            if violations:
                found[f"{path} [{lang}]"] = violations
    # a citizen language chosen on a public page shows the staff pages in German, marked as German
    page.goto(f"{server}/waiting?lang=ar")
    page.goto(f"{server}/staff/c1")
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["de", "ltr"]
    (artifacts / "a11y-axe.json").write_text(json.dumps(found, indent=1, ensure_ascii=False))
    assert found == {}, json.dumps(found, indent=1, ensure_ascii=False)


WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => { const r = e.getBoundingClientRect(); return r.right > innerWidth + 1 || r.left < -1; })
  .slice(0, 4)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + [...e.classList].join('.'))"""


@pytest.mark.parametrize("width", [320, 390, 640])  # 640 px = a 1280 px window at 200 % zoom
def test_no_sideways_scrolling_on_phones_and_at_200_percent(server, browser, node, width):
    ticket = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]
    page = browser.new_page(viewport={"width": width, "height": 700}, bypass_csp=True)
    wide = {}
    for lang in i18n.LANGUAGES:
        for url in citizen_pages(server, ticket["id"])[:5]:
            page.goto("about:blank")
            page.goto(f"{url}?lang={lang}")
            page.wait_for_load_state("networkidle")
            sw = page.evaluate("document.documentElement.scrollWidth")
            if sw > width:
                wide[f"{url} [{lang}]"] = (sw, page.evaluate(WIDEST))
    login(page, server)
    for path in [*STAFF_PAGES, reception_ticket(page, server)]:
        page.goto(f"{server}{path}{'&' if '?' in path else '?'}lang=de")
        page.wait_for_load_state("networkidle")
        sw = page.evaluate("document.documentElement.scrollWidth")
        if sw > width:
            wide[f"{path} [de]"] = (sw, page.evaluate(WIDEST))
    assert wide == {}, f"pages wider than {width} px: {wide}"


# Words (and "ca.\u00a012\u00a0Min.", one word for the browser) of the waiting-times table's shown headers and
# figures drawn on more than one line: [cell text, word] for each.
SPLIT_WORDS = """(selector = "table.waits th, table.waits td[data-label]") => {
  const out = [];
  for (const cell of document.querySelectorAll(selector)) {
    const head = cell.closest("thead");
    if (head && head.getBoundingClientRect().width <= 1) continue;  // headers kept for screen readers only
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.getBoundingClientRect().width <= 1) continue;  // for screen readers only
      const re = /[^ \\n\\t]+/g;
      for (let m = re.exec(node.data); m; m = re.exec(node.data)) {
        const r = document.createRange();
        r.setStart(node, m.index);
        r.setEnd(node, m.index + m[0].length);
        const lines = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
        if (lines.size > 1) out.push([cell.textContent.trim(), m[0]]);
      }
    }
  }
  return out;
}"""


@pytest.mark.parametrize("width", [320, 390])
def test_waiting_times_on_a_phone_keep_figures_whole_and_the_table_a_table(server, browser, node, width):
    """On a phone the three columns left a service name a few letters wide ("Sonstig" / "es") and split the
    headers ("Warte" / "nde") and the waits ("ca. 12" / "Min."). Now a service's name has the row's width, no
    header or figure is broken inside a word, and the browser still exposes a table with its column headers
    (the rows are laid out as blocks)."""
    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    page = browser.new_page(viewport={"width": width, "height": 700})
    cdp = page.context.new_cdp_session(page)
    for lang in i18n.LANGUAGES:
        page.goto(f"{server}/waiting?lang={lang}")
        page.wait_for_selector("table.waits tbody td")
        assert page.evaluate(SPLIT_WORDS) == [], lang
        share = page.evaluate(
            "[...document.querySelectorAll('table.waits tbody tr')].map("
            "(tr) => tr.cells[0].getBoundingClientRect().width / tr.getBoundingClientRect().width)"
        )
        assert share and min(share) > 0.9, (lang, share)
        tree = cdp.send("Accessibility.getFullAXTree")["nodes"]
        roles = [n.get("role", {}).get("value") for n in tree if not n.get("ignored")]
        assert roles.count("table") == 1 and roles.count("columnheader") == 3, (lang, roles)
        assert roles.count("cell") == 3 * len(share), (lang, roles)


@pytest.mark.parametrize("width", [1024, 1280])
def test_staff_tables_on_a_desktop_break_only_between_words(server, browser, node, width):
    """On a desktop the admin's tables broke their headers and ids inside words ("Iss" / "ued", "counte" /
    "r-1", "Versi" / "on") while the health column had room to spare: every cell could break anywhere, so
    the table shrank its columns to a few letters. Now a cell breaks only between words on a desktop, and the
    statistics table scrolls inside its own region where it is wider than the page."""
    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    page = browser.new_page(viewport={"width": width, "height": 900})
    login(page, server)
    split = {}
    for lang in ("de", "en"):
        for path in ("/admin/", "/admin/stats", "/staff/c1", "/booking/"):
            page.goto(f"{server}{path}?lang={lang}")
            page.wait_for_load_state("networkidle")
            words = page.evaluate(SPLIT_WORDS, "table.list th, table.list td")
            if words:
                split[f"{path} [{lang}]"] = words[:6]
            sw = page.evaluate("document.documentElement.scrollWidth")
            assert sw <= width, (path, lang, sw)
    assert split == {}, f"words broken across lines at {width} px: {split}"


def test_keyboard_reaches_every_control_in_order(server, browser, node):
    """Tab walks through every link, button and field of the page; the skip link comes first and works."""
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # axe is injected
    login(page, server)
    for path in ["/waiting?lang=ar", "/login?lang=tr", "/staff/c1?lang=de", "/admin/?lang=en"]:
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        controls = page.evaluate(
            """() => {
                 const all = [...document.querySelectorAll(
                   'a[href], button, input:not([type=hidden]), select, textarea')]
                   .filter(e => !e.disabled && e.offsetParent !== null && e.tabIndex >= 0);
                 all.forEach((e, i) => { e.dataset.kbd = String(i); });
                 return all.length; }"""
        )
        autofocus = page.evaluate("!!document.querySelector('[autofocus]')")  # the login form's user name
        page.keyboard.press("Tab")
        assert autofocus or page.evaluate("document.activeElement.classList.contains('skip')"), path
        reached = set()
        for _ in range(controls + 5):
            reached.add(page.evaluate("document.activeElement.dataset.kbd"))
            page.keyboard.press("Tab")
        assert {str(i) for i in range(controls)} <= reached, (path, sorted(reached - {None}), controls)
        page.keyboard.press("Shift+Tab")
        if autofocus:
            continue
        page.goto(f"{server}{path}")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main", path


FOCUS_RING = """() => { const e = document.activeElement, s = getComputedStyle(e);
  let p = e.parentElement, bg = 'rgb(255, 255, 255)';
  for (; p; p = p.parentElement) {
    const b = getComputedStyle(p).backgroundColor;
    if (b !== 'rgba(0, 0, 0, 0)' && b !== 'transparent') { bg = b; break; }
  }
  return [e.outerHTML.slice(0, 60), s.outlineStyle, s.outlineColor, bg]; }"""


def contrast(a: str, b: str) -> float:
    def luminance(rgb: str) -> float:
        channels = [int(x) / 255 for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
        r, g, b_ = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_focus_ring_stands_out_from_its_background(server, browser, node):
    """WCAG 1.4.11: the keyboard focus outline has 3:1 against the background around the focused control, in
    the blue header and on the white page and grey cards (the amber outline alone had 1.6:1 there)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    login(page, server)
    weak = {}
    for path in ["/checkin?lang=ar", "/booking/?service=pass&lang=de", "/login?lang=de", "/staff/c1?lang=de"]:
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        for _ in range(40):
            page.keyboard.press("Tab")
            what, style, ring, bg = page.evaluate(FOCUS_RING)
            if what.startswith("<body"):
                break
            if style == "none" or contrast(ring, bg) < 3:
                weak[f"{path} {what}"] = (style, ring, bg)
    assert weak == {}, weak


def test_pages_load_without_console_warnings_or_failed_requests(server, browser, node):
    """With the real CSP and headers: no request answered 4xx (a browser asks for /favicon.ico unless the
    page names an icon) and no console warning (an unknown feature in Permissions-Policy is one)."""
    ticket = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    said: list[str] = []
    page.on(
        "console", lambda m: said.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("response", lambda r: said.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        for path in ("/waiting", f"/t/{ticket['id']}", "/checkin", "/login"):
            page.goto("about:blank")
            page.goto(f"{server}{path}?lang=de")
            page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert said == []
