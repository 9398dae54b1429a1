"""The rule engine inside the real controller: explained calls and the automatic intake stop as events."""

from __future__ import annotations

import itertools

from tests.test_steering import T0, office
from waitroom import contract
from waitroom.contract import EventKind
from waitroom.controller import Office
from waitroom.store import EventStore

_rid = itertools.count(1)


def run(o: Office, node: str, op: str, **args: object) -> dict:
    out = o.handle(node, contract.encode({"id": f"r{next(_rid)}", "op": op, "args": args}))
    assert out.reply["ok"], out.reply
    return out.reply["result"]


def test_controller_explains_calls_and_stops_intake_by_prediction():
    clock = [T0 + 7 * 3600 - 45 * 60]  # Monday 15:15 (T0 is 09:00), closing at 16:00
    o = Office(office(), EventStore(":memory:"), clock=lambda: clock[0])
    for _ in range(3):
        run(o, "disp-1", "ticket.issue", service="fuehrerschein")
    call = run(o, "counter-4", "counter.call_next", counter="c4")["call"]
    assert call["reason"].startswith("am längsten wartend")
    assert o.counter_detail("c4")["serving"]["reason"] == call["reason"]
    for _ in range(3):  # c4 and c5 (closed) serve Führerschein: 12 minutes each, one counter
        run(o, "disp-1", "ticket.issue", service="fuehrerschein")
    out = o.tick()
    stops = [e for e in out.events if e["type"] == "intake_set"]
    assert [(e["service"], e["open"], e["manual"]) for e in stops] == [("fuehrerschein", False, False)]
    msgs = o.event_messages(out.events)
    assert (EventKind.INTAKE, "fuehrerschein", False) in [(k, p["service"], p["open"]) for k, p in msgs]
    refused = o.handle(
        "disp-1", contract.encode({"id": "late", "op": "ticket.issue", "args": {"service": "fuehrerschein"}})
    )
    assert refused.reply["error"]["code"] == "intake_stopped"
    # the manual override reopens it, and the automatic stop leaves a manual setting alone
    run(o, "web", "intake.set", service="fuehrerschein", open=True, reason="Sondertermin")
    assert not [e for e in o.tick().events if e["type"] == "intake_set"]
    run(o, "disp-1", "ticket.issue", service="fuehrerschein")
