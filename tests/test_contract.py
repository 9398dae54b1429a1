"""The MQTT contract as a third party sees it: a plain paho client written from docs/mqtt-contract.md alone
(topic strings typed in by hand, JSON payloads) against a real mosquitto and the real controller."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys

import paho.mqtt.client as mqtt
import pytest

from waitroom import contract
from waitroom.contract_doc import DOC, render


def test_reference_tables_in_the_doc_are_generated_from_the_code():
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "docs/mqtt-contract.md is stale: run python -m waitroom.contract_doc"
    # every operation and every error code is documented
    for name in contract.OPS:
        assert f"#### `{name}`" in text
    for code in contract.ErrorCode:
        assert f"| `{code.value}` |" in text


class DocClient:
    """What an ESP32 developer would write after reading the contract: no waitroom code at all."""

    def __init__(self, port: int, office: str, node: str):
        self.base = f"waitroom/v1/{office}"
        self.node = node
        self.inbox: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"waitroom-{office}-{node}", protocol=mqtt.MQTTv311
        )
        self.c.will_set(
            f"{self.base}/node/{node}/status",
            json.dumps({"node": node, "status": "offline"}),
            qos=1,
            retain=True,
        )
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, json.loads(m.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(
            [(f"{self.base}/node/{node}/reply", 1), (f"{self.base}/state", 1), (f"{self.base}/event/+", 1)]
        )
        self.c.loop_start()
        self.c.publish(
            f"{self.base}/node/{node}/status",
            json.dumps({"node": node, "status": "online"}),
            qos=1,
            retain=True,
        )

    def send(self, rid: str, op: str, **args) -> dict:
        self.c.publish(
            f"{self.base}/node/{self.node}/cmd", json.dumps({"id": rid, "op": op, "args": args}), qos=1
        )
        return self.wait(f"{self.base}/node/{self.node}/reply", lambda p: p.get("id") == rid)

    def wait(self, topic: str, match=lambda p: True, timeout: float = 5.0) -> dict:
        while True:
            t, p = self.inbox.get(timeout=timeout)
            if t == topic and match(p):
                return p

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def doc_client(cfg, broker, controller):
    clients = []

    def make(node: str) -> DocClient:
        clients.append(DocClient(broker.port, cfg.office.id, node))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def test_a_client_from_the_docs_pulls_a_ticket_and_a_counter_calls_it(cfg, doc_client):
    disp, counter = doc_client("disp-1"), doc_client("counter-1")
    base = f"waitroom/v1/{cfg.office.id}"
    state = disp.wait(f"{base}/state")  # retained: there at once
    assert state["office"] == cfg.office.id and {s["id"] for s in state["services"]} >= {"pass"}

    reply = disp.send("esp32-1", "ticket.issue", service="pass")
    assert reply["ok"] is True and re.fullmatch(r"A\d{3}", reply["result"]["ticket"]["number"])
    number = reply["result"]["ticket"]["number"]

    reply = counter.send("esp32-2", "counter.call_next", counter="c1")
    assert reply == {"id": "esp32-2", "ok": True, "result": reply["result"], "seq": reply["seq"]}
    assert reply["result"]["call"]["ticket"] == number
    call = counter.wait(f"{base}/event/call")
    assert call["ticket"] == number and call["counter_name"]["de"] == "Schalter 1"
    state = counter.wait(f"{base}/state", lambda s: s["calls"] and s["calls"][0]["ticket"] == number)
    assert next(c for c in state["counters"] if c["id"] == "c1")["serving"]["ticket"] == number


def test_repeated_request_id_yields_one_ticket(cfg, doc_client):
    disp = doc_client("disp-1")
    first = disp.send("same-id", "ticket.issue", service="melde")
    second = disp.send("same-id", "ticket.issue", service="melde")
    assert second == {**first, "repeated": True} and first["ok"]
    third = disp.send("other-id", "ticket.issue", service="melde")
    assert int(third["result"]["ticket"]["number"][1:]) == int(first["result"]["ticket"]["number"][1:]) + 1


def test_errors_come_back_as_replies_and_the_controller_survives(cfg, doc_client):
    disp = doc_client("disp-1")
    base = f"waitroom/v1/{cfg.office.id}/node/disp-1"
    disp.c.publish(f"{base}/cmd", b"\x00garbage", qos=1)
    assert disp.wait(f"{base}/reply")["error"]["code"] == "bad_json"
    assert disp.send("x1", "counter.call_next", counter="c1")["error"]["code"] == "forbidden"
    assert disp.send("x2", "ticket.issue", service="mars")["error"]["code"] == "unknown_service"
    assert disp.send("x3", "ticket.issue", service="pass")["ok"] is True


def test_a_request_that_got_no_reply_is_voided_and_arrives_too_late(cfg, doc_client):
    """request.void as the doc describes it: a request the controller never had is voided for good; one it
    decided is answered with what it decided; another node's or a missing id is one clear error."""
    disp, display = doc_client("disp-1"), doc_client("display-1")
    void = disp.send("lost-1-v", "request.void", request="lost-1")
    assert void["ok"] and void["result"] == {"request": {"id": "lost-1", "state": "voided"}}
    late = disp.send("lost-1", "ticket.issue", service="pass")  # a late packet, a redelivery
    assert late["ok"] is False and late["error"]["code"] == "request_voided"
    assert disp.send("lost-1-v", "request.void", request="lost-1") == {**void, "repeated": True}

    first = disp.send("slow-1", "ticket.issue", service="pass")
    done = disp.send("slow-1-v", "request.void", request="slow-1")["result"]["request"]
    assert done == {"id": "slow-1", "state": "decided", "result": first["result"]}
    assert first["result"]["ticket"]["number"] == "A001"  # the voided request took no number

    refusals = [
        disp.send("b-1", "request.void"),
        disp.send("b-2", "request.void", request="slow-1", node="counter-1"),
        disp.send("b-3", "request.void", request="not an id"),
        display.send("b-4", "request.void", request="x-1"),
    ]
    codes = [r["error"]["code"] for r in refusals]
    assert codes == ["bad_request", "forbidden", "bad_request", "forbidden"]
    assert all(r["error"]["message"] for r in refusals)


def test_status_birth_and_will_are_retained(cfg, broker, controller):
    base = f"waitroom/v1/{cfg.office.id}"
    watcher = DocClient(broker.port, cfg.office.id, "display-1")
    watcher.c.subscribe(f"{base}/node/+/status", 1)
    try:
        status = watcher.wait(f"{base}/node/controller/status")
        assert status["status"] == "online" and status["role"] == "controller"
        # a node that dies without a clean disconnect: the broker publishes its will
        code = (
            "import paho.mqtt.client as m, json, os;"
            f"c = m.Client(m.CallbackAPIVersion.VERSION2, client_id='waitroom-{cfg.office.id}-sb-1');"
            f"c.will_set('{base}/node/sb-1/status',"
            " json.dumps({'node': 'sb-1', 'status': 'offline'}), 1, True);"
            f"c.connect('127.0.0.1', {broker.port}); c.loop_start();"
            f"c.publish('{base}/node/sb-1/status',"
            " json.dumps({'node': 'sb-1', 'status': 'online'}), 1, True)"
            ".wait_for_publish(); os._exit(9)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], check=False, timeout=20, capture_output=True, text=True
        )
        assert proc.returncode == 9, proc.stderr
        assert watcher.wait(f"{base}/node/sb-1/status", lambda p: p["status"] == "offline", timeout=10)
    finally:
        watcher.close()


@pytest.mark.parametrize("topic", ["waitroom/v1/mitte/state/#", "waitroom/v1/+/state", "other/x"])
def test_publish_topics_are_validated(topic):
    with pytest.raises(ValueError):
        contract.validate_publish_topic(topic)


@pytest.mark.parametrize(
    "topic,ok", [("waitroom/v1/mitte/node/+/cmd", True), ("a/#", True), ("a/#/b", False), ("a/b+", False)]
)
def test_subscribe_filters_are_validated(topic, ok):
    if ok:
        assert contract.validate_subscribe_filter(topic) == topic
    else:
        with pytest.raises(ValueError):
            contract.validate_subscribe_filter(topic)


@pytest.mark.parametrize("bad", ["Mitte", "a/b", "", "x" * 33, "#", "ü"])
def test_ids_are_restricted(bad):
    with pytest.raises(contract.ContractError):
        contract.Topics(bad)


def test_encode_writes_compact_utf8_json_whatever_the_payload_holds() -> None:
    """Every message and stored event goes through ``contract.encode`` (orjson, with the standard library
    for what orjson does not take): the same JSON as before, and never a payload a receiver refuses."""
    payload = {"id": "r1", "ok": True, "result": {"number": "Ä 12", "wait": [10, 20.5], "note": None}}
    raw = contract.encode(payload)
    assert raw == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert contract.decode(raw) == payload
    # keys that are not strings (a histogram by minute) are written as the standard library writes them
    assert json.loads(contract.encode({"h": {5: 2, 10: 1}})) == {"h": {"5": 2, "10": 1}}
    # NaN is not JSON: the controller sends null instead of a message every receiver would refuse
    assert contract.decode(contract.encode({"wait": float("nan")})) == {"wait": None}
    with pytest.raises(UnicodeEncodeError):  # text with a lone surrogate cannot be sent
        contract.encode({"t": "\ud800"})
