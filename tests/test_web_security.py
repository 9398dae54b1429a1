"""Hardening of the web app with Flask's test client, a real mosquitto and the real controller: login
throttling and lockout, server-side sessions revoked by logout and password change, security headers, the
Origin check, trusted proxies, pause reasons from the configuration, rate limits on every public route,
malformed bodies, no inline scripts - and the office copy read from the ``queue/<service>`` topics."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.web_helpers import PASSWORD, csrf_token, login, wait_for


def make_app(cfg, tmp_path, **web):
    from waitroom.web import create_app

    cfg = cfg.model_copy(update={"web": {**cfg.web, **web}})
    app = create_app(
        cfg,
        data_dir=tmp_path,
        demo=True,
        test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True},
    )
    users = app.extensions["waitroom_users"]
    for name, role in (("anna", "staff"), ("bernd", "staff"), ("admin", "admin")):
        users.add(name, PASSWORD, role)
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    return app


@pytest.fixture
def app(cfg, controller, tmp_path):
    app = make_app(cfg, tmp_path, login_failures_per_user=3, login_failures_per_address=5)
    yield app
    app.extensions["waitroom"].close()


def post(client, path, data=None, **kw):
    return client.post(path, data={"csrf_token": csrf_token(client), **(data or {})}, **kw)


def test_login_lockout_per_user_even_with_the_right_password(app):
    c = app.test_client()
    assert [login(c, "anna", "wrong-password").status_code for _ in range(3)] == [401] * 3
    r = login(c, "anna")  # the right password, but the account is locked for the window
    assert r.status_code == 429 and "Zu viele fehlgeschlagene Anmeldungen" in r.get_data(as_text=True)
    assert r.headers["Retry-After"]
    assert login(c, "bernd").status_code == 302  # another user from the same address still logs in


def test_login_lockout_per_address(app):
    c = app.test_client()
    codes = [login(c, f"nobody{i}", "wrong-password").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]  # five names, one address
    assert login(c, "anna").status_code == 429
    other = app.test_client()  # another address (behind no proxy: the socket address) is not locked
    r = other.post(
        "/login",
        data={"username": "anna", "password": PASSWORD, "csrf_token": csrf_token(other, "/login")},
        environ_base={"REMOTE_ADDR": "10.0.0.7"},
    )
    assert r.status_code == 302


def test_logout_revokes_the_session_cookie(app):
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    cookie = c.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/staff/c1").status_code == 200  # a copied cookie works while the session lives
    assert post(c, "/logout").status_code == 302
    r = thief.get("/staff/c1")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_password_change_ends_every_session(app):
    a, b = app.test_client(), app.test_client()
    assert login(a, "anna").status_code == 302 and login(b, "anna").status_code == 302
    r = post(a, "/account/password", {"current": "wrong-password", "new": "another-horse-2"})
    assert r.status_code == 401
    r = post(a, "/account/password", {"current": PASSWORD, "new": "another-horse-2"})
    assert r.status_code == 302
    for c in (a, b):
        assert c.get("/staff/c1").status_code == 302
    assert login(app.test_client(), "anna").status_code == 401
    assert login(app.test_client(), "anna", "another-horse-2").status_code == 302


def test_a_refused_password_change_is_said_at_its_field_in_the_page_s_language(app):
    """A new password under the policy's length was answered with the policy's English sentence ("the
    password must have at least 10 characters") as a flash on a German page, tied to no field. A browser lets
    such a password through: ``minlength`` counts UTF-16 units, the policy characters (five emoji are ten
    units). Every refusal of the form is now said at its field, in the page's language."""
    a = app.test_client()
    assert login(a, "anna").status_code == 302
    for lang, said in (
        ("de", "Das neue Passwort braucht mindestens 10 Zeichen."),
        ("en", "The new password needs at least 10 characters."),
    ):
        r = post(a, f"/account/password?lang={lang}", {"current": PASSWORD, "new": "\U0001f512" * 5})
        assert r.status_code == 400
        page = r.get_data(as_text=True)
        assert f'<p class="flash error" id="new-error" role="alert">{said}</p>' in page
        assert re.search(r'<input id="new"[^>]* aria-invalid="true" aria-describedby="new-error"', page)
        assert "must have at least" not in page and 'id="current-error"' not in page
    r = post(a, "/account/password?lang=de", {"current": "wrong-password", "new": "another-horse-2"})
    assert r.status_code == 401
    page = r.get_data(as_text=True)
    wrong = "Das bisherige Passwort stimmt nicht."
    assert f'<p class="flash error" id="current-error" role="alert">{wrong}</p>' in page
    assert re.search(r'<input id="current"[^>]* aria-invalid="true" aria-describedby="current-error"', page)
    assert login(app.test_client(), "anna").status_code == 302  # the password is the old one still


def test_security_headers_and_no_inline_scripts(app):
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    for path in ("/waiting", "/login", "/staff/c1", "/admin/", "/admin/whatif", "/display/", "/demo/"):
        r = c.get(path)
        assert r.status_code == 200, path
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors" in csp
        assert "camera=()" in r.headers["Permissions-Policy"]
        assert "Strict-Transport-Security" not in r.headers  # plain http
        # logged in: nothing of it is stored by a browser or proxy
        assert r.headers["Cache-Control"] == "no-store", path
        html = r.get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", html), path  # no inline event handlers
        assert "<style" not in html and ' style="' not in html, path


def test_live_pages_are_never_shown_from_a_cache(app):
    """Waiting times go stale in seconds: the public page and the ticket page make a browser ask again; the
    public API says how long it may be kept (10 s, for the city website)."""
    c = app.test_client()
    for path in ("/waiting", "/waiting?fragment=1", "/t/unknown-ticket", "/checkin"):
        r = c.get(path)
        assert r.headers["Cache-Control"] == "no-cache", path
    assert c.get("/api/public").headers["Cache-Control"] == "public, max-age=10"


def test_hsts_and_addresses_through_a_trusted_proxy(cfg, controller, tmp_path):
    app = make_app(cfg, tmp_path, trusted_proxies=1, public_rate_per_min=3)
    try:
        c = app.test_client()
        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
        r = c.get("/api/public", headers=https)
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        # the rate limit counts the citizen's address from X-Forwarded-For, not the proxy's
        codes = [c.get("/api/public", headers=https).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert c.get("/api/public", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
    finally:
        app.extensions["waitroom"].close()


def test_forwarded_headers_are_ignored_without_trusted_proxies(cfg, controller, tmp_path):
    app = make_app(cfg, tmp_path, public_rate_per_min=2)
    try:
        c = app.test_client()
        r = c.get("/api/public", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"})
        assert "Strict-Transport-Security" not in r.headers
        assert c.get("/api/public", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
        assert c.get("/api/public", headers={"X-Forwarded-For": "198.51.100.3"}).status_code == 429
    finally:
        app.extensions["waitroom"].close()


def test_state_changing_requests_from_another_origin_are_refused(app, node):
    node("disp-1").request("ticket.issue", {"service": "pass"})
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    token = csrf_token(c)
    r = c.post("/staff/c1/next", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = c.post(
        "/api/counter/c1/next", json={}, headers={"X-CSRFToken": token, "Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 403 and r.json["error"]["code"] == "bad_origin"
    assert app.extensions["waitroom"].counter_state("c1")["serving"] is None  # nothing was called
    r = c.post("/api/counter/c1/next", json={}, headers={"X-CSRFToken": token, "Origin": "http://localhost"})
    assert r.status_code == 200 and r.json["counter"]["serving"]["ticket"] == "A001"


def test_pause_reasons_come_from_the_configuration(app):
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    h = {"X-CSRFToken": csrf_token(c)}
    r = c.post("/api/counter/c1/pause", json={"reason": "Kaffee mit Frau Müller"}, headers=h)
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"
    r = c.post("/api/counter/c1/pause", json={"reason": "technik"}, headers=h)
    assert r.status_code == 200 and r.json["counter"]["reason"] == "technik"
    assert app.test_client().get("/api/state").json["counters"][0]["reason"] == "technik"
    html = c.get("/staff/c1").get_data(as_text=True)
    assert "Technische Störung" in html and '<option value="besprechung">Besprechung</option>' in html


def test_every_public_route_is_rate_limited(cfg, controller, tmp_path):
    app = make_app(cfg, tmp_path, public_rate_per_min=4)
    try:
        paths = ("/display/", "/login", "/waiting", "/api/stream", "/t/abcdef12", "/api/state")
        for i, path in enumerate(paths):
            c = app.test_client()
            addr = {"REMOTE_ADDR": f"10.1.0.{i + 1}"}
            codes = []
            for _ in range(5):
                r = c.get(path, environ_base=addr, buffered=False)
                codes.append(r.status_code)
                r.close()
            assert codes[-1] == 429 and 429 not in codes[:4], (path, codes)
        c = app.test_client()
        codes = [
            c.get(
                "/display/speech.wav?ticket=Q1&counter=nope", environ_base={"REMOTE_ADDR": "10.2.0.1"}
            ).status_code
            for _ in range(5)
        ]
        assert codes[-1] == 429
    finally:
        app.extensions["waitroom"].close()


def test_speech_has_its_own_tighter_limit(app):
    from waitroom.web import display

    assert display.SPEECH_LIMIT.startswith("30 per minute")


@pytest.mark.parametrize(
    ("path", "body", "ctype"),
    [
        ("/demo/press/counter-1", "[1, 2]", "application/json"),
        ("/demo/press/counter-1", "{not json", "application/json"),
        ("/api/counter/c1/next", "[]", "application/json"),
        ("/api/counter/c1/next", "{broken", "application/json"),
        ("/admin/whatif.json", "[1]", "application/json"),
        ("/admin/whatif.json", '"text"', "application/json"),
        ("/api/counter/c1/pause", '{"reason": ["x"]}', "application/json"),
        # nested deeper than Python's JSON decoder recurses (RecursionError, not ValueError: a 500 before)
        ("/api/counter/c1/next", "[" * 5000 + "]" * 5000, "application/json"),
        ("/demo/press/counter-1", '{"a":' * 5000 + "1" + "}" * 5000, "application/json"),
        ("/admin/whatif.json", "[" * 5000 + "]" * 5000, "application/json"),
    ],
)
def test_malformed_bodies_are_400(app, path, body, ctype):
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    r = c.post(path, data=body, headers={"Content-Type": ctype, "X-CSRFToken": csrf_token(c)})
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:300])
    assert r.is_json and r.json["ok"] is False


def test_too_large_body_is_413(app):
    c = app.test_client()
    r = c.post("/login", data={"username": "x" * 100_000, "password": "y"})
    assert r.status_code == 413


def test_waiting_lists_from_the_queue_topics(app, node, controller):
    """The state without lists (the new contract) plus retained queue/<service>: panel and ticket status."""
    from waitroom import contract

    live = app.extensions["waitroom"]
    pub = node("disp-1")
    state = dict(live.state())
    state.pop("waiting", None)
    state.pop("parked", None)
    state["seq"] = state["seq"] + 1000
    queue = {
        "v": 1,
        "office": state["office"],
        "service": "pass",
        "seq": state["seq"],
        "ts": time.time(),
        "total": 2,
        "tickets": [
            {
                "ticket": "A107",
                "id": "qq107abc",
                "since": time.time() - 600,
                "priority": False,
                "appointment": None,
                "to_counter": None,
                "eta_min": 7,
            },
            {
                "ticket": "A108",
                "id": "qq108abc",
                "since": time.time() - 60,
                "priority": False,
                "appointment": None,
                "to_counter": None,
                "eta_min": 12,
            },
        ],
        "parked": [{"ticket": "A099", "id": "qq099abc", "since": time.time() - 900}],
    }
    topics = contract.Topics(state["office"])
    pub.link.client.publish(topics.queue("pass"), json.dumps(queue), qos=1, retain=False)
    pub.link.client.publish(topics.state(), json.dumps(state), qos=1, retain=False)
    wait_for(lambda: live.seq == state["seq"] and len(live.waiting()) == 2)
    assert live.ticket_status("qq108abc")["position"] == 2
    assert live.ticket_status("qq099abc")["state"] == "parked"
    c = app.test_client()
    assert login(c, "anna").status_code == 302
    html = c.get("/staff/c1/panel").get_data(as_text=True)
    assert "A107" in html and "A108" in html and "A099" in html
    pub_state = app.test_client().get("/api/state").json
    assert [w["ticket"] for w in pub_state["waiting"]] == ["A107", "A108"]
    assert "qq107abc" not in json.dumps(pub_state)  # ticket ids never reach the public state
    r = app.test_client().get("/api/ticket/qq107abc")
    assert r.json["state"] == "waiting" and r.json["ahead"] == 0


def test_login_lockout_of_one_minute_says_minute(cfg, controller, tmp_path):
    """The lockout text's noun agrees with its minutes: "in 1 Minute", not "in 1 Minuten"."""
    from waitroom import i18n

    app = make_app(cfg, tmp_path, login_failures_per_user=1, login_lockout_min=1)
    try:
        c = app.test_client()
        assert login(c, "anna", "wrong-password").status_code == 401
        assert "Bitte in 1 Minute noch einmal versuchen." in login(c, "anna").get_data(as_text=True)
        c.get("/login?lang=en")
        assert "Please try again in 1 minute." in login(c, "anna").get_data(as_text=True)
    finally:
        app.extensions["waitroom"].close()
    assert "Bitte in 15 Minuten noch einmal" in i18n.tn("web.login_locked", 15, "de", minutes=15)


def test_guessing_booking_codes_on_the_check_in_page_is_limited_per_network(cfg, controller, node, tmp_path):
    """The public check-in page answered every code typed, 120 a minute per address: enough to find valid
    booking codes (about 25 bits) of the book within hours. Unknown codes now count per client network
    (web.checkin_failures_per_hour); past it every check-in from there is refused at the field, a right code
    too, until the hour ends. Other networks, right codes and the dispenser are not affected."""
    app = make_app(cfg, tmp_path, checkin_failures_per_hour=3)
    try:
        web = node("web")
        soon = time.time() + 600
        right = [web.request("appointment.book", {"service": "pass", "slot": soon})["appointment"]["code"]]
        right += [web.request("appointment.book", {"service": "melde", "slot": soon})["appointment"]["code"]]
        right += [web.request("appointment.book", {"service": "pass", "slot": soon})["appointment"]["code"]]

        def checkin(client, code, addr):
            token = csrf_token(client, "/checkin")
            return client.post(
                "/checkin", data={"code": code, "csrf_token": token}, environ_base={"REMOTE_ADDR": addr}
            )

        guesser = app.test_client()
        assert [checkin(guesser, f"NOSUCH{i}", "203.0.113.9").status_code for i in range(3)] == [404] * 3
        r = checkin(guesser, right[0], "203.0.113.9")  # the right code, but the network is locked
        html = r.get_data(as_text=True)
        assert r.status_code == 429 and r.headers["Retry-After"]
        assert "Zu viele falsche Codes" in html and 'aria-invalid="true"' in html
        assert controller.office.state.appointments[right[0]].ticket is None  # not checked in
        # IPv6: one network is a /64 (a phone may use any address of it); the next /64 is another client
        v6 = app.test_client()
        codes = [checkin(v6, "NOSUCH7", f"2001:db8:1:2::{i}").status_code for i in (1, 2, 3)]
        assert codes == [404] * 3
        assert checkin(v6, right[0], "2001:db8:1:2:ffff::9").status_code == 429
        r = checkin(app.test_client(), right[0], "2001:db8:1:3::1")
        assert r.status_code == 302 and r.headers["Location"].startswith("/t/")
        # a right code does not count: two typos and a check-in leave one more try
        citizen = app.test_client()
        assert checkin(citizen, "NOSUCH8", "198.51.100.4").status_code == 404
        assert checkin(citizen, "NOSUCH9", "198.51.100.4").status_code == 404
        assert checkin(citizen, right[1], "198.51.100.4").status_code == 302
        assert checkin(citizen, "NOSUCHA", "198.51.100.4").status_code == 404
        assert checkin(citizen, right[2], "198.51.100.4").status_code == 429
    finally:
        app.extensions["waitroom"].close()
