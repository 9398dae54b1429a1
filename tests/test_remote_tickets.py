"""Remote tickets (virtual queue), the office side: ``ticket.reserve`` from node ``city``, check-in with the
code at the dispenser, the call at a counter, lapse in the tick, every bad input one answer, and reservations
that survive a restart. First on the controller with a real SQLite log and a set clock, then through a real
mosquitto with a real dispenser (mock pins, real ESC/POS bytes) and a counter node."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests import test_e2e_web
from tests.conftest import office_config
from tests.test_controller import Clock, cmd, err, ok
from waitroom import config
from waitroom.config import Node, RemoteTicketRules
from waitroom.controller import Office
from waitroom.ops.remote import CODE_ALPHABET
from waitroom.store import EventStore

TZ = ZoneInfo("Europe/Berlin")
MONDAY_9 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ).timestamp()
SUNDAY_11 = dt.datetime(2026, 11, 22, 11, 0, tzinfo=TZ).timestamp()


def with_city(cfg: config.Config, **rules: object) -> config.Config:
    return cfg.model_copy(
        update={
            "nodes": [*cfg.nodes, Node(id="city", role="city")],
            "remote_tickets": RemoteTicketRules(**rules),
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY_9)


def make_office(tmp_path: Path, clock: Clock, **rules: object) -> Office:
    return Office(
        with_city(config.load(config.EXAMPLE_CONFIG), **rules), EventStore(tmp_path / "e.db"), clock=clock
    )


def reserve(office: Office, **args: object) -> dict:
    return ok(office, "city", "ticket.reserve", **{"service": "pass", **args})["reservation"]


def test_reserve_then_check_in_on_time_keeps_the_place_of_the_reservation(tmp_path, clock) -> None:
    office = make_office(tmp_path, clock)
    ok(office, "counter-1", "counter.open", counter="c1")
    ok(office, "disp-1", "ticket.issue", service="pass")  # A001, before the reservation
    office.refresh_forecast()
    res = reserve(office, lang="en")
    assert res["state"] == "reserved" and res["number"] is None and res["ticket_id"] is None
    assert len(res["code"]) == 6 and set(res["code"]) <= set(CODE_ALPHABET)
    # "be there by": the forecast turn minus early_min, but at least lead_min (15) ahead, on a whole minute
    eta_s = office.reservation_eta_s("pass")  # the reservation itself now counts as waiting before
    assert res["arrive_by"] == MONDAY_9 + 15 * 60 and res["arrive_by_local"] == "09:15"
    assert res["expires_at"] == res["arrive_by"] + 15 * 60 and res["expires_local"] == "09:30"
    assert res["eta_min"] is not None and eta_s >= 0
    clock.t += 300
    walk_in = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]  # A002, after it
    clock.t += 300  # 09:10, before "be there by"
    t = ok(office, "disp-1", "appointment.checkin", code=res["code"].lower())["ticket"]
    assert t["number"] == "A003" and t["reservation"] == res["code"] and t["lang"] == "en"
    assert t["issued_at"] == res["reserved_at"]  # its place: the time of the reservation
    # a second scan (or a lost reply) gives the same ticket, nothing twice
    assert ok(office, "disp-1", "appointment.checkin", code=res["code"])["ticket"]["id"] == t["id"]
    calls = [ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] for _ in range(3)]
    assert calls == ["A001", "A003", walk_in["number"]]
    status = ok(office, "city", "ticket.reservation", code=res["code"])["reservation"]
    assert status["state"] == "checked_in" and status["number"] == "A003"
    assert status["ticket"]["state"] == "served"  # A003 was finished by the next call


def test_be_there_by_comes_from_the_forecast(tmp_path, clock) -> None:
    office = make_office(tmp_path, clock)
    ok(office, "counter-1", "counter.open", counter="c1")
    for _ in range(30):
        ok(office, "disp-1", "ticket.issue", service="pass")
    office.refresh_forecast()
    eta = office.reservation_eta_s("pass")
    assert eta > 40 * 60  # 30 citizens before it at one counter
    res = reserve(office)
    assert res["eta_min"] == round(eta / 60)
    assert res["arrive_by"] == (MONDAY_9 + eta - 10 * 60) // 60 * 60  # early_min before the turn
    # the open reservation holds a place: the next one is told to come later
    assert office.reservation_eta_s("pass") > eta
    assert reserve(office)["arrive_by"] >= res["arrive_by"]


def test_late_check_in_queues_from_the_check_in_and_a_missed_one_lapses(tmp_path, clock) -> None:
    office = make_office(tmp_path, clock)
    late = reserve(office)
    gone = reserve(office)
    clock.t += 20 * 60  # after "be there by" (09:15), before the deadline (09:30)
    walk_in = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]
    clock.t += 60
    t = ok(office, "disp-1", "appointment.checkin", code=late["code"])["ticket"]
    assert t["issued_at"] == clock.t > walk_in["issued_at"]  # behind the walk-in who came before it
    clock.t = gone["expires_at"] + 1
    assert [e["type"] for e in office.tick().events] == ["reservation_lapsed"]
    assert office.tick().events == []  # once
    assert err(office, "disp-1", "appointment.checkin", code=gone["code"]) == "appointment_expired"
    status = ok(office, "web", "ticket.reservation", code=gone["code"])["reservation"]
    assert status["state"] == "lapsed" and status["number"] is None


def test_every_bad_input_has_one_answer(tmp_path, clock) -> None:
    office = make_office(tmp_path, clock, max_open_per_service=2, per_hour=3)
    assert err(office, "city", "ticket.reserve", service="nosuch") == "unknown_service"
    assert err(office, "city", "ticket.reserve", service="pass", lang="xx") == "bad_request"
    assert err(office, "city", "ticket.reserve", service="pass", priority="yes") == "bad_request"
    assert err(office, "city", "ticket.reserve") == "bad_request"  # no service
    assert err(office, "disp-1", "ticket.reserve", service="pass") == "forbidden"  # not the dispenser's
    assert err(office, "city", "ticket.issue", service="pass") == "forbidden"  # the city only reserves
    assert err(office, "city", "ticket.reservation", code="ZZZZZZ") == "unknown_reservation"
    assert err(office, "city", "ticket.reservation", code=42) == "unknown_reservation"
    assert err(office, "disp-1", "appointment.checkin", code="ZZZZZZ") == "unknown_appointment"
    ok(office, "web", "intake.set", service="melde", open=False, reason="Annahmeschluss")
    assert err(office, "city", "ticket.reserve", service="melde") == "intake_stopped"
    first = reserve(office, priority=True)
    reserve(office)
    assert err(office, "city", "ticket.reserve", service="pass") == "reservations_full"
    assert reserve(office, service="fuehrerschein")["state"] == "reserved"  # the cap is per service
    clock.t += 60
    t = ok(office, "disp-1", "appointment.checkin", code=first["code"])["ticket"]
    assert t["priority"] is True  # a priority reservation becomes a priority ticket
    reserve(office)  # a place is free again: the third of this hour
    ok(office, "disp-1", "appointment.checkin", code=reserve(office, service="sonstiges")["code"])
    assert err(office, "city", "ticket.reserve", service="pass") == "reservations_full"
    clock.t += 3600  # the rate counts a rolling hour (09:01-10:01); the two open ones have lapsed meanwhile
    office.tick()
    for _ in range(3):  # three in this hour, checked in at once, so the cap does not stop them first
        clock.t += 60
        ok(office, "disp-1", "appointment.checkin", code=reserve(office)["code"])
    assert err(office, "city", "ticket.reserve", service="pass") == "rate_limited"
    # nothing of the refusals is in the state: six reservations for pass, all accounted for
    states = sorted(r.state for r in office.state.reservations.values() if r.service == "pass")
    assert states == ["checked_in"] * 4 + ["lapsed"] * 2


def test_check_in_of_a_reservation_at_a_counter_calls_it_there(tmp_path, clock) -> None:
    """The staff workstation checks a remote ticket in at its counter as it does an appointment: called there
    at once, or refused (the counter was ignored, the citizen left waiting and staff told "ok")."""
    office = make_office(tmp_path, clock)
    ok(office, "disp-1", "ticket.issue", service="pass")  # a walk-in waits longer
    code = reserve(office)["code"]
    clock.t += 60
    assert err(office, "disp-1", "appointment.checkin", code=code, counter="c2") == "forbidden"
    assert err(office, "web", "appointment.checkin", code=code, counter="c5") == "counter_closed"
    assert err(office, "web", "appointment.checkin", code=code, counter="c99") == "unknown_counter"
    assert office.state.reservations[code].ticket is None  # nothing issued by the refused check-ins
    out = ok(office, "web", "appointment.checkin", code=code, counter="c2")
    assert out["call"]["counter"] == "c2" and out["ticket"]["state"] == "called"
    assert out["ticket"]["reservation"] == code
    assert office.state.counters["c2"].current == out["ticket"]["id"]
    assert err(office, "web", "appointment.checkin", code=code, counter="c2") == "invalid_state"


def test_closed_office_and_too_late_in_the_day(tmp_path) -> None:
    clock = Clock(SUNDAY_11)
    office = make_office(tmp_path, clock)
    assert err(office, "city", "ticket.reserve", service="pass") == "office_closed"
    clock.t = dt.datetime(2026, 11, 23, 15, 50, tzinfo=TZ).timestamp()  # closes 16:00, lead 15 min
    out = cmd(office, "city", "ticket.reserve", service="pass").reply
    assert out["error"]["code"] == "office_closed" and "16:00" in out["error"]["message"]
    assert office.state.reservations == {}
    disabled = Office(
        with_city(config.load(config.EXAMPLE_CONFIG), enabled=False),
        EventStore(tmp_path / "d.db"),
        clock=Clock(MONDAY_9),
    )
    assert err(disabled, "city", "ticket.reserve", service="pass") == "forbidden"


def test_reserved_checked_in_and_lapsed_are_counted_in_the_statistics(tmp_path, clock) -> None:
    from waitroom.web import stats

    office = make_office(tmp_path, clock)
    came, missed = reserve(office), reserve(office)
    reserve(office, service="melde")
    clock.t += 60
    ok(office, "disp-1", "appointment.checkin", code=came["code"])
    ok(office, "disp-1", "ticket.issue", service="pass")
    clock.t = missed["expires_at"] + 1
    office.tick()
    day = stats.compute(tmp_path / "e.db", office.cfg, office.state.day)
    doc = stats.as_dict(day)
    assert doc["services"]["pass"]["remote"] == {"reserved": 2, "checked_in": 1, "lapsed": 1}
    assert doc["services"]["melde"]["remote"] == {"reserved": 1, "checked_in": 0, "lapsed": 1}
    assert doc["services"]["pass"]["issued"] == 2  # the checked-in remote ticket and the walk-in
    rows = [line.split(";") for line in stats.to_csv(day).lstrip("\ufeff").splitlines()]
    remote = slice(rows[0].index("remote_reserved"), rows[0].index("remote_lapsed") + 1)
    assert rows[0][remote] == ["remote_reserved", "remote_checked_in", "remote_lapsed"]
    assert {len(r) for r in rows} == {len(rows[0])}
    assert next(r for r in rows if r[1:3] == ["total", "pass"])[remote] == ["2", "1", "1"]


def test_reservations_survive_a_restart_and_a_new_day_clears_them(tmp_path, clock) -> None:
    office = make_office(tmp_path, clock)
    kept, lapsing = reserve(office), reserve(office, service="melde")
    office.store.close()
    again = make_office(tmp_path, clock)  # the state rebuilt from the log
    assert {c: r.state for c, r in again.state.reservations.items()} == {
        kept["code"]: "reserved",
        lapsing["code"]: "reserved",
    }
    status = ok(again, "city", "ticket.reservation", code=kept["code"])["reservation"]
    assert status["arrive_by"] == kept["arrive_by"] and status["expires_at"] == kept["expires_at"]
    clock.t += 60
    assert ok(again, "disp-1", "appointment.checkin", code=kept["code"])["ticket"]["number"] == "A001"
    clock.t = lapsing["expires_at"] + 1
    again.tick()
    again.store.close()
    third = make_office(tmp_path, clock)
    assert {c: r.state for c, r in third.state.reservations.items()} == {
        kept["code"]: "checked_in",
        lapsing["code"]: "lapsed",
    }
    clock.t += 86400
    third.tick()  # the next day
    assert third.state.reservations == {}


# ------------------------------------------------------------------------------------- through the broker
def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def cfg(broker) -> config.Config:
    """The example office on the session broker with the city node, open all day; the ticket page warns from
    3 minutes (or second in line), so that three tickets before one at one counter (ca. 9 min) do not."""
    return with_city(office_config(broker.port, office_id=f"rt{time.monotonic_ns() % 10**9}"), warn_min=3)


def test_reserve_check_in_at_the_dispenser_and_called_at_a_counter(
    cfg, node, mock_pins, tmp_path, monkeypatch
) -> None:
    from edge.dispenser import Dispenser
    from waitroom.contract import EventKind, Topics, decode
    from waitroom.service import ControllerService

    monkeypatch.setenv("WAITROOM_DATA_DIR", str(tmp_path / "var"))
    db = str(tmp_path / "events.db")
    ctl = ControllerService(cfg, db)
    assert ctl.start(wait=10)
    try:
        city = node("city")
        res = city.request("ticket.reserve", {"service": "pass", "lang": "en"})["reservation"]
        assert res["state"] == "reserved"
    finally:
        ctl.stop()
    # the controller restarts: the reservation is still there
    ctl = ControllerService(cfg, db)
    assert ctl.start(wait=10)
    try:
        status = city.request("ticket.reservation", {"code": res["code"]})["reservation"]
        assert status["state"] == "reserved" and status["arrive_by"] == res["arrive_by"]

        calls: list[dict] = []
        counter = node("counter-1")
        counter.subscribe(Topics(cfg.office.id).event(EventKind.CALL), lambda t, p: calls.append(decode(p)))
        folder = tmp_path / "raw"
        folder.mkdir()
        dcfg = cfg.model_copy(update={"printer": {"backend": "file", "file": {"path": str(folder)}}})
        disp = Dispenser(node("disp-1"), dcfg, dcfg.node("disp-1"), pins=mock_pins)
        disp.start()
        try:
            disp.checkin(f"{res['code'][:3]} {res['code'][3:]}")  # typed with a space
            raw = wait_until(lambda: [p.read_bytes() for p in folder.glob("*.bin")], 10)[0]
            assert b"A001" in raw
        finally:
            disp.stop()
        counter.request("counter.open", {"counter": "c1"})
        call = counter.request("counter.call_next", {"counter": "c1"})["call"]
        assert call["ticket"] == "A001"
        event = wait_until(lambda: [c for c in calls if c["ticket"] == "A001"], 10)[0]
        assert event["counter"] == "c1" and event["lang"] == "en"  # announced in the citizen's language
        status = city.request("ticket.reservation", {"code": res["code"]})["reservation"]
        assert status["state"] == "checked_in" and status["number"] == "A001"
        assert status["ticket_state"] == "called"
    finally:
        ctl.stop()


# ------------------------------------------------------------------------------------- the ticket status page
@pytest.fixture
def web_app(cfg, controller, tmp_path):
    from waitroom.web import create_app, public

    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    live = app.extensions["waitroom"]
    wait_until(lambda: live.state() is not None)
    public._reservations.clear()
    yield app
    live.close()


def test_status_page_of_a_reservation_then_of_its_ticket(web_app, node) -> None:
    anon = web_app.test_client()
    res = node("city").request("ticket.reserve", {"service": "pass"})["reservation"]
    html = anon.get(f"/t/{res['code']}").get_data(as_text=True)
    assert "Ihr Platz ist reserviert." in html and res["code"] in html
    assert f"Bitte seien Sie bis etwa {res['arrive_by_local']} Uhr da" in html
    assert f"Geben Sie den Code bis {res['expires_local']} Uhr am Automaten ein, sonst verfällt" in html
    assert "Benachrichtigen, wenn ich bald dran bin" in html and "data-warn=" not in html  # 15 min > 10
    assert 'data-poll="/t/' in html and "ticket.js" in html
    j = anon.get(f"/api/ticket/{res['code'].lower()}").get_json()
    assert j["state"] == "reserved" and j["arrive_by"] == res["arrive_by"] and j["ticket"] is None
    assert anon.get("/api/ticket/ZZZZZZ").status_code == 404
    assert "heute nicht (mehr) bekannt" in anon.get("/t/ZZZZZZ").get_data(as_text=True)

    ticket = node("disp-1").request("appointment.checkin", {"code": res["code"]})["ticket"]

    # within a few seconds (the page's cache) the code leads to the ticket's own live page
    def redirected():
        r = anon.get(f"/t/{res['code']}")
        return r if r.status_code == 302 else None

    location = wait_until(redirected, 15).headers["Location"]
    assert location.endswith(f"/t/{ticket['id']}")
    fragment = anon.get(f"/t/{res['code']}?fragment=1").get_data(as_text=True)
    assert f'data-goto="/t/{ticket["id"]}?lang=de"' in fragment  # in the page's language

    def ticket_page():
        html = anon.get(location).get_data(as_text=True)
        return html if ticket["number"] in html else None

    page = wait_until(ticket_page, 10)
    assert 'data-warn="Sie sind bald dran.' in page and 'role="alert">Sie sind bald dran.' in page


browser = test_e2e_web.browser  # a real headless chromium
web_server = test_e2e_web.web_server  # `waitroom web` under gunicorn, for this module's office

RECORD = """
window.__notes = []; window.__vibes = [];
if (window.Notification) {
  const Real = window.Notification;
  const Rec = function (title, options) {
    window.__notes.push([title, (options || {}).body]);
    return new Real(title, options);
  };
  Object.defineProperty(Rec, "permission", {get: () => Real.permission});
  Rec.requestPermission = (cb) => Real.requestPermission(cb);
  window.Notification = Rec;
}
if (window.ServiceWorkerRegistration) {
  const real = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
    window.__notes.push([title, (options || {}).body, "worker"]);
    return real.call(this, title, options);
  };
}
navigator.vibrate = (pattern) => { window.__vibes.push(pattern); return true; };
"""
SHOWN = """navigator.serviceWorker.getRegistration("/static/")
  .then((reg) => reg ? reg.getNotifications() : [])
  .then((shown) => shown.map((n) => n.body))"""


@pytest.mark.browser
def test_the_ticket_page_warns_when_the_turn_approaches(cfg, web_server, browser, node, artifacts) -> None:
    """Real chromium: the reservation page, then after check-in the ticket's live page, which sends a
    notification and vibrates when the ticket is second in line and when it is called; permission is asked
    only on the button press."""
    disp, counter = node("disp-1"), node("counter-1")
    counter.request("counter.open", {"counter": "c1"})  # one counter for the queue: minutes, not zero
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    res = node("city").request("ticket.reserve", {"service": "pass"})["reservation"]
    ctx = browser.new_context(locale="de-DE")
    try:
        ctx.add_init_script(RECORD)
        page = ctx.new_page()
        page.goto(f"{web_server}/t/{res['code']}")
        assert page.inner_text("#reservation-code") == res["code"]
        assert page.evaluate("Notification.permission") == "default"  # not asked on load
        ctx.grant_permissions(["notifications"], origin=web_server)
        page.click("#notify")
        wait_until(lambda: page.inner_text("#notify-state"))  # (polled here: the page's CSP forbids eval)
        assert "eingeschaltet" in page.inner_text("#notify-state")
        page.screenshot(path=str(artifacts / "remote-ticket-reserved.png"), full_page=True)

        ticket = disp.request("appointment.checkin", {"code": res["code"]})["ticket"]
        # the page polls, then follows, in its language
        page.wait_for_url(f"**/t/{ticket['id']}?lang=de", timeout=60_000)
        page.wait_for_selector("#ticket-number")
        assert page.inner_text("#ticket-number") == ticket["number"] == "A004"
        assert page.evaluate("window.__notes") == []  # fourth in line: no warning yet

        for _ in range(2):
            counter.request("counter.call_next", {"counter": "c1"})
        wait_until(lambda: page.evaluate("window.__notes.length") == 1, 20)
        # through the notification worker (Chrome on Android shows no other), and the browser shows it
        assert page.evaluate("window.__notes") == [
            ["Ihre Wartenummer", "Sie sind bald dran. Bitte halten Sie sich bereit.", "worker"]
        ]
        assert page.evaluate(SHOWN) == ["Sie sind bald dran. Bitte halten Sie sich bereit."]
        assert page.evaluate("window.__vibes") == [[300, 150, 300]]
        assert "Sie sind bald dran." in page.inner_text("[role=alert]")
        page.screenshot(path=str(artifacts / "remote-ticket-soon.png"), full_page=True)

        for _ in range(2):
            counter.request("counter.call_next", {"counter": "c1"})
        wait_until(lambda: page.evaluate("window.__notes.length") == 2, 20)
        assert page.evaluate("window.__notes[1][1]").startswith("Sie sind dran: bitte zu ")
        assert len(page.evaluate("window.__vibes")) == 2
    finally:
        ctx.close()


def test_the_bridge_carries_the_city_commands_only_for_an_office_with_a_city_node(tmp_path) -> None:
    import subprocess
    import sys

    import yaml

    plain = config.load(config.EXAMPLE_CONFIG)
    out = {}
    for name, cfg in (("plain", plain), ("remote", with_city(plain))):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
        (tmp_path / "pw").write_text("bridge-pw\n")
        cmd = [sys.executable, "-m", "waitroom.cli", "broker", "bridge", "--config", str(path)]
        cmd += ["--city-host", "city.example", "--password-file", str(tmp_path / "pw")]
        out[name] = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    assert "topic waitroom/v1/mitte/node/city/cmd in 1" in out["remote"]
    assert "topic waitroom/v1/mitte/node/city/reply out 1" in out["remote"]
    assert "node/city" not in out["plain"] and "topic waitroom/v1/mitte/public out 1" in out["plain"]


def test_booking_codes_and_reservation_codes_come_from_their_own_makers(tmp_path, clock) -> None:
    """Both kinds of code are typed at the same dispenser: a booking code carries its check character, a
    reservation code is one of the remote alphabet's, and neither maker hands out a code the other holds."""
    from waitroom import appointments as codes

    office = make_office(tmp_path, clock, max_open_per_service=50, per_hour=50)
    for _ in range(20):
        booked = ok(office, "web", "appointment.book", service="pass", slot=MONDAY_9 + 3600)["appointment"]
        assert codes.is_generated(booked["code"]), booked
        code = reserve(office)["code"]
        assert len(code) == 6 and set(code) <= set(CODE_ALPHABET)
    assert not office.state.reservations.keys() & office.state.appointments.keys()


def test_walk_in_estimates_count_the_open_reservations_before_them(tmp_path, clock) -> None:
    """A walk-in drawn after three reservations is told a later time than one drawn before them (they will
    queue before it when they check in on time); the office's summary says the same for the next ticket;
    once they are checked in or lapsed, the estimate is the queue's again."""
    office = make_office(tmp_path, clock)
    ok(office, "counter-1", "counter.open", counter="c1")
    for _ in range(4):
        ok(office, "disp-1", "ticket.issue", service="pass")
    office.refresh_forecast()
    before = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]
    eta_before = office.eta_s(office.state.tickets[before["id"]])
    summary_before = next(s for s in office.snapshot()["services"] if s["id"] == "pass")["eta_min"]
    clock.t += 1
    codes = [reserve(office)["code"] for _ in range(3)]
    clock.t += 1
    after = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]
    per_ticket = office.forecast().marginal["pass"]
    assert per_ticket > 0
    eta_after = office.eta_s(office.state.tickets[after["id"]])
    # one more ticket and three reservations ahead, two seconds later
    assert eta_after == pytest.approx(eta_before + 4 * per_ticket - 2, abs=1)
    # the ticket drawn before them keeps its estimate; the summary's next ticket counts them
    assert office.eta_s(office.state.tickets[before["id"]]) == pytest.approx(eta_before - 2, abs=1)
    summary = next(s for s in office.snapshot()["services"] if s["id"] == "pass")["eta_min"]
    assert summary >= summary_before + round(4 * per_ticket / 60) - 1
    # after the next full forecast too: the reservations are not in its queue, each adds one ticket's time
    office.refresh_forecast()
    fc = office.forecast()
    t_after = office.state.tickets[after["id"]]
    assert office.eta_s(t_after) == pytest.approx(
        fc.eta(office.state, t_after) + 3 * fc.marginal["pass"], abs=1
    )
    # two check in (their tickets queue before it now, in the forecast), one is still open: counted once
    for code in codes[:2]:
        ok(office, "disp-1", "appointment.checkin", code=code)
    office.refresh_forecast()
    fc = office.forecast()
    assert office.eta_s(t_after) == pytest.approx(fc.eta(office.state, t_after) + fc.marginal["pass"], abs=1)
    assert office.state.open_reservations["pass"].keys() == {codes[2]}
    assert office.reservation_eta_s("pass") >= office.eta_s(t_after)
