"""A ticket beyond its service's queue page (the first ``contract.QUEUE_PAGE`` waiting): a busy morning with
140 waiting for one service. The citizen at place 130 scans the QR code and is told "waiting, at least 100
before you, at least X minutes" -- not "not known today" (404) or "no longer waiting" as before.

A real controller, a real mosquitto and the real web app (two: one that saw the ticket issued, one started
afterwards that asks the controller once, ``ticket.show``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_e2e_web import browser, clock, controller, web_server  # noqa: F401 (fixtures)
from tests.test_no_show_return import said, spy_show
from tests.test_web import anon, app  # noqa: F401 (fixtures)
from tests.test_web_live import events
from tests.web_helpers import wait_for
from waitroom import contract

ISSUED = 140
PLACE = 130  # A130
MISSED = 135  # A135: cancelled while the web app missed the event


@pytest.fixture
def cfg(broker):
    """The test office, its dispenser allowed to draw 140 numbers in a moment."""
    from tests.conftest import _office_counter, office_config

    base = office_config(broker.port, office_id=f"b{next(_office_counter)}")
    return base.model_copy(
        update={"controller": base.controller.model_copy(update={"node_commands_per_s": 1000.0})}
    )


def second_web(cfg, data_dir):
    """A second web app of the office started now, beside the first (another worker: a client id of its own,
    or one would disconnect the other). It knows only what the retained state and queue pages tell it."""
    from waitroom.mqtt import MqttLink
    from waitroom.node import NodeRuntime
    from waitroom.web import create_app
    from waitroom.web.live import LiveOffice

    link = MqttLink(cfg.broker, cfg.office.id, "web", cfg.role_of("web"), client_suffix="-later")
    lv = LiveOffice(cfg, NodeRuntime(cfg, "web", link=link))
    assert lv.start(wait=10)
    secret = {"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True}
    web = create_app(cfg, data_dir=data_dir, live=lv, test_config=secret)
    wait_for(lambda: lv.state() is not None and len(lv.queues) == len(cfg.services))
    return web


def page_of(lv, service: str, *, total: int, seq: int) -> dict:
    """The service's queue page once the web app holds one of ``seq`` or later with ``total`` waiting."""
    return wait_for(
        lambda: (q := lv.queues.get(service)) and q["seq"] >= seq and q["total"] == total and q,
        timeout=10,
    )


def beyond_texts(html: str, eta: int) -> None:
    text = said(html)
    assert "Sie warten." in text
    assert f"Vor Ihnen warten mindestens {contract.QUEUE_PAGE} Personen." in text
    assert f"Voraussichtliche Wartezeit: mindestens {eta} Min." in text
    assert "Position" not in text and "nicht (mehr) bekannt" not in text


@pytest.mark.timeout(60)
def test_a_ticket_beyond_the_queue_page_waits_on_its_page(app, anon, cfg, controller, node, tmp_path):  # noqa: F811
    lv = app.extensions["waitroom"]
    disp = node("disp-1")

    def issue(_: int) -> dict:
        return disp.request("ticket.issue", {"service": "pass"})["ticket"]

    with ThreadPoolExecutor(8) as pool:  # a morning's crowd in a moment
        issued = list(pool.map(issue, range(ISSUED)))
    by_number = {t["number"]: t for t in issued}
    target, missed = by_number[f"A{PLACE:03d}"], by_number[f"A{MISSED:03d}"]
    page = page_of(lv, "pass", total=ISSUED, seq=controller.office.state.seq)
    assert len(page["tickets"]) == contract.QUEUE_PAGE
    assert target["id"] not in {w["id"] for w in page["tickets"]}
    eta = page["tickets"][-1]["eta_min"]
    assert eta and eta > 0  # four counters open: the page's last ticket has an expected wait

    # (a) the web app that saw it issued (event/ticket): its page, its JSON and its live stream
    r = anon.get(f"/t/{target['id']}")
    assert r.status_code == 200
    beyond_texts(r.get_data(as_text=True), eta)
    status = anon.get(f"/api/ticket/{target['id']}").get_json()
    assert status["state"] == "waiting" and status["ticket"] == target["number"]
    assert (status["ahead_at_least"], status["eta_min_at_least"]) == (contract.QUEUE_PAGE, eta)
    assert status["position"] is None and status["eta_min"] is None
    stream = anon.get(f"/api/ticket/{target['id']}/stream", buffered=False)
    name, data = next(events(stream.response))
    stream.close()
    assert (name, data["state"], data["ahead_at_least"]) == ("state", "waiting", contract.QUEUE_PAGE)
    beyond_texts(data["html"], eta)
    en = said(anon.get(f"/t/{target['id']}?lang=en").get_data(as_text=True))
    assert f"At least {contract.QUEUE_PAGE} people are waiting ahead of you." in en
    assert f"Expected wait: at least {eta} min" in en

    # (b) a web app started afterwards: it asks the controller once (ticket.show) and says the same
    asked = spy_show(controller.office)
    later = second_web(cfg, tmp_path / "web-later")
    try:
        visitor = later.test_client()
        for _ in range(3):
            r = visitor.get(f"/t/{target['id']}")
            assert r.status_code == 200
            beyond_texts(r.get_data(as_text=True), eta)
        assert asked == [[target["id"]]]  # once, whatever the views
    finally:
        later.extensions["waitroom"].close()

    # (d) A135 is cancelled and this app misses the event (a broker reconnect: events are not retained)
    number = missed["number"]
    stale = dict(lv._waiting_known[missed["id"]])
    assert disp.request("ticket.cancel", {"ticket": number})["ticket"]["state"] == "cancelled"
    wait_for(lambda: missed["id"] not in lv._waiting_known)
    lv._waiting_known[missed["id"]] = stale  # what a worker that missed the cancel still holds
    lv._left_queue.pop(number, None)
    lv._changed()
    # while the page is truncated it cannot tell: still waiting beyond the page
    assert lv.ticket_status(missed["id"])["state"] == "waiting"

    # (c) the queue shrinks (A001-A039 cancelled): 100 wait, A130 is on the page at its exact place
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: disp.request("ticket.cancel", {"ticket": f"A{n:03d}"}), range(1, 40)))
    page = page_of(lv, "pass", total=contract.QUEUE_PAGE, seq=controller.office.state.seq)
    place = [w["id"] for w in page["tickets"]].index(target["id"]) + 1
    assert PLACE - 39 - 5 <= place <= PLACE - 39 + 5  # (the page's order: expected waits, not numbers)
    text = said(anon.get(f"/t/{target['id']}?lang=de").get_data(as_text=True))
    assert f"Position {place} in der Warteschlange" in text and "mindestens" not in text
    assert anon.get(f"/api/ticket/{target['id']}").get_json()["position"] == place
    # (d) the page lists every waiting ticket of the service now, and not A135: no longer waiting
    r = anon.get(f"/t/{missed['id']}")
    assert r.status_code == 200 and "Diese Nummer wartet nicht mehr." in said(r.get_data(as_text=True))
    assert missed["id"] not in lv._waiting_known  # and forgotten
    lv._new_day("2099-01-01")  # another day: what the app knew to wait is gone with the day's tickets
    assert lv._waiting_known == {}


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_page_beyond_the_queue_page_is_accessible_and_moves_onto_the_exact_form_live(
    web_server,  # noqa: F811
    browser,  # noqa: F811
    node,
    artifacts,
):
    """axe finds nothing on the page of a ticket beyond its service's queue page in any language, it fits a
    320 px phone, and the open page takes its place and wait by its live stream once the queue shrinks."""
    from tests.test_a11y import WIDEST, axe_script, run_axe
    from waitroom import i18n

    script = axe_script()
    disp = node("disp-1")

    def issue(_: int) -> dict:
        return disp.request("ticket.issue", {"service": "pass"})["ticket"]

    with ThreadPoolExecutor(8) as pool:
        issued = {t["number"]: t for t in pool.map(issue, range(ISSUED))}
    target = issued[f"A{PLACE:03d}"]
    url = f"{web_server}/t/{target['id']}"
    page = browser.new_page(viewport={"width": 320, "height": 640}, bypass_csp=True)  # axe is injected
    found = {}
    for lang in i18n.LANGUAGES:
        page.goto("about:blank")  # ends the previous page's live stream
        page.goto(f"{url}?lang={lang}")
        page.wait_for_selector(f"#ticket [data-state=waiting]:has-text('{contract.QUEUE_PAGE}')")
        assert page.evaluate(WIDEST) == [], lang  # no sideways scrolling on a small phone
        violations = run_axe(page, script)
        if violations:
            found[lang] = violations
    assert found == {}, found
    page.goto(f"{url}?lang=de")
    page.wait_for_selector("#ticket:has-text('Vor Ihnen warten mindestens 100 Personen.')")
    page.screenshot(path=str(artifacts / "ticket-beyond-page.png"), full_page=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: disp.request("ticket.cancel", {"ticket": f"A{n:03d}"}), range(1, 40)))
    page.wait_for_selector("#ticket:has-text('in der Warteschlange')", timeout=10_000)  # its place, live
    assert "mindestens" not in page.inner_text("#ticket")
