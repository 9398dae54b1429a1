"""End to end in a real headless chromium (Debian package, driven by Playwright): `waitroom web --demo` under
gunicorn, the real controller and broker, an assistance node on mock pins.

A staff member logs in and calls the next ticket: the browser call display and the citizen's ticket status
page update live. An assistance request goes from a (virtual) press to acknowledge to resolve, with the
terminal's light checked on its pin. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.web_helpers import PASSWORD, log_in, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def cfg(broker):
    """The test office without the automatic intake stop: late in the evening 25 tickets would trip it."""
    from tests.conftest import _office_counter, office_config

    base = office_config(broker.port, office_id=f"e{next(_office_counter)}")
    steering = base.steering.model_copy(
        update={"intake_stop": base.steering.intake_stop.model_copy(update={"enabled": False})}
    )
    return base.model_copy(update={"steering": steering})


class SettableClock:
    """The controller's clock: the wall clock, or a time the test sets (a Pi that lost its time)."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        return time.time() if self.fixed is None else self.fixed


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def controller(cfg, tmp_path, clock):
    """The controller of tests/conftest.py, on a clock a test can set back (the wall clock until it does)."""
    from waitroom.service import ControllerService

    svc = ControllerService(cfg, str(tmp_path / "events.db"), clock=clock)
    assert svc.start(wait=10)
    yield svc
    svc.stop()


@pytest.fixture
def web_server(cfg, controller, tmp_path):
    from mqtt_broker.local import free_port, wait_for_port
    from waitroom.web.users import UserStore

    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
    store = UserStore(tmp_path / "web-users.db")
    store.add("anna", PASSWORD, "staff")
    store.add("root", PASSWORD, "admin")
    store.close()
    port = free_port()
    env = {**os.environ, "WAITROOM_SECRET_KEY": "e2e-secret-key-0123456789abcdef"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waitroom.cli",
            "web",
            "--config",
            str(conf),
            "--data-dir",
            str(tmp_path),
            "--bind",
            f"127.0.0.1:{port}",
            "--threads",
            "16",
            "--demo",
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
        (Path(__file__).resolve().parent.parent / "test-artifacts").mkdir(exist_ok=True)
        (Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e-web-server.log").write_bytes(out)


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


def test_staff_calls_next_display_and_ticket_page_update_live(web_server, browser, node, artifacts):
    ticket = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]
    node("disp-1").request("ticket.issue", {"service": "pass"})

    citizen = browser.new_page(viewport={"width": 390, "height": 740}, locale="de-DE")  # a phone
    citizen.goto(f"{web_server}/t/{ticket['id']}")
    citizen.wait_for_selector("#ticket-number")
    assert citizen.inner_text("#ticket-number") == "A001"
    assert "Position 1" in citizen.inner_text("#ticket")

    display = browser.new_page(viewport={"width": 1280, "height": 720}, locale="de-DE")
    display.goto(f"{web_server}/display/?sound=0")

    staff = browser.new_page(locale="de-DE")
    log_in(staff, f"{web_server}/staff/c1", "anna", "**/staff/c1")
    staff.screenshot(path=str(artifacts / "e2e-staff-login.png"), full_page=True)
    staff.wait_for_selector("text=Keine Nummer aufgerufen")
    citizen.wait_for_timeout(300)  # let the streams settle
    staff.keyboard.press("n")  # keyboard shortcut: next
    staff.wait_for_selector("#serving-number:has-text('A001')")

    citizen.wait_for_selector("[data-state=called]", timeout=5000)
    assert "Schalter 1" in citizen.inner_text("#ticket")
    display.wait_for_function("document.body.innerText.includes('A001')", timeout=5000)
    staff.screenshot(path=str(artifacts / "e2e-staff.png"), full_page=True)
    citizen.screenshot(path=str(artifacts / "e2e-ticket-phone.png"), full_page=True)
    display.screenshot(path=str(artifacts / "e2e-display.png"))

    en = browser.new_page()
    en.goto(f"{web_server}/waiting?lang=en")
    assert "ID card / passport" in en.inner_text("main")
    en.screenshot(path=str(artifacts / "e2e-public-waits.png"), full_page=True)


def test_assistance_press_acknowledge_resolve(
    web_server, browser, cfg, node, mock_pins, artifacts, controller
):
    from edge import assist

    sb = assist.create(node("sb-1"), cfg, cfg.node("sb-1"), pins=mock_pins, simulate=True)
    sb.start()
    try:
        demo = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE")
        demo.goto(f"{web_server}/demo/")
        staff = browser.new_page(locale="de-DE")
        log_in(staff, f"{web_server}/login?next=/staff/c3", "anna", "**/staff/c3")
        staff.wait_for_selector("text=Keine offenen Hilfeanfragen.")

        demo.click("button.sim[data-node='sb-1'][data-button='help'][data-action='press']")
        wait_for(lambda: sb.request_state == "pending", timeout=5)
        staff.wait_for_selector("li.assist-pending", timeout=5000)
        demo.wait_for_selector("#demo-assist:has-text('wartet auf Hilfe')", timeout=5000)
        demo.screenshot(path=str(artifacts / "e2e-demo-assist.png"), full_page=True)
        staff.screenshot(path=str(artifacts / "e2e-staff-assist.png"), full_page=True)

        staff.click("li.assist-pending button:has-text('Ich komme')")
        staff.wait_for_selector("text=Hilfe ist unterwegs.")
        wait_for(lambda: sb.request_state == "acknowledged", timeout=5)
        wait_for(lambda: sb.light.pin.state, timeout=2)
        staff.click("li.assist-acknowledged button:has-text('Erledigt')")
        staff.wait_for_selector("text=Hilfeanfrage erledigt.")
        wait_for(lambda: sb.request_state == "none", timeout=5)
        assert not sb.light.pin.state
        aid = next(iter(controller.office.state.assists))
        assert controller.office.state.assists[aid].state == "resolved"
        assert controller.office.state.assists[aid].counter == "c3"
    finally:
        sb.stop()


def test_fifty_keyboard_actions_the_panel_never_lies(web_server, browser, node, artifacts):
    """50 shortcuts in a row at the staff workstation (gunicorn gevent worker): right after each page load,
    before any live update could correct it, the panel shows the state that includes the action. No CSP
    violation on the way (scripts only from files)."""
    disp = node("disp-1")
    numbers = [disp.request("ticket.issue", {"service": "pass"})["ticket"]["number"] for _ in range(30)]
    page = browser.new_page(locale="de-DE")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    log_in(page, f"{web_server}/staff/c1", "anna", "**/staff/c1")

    plan = ["n", "s", "n", "x", "n", "r", "s", "n", "k"] * 6 + ["n", "s", "n", "s", "n", "x"]
    plan = plan[:50]
    queue = list(numbers)
    serving: str | None = None
    parked: list[str] = []
    for i, key in enumerate(plan):
        # the action's own POST (a live reload of the page on a busy machine is not the action's answer)
        with (
            page.expect_navigation(),
            page.expect_response(lambda r: r.request.method == "POST", timeout=30000),
        ):
            page.keyboard.press(key)
        page.wait_for_load_state("load")
        # read the panel at once: no waiting for a live event to fix a stale render
        shown = page.inner_text("#serving-number").strip()
        flash = " | ".join(page.locator("main .flash").all_inner_texts())
        if key == "n":
            serving = queue.pop(0)
            assert f"{serving} aufgerufen" in flash, (i, key, flash)
        elif key == "r":
            assert serving is not None
        else:
            if key == "k":
                parked.append(serving)
            serving = None
        if serving is None:
            assert shown == "Keine Nummer aufgerufen", (i, key, shown)
            assert page.query_selector("[data-key=s]") is None  # no Served button without a ticket
        else:
            assert shown == serving, (i, key, shown, serving)
            assert page.query_selector("[data-key=s]") is not None
        waiting_text = page.inner_text("#wait-h")
        assert f"({len(queue)})" in waiting_text, (i, key, waiting_text, len(queue))
        for p in parked:
            assert p in page.inner_text(".parked"), (i, p)
    page.screenshot(path=str(artifacts / "e2e-staff-50-actions.png"), full_page=True)
    csp = [p for p in problems if "Content Security Policy" in p or "Refused to" in p]
    assert not csp, csp


def test_admin_health_updates_live_and_a_refusal_reads_as_one_sentence(web_server, browser, node, artifacts):
    """The admin page's health lists follow the nodes live (the fragment is refreshed from the stream): a
    printer running out of paper turns into a marked "Achtung" line without a reload. At the workstation, a
    refused shortcut says one German sentence naming the counter, without the controller's English."""
    disp = node("disp-1")
    disp.set_health(printer="ok")
    admin = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE")
    log_in(admin, f"{web_server}/login?next=/admin/", "root", "**/admin/")
    printer = "ul.health[aria-label$=': disp-1'] li[data-key=printer]"
    admin.wait_for_selector(f"{printer}:has-text('Drucker: bereit')", timeout=5000)
    assert admin.get_attribute(printer, "class").strip() == ""
    disp.set_health(printer="paper_out")
    admin.wait_for_selector(f"{printer}.warn:has-text('Achtung: Drucker: kein Papier')", timeout=5000)
    admin.screenshot(path=str(artifacts / "e2e-admin-health.png"), full_page=True)

    staff = browser.new_page(locale="de-DE")
    log_in(staff, f"{web_server}/login?next=/staff/c2", "anna", "**/staff/c2")
    with staff.expect_navigation():
        staff.keyboard.press("n")  # nobody waits
    staff.wait_for_load_state("load")
    assert staff.locator("main .flash.error").all_inner_texts() == ["Für Schalter 2 wartet gerade niemand."]


# What a screen reader is told after the page has loaded: every node added inside a live region (an alert
# inserted, or anything added to a role=alert/status/log or aria-live region) and every text change inside
# one, as seen when the changes are done (as the browser's accessibility tree sees them after the task).
SAID_RECORDER = """
window.__said = [];
(function () {
  var LIVE = "[role=alert],[role=status],[role=log],[aria-live]:not([aria-live=off])";
  var loaded = false;
  window.addEventListener("load", function () { loaded = true; });
  function live(n) { var e = n.nodeType === 1 ? n : n.parentElement; return e && e.closest(LIVE); }
  function owner(n) {
    var e = n.nodeType === 1 ? n : n.parentElement, a = e && e.closest("[id]");
    return a ? a.id : "";
  }
  new MutationObserver(function (records) {
    if (!loaded) { return; }
    records.forEach(function (r) {
      if (r.type === "characterData") {
        if (live(r.target)) { window.__said.push({id: owner(r.target), text: r.target.textContent}); }
        return;
      }
      r.addedNodes.forEach(function (n) {
        var inner = n.nodeType === 1 && n.querySelector(LIVE);
        if (live(n) || inner) { window.__said.push({id: owner(n), text: n.textContent}); }
      });
    });
  }).observe(document, {subtree: true, childList: true, characterData: true});
})();
"""
CLOCK_ALARM = "Die Uhr der Steuerung wurde um {} hinter ihr Ereignisprotokoll zurückgestellt"


def test_admin_alarm_appears_updates_and_ends_live_said_once(
    web_server, browser, controller, clock, node, artifacts
):
    """The admin page follows the controller's alarms without a reload: a time sync steps the running
    controller's clock back behind its log and the alarm appears; it falls further behind and the same alarm
    element changes its text in place, quietly (a screen reader is told the alarm once, when it appears); once
    the clock has caught up it goes. The admin's focus stays where it was, and axe finds nothing on the page
    with the alarm. The queue section follows the state as well, but never under the admin's focus."""
    from tests.test_a11y import axe_script, run_axe

    node("disp-1").request("ticket.issue", {"service": "pass"})  # the log has an event of today
    # bypass_csp: axe and the recorder are injected (app.js and the fragments are static, as always)
    admin = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE", bypass_csp=True)
    admin.add_init_script(SAID_RECORDER)
    log_in(admin, f"{web_server}/login?next=/admin/", "root", "**/admin/")
    admin.wait_for_load_state("load")
    assert admin.locator("#alarms > *").count() == 0
    admin.focus("#mode-pass")  # the admin is about to change the intake of a service

    last = controller.office.state.last_ts
    clock.fixed = last - 86400  # stepped back a day behind its log (it goes on at the log's time)
    alarm = admin.wait_for_selector("#alarms > #alarm-clock_stepped_back", timeout=10000)
    assert CLOCK_ALARM.format("1 Tg. 0 Std.") in alarm.inner_text()
    assert alarm.get_attribute("role") == "alert"  # inserted as an alert: said once, now
    assert admin.evaluate("document.activeElement.id") == "mode-pass"
    admin.screenshot(path=str(artifacts / "e2e-admin-alarm.png"), full_page=True)
    assert run_axe(admin, axe_script()) == []

    clock.fixed = last - 3 * 86400  # further behind: the detail changes
    admin.wait_for_function(
        "document.querySelector('#alarm-clock_stepped_back p').textContent.includes('3 Tg. 0 Std.')",
        timeout=10000,
    )
    same = "(el) => el === document.getElementById('alarm-clock_stepped_back')"
    assert admin.evaluate(same, alarm)  # the same node
    assert alarm.get_attribute("role") is None  # no longer an alert: its new text is not said again
    assert admin.evaluate("document.activeElement.id") == "mode-pass"
    assert admin.locator("#alarms > *").count() == 1

    clock.fixed = None  # caught up: the clock is in step again
    admin.wait_for_selector("#alarm-clock_stepped_back", state="detached", timeout=10000)
    assert admin.evaluate("document.activeElement.id") == "mode-pass"
    said = admin.evaluate("window.__said")
    assert [s["id"] for s in said] == ["alarm-clock_stepped_back"], said  # said once, when it appeared
    assert CLOCK_ALARM.format("1 Tg. 0 Std.") in said[0]["text"]

    # the queue section is live too: it was not swapped while the focus was in its intake form (the focus
    # stayed above through every state message); once the admin leaves it, a new ticket shows without a reload
    admin.evaluate("document.activeElement.blur()")
    ticket = node("disp-1").request("ticket.issue", {"service": "melde"})["ticket"]["number"]
    shows = f"document.getElementById('queue').textContent.includes('{ticket}')"
    admin.wait_for_function(shows, timeout=10000)

    # without JavaScript the page shows the alarms of its load, as alerts
    clock.fixed = last - 86400
    no_js = browser.new_context(java_script_enabled=False, locale="de-DE")
    page = no_js.new_page()
    log_in(page, f"{web_server}/login?next=/admin/", "root", "**/admin/")

    def alarm_on_load() -> bool:
        page.reload()
        return page.locator("#alarm-clock_stepped_back").count() == 1

    wait_for(alarm_on_load, timeout=10, step=0.2)
    assert page.get_attribute("#alarm-clock_stepped_back", "role") == "alert"
    assert CLOCK_ALARM.format("1 Tg. 0 Std.") in page.inner_text("#alarm-clock_stepped_back")
    no_js.close()


def test_a_held_key_or_a_double_click_sends_one_action(web_server, browser, node):
    """Holding the "n" key down repeats its keydown, and each repeat sent the form again (the browser gave
    up the page's navigation on the way). One call, and no refusal of a repeat on the page that answers; a
    double click on a button sends its form once too (the browser's own doing, checked here)."""
    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    page = browser.new_page(locale="de-DE")
    log_in(page, f"{web_server}/staff/c1", "anna", "**/staff/c1")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    with page.expect_navigation():
        for _ in range(4):
            page.keyboard.down("n")  # the second and later keydowns are repeats (a key held down)
        page.keyboard.up("n")
    page.wait_for_load_state("load")
    assert page.inner_text("#serving-number").strip() == "A001"
    assert posts == [f"{web_server}/staff/c1/next"], posts
    assert page.locator("main .flash.error").count() == 0
    with page.expect_navigation():
        page.dblclick("[data-key=s]")  # served, double-clicked
    page.wait_for_load_state("load")
    assert posts[1:] == [f"{web_server}/staff/c1/served"], posts
    assert page.locator("main .flash.error").count() == 0
    assert page.inner_text("#serving-number").strip() == "Keine Nummer aufgerufen"


def test_closing_the_last_counter_of_a_service_asks_in_a_dialog(
    web_server, browser, controller, node, artifacts
):
    """c3 is the only counter for "Sonstiges", and 12 citizens wait for it: its close button opens a modal
    dialog with the question (the focus on "cancel"); cancel (or Escape) sends nothing and gives the focus
    back to the button, the counter stays open; the answer yes closes it. axe finds nothing with the dialog
    open."""
    from tests.test_a11y import axe_script, run_axe

    disp = node("disp-1")
    for _ in range(12):
        disp.request("ticket.issue", {"service": "sonstiges"})
    counters = controller.office.state.counters
    page = browser.new_page(locale="de-DE", bypass_csp=True)  # bypass_csp: axe is injected
    log_in(page, f"{web_server}/staff/c3", "anna", "**/staff/c3")
    page.wait_for_selector("form[data-ask*='12 Wartende für Sonstiges']", timeout=10000)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    close = "form[action='/staff/c3/close'] button[type=submit]"
    page.click(close)
    dialog = page.wait_for_selector("dialog#ask[open]")
    said = dialog.inner_text()
    assert "12 Wartende für Sonstiges; kein anderer Schalter bedient Sonstiges." in said
    assert "Trotzdem schließen?" in said
    assert page.evaluate("document.activeElement.textContent") == "Abbrechen (Schalter bleibt geöffnet)"
    assert page.evaluate("document.getElementById('ask').matches(':modal')")
    page.screenshot(path=str(artifacts / "e2e-staff-ask-close.png"), full_page=True)
    assert run_axe(page, axe_script()) == []
    page.click("dialog#ask button[value=cancel]")
    page.wait_for_selector("dialog#ask", state="hidden")
    assert page.evaluate(f'document.activeElement === document.querySelector("{close}")')
    page.keyboard.press("p")  # pause (shortcut): asked too; Escape answers no
    page.wait_for_selector("dialog#ask[open]")
    assert "Trotzdem pausieren?" in page.inner_text("dialog#ask")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#ask", state="hidden")
    assert posts == [] and counters["c3"].state == "open"

    page.click(close)
    page.wait_for_selector("dialog#ask[open]")
    with page.expect_navigation():
        page.click("dialog#ask button[value=yes]")
    page.wait_for_load_state("load")
    assert posts == [f"{web_server}/staff/c3/close"], posts
    assert counters["c3"].state == "closed"
    assert page.inner_text("main .flash.ok") == "Schalter geschlossen."
