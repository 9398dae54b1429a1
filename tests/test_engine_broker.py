"""A busy office against the production broker configuration that ``waitroom broker`` generates (issue 10):
3,000 waiting, and every message the controller publishes fits the broker's limits and its documented bound,
so the controller stays connected and the office keeps working."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from tests.conftest import midday_zone, require_tool
from tests.test_broker_acl import Client, readable_tmpdir, start_office_broker
from waitroom import contract
from waitroom.contract import CONTROLLER_NODE_ID, Topics
from waitroom.controller import Office
from waitroom.service import ControllerService
from waitroom.store import EventStore

pytestmark = pytest.mark.slow


def test_3000_waiting_against_the_generated_production_broker(tmp_path):
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-busy-")
    office = start_office_broker(folder, office_id="busy")
    cfg = office.cfg
    hours = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    steering = cfg.steering.model_copy(
        update={"intake_stop": cfg.steering.intake_stop.model_copy(update={"enabled": False})}
    )
    cfg = cfg.model_copy(
        update={
            "office": cfg.office.model_copy(update={"hours": hours, "timezone": midday_zone(time.time())}),
            "steering": steering,
        }
    )
    db = tmp_path / "busy.db"
    prefill = Office(cfg, EventStore(db))
    services = sorted(cfg.service_ids)
    items = [
        (
            "disp-1",
            contract.encode(contract.command("ticket.issue", {"service": services[i % len(services)]})),
        )
        for i in range(3000)
    ]
    for k in range(0, len(items), 250):
        assert all(o.reply["ok"] for o in prefill.handle_batch(items[k : k + 250]))
    prefill.store.close()
    t = Topics(cfg.office.id)
    svc = ControllerService(cfg, str(db), password=office.passwords[CONTROLLER_NODE_ID])
    web = Client("web", office.passwords["web"], office.local_port)
    disp = Client("disp-1", office.passwords["disp-1"], office.local_port)
    sizes: dict[str, int] = {}
    replies: list[dict] = []
    lock = threading.Lock()

    def on_message(c, u, msg):
        kind = msg.topic.split("/")[3]
        with lock:
            sizes[kind] = max(sizes.get(kind, 0), len(msg.payload))
            if msg.topic.endswith("/reply"):
                replies.append(json.loads(msg.payload))

    web.c.on_message = on_message
    disp.c.on_message = on_message
    try:
        assert svc.start(wait=10)
        assert web.connect() == 0 and disp.connect() == 0
        web.subscribe([t.state(), t.queue("+"), t.counter("+"), t.public(), t.events()])
        disp.subscribe([t.reply("disp-1")])
        for i in range(20):
            disp.c.publish(
                t.cmd("disp-1"),
                contract.encode(contract.command("ticket.issue", {"service": services[0]}, f"busy-{i}")),
                qos=1,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(replies) < 20 or "queue" not in sizes):
            time.sleep(0.05)
        assert len(replies) == 20 and all(r["ok"] for r in replies), replies[:3]
        assert replies[-1]["result"]["ticket"]["ahead"] >= 3000 // len(services)
        time.sleep(1.2)  # a queue page and a summary after the burst
        assert svc.link.connected.is_set(), "the broker dropped the controller"
        assert "oversize" not in office.broker.log_path.read_text().lower()
        with lock:
            seen = dict(sizes)
        assert {"state", "queue", "counter", "public"} <= set(seen)
        assert seen["state"] <= contract.STATE_BOUND_BYTES, seen
        assert seen["queue"] <= contract.QUEUE_BOUND_BYTES, seen
        assert max(seen.values()) <= contract.QUEUE_BOUND_BYTES
    finally:
        web.close()
        disp.close()
        svc.stop()
        office.broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
