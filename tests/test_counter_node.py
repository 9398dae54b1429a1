"""The counter node on gpiozero's mock pins, against a real mosquitto and the real controller: presses,
long presses, and the status/assistance LED patterns asserted on the pins."""

from __future__ import annotations

import time

import pytest

from tests.web_helpers import wait_for

PRESS_GAP = 0.06  # longer than the 30 ms debounce


def press(button, hold: float = 0.0) -> None:
    pin = button.pin
    pin.drive_low()
    time.sleep(hold or PRESS_GAP)
    pin.drive_high()
    time.sleep(PRESS_GAP)


def toggles(pin, seconds: float) -> set[bool]:
    """The LED pin values seen over ``seconds``."""
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(bool(pin.state))
        time.sleep(0.01)
    return seen


@pytest.fixture
def counter_node(cfg, controller, node, mock_pins):
    from edge import counter

    made = []

    def make(node_id="counter-1", factory=None, **options):
        rt = node(node_id)
        base = cfg.node(node_id)
        n = base.model_copy(update={"options": {"long_press_s": 0.3, **options}})
        c = counter.create(rt, cfg, n, pins=factory or mock_pins, simulate=True)
        c.start()
        made.append(c)
        wait_for(lambda: c.mode in ("idle", "serving") or "wait" in options)
        return c

    yield make
    for c in made:
        c.stop()


def led(c, colour):
    return c.lamps[colour].pin


def test_next_calls_and_green_is_steady(counter_node, node, controller):
    c = counter_node()
    assert toggles(led(c, "green"), 2.1) == {True, False}  # heartbeat
    node("disp-1").request("ticket.issue", {"service": "pass"})
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "serving")
    assert controller.office.state.counters["c1"].current is not None
    assert toggles(led(c, "green"), 0.3) == {True} and toggles(led(c, "red"), 0.1) == {False}
    press(c.buttons["served"])
    wait_for(lambda: c.mode == "idle")
    assert controller.office.state.counters["c1"].served == 1


def test_long_press_next_recalls(counter_node, node, controller):
    c = counter_node()
    node("disp-1").request("ticket.issue", {"service": "pass"})
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "serving")
    press(c.buttons["next"], hold=0.45)
    wait_for(lambda: controller.office.state.calls and controller.office.state.calls[0].recall)
    assert controller.office.state.tickets[controller.office.state.counters["c1"].current].recalls == 1


def test_nobody_waiting_flashes_amber(counter_node):
    c = counter_node()
    press(c.buttons["next"])
    wait_for(lambda: c.last_error == "nobody_waiting")
    # both red and green blink together (amber) during the feedback, then the heartbeat returns
    assert toggles(led(c, "red"), 0.5) == {True, False}
    time.sleep(1.0)
    assert c.mode == "idle" and toggles(led(c, "red"), 0.3) == {False}


def test_pause_toggles_and_long_press_closes(counter_node, controller):
    c = counter_node()
    press(c.buttons["pause"])
    wait_for(lambda: c.mode == "paused")
    assert controller.office.state.counters["c1"].state == "paused"
    assert toggles(led(c, "red"), 0.2) == {True} and toggles(led(c, "green"), 0.2) == {True}  # yellow
    press(c.buttons["pause"])
    wait_for(lambda: c.mode == "idle")
    press(c.buttons["pause"], hold=0.45)
    wait_for(lambda: c.mode == "closed")
    assert toggles(led(c, "green"), 0.2) == {False} and toggles(led(c, "red"), 0.2) == {False}


def test_assistance_signal_and_acknowledge(counter_node, node, controller):
    c = counter_node(assist_from_level=0)
    from gpiozero.pins.mock import MockFactory

    other = counter_node("counter-2", factory=MockFactory())  # signals from escalation level 1 on (default)
    aid = node("sb-1").request("assist.request", {"terminal": "sb-1"})["assist"]["id"]
    wait_for(lambda: c.assist_signal == "pending")
    assert toggles(led(c, "blue"), 1.2) == {True, False}  # blinking
    assert c.buzzer.pin.states and any(s.state for s in c.buzzer.pin.states)  # beeped
    assert other.assist_signal == "off" and toggles(led(other, "blue"), 0.3) == {False}
    press(c.buttons["recall"], hold=0.45)  # long press on recall acknowledges
    wait_for(lambda: controller.office.state.assists[aid].state == "acknowledged")
    assert controller.office.state.assists[aid].counter == "c1"
    wait_for(lambda: c.assist_signal == "mine")
    assert toggles(led(c, "blue"), 0.3) == {True}
    node("web").request("assist.resolve", {"request": aid})
    wait_for(lambda: c.assist_signal == "off")
    assert toggles(led(c, "blue"), 0.3) == {False}


def test_escalation_reaches_all_counters(cfg, tmp_path, node, mock_pins, broker):
    """With a 1 s escalation, a counter signalling from level 1 on starts blinking after about a second."""
    from edge import counter
    from tests.conftest import office_config
    from waitroom.service import ControllerService

    fast = office_config(broker.port, office_id=cfg.office.id + "e")
    fast = fast.model_copy(
        update={"controller": fast.controller.model_copy(update={"assist_escalate_s": [1, 60]})}
    )
    svc = ControllerService(fast, str(tmp_path / "esc.db"))
    assert svc.start(wait=10)
    from waitroom.node import NodeRuntime

    rts = [NodeRuntime(fast, "counter-2"), NodeRuntime(fast, "sb-1")]
    try:
        for rt in rts:
            assert rt.start(wait=10)
        c = counter.create(rts[0], fast, fast.node("counter-2"), pins=mock_pins)
        c.start()
        rts[1].request("assist.request", {"terminal": "sb-1"})
        wait_for(lambda: rts[0].state and rts[0].state["assistance"])
        assert c.assist_signal == "off"
        wait_for(lambda: c.assist_signal == "pending", timeout=5)
        assert rts[0].state["assistance"][0]["level"] == 1
        c.stop()
    finally:
        for rt in rts:
            rt.stop()
        svc.stop()


def test_controller_unreachable_is_refused_visibly(counter_node, node, controller):
    c = counter_node(request_timeout_s=0.3, retries=1)
    seen = []
    spy = node("web")
    spy.subscribe(spy.topics.cmd("counter-1"), lambda t, p: seen.append(p))
    controller.stop()
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "offline", timeout=3)
    assert toggles(led(c, "red"), 0.5) == {True, False} and toggles(led(c, "green"), 0.2) == {False}
    assert len(seen) == 2 and seen[0] == seen[1]  # retried with the same request id


def test_sim_topic_drives_the_mock_pin(counter_node, node, controller):
    c = counter_node()
    node("disp-1").request("ticket.issue", {"service": "pass"})
    node("web").link.publish(c.runtime.topics.sim("counter-1"), {"button": "next", "action": "press"}, "sim")
    wait_for(lambda: c.mode == "serving")
    assert c.buttons["next"].presses == 1


def test_bad_options_are_errors(cfg, node, mock_pins):
    from edge import counter

    n = cfg.node("counter-1").model_copy(update={"options": {"long_press_s": "long"}})
    with pytest.raises(ValueError, match=r"options\.long_press_s"):
        counter.create(node("counter-1"), cfg, n, pins=mock_pins)


def test_mini_revision_single_led(cfg, controller, node, mock_pins):
    from edge import counter

    n = cfg.node("counter-1").model_copy(update={"options": {"hardware": "mini", "long_press_s": 0.3}})
    c = counter.create(node("counter-1"), cfg, n, pins=mock_pins)
    c.start()
    try:
        assert set(c.buttons) == {"next"} and set(c.lamps) == {"green"}
        wait_for(lambda: c.mode == "idle")
        press(c.buttons["next"], hold=0.45)  # recall with nothing called: refused, flashes
        wait_for(lambda: c.last_error == "not_serving")
    finally:
        c.stop()


def test_presses_during_an_unanswered_next_are_not_sent_late(cfg, counter_node, node, controller, tmp_path):
    """Staff press "next" three times while the controller is gone for a moment: when it is back, one ticket
    is called, not three in a row (each of which would finish the one before as served, unseen)."""
    from waitroom.service import ControllerService

    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    c = counter_node(request_timeout_s=0.5, retries=3)
    controller.stop()
    for _ in range(3):
        press(c.buttons["next"])
    time.sleep(0.6)
    back = ControllerService(cfg, str(tmp_path / "events.db"))
    assert back.start(wait=10)
    try:
        wait_for(lambda: c.mode == "serving", timeout=8)
        time.sleep(2.5)  # anything still queued would have gone out by now
        with back.lock:
            waiting = [t.number for t in back.office.state.waiting("pass")]
            served = [t.number for t in back.office.state.tickets.values() if t.state == "served"]
        assert waiting == ["A002", "A003"] and served == []
    finally:
        back.stop()


def test_the_light_shows_the_controller_gone_without_a_press(cfg, counter_node, controller, tmp_path):
    """The broker keeps the office state retained, so only the controller's status (its last will) tells the
    counter that nobody is deciding: the light blinks red fast at once, not only after a press timed out."""
    from waitroom.service import ControllerService

    c = counter_node()
    assert c.mode == "idle" and c.controller_up is True
    controller.stop()
    wait_for(lambda: c.mode == "offline", timeout=5)
    assert toggles(led(c, "red"), 0.5) == {True, False} and toggles(led(c, "green"), 0.2) == {False}
    back = ControllerService(cfg, str(tmp_path / "events.db"))
    assert back.start(wait=10)
    try:
        wait_for(lambda: c.mode == "idle", timeout=8)
    finally:
        back.stop()


def test_served_for_a_ticket_another_workstation_finished_is_refused(
    counter_node, node, controller, monkeypatch
):
    """The staff page at the same counter finishes A001 and calls A002 while the counter node has not heard of
    it yet (the summary is coalesced; here it is held back): the clerk's "served" at the buttons was meant for
    A001 and must not mark A002 as served before its citizen has reached the counter. It is refused (red
    flashes), nothing changes, and the node now knows A002: the next "served" finishes it."""
    from waitroom import service

    c = counter_node()
    disp = node("disp-1")
    for _ in range(2):
        disp.request("ticket.issue", {"service": "pass"})
    monkeypatch.setattr(service, "STATE_MIN_S", 3600.0)  # no summary reaches the node from now on
    press(c.buttons["next"])
    state = controller.office.state
    wait_for(lambda: c.runtime.health.get("presses") == 1)  # its reply is in: the node knows A001 is called
    assert state.ticket("A001").state == "called"
    web = node("web")
    web.request("counter.served", {"counter": "c1"})
    assert web.request("counter.call_next", {"counter": "c1"})["call"]["ticket"] == "A002"
    press(c.buttons["served"])
    wait_for(lambda: c.runtime.health.get("presses") == 2)
    a002 = state.ticket("A002")
    assert a002.state == "called" and state.counters["c1"].current == a002.id
    assert c.last_error == "invalid_state" and toggles(led(c, "red"), 0.4) == {True, False}  # refused visibly
    press(c.buttons["served"])  # the refusal said what is called now
    wait_for(lambda: a002.state == "served")
    assert state.counters["c1"].served == 2 and c.last_error == ""


def test_next_pressed_twice_in_a_row_calls_one_ticket(counter_node, node, controller):
    """A clerk presses "next" twice in a row (the display takes a moment to show the call, or the button was
    hit twice): the second press came after the first one's answer and called the next ticket too, finishing
    the first call as served before its citizen had stood up. A "next" within next_guard_s of a call is now
    refused (red flashes); after it, "next" calls again."""
    c = counter_node(next_guard_s=5)
    disp = node("disp-1")
    for _ in range(3):
        disp.request("ticket.issue", {"service": "pass"})
    state = controller.office.state
    press(c.buttons["next"])
    wait_for(lambda: c.runtime.health.get("presses") == 1)  # its answer is in
    press(c.buttons["next"])
    wait_for(lambda: c.runtime.health.get("presses") == 2)  # answered, or refused at the node
    assert state.ticket("A001").state == "called" and state.ticket("A002").state == "waiting"
    assert c.last_error == "double_press" and toggles(led(c, "red"), 0.4) == {True, False}  # refused visibly
    press(c.buttons["served"])  # other buttons are not held back
    wait_for(lambda: state.ticket("A001").state == "served")


def test_a_long_recall_takes_only_a_request_signalled_here_else_it_recalls(counter_node, node, controller):
    """A counter signalling help from escalation level 1 on (the default) does not blink for a fresh request;
    a "recall" held a little long took that request anyway (unseen, and no recall). Now it is the recall."""
    c = counter_node()
    node("disp-1").request("ticket.issue", {"service": "pass"})
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "serving")
    aid = node("sb-1").request("assist.request", {"terminal": "sb-1"})["assist"]["id"]
    wait_for(lambda: any(a["id"] == aid for a in (c.runtime.state or {}).get("assistance", [])))
    assert c.assist_signal == "off"  # level 0: not signalled at this counter
    press(c.buttons["recall"], hold=0.45)
    wait_for(lambda: controller.office.state.calls and controller.office.state.calls[0].recall)
    assert controller.office.state.assists[aid].state == "pending"


A_GLYPH = (True, True, True, False, True, True, True)  # segments a..g of "A" (d off)


def multiplexed(c, digits: tuple[bool, ...], segments: tuple[bool, ...], within: float = 10.0) -> bool:
    """Whether the mock pins show ``segments`` (a..g) while exactly ``digits`` are switched on, sampled while
    gpiozero's thread multiplexes the characters."""
    d = c.display.device
    end = time.monotonic() + within
    while time.monotonic() < end:
        on = tuple(bool(x.pin.state) for x in d.plex)
        if on == digits and tuple(bool(s.pin.state) for s in list(d.char)[:7]) == segments:
            return True
        time.sleep(0.0005)
    return False


def test_number_display_shows_the_called_number_blinks_it_and_dashes_when_paused(
    counter_node, node, controller
):
    """The number display above the counter (pin map revision "display"): blank while idle; a call blinks
    the number, then shows it steady, multiplexed on the real segment and digit pins; a recall blinks it
    again; dashes while paused; the number stays while the controller is gone."""
    c = counter_node(hardware="display", display_blink_s=0.8)
    d = c.display
    assert d is not None and d.width == 4
    wait_for(lambda: c.mode == "idle")
    assert d.device.value == (" ",) * 4
    label = node("disp-1").request("ticket.issue", {"service": "pass"})["ticket"]["number"]
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "serving")
    seen = set()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        seen.add(d.device.value)
        time.sleep(0.02)
    assert tuple(label) in seen and (" ",) * 4 in seen  # blinking
    wait_for(lambda: not d.blinking)
    assert d.device.value == tuple(label) and d.text == label
    # the letter on the leftmost character: digit_1 switched on alone shows the segments of "A"
    assert multiplexed(c, (True, False, False, False), A_GLYPH)
    press(c.buttons["next"], hold=0.45)  # recall: blinks again
    wait_for(lambda: d.blinking)
    wait_for(lambda: not d.blinking)
    assert d.device.value == tuple(label)
    press(c.buttons["pause"])
    wait_for(lambda: c.mode == "paused")
    wait_for(lambda: d.device.value == ("-",) * 4)
    press(c.buttons["pause"])
    wait_for(lambda: c.mode == "idle")
    wait_for(lambda: d.device.value == (" ",) * 4)
    node("disp-1").request("ticket.issue", {"service": "pass"})
    press(c.buttons["next"])
    wait_for(lambda: c.mode == "serving" and not d.blinking and d.text.strip() != "")
    shown = d.text
    controller.stop()
    wait_for(lambda: c.mode == "offline")
    assert d.text == shown and d.device.value == tuple(shown)


def test_number_display_on_the_pin_factory_it_is_given():
    """As in a node process (`--pins mock`): no default pin factory is installed. gpiozero 2.0.1 builds the
    digit group of LEDMultiCharDisplay without the factory it is given; the adapter lends it this one."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from edge.hardware import CharDisplay

    old, Device.pin_factory = Device.pin_factory, None
    try:
        d = CharDisplay([4, 12, 16, 18, 19, 20, 21], [25, 8, 7, 11], factory=MockFactory())
        d.show("A12")
        assert d.device.value == (" ", "A", "1", "2")
        d.show("K-9")  # no K in a 7-segment font: a blank, not an error
        assert d.device.value == (" ", " ", "-", "9")
        d.close()
    finally:
        Device.pin_factory = old


def test_a_pin_that_cannot_be_used_is_a_pin_error_naming_the_part_and_the_pin(mock_pins):
    """A pin another device holds (on a Pi: another process, GPIO busy) or no pin library: PinError naming
    the part and its GPIO, which the node's start prints as one line, not a traceback from inside gpiozero."""
    from edge.hardware import Lamp, PinError, PressButton, pin_factory

    held = Lamp(17, factory=mock_pins, name="led")
    with pytest.raises(PinError, match=r"^button counter-3.next on GPIO 17 cannot be used: GPIOPinInUse: "):
        PressButton(17, factory=mock_pins, name="counter-3.next")
    with pytest.raises(PinError, match=r"^light counter-3.buzzer on GPIO 17 cannot be used: GPIOPinInUse"):
        Lamp(17, factory=mock_pins, name="counter-3.buzzer")
    held.close()
    PressButton(17, factory=mock_pins, name="counter-3.next").close()  # free again
    with pytest.raises(PinError, match="unknown pin factory 'pigpio'; use mock, lgpio, rpigpio or native"):
        pin_factory("pigpio")


@pytest.mark.parametrize(("name", "library"), [("rpigpio", "RPi"), ("lgpio", "lgpio")])
def test_a_pin_factory_needs_only_its_own_library(name, library):
    """``--pins rpigpio`` imported lgpio first (a Pi Zero's armv6l has no lgpio from the [pi] extra: its node
    could not start at all, with "No module named 'lgpio'"); a missing library now says what to install."""
    from importlib.util import find_spec

    from edge.hardware import PinError, pin_factory

    if find_spec(library) is not None:
        pytest.skip(f"{library} is installed here")
    with pytest.raises(PinError, match=rf"^pin factory {name}: No module named '{library}'; .*install"):
        pin_factory(name)
