"""The web app with Flask's test client against a real mosquitto and the real controller: every route and
every permission (anonymous, staff, admin, wrong counter), CSRF, errors from the controller, rate limits."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.web_helpers import PASSWORD, csrf_token, health_details, health_lines, login, wait_for
from waitroom.errors import CommandFailed


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
    users.add("bernd", PASSWORD, "staff", ["c3"])
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    yield app
    live.close()


@pytest.fixture
def anon(app):
    return app.test_client()


@pytest.fixture
def staff(app):
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    return c


@pytest.fixture
def admin(app):
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    return c


def post(client, path, data=None, **kw):
    token = csrf_token(client)
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kw)


def test_login_wrong_password_and_logout(anon):
    assert login(anon, "anna", "wrong-password").status_code == 401
    r = login(anon, "anna")
    assert r.status_code == 302 and r.headers["Location"].endswith("/staff/")
    r = post(anon, "/logout")
    assert r.status_code == 302
    assert anon.get("/staff/c1").status_code == 302  # logged out: back to the login


def test_login_redirect_stays_local(anon):
    token = csrf_token(anon, "/login")
    r = anon.post(
        "/login?next=https://evil.example/x",
        data={"username": "anna", "password": PASSWORD, "csrf_token": token},
    )
    assert r.headers["Location"] == "/staff/"


@pytest.mark.parametrize(
    "path",
    [
        "/staff/",
        "/staff/c1",
        "/staff/c1/panel",
        "/admin/",
        "/admin/stats",
        "/admin/config",
        "/admin/stats.csv",
        "/admin/nodes",
        "/admin/alarms",
        "/admin/queue",
    ],
)
def test_anonymous_is_sent_to_login(anon, path):
    r = anon.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_anonymous_api_is_401(anon):
    token = csrf_token(anon)
    r = anon.post("/api/counter/c1/next", json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 401 and r.json["error"]["code"] == "login_required"
    assert anon.get("/api/nodes").status_code == 401


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/stats", "/admin/config", "/admin/stats.csv", "/admin/alarms", "/admin/queue"]
)
def test_staff_may_not_see_admin(staff, path):
    assert staff.get(path).status_code == 403


def test_staff_calls_next_and_finishes(app, staff, node):
    disp = node("disp-1")
    disp.request("ticket.issue", {"service": "pass"})
    disp.request("ticket.issue", {"service": "pass"})
    r = post(staff, "/staff/c1/next", follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "A001 aufgerufen" in html
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["counters"][0]["serving"])
    page = staff.get("/staff/c1/panel").get_data(as_text=True)
    assert 'id="serving-number">A001<' in page
    # the waiting list says how long in the German unit (it said "0 min")
    wait_for(lambda: "A002</td>" in staff.get("/staff/c1/panel").get_data(as_text=True))
    page = staff.get("/staff/c1/panel").get_data(as_text=True)
    assert re.search(r'<td class="number">A002</td>.*?<time data-since="[^"]+">\d+ Min\.</time>', page, re.S)
    # the steering decision is explained to staff
    reason = live.state()["counters"][0]["serving"]["reason"]
    assert reason and f'id="serving-why">Aufgerufen, weil: {reason}<' in page
    r = post(staff, "/staff/c1/recall", follow_redirects=True)
    assert "A001 aufgerufen" in r.get_data(as_text=True)
    r = post(staff, "/staff/c1/served", follow_redirects=True)
    assert "A001 erledigt" in r.get_data(as_text=True)


def test_nobody_waiting_is_a_clear_error(staff):
    r = post(staff, "/staff/c2/next", follow_redirects=True)
    assert "Niemand wartet." in r.get_data(as_text=True)
    token = csrf_token(staff)
    r = staff.post("/api/counter/c2/next", json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 409 and r.json["error"]["code"] == "nobody_waiting"
    r = staff.post("/api/counter/c2/served", json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 409 and r.json["error"]["code"] == "not_serving"
    assert r.json["error"]["data"] == {"counter": "c2"}  # the reply's fields, for a client that acts on them


def test_api_actions_transfer_park_call_pause(app, staff, node):
    disp = node("disp-1")
    for _ in range(2):
        disp.request("ticket.issue", {"service": "melde"})
    h = {"X-CSRFToken": csrf_token(staff)}
    assert staff.post("/api/counter/c1/next", json={}, headers=h).json["result"]["call"]["ticket"] == "B001"
    r = staff.post("/api/counter/c1/transfer", json={"target": "service:sonstiges"}, headers=h)
    assert r.status_code == 200 and r.json["result"]["ticket"]["service"] == "sonstiges"
    assert staff.post("/api/counter/c1/next", json={}, headers=h).json["result"]["call"]["ticket"] == "B002"
    assert (
        staff.post("/api/counter/c1/park", json={}, headers=h).json["result"]["ticket"]["state"] == "parked"
    )
    r = staff.post("/api/counter/c1/call", json={"ticket": "b2"}, headers=h)
    assert r.json["result"]["call"]["ticket"] == "B002"
    r = staff.post("/api/counter/c1/call", json={"ticket": "Z999"}, headers=h)
    assert r.status_code == 404 and r.json["error"]["code"] == "unknown_ticket"
    r = staff.post("/api/counter/c1/call", json={}, headers=h)
    assert (
        r.status_code == 400
        and r.json["error"]["message"] == "Feld „Nummer aufrufen“ fehlt oder ist ungültig."
    )
    r = staff.post("/api/counter/c1/transfer", json={"target": "nowhere"}, headers=h)
    assert r.status_code == 400
    r = staff.post("/api/counter/c1/pause", json={"reason": "besprechung"}, headers=h)
    assert r.json["result"]["counter"] == {"id": "c1", "state": "paused", "reason": "besprechung"}
    r = staff.post("/api/counter/c1/bogus", json={}, headers=h)
    assert r.status_code == 404
    assert (
        staff.post("/api/counter/c1/close", json={}, headers=h).json["result"]["counter"]["state"] == "closed"
    )
    assert staff.post("/api/counter/c1/open", json={}, headers=h).json["result"]["counter"]["state"] == "open"


def test_wrong_counter_is_forbidden(app):
    c = app.test_client()
    login(c, "bernd")  # may operate c3 only
    assert c.get("/staff/c1").status_code == 403
    assert post(c, "/staff/c1/next").status_code == 403
    r = c.post("/api/counter/c1/next", json={}, headers={"X-CSRFToken": csrf_token(c)})
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    assert c.get("/staff/c3").status_code == 200
    assert c.get("/staff/c9").status_code == 404
    page = c.get("/staff/?pick=1").get_data(as_text=True)
    assert "/staff/c3" in page and "/staff/c1" not in page


def test_csrf_is_required(staff):
    assert staff.post("/staff/c1/next").status_code == 400
    r = staff.post("/api/counter/c1/next", json={})
    assert r.status_code == 400 and r.json["error"]["code"] == "csrf"


def test_assistance_acknowledge_and_resolve(app, staff, node):
    sb = node("sb-1")
    aid = sb.request("assist.request", {"terminal": "sb-1"})["assist"]["id"]
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["assistance"])
    page = staff.get("/staff/c1/panel").get_data(as_text=True)
    assert "Selbstbedienung 1" in page and "wartet auf Hilfe" in page
    r = post(staff, "/staff/c1/assist_ack", {"request": aid}, follow_redirects=True)
    assert "Hilfe ist unterwegs." in r.get_data(as_text=True)
    page = staff.get("/staff/c1/panel").get_data(as_text=True)
    assert "Hilfe unterwegs (Schalter 1)" in page  # the counter's name, not its id c1
    r = post(staff, "/staff/c1/assist_ack", {"request": aid}, follow_redirects=True)
    html = r.get_data(as_text=True)  # already acknowledged: by whom, in the counter's name, not in English
    assert "Diese Hilfeanfrage hat schon Schalter 1 übernommen." in html and "already" not in html
    r = post(staff, "/staff/c1/assist_resolve", {"request": aid}, follow_redirects=True)
    assert "Hilfeanfrage erledigt." in r.get_data(as_text=True)
    wait_for(lambda: not live.state()["assistance"])


def test_admin_pages(app, admin, node):
    disp = node("disp-1")
    disp.set_health(printer="paper_low")
    disp.request("ticket.issue", {"service": "pass"})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.nodes.get("disp-1", {}).get("health", {}).get("printer") == "paper_low")
    wait_for(lambda: live.waiting())
    html = admin.get("/admin/").get_data(as_text=True)
    assert "disp-1" in html and "A001" in html
    assert health_lines(html, "disp-1")["printer"] == ("warn", "⚠ Achtung: Drucker: Papier geht zu Ende")
    assert (
        '<td class="nowrap">disp-1</td><td>Nummernausgabe</td>' in html
    )  # the role in words, not "dispenser"
    assert '<th scope="col">Gerät</th>' in html  # the device table's first column, in German
    assert '<th scope="col">Letzte Meldung</th>' in html  # when it last reported
    nodes = admin.get("/api/nodes").json["nodes"]
    row = next(n for n in nodes if n["id"] == "disp-1")
    assert row["online"] and row["version"] and row["health"]["printer"] == "paper_low"
    assert next(n for n in nodes if n["id"] == "display-1")["online"] is False
    cfg_page = admin.get("/admin/config").get_data(as_text=True)
    assert "Bürgerbüro Mitte" in cfg_page
    r = post(admin, "/admin/intake/pass", {"mode": "stop", "reason": "Annahmeschluss"}, follow_redirects=True)
    assert "Annahme geändert." in r.get_data(as_text=True)
    wait_for(lambda: not live.state()["services"][0]["intake_open"])
    assert post(admin, "/admin/intake/nope", {"mode": "stop"}).status_code == 404
    # an admin may operate every counter
    assert admin.get("/staff/c5").status_code == 200


def test_the_admin_queue_names_a_pause_reason_as_the_office_does(app, admin, staff):
    """The counters of the admin page said a paused counter's reason by its id ("Paused (technik)", a German
    id on an English page), where the staff page says the name of office.pause_reasons."""
    live = app.extensions["waitroom"]
    assert post(staff, "/staff/c1/pause", {"reason": "technik", "confirmed": "1"}).status_code == 302
    wait_for(lambda: live.state()["counters"][0]["state"] == "paused")
    for path in ("/admin/", "/admin/queue"):
        for lang, said in (("de", "Pause (Technische Störung)"), ("en", "Paused (Technical problem)")):
            html = admin.get(f"{path}?lang={lang}").get_data(as_text=True)
            assert f"<td>{said}</td>" in html, (path, lang)
            assert "(technik)" not in html


def test_admin_queue_and_alarms_follow_the_office(cfg, tmp_path, node):
    """The admin page's queue and its alarms are fragments that the page fetches again on every state,
    controller and link event (before, both were as of the page's load, and "offline" meant only this app's
    own broker link): a new ticket is in the queue; a help request escalated to the office manager and a
    controller that stopped are alarms, and both end."""
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    fast = cfg.model_copy(
        update={"controller": cfg.controller.model_copy(update={"assist_escalate_s": [1, 2]})}
    )
    ctl = ControllerService(fast, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    app = create_app(fast, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
    live = app.extensions["waitroom"]
    admin = app.test_client()
    assert login(admin, "admin").status_code == 302

    def alarms() -> str:
        return admin.get("/admin/alarms").get_data(as_text=True)

    try:
        wait_for(lambda: live.state() is not None)
        page = admin.get("/admin/").get_data(as_text=True)
        assert 'data-live-fragment="/admin/queue?fragment=1&amp;lang=de"' in page and "A001" not in page
        node("disp-1").request("ticket.issue", {"service": "pass"})
        wait_for(lambda: "A001" in admin.get("/admin/queue").get_data(as_text=True))
        assert "<h1" not in admin.get("/admin/queue").get_data(as_text=True)  # the section only

        aid = node("sb-1").request("assist.request", {"terminal": "sb-1"})["assist"]["id"]
        wait_for(lambda: 'id="alarm-help_escalated"' in alarms(), timeout=15)
        assert "1 Hilfeanfrage seit langem unbeantwortet!" in alarms()  # (the plural form of 1)
        node("counter-3").request("assist.resolve", {"request": aid})
        wait_for(lambda: 'id="alarm-help_escalated"' not in alarms())

        assert 'id="alarm-controller_offline"' not in alarms()
        with live.subscribe() as sub:
            ctl.stop()
            wait_for(lambda: 'id="alarm-controller_offline"' in alarms())
            assert any(m.startswith("event: controller") for m in sub.buffer)  # the page fetches alarms
        assert "Keine Verbindung zur Steuerung" in admin.get("/admin/").get_data(as_text=True)
        ctl = ControllerService(fast, str(tmp_path / "events.db"))
        assert ctl.start(wait=10)
        wait_for(lambda: 'id="alarm-controller_offline"' not in alarms())
    finally:
        live.close()
        ctl.stop()


def test_admin_warns_before_a_nodes_tls_certificate_ends(cfg, app, admin, node):
    """A node whose certificate ends within 30 days (its health's ``cert_until``, see test_broker_certs for
    the TLS side) is an alarm on the admin page, naming the node, and a warning on its line; the other
    nodes' certificates are said as "valid until"."""
    live = app.extensions["waitroom"]
    soon, later = time.time() + 10 * 86400, time.time() + 400 * 86400
    node("display-1").set_health(cert_until=int(later), broker_cert_until=int(later))
    wait_for(lambda: "gültig bis" in admin.get("/admin/nodes").get_data(as_text=True))
    assert 'id="alarm-certificate_ending"' not in admin.get("/admin/alarms").get_data(as_text=True)
    node("counter-2").set_health(cert_until=int(soon), broker_cert_until=int(later))
    wait_for(lambda: any(r["health"].get("cert_until") == int(soon) for r in live.node_table()))
    alarms = admin.get("/admin/alarms").get_data(as_text=True)
    assert 'id="alarm-certificate_ending"' in alarms and "counter-2" in alarms and "display-1" not in alarms
    import datetime as dt

    assert f"zuerst am {dt.datetime.fromtimestamp(soon, cfg.office.tz):%d.%m.%Y}" in alarms
    nodes = admin.get("/admin/nodes").get_data(as_text=True)
    assert "node-certs" in nodes


def test_admin_statistics_and_csv(app, admin, node):
    disp, counter = node("disp-1"), node("counter-1")
    for svc in ("pass", "pass", "melde"):
        disp.request("ticket.issue", {"service": svc})
    counter.request("counter.call_next", {"counter": "c1"})
    counter.request("counter.served", {"counter": "c1"})
    counter.request("counter.call_next", {"counter": "c1"})
    counter.request("counter.no_show", {"counter": "c1"})
    html = admin.get("/admin/stats").get_data(as_text=True)
    assert "<svg" in html and "(3)" in html
    r = admin.get("/admin/stats.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = [line.split(";") for line in r.get_data(as_text=True).lstrip("\ufeff").splitlines()]
    totals = {row[2]: row for row in rows if row[1] == "total"}
    assert totals["pass"][3:6] == ["2", "1", "1"]  # issued, served, no-show
    assert totals["melde"][3] == "1"
    for day in ("not-a-day", "2026-02-30", "9999-12-31"):  # 9999-12-31: 500 before (its end overflowed)
        for path in ("/admin/stats", "/admin/stats.csv"):
            r = admin.get(f"{path}?day={day}")
            assert r.status_code == 400 and "Feld „Tag“ fehlt oder ist ungültig" in r.get_data(as_text=True)


def test_statistics_unavailable_elsewhere(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(cfg, data_dir=tmp_path / "elsewhere", test_config={"SECRET_KEY": "k" * 32})
    try:
        app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
        c = app.test_client()
        login(c, "admin")
        html = c.get("/admin/stats").get_data(as_text=True)
        where = tmp_path / "elsewhere" / cfg.controller.database  # the office file names it
        assert _flash(html) == (
            "Statistik nicht verfügbar: Das Ereignisprotokoll der Steuerung liegt nicht auf diesem Rechner "
            f"(gesucht: {where})."
        )
        r = c.get("/admin/stats.csv")  # the download says it in the page's words too, not in English
        assert r.status_code == 503 and r.get_data(as_text=True).startswith("Statistik nicht verfügbar: ")
        where.write_bytes(b"not a database " * 100)  # there, but no SQLite file: said without the English
        html = c.get("/admin/stats?lang=en").get_data(as_text=True)
        assert _flash(html).startswith(f"Statistics unavailable: the event log {where} cannot be read. ")
        assert "file is not a database" not in html
    finally:
        app.extensions["waitroom"].close()


def test_public_waits_and_api(app, anon, node):
    node("disp-1").request("ticket.issue", {"service": "pass"})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["services"][0]["waiting"] == 1)
    html = anon.get("/waiting").get_data(as_text=True).replace("\u00a0", " ")
    assert "Personalausweis / Reisepass" in html and ("ca. " in html or "weniger als 1 Min." in html)
    en = anon.get("/waiting?lang=en").get_data(as_text=True)
    assert "ID card / passport" in en and 'lang="en"' in en
    data = anon.get("/api/public").json
    svc = data["offices"][0]["services"][0]
    assert svc["id"] == "pass" and svc["waiting"] == 1 and isinstance(svc["eta_min"], int)
    wait_for(lambda: live.waiting())  # the queue page follows the summary within a second
    state = anon.get("/api/state").json
    assert state["waiting"][0]["ticket"] == "A001" and "id" not in state["waiting"][0]
    assert anon.get("/").headers["Location"].endswith("/waiting")


def test_a_service_by_appointment_only_shows_no_wait_to_walk_ins(cfg, tmp_path, node):
    """A service the dispensers do not offer (``walk_in: false``): the public page and its JSON said a wait
    for it as for the others, and a citizen came in to wait for a number nobody gives out. It says "by
    appointment only" instead, and the JSON for the city website and 115 marks it."""
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    services = [s.model_copy(update={"walk_in": s.id != "fuehrerschein"}) for s in cfg.services]
    cfg = cfg.model_copy(update={"services": services})
    ctl = ControllerService(cfg, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "TESTING": True})
    live = app.extensions["waitroom"]
    anon = app.test_client()
    try:
        node("disp-1").request("ticket.issue", {"service": "pass"})
        wait_for(lambda: (live.state() or {}).get("seq", 0) >= 1 and live.public_state() is not None)
        rows = {
            " ".join(re.sub(r"<[^>]+>", " ", row).split())
            for row in re.findall(
                r"<tr role=\"row\">(.*?)</tr>", anon.get("/waiting").get_data(as_text=True), re.S
            )
        }
        assert any(r.startswith("Führerschein") and r.endswith("Nur mit Termin") for r in rows), rows
        assert not any(r.startswith("Personalausweis") and "Termin" in r for r in rows), rows
        assert "By appointment only" in anon.get("/waiting?lang=en").get_data(as_text=True)
        by_id = {s["id"]: s for s in anon.get("/api/public").json["offices"][0]["services"]}
        assert by_id["fuehrerschein"]["walk_in"] is False and by_id["pass"]["walk_in"] is True
    finally:
        live.close()
        ctl.stop()


def test_ticket_status_page(app, anon, node, staff):
    disp = node("disp-1")
    t1 = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    t2 = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    live = app.extensions["waitroom"]
    wait_for(lambda: len(live.waiting()) == 2)
    j = anon.get(f"/api/ticket/{t2['id']}").json
    assert j["state"] == "waiting" and j["ticket"] == "A002" and j["position"] == 2
    html = anon.get(f"/t/{t2['id']}").get_data(as_text=True)
    assert "A002" in html and "Position 2" in html
    post(staff, "/staff/c1/next")
    wait_for(lambda: live.state()["counters"][0]["serving"])
    j = anon.get(f"/api/ticket/{t1['id']}").json
    assert j["state"] == "called" and j["counter"] == "c1"
    assert "Counter 1" in anon.get(f"/t/{t1['id']}?lang=en").get_data(as_text=True)
    assert anon.get("/api/ticket/0000000000").status_code == 404
    assert anon.get("/t/..%2Fetc").status_code == 404


def test_sse_stream_sends_state_and_calls(app, anon, node):
    r = anon.get("/api/stream", buffered=False)
    assert r.mimetype == "text/event-stream"
    chunks = r.response
    first = ""
    while "event: state" not in first:
        first += next(chunks).decode() if isinstance(first, str) else ""
    assert '"waiting":[]' in first or '"waiting"' in first
    node("disp-1").request("ticket.issue", {"service": "pass"})
    node("counter-1").request("counter.call_next", {"counter": "c1"})
    seen = ""
    while "event: call" not in seen:
        seen += next(chunks).decode()
    assert '"ticket":"A001"' in seen and "ticket_id" not in seen
    r.close()
    wait_for(lambda: app.extensions["waitroom"].stream_count == 0)


def test_public_rate_limit(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "k" * 32, "WAITROOM_PUBLIC_RATE": 5})
    try:
        c = app.test_client()
        codes = [c.get("/api/public").status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
        r = c.get("/waiting")
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    finally:
        app.extensions["waitroom"].close()


def test_secret_key_required_in_production(cfg, monkeypatch):
    from waitroom.errors import ConfigError
    from waitroom.web import create_app

    monkeypatch.delenv("WAITROOM_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"web\.secret_key"):
        create_app(cfg, connect_wait=0)


def test_bad_web_config_names_the_key(cfg):
    from waitroom.errors import ConfigError
    from waitroom.web.settings import web_settings

    bad = cfg.model_copy(update={"web": {"session_hours": -1, "colour": "red"}})
    with pytest.raises(ConfigError) as exc:
        web_settings(bad)
    assert "web.session_hours" in str(exc.value) and "web.colour: unknown key" in str(exc.value)


def test_session_expires(app):
    assert app.permanent_session_lifetime.total_seconds() == 10 * 3600
    c = app.test_client()
    r = login(c, "anna")
    cookie = r.headers.get("Set-Cookie", "")
    assert "Expires=" in cookie and "HttpOnly" in cookie


def test_the_public_api_sets_no_cookie(app, anon):
    """An anonymous reader of the API or a status page gets no cookie (every answer set one, even the
    ``Cache-Control: public`` one a shared cache may keep); a chosen language is still remembered."""
    for path in ("/api/public", "/api/state", "/api/ticket/B001", "/api/ticket/ZZZZ"):
        r = anon.get(path)
        assert r.status_code in (200, 404) and "Set-Cookie" not in r.headers, (path, r.headers)
    r = anon.get("/waiting?lang=ar")
    assert "Expires=" in r.headers["Set-Cookie"]
    assert 'lang="ar" dir="rtl"' in anon.get("/waiting").get_data(as_text=True)


def test_demo_page_publishes_sim_presses(cfg, controller, tmp_path, node):
    from PIL import Image

    from ticket_printer import preview
    from waitroom.web import create_app

    png = preview.save_png(Image.new("1", (10, 10), 1), tmp_path / "tickets", "A001", keep=5)
    app = create_app(cfg, data_dir=tmp_path, demo=True)
    try:
        received = []
        counter = node("counter-1")
        counter.subscribe(counter.topics.sim("counter-1"), lambda t, p: received.append(p))
        c = app.test_client()
        assert c.get("/").headers["Location"].endswith("/demo/")
        html = c.get("/demo/").get_data(as_text=True)
        assert (
            'data-node="counter-1" data-button="next"' in html
            and 'data-node="sb-1" data-button="help"' in html
        )
        token = csrf_token(c, "/demo/")
        for _ in range(20):  # the spy's SUBSCRIBE may still be on its way: press again until it hears one
            r = c.post(
                "/demo/press/counter-1",
                json={"button": "next", "action": "hold"},
                headers={"X-CSRFToken": token},
            )
            assert r.status_code == 202
            time.sleep(0.25)
            if received:
                break
        assert received
        assert b'"action":"hold"' in received[0] and b'"button":"next"' in received[0]
        r = c.post(
            "/demo/press/counter-1",
            json={"button": "fire", "action": "press"},
            headers={"X-CSRFToken": token},
        )
        assert r.status_code == 400
        r = c.post("/demo/press/nobody", json={"button": "next"}, headers={"X-CSRFToken": token})
        assert r.status_code == 404
        media = c.get("/demo/media").json
        assert media["tickets"][0]["name"] == png.name
        img = c.get(media["tickets"][0]["url"])
        assert img.status_code == 200 and img.data[:4] == b"\x89PNG"
        assert c.get("/demo/ticket/..%2Fsecret.png").status_code == 404
    finally:
        app.extensions["waitroom"].close()


def test_demo_language_button_names_the_dispensers_languages(cfg, controller, tmp_path):
    """The dispenser's language button steps through its languages; the demo page said "English" on it
    whatever the dispenser offered, and never which languages a press would choose."""
    from waitroom.web import create_app

    nodes = [
        n.model_copy(update={"options": {**n.options, "languages": ["de", "tr", "ar"]}})
        if n.role == "dispenser"
        else n
        for n in cfg.nodes
    ]
    app = create_app(cfg.model_copy(update={"nodes": nodes}), data_dir=tmp_path, demo=True)
    try:
        html = app.test_client().get("/demo/?lang=de").get_data(as_text=True)
        assert 'data-button="lang" data-action="press">Sprache</button>' in html
        assert "Deutsch → Türkçe → العربية" in html
        assert 'href="?lang=en"' in html and "?lang=disp-1" not in html  # the page's own language links
    finally:
        app.extensions["waitroom"].close()


def test_example_dispenser_offers_every_language():
    """README: citizens choose any of the languages at the dispenser, and the demo runs the example office."""
    from edge.dispenser.schema import DispenserOptions
    from waitroom import config
    from waitroom.i18n import LANGUAGES

    office = config.load(Path(config.__file__).parent / "examples" / "office.yaml")
    (disp,) = [n for n in office.nodes if n.role == "dispenser"]
    assert DispenserOptions.model_validate(disp.options).languages == LANGUAGES


def test_demo_is_off_in_production(anon):
    assert anon.get("/demo/").status_code == 404


def test_users_store_rules(tmp_path: Path):
    from waitroom.web.users import UserError, UserStore

    store = UserStore(tmp_path / "u.db")
    store.add("chef", "a-long-password", "admin")
    with pytest.raises(UserError, match="exists"):
        store.add("chef", "a-long-password")
    with pytest.raises(UserError, match="at least"):
        store.add("kurz", "short")
    with pytest.raises(UserError, match="not valid"):
        store.add("Bad Name", "a-long-password")
    assert store.verify("chef", "a-long-password").is_admin
    assert store.verify("chef", "wrong") is None
    raw = (tmp_path / "u.db").read_bytes()
    assert b"a-long-password" not in raw


def test_cli_create_admin(tmp_path, monkeypatch, capsys):
    from waitroom.cli import main

    monkeypatch.setenv("WAITROOM_USER_PASSWORD", "admin-password-1")
    assert main(["web", "create-admin", "--data-dir", str(tmp_path), "--username", "chefin"]) == 0
    assert "chefin (admin)" in capsys.readouterr().out
    from waitroom.web.users import UserStore

    assert UserStore(tmp_path / "web-users.db").verify("chefin", "admin-password-1").is_admin
    assert (
        main(["web", "add-user", "--data-dir", str(tmp_path), "--username", "x1", "--counters", "c99"]) == 1
    )


def test_a_language_link_keeps_the_page_s_query(app, anon):
    """Switching language keeps the page's query: the check-in page opened from a booking's link keeps its
    code (the link was ``?lang=tr`` alone, so a citizen who needed another language lost it)."""
    import html
    import re

    page = anon.get("/checkin?code=X3NERJ&lang=de").get_data(as_text=True)
    links = {
        m.group(2): html.unescape(m.group(1))
        for m in re.finditer(r'<a href="([^"]*)" lang="([^"]+)" dir="[^"]+" hreflang=', page)
    }
    assert links["tr"] == "?code=X3NERJ&lang=tr" and links["ar"] == "?code=X3NERJ&lang=ar"
    assert 'value="X3NERJ"' in anon.get(links["tr"].replace("?", "/checkin?")).get_data(as_text=True)
    hostile = anon.get('/waiting?x="><script>&lang=de').get_data(as_text=True)
    assert "<script>" not in hostile and "x=%22%3E%3Cscript%3E&amp;lang=en" in hostile


def test_a_controller_refusal_is_said_in_the_staff_language(staff):
    """Every refusal a staff page can meet has a text in German and English; the controller's own message
    (English, for the log) is not shown. It was shown alone, in English, and later in brackets."""
    token = csrf_token(staff)
    r = staff.post("/api/counter/c1/checkin", json={"code": "NOSUCH7"}, headers={"X-CSRFToken": token})
    assert r.status_code == 404 and r.json["error"]["code"] == "unknown_appointment"
    assert r.json["error"]["message"] == "Einen Termin mit diesem Code gibt es nicht."


COUNTS = (0, 1, 2, 3, 5, 11, 21, 100)


def ar_minutes(n: int) -> str:
    """Modern Standard Arabic after حوالي: 1 and 2 by the noun alone, 3-10 plural, else singular."""
    special = {0: "0 دقيقة", 1: "دقيقة واحدة", 2: "دقيقتين"}
    return special.get(n) or (f"{n} دقائق" if 3 <= n % 100 <= 10 else f"{n} دقيقة")


WEB_MINUTES = {
    "ar": lambda n: f"حوالي {ar_minutes(n)}",
    "ru": lambda n: f"ок. {n} мин",
    "uk": lambda n: f"бл. {n} хв",
    "de-LS": lambda n: f"ungefähr {n} Minute{'' if n == 1 else 'n'}",
    "de": lambda n: f"ca. {n} Min.",
    "en": lambda n: f"approx. {n} min",
    "tr": lambda n: f"yaklaşık {n} dk.",
}


def test_minutes_on_the_ticket_and_public_pages_agree_with_their_number(app, anon, node):
    """The citizen's ticket page and the public waiting times for n = 0 ... 100 minutes, rendered by the
    app's own templates in every language; then a real ticket's page in Arabic."""
    from flask import render_template

    from waitroom.i18n import t

    for lang, minutes in WEB_MINUTES.items():
        for n in COUNTS:
            with app.test_request_context(f"/t/x?lang={lang}"):
                status = {"state": "waiting", "ticket": "A001", "position": n + 1, "eta_min": n}
                page = render_template("ticket_fragment.html", ticket_id="x", status=status)
                service = {"name": {"de": "Pass"}, "waiting": n, "eta_min": n, "intake_open": True}
                service["alternative"] = {"name": "Süd", "eta_min": n}
                data = {"offices": [{"office": "o", "name": "Mitte", "services": [service]}]}
                waits = render_template("public_waits_fragment.html", data=data)
            said = minutes(n) if n else t("wait.under_minute", lang)  # not "ca. 0 Min."
            # "ca. 12 Min." is kept whole on the page (no-break spaces)
            page, waits = page.replace("\u00a0", " "), waits.replace("\u00a0", " ")
            assert f'<p id="ticket-eta">{t("web.ticket.eta", lang, wait=said)}</p>' in page, (lang, n, page)
            assert f'data-label="{t("web.eta", lang)}">{said}' in waits, (lang, n, waits)
            if n:
                assert f"Süd: {minutes(n)}" in waits or f"Süd. Dort warten Sie {minutes(n)}." in waits, (
                    lang,
                    n,
                )
            else:  # the city's advice too says a wait under a minute so
                assert t("city.alternative_short", lang, office="Süd") in waits, (lang, waits)
    t1 = node("disp-1").request("ticket.issue", {"service": "pass", "lang": "ar"})["ticket"]
    live = app.extensions["waitroom"]
    wait_for(lambda: live.waiting())
    eta = anon.get(f"/api/ticket/{t1['id']}").json["eta_min"]
    html = anon.get(f"/t/{t1['id']}?lang=ar").get_data(as_text=True).replace("\u00a0", " ")
    said = f"حوالي {ar_minutes(eta)}" if eta else t("wait.under_minute", "ar")
    assert f'<p id="ticket-eta">{t("web.ticket.eta", "ar", wait=said)}</p>' in html, (eta, html)
    waiting = anon.get("/waiting?lang=ar").get_data(as_text=True).replace("\u00a0", " ")
    eta = anon.get("/api/public").json["offices"][0]["services"][0]["eta_min"]
    assert (f"حوالي {ar_minutes(eta)}" if eta else t("wait.under_minute", "ar")) in waiting


def _flash(html: str) -> str:
    """The text of the page's error message (the flash shown after a refused action)."""
    import re

    m = re.search(r'<p class="flash error" role="alert">([^<]*)</p>', html)
    assert m, "no error message on the page"
    return m.group(1)


def test_refusals_are_one_sentence_in_the_page_language_with_their_details(app, staff, node):
    """A controller's refusal is said as one German (or English) sentence that names the counter or the
    ticket from the reply's fields; the English message of the reply is not shown (it was, in brackets)."""
    said = {}
    said["nobody"] = _flash(post(staff, "/staff/c2/next", follow_redirects=True).get_data(as_text=True))
    said["served"] = _flash(post(staff, "/staff/c2/served", follow_redirects=True).get_data(as_text=True))
    r = post(staff, "/staff/c2/call", {"ticket": "z999"}, follow_redirects=True)
    said["ticket"] = _flash(r.get_data(as_text=True))
    r = post(staff, "/staff/c2/checkin", {"code": "NOSUCH7"}, follow_redirects=True)
    said["code"] = _flash(r.get_data(as_text=True))
    post(staff, "/staff/c2/pause", {"reason": "besprechung"})
    said["paused"] = _flash(post(staff, "/staff/c2/next", follow_redirects=True).get_data(as_text=True))
    post(staff, "/staff/c2/close")
    said["closed"] = _flash(post(staff, "/staff/c2/next", follow_redirects=True).get_data(as_text=True))
    assert said == {
        "nobody": "Für Schalter 2 wartet gerade niemand.",
        "served": "An Schalter 2 ist gerade keine Nummer aufgerufen.",
        "ticket": "Die Nummer Z999 wartet heute nicht und ist nicht geparkt.",
        "code": "Einen Termin mit diesem Code gibt es nicht.",  # what was typed is not said back
        "paused": "Schalter 2 ist in Pause. Bitte zuerst wieder öffnen.",
        "closed": "Schalter 2 ist geschlossen. Bitte zuerst öffnen.",
    }
    # the same in English, and the JSON API says the same sentence
    staff.get("/staff/c2?lang=en")
    r = post(staff, "/staff/c2/next", follow_redirects=True)
    assert _flash(r.get_data(as_text=True)) == "Counter 2 is closed. Please open it first."
    r = staff.post("/api/counter/c2/recall", json={}, headers={"X-CSRFToken": csrf_token(staff)})
    assert r.status_code == 409 and r.json["error"] == {
        "code": "not_serving",
        "message": "No number is called at Counter 2 right now.",
        "data": {"counter": "c2"},
    }


def test_a_refusal_names_what_only_the_controller_knows(app, staff, node):
    """The reply's fields carry what the web app cannot know: which counter took a help request already,
    and which ticket an appointment checked in at the counter has."""
    aid = node("sb-1").request("assist.request", {"terminal": "sb-1"})["assist"]["id"]
    node("counter-3").request("assist.acknowledge", {"request": aid})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["assistance"] and live.state()["assistance"][0]["state"] == "acknowledged")
    r = post(staff, "/staff/c1/assist_ack", {"request": aid}, follow_redirects=True)
    assert _flash(r.get_data(as_text=True)) == "Diese Hilfeanfrage hat schon Schalter 3 übernommen."
    with pytest.raises(CommandFailed) as refused:
        live.request("assist.acknowledge", {"request": aid, "counter": "c1"})
    assert refused.value.data == {"request": aid, "state": "acknowledged", "counter": "c3"}


def test_every_error_code_has_a_sentence_and_an_unknown_one_names_its_code(cfg):
    """Every code of the contract has a complete German and English sentence without placeholders left
    open (also from a controller that sends no fields); a code of a newer controller gets a general
    sentence with the code."""
    from waitroom import i18n
    from waitroom.contract import ErrorCode
    from waitroom.web import refusals

    unknown = {lang: i18n.t("web.err.unknown_code", lang, code="") for lang in i18n.STAFF_LANGUAGES}
    for code in ErrorCode:
        for lang in i18n.STAFF_LANGUAGES:
            text = refusals.text(cfg, lang, code.value)
            assert i18n.has(f"web.err.{code.value}", lang), (code, lang)
            assert text and "{" not in text and text.endswith((".", "!")), (code, lang, text)
            assert not text.startswith(unknown[lang][:20]), (code, lang)
    assert refusals.text(cfg, "de", "invalid_state") == (
        "Das passt nicht zum aktuellen Stand."  # an older controller: no fields, no "state" to tell why
    )
    assert refusals.text(cfg, "de", "moon_phase", {"counter": "c1"}) == (
        "Die Steuerung hat die Aktion abgelehnt (Fehlercode „moon_phase“). Bitte die Seite neu laden und "
        "noch einmal versuchen; sonst die Systembetreuung fragen."
    )
    assert "“moon_phase”" in refusals.text(cfg, "en", "moon_phase")


def test_admin_shows_node_health_as_readable_lines(app, admin, node):
    """Each node's health is a list of labelled lines with units in the page's language; bad states say
    "Achtung" in text (not only in red); fields this page does not know are still shown as key: value."""
    display, counter = node("display-1"), node("counter-2")
    display.set_health(
        display="ok",
        zone="all",
        audio="ok",
        speech="error: espeak-ng not found",
        announce_queue=1,
        announce_skipped=2,
        announce_missed=1,
        clock_offset_s=3,  # a field of a newer node
    )
    counter.set_health(counter="c2", mode="offline", last_error="nobody_waiting", presses=7, doubled=0)
    live = app.extensions["waitroom"]
    wait_for(lambda: live.nodes.get("display-1", {}).get("health", {}).get("clock_offset_s") == 3)
    wait_for(lambda: live.nodes.get("counter-2", {}).get("health", {}).get("presses") == 7)
    html = admin.get("/admin/?lang=de").get_data(as_text=True)
    shown = health_lines(html, "display-1")
    assert shown.pop("uptime_s")[1].startswith("Läuft seit: ")
    assert shown == {
        "status": ("", "Gesamtzustand: in Ordnung"),
        "display": ("", "Bildschirm: in Ordnung"),
        "audio": ("", "Ton: in Ordnung"),
        "speech": ("warn", "⚠ Achtung: Sprachansage: gestört, nur Gong (espeak-ng not found)"),
        "zone": ("", "Bereich: alle"),
        "announce_queue": ("", "Anstehende Durchsagen: 1"),  # not "in der Warteschlange": the citizens'
        "announce_skipped": ("", "Übersprungene Durchsagen (Schalter rief schon weiter): 2"),
        "announce_missed": ("", "Nachgeholte Durchsagen (nach einem Verbindungsausfall): 1"),
        "clock_offset_s": ("other", "clock_offset_s: 3"),
    }
    shown = health_lines(html, "counter-2")
    assert shown["counter"] == ("", "Schalter: Schalter 2")
    assert shown["mode"] == ("warn", "⚠ Achtung: Schalterleuchte: keine Verbindung zur Steuerung")
    assert shown["last_error"] == ("", "Letzte Ablehnung: Niemand wartet.")
    assert shown["presses"] == ("", "Tastendrücke: 7")
    assert "k=v" not in html and "speech=" not in html
    # the live fragment in English
    html = admin.get("/admin/nodes?lang=en").get_data(as_text=True)
    shown = health_lines(html, "display-1")
    assert shown["speech"] == (
        "warn",
        "⚠ Warning: Spoken announcements: failing, gong only (espeak-ng not found)",
    )
    assert shown["announce_skipped"] == ("", "Announcements skipped (the counter had called on): 2")
    assert (
        health_lines(html, "counter-2")["mode"][1]
        == "⚠ Warning: Counter light: no connection to the controller"
    )
    assert '<td class="nowrap">display-1</td><td>call display</td>' in html


def test_admin_says_node_faults_as_sentences_with_the_detail_folded_away(app, admin, node):
    """A fault with a stable code (contract.FAULT_FIELDS) reads as a sentence in the page's language, the
    node's own words under "Technische Angabe"; a code this page does not know shows the node's words."""
    display, disp = node("display-1"), node("disp-1")
    display.set_health(
        display="error",
        display_error="RuntimeError('surface lost')",
        display_fault="frame_failed",
        speech="error: espeak-ng is not installed: apt-get install espeak-ng (or: make sysdeps)",
        speech_fault="speech_missing",
        heard_error="/var/lib/waitroom/display-display-1-heard.json: Read-only file system",
        heard_fault="heard_unwritable",
    )
    disp.set_health(
        offline_store="/var/lib/waitroom/offline.db: database or disk is full",
        offline_store_fault="store_full",
        printer_error="the printer is on fire",
        printer_fault="printer_on_fire",  # a code of a newer node
    )
    live = app.extensions["waitroom"]
    wait_for(lambda: live.nodes.get("display-1", {}).get("health", {}).get("speech_fault"))
    wait_for(lambda: live.nodes.get("disp-1", {}).get("health", {}).get("printer_fault"))
    html = admin.get("/admin/nodes?lang=de").get_data(as_text=True)
    shown = health_lines(html, "display-1")
    assert shown["display_error"] == (
        "warn",
        "⚠ Achtung: Letzter Anzeigefehler: Das Bild der Anzeige konnte nicht gezeichnet werden; sie versucht "
        "es jede Sekunde neu.",
    )
    assert shown["speech"] == (
        "warn",
        "⚠ Achtung: Sprachansage: Die Sprachausgabe ist nicht installiert oder startet nicht: Aufrufe kommen "
        "nur mit Gong.",
    )
    assert shown["heard_error"] == (
        "warn",
        "⚠ Achtung: Angesagte Aufrufe speichern: Die Anzeige kann die angesagten Aufrufe nicht speichern "
        "(Speicher voll oder schreibgeschützt): Nach einem Neustart kann ein Aufruf noch einmal angesagt "
        "werden. Speicherplatz freigeben.",
    )
    assert "display_fault" not in shown and "speech_fault" not in shown and "heard_fault" not in shown
    details = health_details(html, "display-1")
    assert details["display_error"] == ("Technische Angabe", "RuntimeError('surface lost')")
    assert details["speech"][1].startswith("espeak-ng is not installed")
    shown = health_lines(html, "disp-1")
    assert shown["offline_store"] == (
        "warn",
        "⚠ Achtung: Speicher für Offline-Nummern: Der Speicher für Offline-Nummern ist voll: Ohne Steuerung "
        "gibt es keine Nummern. Speicherplatz freigeben.",
    )
    assert shown["printer_error"] == ("warn", "⚠ Achtung: Letzter Druckfehler: the printer is on fire")
    assert "printer_error" not in health_details(html, "disp-1")
    html = admin.get("/admin/nodes?lang=en").get_data(as_text=True)
    assert health_lines(html, "display-1")["speech"][1] == (
        "⚠ Warning: Spoken announcements: Speech synthesis is not installed or does not start: calls come "
        "with the gong only."
    )
    assert health_details(html, "display-1")["display_error"][0] == "Technical detail"


def test_the_controllers_alarms_as_sentences(cfg):
    """``alerts`` (codes with fields) as sentences; a code this page does not know, with its code; from a
    controller older than ``alerts``, the English text under the sentence it stands for."""
    from waitroom.web import health

    state = {"alerts": [{"code": "clock_behind", "data": {"behind_s": 7260}}, {"code": "moon", "data": {}}]}
    clock, moon = health.alarms(cfg, "de", state)
    assert clock.text.startswith("Die Uhr der Steuerung geht 2 Std. 1 Min. hinter ihrem Ereignisprotokoll")
    assert moon.text == (
        "Die Steuerung meldet ein Problem, das diese Seite noch nicht kennt (Code „moon“). Bitte die "
        "Systembetreuung fragen."
    )
    old = health.alarms(cfg, "en", {"alarms": {"clock": "the clock (...) is 7260 s behind the event log"}})
    assert [(a.code, a.detail) for a in old] == [
        ("clock_behind", "the clock (...) is 7260 s behind the event log")
    ]
    assert old[0].text.startswith("The controller's clock is behind its event log")
    assert health.alarms(cfg, "de", {"services": []}) == [] and health.alarms(cfg, "de", None) == []


def test_an_event_log_that_cannot_be_written_as_a_sentence_for_the_admin_and_for_staff(cfg):
    from waitroom.web import health

    alert = {"code": "log_unwritable", "data": {"since": 1795420800, "error": "database or disk is full"}}
    at = health.Describer(cfg, "de").clock(1795420800)
    (admin,) = health.alarms(cfg, "de", {"alerts": [alert]})
    assert admin.text.startswith(f"Die Steuerung kann seit {at} Uhr nicht in ihr Ereignisprotokoll schreiben")
    assert "database or disk is full" in admin.detail  # the database's words, for the technician
    (clerk,) = health.alarms(cfg, "de", {"alerts": [alert]}, for_staff=True)
    assert clerk.text.startswith(f"Die Steuerung kann seit {at} Uhr nichts speichern")
    (en,) = health.alarms(cfg, "en", {"alerts": [alert]})
    assert en.text.startswith("The controller has not been able to write its event log since")
    (odd,) = health.alarms(cfg, "de", {"alerts": [{"code": "log_unwritable", "data": {}}]})
    assert "Code „log_unwritable“" in odd.text


def test_every_fault_and_alarm_code_of_the_contract_has_its_sentence():
    from waitroom.contract import AlarmCode, FaultCode
    from waitroom.web import health

    assert set(health.FAULTS) == set(FaultCode) and set(health.ALARMS) == set(AlarmCode)


def test_a_dispenser_health_record_reads_as_words(cfg):
    """The dispenser's fields (edge/dispenser/node.py ``health``): counts, numbers per service, refusals,
    a stuck button; an uptime in hours and minutes."""
    from waitroom.web import health

    record = {
        "status": "error",
        "printer": "paper_out",
        "printer_error": None,
        "printer_backend": "network",
        "controller": "offline",
        "issued": 12,
        "offline_issued": 3,
        "offline_unreported": 2,
        "priority_issued": 0,
        "offline_numbers_left": {"pass": 0, "melde": 899},
        "offline_store": "ok",
        "intake_stopped": {},
        "refused": {"printer": 4, "rate_limited": 1},
        "last_refusal": None,
        "buttons_stuck": ["melde"],
        "advice": {},
        "uptime_s": 7500,
    }
    lines = {
        line.key: (line.warn, f"{line.label}: {line.value}") for line in health.describe(cfg, "de", record)
    }
    assert lines == {
        "status": (True, "Gesamtzustand: gestört"),
        "printer": (True, "Drucker: kein Papier"),
        "controller": (True, "Steuerung: nicht erreichbar (Offline-Nummern)"),
        "offline_store": (False, "Speicher für Offline-Nummern: in Ordnung"),
        "buttons_stuck": (True, "Taste klemmt: Meldeangelegenheiten"),
        "issued": (False, "Ausgegebene Nummern heute: 12"),
        "offline_issued": (False, "davon ohne Steuerung (offline): 3"),
        "priority_issued": (False, "davon mit Vorrang: 0"),
        "offline_unreported": (True, "Offline-Nummern noch nicht gemeldet: 2"),
        "offline_numbers_left": (
            True,
            "Offline-Nummern übrig: Meldeangelegenheiten: 899, Personalausweis / Reisepass: 0",
        ),
        "refused": (False, "Abgelehnte Tastendrücke: Drucker nicht bereit: 4, zu schnell hintereinander: 1"),
        "printer_backend": (False, "Druckeranschluss: network"),
        "uptime_s": (False, "Läuft seit: 2 Std. 5 Min."),
    }


def test_every_controller_error_code_has_its_own_http_status() -> None:
    """A refusal is never answered with the catch-all 400: "retry later" is 429/503 with Retry-After, a number
    range used up or a full reservation book is a conflict, an unknown reservation is not found."""
    import flask

    from waitroom import contract
    from waitroom.web import common

    missing = [c.value for c in contract.ErrorCode if c.value not in common.HTTP_STATUS]
    assert missing == []
    assert common.HTTP_STATUS["rate_limited"] == 429
    assert common.HTTP_STATUS["clock_behind"] == 503
    assert common.HTTP_STATUS["numbers_used_up"] == 409
    assert common.HTTP_STATUS["unknown_reservation"] == 404
    for code in contract.RETRY_LATER:
        app = flask.Flask(__name__)
        with app.app_context():
            resp = common.json_error(common.HTTP_STATUS[code.value], code.value, "später")
        assert resp.headers["Retry-After"].isdigit(), code


def _form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the staff panel's form that posts ``action`` (as the browser would send them)."""
    import re

    m = re.search(rf'<form method="post" action="/staff/c1/{action}"[^>]*>(.*?)</form>', html, re.S)
    assert m, f"no form for {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', m.group(1)))


def test_a_double_click_or_a_stale_page_acts_on_no_ticket_it_does_not_show(app, staff, node):
    """Each action form sends the ticket the page shows as called. A double click on "next" (two posts of
    the same form, the key held down) called two tickets and finished the first one as served although
    nobody had served it; a "no-show" from a page older than a call at the counter's buttons marked the
    citizen just called as not appeared."""
    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    page = staff.get("/staff/c1").get_data(as_text=True)
    form = _form_fields(page, "next")
    assert form["current"] == ""
    first = staff.post("/staff/c1/next", data=form, follow_redirects=True).get_data(as_text=True)
    assert "A001 aufgerufen" in first
    second = staff.post("/staff/c1/next", data=form, follow_redirects=True).get_data(as_text=True)
    assert _flash(second) == (
        "An Schalter 1 ist inzwischen A001 aufgerufen. "
        "Es wurde nichts geändert: bitte den aktuellen Stand prüfen."
    )
    live = app.extensions["waitroom"]
    assert live.state()["counters"][0]["serving"]["ticket"] == "A001"
    assert _form_fields(second, "no_show")["current"] == "A001"
    # the counter's own button calls the next citizen; the page (not yet refreshed) still shows A001
    node("counter-1").request("counter.call_next", {"counter": "c1"})
    r = staff.post("/staff/c1/no_show", data=_form_fields(second, "no_show"), follow_redirects=True)
    assert _flash(r.get_data(as_text=True)).startswith("An Schalter 1 ist inzwischen A002 aufgerufen.")
    h = {"X-CSRFToken": csrf_token(staff)}
    r = staff.post("/api/counter/c1/served", json={"current": "A001"}, headers=h)
    assert r.status_code == 409 and r.json["error"]["data"] == {
        "counter": "c1",
        "state": "serving",
        "ticket": "A002",
    }
    wait_for(lambda: live.state()["counters"][0]["serving"]["ticket"] == "A002")
    assert staff.post("/api/counter/c1/served", json={"current": "A002"}, headers=h).status_code == 200
    r = staff.post("/api/counter/c1/served", json={"current": 5}, headers=h)
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"


def test_a_session_that_ended_mid_action_does_nothing_and_leads_back_to_the_workstation(app, node):
    """The login session ends (after its hours, or revoked by a password change) while the workstation is
    open; the next click is not done, and after logging in again the staff member is back at the
    workstation. The login sent them to the action's own address with GET: a "not possible here" page."""
    node("disp-1").request("ticket.issue", {"service": "pass"})
    c = app.test_client()
    login(c, "anna")
    page = c.get("/staff/c1").get_data(as_text=True)
    form = _form_fields(page, "next")
    app.extensions["waitroom_sessions"].revoke_user("anna")
    r = c.post("/staff/c1/next", data=form)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    login_page = c.get(r.headers["Location"]).get_data(as_text=True)
    assert "Sie waren abgemeldet. Die Aktion wurde nicht ausgeführt:" in login_page
    token = csrf_token(c, "/login")
    r = c.post(r.headers["Location"], data={"username": "anna", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/staff/c1"
    assert c.get("/staff/c1").status_code == 200
    live = app.extensions["waitroom"]
    assert live.state()["counters"][0]["serving"] is None  # nothing was called


def test_the_transfer_list_offers_no_closed_counter(app, staff, node):
    """A transfer to a closed counter is refused (nobody would call the ticket there); the list says which
    counters are closed instead of offering them."""
    node("disp-1").request("ticket.issue", {"service": "pass"})
    node("counter-2").request("counter.close", {"counter": "c2"})
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state()["counters"][1]["state"] == "closed")
    page = post(staff, "/staff/c1/next", follow_redirects=True).get_data(as_text=True)
    assert '<option value="counter:c2" disabled>Schalter 2 (Geschlossen)</option>' in page
    assert '<option value="counter:c3">Schalter 3</option>' in page
    r = post(staff, "/staff/c1/transfer", {"target": "counter:c2"}, follow_redirects=True)  # an old page
    assert _flash(r.get_data(as_text=True)) == "Schalter 2 ist geschlossen. Bitte zuerst öffnen."
    assert live.state()["counters"][0]["serving"]["ticket"] == "A001"


def test_a_form_whose_session_cookie_is_gone_leads_back_to_its_page(app, node):
    """The browser dropped the session cookie (closed, or the cookie's hours ended) while the workstation was
    open: the form's token no longer matches. The answer was an error page at the form's address saying to
    reload it, and reloading sent the same stale form again; now nothing is done, and the staff member is
    led back to the workstation (through the login) with one sentence saying so."""
    node("disp-1").request("ticket.issue", {"service": "pass"})
    c = app.test_client()
    login(c, "anna")
    form = _form_fields(c.get("/staff/c1").get_data(as_text=True), "next")
    fresh = app.test_client()  # the same page, without its cookie
    r = fresh.post("/staff/c1/next", data=form)
    assert r.status_code == 302 and r.headers["Location"] == "/staff/c1"
    r = fresh.get("/staff/c1")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    page = fresh.get(r.headers["Location"]).get_data(as_text=True)
    assert "Das Formular war abgelaufen; die Aktion wurde nicht ausgeführt." in page
    live = app.extensions["waitroom"]
    assert live.state()["counters"][0]["serving"] is None
    # the JSON API still answers 400 with its code
    r = fresh.post("/api/counter/c1/next", json={}, headers={"X-CSRFToken": form["csrf_token"]})
    assert r.status_code == 400 and r.json["error"]["code"] == "csrf"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_check_in_s_refusals_are_said_in_words_on_the_admin_page(cfg, lang):
    """The dispenser counts its refusals by reason; the admin page said those of a check-in at its scanner as
    codes ("unknown_appointment: 3, ticket_done: 1"). Now every reason the dispenser reports is a few words,
    its own and the controller's codes it passes on."""
    import re

    from waitroom.web.health import describe

    source = (Path(__file__).resolve().parents[1] / "edge" / "dispenser" / "node.py").read_text()
    own = set(re.findall(r'_refuse\(\s*"([a-z_]+)"', source))
    own |= set(re.findall(r'_notice\(\s*"[a-z_.]+",\s*"([a-z_]+)"', source))
    assert {"unknown_appointment", "controller_offline", "ticket_done", "error"} <= own
    passed_on = {  # what appointment.checkin answers besides ok (waitroom/ops/appointments.py)
        "appointment_expired",
        "appointment_cancelled",
        "unknown_service",
        "office_closed",
        "clock_behind",
        "rate_limited",
        "internal",
    }
    for reason in sorted(own | passed_on):
        (line,) = describe(cfg, lang, {"refused": {reason: 2}})
        assert not line.value.startswith(f"{reason}:") and line.value.endswith(": 2"), (reason, line.value)


def _hidden_fields(html: str) -> dict[str, str]:
    """The hidden fields of the page's forms (the question's form carries the action's fields again)."""
    import re
    from html import unescape

    return {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', html)
    }


def test_closing_the_last_counter_of_a_service_asks_first_without_javascript(app, staff, node, controller):
    """c3 is the only counter for "Sonstiges": closing or pausing it while citizens wait answers with the
    question as a page (the form posts the same fields again with the answer); the controller is not asked
    until the clerk says yes. Cancelling is a link back to the workstation. A counter with a colleague for
    each of its services closes without a question."""
    disp = node("disp-1")
    for _ in range(12):
        disp.request("ticket.issue", {"service": "sonstiges"})
    live = app.extensions["waitroom"]
    wait_for(lambda: {s["id"]: s["waiting"] for s in live.state()["services"]}["sonstiges"] == 12)
    state = controller.office.state
    seq = state.seq
    r = post(staff, "/staff/c3/close", {"current": ""})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "no-store" in r.headers["Cache-Control"]
    assert "12 Wartende für Sonstiges; kein anderer Schalter bedient Sonstiges." in html
    assert "Trotzdem schließen?" in html and "Trotzdem schließen</button>" in html
    assert 'href="/staff/c3" autofocus>Abbrechen (Schalter bleibt geöffnet)</a>' in html
    assert state.counters["c3"].state == "open" and state.seq == seq  # nothing sent yet
    fields = _hidden_fields(html)
    assert fields["confirmed"] == "1" and fields["current"] == ""
    r = staff.post("/staff/c3/close", data=fields)
    assert r.status_code == 302
    assert state.counters["c3"].state == "closed"
    # a paused counter: the reason goes with the answer (a reason the office does not have is answered as
    # such, not asked about)
    post(staff, "/staff/c3/open")
    wait_for(lambda: next(c for c in live.state()["counters"] if c["id"] == "c3")["state"] == "open")
    html = post(staff, "/staff/c3/pause", {"reason": "nap"}, follow_redirects=True).get_data(as_text=True)
    assert "Trotzdem pausieren</button>" not in html and _flash(html).startswith("Feld „")
    html = post(staff, "/staff/c3/pause", {"reason": "besprechung"}).get_data(as_text=True)
    assert "Trotzdem pausieren?" in html and state.counters["c3"].state == "open"
    fields = _hidden_fields(html)
    assert fields["reason"] == "besprechung"
    assert staff.post("/staff/c3/pause", data=fields).status_code == 302
    assert (state.counters["c3"].state, state.counters["c3"].pause_reason) == ("paused", "besprechung")
    # in English; and c1 has c2 beside it for each of its services: no question
    disp.request("ticket.issue", {"service": "pass"})
    wait_for(lambda: {s["id"]: s["waiting"] for s in live.state()["services"]}["pass"] == 1)
    post(staff, "/staff/c3/open")
    staff.get("/staff/c3?lang=en")
    html = post(staff, "/staff/c3/close").get_data(as_text=True)
    assert "12 people are waiting for Other matters; no other counter serves Other matters." in html
    assert post(staff, "/staff/c1/close").status_code == 302
    assert state.counters["c1"].state == "closed"


def test_the_unstaffed_service_alarm_as_a_sentence(cfg):
    from waitroom.web import health

    alert = {"code": "unstaffed_service", "data": {"service": "pass", "waiting": 12, "since": 1795420800}}
    one = {"code": "unstaffed_service", "data": {"service": "sonstiges", "waiting": 1, "since": 1795420800}}
    (a, b) = health.alarms(cfg, "de", {"alerts": [alert, one]})
    at = health.Describer(cfg, "de").clock(1795420800)
    assert (a.ident, b.ident) == ("unstaffed_service-pass", "unstaffed_service-sonstiges")
    assert a.text == (
        f"Kein geöffneter Schalter ruft die Wartenden für Personalausweis / Reisepass auf (seit {at} Uhr): "
        "12 Personen warten. Bitte einen Schalter für Personalausweis / Reisepass öffnen."
    )
    assert "1 Person wartet." in b.text
    (a,) = health.alarms(cfg, "en", {"alerts": [alert]})
    assert a.text.startswith("No open counter calls the citizens waiting for ID card / passport (since")
    # a service this page does not know, or fields missing: said with its code
    odd = {"code": "unstaffed_service", "data": {"service": "mond", "waiting": 3, "since": 1}}
    (a,) = health.alarms(cfg, "de", {"alerts": [odd]})
    assert "Code „unstaffed_service“" in a.text and a.ident == "unstaffed_service"


def test_the_unstaffed_service_alarm_reaches_the_admin_page_in_german(cfg, tmp_path, node):
    """Through the real broker: the last counter of a service closes while its citizens wait; with the grace
    time at 0 the summary carries the alarm at once and the admin page says it in German; it ends when the
    counter opens again."""
    from tests.test_clock import alarm_text
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    cfg = cfg.model_copy(
        update={"controller": cfg.controller.model_copy(update={"unstaffed_alarm_after_s": 0})}
    )
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    app = create_app(
        cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True}
    )
    app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
    live = app.extensions["waitroom"]
    try:
        disp, c3 = node("disp-1"), node("counter-3")
        for _ in range(3):
            disp.request("ticket.issue", {"service": "sonstiges"})
        c3.request("counter.close", {"counter": "c3"})
        wait_for(lambda: (live.state() or {}).get("alerts"), timeout=10)
        (alert,) = live.state()["alerts"]
        assert alert["code"] == "unstaffed_service"
        assert {k: alert["data"][k] for k in ("service", "waiting")} == {"service": "sonstiges", "waiting": 3}
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        from waitroom.web.health import Describer

        at = Describer(cfg, "de").clock(alert["data"]["since"])  # in the office's time zone
        html = admin.get("/admin/").get_data(as_text=True)
        assert alarm_text(html, "unstaffed_service-sonstiges") == (
            f"Kein geöffneter Schalter ruft die Wartenden für Sonstiges auf (seit {at} Uhr): 3 Personen "
            "warten. Bitte einen Schalter für Sonstiges öffnen."
        )
        fragment = admin.get("/admin/alarms").get_data(as_text=True)
        assert alarm_text(fragment, "unstaffed_service-sonstiges") == alarm_text(
            html, "unstaffed_service-sonstiges"
        )
        c3.request("counter.open", {"counter": "c3"})
        wait_for(lambda: "alerts" not in (live.state() or {"alerts": 1}), timeout=10)
        assert 'id="alarm-' not in admin.get("/admin/alarms").get_data(as_text=True)
    finally:
        live.close()
        svc.stop()
