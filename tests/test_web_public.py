"""The office web app's public side as the city website and a 115 agent use it from outside: every method and
HEAD on the public routes, live streams that are never read, and the office's state when its controller is
away. Flask's test client against a real mosquitto and the real controller (fixtures of tests/test_web.py)."""

from __future__ import annotations

import html as html_mod
import json
import re

import pytest

from tests.test_web import admin, anon, app, staff  # noqa: F401 (fixtures)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/waiting", {"GET", "HEAD", "OPTIONS"}),
        ("/api/public", {"GET", "HEAD", "OPTIONS"}),
        ("/api/state", {"GET", "HEAD", "OPTIONS"}),
        ("/checkin", {"GET", "HEAD", "OPTIONS", "POST"}),
    ],
)
def test_a_wrong_method_is_405_naming_the_allowed_ones(anon, path, allowed):  # noqa: F811
    """RFC 9110 15.5.6: a 405 carries ``Allow``. The app's own error pages dropped werkzeug's header."""
    for method in ("PUT", "DELETE", "PATCH", *(() if "POST" in allowed else ("POST",))):
        r = anon.open(path, method=method, headers={"Accept": "application/json"})
        assert r.status_code == 405, (path, method)
        assert set(r.headers["Allow"].replace(" ", "").split(",")) == allowed, (path, method)
        assert r.get_json()["error"]["code"] == "not_allowed"
    r = anon.put(path)  # the HTML error page too (the API's paths answer JSON anyway)
    assert r.status_code == 405 and "Allow" in r.headers
    assert r.mimetype == ("application/json" if path.startswith("/api/") else "text/html")


def test_head_answers_like_get_without_a_body(anon):  # noqa: F811
    """HEAD /checkin ran the form's POST branch (the view asked ``method == "GET"``): 400 where GET is 200."""
    for path in ("/waiting", "/api/public", "/checkin", "/checkin?code=ABC123", "/a/ABC123"):
        get, head = anon.get(path), anon.head(path)
        assert get.status_code == 200, path
        assert (head.status_code, head.mimetype) == (get.status_code, get.mimetype), path
        assert head.data == b"", path


def test_a_stream_that_is_never_read_gives_its_slot_back(app, anon):  # noqa: F811
    """HEAD on a live stream (or a client that leaves before the first byte) never starts the generator, so
    its ``finally`` never ended the subscription: every such request held one of ``max_streams`` slots for
    good, and enough of them answered every phone's live page with 503."""
    live = app.extensions["waitroom"]
    before = live.stream_count
    for _ in range(5):
        for path in ("/api/stream", "/api/ticket/abcdef/stream"):
            with anon.head(path) as r:  # closed as a WSGI server closes it
                assert r.status_code == 200 and r.data == b""
    assert live.stream_count == before


def test_waits_of_a_stopped_controller_are_not_shown_as_current(app, anon, controller, node):  # noqa: F811
    """The office state is retained on the broker: with the controller gone, /waiting and /api/public went on
    showing its last minutes as current, for hours. Now the office is ``stale`` (since when its status said
    offline) in the JSON, the page says there is no current data instead of the old minutes, and open pages
    hear of it at once (a ``controller`` event on the stream)."""
    from tests.web_helpers import wait_for

    node("disp-1").request("ticket.issue", {"service": "pass"})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["services"][0]["waiting"] == 1)
    office = anon.get("/api/public").get_json()["offices"][0]
    assert (office["status"], office["stale_since"]) == ("live", None)
    assert "Keine aktuellen Daten" not in anon.get("/waiting").get_data(as_text=True)
    with live.subscribe() as sub:
        controller.stop()
        wait_for(lambda: anon.get("/api/public").get_json()["offices"][0]["status"] == "stale")
        assert any(m.startswith("event: controller") for m in sub.buffer)
    office = anon.get("/api/public").get_json()["offices"][0]
    assert isinstance(office["stale_since"], float) and office["services"][0]["waiting"] == 1
    html = anon.get("/waiting").get_data(as_text=True)
    assert "Keine aktuellen Daten" in html and "ca. " not in html
    assert "No current data" in anon.get("/waiting?lang=en").get_data(as_text=True)


def test_pages_hear_when_the_web_app_loses_the_broker_and_gets_it_back(app, anon):  # noqa: F811
    """This app's own broker link drops (a mosquitto restart, a network blip): its copy of the office is no
    longer current, and the open pages that show it (public waits, the admin's alarms) hear of it at once and
    again when the link is back (a ``link`` event on the stream), not only at the next state message."""
    import socket

    from tests.web_helpers import wait_for

    live = app.extensions["waitroom"]
    assert 'data-live-events="state,controller,link"' in anon.get("/waiting").get_data(as_text=True)

    def said(online: bool) -> bool:
        event = 'event: link\ndata: {"online":%s}\n\n' % ("true" if online else "false")
        return event in sub.buffer

    with live.subscribe() as sub:
        live.runtime.link.client.socket().shutdown(socket.SHUT_RDWR)
        wait_for(lambda: said(False))  # the link is down
        wait_for(lambda: said(True), timeout=15)  # and back
    wait_for(lambda: anon.get("/api/public").get_json()["offices"][0]["status"] == "live")


def _attr(html: str, name: str) -> str:
    import re

    m = re.search(rf'{name}="([^"]*)"', html)
    assert m, name
    return html_mod.unescape(m.group(1))


def test_each_tab_s_live_updates_stay_in_that_tab_s_language(app, anon, staff, node):  # noqa: F811
    """The tabs of one browser share the session. The live fragments and streams were fetched without the
    page's language, so they came in the session's: a citizen who opened the ticket page in Turkish and then
    the waiting times in Arabic got the Turkish tab's updates in Arabic. Each tab's updates now carry its
    language, and fetching them does not switch the language of the next page the citizen opens."""
    from tests.web_helpers import wait_for
    from waitroom.i18n import t

    tid = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]["id"]
    live = app.extensions["waitroom"]
    wait_for(lambda: live.ticket_status(tid)["state"] == "waiting")
    ticket_tab = anon.get(f"/t/{tid}?lang=tr").get_data(as_text=True)
    waits_tab = anon.get("/waiting?lang=ar").get_data(as_text=True)  # the session is Arabic from here on
    assert 'lang="ar"' in waits_tab

    fragment = anon.get(_attr(ticket_tab, "data-live-fragment")).get_data(as_text=True)
    assert t("web.ticket.waiting", "tr") in fragment and t("web.ticket.waiting", "ar") not in fragment
    with anon.get(_attr(ticket_tab, "data-live-src"), buffered=False) as r:
        first = ""
        for chunk in r.response:
            first += chunk.decode()
            if "event: state" in first and first.endswith("\n\n"):
                break
    data = json.loads(first.split("event: state\ndata: ", 1)[1].split("\n", 1)[0])
    assert t("web.ticket.waiting", "tr") in data["html"] and t("web.ticket.waiting", "ar") not in data["html"]
    # the Turkish tab's updates left the session Arabic: the next page opened without a language is Arabic
    assert t("web.public.title", "ar") in anon.get("/waiting").get_data(as_text=True)

    anon.get("/waiting?lang=en")  # and the Arabic tab's own updates stay Arabic whatever the session says
    waits = anon.get(_attr(waits_tab, "data-live-fragment")).get_data(as_text=True)
    assert t("web.service", "ar") in waits and t("web.service", "en") not in waits

    # staff pages (German or English) likewise: an English workstation tab beside a German one
    station = staff.get("/staff/c1?lang=en").get_data(as_text=True)
    staff.get("/staff/c1?lang=de")
    panel = staff.get(_attr(station.split('id="panel"', 1)[1], "data-live-fragment")).get_data(as_text=True)
    assert t("web.staff.now", "en") in panel and t("web.staff.now", "de") not in panel
    assert "lang=en" in _attr(station.split('id="alarms"', 1)[1], "data-live-fragment")  # its alarms too
    assert 'lang="de"' in staff.get("/staff/c1").get_data(as_text=True)


def test_the_admin_page_s_live_sections_stay_in_its_language(admin):  # noqa: F811
    import re

    from waitroom.i18n import t

    page = admin.get("/admin/?lang=en").get_data(as_text=True)
    admin.get("/admin/?lang=de")
    urls = [html_mod.unescape(u) for u in re.findall(r'data-live-fragment="([^"]*)"', page)]
    assert len(urls) == 3
    for url in urls:
        r = admin.get(url)
        assert r.status_code == 200 and "lang=en" in url, url
    queue = admin.get(next(u for u in urls if "/queue" in u)).get_data(as_text=True)
    assert t("web.waiting", "en") in queue and t("web.waiting", "de") not in queue


def test_a_reservation_page_follows_its_ticket_in_its_own_language(cfg, tmp_path):
    """A remote ticket's page (``/t/<code>``) polls its reservation and, once checked in, goes on to the
    ticket's page. That address carried no language, so the ticket's page came in the session's: the language
    another tab had chosen last."""
    import re

    from tests.test_remote_tickets import with_city
    from tests.web_helpers import wait_for
    from waitroom.i18n import t
    from waitroom.node import NodeRuntime
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    office = with_city(cfg)
    ctl = ControllerService(office, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    nodes = [NodeRuntime(office, "city"), NodeRuntime(office, "disp-1")]
    web = None
    try:
        for rt in nodes:
            assert rt.start(wait=10)
        web = create_app(office, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
        wait_for(lambda: web.extensions["waitroom"].state() is not None)
        citizen = web.test_client()
        code = nodes[0].request("ticket.reserve", {"service": "pass"})["reservation"]["code"]
        page = citizen.get(f"/t/{code}?lang=tr").get_data(as_text=True)
        assert t("web.ticket.reserved", "tr") in page
        citizen.get("/waiting?lang=ar")  # another tab
        nodes[1].request("appointment.checkin", {"code": code})
        poll = _attr(page, "data-poll")

        def followed() -> str | None:
            m = re.search(r'data-goto="([^"]*)"', citizen.get(poll).get_data(as_text=True))
            return html_mod.unescape(m.group(1)) if m else None

        goto = wait_for(followed, timeout=15, step=0.5)  # the reservation's state is cached for a few seconds
        ticket = citizen.get(goto).get_data(as_text=True)
        assert 'lang="tr"' in ticket and t("web.ticket.waiting", "tr") in ticket
    finally:
        if web is not None:
            web.extensions["waitroom"].close()
        for rt in nodes:
            rt.stop()
        ctl.stop()


def test_a_reserved_place_is_not_called_unknown_while_the_controller_is_away(
    app,  # noqa: F811
    anon,  # noqa: F811
    node,
    controller,
    monkeypatch,
):
    """A remote ticket's page asks the controller about its code. Without an answer (a restart, an update)
    it said "Diese Nummer ist heute nicht (mehr) bekannt." (404), and the open page of a citizen on the way
    swapped that in at its next poll: as if the reservation had lapsed. Now only the controller's
    ``unknown_reservation`` makes a code unknown; without an answer the page keeps the last status it had (the
    "be there by" holds), and a code it never had is "no data" (503), not unknown."""
    from waitroom.i18n import t
    from waitroom.web import public

    monkeypatch.setattr(public, "RESERVATION_CACHE_S", 0.0)  # ask the controller on every request
    monkeypatch.setattr(public, "RESERVATION_ASK_S", 0.3)
    web = node("web")
    seen, never = (web.request("ticket.reserve", {"service": "pass"})["reservation"]["code"] for _ in "12")
    reserved = html_mod.escape(t("web.ticket.reserved", "de"), quote=False)
    assert reserved in anon.get(f"/t/{seen}").get_data(as_text=True)
    controller.stop()
    for path in (f"/t/{seen}", f"/t/{seen}?fragment=1"):
        r = anon.get(path)
        page = r.get_data(as_text=True)
        assert r.status_code == 200 and reserved in page and seen in page, path
        assert t("web.ticket.unknown", "de") not in page
    assert anon.get(f"/api/ticket/{seen}").get_json()["state"] == "reserved"
    for path in (f"/t/{never}", f"/t/{never}?fragment=1"):  # ticket.js keeps what it shows on a 503
        r = anon.get(f"{path}{'&' if '?' in path else '?'}lang=en")
        page = r.get_data(as_text=True)
        assert r.status_code == 503 and t("web.no_state", "en") in page, path
        assert t("web.ticket.unknown", "en") not in page
    r = anon.get(f"/api/ticket/{never}")
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "unavailable"


def test_a_ticket_page_before_the_office_s_state_is_here_says_no_data_not_unknown(cfg, tmp_path):
    """A web app without the office's state (just started, or no broker yet) said of every ticket "not known
    (any more) today" with a 404; it knows nothing of the office yet, so it says "no data yet" (503)."""
    from waitroom.i18n import t
    from waitroom.web import create_app

    web = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    try:
        assert web.extensions["waitroom"].state() is None  # no controller runs for this office
        r = web.test_client().get("/t/abcdef0123?lang=tr")
        assert r.status_code == 503 and html_mod.escape(t("web.no_state", "tr")) in r.get_data(as_text=True)
        r = web.test_client().get("/api/ticket/abcdef0123")
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "unavailable"
    finally:
        web.extensions["waitroom"].close()


@pytest.mark.parametrize("lang", ["tr", "ar", "de-LS"])
def test_an_unknown_ticket_is_a_404_that_says_so_in_the_page_s_language(app, anon, lang):  # noqa: F811
    """A ticket page for a number the office does not know (a typo, yesterday's ticket) answered 200, as if
    it were a ticket; the API said 404 for the same number. Now the page is a 404 too, saying in the chosen
    language that the number is not known, and so is a malformed one (the general "page not found"). The
    fragment of an open page stays 200: app.js swaps in only what answers 200."""
    from waitroom.i18n import t, text_dir

    for path in ("/t/unknown0000", "/t/ZZZZZZ"):  # a ticket id, a reservation code
        r = anon.get(f"{path}?lang={lang}")
        page = r.get_data(as_text=True)
        assert r.status_code == 404, path
        assert f'<html lang="{lang}" dir="{text_dir(lang)}">' in page
        assert html_mod.escape(t("web.ticket.unknown", lang), quote=False) in page, path
        assert anon.get(f"{path}?fragment=1&lang={lang}").status_code == 200
    for path in ("/t/x", "/t/" + "a" * 41, "/t/a%20b%3Cc", "/t/%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC"):
        r = anon.get(f"{path}?lang={lang}")
        assert r.status_code == 404, path
        assert html_mod.escape(t("web.not_found", lang), quote=False) in r.get_data(as_text=True), path


def test_the_check_in_form_answers_in_its_tab_s_language(anon):  # noqa: F811
    """The check-in form was posted without its page's language: a citizen who opened it in Turkish and the
    waiting times in Arabic in another tab read the refusal (and then the ticket page) in Arabic."""
    import re

    from tests.web_helpers import csrf_token
    from waitroom.i18n import t

    form = anon.get("/checkin?lang=tr").get_data(as_text=True)
    action = html_mod.unescape(re.search(r'<form method="post" action="([^"]*)"', form).group(1))
    anon.get("/waiting?lang=ar")  # another tab
    r = anon.post(action, data={"code": "", "csrf_token": csrf_token(anon, "/checkin")})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and '<html lang="tr" dir="ltr">' in page
    assert t("web.ticket.checkin_code_missing", "tr") in page


def test_an_expired_check_in_form_keeps_the_code(app, anon):  # noqa: F811
    """A phone's check-in page left open since the day before (its session gone, the form's token with it)
    answered "The form has expired. Please reload the page." on a page without the form: the code typed was
    lost, and reloading posted the same stale token again. Now the form comes back with the code, a fresh
    token and a sentence at the field; pressing the button again reaches the office."""
    import re

    from waitroom.i18n import t

    form = anon.get("/checkin?lang=uk").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    phone = app.test_client()  # the next morning: no session any more
    r = phone.post("/checkin?lang=uk", data={"code": " X3NERJ ", "csrf_token": token})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and '<html lang="uk"' in page
    assert 'value="X3NERJ"' in page and t("web.ticket.checkin_failed", "uk") in page
    assert 'aria-invalid="true"' in page and 'href="?code=X3NERJ&amp;lang=tr"' in page  # links keep it
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    again = phone.post("/checkin?lang=uk", data={"code": "X3NERJ", "csrf_token": fresh})
    assert again.status_code == 404  # the office's answer: no such booking (not the form again)
    assert t("web.ticket.checkin_unknown", "uk") in again.get_data(as_text=True)


def test_a_name_the_office_has_only_in_german_is_marked_as_german(app, anon, node):  # noqa: F811
    """WCAG 3.1.2 (language of parts): the example office names its services and counters in German and
    English only, so a Turkish or Arabic page shows "Meldeangelegenheiten" and "Schalter 1", and a screen
    reader read them with the page's Turkish or Arabic voice. They are now marked ``lang="de"``; a name the
    office has in the page's language is not."""
    import re

    from tests.web_helpers import wait_for

    de_name = '<span lang="de" dir="ltr">Meldeangelegenheiten</span>'
    for lang in ("tr", "ar", "uk"):
        page = anon.get(f"/waiting?lang={lang}").get_data(as_text=True)
        assert f'<td role="cell">{de_name}</td>' in page, lang
        fragment = anon.get(f"/waiting?fragment=1&lang={lang}").get_data(as_text=True)
        assert de_name in fragment, lang
    for lang in ("de", "de-LS", "en"):
        assert 'lang="de" dir="ltr">Melde' not in anon.get(f"/waiting?lang={lang}").get_data(as_text=True)
    english = anon.get("/waiting?lang=en").get_data(as_text=True)
    assert '<td role="cell">Registration of address</td>' in english

    ticket = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]
    node("counter-1").request("counter.call_next", {"counter": "c1"})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.ticket_status(ticket["id"])["state"] == "called")
    page = anon.get(f"/t/{ticket['id']}?lang=tr").get_data(as_text=True)
    called = re.search(r'<p class="status called" role="alert">(.*?)</p>', page).group(1)
    assert '<span lang="de" dir="ltr">Schalter 1</span>' in called and "&lt;" not in called
    assert 'data-warn="Sıra sizde! Gideceğiniz yer: Schalter 1"' in page  # the notification: words only
    en = anon.get(f"/t/{ticket['id']}?lang=en").get_data(as_text=True)
    assert "please go to Counter 1!" in en.replace("&#39;", "'") and 'lang="de" dir="ltr">Counter' not in en


def test_switching_language_after_a_check_in_refusal_keeps_the_code(anon):  # noqa: F811
    """A refusal read in a language the citizen does not read: the language links of the answer led to an
    empty check-in form (the code was in the POST, not in the page's query), so switching lost the code."""
    import re

    from tests.web_helpers import csrf_token

    r = anon.post("/checkin?lang=ar", data={"code": " X3NERJ ", "csrf_token": csrf_token(anon, "/checkin")})
    assert r.status_code == 404
    links = {
        m.group(2): html_mod.unescape(m.group(1))
        for m in re.finditer(
            r'<a href="([^"]*)" lang="([^"]+)" dir="[^"]+" hreflang=', r.get_data(as_text=True)
        )
    }
    assert links["tr"] == "?code=X3NERJ&lang=tr", links
    assert 'value="X3NERJ"' in anon.get("/checkin" + links["tr"]).get_data(as_text=True)


@pytest.mark.parametrize("lang", ["de", "tr", "ar"])
def test_a_wait_under_a_minute_is_said_so_not_as_about_0_minutes(app, anon, node, lang):  # noqa: F811
    """The first in line at an office with a free counter is expected in 0 minutes: the ticket page and the
    waiting times say "weniger als 1 Min." (in the page's language), not "ca. 0 Min."."""
    from tests.web_helpers import wait_for
    from waitroom.i18n import t, tn

    tid = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]["id"]
    live = app.extensions["waitroom"]
    wait_for(lambda: live.ticket_status(tid).get("eta_min") == 0)
    page = html_mod.unescape(anon.get(f"/t/{tid}?lang={lang}").get_data(as_text=True)).replace("\u00a0", " ")
    assert t("wait.under_minute", lang) in page
    assert tn("wait.minutes", 0, lang, minutes=0) not in page
    waits = html_mod.unescape(anon.get(f"/waiting?lang={lang}").get_data(as_text=True)).replace("\u00a0", " ")
    assert tn("wait.minutes", 0, lang, minutes=0) not in waits


def test_the_ticket_page_names_the_service_and_says_what_the_minutes_are(app, anon, node):  # noqa: F811
    """The page the ticket's QR code opens showed the number, the position and a bare "ca. 4 Min.": now it
    names the service the ticket is for, in the page's language, and says that the minutes are the expected
    wait, with the number kept with its unit."""
    from tests.web_helpers import wait_for

    tid = node("disp-1").request("ticket.issue", {"service": "melde"})["ticket"]["id"]
    live = app.extensions["waitroom"]
    wait_for(lambda: live.ticket_status(tid).get("position") == 1)  # on its queue page: its place and wait
    de = anon.get(f"/t/{tid}?lang=de").get_data(as_text=True)
    assert '<p class="service" id="ticket-service">Meldeangelegenheiten</p>' in de
    eta = re.search(r'<p id="ticket-eta">Voraussichtliche Wartezeit: ([^<]*)</p>', de)
    assert eta and not re.search(r"\d | \d", eta.group(1)), de  # "ca. 12 Min." as one word
    en = anon.get(f"/t/{tid}?lang=en").get_data(as_text=True)
    assert 'id="ticket-service">Registration of address</p>' in en
    assert '<p id="ticket-eta">Expected wait: ' in en
