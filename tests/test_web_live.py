"""The web's office copy and its live streams, with Flask's test client, the real controller and mosquitto:
a ticket stream carries its status with the rendered fragment and speaks only when that status changes;
a stalled client is dropped; an action's reply carries the seq and the counter's new state."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from tests.web_helpers import PASSWORD, csrf_token, login, wait_for


@pytest.fixture
def app(cfg, controller, tmp_path):
    from waitroom.web import create_app

    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "test-secret-key-0123456789"})
    app.extensions["waitroom_users"].add("anna", PASSWORD, "staff")
    live = app.extensions["waitroom"]
    wait_for(lambda: live.state() is not None)
    yield app
    live.close()


def events(chunks):
    """(event name, data) from an SSE byte stream, skipping keep-alives and the retry line."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            if b"event" in lines:
                yield lines[b"event"].decode(), json.loads(lines[b"data"])


@pytest.mark.timeout(60)
def test_ticket_stream_speaks_when_its_status_changes(app, node):
    disp = node("disp-1")
    first = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    mine = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    live = app.extensions["waitroom"]
    # on its queue page (before it, the issued event alone says "waiting" without the place)
    wait_for(lambda: live.ticket_status(mine["id"]).get("position") == 2)
    got: queue.Queue = queue.Queue()

    def reader() -> None:  # the stream in a thread of its own, as a server would run it
        r = app.test_client().get(f"/api/ticket/{mine['id']}/stream", buffered=False)
        for item in events(r.response):
            got.put(item)
            if item[1].get("state") == "called":
                break
        r.close()

    threading.Thread(target=reader, daemon=True).start()

    def nxt():
        return got.get(timeout=10)

    name, data = nxt()
    assert name == "state" and data["position"] == 2 and "Position 2" in data["html"]
    staff = app.test_client()
    assert login(staff, "anna").status_code == 302
    h = {"X-CSRFToken": csrf_token(staff)}
    res = staff.post("/api/counter/c1/call", json={"ticket": first["number"]}, headers=h).json
    assert res["ok"] and res["seq"] >= 1 and res["counter"]["serving"]["ticket"] == first["number"], res
    name, data = nxt()  # first is called: mine moves up
    assert data["position"] == 1 and data["state"] == "waiting"
    staff.post("/api/counter/c1/recall", json={}, headers=h)  # nothing changes for mine: no message
    staff.post("/api/counter/c1/served", json={}, headers=h)
    res = staff.post("/api/counter/c1/next", json={}, headers=h).json
    assert res["counter"]["serving"]["ticket"] == mine["number"]
    name, data = nxt()
    assert data["state"] == "called" and "Schalter 1" in data["html"] and data["counter"] == "c1"
    assert got.empty()  # the recall and served in between sent nothing to this ticket's stream


def test_a_stalled_client_is_dropped(app):
    live = app.extensions["waitroom"]
    sub = live.subscribe()
    for i in range(sub.maxsize):
        sub.put(f"event: state\ndata: {i}\n\n")
    assert not sub.closed
    sub.put("one too many")
    assert sub.closed and list(sub.items(keepalive=0.01)) == []
    sub.close()
    assert live.stream_count == 0


def test_streams_are_capped_per_worker(cfg, controller, tmp_path):
    from waitroom.web import create_app

    cfg = cfg.model_copy(update={"web": {"max_streams": 2}})
    app = create_app(cfg, data_dir=tmp_path, test_config={"SECRET_KEY": "test-secret-key-0123456789"})
    try:
        live = app.extensions["waitroom"]
        wait_for(lambda: live.state() is not None)
        subs = [live.subscribe(), live.subscribe()]  # two streams held open
        r = app.test_client().get("/api/stream")
        assert r.status_code == 503 and r.json["error"]["code"] == "busy"
        subs[0].close()
        r = app.test_client().get("/api/stream", buffered=False)
        assert r.status_code == 200 and r.mimetype == "text/event-stream"
        r.close()
        subs[1].close()
    finally:
        app.extensions["waitroom"].close()
