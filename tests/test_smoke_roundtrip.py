"""A dispenser pulls a ticket and a counter calls it, through a real mosquitto and the real controller."""

import time


def test_ticket_issue_and_call(controller, node):
    disp, counter = node("disp-1"), node("counter-1")
    ticket = disp.request("ticket.issue", {"service": "pass"})["ticket"]
    assert ticket["number"] == "A001"
    call = counter.request("counter.call_next", {"counter": "c1"})["call"]
    assert call["ticket"] == "A001"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (counter.state and counter.state["calls"]):
        time.sleep(0.02)
    assert counter.state["calls"][0]["ticket"] == "A001"
    assert counter.state["counters"][0]["serving"]["ticket"] == "A001"
