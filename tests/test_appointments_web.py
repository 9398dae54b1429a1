"""The booking page, the check-in on the status page and at the workstation, and the appointment statistics,
with Flask's test client against a real mosquitto and the real controller."""

from __future__ import annotations

import re
import time

import pytest

from tests.test_web import post
from tests.web_helpers import PASSWORD, login, wait_for
from waitroom import appointments as codes

SLOT_RE = re.compile(r'name="slot" value="([0-9.]+)"')


@pytest.fixture
def app(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(
        cfg,
        data_dir=tmp_path,
        test_config={
            "SECRET_KEY": "test-secret-key-0123456789",
            "TESTING": True,
            "WAITROOM_STATS_DB": tmp_path / "events.db",
        },
    )
    users = app.extensions["waitroom_users"]
    users.add("admin", PASSWORD, "admin")
    users.add("anna", PASSWORD, "staff")
    users.add("agent115", PASSWORD, "booking")
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    yield app
    live.close()


def client(app, name):
    c = app.test_client()
    assert login(c, name).status_code == 302
    return c


def test_cancelling_a_code_the_office_does_not_know_says_so_once(app):
    """The refusal was said twice: by the cancel, and again by the confirmation page it went back to."""
    agent = client(app, "agent115")
    page = post(agent, "/booking/c/ZZZZZZ/cancel", follow_redirects=True).get_data(as_text=True)
    messages = re.findall(r'class="flash[^"]*"[^>]*>(.*?)<', page, re.S)
    assert len(messages) == 1, messages


def test_booking_role_books_moves_and_cancels(app, controller):
    agent = client(app, "agent115")
    # a booking account operates no counter and sees no admin page
    r = agent.get("/staff/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/booking/")
    assert agent.get("/staff/c1").status_code == 302
    assert post(agent, "/staff/c1/next").status_code == 403
    assert agent.get("/admin/").status_code == 403
    assert app.test_client().get("/booking/").status_code == 302  # login first
    page = agent.get("/booking/?service=pass").get_data(as_text=True)
    slots = SLOT_RE.findall(page)
    assert len(slots) >= 2, page
    r = post(agent, "/booking/book", {"service": "pass", "slot": slots[0], "note": "Dolmetscher"})
    assert r.status_code == 302 and "/booking/c/" in r.headers["Location"]
    code = r.headers["Location"].rsplit("/", 1)[1]
    assert codes.is_generated(code)
    a = controller.office.state.appointments[code]
    assert (a.service, a.slot, a.note) == ("pass", float(slots[0]), "Dolmetscher")
    conf = agent.get(f"/booking/c/{code}").get_data(as_text=True)
    assert codes.format_code(code) in conf and 'src="data:image/svg+xml;base64,' in conf
    assert "gebucht" in conf and "Termin absagen" in conf
    # an agent finds the booking by the code the citizen reads out (any case, with the dash)
    r = agent.get(f"/booking/find?code={codes.format_code(code).lower()}")
    assert r.headers["Location"].endswith(f"/booking/c/{code}")
    moving = agent.get(f"/booking/?move={code}").get_data(as_text=True)
    assert f'action="/booking/c/{code}/move"' in moving
    assert f"den Termin {codes.format_code(code)} wählen" in moving  # written as on the confirmation
    r = post(agent, f"/booking/c/{code}/move", {"service": "pass", "slot": slots[1]})
    assert r.status_code == 302 and controller.office.state.appointments[code].slot == float(slots[1])
    # a slot that is not offered is refused with a clear message
    r = post(
        agent, "/booking/book", {"service": "pass", "slot": str(float(slots[0]) + 7)}, follow_redirects=True
    )
    assert "nicht frei" in r.get_data(as_text=True), re.findall(r"flash[^<]*", r.get_data(as_text=True))
    r = post(agent, f"/booking/c/{code}/cancel", follow_redirects=True)
    assert "abgesagt" in r.get_data(as_text=True) and controller.office.state.appointments[code].cancelled
    # a cancelled appointment's page (printed, or read out) no longer asks the citizen to come and check in
    cancelled = agent.get(f"/booking/c/{code}").get_data(as_text=True)
    assert "abgesagt" in cancelled and "checken Sie" not in cancelled and 'class="qr"' not in cancelled
    assert agent.get("/booking/c/NOSUCH").status_code == 302


@pytest.mark.parametrize("slot", ["nan", "inf", "-inf", "1e20", "-1e20"])
def test_a_slot_that_is_no_time_is_refused_with_a_clear_message(app, controller, slot):
    """NaN, infinity or a number past any calendar: the page says to pick a time (it answered 500, turning
    the refused slot into the day to show again), and nothing is booked."""
    agent = client(app, "agent115")
    r = post(agent, "/booking/book", {"service": "pass", "slot": slot}, follow_redirects=True)
    assert r.status_code == 200 and "Bitte ein Anliegen und eine Uhrzeit wählen." in r.get_data(as_text=True)
    assert not controller.office.state.appointments


def test_checkin_on_the_status_page_and_at_the_counter(app, controller, node):
    web = node("web")
    soon = time.time() + 600
    c1 = web.request("appointment.book", {"service": "pass", "slot": soon})["appointment"]["code"]
    c2 = web.request("appointment.book", {"service": "melde", "slot": soon})["appointment"]["code"]
    anon = app.test_client()
    assert 'href="/checkin"' in anon.get("/waiting").get_data(as_text=True)
    form = anon.get(f"/a/{c1}").get_data(as_text=True)
    assert f'value="{c1}"' in form
    r = post(anon, "/checkin", {"code": codes.format_code(c1).lower()})
    assert r.status_code == 302 and r.headers["Location"].startswith("/t/")
    tid = r.headers["Location"].rsplit("/", 1)[1]
    assert controller.office.state.tickets[tid].appointment == soon
    number1 = controller.office.state.tickets[tid].number
    # the status page (live) shows it as soon as the web's copy of the queue has it
    wait_for(lambda: number1 in anon.get(r.headers["Location"]).get_data(as_text=True), timeout=10)
    r = post(anon, "/checkin", {"code": "NOSUCH1"})
    assert r.status_code == 404 and "kennen wir nicht" in r.get_data(as_text=True)
    assert post(anon, "/checkin", {"code": ""}).status_code == 400
    # at the workstation: the citizen stands at counter 1, checked in and called there at once
    staff = client(app, "anna")
    r = post(staff, "/staff/c1/checkin", {"code": c2}, follow_redirects=True)
    assert r.status_code == 200
    number = next(t.number for t in controller.office.state.tickets.values() if t.service == "melde")
    assert controller.office.state.counters["c1"].current is not None
    assert controller.office.state.tickets[controller.office.state.counters["c1"].current].number == number
    assert f"{number} aufgerufen" in r.get_data(as_text=True)  # the flash of the call


def test_a_note_is_not_written_to_the_web_log(app, controller, caplog):
    """The note is free text (the page asks for no names, but someone may type one): the controller keeps it
    with the booking, the web's log only says how long it was (it logged the whole note)."""
    agent = client(app, "agent115")
    slot = SLOT_RE.findall(agent.get("/booking/?service=pass").get_data(as_text=True))[0]
    with caplog.at_level("INFO", logger="waitroom"):
        r = post(
            agent, "/booking/book", {"service": "pass", "slot": slot, "note": "Erika Musterfrau Dolmetsch"}
        )
    assert r.status_code == 302 and "/booking/c/" in r.headers["Location"]
    assert "appointment.book" in caplog.text and "<26 characters>" in caplog.text
    assert "Musterfrau" not in caplog.text


FORM_RE = re.compile(r'name="form" value="([^"]+)"')


def test_the_same_booking_form_sent_twice_books_once(app, controller):
    """A double click on "book" (or the browser sending the POST again) is one appointment, not two: the
    form's id is the command's request id, and the controller answers it again with the first booking."""
    agent = client(app, "agent115")
    page = agent.get("/booking/?service=pass").get_data(as_text=True)
    form, slot = FORM_RE.search(page).group(1), SLOT_RE.findall(page)[0]
    first = post(agent, "/booking/book", {"service": "pass", "slot": slot, "form": form})
    again = post(agent, "/booking/book", {"service": "pass", "slot": slot, "form": form})
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert len(controller.office.state.appointments) == 1
    # the next page is a new form: a second booking of the same slot is one more appointment
    form2 = FORM_RE.search(agent.get("/booking/?service=pass").get_data(as_text=True)).group(1)
    assert form2 != form
    assert post(agent, "/booking/book", {"service": "pass", "slot": slot, "form": form2}).status_code == 302
    assert len(controller.office.state.appointments) == 2
    # the old form sent with another slot: refused with a clear message, nothing booked
    other = SLOT_RE.findall(page)[1]
    r = post(agent, "/booking/book", {"service": "pass", "slot": other, "form": form}, follow_redirects=True)
    assert "Dieses Formular wurde schon mit anderen Angaben gesendet" in r.get_data(as_text=True)
    assert len(controller.office.state.appointments) == 2
    # moving twice with one form: one move
    code = first.headers["Location"].rsplit("/", 1)[1]
    page = agent.get(f"/booking/?move={code}&service=pass").get_data(as_text=True)
    form3 = FORM_RE.search(page).group(1)
    for _ in range(2):
        r = post(agent, f"/booking/c/{code}/move", {"service": "pass", "slot": other, "form": form3})
        assert r.status_code == 302 and r.headers["Location"].endswith(f"/booking/c/{code}")
    assert controller.office.state.appointments[code].slot == float(other)


def test_the_checkin_form_does_not_claim_to_be_the_ticket_page(app, controller):
    """The ticket page's note ("this page shows only your number ... updates itself") was on the check-in
    form too, which shows no number and does not update."""
    html = app.test_client().get("/checkin?lang=de").get_data(as_text=True)
    assert "Buchungscode" in html and "aktualisiert sich selbst" not in html


@pytest.mark.parametrize(("code", "status"), [("NOSUCH1", 404), ("", 400), ("x" * 41, 400)])
def test_a_checkin_error_is_at_the_field(app, controller, code, status):
    """The error is read with the code field (aria-invalid, described by the message, focused on load), not
    only as a message at the top of a page whose focus starts again at the top."""
    r = post(app.test_client(), "/checkin", {"code": code})
    html = r.get_data(as_text=True)
    assert r.status_code == status
    error = re.search(r'<p class="flash error" id="code-error" role="alert">([^<]+)</p>', html)
    assert error and error.group(1).strip(), html
    field = re.search(r"<input id=\"code\"[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="code-error code-help"' in field
    assert "autofocus" in field
    assert html.count(error.group(1)) == 1  # said once (not again as a flash at the top)


def test_a_checkin_that_fails_for_another_reason_is_said_in_the_citizen_s_language(app, controller):
    """The check-in page is a citizen's: a refusal without a text of its own (here: no controller to answer)
    is a general text in the chosen language, not the controller's English message."""
    client = app.test_client()
    client.get("/checkin?lang=tr")
    controller.stop()
    r = post(client, "/checkin", {"code": "X3NERJ"})
    html = r.get_data(as_text=True)
    assert r.status_code == 503
    assert "Lütfen birazdan tekrar deneyin veya danışmaya sorun." in html
    assert 'lang="tr"' in html


def test_statistics_show_appointment_outcomes(app, controller, node):
    web = node("web")
    now = time.time()
    kept = web.request("appointment.book", {"service": "pass", "slot": now + 300})["appointment"]["code"]
    web.request("appointment.book", {"service": "pass", "slot": now - 3600})  # never came: missed
    early = web.request("appointment.book", {"service": "pass", "slot": now + 3 * 3600})["appointment"][
        "code"
    ]
    gone = web.request("appointment.book", {"service": "pass", "slot": now + 4 * 3600})["appointment"]["code"]
    web.request("appointment.cancel", {"code": gone})
    disp = node("disp-1")
    disp.request("appointment.checkin", {"code": kept})
    disp.request("appointment.checkin", {"code": early})
    from waitroom.web import stats

    day = app.extensions["waitroom_config"].office.today(now)
    out = stats.appointment_outcomes(app.config["WAITROOM_STATS_DB"], app.extensions["waitroom_config"], day)
    assert {app.extensions["waitroom_config"].office.today(now + s) for s in (-3600, 4 * 3600)} == {day}
    expected = {"booked": 3, "kept": 1, "early": 1, "late": 0, "missed": 1, "cancelled": 1}
    assert {k: out["pass"][k] for k in expected} == expected
    html = client(app, "admin").get(f"/admin/stats?day={day}").get_data(as_text=True)
    assert 'id="appointment-stats"' in html and "nicht erschienen" in html


def test_users_table_from_before_the_booking_role_is_migrated(tmp_path):
    import sqlite3

    from waitroom.web.users import UserStore

    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript(
        "CREATE TABLE users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
        "role TEXT NOT NULL CHECK (role IN ('staff', 'admin')), counters TEXT NOT NULL DEFAULT '', "
        "created REAL NOT NULL);"
    )
    db.execute("INSERT INTO users VALUES ('anna', 'x', 'staff', 'c1', 0)")
    db.commit()
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO users VALUES ('b', 'x', 'booking', '', 0)")
    db.close()
    store = UserStore(tmp_path / "old.db")
    assert store.get("anna").counters == ("c1",)
    agent = store.add("agent115", PASSWORD, "booking")
    assert agent.is_booking_only and not agent.may_operate("c1")
    store.close()
    assert UserStore(tmp_path / "old.db").get("agent115").role == "booking"


def test_an_appointment_of_a_service_the_office_no_longer_offers_is_still_shown(cfg, controller, tmp_path):
    """The office file drops a service (Führerschein moves to another office) while appointments for it are
    booked: the booking page still shows such an appointment (by the service's id) and can cancel it; it
    answered 500."""
    from waitroom.web import create_app

    def web(office):
        app = create_app(
            office,
            data_dir=tmp_path,
            test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True},
        )
        app.extensions["waitroom_users"].add("agent115", PASSWORD, "booking", replace=True)
        wait_for(lambda: app.extensions["waitroom"].state() is not None)
        return app

    app = web(cfg)
    try:
        agent = client(app, "agent115")
        slot = SLOT_RE.findall(agent.get("/booking/?service=fuehrerschein").get_data(as_text=True))[0]
        r = post(agent, "/booking/book", {"service": "fuehrerschein", "slot": slot})
        code = r.headers["Location"].rsplit("/", 1)[1]
    finally:
        app.extensions["waitroom"].close()
    fewer = cfg.model_copy(update={"services": [s for s in cfg.services if s.id != "fuehrerschein"]})
    app = web(fewer)
    try:
        agent = client(app, "agent115")
        r = agent.get(f"/booking/c/{code}")
        page = r.get_data(as_text=True)
        assert r.status_code == 200 and codes.format_code(code) in page and "fuehrerschein" in page
        assert agent.get(f"/booking/?move={code}").status_code == 200  # moving it: other services to pick
        r = post(agent, f"/booking/c/{code}/cancel", follow_redirects=True)
        assert "abgesagt" in r.get_data(as_text=True) and controller.office.state.appointments[code].cancelled
    finally:
        app.extensions["waitroom"].close()


def test_a_slot_not_offered_says_why(app, controller):
    """The 115 agent hears why a slot cannot be booked: taken meanwhile (the last one, booked from another
    tab), already past, too far ahead. It said "Dieser Termin ist nicht frei." for each."""
    agent, other = client(app, "agent115"), client(app, "agent115")
    page = agent.get("/booking/?service=pass").get_data(as_text=True)
    slot = SLOT_RE.findall(page)[0]
    form = re.search(r'name="form" value="([^"]+)"', page).group(1)
    booked = 0
    while True:  # the other tab books the slot until it is full; then this tab sends its form
        r = post(other, "/booking/book", {"service": "pass", "slot": slot}, follow_redirects=True)
        if "/booking/c/" not in r.request.path:
            break
        booked += 1
    assert booked >= 1
    r = post(agent, "/booking/book", {"service": "pass", "slot": slot, "form": form}, follow_redirects=True)
    assert "Dieser Termin ist inzwischen vergeben. Bitte einen anderen wählen." in r.get_data(as_text=True)
    assert sum(1 for a in controller.office.state.appointments.values() if a.slot == float(slot)) == booked
    days = app.extensions["waitroom_config"].appointments.horizon_days
    for when, said in (
        (float(slot) - 86400, "Diese Uhrzeit ist schon vorbei. Bitte eine spätere wählen."),  # yesterday's
        (float(slot) + (days + 2) * 86400, f"Termine gibt es höchstens {days} Tage im Voraus."),
    ):
        r = post(agent, "/booking/book", {"service": "pass", "slot": repr(when)}, follow_redirects=True)
        html = r.get_data(as_text=True)
        assert re.findall(r'class="flash error" role="alert">([^<]*)<', html) == [said]  # once, nothing else
    assert sum(1 for a in controller.office.state.appointments.values() if a.slot == float(slot)) == booked
    assert len(controller.office.state.appointments) == booked


def test_a_day_link_the_booking_page_no_longer_offers_says_why_and_shows_the_next_free_times(app):
    """A booking page left open since yesterday: its day links (or a reload) ask for a day that has passed.
    The page said "Die Angaben sind unvollständig oder ungültig." and showed no days and no times to choose
    from. Now it says why and shows the first day with free times; so for a day beyond the horizon, and for
    a day that does not exist."""
    import datetime as dt

    agent = client(app, "agent115")
    conf = app.extensions["waitroom_config"]
    days = conf.appointments.horizon_days
    today = dt.datetime.now(conf.office.tz).date()
    first = agent.get("/booking/?service=pass").get_data(as_text=True)
    for day, said in (
        (today - dt.timedelta(days=1), "Dieser Tag ist vorbei. Hier sind die nächsten freien Zeiten."),
        (today + dt.timedelta(days=days + 1), f"Termine gibt es höchstens {days} Tage im Voraus."),
        ("2026-02-30", "Diesen Tag gibt es nicht. Hier sind die nächsten freien Zeiten."),
    ):
        html = agent.get(f"/booking/?service=pass&day={day}").get_data(as_text=True)
        assert re.findall(r'class="flash error" role="alert">([^<]*)<', html) == [said], day
        assert SLOT_RE.findall(html) == SLOT_RE.findall(first) != [], day  # the first day's free times
        assert '<ul class="days">' in html and 'aria-current="date"' in html
    html = agent.get(f"/booking/?service=pass&day={today + dt.timedelta(days=days)}").get_data(as_text=True)
    assert 'class="flash error"' not in html  # the horizon's last day is offered


def test_a_horizon_of_one_day_is_said_in_the_singular(app, controller):
    """Booking further ahead than a horizon of one day: "höchstens 1 Tag im Voraus" (it said "1 Tage")."""
    agent = client(app, "agent115")
    slot = SLOT_RE.findall(agent.get("/booking/?service=pass").get_data(as_text=True))[0]
    conf = app.extensions["waitroom_config"]
    when = float(slot) + (conf.appointments.horizon_days + 2) * 86400  # beyond the controller's horizon too
    app.extensions["waitroom_config"] = conf.model_copy(
        update={"appointments": conf.appointments.model_copy(update={"horizon_days": 1})}
    )
    try:
        r = post(agent, "/booking/book", {"service": "pass", "slot": repr(when)}, follow_redirects=True)
        flashed = re.findall(r'class="flash error" role="alert">([^<]*)<', r.get_data(as_text=True))
        assert flashed == ["Termine gibt es höchstens 1 Tag im Voraus."]
    finally:
        app.extensions["waitroom_config"] = conf


def test_a_day_without_a_free_slot_says_so(cfg, tmp_path):
    """The agent opens a day on which the office is closed (or that is booked up): the page names the day
    and says that nothing is free on it, with the days that have free slots above (it showed the days and
    nothing else, as if the page had not loaded)."""
    import datetime as dt

    from waitroom.config import WEEKDAYS
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    closed = dt.datetime.now(cfg.office.tz).date() + dt.timedelta(days=2)
    weekday = WEEKDAYS[closed.weekday()]
    hours = {d: h for d, h in cfg.office.hours.items() if d != weekday}
    cfg = cfg.model_copy(update={"office": cfg.office.model_copy(update={"hours": hours})})
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    try:
        app.extensions["waitroom_users"].add("agent115", PASSWORD, "booking")
        wait_for(lambda: app.extensions["waitroom"].state() is not None)
        agent = client(app, "agent115")
        page = agent.get(f"/booking/?service=pass&day={closed.isoformat()}").get_data(as_text=True)
        assert "An diesem Tag ist kein Termin frei. Bitte einen anderen Tag wählen." in page
        assert f"{closed.day}." in re.search(r'<h2 id="slot-h">([^<]*)</h2>', page).group(1)
        assert 'name="slot"' not in page and 'class="days"' in page
    finally:
        app.extensions["waitroom"].close()
        svc.stop()
