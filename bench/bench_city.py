"""City service benchmark at 50 simulated offices, against a raw MQTT hop measured in the same run.

Prints:
- update latency: an office's public waits published on the city broker until the city service has applied
  them (the API answers with them from then on), next to a plain paho subscriber on the same broker receiving
  the same message (the raw hop); min and median of each and the ratio of the medians;
- burst: 5,000 updates from 50 offices as fast as one publisher can send them, until all are applied;
- cost of one API answer (all offices document, one service ranking, open data, a recommendation pass) next to
  json.dumps of the same 50 raw payloads (the least any answer must do);
- memory the live picture holds for 50 offices (tracemalloc), and the city process's RSS.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_broker.local import Mosquitto
from waitroom.city import config as city_config
from waitroom.city.service import CityService
from waitroom.city.view import CityView
from waitroom.contract import CITY_FILTERS, Topics, encode

OFFICES = 50
SERVICES = ["pass", "melde", "fuehrerschein", "sonstiges", "kfz", "gewerbe"]
ALL_DAY = {d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def city_cfg(port: int) -> city_config.CityConfig:
    return city_config.parse(
        {
            "city": {"name": "Benchstadt"},
            "broker": {"host": "127.0.0.1", "port": port, "username": "city-service"},
            "offices": [
                {"id": f"o{i:02d}", "name": f"Bürgerbüro {i}", "hours": ALL_DAY} for i in range(OFFICES)
            ],
            "services": [{"id": s, "name": {"de": s.title()}} for s in SERVICES],
        }
    )


def public(office: str, seq: int, rng: random.Random) -> dict:
    return {
        "v": 1,
        "office": office,
        "seq": seq,
        "ts": time.time(),
        "services": [
            {
                "id": s,
                "prefix": "ABCDEF"[i],
                "waiting": (w := rng.randint(0, 40)),
                "eta_min": w * 3,
                "intake_open": True,
                "intake_reason": None,
            }
            for i, s in enumerate(SERVICES)
        ],
    }


def client(port: int, name: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv311)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def ms(values: list[float]) -> str:
    return f"min {min(values) * 1000:.2f} ms, median {statistics.median(values) * 1000:.2f} ms"


def main() -> None:
    rng = random.Random(7)
    with Mosquitto() as broker:
        cfg = city_cfg(broker.port)
        svc = CityService(cfg)
        applied = threading.Event()
        applied_at: dict[str, float] = {}

        def on_applied(office: str, kind: str) -> None:
            if kind == "public":
                applied_at["t"] = time.perf_counter()
                applied.set()

        svc.view.listeners.append(on_applied)
        assert svc.start(wait=10)
        raw_got = threading.Event()
        raw_at: dict[str, float] = {}
        raw = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv311)

        def on_raw(_c, _u, msg) -> None:
            raw_at["t"] = time.perf_counter()
            raw_got.set()

        raw.on_message = on_raw
        raw.connect("127.0.0.1", broker.port)
        raw.subscribe(CITY_FILTERS["public"], 1)
        raw.loop_start()
        pub = client(broker.port, "bench-pub")
        time.sleep(0.5)

        # 1. one update at a time: the city service's apply vs the raw hop, same message
        city_lat, raw_lat = [], []
        for i in range(600):
            office = f"o{i % OFFICES:02d}"
            data = encode(public(office, i, rng))
            applied.clear()
            raw_got.clear()
            t0 = time.perf_counter()
            pub.publish(Topics(office).public(), data, qos=1, retain=True)
            if not (applied.wait(5) and raw_got.wait(5)):
                raise SystemExit("an update did not arrive")
            city_lat.append(applied_at["t"] - t0)
            raw_lat.append(raw_at["t"] - t0)
        print(f"update latency at {OFFICES} offices, 600 updates one at a time (publish -> applied):")
        print(f"  raw MQTT hop (plain paho subscriber): {ms(raw_lat)}")
        print(f"  city service (parsed, applied, API-visible): {ms(city_lat)}")
        print(f"  ratio city/raw: median {statistics.median(city_lat) / statistics.median(raw_lat):.2f}")

        # 2. burst: 5,000 updates as fast as one publisher sends them
        raw.unsubscribe(CITY_FILTERS["public"])
        time.sleep(0.2)
        before = svc.view.updates
        burst = [(f"o{i % OFFICES:02d}", encode(public(f"o{i % OFFICES:02d}", i, rng))) for i in range(5000)]
        t0 = time.perf_counter()
        for office, data in burst:
            pub.publish(Topics(office).public(), data, qos=0, retain=True)
        deadline = time.monotonic() + 60
        while svc.view.updates - before < len(burst) and time.monotonic() < deadline:
            time.sleep(0.005)
        took = time.perf_counter() - t0
        done = svc.view.updates - before
        print(f"burst: {done} of {len(burst)} updates applied in {took:.2f} s = {done / took:.0f} updates/s")
        time.sleep(1.5)
        print(f"recommendations published meanwhile: {svc.published}")
        import psutil

        rss = psutil.Process().memory_info().rss
        pub.loop_stop()
        raw.loop_stop()
        svc.stop()

    # 3. the cost of an answer, next to serialising the same raw payloads
    view = CityView(cfg)
    payloads = [public(f"o{i:02d}", i, rng) for i in range(OFFICES)]
    for p in payloads:
        view.on_message(Topics(p["office"]).public(), encode(p))
        view.on_message(Topics(p["office"]).bridge(), b"1")

    def timed(fn, n: int = 200) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    base = timed(lambda: json.dumps(payloads))
    print(f"answer cost at {OFFICES} offices x {len(SERVICES)} services (200 runs each):")
    print(f"  raw json.dumps of the 50 payloads: {ms(base)}")
    for name, fn in [
        ("GET /api/v1/offices", lambda: json.dumps(view.document())),
        ("GET /api/v1/services/pass", lambda: json.dumps(view.ranking("pass"))),
        ("GET /open-data/v1/waits.json", lambda: json.dumps(view.open_data())),
        ("recommendation pass", lambda: view.recommendations()),
    ]:
        v = timed(fn)
        print(f"  {name}: {ms(v)}; ratio to raw: median {statistics.median(v) / statistics.median(base):.1f}")

    # 4. memory of the live picture
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    view2 = CityView(cfg)
    for p in payloads:
        view2.on_message(Topics(p["office"]).public(), encode(p))
    snap1 = tracemalloc.take_snapshot()
    held = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    tracemalloc.stop()
    raw_bytes = sum(len(encode(p)) for p in payloads)
    print(
        f"memory: the live picture of {OFFICES} offices holds {held / 1024:.0f} KiB "
        f"({held / OFFICES / 1024:.1f} KiB per office; the raw payloads are {raw_bytes / 1024:.0f} KiB); "
        f"process RSS after the run {rss / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import no_arguments

    no_arguments(__doc__)
    main()
