"""The city view's HTTP side as the city website's scripts and a 115 agent meet it: methods, CORS on every
answer (errors and 429 too) and its preflight, ETags that a client can actually use while the clock moves,
bounded echoes of odd input, and the language codes the rest of the project accepts. No broker needed."""

from __future__ import annotations

from tests.test_city import NOW, feed, make_cfg
from waitroom.city.view import CityView
from waitroom.city.web import create_app
from waitroom.contract import Topics


def city(rate: int = 1000, clock: list[float] | None = None):
    cfg = make_cfg()
    now = clock if clock is not None else [NOW]
    view = CityView(cfg, clock=lambda: now[0])
    feed(view, "o0", **{"pass": 45, "melde": 3})
    feed(view, "o1", **{"pass": 10})
    web = cfg.web.model_copy(update={"rate_per_min": rate})
    return create_app(cfg.model_copy(update={"web": web}), view).test_client(), view


def test_a_wrong_method_is_405_naming_the_allowed_ones() -> None:
    client, _ = city()
    for path in ("/api/v1/offices", "/open-data/v1/waits.json", "/healthz", "/"):
        r = client.delete(path)
        assert r.status_code == 405, path
        assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}, path
    r = client.get("/api/v1/offices/o0/reservations")  # POST only
    assert r.status_code == 405 and set(r.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}
    assert r.get_json()["error"]["code"] == "method_not_allowed"


def test_every_answer_of_the_open_documents_allows_other_origins() -> None:
    """The docs promise CORS on all answers: a 404 or a 429 without it reaches the website's script as a bare
    network error (no code, no Retry-After). A script that sends If-None-Match itself needs a preflight."""
    client, _ = city(rate=3)
    for path in ("/api/v1/services/nosuch", "/api/v1/schema/nosuch.json", "/api/v1/offices/"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["Access-Control-Allow-Origin"] == "*", path
        assert r.headers["Cache-Control"] == "no-store", path  # a 404 may be cached by default
    r = client.get("/open-data/v1/waits.json")
    assert r.status_code == 429 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    pre = client.options(
        "/open-data/v1/waits.json",
        headers={
            "Origin": "https://www.stadt.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert pre.status_code == 204  # answered although the limit is used up: a preflight is not a fetch
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "If-None-Match" in pre.headers["Access-Control-Allow-Headers"]
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in client.options("/api/v1/offices/o0/reservations").headers


def test_an_etag_stays_while_only_the_clock_moves() -> None:
    """``generated_at`` was part of the tag, so /api/v1/offices had a new ETag every millisecond and the
    documented 304 never came; now the tag follows the data (and the status, which the clock can change)."""
    clock = [NOW]
    client, view = city(clock=clock)
    for path in ("/api/v1/offices", "/api/v1/services/pass"):
        first = client.get(path)
        clock[0] += 5
        again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.headers["ETag"] == first.headers["ETag"], path
        assert again.headers["Access-Control-Allow-Origin"] == "*"
    tag = client.get("/api/v1/offices").headers["ETag"]
    feed(view, "o1", now=clock[0], **{"pass": 12})
    changed = client.get("/api/v1/offices", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    tag = changed.headers["ETag"]
    clock[0] += 31 * 60  # stale_after_min 30: the same data is now stale, and the document says so
    stale = client.get("/api/v1/offices", headers={"If-None-Match": tag})
    assert stale.status_code == 200 and {o["status"] for o in stale.get_json()["offices"][:2]} == {"stale"}


def test_a_long_value_is_not_sent_back_whole() -> None:
    client, _ = city()
    long = "x" * 3000
    for path in (f"/api/v1/services/{long}", f"/api/v1/schema/{long}.json"):
        r = client.get(path)
        assert r.status_code == 404 and len(r.data) < 400, path
        assert "x" * 40 + "…" in r.get_json()["error"]["message"]
    # an unknown office in a reservation path was echoed whole (3 KB back for 3 KB sent)
    for r in (
        client.post(f"/api/v1/offices/{long}/reservations", json={"service": "pass"}),
        client.get(f"/api/v1/offices/{long}/reservations/ABCDEF"),
    ):
        assert r.status_code == 404 and len(r.data) < 400, r.request.path[:60]
        assert r.get_json()["error"]["message"] == f"no office {'x' * 40 + '…'!r} in this city"
    page = client.get(f"/?service={long}")
    assert page.status_code == 404 and "x" * 41 not in page.get_data(as_text=True)


def test_the_page_takes_the_language_codes_the_project_accepts() -> None:
    """``?lang=de_LS`` (and de-ls) is Leichte Sprache everywhere else; the city page showed German."""
    client, _ = city()
    for code in ("de-LS", "de_LS", "de-ls"):
        assert '<html lang="de-LS" dir="ltr">' in client.get(f"/?lang={code}").get_data(as_text=True), code
    assert '<html lang="de" dir="ltr">' in client.get("/?lang=xx").get_data(as_text=True)


def test_every_city_text_is_in_every_language() -> None:
    """The page offers every citizen language; their catalogs had none of the city texts, so an Arabic page
    marked ``lang="ar"`` was German throughout."""
    from waitroom.i18n import KEYS_BUILT_AT_RUN_TIME, LANGUAGES, t

    # city.alternative is a plural message (tn), checked with the other citizen texts by tests/test_i18n.py
    keys = [k for k in KEYS_BUILT_AT_RUN_TIME if k.startswith("city.") and k != "city.alternative"]
    assert len(keys) > 30
    values = {"office": "X", "minutes": 5, "time": "10:00", "day": "Do", "url": "/", "service": "s"}
    values["wait"] = "5"
    missing = [
        (lang, k)
        for lang in LANGUAGES
        if lang not in ("de", "de-LS")  # Leichte Sprache may say some words as plain German does
        for k in keys
        if t(k, lang, **values) == t(k, "de", **values)
    ]
    assert missing == []


def test_data_from_another_day_says_which_day() -> None:
    """Data that stopped yesterday read as this morning's ("veraltet seit 10:42 Uhr"); now the weekday is
    said (and the date beyond a week). The JSON has the exact time (``stale_since``, ``as_of``) anyway."""
    client, view = city()
    feed(view, "o0", now=NOW - 86400 - 1200, **{"pass": 20})  # Wednesday 10:40: stale since 11:10
    feed(view, "o2", now=NOW - 10 * 86400, **{"pass": 20})
    html = client.get("/?service=pass").get_data(as_text=True)
    assert "veraltet seit Mi 11:10 Uhr" in html and "veraltet seit 17.11.2025 11:30 Uhr" in html
    assert "aktuell (11:00 Uhr)" in html  # today's: the time alone
    assert "out of date since Wed 11:10" in client.get("/?service=pass&lang=en").get_data(as_text=True)


def test_a_stale_office_s_old_minutes_are_not_shown_as_its_wait() -> None:
    """The wait column showed a stale office's last minutes like any other ("ca. 45 Min."), with "veraltet"
    only in the last column (off screen on a phone). Now the wait and count cells say it is out of date; the
    JSON keeps the last figures with ``status: stale`` (documented)."""
    client, view = city()
    view.on_message(Topics("o0").bridge(), b"0", NOW)  # o0's link is cut: stale since now
    for path in ("/?service=pass", "/", "/?service=pass&lang=en"):
        html = client.get(path).get_data(as_text=True)
        row = html[html.index('data-office="o0"') :]
        row = row[: row.index("</tr>") if "service=" in path else row.index("</table>")]
        assert "45" not in row, (path, row)
        assert ("veraltet seit 11:00 Uhr" if "lang=en" not in path else "out of date since 11:00") in row
    ranked = client.get("/api/v1/services/pass").get_json()["offices"]
    assert [(r["office"], r["status"], r["eta_min"]) for r in ranked][-2] == ("o0", "stale", 45)
