"""The staff page's alarm area: what is wrong in the office that concerns the clerk at this counter, said in
the clerk's words with what to do, live. Real controller, real mosquitto, node runtimes that publish their
health records as the nodes do (waitroom.node.NodeRuntime.set_health), Flask's test client, and a real
headless chromium for the live page.

Before, the staff page showed no alarm at all: a clerk did not learn that citizens wait for a service only
their counter could open, that the call display shows or says nothing (call out loud), or that the ticket
dispenser prints no tickets."""

from __future__ import annotations

import re

import pytest

from tests import test_e2e_web as e2e
from tests.conftest import _office_counter, office_config
from tests.web_helpers import PASSWORD, log_in, login, wait_for
from waitroom.contract import FaultCode

# the browser test's fixtures: the web app under gunicorn, a controller on a settable clock, chromium
web_server, controller, clock, browser = e2e.web_server, e2e.controller, e2e.clock, e2e.browser

ALARM_RE = re.compile(r'<div class="alarm" role="alert" id="alarm-([^"]+)"><p>(.*?)</p></div>', re.S)


@pytest.fixture
def cfg(broker):
    """The test office, with the controller's unstaffed_service alarm at once (no grace time) and a second
    call display (display-2, all zones)."""
    from waitroom.config import Node

    base = office_config(broker.port, office_id=f"sa{next(_office_counter)}")
    return base.model_copy(
        update={
            "controller": base.controller.model_copy(update={"unstaffed_alarm_after_s": 0}),
            "nodes": [*base.nodes, Node(id="display-2", role="display")],
        }
    )


@pytest.fixture
def app(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(
        cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True}
    )
    users = app.extensions["waitroom_users"]
    users.add("anna", PASSWORD, "staff")
    users.add("bernd", PASSWORD, "staff", ["c3"])
    users.add("kim", PASSWORD, "booking")
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    yield app
    live.close()


@pytest.fixture
def staff(app):
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    return c


def alarms(client, counter: str) -> dict[str, str]:
    """The alarms of a counter's alarm area as read: id -> text."""
    from html import unescape

    html = client.get(f"/staff/{counter}/alarms").get_data(as_text=True)
    assert html.startswith('<div id="alarms"'), html[:200]
    return {k: " ".join(unescape(re.sub(r"<[^>]+>", "", v)).split()) for k, v in ALARM_RE.findall(html)}


def test_an_unstaffed_service_of_this_counter_until_a_counter_serving_it_opens(app, staff, node):
    """Citizens wait for "Sonstiges" and its only counter (c3) closes: the controller's unstaffed_service
    alarm is on c3's page, in German with what to do; c1 (which does not serve it) does not show it. It ends
    when c3 opens again."""
    disp, c3 = node("disp-1"), node("counter-3")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "sonstiges"})
    assert alarms(staff, "c3") == {}
    c3.request("counter.close", {"counter": "c3"})
    said = wait_for(lambda: alarms(staff, "c3").get("unstaffed_service-sonstiges"), timeout=10)
    assert said.startswith("Achtung: Kein geöffneter Schalter ruft die Wartenden für Sonstiges auf (seit ")
    assert said.endswith("3 Personen warten. Bitte einen Schalter für Sonstiges öffnen.")
    assert "unstaffed" not in said
    page = staff.get("/staff/c3").get_data(as_text=True)  # the page as loaded has it too, as an alert
    assert 'role="alert" id="alarm-unstaffed_service-sonstiges"' in page
    assert alarms(staff, "c1") == {}  # not a service of counter 1
    assert 'id="alarm-' not in staff.get("/staff/c1").get_data(as_text=True)

    c3.request("counter.open", {"counter": "c3"})
    wait_for(lambda: alarms(staff, "c3") == {}, timeout=10)


def test_a_call_display_fault_says_call_out_loud_until_it_clears(app, staff, node):
    """The display node's health says its picture or its speech fails (the fields and codes the display
    publishes, contract.FAULT_FIELDS): every counter whose calls it shows is told to call out loud; the alarm
    ends with the fault. A display that goes offline is the same for the clerk."""
    display = node("display-1")
    display.set_health(display="ok", zone="all", speech="ok", audio="ok")
    assert alarms(staff, "c1") == {}

    display.set_health(
        display="error", display_error="RuntimeError('no video mode')", display_fault=FaultCode.FRAME_FAILED
    )
    said = wait_for(lambda: alarms(staff, "c1").get("display_fault-display-1"))
    assert said == (
        "Achtung: Die Aufrufanzeige display-1 zeigt keine Aufrufe (Bildfehler). Rufen Sie die Nummern laut "
        "auf."
    )
    assert "display_fault-display-1" in alarms(staff, "c4")  # no zone: it shows every counter's calls
    display.set_health(display="ok", display_error=None, display_fault=None)
    wait_for(lambda: alarms(staff, "c1") == {})

    display.set_health(speech="error: espeak-ng: not found", speech_fault=FaultCode.SPEECH_MISSING)
    said = wait_for(lambda: alarms(staff, "c1").get("speech_fault-display-1"))
    assert "sagt die Aufrufe nicht an" in said and said.endswith("Rufen Sie die Nummern laut auf.")
    assert "espeak" not in said and "speech_missing" not in said  # the clerk's words, not the technician's
    display.set_health(speech="ok", speech_fault=None)
    wait_for(lambda: alarms(staff, "c1") == {})

    # no sound at all (the output lost, a sound that did not play): no gong and no speech, said once
    display.set_health(audio="error", speech="error: timeout", speech_fault=FaultCode.SPEECH_TIMEOUT)
    said = wait_for(lambda: alarms(staff, "c1").get("sound_fault-display-1"))
    assert "gibt keinen Ton aus" in said and said.endswith("Rufen Sie die Nummern laut auf.")
    assert "speech_fault-display-1" not in alarms(staff, "c1")
    display.set_health(audio="ok", speech="ok", speech_fault=None)
    wait_for(lambda: alarms(staff, "c1") == {})

    display.stop()  # a clean stop says offline (as the last will would)
    said = wait_for(lambda: alarms(staff, "c1").get("display_offline-display-1"))
    assert "ist aus oder ohne Verbindung" in said and said.endswith("Rufen Sie die Nummern laut auf.")


def test_a_display_of_another_zone_does_not_concern_the_counter(cfg, tmp_path, node):
    """A display that shows only the upper floor's calls (zone og): its fault is an alarm at counter 4 (og),
    not at counter 1 (eg)."""
    from waitroom.config import Node
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    nodes = [*cfg.nodes, Node(id="display-og", role="display", zone="og")]
    cfg = cfg.model_copy(update={"nodes": nodes})
    ctl = ControllerService(cfg, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    app.extensions["waitroom_users"].add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    from waitroom.node import NodeRuntime

    display = NodeRuntime(cfg, "display-og")
    try:
        assert display.start(wait=10)
        client = app.test_client()
        assert login(client, "anna").status_code == 302
        display.set_health(display="error", display_fault=FaultCode.FRAME_FAILED, display_error="x")
        wait_for(lambda: "display_fault-display-og" in alarms(client, "c4"))
        assert alarms(client, "c1") == {}
    finally:
        display.stop()
        live.close()
        ctl.stop()


def test_a_dispenser_printer_fault_and_the_most_urgent_first(app, staff, node):
    """The ticket dispenser's printer fails (its health record as the dispenser publishes it): the clerk
    learns that nobody gets a number; paper out says to put in paper. With more alarms than the area shows,
    the most urgent come first and the rest are counted."""
    disp = node("disp-1")
    disp.set_health(
        status="error",
        printer="error",
        printer_error="printer 10.0.0.7:9100 not reachable: [Errno 113] No route to host",
        printer_fault=FaultCode.PRINTER_UNREACHABLE,
    )
    said = wait_for(lambda: alarms(staff, "c1").get("printer_fault-disp-1"))
    assert said == (
        "Achtung: Der Drucker des Ticketautomaten disp-1 druckt nicht: Niemand erhält eine Nummer. Bitte die "
        "Systembetreuung verständigen."
    )
    disp.set_health(status="ok", printer="ok", printer_error=None, printer_fault=None)
    wait_for(lambda: alarms(staff, "c1") == {})
    disp.set_health(status="error", printer="paper_out")
    said = wait_for(lambda: alarms(staff, "c1").get("paper_out-disp-1"))
    assert "kein Papier" in said and said.endswith("Bitte eine neue Papierrolle einlegen.")

    # four at once: three shown, the most urgent first, and "+1 weitere Meldung"
    display = node("display-1")
    display.set_health(speech="error: timeout", speech_fault=FaultCode.SPEECH_TIMEOUT)
    display.set_health(display="error", display_error="x", display_fault=FaultCode.FRAME_FAILED)
    live = app.extensions["waitroom"]
    live.request("intake.set", {"service": "melde", "open": False, "reason": "Annahmeschluss"})
    wait_for(lambda: "+1 weitere Meldung" in staff.get("/staff/c1/alarms").get_data(as_text=True))
    assert list(alarms(staff, "c1")) == [
        "display_fault-display-1",
        "speech_fault-display-1",
        "paper_out-disp-1",
    ]
    html = staff.get("/staff/c1/alarms").get_data(as_text=True)
    assert 'data-rest="alarm-intake_stopped-melde "' in html and "<a " not in html  # nothing to open
    # counter 5 (Führerschein only): the intake of Meldeangelegenheiten is none of its business
    assert list(alarms(staff, "c5")) == [
        "display_fault-display-1",
        "speech_fault-display-1",
        "paper_out-disp-1",
    ]
    assert "intake_stopped-melde" not in staff.get("/staff/c5/alarms").get_data(as_text=True)
    display.set_health(display="ok", display_error=None, display_fault=None)
    wait_for(lambda: "intake_stopped-melde" in alarms(staff, "c1"))
    assert alarms(staff, "c1")["intake_stopped-melde"] == (
        "Achtung: Annahme für Meldeangelegenheiten geschlossen: Der Ticketautomat gibt dafür keine Nummern "
        "mehr aus."
    )


def test_the_alarms_in_english(app, node):
    client = app.test_client()
    assert login(client, "anna").status_code == 302
    client.get("/staff/c1?lang=en")
    node("disp-1").set_health(printer="cover_open")
    said = wait_for(lambda: alarms(client, "c1").get("cover_open-disp-1"))
    assert said == (
        "Warning: The printer cover of the ticket dispenser disp-1 is open: nobody gets a number. Please "
        "close the cover."
    )


def test_no_connection_to_the_controller_is_said_once(cfg, tmp_path):
    """The controller stops: the staff page shows its last known state and now says that nothing it does
    reaches the controller (before, only an action's error said so). The panel's own "no data yet" is for a
    page without any state: the alarm is not said twice."""
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    ctl = ControllerService(cfg, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    app.extensions["waitroom_users"].add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    client = app.test_client()
    try:
        assert login(client, "anna").status_code == 302
        wait_for(lambda: live.state() is not None)
        assert alarms(client, "c2") == {}
        ctl.stop()
        said = wait_for(lambda: alarms(client, "c2").get("controller_offline"))
        assert said.startswith(
            "Achtung: Keine Verbindung zur Steuerung: Die Seite zeigt den letzten bekannten"
        )
        page = client.get("/staff/c2").get_data(as_text=True)
        assert page.count("Keine Verbindung zur Steuerung") == 1
        ctl = ControllerService(cfg, str(tmp_path / "events.db"))
        assert ctl.start(wait=10)
        wait_for(lambda: alarms(client, "c2") == {})
    finally:
        live.close()
        ctl.stop()


@pytest.mark.parametrize("path", ["/staff/c1/alarms", "/staff/c1/stream"])
def test_the_alarm_routes_need_a_staff_login_for_the_counter(app, path):
    anon = app.test_client()
    r = anon.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    bernd = app.test_client()  # may operate counter 3 only
    assert login(bernd, "bernd").status_code == 302
    assert bernd.get(path).status_code == 403
    kim = app.test_client()  # books appointments, operates no counter
    assert login(kim, "kim").status_code == 302
    r = kim.get(path)
    assert r.status_code == 302 and r.headers["Location"].endswith("/booking/")


@pytest.mark.browser
@pytest.mark.slow
def test_the_alarm_area_live_in_a_browser_said_once_at_320_px(web_server, browser, node, artifacts):
    """In a real chromium at 320 px width (400 % zoom of a 1280 px screen): the dispenser runs out of paper
    and the alarm appears on the open staff page without a reload, as an alert, said once: not again when the
    page fetches the area anew on the next state and node messages. With four alarms the area shows three
    and "+1 weitere Meldung"; when one above ends, the counted one comes up quietly (it is not new). When
    the fault clears the alarm goes. Nothing overflows the width; axe finds nothing."""
    from tests.test_a11y import axe_script, run_axe
    from tests.test_e2e_web import SAID_RECORDER

    disp = node("disp-1")
    page = browser.new_page(viewport={"width": 320, "height": 640}, locale="de-DE", bypass_csp=True)
    page.add_init_script(SAID_RECORDER)
    log_in(page, f"{web_server}/login?next=/staff/c1", "anna", "**/staff/c1")
    page.wait_for_load_state("load")
    page.wait_for_selector("#panel .now")
    assert page.locator("#alarms > *").count() == 0

    disp.set_health(status="error", printer="paper_out")
    alarm = page.wait_for_selector("#alarms > #alarm-paper_out-disp-1", timeout=10000)
    assert alarm.get_attribute("role") == "alert"
    assert alarm.inner_text().startswith("Achtung: Im Ticketautomaten disp-1 ist kein Papier")
    # the page fetches the area again on every state and node message: the alarm is not said again
    ticket = disp.request("ticket.issue", {"service": "pass"})["ticket"]["number"]
    page.wait_for_function(
        f"document.getElementById('panel').textContent.includes('{ticket}')", timeout=10000
    )
    disp.set_health(status="error", printer="paper_out", issued=1)
    page.wait_for_timeout(500)  # (no state to wait for: that nothing more is said)
    page.screenshot(path=str(artifacts / "staff-alarm-320.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert run_axe(page, axe_script()) == []

    # four alarms: three shown, the most urgent first; the dispenser's is counted
    one, two = node("display-1"), node("display-2")
    one.set_health(display="error", display_error="x", display_fault=FaultCode.FRAME_FAILED)
    two.set_health(display="error", display_error="x", display_fault=FaultCode.FRAME_FAILED)
    one.set_health(speech="error: timeout", speech_fault=FaultCode.SPEECH_TIMEOUT)
    page.wait_for_selector("#alarm-more:has-text('+1 weitere Meldung')", timeout=10000)
    shown = page.eval_on_selector_all("#alarms > [role=alert]", "els => els.map(e => e.id)")
    assert shown == [
        "alarm-display_fault-display-1",
        "alarm-display_fault-display-2",
        "alarm-speech_fault-display-1",
    ]
    assert page.locator("#alarm-paper_out-disp-1").count() == 0
    two.set_health(display="ok", display_error=None, display_fault=None)
    back = page.wait_for_selector("#alarms > #alarm-paper_out-disp-1", timeout=10000)
    assert back.get_attribute("role") is None  # going on all along: not said again
    assert page.locator("#alarm-more").count() == 0

    one.set_health(display="ok", display_error=None, display_fault=None, speech="ok", speech_fault=None)
    disp.set_health(status="ok", printer="ok")
    page.wait_for_selector("#alarms > *", state="detached", timeout=10000)
    said = [s["id"] for s in page.evaluate("window.__said") if s["id"].startswith("alarm")]
    assert said == [
        "alarm-paper_out-disp-1",
        "alarm-display_fault-display-1",
        "alarm-display_fault-display-2",
        "alarm-speech_fault-display-1",
    ], said


def test_the_controllers_clock_in_the_clerks_words(cfg, tmp_path, node):
    """A time sync steps the running controller's clock back behind its log (its clock_stepped_back alarm):
    the staff page says what that means at the counter, not the technician's task that the admin page
    names; it goes when the clock has caught up."""
    from waitroom.service import ControllerService
    from waitroom.web import create_app, health

    clock = e2e.SettableClock()
    ctl = ControllerService(cfg, str(tmp_path / "events.db"), clock=clock)
    assert ctl.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    app.extensions["waitroom_users"].add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    client = app.test_client()
    try:
        assert login(client, "anna").status_code == 302
        node("disp-1").request("ticket.issue", {"service": "pass"})  # the log has an event of today
        wait_for(lambda: live.state() is not None)
        clock.fixed = ctl.office.state.last_ts - 86400
        said = wait_for(lambda: alarms(client, "c1").get("clock_stepped_back"), timeout=10)
        assert said == (
            "Achtung: Die Uhr der Steuerung wurde um 1 Tg. 0 Std. zurückgestellt: Aufrufen geht weiter, aber "
            "die Wartezeiten stehen still, bis die Uhr aufgeholt hat."
        )
        (admin,) = health.alarms(cfg, "de", live.public_state())  # the admin page's words stay its own
        assert "Zeitsynchronisation" in admin.text and admin.code == "clock_stepped_back"
        clock.fixed = None
        wait_for(lambda: alarms(client, "c1") == {}, timeout=10)
    finally:
        clock.fixed = None
        live.close()
        ctl.stop()


def test_an_event_log_that_cannot_be_written_is_said_at_every_counter(cfg, tmp_path, node):
    """The controller's disk is full: every command is refused, so every clerk learns it (call out loud,
    tell the system support) until a write succeeds again."""
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    ctl = ControllerService(cfg, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    app.extensions["waitroom_users"].add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    client = app.test_client()
    db = ctl.office.store.db
    try:
        assert login(client, "anna").status_code == 302
        disp = node("disp-1")
        disp.request("ticket.issue", {"service": "pass"})
        wait_for(lambda: live.state() is not None)
        with ctl.lock:
            db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
        for _ in range(40):  # until the log's last page is full
            reply = disp.request_reply("ticket.issue", {"service": "pass"})
            if not reply["ok"]:
                break
        assert reply["error"]["code"] == "internal"
        for counter in ("c1", "c3"):
            said = wait_for(lambda c=counter: alarms(client, c).get("log_unwritable"), timeout=10)
            assert said.startswith("Achtung: Die Steuerung kann seit ") and "mündlich aufrufen" in said
        with ctl.lock:
            db.execute("PRAGMA max_page_count=1073741823")
        disp.request("ticket.issue", {"service": "pass"})
        wait_for(lambda: alarms(client, "c1") == {}, timeout=10)
    finally:
        live.close()
        ctl.stop()
