"""The admin's what-if page with Flask's test client, the real simulator and a real mosquitto (the web node's
broker): permissions, the form, a comparison whose figures are checked against ``waitroom.sim.whatif`` and
against what is true of the bundled scenario, the JSON endpoint, bad input (400 with the message), CSRF, the
one-at-a-time lock and the time budget."""

from __future__ import annotations

import re
import time
from html import unescape
from pathlib import Path

import pytest

from tests.web_helpers import PASSWORD, csrf_token, login, wait_for

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "waitroom" / "examples" / "scenarios"
C3_WITH_FS = ["melde", "sonstiges", "fuehrerschein"]  # c3 also takes driving licences


@pytest.fixture
def app(cfg, tmp_path):
    from waitroom.web import create_app

    own = tmp_path / "scenarios"
    own.mkdir()
    app = create_app(
        cfg,
        data_dir=tmp_path,
        test_config={
            "SECRET_KEY": "test-secret-key-0123456789",
            "TESTING": True,
            "WAITROOM_SCENARIO_DIRS": [own, SCENARIOS],
        },
    )
    users = app.extensions["waitroom_users"]
    users.add("admin", PASSWORD, "admin")
    users.add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    wait_for(lambda: live.online)
    yield app
    live.close()


@pytest.fixture
def admin(app):
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    return c


def form(client, **overrides):
    """The form as the page prefills it (variant 1 = the office as configured), then ``overrides``."""
    html = client.get("/admin/whatif").get_data(as_text=True)
    data: dict[str, object] = {}
    for m in re.finditer(r"<input ([^>]*)>", html):
        attrs = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m.group(1)))
        name = attrs.get("name")
        if not name or (attrs.get("type") == "checkbox" and " checked" not in m.group(1)):
            continue
        value = unescape(attrs.get("value", ""))
        if attrs.get("type") == "checkbox" and "_skill_" in name:
            data.setdefault(name, []).append(value)  # type: ignore[union-attr]
        else:
            data[name] = value
    data.update({"scenario": "mitte-monday", "replications": "4", "seed": "1", "scenario_yaml": ""})
    data.update(overrides)
    return data


def submit(client, data):
    """POST the form as a browser does: the job's progress page, followed until the result is there."""
    r = client.post("/admin/whatif", data={"csrf_token": csrf_token(client), **data})
    if r.status_code != 303:
        return r
    url = r.headers["Location"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = client.get(url)
        if 'id="whatif-progress"' not in r.get_data(as_text=True):
            return r
        time.sleep(0.1)
    raise AssertionError("the what-if job did not finish")


def cell(html: str, service: str, rule_set: str, metric: str = "mean") -> float:
    row = re.search(
        rf'<tr data-service="{service}" data-rule-set="{re.escape(rule_set)}">(.*?)</tr>', html, re.S
    )
    assert row, f"no row for {service}/{rule_set}"
    m = re.search(rf'data-metric="{metric}">([^<]+)<', row.group(1))
    assert m
    return german_number(m.group(1))


def german_number(text: str) -> float:
    """A number as a German page writes it ("1.234,5") read back."""
    from babel.numbers import parse_decimal

    return float(parse_decimal(text.strip(), locale="de", strict=True))


def overall(html: str, rule_set: str, metric: str) -> str:
    row = re.search(rf'<tr data-rule-set="{re.escape(rule_set)}">(.*?)</tr>', html, re.S)
    assert row, f"no overall row for {rule_set}"
    m = re.search(rf'data-metric="{metric}">([^<]+)<', row.group(1))
    assert m
    return m.group(1).strip()


# ------------------------------------------------------------------------------------------------ access
def test_anonymous_goes_to_login_and_json_is_401(app):
    anon = app.test_client()
    r = anon.get("/admin/whatif")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    token = csrf_token(anon)
    r = anon.post("/admin/whatif.json", json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 401 and r.json["error"]["code"] == "login_required"


def test_staff_is_forbidden(app):
    staff = app.test_client()
    assert login(staff, "anna").status_code == 302
    assert staff.get("/admin/whatif").status_code == 403
    token = csrf_token(staff)
    r = staff.post("/admin/whatif", data={"csrf_token": token})
    assert r.status_code == 403
    r = staff.post("/admin/whatif.json", json={}, headers={"X-CSRFToken": token})
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"


def test_admin_gets_the_form_prefilled_with_the_office(admin, cfg):
    r = admin.get("/admin/whatif")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Was wäre, wenn" in html
    assert '<option value="mitte-monday" selected>' in html
    assert 'name="csrf_token"' in html
    # c4 takes fuehrerschein and pass in the example office; c4 has no sonstiges
    assert re.search(r'name="v1_skill_c4" value="fuehrerschein"[^>]*checked', html)
    assert re.search(r'name="v1_skill_c4" value="pass"[^>]*checked', html)
    assert not re.search(r'name="v1_skill_c4" value="sonstiges"[^>]*checked', html)
    assert 'name="v1_normal_per_priority" type="number" min="0" max="20" step="1" value="2"' in html
    assert 'href="/admin/whatif"' in admin.get("/admin/").get_data(as_text=True)  # linked from the admin page
    en = admin.get("/admin/whatif?lang=en").get_data(as_text=True)
    assert "What if" in en and "Simulated days per rule set" in en


# ------------------------------------------------------------------------------------------------ results
def test_compare_c3_also_takes_driving_licences(admin, cfg):
    """In the bundled Monday, letting counter 3 also take driving licences cuts their mean wait (the queue
    shares c4/c5 with passports) at the cost of registrations and other matters, which c3 served alone."""
    from waitroom.i18n import fmt_number
    from waitroom.sim import whatif

    data = form(admin, v1_name="c3 + Führerschein", v1_skill_c3=C3_WITH_FS)
    r = submit(admin, data)
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html[:2000]
    name = "c3 + Führerschein"
    base_fs, new_fs = cell(html, "fuehrerschein", "current"), cell(html, "fuehrerschein", name)
    assert new_fs < base_fs * 0.85, (base_fs, new_fs)
    assert cell(html, "melde", name) > cell(html, "melde", "current")
    for sid in cfg.service_ids:
        for rs in ("current", name):
            assert 0 < cell(html, sid, rs) < 60  # minutes: a busy but working Monday
    util = overall(html, name, "utilisation")
    assert util.endswith("%") and 50 <= int(util.rstrip(" %")) <= 100
    assert overall(html, "current", "service_level").endswith("%")
    assert html.count("<svg") == 2 and "<polyline" in html
    assert "4 simulierte Tage je Regelwerk (Startwert 1)" in html

    # the page shows what the simulator computes, no more and no less
    ref = whatif(
        cfg,
        SCENARIOS / "mitte-monday.yaml",
        {"current": None, "x": {"skills": {"c3": C3_WITH_FS}}},
        4,
        1,
        predict=False,
    )

    def shown(rs: str, sid: str) -> float:  # the page shows minutes to one decimal, the German way
        return german_number(fmt_number(ref["rule_sets"][rs]["per_service"][sid]["mean_wait_min"], "de", 1))

    assert base_fs == shown("current", "fuehrerschein")
    assert new_fs == shown("x", "fuehrerschein")
    assert cell(html, "pass", name) == shown("x", "pass")


def test_unchanged_variant_gives_the_same_figures(admin):
    """Common random numbers: the prefilled variant is the office as configured, to the hundredth."""
    data = form(admin, replications="2")
    r = submit(admin, data)
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    for sid in ("pass", "melde", "fuehrerschein", "sonstiges"):
        assert cell(html, sid, "current") == cell(html, sid, "Variante 1")


def test_json_endpoint(admin):
    token = csrf_token(admin)
    body = {
        "scenario": "mitte-monday",
        "replications": 3,
        "seed": 1,
        "rule_sets": {
            "c3-fs": {"skills": {"c3": C3_WITH_FS}},
            "strict-priority": {"normal_per_priority": 0, "targets": {"pass": 15}, "ageing_from": 0.5},
            "walk-in-bound": {"walk_in_bound": 30},
        },
    }
    r = admin.post("/admin/whatif.json", json=body, headers={"X-CSRFToken": token})
    assert r.status_code == 200, r.get_data(as_text=True)
    rep = r.json["report"]
    assert rep["order"] == ["current", "c3-fs", "strict-priority", "walk-in-bound"] and set(
        rep["rule_sets"]
    ) == set(rep["order"])
    assert rep["replications"] == 3 and rep["seed"] == 1
    fs = {k: v["per_service"]["fuehrerschein"]["mean_wait_min"] for k, v in rep["rule_sets"].items()}
    assert fs["c3-fs"] < fs["current"]
    strict = rep["inputs"]["strict-priority"]["steering"]
    assert strict["priority"]["normal_per_priority"] == 0 and strict["ageing_from"] == 0.5
    assert strict["service_levels"]["pass"]["within_min"] == 15
    assert rep["rule_sets"]["strict-priority"]["per_service"]["pass"]["target_min"] == 15
    assert rep["inputs"]["c3-fs"]["skills"] == {"c3": C3_WITH_FS}
    bound = rep["inputs"]["walk-in-bound"]["steering"]["appointments"]
    assert (
        bound["max_wait_behind_appointments_min"] == 30 and bound["early_min"] == 10
    )  # the rest as configured
    assert strict["appointments"]["max_wait_behind_appointments_min"] is None  # the office's: no bound
    assert rep["notes"] == []


def test_the_form_s_walk_in_bound_reaches_the_rules(app, cfg):
    """The variant's field "Grenze für Wartende ohne Termin hinter Terminen": minutes, or empty for none."""
    from werkzeug.datastructures import MultiDict

    from waitroom.sim.scenario import apply_rule_set
    from waitroom.web.whatif import parse_form, rule_set

    with app.test_request_context("/admin/whatif"):
        for raw, want in (("45", 45.0), ("", None), ("  ", None)):
            fields = [("scenario", "mitte-monday"), ("replications", "1"), ("v1_on", "1")]
            fields += [(f"v1_skill_{c.id}", sid) for c in cfg.counters for sid in c.services]
            form_data = MultiDict([*fields, ("v1_walk_in_bound", raw)])
            req = parse_form(cfg, form_data)
            assert req.variants[0].walk_in_bound == want
            applied = apply_rule_set(cfg, rule_set(cfg, req.variants[0]))
            assert applied.steering.appointments.max_wait_behind_appointments_min == want


def test_rules_drop_weights_of_services_a_counter_no_longer_takes(cfg):
    """The office weighs pass as c4's secondary skill; a variant without pass at c4 must still validate."""
    from waitroom.config import parse
    from waitroom.sim.scenario import apply_rule_set
    from waitroom.web.whatif import Variant, rule_set

    data = cfg.model_dump(mode="json")
    data["steering"]["weights"] = {"c4": {"fuehrerschein": 1.0, "pass": 0.5}}
    data["steering"]["conditions"] = [
        {"service": "pass", "longest_wait_over_min": 30, "counters": ["c4", "c1"]},
        {"service": "pass", "longest_wait_over_min": 40, "counters": "secondary"},  # c4 only
    ]
    office = parse(data)
    v = Variant("x", {"c4": ["fuehrerschein"]}, {"pass": 15.0}, 1, 0.8)
    rs = rule_set(office, v)
    assert rs["steering"]["weights"] == {"c4": {"fuehrerschein": 1.0}}
    # the list keeps c1; with pass gone from c4 nobody has it as a secondary skill: that condition goes
    kept = {"service": "pass", "longest_wait_over_min": 30, "counters": ["c1"]}
    assert rs["steering"]["conditions"] == [kept]
    applied = apply_rule_set(office, rs)
    assert applied.counter("c4").services == ["fuehrerschein"]
    assert applied.steering.target_s("pass") == 15 * 60 and applied.steering.target_s("melde") == 20 * 60


def test_pasted_and_office_scenarios(app, admin, tmp_path):
    own = tmp_path / "scenarios"
    small = (
        "name: Kleiner Mittwoch\nweekday: wed\n"
        "arrivals: {pass: {'08': 6, '09': 6}, fuehrerschein: {'08': 2}}\n"
        "staffing: {c1: [['08:00', '11:00']], c4: [['08:00', '11:00']]}\n"
    )
    (own / "kleiner-mittwoch.yaml").write_text(small, encoding="utf-8")
    (own / "kaputt.yaml").write_text("name: x\narrivals: {visa: {'08': 3}}\n", encoding="utf-8")
    html = unescape(admin.get("/admin/whatif").get_data(as_text=True))
    assert '<option value="kleiner-mittwoch"' in html and "Kleiner Mittwoch" in html
    assert re.search(r'<option value="kaputt"[^>]*disabled>', html) and "unknown service 'visa'" in html

    data = form(admin, scenario="kleiner-mittwoch", replications="2")
    r = submit(admin, data)
    assert r.status_code == 200 and "Kleiner Mittwoch: 2 simulierte Tage" in r.get_data(as_text=True)

    pasted = small.replace("Kleiner Mittwoch", "Eingefügt").replace("config", "x")
    data = form(admin, scenario="kaputt", scenario_yaml=pasted, replications="2")
    r = submit(admin, data)
    assert r.status_code == 200 and "Eingefügt: 2 simulierte Tage" in r.get_data(as_text=True)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("overrides", "message", "field"),
    [
        (
            {"replications": "0"},
            "Simulierte Tage je Regelwerk: bitte eine ganze Zahl von 1 bis 50.",
            "replications",
        ),
        ({"replications": "51"}, "bitte eine ganze Zahl von 1 bis 50", "replications"),
        ({"replications": "2.5"}, "bitte eine ganze Zahl von 1 bis 50", "replications"),
        ({"seed": "-1"}, "Startwert (Zufall): bitte eine ganze Zahl", "seed"),
        (
            {"v1_ageing_from": "abc"},
            "Variante 1: Vorziehen ab Anteil der Zielwartezeit: bitte eine Zahl",
            None,
        ),
        ({"v1_ageing_from": "nan"}, "bitte eine Zahl von 0.05 bis 10", None),
        (
            {"v1_normal_per_priority": "21"},
            "Normale Nummern zwischen zwei Vorrangnummern: bitte eine ganze",
            None,
        ),
        (
            {"v1_target_pass": "0"},
            "Variante 1: Zielwartezeit Personalausweis / Reisepass: bitte eine Zahl",
            None,
        ),
        ({"v1_skill_c3": []}, "Variante 1: Schalter 3 muss mindestens ein Anliegen nehmen.", None),
        (
            {"v1_walk_in_bound": "0,5"},
            "hinter Terminen (Min., leer = keine): bitte eine Zahl von 1 bis 480",
            "v1_walk_in_bound",
        ),
        ({"v1_skill_c3": ["melde", "visa"]}, "Unbekanntes Anliegen visa.", None),
        ({"v1_on": ""}, "Bitte mindestens eine Variante zum Vergleichen auswählen.", None),
        ({"v1_name": "Wie konfiguriert"}, "Name „Wie konfiguriert“: bitte 1 bis 40 Zeichen", None),
        ({"scenario": "../../etc/passwd"}, "Unbekanntes Szenario „../../etc/passwd“.", "scenario"),
        ({"scenario_yaml": "name: x\narrivals: {visa: {'08': 3}}"}, "arrivals.visa: unknown service", None),
        ({"scenario_yaml": "name: x\narrivals: [unclosed"}, "Das Szenario ist ungültig", None),
        (
            {"scenario_yaml": "name: x\narrivals: {pass: {'08': 5000}}"},
            "Das Szenario ist zu groß: etwa 5.000 Bürger:innen am Tag (höchstens 3.000)",
            None,
        ),
        ({"scenario_yaml": "name: x\narrivals: {pass: {'08': -5}}"}, "rates of at least 0", None),
    ],
)
def test_bad_form_input_is_400_with_the_message(admin, overrides, message, field):
    data = form(admin, **overrides)
    r = submit(admin, data)
    html = unescape(r.get_data(as_text=True))
    assert r.status_code == 400
    assert message in html
    assert 'role="alert" id="whatif-error"' in html and 'id="result"' not in html
    if field:
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', html)


def test_scenario_on_a_closed_day_is_refused(app):
    """The example office is closed on Saturdays: a clear error before the simulator runs."""
    from waitroom import config
    from waitroom.web.whatif import Variant, WhatIfInputError, WhatIfRequest, check_request

    office = config.load(config.EXAMPLE_CONFIG)
    req = WhatIfRequest({"name": "x", "weekday": "sat", "arrivals": {"pass": {"09": 4}}}, "x", 1, 1, [])
    req.variants.append(Variant("v", {}, {"pass": 20.0}, 2, 0.75))
    with app.test_request_context("/admin/whatif"), pytest.raises(WhatIfInputError) as exc:
        check_request(office, req)
    assert exc.value.field == "scenario"
    with app.test_request_context("/admin/whatif"):
        assert "the office is closed on sat" in exc.value.message()


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        (
            {"scenario": "mitte-monday", "rule_sets": {"x": {"skills": {"c9": ["pass"]}}}},
            "Unknown counter c9.",
            "skills",
        ),
        ({"scenario": "mitte-monday", "rule_sets": {"x": {"skills": {"c1": "pass"}}}}, "as a list", "skills"),
        (
            {"scenario": "mitte-monday", "rule_sets": {"x": {"targets": {"visa": 5}}}},
            "Unknown service visa.",
            "targets",
        ),
        (
            {"scenario": "mitte-monday", "rule_sets": {"x": {"normal_per_priority": True}}},
            "whole number",
            "normal_per_priority",
        ),
        (
            {"scenario": "mitte-monday", "rule_sets": {"x": {"walk_in_bound": "soon"}}},
            "x: Longest wait of walk-ins behind appointments (min, empty = no bound): please",
            "walk_in_bound",
        ),
        (
            {"scenario": "mitte-monday", "rule_sets": {"x": {"wieghts": {}}}},
            "Unknown key rule_sets.x.wieghts.",
            None,
        ),
        (
            {
                "scenario": "mitte-monday",
                "rule_sets": {"x": {"steering": {"ageing_from": 0.5, "priorty": {}}}},
            },
            "x: the rules are invalid: steering.priorty",
            None,
        ),
        (
            {"scenario": "mitte-monday", "rule_sets": {"a": None, "b": None, "c": None, "d": None}},
            "At most 3",
            None,
        ),
        ({"scenario": "mitte-monday", "rule_sets": {}}, "Please choose at least one variant", "rule_sets"),
        (
            {"scenario": "mitte-monday", "replications": 1000, "rule_sets": {"x": None}},
            "from 1 to 50",
            "replications",
        ),
        ({"scenario": 5, "rule_sets": {"x": None}}, "Unknown scenario '5'.", "scenario"),
        ({"scenario": {"name": "y"}, "rule_sets": {"x": None}}, "arrivals: Field required", "scenario"),
        ([1, 2], "JSON object expected", None),
    ],
)
def test_bad_json_input_is_400_with_the_message(admin, body, message, field):
    r = admin.post(
        "/admin/whatif.json", json=body, headers={"X-CSRFToken": csrf_token(admin), "Accept-Language": "en"}
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    err = r.json["error"]
    assert err["code"] == "bad_request" and message in err["message"]
    if field:
        assert err["field"] == field


def test_csrf_missing_is_400(admin):
    data = form(admin)
    data.pop("csrf_token")
    r = admin.post("/admin/whatif", data=data)
    assert r.status_code == 400 and "Das Formular ist abgelaufen" in r.get_data(as_text=True)
    r = admin.post("/admin/whatif.json", json={"scenario": "mitte-monday", "rule_sets": {"x": None}})
    assert r.status_code == 400 and r.json["error"]["code"] == "csrf"


def test_one_simulation_at_a_time(app, admin):
    app.config["WAITROOM_WHATIF_MAX_DAYS"] = 50
    h = {"X-CSRFToken": csrf_token(admin)}
    body = {"scenario": "mitte-monday", "replications": 40, "seed": 1, "rule_sets": {"x": None}}
    r = admin.post("/admin/whatif.json?async=1", json=body, headers=h)
    assert r.status_code == 202, r.json
    status_url, job_id = r.json["status_url"], r.json["job"]
    data = form(admin, replications="1")
    r = admin.post("/admin/whatif", data={"csrf_token": csrf_token(admin), **data})
    assert r.status_code == 503 and "Es läuft bereits eine Simulation" in r.get_data(as_text=True)
    r = admin.post("/admin/whatif.json", json={**body, "replications": 1}, headers=h)
    assert r.status_code == 503 and r.json["error"]["code"] == "busy" and r.headers["Retry-After"] == "10"
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = admin.get(status_url).json
        seen.append(st.get("done") or 0)
        if st["state"] == "done":
            break
        assert st["state"] in ("queued", "running") and "Tagen" in st.get("text", "Tagen")
        time.sleep(0.1)
    assert st["state"] == "done" and st["report"]["replications"] == 40  # every requested day ran
    # the job gave way to the controller and the pages on the same server (the job's log says what the
    # kernel told it)
    job_log = Path(app.config["WAITROOM_DATA_DIR"]) / "whatif-jobs" / job_id / "job.log"
    nice = re.search(r"what-if job \w+ at nice (\d+)", job_log.read_text())
    assert nice and int(nice.group(1)) >= 10, job_log.read_text()[-2000:]
    assert seen == sorted(seen) and any(0 < d < 80 for d in seen)  # the progress moved in between
    r = submit(admin, data)
    assert r.status_code == 200 and "whatif-overall" in r.get_data(as_text=True)


def test_more_days_than_allowed_is_refused_naming_the_limit(app, admin):
    """Never cut silently: over web.whatif_max_days is a 400 naming the key; up to it every day runs."""
    app.config["WAITROOM_WHATIF_MAX_DAYS"] = 3
    r = submit(admin, form(admin, replications="4"))
    html = unescape(r.get_data(as_text=True))
    assert r.status_code == 400 and "web.whatif_max_days" in html and "4" in html
    r = admin.post(
        "/admin/whatif.json",
        json={"scenario": "mitte-monday", "replications": 4, "rule_sets": {"x": None}},
        headers={"X-CSRFToken": csrf_token(admin)},
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "replications"
    r = submit(admin, form(admin, replications="3"))
    assert r.status_code == 200 and "3 simulierte Tage je Regelwerk" in r.get_data(as_text=True)


def test_one_day_is_said_in_the_singular(app, admin):
    """A limit of one day and a comparison of one day: "Höchstens 1 Tag", "1 simulierter Tag" (they said
    "Höchstens 1 Tage je Regelsatz" and "1 simulierte Tage")."""
    app.config["WAITROOM_WHATIF_MAX_DAYS"] = 1
    r = submit(admin, form(admin, replications="2"))
    html = unescape(r.get_data(as_text=True))
    assert (
        r.status_code == 400 and "Höchstens 1 Tag je Regelwerk (web.whatif_max_days); angefragt: 2." in html
    )
    r = submit(admin, form(admin, replications="1"))
    assert r.status_code == 200 and "1 simulierter Tag je Regelwerk (Startwert" in r.get_data(as_text=True)
