"""Sixty offices in one city view, as the city broker delivers them: most live, some with their bridge cut,
and a few sending what no controller would (garbage, an oversized message, thousands of services, a time zone
that is a folder, endless service names). The API, the open data, the page and the recommendation pass stay
correct and bounded; one bad office changes nothing for the others. No broker needed (CityView is fed the
messages the bridge topics carry)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.test_city import NOW, schema
from waitroom.city import config as city_config
from waitroom.city.view import MAX_PUBLIC_BYTES, CityView
from waitroom.city.web import create_app
from waitroom.contract import Topics, encode
from waitroom.errors import ConfigError

ALL_DAY = {d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
N = 60
STALE = range(50, 55)
GARBAGE, OVERSIZED, TOO_MANY, FOLDER_ZONE, LONG_NAMES = 55, 56, 57, 58, 59


def waits(office: str, *services: dict) -> dict:
    return {"v": 1, "office": office, "ts": NOW, "services": list(services)}


def svc(sid: str, eta: int, **extra: object) -> dict:
    return {"id": sid, "waiting": eta // 3, "eta_min": eta, "intake_open": True, **extra}


@pytest.fixture
def city():
    offices = [
        {"id": f"o{i}", "name": f"Bürgerbüro {i}", **({} if i == FOLDER_ZONE else {"hours": ALL_DAY})}
        for i in range(N)
    ]
    cfg = city_config.parse(
        {
            "city": {"name": "Großstadt"},
            "offices": offices,
            "services": [{"id": "pass", "name": {"de": "Pass"}}],
            "steering": {"threshold_min": 30, "min_gain_min": 10},
        }
    )
    view = CityView(cfg, clock=lambda: NOW)
    for i in range(N):
        o = f"o{i}"
        topic = Topics(o).public()
        if i == GARBAGE:
            payload = b"\xff\xfe{not json"
        elif i == OVERSIZED:
            payload = encode(waits(o, svc("pass", 20, pad="x" * MAX_PUBLIC_BYTES)))
        elif i == TOO_MANY:
            payload = encode(waits(o, *(svc(f"s{k}", 5) for k in range(5000))))
        elif i == FOLDER_ZONE:
            payload = encode({**waits(o, svc("pass", 10 + i)), "timezone": "Europe"})
        elif i == LONG_NAMES:
            payload = encode(waits(o, svc("melde", 12, name={"de": "M" * 100_000, "xx": "y", "en": 5})))
        else:
            payload = encode(waits(o, svc("pass", 10 + i), svc("melde", 40)))
        view.on_message(topic, payload, NOW)
        view.on_message(Topics(o).bridge(), b"0" if i in STALE else b"1", NOW)
    app = create_app(
        cfg.model_copy(update={"web": cfg.web.model_copy(update={"rate_per_min": 10_000})}), view
    )
    return app.test_client(), view


def test_sixty_offices_one_bad_office_changes_nothing_for_the_others(city) -> None:
    client, view = city
    r = client.get("/api/v1/offices")
    assert r.status_code == 200
    doc = r.get_json()
    jsonschema.validate(doc, schema("offices"))
    assert len(r.data) < 100_000  # bounded: no office's payload lands in it whole
    offices = {o["id"]: o for o in doc["offices"]}
    assert len(offices) == N
    status = {o: e["status"] for o, e in offices.items()}
    assert [o for o, s in status.items() if s == "stale"] == [f"o{i}" for i in STALE]
    # nothing usable from these: no data (unknown), counted as rejected, the city's other offices untouched
    assert {status[f"o{i}"] for i in (GARBAGE, OVERSIZED, TOO_MANY)} == {"unknown"}
    assert sum(o.rejected for o in view.offices.values()) == 3
    assert offices["o0"]["services"][0] == {**offices["o0"]["services"][0], "eta_min": 10, "waiting": 3}
    assert {s["id"] for s in doc["services"]} == {"pass", "melde"}  # not 5,000 services from one office
    # a time zone that is a folder falls back to the city's
    assert (status[f"o{FOLDER_ZONE}"], offices[f"o{FOLDER_ZONE}"]["timezone"]) == ("live", "Europe/Berlin")
    melde = next(s for s in doc["services"] if s["id"] == "melde")["name"]
    assert all(isinstance(v, str) and len(v) <= 200 for v in melde.values()) and set(melde) <= {"de", "en"}
    ranking = client.get("/api/v1/services/pass")
    assert ranking.status_code == 200
    jsonschema.validate(ranking.get_json(), schema("service"))
    assert ranking.get_json()["offices"][0]["office"] == "o0"
    data = client.get("/open-data/v1/waits.json")
    assert data.status_code == 200 and len(data.get_json()["offices"]) == N
    for path in ("/", "/?service=pass", "/?service=melde&lang=ar", "/?fragment=1"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert len(page.data) < 300_000, path
    recs = view.recommendations(NOW)
    assert recs[("o49", "pass")]["office"] == "o0"  # 59 min against 10: the best live office
    assert ("o50", "pass") not in recs  # a stale office gets no advice
    assert json.loads(client.get("/healthz").data)["rejected"] == 3


def test_a_time_zone_that_is_a_folder_is_a_config_error() -> None:
    """``timezone: Europe`` raised IsADirectoryError from check-config instead of naming the key."""
    with pytest.raises(ConfigError) as exc:
        city_config.parse(
            {"city": {"name": "X", "timezone": "Europe"}, "offices": [{"id": "a", "name": "A"}]}
        )
    assert "city.timezone" in str(exc.value) and "Europe" in str(exc.value)
