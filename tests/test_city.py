"""The city view without a broker: the live picture, staleness, rankings, recommendations (with hysteresis),
the city configuration's errors, the office side's advice, and the HTTP API (schemas, ETag/304, 429)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from waitroom.city import config as city_config
from waitroom.city.advice import Advice
from waitroom.city.view import SILENT_S, CityView
from waitroom.city.web import SCHEMAS, create_app
from waitroom.contract import Topics, encode
from waitroom.errors import ConfigError

ALL_DAY = {d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NOW = 1764237600.0  # Thursday 2025-11-27 11:00 Europe/Berlin


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def make_cfg(n: int = 3, **steering: object) -> city_config.CityConfig:
    offices = [{"id": f"o{i}", "name": f"Bürgerbüro {i}", "hours": ALL_DAY} for i in range(n)]
    return city_config.parse(
        {
            "city": {"name": "Teststadt"},
            "offices": offices,
            "services": [
                {"id": "pass", "name": {"de": "Pass", "en": "Passport"}},
                {"id": "melde", "name": {"de": "Melde"}},
            ],
            "stale_after_min": 30,
            "steering": {"threshold_min": 30, "min_gain_min": 10, "hysteresis_min": 5, **steering},
        }
    )


def public(office: str, ts: float, **etas: int | None) -> bytes:
    return encode(
        {
            "v": 1,
            "office": office,
            "ts": ts,
            "services": [
                {"id": sid, "waiting": (eta or 0) // 3, "eta_min": eta, "intake_open": True}
                for sid, eta in etas.items()
            ],
        }
    )


def feed(view: CityView, office: str, now: float = NOW, **etas: int | None) -> None:
    assert view.on_message(Topics(office).public(), public(office, now, **etas), now)


def test_live_picture_and_ranking_by_expected_wait() -> None:
    view = CityView(make_cfg(), clock=lambda: NOW)
    feed(view, "o0", **{"pass": 45, "melde": 5})
    feed(view, "o1", **{"pass": 10})
    feed(view, "o2", **{"pass": 20, "melde": 2})
    ranking = view.ranking("pass", NOW)
    jsonschema.validate(ranking, schema("service"))
    assert [r["office"] for r in ranking["offices"]] == ["o1", "o2", "o0"]
    assert [r["eta_min"] for r in ranking["offices"]] == [10, 20, 45]
    assert all(r["available"] and r["status"] == "live" for r in ranking["offices"])
    # o1 does not list melde: it is not ranked for it
    assert [r["office"] for r in view.ranking("melde", NOW)["offices"]] == ["o2", "o0"]
    assert view.ranking("nosuch", NOW) is None
    doc = view.document(NOW)
    jsonschema.validate(doc, schema("offices"))
    assert [s["id"] for s in doc["services"]] == ["pass", "melde"]


def test_cut_link_controller_offline_and_old_data_make_an_office_stale() -> None:
    view = CityView(make_cfg(), clock=lambda: NOW)
    for o in ("o0", "o1", "o2"):
        feed(view, o, NOW - 60, **{"pass": 5})
        view.on_message(Topics(o).bridge(), b"1", NOW - 60)
    assert view.on_message(Topics("o1").bridge(), b"0", NOW - 30)  # the bridge's will: link cut
    view.on_message(
        Topics("o2").status("controller"), encode({"node": "controller", "status": "offline"}), NOW - 20
    )
    doc = {o["id"]: o for o in view.document(NOW)["offices"]}
    assert doc["o0"]["status"] == "live" and doc["o0"]["link"] == "up"
    assert (doc["o1"]["status"], doc["o1"]["stale_since"], doc["o1"]["link"]) == ("stale", NOW - 30, "down")
    assert (doc["o2"]["status"], doc["o2"]["stale_since"]) == ("stale", NOW - 20)
    ranking = view.ranking("pass", NOW)["offices"]
    assert [r["office"] for r in ranking] == ["o0", "o1", "o2"]  # stale ones after the live one
    # data older than stale_after_min (30) is stale too, since as_of + 30 min
    later = NOW - 60 + 31 * 60
    assert view.status(view.offices["o0"], later) == ("stale", NOW - 60 + 30 * 60)
    # ... unless the link is up and the controller online: then the office's own stamp says little (its clock
    # may be behind the city's) while its controller republishes the waits every 30 s: they are current
    view.on_message(
        Topics("o0").status("controller"), encode({"node": "controller", "status": "online"}), NOW
    )
    assert view.on_message(Topics("o0").public(), public("o0", NOW - 60, **{"pass": 5}), later - 30)
    assert view.status(view.offices["o0"], later) == ("live", None)
    # the link comes back with fresh data: live again
    view.on_message(Topics("o1").bridge(), b"1", NOW)
    feed(view, "o1", NOW, **{"pass": 7})
    assert view.status(view.offices["o1"], NOW) == ("live", None)


def test_an_office_that_fell_silent_behind_leftover_statuses_is_stale() -> None:
    """The office server lost power mid-morning. Its mosquitto comes back from its persistence file with the
    controller's retained "online" and the waits of 10:00, and its bridge replays them to the city with the
    link up; the controller itself stays down (a damaged log). A running controller republishes its waits
    every 30 s, so after SILENT_S without them the office is stale, not live with the morning's minutes, and
    nobody is sent there."""
    view = CityView(make_cfg(), clock=lambda: NOW)
    t = Topics("o0")
    view.on_message(t.bridge(), b"1", NOW)
    view.on_message(t.status("controller"), encode({"node": "controller", "status": "online"}), NOW)
    assert view.on_message(t.public(), public("o0", NOW - 3600, **{"pass": 5}), NOW)
    feed(view, "o1", NOW, **{"pass": 50})
    assert view.status(view.offices["o0"], NOW + 60) == ("live", None)  # a pause of a few heartbeats
    later = NOW + SILENT_S + 1
    assert view.status(view.offices["o0"], later) == ("stale", NOW + SILENT_S)
    feed(view, "o1", later, **{"pass": 50})
    assert view.recommendations(later)[("o1", "pass")] is None
    assert {o["id"]: o["status"] for o in view.document(later)["offices"]}["o0"] == "stale"
    # the controller is back: its first waits make the office live again
    feed(view, "o0", later + 5, **{"pass": 5})
    assert view.status(view.offices["o0"], later + 5) == ("live", None)
    assert view.recommendations(later + 5)[("o1", "pass")]["office"] == "o0"


def test_bad_input_is_counted_and_the_last_good_data_kept() -> None:
    view = CityView(make_cfg(), clock=lambda: NOW)
    feed(view, "o0", **{"pass": 12})
    t = Topics("o0")
    bad = [
        b"not json",
        b"[1,2]",
        encode({"office": "o1", "services": []}),  # names another office
        encode({"services": [{"id": "Pass!", "waiting": 1}]}),
        encode({"services": [{"id": "pass", "waiting": -1}]}),
        encode({"services": [{"id": "pass", "waiting": 1, "eta_min": "soon"}]}),
        encode({"services": [{"id": "pass", "waiting": 1, "intake_open": "yes"}]}),
    ]
    for raw in bad:
        assert view.on_message(t.public(), raw, NOW) is False
    assert view.on_message(t.bridge(), b"maybe", NOW) is False
    assert view.on_message(t.status("controller"), b"{}", NOW) is False
    assert view.offices["o0"].rejected == len(bad) + 2
    assert view.ranking("pass", NOW)["offices"][0]["eta_min"] == 12
    # unknown offices and foreign topics are ignored
    assert (
        view.on_message(Topics("elsewhere").public(), public("elsewhere", NOW, **{"pass": 1}), NOW) is False
    )
    assert view.on_message("waitroom/v1/o0/state", b"{}", NOW) is False
    assert "elsewhere" not in {o["id"] for o in view.document(NOW)["offices"]}


def test_opening_hours_order_closed_offices_last() -> None:
    cfg = city_config.parse(
        {
            "city": {"name": "Teststadt", "timezone": "Europe/Berlin"},
            "offices": [
                {"id": "early", "name": "Früh", "hours": {"thu": ["07:00", "10:00"]}},
                {"id": "day", "name": "Tag", "hours": {"thu": ["08:00", "16:00"]}},
                {"id": "none", "name": "Nie"},
            ],
        }
    )
    view = CityView(cfg, clock=lambda: NOW)
    feed(view, "early", **{"pass": 1})
    feed(view, "day", **{"pass": 40})
    rows = view.ranking("pass", NOW)["offices"]
    assert [(r["office"], r["open_now"], r["hours_today"]) for r in rows] == [
        ("day", True, ["08:00", "16:00"]),
        ("early", False, ["07:00", "10:00"]),
        ("none", False, None),
    ]
    assert rows[2]["status"] == "unknown"
    # closed now: when it opens next (next Thursday 07:00 for "early", a week on; never for "none")
    assert rows[1]["next_open"] == NOW + 7 * 86400 - 4 * 3600 and rows[2]["next_open"] is None
    html = create_app(cfg, view).test_client().get("/?service=pass").get_data(as_text=True)
    assert (
        "öffnet Do 07:00 Uhr" in html
        and "<li>Do: 07:00–10:00</li>" in html
        and "<li>Mo: geschlossen</li>" in html
    )


def test_recommendation_threshold_gain_hysteresis_and_reach() -> None:
    view = CityView(make_cfg(), clock=lambda: NOW)
    feed(view, "o0", **{"pass": 29})
    feed(view, "o1", **{"pass": 12})
    feed(view, "o2", **{"pass": 15})
    assert view.recommendations(NOW)[("o0", "pass")] is None  # below the threshold of 30
    feed(view, "o0", **{"pass": 35})
    rec = view.recommendations(NOW)
    assert rec[("o0", "pass")] == {"office": "o1", "name": "Bürgerbüro 1", "eta_min": 12, "waiting": 4}
    assert rec[("o1", "pass")] is None and rec[("o2", "pass")] is None
    # 27 min: under the threshold but within the hysteresis of 5 min: the advice stays
    feed(view, "o0", **{"pass": 27})
    assert view.recommendations(NOW)[("o0", "pass")]["office"] == "o1"
    feed(view, "o0", **{"pass": 24})
    assert view.recommendations(NOW)[("o0", "pass")] is None
    # a gain below min_gain_min (10) is no reason to travel
    feed(view, "o0", **{"pass": 31})
    feed(view, "o1", **{"pass": 22})
    feed(view, "o2", **{"pass": 25})
    assert view.recommendations(NOW)[("o0", "pass")] is None
    # a stale office is never recommended; an office with intake stopped neither
    feed(view, "o1", **{"pass": 5})
    view.on_message(Topics("o1").bridge(), b"0", NOW)
    assert view.recommendations(NOW)[("o0", "pass")] is None
    feed(view, "o2", **{"pass": 5})
    rec = view.recommendations(NOW)[("o0", "pass")]
    assert rec["office"] == "o2"
    payload = view.recommendation_payload("o0", "pass", rec, NOW)
    jsonschema.validate(payload, schema("recommendation"))


def test_no_recommendation_to_an_office_that_closes_before_the_citizen_gets_there() -> None:
    cfg = city_config.parse(
        {
            "city": {"name": "Teststadt"},
            "offices": [
                {"id": "busy", "name": "Voll", "hours": {"thu": ["08:00", "16:00"]}},
                {"id": "closing", "name": "Schließt", "hours": {"thu": ["08:00", "11:10"]}},
                {"id": "late", "name": "Spät", "hours": {"thu": ["08:00", "18:00"]}},
            ],
            "steering": {"threshold_min": 30, "min_gain_min": 10, "reach_min": 20},
        }
    )
    view = CityView(cfg, clock=lambda: NOW)
    feed(view, "busy", **{"pass": 60})
    feed(view, "closing", **{"pass": 1})
    feed(view, "late", **{"pass": 20})
    assert view.recommendations(NOW)[("busy", "pass")]["office"] == "late"


def test_no_recommendation_to_an_office_whose_queue_runs_past_closing() -> None:
    """Open when the citizen arrives is not enough: with its wait on top the office would serve them after
    closing, so its intake stop (Annahmeschluss) turns them away at the door."""
    cfg = city_config.parse(
        {
            "city": {"name": "Teststadt"},
            "offices": [
                {"id": "busy", "name": "Voll", "hours": {"thu": ["08:00", "16:00"]}},
                {"id": "soon", "name": "Bald zu", "hours": {"thu": ["08:00", "11:30"]}},
                {"id": "late", "name": "Spät", "hours": {"thu": ["08:00", "18:00"]}},
            ],
            "steering": {"threshold_min": 30, "min_gain_min": 10, "reach_min": 20},
        }
    )
    view = CityView(cfg, clock=lambda: NOW)  # 11:00: at "soon" by 11:20, served at 11:35, after 11:30
    feed(view, "busy", **{"pass": 60})
    feed(view, "soon", **{"pass": 15})
    feed(view, "late", **{"pass": 25})
    assert view.recommendations(NOW)[("busy", "pass")]["office"] == "late"
    feed(view, "soon", **{"pass": 5})  # served at 11:25: before closing, and the shortest wait
    assert view.recommendations(NOW)[("busy", "pass")]["office"] == "soon"


def test_city_config_errors_are_collected_by_path() -> None:
    with pytest.raises(ConfigError) as err:
        city_config.parse(
            {
                "city": {"name": "X", "timezone": "Mars/Olympus"},
                "offices": [
                    {"id": "city", "name": "A"},
                    {"id": "a", "name": "A", "hours": {"mon": ["10:00", "09:00"]}, "services": ["nope"]},
                    {"id": "a", "name": "B"},
                ],
                "services": [{"id": "pass", "name": {"de": "Pass"}}],
                "steering": {"thresholds": {"melde": 10}},
            }
        )
    assert "city.timezone" in str(err.value)
    with pytest.raises(ConfigError) as err:
        city_config.parse(
            {
                "city": {"name": "X"},
                "offices": [
                    {"id": "city", "name": "A"},
                    {"id": "a", "name": "A", "hours": {"mon": ["10:00", "09:00"]}, "services": ["nope"]},
                    {"id": "a", "name": "B"},
                ],
                "services": [{"id": "pass", "name": {"de": "Pass"}}],
                "steering": {"thresholds": {"melde": 10}},
                "colour": "blue",
            }
        )
    text = str(err.value)
    assert "colour: unknown key" in text
    with pytest.raises(ConfigError) as err:
        city_config.parse(
            {
                "city": {"name": "X"},
                "offices": [
                    {"id": "city", "name": "A"},
                    {"id": "a", "name": "A", "hours": {"mon": ["10:00", "09:00"]}, "services": ["nope"]},
                    {"id": "a", "name": "B"},
                ],
                "services": [{"id": "pass", "name": {"de": "Pass"}}],
                "steering": {"thresholds": {"melde": 10}},
            }
        )
    errors = err.value.errors
    assert "offices[0].id: 'city' is reserved for the city service's own topics" in errors
    assert "offices[2].id: duplicate id 'a'" in errors
    assert "offices[1].hours.mon: opening 10:00 is not before closing 09:00" in errors
    assert "offices[1].services[0]: unknown service 'nope' (known: pass)" in errors
    assert "steering.thresholds.melde: unknown service 'melde'" in errors
    assert city_config.load(city_config.EXAMPLE_CITY).offices[1].name == "Bürgerbüro Süd"


def test_office_side_advice_lapses_and_checks_its_topic() -> None:
    clock = [NOW]
    advice = Advice("o0", clock=lambda: clock[0])
    view = CityView(make_cfg(), clock=lambda: NOW)
    feed(view, "o0", **{"pass": 50})
    feed(view, "o1", **{"pass": 10})
    rec = view.recommendations(NOW)[("o0", "pass")]
    payload = encode(view.recommendation_payload("o0", "pass", rec, NOW))
    advice.on_message(Topics("o0").recommend("pass"), payload)
    assert advice.text("pass") == "Kürzer warten: Bürgerbüro 1: ca. 10 Min."
    assert advice.text("pass", "en") == "Shorter wait: Bürgerbüro 1: approx. 10 min"
    assert advice.text("melde") is None
    clock[0] = NOW + 301  # valid_s = 300: a dead city service leaves no old advice
    assert advice.alternative("pass") is None
    clock[0] = NOW
    advice.on_message(Topics("o0").recommend("pass"), b"")  # cleared
    assert advice.alternative("pass") is None
    advice.on_message(Topics("o1").recommend("pass"), payload)  # another office's topic
    advice.on_message(Topics("o0").recommend("melde"), payload)  # payload names pass
    advice.on_message(Topics("o0").recommend("pass"), b"{broken")
    assert advice.alternative("pass") is None and advice.alternative("melde") is None


def test_advice_lapses_after_its_lifetime_on_an_office_clock_behind_the_city_s() -> None:
    """The office's Pi is an hour behind the city (no time sync). The city's advice says valid until 11:05
    city time; the bridge is cut at once, so nobody renews or withdraws it. By the office's clock it lapses
    5 minutes after it came, not an hour later (meanwhile the office it names may have closed)."""
    office_clock = [NOW - 3600]
    advice = Advice("o0", clock=lambda: office_clock[0])
    view = CityView(make_cfg(), clock=lambda: NOW)
    feed(view, "o0", **{"pass": 50})
    feed(view, "o1", **{"pass": 10})
    rec = view.recommendations(NOW)[("o0", "pass")]
    advice.on_message(
        Topics("o0").recommend("pass"), encode(view.recommendation_payload("o0", "pass", rec, NOW))
    )
    assert advice.alternative("pass")["office"] == "o1"
    office_clock[0] += 299
    assert advice.text("pass") == "Kürzer warten: Bürgerbüro 1: ca. 10 Min."
    office_clock[0] += 2  # 301 s after it came: valid_s is 300
    assert advice.alternative("pass") is None and advice.text("pass") is None
    # a renewal brings it back for another lifetime
    advice.on_message(
        Topics("o0").recommend("pass"), encode(view.recommendation_payload("o0", "pass", rec, NOW + 150))
    )
    assert advice.alternative("pass")["office"] == "o1"


# ----------------------------------------------------------------------------------------------- HTTP
@pytest.fixture
def client_view() -> tuple[object, CityView]:
    cfg = make_cfg()
    view = CityView(cfg, clock=lambda: NOW)
    feed(view, "o0", **{"pass": 45, "melde": 3})
    feed(view, "o1", **{"pass": 10})
    app = create_app(cfg.model_copy(update={"web": cfg.web.model_copy(update={"rate_per_min": 30})}), view)
    return app.test_client(), view


def test_api_documents_follow_their_schemas_and_errors_are_json(client_view) -> None:
    client, _ = client_view
    r = client.get("/api/v1/offices")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
    jsonschema.validate(r.get_json(), schema("offices"))
    r = client.get("/api/v1/services/pass")
    jsonschema.validate(r.get_json(), schema("service"))
    assert r.get_json()["offices"][0]["office"] == "o1"
    r = client.get("/api/v1/services/nosuch")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "unknown_service"
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/schema/offices.json").get_json()["title"].startswith("waitroom city API v1")
    assert client.get("/api/v1/schema/x.json").get_json()["error"]["code"] == "unknown_schema"


def test_open_data_is_cacheable_and_changes_only_with_the_data(client_view) -> None:
    client, view = client_view
    r = client.get("/open-data/v1/waits.json")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "public, max-age=30"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    data = r.get_json()
    jsonschema.validate(data, schema("open-data"))
    assert data["license"] == "dl-de/by-2-0"
    tag = r.headers["ETag"]
    again = client.get("/open-data/v1/waits.json", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == tag
    feed(view, "o1", **{"pass": 11})
    changed = client.get("/open-data/v1/waits.json", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_rate_limit_answers_429_with_retry_after(client_view) -> None:
    client, _ = client_view
    codes = [client.get("/open-data/v1/waits.json").status_code for _ in range(31)]
    assert codes[:30] == [200] * 30 and codes[30] == 429
    r = client.get("/api/v1/offices")
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert r.get_json()["error"]["code"] == "rate_limited"
    assert client.get("/healthz").status_code == 200  # monitoring is not limited


def test_behind_a_reverse_proxy_each_client_has_its_own_limit() -> None:
    cfg = make_cfg()
    web = cfg.web.model_copy(update={"rate_per_min": 2, "proxies": 1})
    client = create_app(cfg.model_copy(update={"web": web}), CityView(cfg)).test_client()
    a, b = {"X-Forwarded-For": "192.0.2.10"}, {"X-Forwarded-For": "192.0.2.11"}
    assert [client.get("/api/v1/offices", headers=a).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/v1/offices", headers=b).status_code == 200


def test_page_is_german_first_and_ordered(client_view) -> None:
    client, _ = client_view
    html = client.get("/?service=pass").get_data(as_text=True).replace("\u00a0", " ")  # "ca. 10 Min." whole
    assert '<html lang="de" dir="ltr">' in html and 'label for="service"' in html
    assert html.index('data-office="o1"') < html.index('data-office="o0"')
    assert "ca. 10 Min." in html and "Wartezeiten der Bürgerbüros" in html
    en = client.get("/?service=pass&lang=en").get_data(as_text=True).replace("\u00a0", " ")
    assert '<html lang="en" dir="ltr">' in en and "approx. 10 min" in en
    overview = client.get("/").get_data(as_text=True).replace("\u00a0", " ")
    assert "Bürgerbüro 0" in overview and "Empfehlung: Bürgerbüro 1 (ca. 10 Min.)" in overview
    r = client.get("/?service=nosuch")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "Keine Dienstleistung „nosuch“ bekannt." in r.get_data(as_text=True)
    assert client.post("/api/v1/offices").get_json()["error"]["code"] == "method_not_allowed"


def test_an_office_that_does_a_service_by_appointment_only_is_no_walk_in_alternative(client_view) -> None:
    """Bürgerbüro 1 does passports by appointment only (its office file's ``walk_in: false``): its short wait
    is its appointment holders'. The city sent the walk-ins of Bürgerbüro 0 there, and ranked it first for a
    walk-in. Now it is ranked after the offices that take walk-ins, recommended to nobody, its own wait sends
    nobody elsewhere, and the pages say "Nur mit Termin"."""
    client, view = client_view
    payload = {
        "v": 1,
        "office": "o1",
        "ts": NOW,
        "services": [{"id": "pass", "waiting": 2, "eta_min": 5, "intake_open": True, "walk_in": False}],
    }
    assert view.on_message(Topics("o1").public(), encode(payload), NOW)
    feed(view, "o2", **{"pass": 60})
    ranking = view.ranking("pass", NOW)
    jsonschema.validate(ranking, schema("service"))
    assert [(r["office"], r["available"], r["walk_in"]) for r in ranking["offices"]] == [
        ("o0", True, True),
        ("o2", True, True),
        ("o1", False, False),
    ]
    recs = view.recommendations(NOW)
    assert recs[("o2", "pass")]["office"] == "o0"  # not o1, whose 5 minutes are for appointments
    assert recs[("o1", "pass")] is None
    jsonschema.validate(view.document(NOW), schema("offices"))
    jsonschema.validate(view.open_data(NOW), schema("open-data"))
    page = client.get("/?service=pass").get_data(as_text=True)
    row = page[page.index('data-office="o1"') :].split("</tr>")[0]
    assert "Nur mit Termin" in row and "Min." not in row
    assert "By appointment only" in client.get("/?service=pass&lang=en").get_data(as_text=True)


def test_a_recommended_wait_under_a_minute_is_said_so(client_view) -> None:
    """The recommendation named the other office's wait as "(ca. 0 Min.)" (Arabic "(حوالي 0 د)"): it is
    said like every wait now, "(weniger als 1 Min.)", with the plural forms of each language."""
    client, view = client_view
    feed(view, "o1", **{"pass": 0})
    overview = client.get("/").get_data(as_text=True).replace("\u00a0", " ")
    assert "Empfehlung: Bürgerbüro 1 (weniger als 1 Min.)" in overview and "0 Min." not in overview
    arabic = client.get("/?lang=ar").get_data(as_text=True).replace("\u00a0", " ")
    assert "(أقل من دقيقة)" in arabic and "0 د" not in arabic


def test_example_city_file_is_valid(tmp_path: Path) -> None:
    from waitroom.cli import main

    assert main(["city", "check-config", str(city_config.EXAMPLE_CITY)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("city: {name: X}\noffices: []\n")
    with pytest.raises(SystemExit) as exc:
        main(["city", "check-config", str(bad)])
    assert exc.value.code == 1


def test_every_route_and_schema_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "city-api.md").read_text(encoding="utf-8")
    app = create_app(make_cfg(), CityView(make_cfg()))
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        method = "POST" if "POST" in rule.methods else "GET"
        assert f"{method} {rule.rule}" in doc, f"{rule.rule} is not in docs/city-api.md"
    for name in ("offices", "service", "open-data", "recommendation"):
        assert f"`{name}`" in doc or f"{name}.json" in doc
    for key in city_config.CityConfig.model_fields:
        assert f"`{key}" in doc, f"city configuration key {key} is not documented"


def test_advice_is_republished_only_when_it_changes_noticeably() -> None:
    from waitroom.city.service import _same_advice

    assert _same_advice(None, None) and not _same_advice(None, ("o1", 10))
    assert not _same_advice(("o1", 10), None) and not _same_advice(("o1", 10), ("o2", 10))
    assert _same_advice(("o1", 10), ("o1", 11)) and not _same_advice(("o1", 10), ("o1", 12))
    assert _same_advice(("o1", 60), ("o1", 65)) and not _same_advice(("o1", 60), ("o1", 54))


def test_hours_and_time_zone_can_come_from_the_public_waits() -> None:
    cfg = city_config.parse(
        {"city": {"name": "X", "timezone": "UTC"}, "offices": [{"id": "o0", "name": "A"}]}
    )
    view = CityView(cfg, clock=lambda: NOW)
    payload = json.loads(public("o0", NOW, **{"pass": 5}))
    payload |= {"hours": {"thu": ["10:30", "12:00"]}, "timezone": "Europe/Berlin"}  # 11:00 in Berlin: open
    view.on_message(Topics("o0").public(), encode(payload), NOW)
    entry = view.document(NOW)["offices"][0]
    assert (entry["open_now"], entry["hours_today"], entry["timezone"]) == (
        True,
        ["10:30", "12:00"],
        "Europe/Berlin",
    )
    payload |= {"hours": {"thu": ["25:00", "x"]}, "timezone": "Nowhere/Else"}  # malformed: closed, city zone
    view.on_message(Topics("o0").public(), encode(payload), NOW)
    entry = view.document(NOW)["offices"][0]
    assert (entry["open_now"], entry["hours_today"], entry["timezone"]) == (False, None, "UTC")
    assert entry["hours"] is None
    jsonschema.validate(view.document(NOW), schema("offices"))


def test_the_city_page_in_arabic_runs_right_to_left(client_view) -> None:
    """lang and dir together: an Arabic page (and its error page) marked ``dir="rtl"``, not laid out left to
    right like a German one (it only had ``lang``)."""
    client, _ = client_view
    assert '<html lang="ar" dir="rtl">' in client.get("/?lang=ar").get_data(as_text=True)
    r = client.get("/?service=nosuch&lang=ar")
    assert r.status_code == 404 and '<html lang="ar" dir="rtl">' in r.get_data(as_text=True)
    assert '<html lang="de" dir="ltr">' in client.get("/?lang=de").get_data(as_text=True)


def test_a_missing_page_is_said_in_the_page_s_language(client_view) -> None:
    """The city page's error page in the chosen language, not werkzeug's English "The requested URL was not
    found on the server..." (the city's own texts, such as an unknown service, already were)."""
    client, _ = client_view
    r = client.get("/nosuch?lang=tr")
    page = r.get_data(as_text=True)
    assert r.status_code == 404 and "Sayfa bulunamadı." in page and "requested URL" not in page
    assert "Seite nicht gefunden" in client.get("/nosuch?lang=de").get_data(as_text=True)


def test_a_reservation_body_nested_too_deeply_is_a_400(tmp_path: Path) -> None:
    """``[[[...]]]`` some thousand levels deep (far below any size limit) made the JSON decoder raise
    RecursionError: a 500 and a traceback. It is malformed JSON: 400 ``bad_request`` like any other."""
    from types import SimpleNamespace

    token = "a-city-back-end-token-0123456789abcdef"
    (tmp_path / "tokens").write_text(f"{token}\n")
    cfg = make_cfg()
    rules = cfg.remote_tickets.model_copy(update={"enabled": True, "token_file": str(tmp_path / "tokens")})
    cfg = cfg.model_copy(update={"remote_tickets": rules})
    app = create_app(cfg, CityView(cfg, clock=lambda: NOW), service=SimpleNamespace(commands=object()))
    client = app.test_client()
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        r = client.post(
            "/api/v1/offices/o0/reservations",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", -1e15),
        ("ts", -1e11),
        ("ts", "gestern"),
        ("eta_min", 10**30),
        ("eta_min", 1e300),
        ("waiting", 10**40),
    ],
)
def test_one_office_s_absurd_number_does_not_break_the_page_of_every_office(
    field: str, value: object
) -> None:
    """A time before year 1 or a count of 29 digits and more in one office's public waits was accepted, and
    the city page (every office, every service) answered 500: the time could not be written as a date,
    Babel could not write the number. Such a payload is now rejected like a malformed one, and the office
    keeps its last good data."""
    cfg = make_cfg()
    view = CityView(cfg, clock=lambda: NOW)
    feed(view, "o0", **{"pass": 45})
    feed(view, "o1", **{"pass": 10})
    entry = {"id": "pass", "waiting": 15, "eta_min": 45, "intake_open": True}
    data = {"v": 1, "office": "o0", "ts": NOW, "services": [entry]}
    if field == "ts":
        data["ts"] = value
    else:
        entry[field] = value
    assert view.on_message(Topics("o0").public(), json.dumps(data).encode(), NOW) is False
    assert view.offices["o0"].rejected == 1
    client = create_app(cfg, view).test_client()
    for path in (
        "/",
        "/?service=pass",
        "/api/v1/offices",
        "/api/v1/services/pass",
        "/open-data/v1/waits.json",
    ):
        r = client.get(path)
        assert r.status_code == 200, path
    page = client.get("/?service=pass").get_data(as_text=True)
    assert 'data-office="o0"' in page and 'data-office="o1"' in page
    assert [o["eta_min"] for o in view.ranking("pass", NOW)["offices"]][:2] == [10, 45]


def test_a_token_file_that_cannot_serve_is_a_config_error(tmp_path: Path) -> None:
    """check-config passed a remote_tickets.token_file that does not exist, and `waitroom city run` then
    stopped with a FileNotFoundError traceback (the whole city view down); one with no token in it refused
    every reservation. Both are now configuration errors naming the key."""
    from waitroom.cli import main

    def parse(token_file: Path) -> None:
        city_config.parse(
            {
                "city": {"name": "X"},
                "offices": [{"id": "a", "name": "A"}],
                "remote_tickets": {"enabled": True, "token_file": str(token_file)},
            }
        )

    empty = tmp_path / "empty.tokens"
    empty.write_text("# 115 back end\n\n")
    for token_file, why in (
        (tmp_path / "missing.tokens", "cannot read"),
        (tmp_path, "cannot read"),
        (empty, "holds no token"),
    ):
        with pytest.raises(ConfigError) as err:
            parse(token_file)
        assert [e for e in err.value.errors if e.startswith("remote_tickets.token_file: ")], err.value.errors
        assert why in str(err.value)
    good = tmp_path / "good.tokens"
    good.write_text("# 115 back end\nt0ken\n")
    parse(good)
    city_file = tmp_path / "city.yaml"
    city_file.write_text(
        "city: {name: X}\noffices: [{id: a, name: A}]\n"
        f"remote_tickets: {{enabled: true, token_file: {tmp_path / 'missing.tokens'}}}\n"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["city", "check-config", str(city_file)])
    assert exit_.value.code == 1
