"""The browser call display (/display): a Flask blueprint fed by a real NodeRuntime on a real mosquitto.

The blueprint is tested on its own (a tiny app whose live object is built from a real web NodeRuntime, with a
real /api/stream), through the web app's create_app, and in a real headless chromium.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import threading
import time
import wave
from io import BytesIO
from typing import Any

import pytest
from flask import Flask, Response, stream_with_context

from displays.settings import GONG_WAV
from waitroom import i18n
from waitroom.contract import EventKind
from waitroom.i18n import fmt_number
from waitroom.web import display


class LiveFromRuntime:
    """The in-process live object the web app provides: the latest state and a feed of events."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.queues: list[queue.Queue] = []
        runtime.on_state(lambda s: self._put("state", s))
        runtime.on_event(lambda kind, e: self._put(kind.value, e) if kind is EventKind.CALL else None)

    def _put(self, name: str, data: Any) -> None:
        for q in list(self.queues):
            q.put((name, data))

    def state(self) -> dict | None:
        return self.runtime.state

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        self.queues.append(q)
        return q


def tiny_app(live: LiveFromRuntime) -> Flask:
    app = Flask(__name__)
    app.extensions["waitroom"] = live
    app.register_blueprint(display.bp, url_prefix="/display")

    @app.get("/api/stream")
    def stream() -> Response:
        q = live.subscribe()

        def gen():
            yield "retry: 1000\n\n"
            if live.state() is not None:
                yield f"event: state\ndata: {json.dumps(live.state())}\n\n"
            while True:
                try:
                    name, data = q.get(timeout=5)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n"

        return Response(stream_with_context(gen()), mimetype="text/event-stream")

    return app


def wait_for(pred, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def live(controller, node):
    web = node("web")
    wait_for(lambda: web.state is not None)
    return LiveFromRuntime(web)


def boot_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="boot">(.*?)</script>', html, re.S)
    assert m, "no boot data in the page"
    return json.loads(m.group(1))


def test_page_shows_the_current_state(live, node):
    disp, c3 = node("disp-1"), node("counter-3")
    disp.request("ticket.issue", {"service": "melde"})
    c3.request("counter.call_next", {"counter": "c3"})
    wait_for(lambda: live.state()["calls"])
    client = tiny_app(live).test_client()
    resp = client.get("/display/?zone=eg&n=4")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Bürgerbüro Mitte" in html
    boot = boot_of(html)
    assert boot["zone"] == "eg" and boot["recent"] == 4
    assert boot["state"]["calls"][0]["ticket"] == "B001"
    assert boot["labels"]["announce.call"]["de"] == "Nummer {ticket}, bitte zu {counter}."
    js = client.get("/display/static/display.js")
    assert js.status_code == 200 and b"EventSource" in js.data


def test_bad_parameters_get_clear_errors(live):
    client = tiny_app(live).test_client()
    for query, code in (
        ("zone=keller", "unknown_zone"),
        ("n=99", "bad_request"),
        ("sound=loud", "bad_request"),
        ("speak=fr", "bad_request"),
    ):
        resp = client.get(f"/display/?{query}")
        assert resp.status_code == 400, query
        assert resp.get_json()["error"]["code"] == code
    assert client.get("/display/speech.wav?ticket=hello&counter=c1").status_code == 400
    resp = client.get("/display/speech.wav?ticket=A012&counter=c99")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "unknown_counter"


def test_gong_and_speech_are_served(live):
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is missing: apt-get install espeak-ng")
    client = tiny_app(live).test_client()
    gong = client.get("/display/gong.wav")
    assert gong.status_code == 200 and gong.mimetype == "audio/wav"
    assert gong.data == GONG_WAV.read_bytes()
    speech = client.get("/display/speech.wav?ticket=A012&counter=c3&lang=de")
    assert speech.status_code == 200 and speech.mimetype == "audio/wav"
    with wave.open(BytesIO(speech.data)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 1.0 < seconds < 5.0  # "Nummer A 12, bitte zu Schalter drei."


def test_through_create_app(cfg, controller, tmp_path):
    try:
        from waitroom.web import create_app
    except ImportError:
        pytest.skip("the web app is not there yet")
    cfg.display.update(blink_s=4, call_gap_s=3, announce_missed_s=90, keep_called_s=30)  # as on the Pi
    app = create_app(cfg, test_config={"SECRET_KEY": "test-secret", "TESTING": True}, data_dir=tmp_path)
    try:
        client = app.test_client()
        wait_for(lambda: app.extensions["waitroom"].state() is not None)
        resp = client.get("/display/")
        assert resp.status_code == 200
        boot = boot_of(resp.get_data(as_text=True))
        assert boot["state"]["name"] == "Bürgerbüro Mitte"
        assert (boot["blink_ms"], boot["missed_ms"], boot["keep_ms"]) == (4000, 90000, 30000)
        assert boot["pause"] == {"gong": 800, "phrase": 400, "call": 3000}
        assert client.get("/display/gong.wav").status_code == 200
        assert client.get("/display/status").get_json() == {"ok": True, "controller": True, "link": True}
    finally:
        app.extensions["waitroom"].close()


@pytest.mark.browser
def test_browser_shows_a_call_live(live, node, artifacts):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, tiny_app(live), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/display/?sound=gong"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url)
            page.wait_for_function("window.waitroomDisplay && window.waitroomDisplay.online")
            assert page.locator("#hero").get_attribute("data-ticket") is None
            disp, c1 = node("disp-1"), node("counter-1")
            disp.request("ticket.issue", {"service": "pass"})
            c1.request("counter.call_next", {"counter": "c1"})
            page.wait_for_function("document.getElementById('hero').dataset.ticket === 'A001'", timeout=8000)
            assert "Schalter 1" in page.locator("#hero").inner_text()
            assert "highlight" in page.locator("#hero").get_attribute("class")
            page.screenshot(path=str(artifacts / "display-browser.png"))
            # the gong played without a click (kiosk autoplay flag): the audio element was allowed to start
            page.wait_for_function("window.waitroomDisplay.unlocked", timeout=8000)
            browser.close()
    finally:
        server.shutdown()


class FixedLive:
    """A live object with one fixed state (the layout test needs no controller)."""

    def __init__(self, state: dict):
        self._state = state

    def state(self) -> dict:
        return self._state

    def subscribe(self) -> queue.Queue:
        return queue.Queue()


LAYOUT_CHECK = """() => {
  const minPx = 0.03 * Math.min(innerWidth, innerHeight) - 0.5;
  const bad = [];
  const view = {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
  const within = (r, o) => r.left >= o.left - 1 && r.top >= o.top - 1 && r.right <= o.right + 1
    && r.bottom <= o.bottom + 1;
  for (const region of document.querySelectorAll('header, #hero, #recent, #waits')) {
    const box = region.getBoundingClientRect();
    if (!within(box, view)) bad.push(['region outside the screen', region.id || region.tagName]);
    for (const e of region.querySelectorAll('*')) {
      const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || e.closest('[hidden]')) continue;
      const r = e.getBoundingClientRect();
      const size = parseFloat(cs.fontSize);
      if (size < minPx) bad.push(['too small', e.textContent.slice(0, 30), size]);
      if (!within(r, box)) bad.push(['outside its region', e.textContent.slice(0, 30)]);
      if (e.classList.contains('clamp')) {
        const lines = Math.round(r.height / parseFloat(cs.lineHeight || size * 1.2));
        if (lines > 2) bad.push(['more than two lines', e.textContent.slice(0, 30), lines]);
      }
      if (e.scrollWidth > e.clientWidth + 1 && cs.overflow !== 'hidden' && !e.classList.contains('clamp'))
        bad.push(['overflows sideways', e.textContent.slice(0, 30)]);
    }
  }
  const cols = [...document.querySelectorAll('#waits-list > .service')].map(e => e.getBoundingClientRect());
  for (let i = 0; i < cols.length; i++) for (let j = i + 1; j < cols.length; j++) {
    const a = cols[i], b = cols[j];
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
      bad.push(['columns overlap', i, j]);
  }
  for (const s of document.querySelectorAll('.waits .info span:not(.closed)'))
    if (s.getBoundingClientRect().height > parseFloat(getComputedStyle(s).fontSize) * 1.6)
      bad.push(['wait time wrapped inside', s.textContent]);
  return bad;
}"""


@pytest.mark.parametrize("langs", ["de,en", "de,tr", "ar,de"])
def test_browser_display_layouts_with_long_names(langs, artifacts):
    """1080p, 720p and portrait with the longest real names: no label below 3 % of the screen, none outside
    its region, at most two lines, columns never overlap; office time zone and German date format."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from tests.test_display_layout import snapshot

    snap = snapshot(call_lang="tr" if langs == "de,en" else "ar")
    snap["ts"] = 1767600000.0
    server = make_server("127.0.0.1", 0, tiny_app(FixedLive(snap)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/display/?sound=0&langs={langs}"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for name, (w, h) in {
                "1080p": (1920, 1080),
                "720p": (1280, 720),
                "portrait": (1080, 1920),
            }.items():
                # the TV's own clock runs in another zone: the page must still show the office's time
                ctx = browser.new_context(viewport={"width": w, "height": h}, timezone_id="America/New_York")
                page = ctx.new_page()
                page.goto(base)
                page.wait_for_function("document.getElementById('hero').dataset.ticket === 'A001'")
                bad = page.evaluate(LAYOUT_CHECK)
                page.screenshot(path=str(artifacts / f"display-browser-{name}-{langs.replace(',', '-')}.png"))
                assert bad == [], (name, langs, bad)
                assert page.evaluate("document.documentElement.lang") == langs.split(",")[0]
                date = page.inner_text("#date")
                assert re.fullmatch(r"\d\d\.\d\d\.\d{4}", date), date
                shown = page.inner_text("#time")
                # the page ticks once a second (later on a busy machine): now, or a few seconds ago
                want = page.evaluate(
                    "[0, 5000].map((ago) => new Intl.DateTimeFormat('de-DE', {hour: '2-digit', "
                    "minute: '2-digit', timeZone: 'Europe/Berlin'}).format(new Date(Date.now() - ago)))"
                )
                assert shown in want, (shown, want)
                own = "gideceğiniz yer:" if langs == "de,en" else None
                if own:
                    assert own in page.inner_text("#hero")  # the call in the ticket's language too
                ctx.close()
            browser.close()
    finally:
        server.shutdown()


COUNTS = (0, 1, 2, 3, 5, 11, 21, 100)
AR_MINUTES = {1: "حوالي دقيقة واحدة", 2: "حوالي دقيقتين", 3: "حوالي 3 دقائق", 5: "حوالي 5 دقائق"}
AR_PEOPLE = {0: "لا أحد في الانتظار", 1: "شخص واحد في الانتظار", 2: "شخصان في الانتظار"}


def test_plural_labels_carry_every_form_and_the_rule(live):
    """The page gets a plural message as its forms and the form of each count 0..199 (the catalog's rule)."""
    from waitroom import i18n

    boot = boot_of(tiny_app(live).test_client().get("/display/?langs=ar,de").get_data(as_text=True))
    ar = boot["labels"]["wait.minutes"]["ar"]
    assert len(ar["forms"]) == 6 and len(ar["index"]) == 200
    assert ar["forms"][ar["index"][2]] == "حوالي دقيقتين"
    assert ar["forms"][ar["index"][11]] == "حوالي {minutes} دقيقة"
    assert ar["forms"][ar["index"][103]] == "حوالي {minutes} دقائق"
    for lang in i18n.LANGUAGES:
        label = boot["labels"]["display.waiting_count"][lang]
        forms, plural = i18n.forms("display.waiting_count", lang)
        assert label == {"forms": list(forms), "index": [plural(n) for n in range(200)]}
    assert boot["labels"]["display.recent"]["ar"] == "آخر النداءات"  # the other texts as before


@pytest.mark.browser
def test_browser_board_counts_agree_with_their_number(artifacts):
    """The browser board's line under each service for n = 0 ... 100 waiting and minutes, as chromium shows
    it: the page picks the form the count needs (Arabic, Leichte Sprache, Russian; 1000 and 1002 beyond
    the page's table of 0..199)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    counts = (*COUNTS, 1000, 1002)
    services = [
        {"id": f"s{n}", "prefix": "A", "name": {"de": f"Dienst {n}"}, "waiting": n, "eta_min": n}
        for n in counts
    ]
    snap = {"name": "Bürgerbüro", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": [], "services": services, "calls": []}
    # the numbers as the server writes them for the page's language (waitroom.i18n.fmt_number, Babel)
    ar, ls, ru, de = ({n: fmt_number(n, lang) for n in counts} for lang in ("ar", "de-LS", "ru", "de"))
    assert (ar[1000], ls[1002], ru[1000], de[1000]) == ("1,000", "1.002", "1\xa0000", "1.000")

    def ar_people(n: int) -> str:
        return "أشخاص" if 3 <= n % 100 <= 10 else "شخصًا" if n % 100 >= 11 else "شخص"

    def ar_minutes(n: int) -> str:
        return "دقائق" if 3 <= n % 100 <= 10 else "دقيقة"

    def ru_people(n: int) -> str:
        return "человека" if n % 10 in (2, 3, 4) and n % 100 // 10 != 1 else "человек"

    expected = {
        "ar": {
            n: [AR_PEOPLE.get(n) or f"{ar[n]} {ar_people(n)} في الانتظار"]
            + ([AR_MINUTES.get(n) or f"حوالي {ar[n]} {ar_minutes(n)}"] if n else [])
            for n in counts
        },
        "de-LS": {
            n: [f"{ls[n]} Mensch wartet" if n == 1 else f"{ls[n]} Menschen warten"]
            + ([f"ungefähr {ls[n]} Minute{'' if n == 1 else 'n'}"] if n else [])
            for n in counts
        },
        "ru": {
            n: [f"{ru[n]} {ru_people(n)} в очереди"] + ([f"ок. {ru[n]} мин"] if n else []) for n in counts
        },
        "de": {  # the same words as the server's (waitroom.i18n.tn with the number written by fmt_number)
            n: [i18n.tn("display.waiting_count", n, "de", count=de[n])]
            + ([i18n.tn("wait.minutes", n, "de", minutes=de[n])] if n else [])
            for n in counts
        },
    }
    server = make_server("127.0.0.1", 0, tiny_app(FixedLive(snap)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            for lang, want in expected.items():
                langs = "de,en" if lang == "de" else f"{lang},de"
                page.goto(f"http://127.0.0.1:{server.server_port}/display/?sound=0&langs={langs}")
                page.wait_for_function("document.querySelectorAll('#waits-list .info').length > 0")
                shown = page.evaluate(
                    "[...document.querySelectorAll('#waits-list .info')]"
                    ".map((e) => [...e.querySelectorAll('span')].map((s) => s.textContent))"
                )
                assert shown == [want[n] for n in counts], lang
                if lang == "ar":
                    page.screenshot(path=str(artifacts / "display-browser-counts-ar.png"))
            browser.close()
    finally:
        server.shutdown()


@pytest.mark.browser
def test_browser_speaks_the_ticket_letter_as_the_server_does():
    """The page's own speech (when the server's WAV fails) names the ticket letter as i18n.spoken_ticket
    does: "Бэ 7" for Russian, not a Latin "B" that the voice reads in English."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from waitroom import i18n

    snap = {"name": "Bürgerbüro", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": [], "services": [], "calls": []}
    server = make_server("127.0.0.1", 0, tiny_app(FixedLive(snap)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tickets = ("A012", "B007", "W100", "Z001")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/display/?sound=0&langs=de,ru")
            page.wait_for_function("window.waitroomDisplay")
            shown = {
                lang: page.evaluate(
                    "([tickets, lang]) => tickets.map((x) => window.waitroomDisplay.spokenTicket(x, lang))",
                    [list(tickets), lang],
                )
                for lang in i18n.LANGUAGES
            }
            assert shown == {lang: [i18n.spoken_ticket(x, lang) for x in tickets] for lang in i18n.LANGUAGES}
            assert shown["ru"] == ["А 12", "Бэ 7", "Дубль-вэ 100", "Зет 1"] and shown["en"][0] == "A-12"
            browser.close()
    finally:
        server.shutdown()


# the text of an element line by line as chromium lays it out, from each character's last box; a soft hyphen
# is "-" where it is drawn (at the end of a line) and nothing elsewhere
LINES_OF = """(e) => {
  const lines = [];
  let top = null;
  const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    for (let i = 0; i < n.data.length; i++) {
      const r = document.createRange();
      r.setStart(n, i);
      r.setEnd(n, i + 1);
      const boxes = r.getClientRects();
      const box = boxes[boxes.length - 1];
      if (!box) continue;
      if (top === null || box.top > top + 2) { lines.push(""); top = box.top; }
      if (n.data[i] !== "\\u00ad") lines[lines.length - 1] += n.data[i];
      else if (box.width > 0) lines[lines.length - 1] += "-";
    }
  }
  return lines;
}"""


def broken_between_syllables(lines: list[str], prefix: str, name: str, where: Any) -> bool:
    """Whether ``name`` (after its service letter) was broken; asserts that every break is between two words,
    after the name's own hyphen, or at a syllable of waitroom/hyphen.py's rule with a hyphen shown."""
    from waitroom.hyphen import syllable_break

    if len(lines) == 1:
        return False
    text = [lines[0].removeprefix(prefix), *lines[1:]]
    at = 0
    for line in text[:-1]:
        if name[at:].startswith(line):  # between words, or after the name's own hyphen
            assert line.endswith((" ", "-")) or name[at + len(line)] == " ", (where, lines)
            at += len(line)
            continue
        assert line.endswith("-"), (where, lines)  # a syllable break, its hyphen shown
        assert name[at:].startswith(line[:-1]), (where, lines)
        at += len(line) - 1
        head, tail = name[:at].split()[-1], name[at:].split()[0]
        assert syllable_break(head + tail, len(head)), (where, lines)
    assert name[at:] == text[-1], (where, lines)
    return True


OFFICE_SERVICES = [
    ("A", "Personalausweis / Reisepass"),
    ("B", "Meldeangelegenheiten"),
    ("C", "Führerschein"),
    ("D", "Sonstiges"),
    ("E", "Staatsangehörigkeitsangelegenheiten"),
]

# words in the scripts the offices show (umlauts, Turkish, Cyrillic), with digits and hyphens
RULE_WORDS = ["Kfz-Zulassungsstelle", "Fahrerlaubnisangelegenheiten", "Apfel", "STRASSENVERKEHRSAMT"]
RULE_WORDS += ["Raum2.14", "Başvurularınız", "İkametgâh", "Регистрация", "Реєстрація", "Ausländerbehörde"]


@pytest.mark.browser
def test_browser_breaks_a_long_compound_between_syllables_with_a_hyphen(artifacts):
    """Kiosk chromium has no German hyphenation dictionary: a service name longer than its column
    ("Meldeangelegenheiten" at 720p) broke after any letter and without a hyphen ("Meldeangelegen" /
    "heiten"). It breaks at a syllable of waitroom/hyphen.py's rule, with a hyphen shown, as on the Pi board;
    a name that fits ("Schalter 3") is not hyphenated, and Arabic is never broken inside a word."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from waitroom.hyphen import syllable_break

    services = [
        {"id": f"s{i}", "prefix": p, "name": {"de": n, "ar": "شؤون التسجيل"}, "waiting": 1 + i, "eta_min": 4}
        for i, (p, n) in enumerate(OFFICE_SERVICES)
    ]
    counters = [{"id": "c3", "name": {"de": "Schalter 3"}, "zone": "eg", "services": ["s1"]}]
    calls = [{"ticket": "B001", "counter": "c3", "ts": 100.0}]
    snap = {"name": "Bürgerbüro Mitte", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": counters, "services": services, "calls": calls}
    server = make_server("127.0.0.1", 0, tiny_app(FixedLive(snap)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for w, h in ((1280, 720), (1080, 1920)):
                page = browser.new_page(viewport={"width": w, "height": h})
                page.goto(f"http://127.0.0.1:{server.server_port}/display/?sound=0&langs=de,ar")
                page.wait_for_function("document.getElementById('hero').dataset.ticket === 'B001'")
                # every name laid out with its text (on a loaded machine the list came after the hero, and a
                # name without text measured no lines)
                page.wait_for_function(
                    "(n) => document.fonts.status === 'loaded' && "
                    "[...document.querySelectorAll('#waits-list .name.l1')]"
                    ".filter((e) => e.textContent.trim() && e.getClientRects().length).length === n",
                    arg=len(OFFICE_SERVICES),
                )
                names = page.locator("#waits-list .name.l1")
                broken = 0
                for i, (prefix, name) in enumerate(OFFICE_SERVICES):
                    broken += broken_between_syllables(names.nth(i).evaluate(LINES_OF), prefix, name, (w, h))
                assert broken, (w, h, "no long name was broken: the test shows nothing")
                page.screenshot(path=str(artifacts / f"display-browser-hyphen-{w}x{h}.png"))
                # the page's port of the rule breaks every word where waitroom/hyphen.py does
                words = [n for _, name in OFFICE_SERVICES for n in name.split()] + RULE_WORDS
                ported = page.evaluate("(ws) => ws.map(window.waitroomDisplay.syllableBreaks)", words)
                assert ported == [[i for i in range(len(w)) if syllable_break(w, i)] for w in words]
                hero = page.locator("#hero .counter.l1").inner_text()
                assert hero == "Schalter 3", hero  # fits: no soft hyphen inside
                arabic = page.locator("#waits-list .name.l2").first.text_content()
                assert "\u00ad" not in arabic, arabic
                page.close()
            browser.close()
    finally:
        server.shutdown()


LANG_OF = """(e) => [e.lang, getComputedStyle(e).direction]"""


@pytest.mark.browser
def test_browser_display_in_arabic_marks_a_german_only_name_german(artifacts):
    """Arabic first (?langs=ar,de): a service or counter name the office has only in German was marked Arabic
    and right to left, so it was drawn as Arabic text: its letter glued to it ("EPersonalausweis"), the
    ellipsis at its start ("…mmeldung und"), broken without a hyphen ("Personalausw" / "eis"), read by a
    screen reader with an Arabic voice. Now it is marked German and left to right (as on the Pi board),
    broken between syllables; a name the office has in Arabic stays Arabic, right to left."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    services = [
        {"id": f"s{i}", "prefix": p, "name": {"de": n}, "waiting": 1 + i, "eta_min": 4}
        for i, (p, n) in enumerate(OFFICE_SERVICES)
    ]
    services[3]["name"]["ar"] = "أمور أخرى"  # Sonstiges
    counters = [
        {"id": "c1", "name": {"de": "Schalter 1", "ar": "الشباك 1"}, "zone": "eg", "services": ["s0"]},
        {"id": "c2", "name": {"de": "Schalter 2"}, "zone": "eg", "services": ["s1"]},
    ]
    calls = [
        {"ticket": "A001", "counter": "c1", "ts": 100.0},
        {"ticket": "B001", "counter": "c2", "ts": 99.0},
    ]
    snap = {"name": "Bürgerbüro Mitte", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": counters, "services": services, "calls": calls}
    server = make_server("127.0.0.1", 0, tiny_app(FixedLive(snap)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"http://127.0.0.1:{server.server_port}/display/?sound=0&langs=ar,de")
            page.wait_for_function("document.getElementById('hero').dataset.ticket === 'A001'")
            page.screenshot(path=str(artifacts / "display-browser-720p-ar-german-names.png"))
            names = page.locator("#waits-list .name.l1")
            marks = [names.nth(i).evaluate(LANG_OF) for i in range(len(OFFICE_SERVICES))]
            assert marks == [["de", "ltr"]] * 3 + [["ar", "rtl"]] + [["de", "ltr"]], marks
            broken = 0
            for i, (prefix, name) in enumerate(OFFICE_SERVICES):
                if i != 3:
                    broken += broken_between_syllables(names.nth(i).evaluate(LINES_OF), prefix, name, "ar,de")
            assert broken, "no long name was broken: the test shows nothing"
            assert page.locator("#hero .counter.l1").evaluate(LANG_OF) == ["ar", "rtl"]  # الشباك 1
            assert page.locator("#hero .counter.l2").evaluate(LANG_OF) == ["de", "ltr"]  # Schalter 1
            assert page.locator("#recent-list .name.l1").evaluate(LANG_OF) == ["de", "ltr"]  # Schalter 2
            browser.close()
    finally:
        server.shutdown()


def until(page: Any, expression: str) -> Any:
    """Wait for ``expression`` to be true in the page (polled from here: the web app's Content-Security-Policy
    forbids the eval that Playwright's wait_for_function needs)."""
    return wait_for(lambda: page.evaluate(expression), timeout=15)


@pytest.mark.browser
def test_browser_display_says_when_the_controller_is_gone(cfg, tmp_path, artifacts):
    """The web app stays up and keeps the retained office state when the controller stops: the browser display
    went on showing the old calls and waits as current, without a sign, for as long as the controller was
    away (the Pi board shows its offline sign). It shows the sign when the stream says the controller went
    offline, on a page opened meanwhile at once, and hides it when the controller is back."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from waitroom.service import ControllerService
    from waitroom.web import create_app

    db = str(tmp_path / "events.db")
    controller = ControllerService(cfg, db)
    assert controller.start(wait=10)
    app = create_app(cfg, test_config={"SECRET_KEY": "test-secret", "TESTING": True}, data_dir=tmp_path)
    live = app.extensions["waitroom"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/display/?sound=0"
    sign = "document.getElementById('offline').hidden"
    try:
        wait_for(lambda: live.state() is not None)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            until(page, "window.waitroomDisplay && window.waitroomDisplay.online")
            assert page.evaluate(sign) is True
            controller.stop()
            until(page, f"!{sign}")
            assert "Keine Verbindung" in page.inner_text("#offline")
            page.screenshot(path=str(artifacts / "display-browser-controller-offline.png"))
            later = browser.new_page(viewport={"width": 1280, "height": 720})
            later.goto(url)  # opened while the controller is away: the sign from the start
            until(later, "document.getElementById('hero').children.length > 0")
            assert later.evaluate(sign) is False and later.evaluate("window.waitroomDisplay.online") is False
            controller = ControllerService(cfg, db)
            assert controller.start(wait=10)
            for pg in (page, later):
                until(pg, sign)
            browser.close()
            assert [e for e in errors if "Content Security Policy" in e] == []  # the status fetch is allowed
    finally:
        server.shutdown()
        live.close()
        controller.stop()


class PushLive(FixedLive):
    """A fixed state, and call events pushed by the test to every open stream."""

    def __init__(self, state: dict):
        super().__init__(state)
        self.queues: list[queue.Queue] = []

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        self.queues.append(q)
        return q

    def push(self, name: str, data: dict) -> None:
        for q in self.queues:
            q.put((name, data))


# A TV browser's autoplay rule: no sound before the first click on the page. Headless chromium plays sound
# always, whatever --autoplay-policy or Permissions-Policy says, and counts the page as activated from the
# start (tried), so the test page gets the rule of a TV browser, with a real click, before its script runs.
TV_AUTOPLAY_RULE = """(() => {
  let clicked = false;
  addEventListener("click", (e) => { if (e.isTrusted) clicked = true; }, true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (clicked) return play.call(this);
    return Promise.reject(new DOMException("play() failed: the user did not interact", "NotAllowedError"));
  };
})();"""


@pytest.mark.browser
def test_browser_display_waiting_for_the_sound_click_announces_only_current_calls(artifacts):
    """A smart TV's browser refuses sound until somebody clicks "sound on". Every call meanwhile waited, and
    the click played them all, one after another (at noon, every call since the morning), also a no-show's
    number after its counter had called the next ticket. Now a call its counter has moved on from is not
    announced (as on the Pi), and after the click only the calls of the last announce_missed_s (60 s) are."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    counters = [
        {"id": f"c{i}", "name": {"de": f"Schalter {i}"}, "zone": "eg", "services": []} for i in (1, 2, 3)
    ]
    snap = {"name": "Bürgerbüro Mitte", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": counters, "services": [], "calls": []}
    live = PushLive(snap)
    seq = iter(range(2, 100))

    def call(ticket: str, counter: str) -> None:
        live.push(
            "call",
            {"ticket": ticket, "counter": counter, "zone": "eg", "ts": 100.0 + next(seq), "seq": next(seq)},
        )

    server = make_server("127.0.0.1", 0, tiny_app(live), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/display/?sound=gong"
    done = "!window.waitroomDisplay.playing && window.waitroomDisplay.announced.length >= {}"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for phase in ("superseded", "old"):
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.add_init_script(TV_AUTOPLAY_RULE)
                page.clock.install()
                streams = len(live.queues)
                page.goto(url)
                wait_for(lambda n=streams: len(live.queues) > n)  # the page follows the stream
                if phase == "superseded":
                    call("A001", "c1")
                    page.wait_for_selector("#sound-on", state="visible")  # the browser refused the gong
                    call("A002", "c1")  # counter 1 moved on: A001 did not come
                    call("B001", "c2")
                    page.wait_for_function("document.getElementById('hero').dataset.ticket === 'B001'")
                    want = ["A002", "B001"]
                else:
                    call("C001", "c3")
                    page.wait_for_selector("#sound-on", state="visible")
                    page.clock.fast_forward("02:00")  # nobody clicked for two minutes
                    call("D001", "c2")
                    page.wait_for_function("document.getElementById('hero').dataset.ticket === 'D001'")
                    want = ["D001"]
                assert page.evaluate("window.waitroomDisplay.announced") == []
                page.click("#sound-on")
                page.wait_for_function(done.format(len(want)), timeout=20000)
                assert page.evaluate("window.waitroomDisplay.announced") == want, phase
                page.close()
            browser.close()
    finally:
        server.shutdown()


@pytest.mark.browser
def test_browser_display_keeps_a_burst_on_the_screen_until_each_call_is_announced(artifacts):
    """Twelve counters call within a second; the page announces one call after the other. When each gong
    begins the large panel shows that call and every call still to be announced is a highlighted row, also
    after a state that holds only the office's newest 10 calls (the page used to show the newest 7 only, and
    the newest in the panel while the gong was for another)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from tests.conftest import office_config

    n = 12
    counters = [
        {"id": f"c{i}", "name": {"de": f"Schalter {i}"}, "zone": "eg", "services": []}
        for i in range(1, n + 1)
    ]
    snap = {"name": "Bürgerbüro Mitte", "day": "2026-01-05", "seq": 1, "ts": 1767600000.0}
    snap |= {"counters": counters, "services": [], "calls": []}
    live = PushLive(snap)
    app = tiny_app(live)
    app.extensions["waitroom_config"] = office_config(1883, display={"call_gap_s": 0.2, "gong_pause_s": 0})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tickets = [f"A{i:03d}" for i in range(1, n + 1)]
    events = [
        {"ticket": t, "counter": f"c{i}", "zone": "eg", "ts": 1767600100.0 + i / 10, "seq": 10 + i}
        for i, t in enumerate(tickets, start=1)
    ]
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"http://127.0.0.1:{server.server_port}/display/?sound=gong")
            wait_for(lambda: live.queues)  # the page follows the stream
            for e in events:
                live.push("call", e)
            state = dict(
                snap, seq=10 + n, calls=[{k: e[k] for k in ("ticket", "counter", "ts")} for e in events]
            )
            state["calls"] = state["calls"][::-1][:10]  # the office's newest 10: not A001 and A002
            live.push("state", state)
            page.wait_for_function("window.waitroomDisplay.starts.length >= 2", timeout=20000)
            page.screenshot(path=str(artifacts / "display-web-burst.png"))
            page.wait_for_function(
                f"!window.waitroomDisplay.playing && window.waitroomDisplay.announced.length >= {n}",
                timeout=90000,
            )
            starts = page.evaluate("window.waitroomDisplay.starts")
            browser.close()
    finally:
        server.shutdown()
    assert [s["ticket"] for s in starts] == tickets  # in order, none lost
    for i, s in enumerate(starts):
        assert s["panel"] == s["ticket"], s
        rows = dict(s["rows"])
        if i == 0:
            continue  # (the first gong may begin before the last calls came)
        for later in tickets[i + 1 :]:
            assert rows.get(later) is True, (s["ticket"], later, rows)  # listed, highlighted
        assert all(rows.get(t) is False for t in tickets[max(0, i - 2) : i]), rows  # just announced: kept
