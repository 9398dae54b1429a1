"""The assistance node on gpiozero's mock pins with a real mosquitto and controller: press = request (light
blinks), acknowledged = steady, resolved = off, long press cancels, unreachable controller = fast flicker."""

from __future__ import annotations

import pytest

from tests.test_counter_node import press, toggles
from tests.web_helpers import wait_for


@pytest.fixture
def assist_node(cfg, controller, node, mock_pins):
    from edge import assist

    made = []

    def make(**options):
        n = cfg.node("sb-1").model_copy(update={"options": {"long_press_s": 0.3, **options}})
        a = assist.create(node("sb-1"), cfg, n, pins=mock_pins, simulate=True)
        a.start()
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()


def test_press_blinks_ack_steady_resolve_off(assist_node, controller, node):
    a = assist_node()
    light = a.light.pin
    assert toggles(light, 0.2) == {False}
    press(a.button)
    wait_for(lambda: a.request_state == "pending")
    aid = next(iter(controller.office.state.assists))
    assert controller.office.state.assists[aid].state == "pending"
    assert toggles(light, 1.2) == {True, False}  # blinking while pending
    staff = node("counter-3")
    staff.request("assist.acknowledge", {"request": aid, "counter": "c3"})
    wait_for(lambda: a.request_state == "acknowledged")
    assert toggles(light, 0.6) == {True}  # steady: help is on the way
    staff.request("assist.resolve", {"request": aid, "counter": "c3"})
    wait_for(lambda: a.request_state == "none")
    assert toggles(light, 0.3) == {False}
    assert controller.office.state.assists[aid].state == "resolved"


def test_second_press_does_not_open_a_second_request(assist_node, controller):
    a = assist_node()
    press(a.button)
    wait_for(lambda: a.request_state == "pending")
    press(a.button)
    wait_for(lambda: a.button.presses == 2)
    assert len(controller.office.state.assists) == 1


def test_long_press_cancels(assist_node, controller):
    a = assist_node()
    press(a.button)
    wait_for(lambda: a.request_state == "pending")
    press(a.button, hold=0.45)
    wait_for(lambda: a.request_state == "none")
    assert next(iter(controller.office.state.assists.values())).state == "cancelled"
    assert toggles(a.light.pin, 0.3) == {False}


def test_unreachable_controller_flickers(assist_node, controller):
    a = assist_node(request_timeout_s=0.2, retries=1)
    controller.stop()
    press(a.button)
    wait_for(lambda: a._refused, timeout=3)
    assert toggles(a.light.pin, 0.5) == {True, False}


def test_sim_press_from_the_demo(assist_node, controller, node):
    a = assist_node()
    node("web").link.publish(a.runtime.topics.sim("sb-1"), {"button": "help", "action": "press"}, "sim")
    wait_for(lambda: a.request_state == "pending")


def test_the_light_stays_on_when_ten_older_requests_fill_the_summary(cfg, tmp_path, mock_pins):
    """The state lists the 10 oldest open requests (its size is bounded) and counts all of them. A terminal
    whose request came 11th read "not in the list" as "no request": its light went out while the citizen
    still waited for help, and came back only when an older one was done."""
    from edge import assist
    from waitroom.config import Node
    from waitroom.contract import SUMMARY_ASSISTS
    from waitroom.node import NodeRuntime
    from waitroom.service import ControllerService

    extra = [Node(id=f"sb-x{i}", role="assist") for i in range(SUMMARY_ASSISTS)]
    cfg = cfg.model_copy(update={"nodes": [*cfg.nodes, *extra]})
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    web, rt = NodeRuntime(cfg, "web"), NodeRuntime(cfg, "sb-1")
    assert web.start(wait=10) and rt.start(wait=10)
    n = cfg.node("sb-1").model_copy(update={"options": {"long_press_s": 0.3}})
    a = assist.create(rt, cfg, n, pins=mock_pins)
    a.start()
    try:
        for x in extra:  # ten terminals asked first
            web.request("assist.request", {"terminal": x.id})
        press(a.button)
        wait_for(lambda: rt.state and rt.state["assistance_open"] == SUMMARY_ASSISTS + 1)
        assert all(x["terminal"] != "sb-1" for x in rt.state["assistance"])  # not among the ten shown
        assert a.request_state == "pending" and toggles(a.light.pin, 1.2) == {True, False}  # blinks
        # staff answer it while it is still left out of the list: the light follows (from the events)
        aid = svc.office.state.open_assists["sb-1"]
        web.request("assist.acknowledge", {"request": aid, "counter": "c2"})
        wait_for(lambda: a.request_state == "acknowledged")
        assert toggles(a.light.pin, 0.3) == {True}
        web.request("assist.resolve", {"request": aid, "counter": "c2"})
        wait_for(lambda: a.request_state == "none")
        assert toggles(a.light.pin, 0.3) == {False}
        # with the list whole again (ten open), it is read from the state as before
        web.request("assist.resolve", {"request": "h1", "counter": "c1"})
        press(a.button)
        wait_for(lambda: any(x["terminal"] == "sb-1" for x in rt.state["assistance"]))
        assert rt.state["assistance_open"] == SUMMARY_ASSISTS and a.request_state == "pending"
    finally:
        a.stop()
        rt.stop()
        web.stop()
        svc.stop()


def test_a_press_while_the_controller_is_gone_flickers_at_once_and_is_sent_when_it_is_back(
    cfg, assist_node, controller, tmp_path
):
    """The controller is gone (its status says so): a citizen's press showed nothing until every retry had
    timed out (here 12 s), so the citizen pressed again and again. The light now flickers at once; the
    request is still sent, and taken when the controller is back within the retries."""
    from waitroom.service import ControllerService

    a = assist_node(request_timeout_s=2, retries=5)
    controller.stop()
    wait_for(lambda: getattr(a, "controller_up", False) is False)  # its status has arrived
    press(a.button)
    wait_for(lambda: a._refused, timeout=3)
    assert toggles(a.light.pin, 0.5) == {True, False}
    back = ControllerService(cfg, str(tmp_path / "events.db"))
    assert back.start(wait=10)
    try:
        wait_for(lambda: a.request_state == "pending", timeout=10)
        assert [x.terminal for x in back.office.state.assists.values()] == ["sb-1"]
    finally:
        back.stop()
