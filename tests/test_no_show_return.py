"""A citizen marked "not appeared" who comes back is called again (``counter.call_ticket``) within
``controller.no_show_return_min`` minutes of the no-show; later the number has expired.

The rules on the real controller and a real SQLite log with a set clock; the same after a SIGKILL of
the controller process (a real mosquitto, its time from a clock file); the staff page's list in a real
chromium and the citizen's ticket page through the real web app."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from tests.test_controller import Clock, cmd, err, ok
from tests.test_crash_recovery import start_controller, write_config
from tests.test_e2e_web import browser, cfg, clock, controller, web_server  # noqa: F401 (fixtures)
from tests.test_web import anon, app, post, staff  # noqa: F401 (fixtures)
from tests.test_web_live import events
from tests.web_helpers import log_in, wait_for
from waitroom import config
from waitroom.controller import Office
from waitroom.node import NodeRuntime
from waitroom.predict import ServiceTimes
from waitroom.store import EventStore
from waitroom.web import stats

TZ = ZoneInfo("Europe/Berlin")
MONDAY_9 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ).timestamp()


@pytest.fixture
def day_clock() -> Clock:
    return Clock(MONDAY_9)


def example(minutes: int | None = None) -> config.Config:
    base = config.load(config.EXAMPLE_CONFIG)
    if minutes is None:
        return base
    return base.model_copy(
        update={"controller": base.controller.model_copy(update={"no_show_return_min": minutes})}
    )


@pytest.fixture
def office(tmp_path, day_clock):
    store = EventStore(tmp_path / "events.db")
    yield Office(example(), store, clock=day_clock)
    store.close()


def step(clk: Clock, minutes: float) -> None:
    clk.t += minutes * 60


def no_show_a001(office: Office, clk: Clock) -> None:
    """A001 drawn at 9:00, called at 9:10 at c1 and marked not appeared at 9:12; A002 waits behind it."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "disp-1", "ticket.issue", service="pass")
    step(clk, 10)
    assert ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] == "A001"
    step(clk, 2)
    assert ok(office, "counter-1", "counter.no_show", counter="c1")["ticket"]["state"] == "no_show"


def test_a_no_show_who_comes_back_is_called_again_and_counted_once_as_served(office, day_clock, tmp_path):
    no_show_a001(office, day_clock)
    t = office.state.ticket("A001")
    before = (t.id, t.number, t.service, t.issued_at, t.appointment, t.priority, t.lang)
    assert office.queue_page("pass")["no_show"] == [{"ticket": "A001", "id": t.id, "at": day_clock.t}]
    step(day_clock, 20)  # back after 20 minutes, at another counter
    call = ok(office, "counter-2", "counter.call_ticket", counter="c2", ticket="a1")["call"]
    assert call["ticket"] == "A001" and call["counter"] == "c2" and "not appearing" in call["reason"]
    assert (t.id, t.number, t.service, t.issued_at, t.appointment, t.priority, t.lang) == before
    assert t.state == "called" and t.finished_at is None
    assert office.queue_page("pass")["no_show"] == [] and office.state.no_shows.get("pass") == {}
    step(day_clock, 5)
    assert ok(office, "counter-2", "counter.served", counter="c2")["ticket"]["state"] == "served"
    assert office.snapshot()["counters"][1]["served"] == 1

    day = stats.compute(tmp_path / "events.db", office.cfg, office.state.day)
    svc = day.services["pass"]
    assert (svc.issued, svc.served, svc.no_show, svc.open) == (2, 1, 0, 1)
    assert svc.waits == [600.0]  # the wait until its first call, not until it was called back
    assert svc.service_times == [300.0]  # from the call back to served
    learned = ServiceTimes.learned(office.store, office.cfg, day_clock.t)
    assert learned.no_shows == 0  # nobody gave up waiting (the forecast's abandonment rate)
    assert learned.no_show_time[0] == 1  # the call in vain still held counter 1 for two minutes


def test_after_the_window_the_number_has_expired_and_nothing_changes(office, day_clock):
    no_show_a001(office, day_clock)
    t = office.state.ticket("A001")
    step(day_clock, 60)  # exactly the window: still
    assert office.queue_page("pass")["no_show"][0]["ticket"] == "A001"
    step(day_clock, 0.02)
    assert office.queue_page("pass")["no_show"] == []  # the staff list drops it with the window
    seq = office.state.seq
    out = cmd(office, "counter-2", "counter.call_ticket", counter="c2", ticket="A001").reply
    assert out["ok"] is False and out["error"]["code"] == "unknown_ticket", out
    assert out["error"]["data"] == {"ticket": "A001", "state": "no_show", "reason": "no_show_expired"}
    assert "no_show_return_min" in out["error"]["message"]
    assert t.state == "no_show" and t.counter == "c1" and office.state.seq == seq
    assert office.state.counters["c2"].current is None
    # served or waiting tickets are refused as before, without the no-show's reason
    assert (
        ok(office, "counter-2", "counter.call_ticket", counter="c2", ticket="A002")["call"]["ticket"]
        == "A002"
    )
    ok(office, "counter-2", "counter.served", counter="c2")
    refused = cmd(office, "counter-2", "counter.call_ticket", counter="c2", ticket="A002").reply
    assert refused["error"] == {**refused["error"], "code": "unknown_ticket", "data": {"ticket": "A002"}}


def test_another_day_or_a_window_of_zero_never_calls_it_again(tmp_path, day_clock):
    office = Office(example(0), EventStore(tmp_path / "zero.db"), clock=day_clock)
    no_show_a001(office, day_clock)
    assert office.queue_page("pass")["no_show"] == []
    assert err(office, "counter-1", "counter.call_ticket", counter="c1", ticket="A001") == "unknown_ticket"

    office = Office(example(600), EventStore(tmp_path / "day.db"), clock=day_clock)
    no_show_a001(office, day_clock)
    day_clock.t = MONDAY_9 + 86400  # the next morning: yesterday's tickets are gone
    out = cmd(office, "counter-1", "counter.call_ticket", counter="c1", ticket="A001").reply
    assert out["error"]["code"] == "unknown_ticket" and out["error"]["data"] == {"ticket": "A001"}


def test_the_call_back_is_in_the_log_replayed_and_answered_once_per_request_id(tmp_path, day_clock):
    path = tmp_path / "events.db"
    office = Office(example(), EventStore(path), clock=day_clock)
    no_show_a001(office, day_clock)
    step(day_clock, 3)
    first = cmd(office, "web", "counter.call_ticket", rid="back-1", counter="c1", ticket="A001").reply
    assert first["ok"], first
    again = cmd(office, "web", "counter.call_ticket", rid="back-1", counter="c1", ticket="A001").reply
    assert again == {**first, "repeated": True}
    kinds = [e["type"] for e in office.store.events_since_day_start()]
    assert kinds[-3:] == ["ticket_called", "ticket_no_show", "ticket_called"]
    office.store.close()
    rebuilt = Office(example(), EventStore(path), clock=day_clock)
    t = rebuilt.state.ticket("A001")
    assert (t.state, t.counter, t.called_at, t.finished_at) == ("called", "c1", day_clock.t, None)
    assert rebuilt.state.counters["c1"].current == t.id and rebuilt.state.no_shows.get("pass") == {}
    assert (
        cmd(rebuilt, "web", "counter.call_ticket", rid="back-1", counter="c1", ticket="A001").reply == again
    )


def test_the_queue_page_keeps_its_bound_with_many_no_shows(tmp_path, day_clock):
    """At most QUEUE_NO_SHOW of them, the newest first: a page never grows with the no-shows of the day."""
    from waitroom import contract

    office = Office(example(), EventStore(tmp_path / "events.db"), clock=day_clock)
    for _ in range(30):
        ok(office, "disp-1", "ticket.issue", service="pass")
    for _ in range(25):
        step(day_clock, 0.5)
        ok(office, "counter-1", "counter.call_next", counter="c1")
        ok(office, "counter-1", "counter.no_show", counter="c1")
    page = office.queue_page("pass")
    assert [n["ticket"] for n in page["no_show"]] == [f"A{n:03d}" for n in range(25, 15, -1)]
    assert len(contract.encode(page)) <= contract.QUEUE_BOUND_BYTES


def test_ticket_show_answers_the_web_where_tickets_stand_by_id(office, day_clock):
    """The query a web app sends about ticket ids its copy does not know: a no-show with the time it was
    marked (the page's "come back by" or "expired"), a waiting one; unknown ids left out; web only."""
    from waitroom import contract

    no_show_a001(office, day_clock)
    a1, a2 = office.state.ticket("A001"), office.state.ticket("A002")
    seq = office.state.seq
    got = ok(office, "web", "ticket.show", tickets=[a1.id, "0123456789", a2.id, a1.id])["tickets"]
    assert got == [
        {"id": a1.id, "number": "A001", "service": "pass", "state": "no_show", "at": day_clock.t},
        {"id": a2.id, "number": "A002", "service": "pass", "state": "waiting"},
    ]
    assert office.state.seq == seq  # no effect
    for bad in ([], "A001", [1], ["x"] * (contract.SHOW_TICKETS + 1)):
        assert err(office, "web", "ticket.show", tickets=bad) == "bad_request"
    assert err(office, "disp-1", "ticket.show", tickets=[a1.id]) == "forbidden"
    # the reply's bound (contract: replies <= 1024 bytes): SHOW_TICKETS of the longest entries
    longest = {"id": a1.id, "number": "Z9999", "service": "s" * 32, "state": "cancelled", "at": 1.0e9 / 3}
    reply = {
        "id": "r" * 64,
        "ok": True,
        "result": {"tickets": [longest] * contract.SHOW_TICKETS},
        "seq": 10**8,
    }
    assert len(contract.encode(reply)) <= 1024


# ------------------------------------------------------------------------------------ the real processes
def write_clock(path, t: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{t:.3f}\n")
    os.replace(tmp, path)


@pytest.mark.slow
def test_a_sigkill_keeps_the_no_show_and_its_call_back(broker, tmp_path, monkeypatch):
    """Killed right after the no-show, the restarted controller still calls it back within the window (the
    time it was marked comes from the log) and refuses it after; killed after the call back, the same request
    id gets the same reply and the state has the same call."""
    cfg_path = write_config(tmp_path, broker.port, office="noshow")
    office_cfg = config.load(cfg_path)
    clock_file = tmp_path / "clock"
    t0 = time.time()
    write_clock(clock_file, t0)
    monkeypatch.setenv("WAITROOM_CLOCK_FILE", str(clock_file))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    counter, disp = NodeRuntime(office_cfg, "counter-1"), NodeRuntime(office_cfg, "disp-1")
    assert counter.start(wait=10) and disp.start(wait=10)

    def request(rt, op, args, rid=None):
        return rt.request_reply(op, args, request_id=rid, timeout=0.5, retries=60)

    def restart(proc):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return start_controller(cfg_path, data_dir)

    try:
        for _ in range(2):
            assert request(disp, "ticket.issue", {"service": "pass"})["ok"]
        assert request(counter, "counter.open", {"counter": "c1"})["ok"]
        assert request(counter, "counter.call_next", {"counter": "c1"})["result"]["call"]["ticket"] == "A001"
        write_clock(clock_file, t0 + 120)
        assert request(counter, "counter.no_show", {"counter": "c1"})["ok"]
        proc = restart(proc)
        write_clock(clock_file, t0 + 120 + 59 * 60)  # 59 minutes after the no-show
        back = request(counter, "counter.call_ticket", {"counter": "c1", "ticket": "A001"}, "back-1")
        assert back["ok"] and back["result"]["call"]["ticket"] == "A001", back
        proc = restart(proc)
        again = request(counter, "counter.call_ticket", {"counter": "c1", "ticket": "A001"}, "back-1")
        assert again == {**back, "repeated": True}
        state = wait_for(
            lambda: counter.state if (counter.state or {}).get("seq", 0) >= back["seq"] else None
        )
        c1 = next(c for c in state["counters"] if c["id"] == "c1")
        assert c1["serving"] == {"ticket": "A001", "service": "pass"}
        # A002 now: marked not appeared, then the clock passes its window before it comes back
        assert request(counter, "counter.call_next", {"counter": "c1"})["result"]["call"]["ticket"] == "A002"
        assert request(counter, "counter.no_show", {"counter": "c1"})["ok"]
        proc = restart(proc)
        write_clock(clock_file, t0 + 120 + 59 * 60 + 61 * 60)
        late = request(counter, "counter.call_ticket", {"counter": "c1", "ticket": "A002"}, "late-1")
        assert late["ok"] is False and late["error"]["data"]["reason"] == "no_show_expired", late
    finally:
        counter.stop()
        disp.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    day = stats.compute(
        data_dir / "mitte.db",
        office_cfg,
        dt.datetime.fromtimestamp(t0, office_cfg.office.tz).date().isoformat(),
    )
    svc = day.services["pass"]
    assert (svc.issued, svc.served, svc.no_show) == (2, 1, 1)  # A001 served (by call_next), A002 not appeared


# ------------------------------------------------------------------------------------ the web app
def said(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_ticket_page_says_come_back_by_then_or_take_a_new_one(app, anon, cfg, clock, node):  # noqa: F811
    clock.fixed = time.time()
    ticket = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]
    desk = node("counter-1")
    desk.request("counter.open", {"counter": "c1"})
    desk.request("counter.call_next", {"counter": "c1"})
    marked = clock.fixed
    desk.request("counter.no_show", {"counter": "c1"})
    until = dt.datetime.fromtimestamp(marked + 3600, cfg.office.tz).strftime("%H:%M")
    page = wait_for(
        lambda: (h := anon.get(f"/t/{ticket['id']}").get_data(as_text=True)) and "nicht da" in h and h
    )
    assert f"Bitte gehen Sie bis {until} Uhr zu einem Schalter oder zum Empfang." in said(page)
    assert said(page).count("Bitte gehen Sie bis") == 1  # said once; the phone is told too (data-warn):
    assert f'data-warn="Sie wurden aufgerufen, waren aber nicht da. Bitte gehen Sie bis {until}' in page
    en = said(anon.get(f"/t/{ticket['id']}?lang=en").get_data(as_text=True))
    assert f"Please go to a counter or ask at reception by {until}." in en
    clock.fixed = marked + 3601  # the controller's next summary is past the window
    node("disp-1").request("ticket.issue", {"service": "melde"})
    page = wait_for(
        lambda: (
            (h := anon.get(f"/t/{ticket['id']}?lang=de").get_data(as_text=True)) and "verfallen" in h and h
        )
    )
    assert "Diese Nummer ist verfallen. Bitte ziehen Sie eine neue Nummer." in said(page)
    tr = said(anon.get(f"/t/{ticket['id']}?lang=tr").get_data(as_text=True))
    assert "Lütfen yeni bir numara alın." in tr


def test_a_call_back_the_web_missed_is_corrected_by_the_next_queue_page(app, anon, node):  # noqa: F811
    """A web worker that misses the call event of a no-show called back (a broker reconnect: events are not
    retained) kept it in the staff list and told the citizen's page "called and not found" until the day
    ended. The service's next queue page, which lists the recent no-shows, now corrects it."""
    lv = app.extensions["waitroom"]
    disp, desk = node("disp-1"), node("counter-1")
    ticket = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    desk.request("counter.open", {"counter": "c1"})
    desk.request("counter.call_next", {"counter": "c1"})
    desk.request("counter.no_show", {"counter": "c1"})
    wait_for(lambda: [n["ticket"] for n in lv.recent_no_shows({"pass"})] == [ticket["number"]])
    stale = dict(lv._no_shows[ticket["id"]])
    desk.request("counter.call_ticket", {"counter": "c1", "ticket": ticket["number"]})
    wait_for(lambda: ticket["id"] not in lv._no_shows)
    lv._no_shows[ticket["id"]] = stale  # what a worker that missed the call event still holds
    assert lv.recent_no_shows({"pass"})
    disp.request("ticket.issue", {"service": "pass"})  # the service's next page
    wait_for(lambda: not lv.recent_no_shows({"pass"}))
    page = said(anon.get(f"/t/{ticket['id']}").get_data(as_text=True))
    assert "nicht da" not in page and "Schalter" in page  # called at counter 1, not "come back by"


@pytest.mark.browser
@pytest.mark.slow
def test_the_staff_page_lists_the_no_show_and_its_button_calls_it(web_server, browser, node, artifacts):  # noqa: F811
    disp, desk = node("disp-1"), node("counter-1")
    disp.request("ticket.issue", {"service": "pass"})
    disp.request("ticket.issue", {"service": "pass"})
    desk.request("counter.open", {"counter": "c1"})
    desk.request("counter.call_next", {"counter": "c1"})
    desk.request("counter.no_show", {"counter": "c1"})

    page = browser.new_page(locale="de-DE")
    log_in(page, f"{web_server}/staff/c2", "anna", "**/staff/c2")
    page.wait_for_selector("#no-show-h:has-text('Nicht erschienen (letzte 60 Min.)')")
    item = page.locator("ul.no-shows li", has_text="A001")
    assert item.count() == 1
    page.screenshot(path=str(artifacts / "e2e-staff-no-show.png"), full_page=True)
    item.get_by_role("button", name="Aufrufen A001").click()
    page.wait_for_selector("#serving-number:has-text('A001')")
    page.wait_for_selector("ul.no-shows", state="detached")  # called: no longer in the list
    assert desk.state is not None


def test_the_number_field_calls_a_no_show_and_an_expired_one_reads_as_one_sentence(staff, clock, node):  # noqa: F811
    clock.fixed = time.time()
    disp, desk = node("disp-1"), node("counter-1")
    disp.request("ticket.issue", {"service": "pass"})
    disp.request("ticket.issue", {"service": "pass"})
    desk.request("counter.open", {"counter": "c1"})
    desk.request("counter.call_next", {"counter": "c1"})
    desk.request("counter.no_show", {"counter": "c1"})
    page = said(post(staff, "/staff/c2/call", {"ticket": "a1"}, follow_redirects=True).get_data(as_text=True))
    assert "A001 aufgerufen." in page
    desk.request("counter.call_next", {"counter": "c1"})  # A002, not there either
    desk.request("counter.no_show", {"counter": "c1"})
    clock.fixed += 3601
    r = post(staff, "/staff/c2/call", {"ticket": "A002"}, follow_redirects=True)
    assert (
        "Die Nummer A002 wurde vor zu langer Zeit als nicht erschienen markiert und ist verfallen; "
        "bitte eine neue Nummer ziehen lassen." in said(r.get_data(as_text=True))
    )


def started_web(office_cfg, data_dir):
    """A web app started now: it knows only what the retained state and queue pages tell it."""
    from waitroom.web import create_app

    web = create_app(
        office_cfg,
        data_dir=data_dir,
        test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True},
    )
    lv = web.extensions["waitroom"]
    wait_for(lambda: lv.state() is not None and len(lv.queues) == len(office_cfg.services))
    return web


def spy_show(office) -> list[list[str]]:
    """The ticket.show queries the controller answers, as they come (a query's reply is not stored)."""
    asked: list[list[str]] = []
    real = office.op_ticket_show

    def op_ticket_show(node_id, role, tickets):
        asked.append(list(tickets) if isinstance(tickets, list) else tickets)
        return real(node_id, role, tickets)

    office.op_ticket_show = op_ticket_show
    return asked


def test_a_web_app_started_later_knows_an_older_no_show(cfg, controller, clock, node, tmp_path):  # noqa: F811
    """No web app ran while A001 was marked not appeared; by the time one starts, ten newer no-shows have
    pushed it off the service's queue page (which lists the last ten). Its page still says "come back by"
    within the window and "expired" after it (a web app started then), not "not known today"; a ticket served
    before the start is "no longer waiting". The controller is asked once per unknown ticket, not per view."""
    from waitroom import contract

    clock.fixed = time.time()
    disp, desk = node("disp-1"), node("counter-1")
    served = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    first = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    for _ in range(contract.QUEUE_NO_SHOW):
        disp.request("ticket.issue", {"service": "pass"})
    desk.request("counter.open", {"counter": "c1"})
    desk.request("counter.call_next", {"counter": "c1"})
    desk.request("counter.served", {"counter": "c1"})
    marked = clock.fixed
    for _ in range(contract.QUEUE_NO_SHOW + 1):  # A002 first, then ten more, a second apart
        desk.request("counter.call_next", {"counter": "c1"})
        desk.request("counter.no_show", {"counter": "c1"})
        clock.fixed += 1
    page = controller.office.queue_page("pass")
    assert first["id"] not in [n["id"] for n in page["no_show"]] and len(page["no_show"]) == 10
    # the broker holds that page (published at once when the no-show list changed) before the web app starts
    pages: dict = {}
    watcher = node("counter-2")
    watcher.subscribe(
        watcher.topics.queue("pass"), lambda _t, raw: pages.update(last=contract.decode(raw, limit=None))
    )
    wait_for(lambda: pages.get("last", {}).get("seq", 0) >= controller.office.state.seq)

    asked = spy_show(controller.office)
    web = started_web(cfg, tmp_path / "web-1")
    visitor = web.test_client()
    until = dt.datetime.fromtimestamp(marked + 3600, cfg.office.tz).strftime("%H:%M")
    for _ in range(3):  # reloads (and the JSON below) are answered from what the first view learned
        html = visitor.get(f"/t/{first['id']}").get_data(as_text=True)
        assert f"Bitte gehen Sie bis {until} Uhr zu einem Schalter oder zum Empfang." in said(html)
    assert visitor.get(f"/api/ticket/{first['id']}").get_json()["state"] == "no_show"
    done = visitor.get(f"/t/{served['id']}")
    assert done.status_code == 200 and "Diese Nummer wartet nicht mehr." in said(done.get_data(as_text=True))
    assert visitor.get("/t/0123456789").status_code == 404  # made up: not known, as before
    # one question per unknown id, whatever the views
    assert sorted(x for q in asked for x in q) == sorted([first["id"], served["id"], "0123456789"])
    web.extensions["waitroom"].close()

    clock.fixed = marked + 3601  # past A002's window; a summary on that clock
    disp.request("ticket.issue", {"service": "melde"})
    web = started_web(cfg, tmp_path / "web-2")
    try:
        # the page's live stream, opened first (a phone reconnecting to the restarted app): expired
        lv = web.extensions["waitroom"]
        wait_for(lambda: lv.state()["ts"] >= clock.fixed - 0.01)  # the summary on that clock
        stream = web.test_client().get(f"/api/ticket/{first['id']}/stream", buffered=False)
        name, data = next(events(stream.response))
        stream.close()
        assert (name, data["state"], data["ticket"]) == ("state", "expired", first["number"])
        html = web.test_client().get(f"/t/{first['id']}?lang=de").get_data(as_text=True)
        assert "Diese Nummer ist verfallen. Bitte ziehen Sie eine neue Nummer." in said(html)
        # twenty phones at once on a ticket this app does not know: one question, twenty right answers
        from concurrent.futures import ThreadPoolExecutor

        def status(_: int) -> str:
            return web.test_client().get(f"/api/ticket/{served['id']}").get_json()["state"]

        with ThreadPoolExecutor(20) as pool:
            assert list(pool.map(status, range(20))) == ["done"] * 20
        assert sum(map(len, asked)) == 3 + 2
    finally:
        web.extensions["waitroom"].close()
