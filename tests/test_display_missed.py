"""Calls a display missed while it was offline: a real controller, a real mosquitto and a real display node
whose link is cut (its network loop stopped and its socket shut, so the broker sends its last will) while
counters call. The controller's clock is an hour behind the display's, and is moved on between calls to make
a call old: the display must judge a call's age on the controller's clock."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import wave
from array import array
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from displays import settings as ds
from displays.announce import Announcer
from displays.board import CallView
from displays.missed import MissedCalls
from displays.node import DisplayNode
from tests.conftest import require_tool
from waitroom.contract import Topics
from waitroom.errors import ConfigError
from waitroom.node import NodeRuntime

WINDOW_S = 30.0


def wait_for(pred, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def short_gong(tmp_path: Path) -> Path:
    """A 0.15 s tone, not the 1.7 s gong: the announcements play in real time into SDL's dummy output."""
    path = tmp_path / "gong.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        tone = (round(8000 * math.sin(2 * math.pi * 880 * i / 22050)) for i in range(3300))
        w.writeframes(array("h", tone).tobytes())
    return path


class ControllerClock:
    """The controller's clock: an hour behind the display's, moved on by ``advance``."""

    def __init__(self) -> None:
        self.shift = -3600.0

    def __call__(self) -> float:
        return time.time() + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += seconds


@pytest.fixture
def office(cfg, tmp_path):
    from waitroom.service import ControllerService

    clock = ControllerClock()
    svc = ControllerService(cfg, str(tmp_path / "events.db"), clock=clock)
    assert svc.start(wait=10)
    yield svc, clock
    svc.stop()


class Watcher:
    """A plain MQTT client that sees the display's status (its last will says offline)."""

    def __init__(self, cfg) -> None:
        self.topic = Topics(cfg.office.id).status("display-1")
        self.status: list[str] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, msg: self.status.append(json.loads(msg.payload)["status"])
        self.client.connect("127.0.0.1", cfg.broker.port)
        self.client.subscribe(self.topic, qos=1)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cut(rt: NodeRuntime, watcher: Watcher) -> None:
    """The display's connection drops (a Wi-Fi blip): its network loop stops and its socket is shut; back
    once the broker has noticed (it sends the display's last will), so what follows is missed."""
    seen = len(watcher.status)
    rt.link.client.loop_stop()
    rt.link.client.socket().shutdown(socket.SHUT_RDWR)
    wait_for(lambda: "offline" in watcher.status[seen:], what="the broker dropping the display")


def restore(rt: NodeRuntime, watcher: Watcher) -> None:
    """The network loop runs again: it finds the dead socket and reconnects (its birth says online)."""
    seen = len(watcher.status)
    rt.link.client.loop_start()
    wait_for(lambda: "online" in watcher.status[seen:], what="the display back on the broker")


def display(cfg, tmp_path: Path, data_dir: Path | None = None, **options) -> DisplayNode:
    """A display node; it keeps the calls it heard in ``data_dir`` (default: the test's own)."""
    settings = ds.parse(
        {
            "speech": False,  # gong only: the same queue, shorter
            "call_gap_s": 0,
            "screenshot_every_s": 0,
            "announce_missed_s": WINDOW_S,
            **options,
        }
    )
    rt = NodeRuntime(cfg, "display-1")
    assert rt.start(wait=10)
    announcer = Announcer(settings, gong=short_gong(tmp_path))
    return DisplayNode(
        rt, cfg, cfg.node("display-1"), settings=settings, announcer=announcer, data_dir=data_dir or tmp_path
    )


def gongs(dn: DisplayNode) -> list[str]:
    return [p.ticket for p in dn.announcer.played if p.kind == "gong"]


def call_next(rt: NodeRuntime, counter: str) -> str:
    """Call the next ticket; return once the controller has published the state with the call (before the
    test moves the controller's clock on)."""
    ticket = rt.request("counter.call_next", {"counter": counter}, timeout=5)["call"]["ticket"]
    wait_for(lambda: newest_call(rt) == ticket, what=f"the state with {ticket}")
    return ticket


def newest_call(rt: NodeRuntime) -> str | None:
    calls = (rt.state or {}).get("calls") or [{}]
    return calls[0].get("ticket")


# ------------------------------------------------------------------------------------------ the rules
def view(ticket: str, counter: str, ts: float, recall: bool = False) -> CallView:
    return CallView(ticket, counter, {"de": counter}, {"de": counter}, ts, recall=recall)


def test_recent_served_calls_are_announced_once_on_the_controllers_clock():
    """The display's clock is 500 s ahead of the controller's; a call's age is taken on the controller's."""
    local = [1000.0]
    missed = MissedCalls(60, clock=lambda: local[0])
    missed.observe(4000.0, fresh=True)  # a live event: the controller's time is 3000 s ahead of local[0]
    local[0] += 100  # the controller's time is now 4100
    calls = [
        view("A002", "c1", 4090.0),  # recent, served
        view("A001", "c1", 4085.0),  # recent, but c1 has called A002 since
        view("B001", "c2", 4030.0),  # served, 70 s old
        view("C001", "c3", 4050.0),  # served, 50 s old
        view("C001", "c3", 4095.0, recall=True),  # its recall
    ]
    serving = {"c1": "A002", "c2": "B001", "c3": "C001"}
    late = missed.decide(calls, serving)
    assert [(c.ticket, c.recall) for c in late] == [("C001", False), ("A002", False), ("C001", True)]
    assert missed.decide(calls, serving) == []  # never twice
    assert (missed.announced, missed.stale) == (3, 2)

    missed.heard(("D001", "c4", 4099.0))  # heard live: never announced from a snapshot
    assert missed.decide([view("D001", "c4", 4099.0)], {"c4": "D001"}) == []


def test_a_call_is_held_until_the_controllers_time_is_known_and_the_window_can_be_off():
    """Just after a start the display has only the retained state, whose ts may be hours old."""
    local = [50.0]
    missed = MissedCalls(60, clock=lambda: local[0])
    missed.observe(7000.0, fresh=False)  # the retained state, published after the call below
    calls = [view("A001", "c1", 6990.0), view("B001", "c2", 6900.0)]
    serving = {"c1": "A001", "c2": "B001"}
    assert missed.decide(calls, serving) == []  # A001 held; B001 is 100 s old even by the retained ts
    assert missed.stale == 1
    missed.observe(7005.0, fresh=True)  # a live event: the call is 15 s old
    assert [c.ticket for c in missed.decide(calls, serving)] == ["A001"]

    late = MissedCalls(60, clock=lambda: local[0])
    late.observe(7000.0, fresh=False)
    assert late.decide(calls, serving) == []
    late.observe(7200.0, fresh=True)  # the retained state was 200 s old
    assert late.decide(calls, serving) == [] and late.stale == 2

    off = MissedCalls(0, clock=lambda: local[0])
    off.observe(6995.0, fresh=True)
    assert off.decide(calls, serving) == [] and off.stale == 2


def test_the_window_is_validated():
    assert ds.parse({}).announce_missed_s == 60
    assert ds.parse({"announce_missed_s": 0}).announce_missed_s == 0
    for bad in (-1, 601, "soon"):
        with pytest.raises(ConfigError, match=r"display\.announce_missed_s"):
            ds.parse({"announce_missed_s": bad})


# ------------------------------------------------------------------------------------------ the node
def test_calls_missed_during_a_blip_are_announced_once_and_old_ones_never(office, cfg, node, tmp_path):
    require_tool("espeak-ng", "espeak-ng")
    _, clock = office
    disp, c1, c4 = node("disp-1"), node("counter-1"), node("counter-4")
    for service in ("pass", "pass", "pass", "pass", "fuehrerschein", "fuehrerschein"):
        disp.request("ticket.issue", {"service": service, "lang": "tr"})  # announced in Turkish too
    watcher = Watcher(cfg)
    dn = display(cfg, tmp_path, speech=True, speech_rate=260)
    dn.start()
    try:
        wait_for(lambda: dn.board.screen().has_state and not dn.board.screen().offline, what="state")
        heard = call_next(c4, "c4")  # live: announced at once
        wait_for(lambda: gongs(dn) == [heard], what="the live call announced")

        cut(dn.runtime, watcher)
        old = call_next(c4, "c4")  # missed, and 40 s old when the display is back
        clock.advance(WINDOW_S + 10)
        superseded = call_next(c1, "c1")  # missed; c1 calls the next ticket before the display is back
        recent = call_next(c1, "c1")  # missed and recent
        restore(dn.runtime, watcher)
        wait_for(lambda: dn.announcer.pending or len(gongs(dn)) > 1, what="the missed call queued")
        # the connection drops again while the missed call is being announced
        cut(dn.runtime, watcher)
        restore(dn.runtime, watcher)
        c1.request("counter.recall", {"counter": "c1"}, timeout=5)  # a later live call
        wait_for(lambda: gongs(dn)[-1:] == [recent] and len(gongs(dn)) == 3, what="the recall announced")
        assert dn.announcer.wait_idle(timeout=10)

        shown = [c.ticket for c in dn.board.screen().calls]
        assert shown[:3] == [recent, superseded, old]  # all shown; the recall and its call are one row
        assert gongs(dn) == [heard, recent, recent]  # the missed call once, the old and superseded never
        spoken = [(p.kind, p.lang) for p in dn.announcer.played if p.ticket == recent][:3]
        assert spoken == [("gong", ""), ("speech", "de"), ("speech", "tr")]  # the state carries its language
        assert dn.announcer.skipped == 0
        assert dn.runtime.health["announce_missed"] == 1
    finally:
        dn.stop()
        dn.runtime.stop()
        watcher.stop()


def test_a_display_started_after_old_calls_announces_none_of_them(office, cfg, node, tmp_path):
    """A display rebooting: the retained state was published right after the last calls, so its ts says
    they are recent; they are 40 s old on the controller's clock (the window is 30 s)."""
    _, clock = office
    disp, c1, c4 = node("disp-1"), node("counter-1"), node("counter-4")
    for service in ("pass", "pass", "fuehrerschein"):
        disp.request("ticket.issue", {"service": service})
    first = call_next(c1, "c1")
    second = call_next(c4, "c4")
    clock.advance(WINDOW_S + 10)
    dn = display(cfg, tmp_path)
    dn.start()
    try:
        wait_for(lambda: {c.ticket for c in dn.board.screen().calls} == {first, second}, what="state")
        disp.request("ticket.issue", {"service": "pass"})  # live: the display learns the controller's time
        third = call_next(c1, "c1")
        wait_for(lambda: gongs(dn) == [third], what="the live call announced")
        assert dn.announcer.wait_idle(timeout=10)
        assert gongs(dn) == [third]
        assert "announce_missed" not in dn.runtime.health
    finally:
        dn.stop()
        dn.runtime.stop()


def test_a_display_started_just_after_a_call_announces_it(office, cfg, node, tmp_path):
    """A display restarting a few seconds after a call: announced once the display knows the controller's
    time (the next live message), and not again."""
    disp, c1 = node("disp-1"), node("counter-1")
    for _ in range(2):
        disp.request("ticket.issue", {"service": "melde"})
    called = call_next(c1, "c1")
    dn = display(cfg, tmp_path)
    dn.start()
    try:
        wait_for(lambda: [c.ticket for c in dn.board.screen().calls] == [called], what="state")
        disp.request("ticket.issue", {"service": "pass"})  # a live event and a live state
        wait_for(lambda: gongs(dn) == [called], what="the call announced")
        done = threading.Event()
        dn.runtime.on_state(lambda snap: done.set())  # called at once with the current state
        done.clear()
        disp.request("ticket.issue", {"service": "pass"})
        assert done.wait(10)
        assert dn.announcer.wait_idle(timeout=10)
        assert gongs(dn) == [called]
    finally:
        dn.stop()
        dn.runtime.stop()


def a_live_state(dn: DisplayNode, disp: NodeRuntime) -> None:
    """A ticket is issued; return once the display has taken the live state it makes (after the retained one:
    the display knows the controller's time and decides the calls it holds)."""
    done = threading.Event()
    dn.runtime.on_state(
        lambda snap: done.set()
    )  # called at once with the current state, then after the node's
    done.clear()
    disp.request("ticket.issue", {"service": "pass"})
    assert done.wait(10)


def test_a_restarted_display_does_not_announce_again_what_it_announced(office, cfg, node, tmp_path):
    """A display node restarts (a crash, systemd, a power cut of the Pi) seconds after it announced a call:
    the new process shows the call and does not announce it again, and a call it missed while it was down is
    announced late. A display on a fresh data directory (a new SD card) announces both."""
    disp, c1, c4 = node("disp-1"), node("counter-1"), node("counter-4")
    for service in ("melde", "melde", "fuehrerschein"):
        disp.request("ticket.issue", {"service": service})
    data = tmp_path / "var"
    first = display(cfg, tmp_path, data_dir=data)
    first.start()
    try:
        wait_for(lambda: first.board.screen().has_state, what="state")
        heard = call_next(c1, "c1")
        wait_for(lambda: gongs(first) == [heard], what="the live call announced")
        assert first.announcer.wait_idle(timeout=10)
    finally:
        first.stop()
        first.runtime.stop()
    down = call_next(c4, "c4")  # called while the display is down

    restarted = display(cfg, tmp_path, data_dir=data)
    restarted.start()
    try:
        wait_for(lambda: {c.ticket for c in restarted.board.screen().calls} == {heard, down}, what="state")
        a_live_state(restarted, disp)
        wait_for(lambda: down in gongs(restarted), what="the missed call announced")
        a_live_state(restarted, disp)
        assert restarted.announcer.wait_idle(timeout=10)
        assert gongs(restarted) == [down]  # the call announced before the restart: shown, not announced
        assert restarted.runtime.health["announce_missed"] == 1
    finally:
        restarted.stop()
        restarted.runtime.stop()

    new_card = display(cfg, tmp_path, data_dir=tmp_path / "new-card")
    new_card.start()
    try:
        wait_for(lambda: {c.ticket for c in new_card.board.screen().calls} == {heard, down}, what="state")
        a_live_state(new_card, disp)
        wait_for(lambda: gongs(new_card) == [heard, down], what="both calls announced late")
        assert new_card.announcer.wait_idle(timeout=10)
        assert gongs(new_card) == [heard, down]
    finally:
        new_card.stop()
        new_card.runtime.stop()


def test_a_call_still_waiting_for_its_gong_when_the_power_goes_is_announced_after_the_restart(
    office, cfg, node, tmp_path
):
    """Two counters call at once; the second call waits for the first one's gong and the gap after it. The
    power of the Pi goes before that second gong: the restarted display announces it, and not the first one,
    which was heard."""
    disp, c1, c4 = node("disp-1"), node("counter-1"), node("counter-4")
    for service in ("melde", "fuehrerschein"):
        disp.request("ticket.issue", {"service": service})
    data = tmp_path / "var"
    first = display(cfg, tmp_path, data_dir=data, call_gap_s=10)  # the most it can be
    first.start()
    try:
        wait_for(lambda: first.board.screen().has_state, what="state")
        heard = call_next(c1, "c1")
        waiting = call_next(c4, "c4")
        wait_for(lambda: gongs(first) == [heard], what="the first call announced")
        shown = lambda: {c.ticket for c in first.board.screen().calls}  # noqa: E731
        wait_for(lambda: waiting in shown(), what="the second call shown")
        # the second call waits for the gap (once the first one's speech is through: on a loaded machine its
        # synthesis may still be under way here, and it counted as a second pending announcement)
        wait_for(lambda: first.announcer.pending == 1, what="only the second call waiting")
        assert gongs(first) == [heard]
        # the power goes: what the process handed to the file is on the card, and it writes nothing more (its
        # second gong, due 10 s after the first, is no longer heard, however slow this machine is)
        assert first.heard_file is not None
        first.heard_file.close()
        first.runtime.stop()

        restarted = display(cfg, tmp_path, data_dir=data)
        restarted.start()
        try:
            calls = lambda: {c.ticket for c in restarted.board.screen().calls}  # noqa: E731
            wait_for(lambda: calls() == {heard, waiting}, what="state")
            a_live_state(restarted, disp)
            wait_for(lambda: waiting in gongs(restarted), what="the call never announced, announced now")
            a_live_state(restarted, disp)
            assert restarted.announcer.wait_idle(timeout=10)
            assert gongs(restarted) == [waiting]
        finally:
            restarted.stop()
            restarted.runtime.stop()
    finally:
        first.stop()  # the threads of the process that lost its power


def test_a_display_that_cannot_save_its_heard_calls_says_so_in_its_health(office, cfg, node, tmp_path):
    """A full or read-only card: the display announces as before and its health carries the fault (the admin
    page says it as a sentence), until the file can be written again."""
    disp, c1 = node("disp-1"), node("counter-1")
    disp.request("ticket.issue", {"service": "melde"})
    data = tmp_path / "var"
    data.write_text("a file where the data folder should be")
    dn = display(cfg, tmp_path, data_dir=data)
    dn.start()
    try:
        wait_for(lambda: dn.board.screen().has_state, what="state")
        ticket = call_next(c1, "c1")
        wait_for(lambda: gongs(dn) == [ticket], what="the call announced all the same")
        health = dn.runtime.health
        wait_for(lambda: health.get("heard_fault") == "heard_unwritable", what="the fault in its health")
        assert "display-display-1-heard.json" in dn.runtime.health["heard_error"]
        data.unlink()  # the card is writable again
        disp.request("ticket.issue", {"service": "melde"})
        call_next(c1, "c1")
        wait_for(lambda: dn.runtime.health.get("heard_fault", "") is None, what="the fault gone")
        assert dn.runtime.health["heard_error"] is None
    finally:
        dn.stop()
        dn.runtime.stop()
