"""Every command on the wire gets exactly one reply, with its id whenever the payload has one, and nothing
crashes the controller: raw payloads through a real mosquitto to the running controller service."""

from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from waitroom.contract import MAX_PAYLOAD_BYTES, Topics


class Wire:
    """A raw MQTT client: publishes bytes to any topic and records every reply of the office."""

    def __init__(self, port: int, office: str):
        self.topics = Topics(office)
        self.replies: list[tuple[str, dict]] = []
        self.sizes: list[int] = []  # of each reply, in bytes
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"wire-{time.monotonic_ns()}")
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(self.topics.all_nodes("reply"), qos=1)
        assert self.subscribed.wait(5)

    def _on_message(self, c, u, msg) -> None:
        with self.lock:
            self.replies.append((msg.topic.split("/")[-2], json.loads(msg.payload)))
            self.sizes.append(len(msg.payload))

    def send(self, node: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(f"{self.topics.base}/node/{node}/cmd", payload, qos=1, retain=retain).wait_for_publish(
            5
        )

    def replies_for(self, rid: str | None) -> list[tuple[str, dict]]:
        with self.lock:
            return [(n, r) for n, r in self.replies if r.get("id") == rid]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_bad_commands_get_one_reply_each_and_bad_topics_none(cfg, controller, caplog) -> None:
    wire = Wire(cfg.broker.port, cfg.office.id)
    caplog.set_level(logging.WARNING, logger="waitroom.service")
    try:
        big = (
            b'{"id": "r-big", "op": "ticket.issue", "args": {"service": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}}'
        )
        cases = [
            ("disp-1", b'{"id": "r-json", "op": "ticket.issue", "args": {', "r-json", "bad_json"),
            ("disp-1", big, "r-big", "too_large"),
            ("disp-1", b'{"id": "r-deep", "args": ' + b"[" * 1000 + b"]" * 1000 + b"}", "r-deep", "bad_json"),
            (
                "disp-1",
                b'{"id": "r-sur", "op": "ticket.issue", "args": {"service": "\\ud800"}}',
                "r-sur",
                "bad_json",
            ),
            (
                "ghost",
                b'{"id": "r-ghost", "op": "ticket.issue", "args": {"service": "pass"}}',
                "r-ghost",
                "unknown_node",
            ),
            ("disp-1", b"\xff\xfe not even utf-8", None, "bad_json"),
        ]
        # a node id that is not an id: no reply topic to answer on; logged, and nothing else happens
        wire.send("BAD!ID", b'{"id": "r-topic", "op": "ticket.issue", "args": {"service": "pass"}}')
        for node, payload, _, _ in cases:
            wire.send(node, payload)
        wire.send("disp-1", b'{"id": "r-last", "op": "ticket.issue", "args": {"service": "pass"}}')
        wait_until(lambda: wire.replies_for("r-last"))
        time.sleep(0.3)  # any late second reply would be in by now (they are published in order)
        for node, _, rid, code in cases:
            got = wire.replies_for(rid)
            assert len(got) == 1, (rid, got)
            assert got[0][0] == node and got[0][1]["ok"] is False and got[0][1]["error"]["code"] == code
        assert wire.replies_for("r-topic") == []
        assert any("invalid topic" in r.getMessage() for r in caplog.records)
        last = wire.replies_for("r-last")
        assert len(last) == 1 and last[0][1]["result"]["ticket"]["number"] == "A001"
        assert controller.alive() and len(controller.office.state.tickets) == 1
    finally:
        wire.close()


def test_a_bad_request_id_of_any_length_gets_a_reply_within_the_bound(cfg, controller) -> None:
    """An ``id`` that is not a request id is echoed in the ``bad_request`` reply (the node can tell which
    command failed), but one of 15,000 characters was echoed whole: a reply of 15 KB, past the contract's
    1,024 bytes, which a small node's MQTT buffer drops (then it never learns why). Now such an id is
    answered with ``"id": null``, within the bound; a short bad id is still echoed."""
    wire = Wire(cfg.broker.port, cfg.office.id)
    try:
        for rid in ("x" * 15000, "\u0000" * 2000, "r 42"):
            payload = {"id": rid, "op": "ticket.issue", "args": {"service": "pass"}}
            wire.send("disp-1", json.dumps(payload).encode())
        wire.send("disp-1", b'{"id": "r-last", "op": "ticket.issue", "args": {"service": "pass"}}')
        wait_until(lambda: wire.replies_for("r-last"))
        time.sleep(0.3)
        assert len(wire.replies) == 4 and max(wire.sizes) <= 1024, wire.sizes
        assert [r["id"] for _, r in wire.replies] == [None, None, "r 42", "r-last"]
        assert [r["error"]["code"] for _, r in wire.replies[:3]] == ["bad_request"] * 3
        assert len(controller.office.state.tickets) == 1
    finally:
        wire.close()


@pytest.mark.parametrize(
    "issued_at", ["0", "-1e308", "1e308", "NaN", "Infinity", "1" + "0" * 400, "-" + "9" * 400]
)
def test_offline_times_outside_the_lease_are_refused_on_the_wire(cfg, controller, issued_at) -> None:
    wire = Wire(cfg.broker.port, cfg.office.id)
    try:
        wire.send(
            "disp-1", b'{"id": "r-lease", "op": "ticket.lease", "args": {"service": "pass", "count": 3}}'
        )
        wait_until(lambda: wire.replies_for("r-lease"))
        first = wire.replies_for("r-lease")[0][1]["result"]["lease"]["first"]
        args = f'{{"service": "pass", "number": {first}, "issued_at": {issued_at}}}'
        wire.send("disp-1", f'{{"id": "r-off", "op": "ticket.report_offline", "args": {args}}}'.encode())
        wait_until(lambda: wire.replies_for("r-off"))
        reply = wire.replies_for("r-off")[0][1]
        assert reply["ok"] is False and reply["error"]["code"] in ("bad_request", "bad_json"), reply
        assert not controller.office.state.tickets
    finally:
        wire.close()


def test_a_retained_command_is_taken_once_not_again_after_a_restart(cfg, tmp_path) -> None:
    """A node that publishes a command with the retain flag gets one reply; the broker keeps the command and
    sends it again on every (re)subscription, which answered it a second time after each restart of the
    controller (and would have issued the ticket again once its stored reply was pruned after two days)."""
    from waitroom.service import ControllerService

    wire = Wire(cfg.broker.port, cfg.office.id)
    db = str(tmp_path / "events.db")
    svc = ControllerService(cfg, db)
    try:
        assert svc.start(wait=10)
        wire.send(
            "disp-1", b'{"id": "r-ret", "op": "ticket.issue", "args": {"service": "pass"}}', retain=True
        )
        wait_until(lambda: wire.replies_for("r-ret"))
        svc.stop()
        svc = ControllerService(cfg, db)
        assert svc.start(wait=10)
        wire.send("disp-1", b'{"id": "r-after", "op": "ticket.issue", "args": {"service": "pass"}}')
        wait_until(lambda: wire.replies_for("r-after"))
        time.sleep(0.3)
        assert len(wire.replies_for("r-ret")) == 1, wire.replies_for("r-ret")
        assert wire.replies_for("r-after")[0][1]["result"]["ticket"]["number"] == "A002"
        assert len(svc.office.state.tickets) == 2
    finally:
        wire.send("disp-1", b"", retain=True)  # clear the retained command on the shared broker
        svc.stop()
        wire.close()
