"""The admin's accounts page (waitroom.web.accounts) with Flask's test client, a real mosquitto and the real
controller: add a clerk with their counters, the first login that must choose a password, reset, new role,
removal, the last admin, who may see the page, CSRF, and no password in the log or the database."""

from __future__ import annotations

import logging
import re
import sqlite3
from html import unescape

import pytest

from tests.web_helpers import PASSWORD, csrf_token, login, wait_for

NEW_PASSWORD = "my-own-password-7"


@pytest.fixture
def app(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(
        cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True}
    )
    users = app.extensions["waitroom_users"]
    for name, role in (("chefin", "admin"), ("anna", "staff"), ("agent", "booking")):
        users.add(name, PASSWORD, role)
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    yield app
    live.close()


def logged_in(app, name, password=PASSWORD):
    c = app.test_client()
    assert login(c, name, password).status_code == 302
    return c


def post(client, path, data=None, **kw):
    return client.post(path, data={"csrf_token": csrf_token(client, "/login"), **(data or {})}, **kw)


def said(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def shown_password(html: str) -> str:
    m = re.search(r'<code class="password">([^<]+)</code>', html)
    assert m, "no password shown on the page"
    return unescape(m.group(1))


def flashes(client) -> str:
    """The flash messages of the accounts page the redirect leads to, as read."""
    html = client.get("/admin/accounts/").get_data(as_text=True)
    return " | ".join(said(m) for m in re.findall(r'<p class="flash [a-z]+" role="[a-z]+">(.*?)</p>', html))


def test_a_new_clerk_chooses_a_password_first_and_operates_only_their_counter(app, caplog):
    caplog.set_level(logging.INFO)
    admin = logged_in(app, "chefin")
    page = admin.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/accounts/"' in page  # linked from the admin page
    r = post(admin, "/admin/accounts/", {"name": "Bert", "role": "staff", "counters": ["c1"]})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Konto bert angelegt." in said(html)
    password = shown_password(html)
    assert len(password) >= 10
    assert "admin chefin added account bert (role staff)" in caplog.text
    assert password not in caplog.text
    # the users database holds a hash, never the password
    raw = sqlite3.connect(app.extensions["waitroom_users"].path).execute("SELECT * FROM users").fetchall()
    assert password not in repr(raw)
    # the page lists the account without any hash
    listing = admin.get("/admin/accounts/").get_data(as_text=True)
    assert "bert" in listing and "scrypt" not in listing and "pbkdf2" not in listing
    assert password not in listing  # shown once, on the answer to the POST only

    bert = app.test_client()
    r = login(bert, "bert", password)
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/password")
    r = bert.get("/staff/c1")  # every other page leads to the password change
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/password")
    assert post(bert, "/staff/c1/open").headers["Location"].endswith("/account/password")
    assert "Bitte wählen Sie zuerst ein eigenes Passwort" in said(
        bert.get("/account/password").get_data(True)
    )
    r = bert.post(
        "/api/counter/c1/open", json={}, headers={"X-CSRFToken": csrf_token(bert, "/account/password")}
    )
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "password_change_required"
    # the password that was given is not a password of one's own
    r = post(bert, "/account/password", {"current": password, "new": password})
    assert r.status_code == 400
    r = post(bert, "/account/password", {"current": password, "new": NEW_PASSWORD})
    assert r.status_code == 302
    assert not app.extensions["waitroom_users"].get("bert").must_change

    bert = logged_in(app, "bert", NEW_PASSWORD)
    assert bert.get("/staff/c1").status_code == 200
    assert post(bert, "/staff/c1/open").status_code == 302
    assert post(bert, "/staff/c2/open").status_code == 403


def test_an_initial_password_typed_by_the_admin_follows_the_policy(app):
    admin = logged_in(app, "chefin")
    r = post(admin, "/admin/accounts/", {"name": "carla", "role": "booking", "password": "short"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert 'id="password-error"' in html and "mindestens 10 Zeichen" in said(html)
    assert app.extensions["waitroom_users"].get("carla") is None
    r = post(admin, "/admin/accounts/", {"name": "x y", "role": "staff"})
    assert r.status_code == 400 and 'id="name-error"' in r.get_data(as_text=True)
    r = post(admin, "/admin/accounts/", {"name": "anna", "role": "staff"})
    assert r.status_code == 400 and "Das Konto anna gibt es schon." in said(r.get_data(as_text=True))
    r = post(admin, "/admin/accounts/", {"name": "dora", "role": "staff", "counters": ["c9"]})
    assert r.status_code == 400 and 'id="counters-error"' in r.get_data(as_text=True)
    assert app.extensions["waitroom_users"].get("dora") is None
    r = post(admin, "/admin/accounts/", {"name": "carla", "role": "booking", "password": "typed-password-1"})
    assert r.status_code == 200 and '<code class="password">' not in r.get_data(as_text=True)
    carla = app.extensions["waitroom_users"].get("carla")
    assert carla.role == "booking" and carla.must_change
    r = login(app.test_client(), "carla", "typed-password-1")
    assert r.headers["Location"].endswith("/account/password")


def test_a_reset_ends_the_users_sessions_and_asks_for_a_new_password(app, caplog):
    caplog.set_level(logging.INFO)
    anna = logged_in(app, "anna")
    assert anna.get("/staff/c1").status_code == 200
    admin = logged_in(app, "chefin")
    r = post(admin, "/admin/accounts/anna/password")
    assert r.status_code == 200
    password = shown_password(r.get_data(as_text=True))
    assert password not in caplog.text and "admin chefin reset the password of account anna" in caplog.text
    r = anna.get("/staff/c1")  # the old session ends at once
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert app.extensions["waitroom_users"].get("anna").must_change
    assert login(app.test_client(), "anna").status_code == 401  # the old password is gone
    r = login(app.test_client(), "anna", password)
    assert r.headers["Location"].endswith("/account/password")


def test_role_and_counters_change_from_the_next_request(app):
    anna = logged_in(app, "anna")
    assert post(anna, "/staff/c2/open").status_code == 302  # no counters: every counter
    admin = logged_in(app, "chefin")
    r = post(admin, "/admin/accounts/anna/role", {"role": "staff", "counters": ["c1"]})
    assert r.status_code == 302 and "Konto anna geändert" in flashes(admin)
    assert post(anna, "/staff/c2/open").status_code == 403
    assert app.extensions["waitroom_users"].get("anna").counters == ("c1",)
    post(admin, "/admin/accounts/anna/role", {"role": "booking"})
    assert anna.get("/staff/c1").headers["Location"].endswith("/booking/")
    # a role or a counter the page does not offer: one error, the account as it was
    for data, error in (
        ({"role": "root"}, "Bitte eine der angebotenen Rollen wählen."),
        ({"role": "staff", "counters": ["c9"]}, "Unbekannter Schalter"),
    ):
        assert post(admin, "/admin/accounts/anna/role", data).status_code == 302
        assert flashes(admin).count(error) == 1
        assert app.extensions["waitroom_users"].get("anna").role == "booking"


def test_a_removed_account_loses_its_session_and_its_login(app, caplog):
    caplog.set_level(logging.INFO)
    anna = logged_in(app, "anna")
    admin = logged_in(app, "chefin")
    r = post(admin, "/admin/accounts/anna/remove")
    assert r.status_code == 302 and "Konto anna gelöscht" in flashes(admin)
    assert "admin chefin removed account anna (role staff)" in caplog.text
    assert login(app.test_client(), "anna").status_code == 401
    # the session is revoked, not only ownerless: a new account of the same name does not inherit it
    app.extensions["waitroom_users"].add("anna", "someone-else-1", "staff")
    assert "/login" in anna.get("/staff/c1").headers["Location"]
    app.extensions["waitroom_users"].remove("anna")
    assert login(app.test_client(), "anna").status_code == 401
    assert post(admin, "/admin/accounts/anna/remove").status_code == 404


def test_the_last_admin_stays_and_nobody_removes_themselves(app):
    admin = logged_in(app, "chefin")
    r = post(admin, "/admin/accounts/chefin/role", {"role": "staff"})
    assert r.status_code == 302
    page = flashes(admin)
    assert page.count("chefin ist das letzte Konto mit der Rolle Verwaltung") == 1
    assert app.extensions["waitroom_users"].get("chefin").is_admin
    r = post(admin, "/admin/accounts/chefin/remove")
    assert r.status_code == 302 and "Ihr eigenes Konto können Sie nicht löschen" in flashes(admin)
    assert app.extensions["waitroom_users"].get("chefin") is not None
    # the own password is changed on /account/password (a reset here would log the admin out)
    r = post(admin, "/admin/accounts/chefin/password")
    assert r.status_code == 302 and "Ihr eigenes Passwort ändern Sie unter" in flashes(admin)
    assert not app.extensions["waitroom_users"].get("chefin").must_change
    assert login(app.test_client(), "chefin").status_code == 302
    # with a second admin the first may step down, but still not remove their own account
    app.extensions["waitroom_users"].add("vize", PASSWORD, "admin")
    vize = logged_in(app, "vize")
    assert post(vize, "/admin/accounts/vize/remove").status_code == 302
    assert app.extensions["waitroom_users"].get("vize") is not None
    assert post(vize, "/admin/accounts/chefin/role", {"role": "staff"}).status_code == 302
    assert not app.extensions["waitroom_users"].get("chefin").is_admin
    assert admin.get("/admin/accounts/").status_code == 403  # from the next request on


def test_only_admins_reach_the_accounts_page_and_every_change_needs_the_csrf_token(app):
    routes = [
        ("get", "/admin/accounts/"),
        ("post", "/admin/accounts/"),
        ("post", "/admin/accounts/anna/password"),
        ("post", "/admin/accounts/anna/role"),
        ("post", "/admin/accounts/anna/remove"),
    ]
    for name in ("anna", "agent"):
        c = logged_in(app, name)
        for method, path in routes:
            data = {"name": "eve", "role": "admin", "csrf_token": csrf_token(c, "/login")}
            r = c.get(path) if method == "get" else c.post(path, data=data)
            assert r.status_code == 403, (name, method, path)
    r = app.test_client().get("/admin/accounts/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    users = app.extensions["waitroom_users"]
    assert users.get("eve") is None and users.get("anna").role == "staff"
    admin = logged_in(app, "chefin")
    r = admin.post("/admin/accounts/", data={"name": "eve", "role": "admin"})
    assert r.status_code == 400 and users.get("eve") is None
    assert admin.post("/admin/accounts/anna/remove").status_code == 400 and users.get("anna") is not None


def test_an_old_users_table_gets_the_must_change_column(tmp_path):
    from waitroom.web.users import UserStore

    db = sqlite3.connect(tmp_path / "u.db")
    db.execute(
        "CREATE TABLE users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN "
        "('staff', 'admin', 'booking')), counters TEXT NOT NULL DEFAULT '', created REAL NOT NULL)"
    )
    db.execute("INSERT INTO users VALUES ('anna', 'x', 'staff', 'c1', 0)")
    db.commit()
    db.close()
    store = UserStore(tmp_path / "u.db")
    anna = store.get("anna")
    assert anna is not None and anna.counters == ("c1",) and not anna.must_change
    store.set_password("anna", "a-long-password", must_change=True)
    assert store.get("anna").must_change


def test_a_password_replaced_on_the_command_line_is_changed_at_the_next_login(
    app, tmp_path, monkeypatch, capsys
):
    """``waitroom web add-user --replace``: a password IT hands over is a temporary one, as after a reset on
    the accounts page; ``--no-must-change`` when it is the user's own. The first admin (``create-admin``) and
    a new account are not asked."""
    from waitroom.cli import main

    users = app.extensions["waitroom_users"]
    assert users.path == tmp_path / "web-users.db"  # the command line writes the app's own user database
    anna = logged_in(app, "anna")
    monkeypatch.setenv("WAITROOM_USER_PASSWORD", "handed-over-1")
    base = ["web", "add-user", "--data-dir", str(tmp_path), "--username"]
    assert main([*base, "anna", "--replace"]) == 0
    assert "must be chosen at the next login" in capsys.readouterr().out
    assert users.get("anna").must_change
    assert anna.get("/staff/c1").headers["Location"].startswith("/login")  # her sessions ended
    r = login(app.test_client(), "anna", "handed-over-1")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/password")

    monkeypatch.setenv("WAITROOM_USER_PASSWORD", "her-own-choice-1")
    assert main([*base, "anna", "--replace", "--no-must-change"]) == 0
    assert not users.get("anna").must_change
    r = login(app.test_client(), "anna", "her-own-choice-1")
    assert r.status_code == 302 and r.headers["Location"].endswith("/staff/")

    # the first admin types their own password; a new account too unless --must-change
    assert main(["web", "create-admin", "--data-dir", str(tmp_path), "--username", "boss"]) == 0
    assert main([*base, "bert", "--counters", "c1"]) == 0
    assert main([*base, "carl", "--must-change"]) == 0
    assert [users.get(n).must_change for n in ("boss", "bert", "carl")] == [False, False, True]
    r = login(app.test_client(), "boss", "her-own-choice-1")
    assert r.status_code == 302 and not r.headers["Location"].endswith("/account/password")
