"""The call display: real pygame frames (SDL dummy driver) fed by a real controller through a real mosquitto.

Screenshots of each screen state go to test-artifacts/display-*.png and are checked by what they show: the
colour of the regions from displays.layout (highlighted newest call, list rows, offline sign).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pygame
import pytest

from displays import settings as ds
from displays.board import Board
from displays.node import DisplayNode
from displays.render import Renderer
from waitroom.errors import ConfigError
from waitroom.view import with_static

pygame.font.init()


# ------------------------------------------------------------------------------------------------ helpers
def wait_for(pred, timeout: float = 8.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def share(
    surf: pygame.Surface, rect: tuple[int, int, int, int], colour: tuple[int, int, int], tol: int = 12
) -> float:
    """Fraction of the pixels in ``rect`` that have ``colour`` (within a tolerance: anti-aliasing)."""
    sub = surf.subsurface(pygame.Rect(rect))
    mask = pygame.mask.from_threshold(sub, (*colour, 255), (tol, tol, tol, 255))
    return mask.count() / float(sub.get_width() * sub.get_height())


def save(surf: pygame.Surface, artifacts: Path, name: str) -> Path:
    path = artifacts / f"display-{name}.png"
    pygame.image.save(surf, str(path))
    assert path.stat().st_size > 10_000  # a real picture, not an empty file
    return path


def office_state(controller) -> dict:
    with controller.lock:
        return with_static(controller.office.snapshot(), controller.cfg)


def make_node(cfg, runtime, **display):
    settings = ds.parse({"quiet": True, "screenshot_every_s": 0, **display})
    return DisplayNode(runtime, cfg, cfg.node("display-1"), settings=settings)


@pytest.fixture
def staff(controller, node):
    """A dispenser and two counter nodes of the running office."""
    return node("disp-1"), node("counter-1"), node("counter-4")


# ------------------------------------------------------------------------------------------------ settings
def test_settings_defaults_and_node_override(cfg):
    s = ds.for_node(cfg, cfg.node("display-1"))
    assert s.resolution == (1920, 1080) and not s.portrait and s.theme == "contrast"
    node = cfg.node("display-1").model_copy(update={"options": {"resolution": [1080, 1920], "volume": 0.3}})
    s2 = ds.for_node(cfg.model_copy(update={"display": {"blink_s": 4}}), node)
    assert s2.portrait and s2.volume == 0.3 and s2.blink_s == 4


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError) as exc:
        ds.parse({"blink_s": -1, "colour": "red", "resolution": [10, 10], "colors": {"acent": [0, 0, 0]}})
    text = str(exc.value)
    for key in ("display.blink_s", "display.colour: unknown key", "display.resolution", "display.colors"):
        assert key in text, text


def test_missing_font_file_is_a_clear_error():
    with pytest.raises(Exception, match=r"display\.fonts\.bold: font file /nonexistent.ttf not found"):
        Renderer(ds.parse({"fonts": {"bold": "/nonexistent.ttf"}}))


# ------------------------------------------------------------------------------------------------ frames
def test_screens_idle_call_many_offline(controller, staff, node, cfg, artifacts):
    disp, c1, _ = staff
    s = ds.parse({"ticker": {"de": "Bitte Ausweis bereithalten", "en": "Please have your ID ready"}})
    theme, r = s.colours, Renderer(s, tz=cfg.office.tz)
    board = Board(recent=s.recent_calls, blink_s=s.blink_s)
    board.set_link(True)
    rects = r.rects

    # idle: the office state without calls; the newest-call panel is not highlighted and invites to wait
    board.apply_state(office_state(controller))
    assert r.draw(board.screen(), highlight=True, now=time.time(), mono=0)
    save(r.frame, artifacts, "idle")
    assert share(r.frame, rects["hero"], theme.highlight) < 0.01
    assert share(r.frame, rects["hero"], theme.panel) > 0.7
    assert share(r.frame, rects["hero"], theme.text) > 0.005  # the "please wait" text
    assert share(r.frame, rects["header"], theme.accent) > 0.6
    assert not board.screen().offline

    # a new call: the call event makes it the highlighted newest call
    disp.request("ticket.issue", {"service": "pass"})
    events = []
    disp.on_event(lambda kind, e: events.append(e) if kind == "call" else None)
    c1.request("counter.call_next", {"counter": "c1"})
    wait_for(lambda: events, what="the call event")
    assert board.apply_call(events[0]).ticket == "A001"
    assert board.apply_call(events[0]) is None  # a QoS 1 duplicate is shown and announced once
    assert board.blinking()
    r.draw(board.screen(), highlight=True, now=time.time(), mono=0)
    save(r.frame, artifacts, "call")
    on = share(r.frame, rects["hero"], theme.highlight)
    ink = share(r.frame, rects["hero"], theme.highlight_text)
    assert on > 0.5 and 0.05 < ink < 0.5, (on, ink)
    # the blink's other phase: same content on the normal panel
    r.draw(board.screen(), highlight=False, now=time.time(), mono=0)
    assert share(r.frame, rects["hero"], theme.highlight) < 0.2
    assert share(r.frame, rects["hero"], theme.accent) > 0.03  # the number in the accent colour

    # many calls: eight tickets; the newest large, the six before it listed, one row each
    for _ in range(8):
        disp.request("ticket.issue", {"service": "melde"})
    for _ in range(8):
        c1.request("counter.call_next", {"counter": "c1"})
    wait_for(lambda: len(events) == 9, what="nine call events")
    board.apply_state(office_state(controller))
    screen = board.screen()
    assert [c.ticket for c in screen.calls] == [f"B{n:03d}" for n in range(8, 1, -1)]
    r.draw(screen, highlight=True, now=time.time(), mono=0)
    save(r.frame, artifacts, "many")
    x, y, w, h = rects["recent"]
    rows = [share(r.frame, (x, y + h * (i + 1.6) // 7.6, w // 2, h // 10), theme.accent) for i in range(6)]
    assert all(v > 0.02 for v in rows), rows

    # offline: the sign covers the header, the calls stay
    board.set_link(False)
    r.draw(board.screen(), highlight=True, now=time.time(), mono=0)
    save(r.frame, artifacts, "offline")
    assert share(r.frame, rects["offline"], theme.offline) > 0.5
    assert share(r.frame, rects["hero"], theme.highlight) > 0.4  # B008 is still on screen
    assert board.screen().offline_reason == "broker"


def test_portrait_and_small_layouts(artifacts):
    snap = {
        "name": "Bürgerbüro Mitte",
        "day": "2026-01-05",
        "seq": 3,
        "counters": [
            {"id": "c4", "name": {"de": "Schalter 4", "en": "Counter 4"}, "zone": "og", "services": ["pass"]}
        ],
        "services": [{"id": "pass", "prefix": "A", "name": {"de": "Reisepass"}, "waiting": 2, "eta_min": 9}],
        "calls": [{"ticket": "A004", "counter": "c4", "ts": 5.0}],
    }
    for name, res in (("portrait", (1080, 1920)), ("720p", (1280, 720))):
        s = ds.parse({"resolution": list(res)})
        r = Renderer(s)
        board = Board()
        board.set_link(True)
        board.apply_state(snap)
        r.draw(board.screen(), highlight=True, now=0, mono=0)
        assert r.frame.get_size() == res
        save(r.frame, artifacts, name)
        _hx, hy, hw, hh = r.rects["hero"]
        if name == "portrait":
            assert hw > 0.9 * res[0] and hy + hh < 0.45 * res[1]  # full width, upper part
        assert share(r.frame, r.rects["hero"], s.colours.highlight) > 0.5


def test_text_is_rendered_once_per_change(controller, cfg):
    s = ds.parse({})
    r, board = Renderer(s, tz=cfg.office.tz), Board()
    board.set_link(True)
    board.apply_state(office_state(controller))
    now = time.time() // 60 * 60  # start of a minute: the clock does not change below
    assert r.draw(board.screen(), highlight=True, now=now, mono=0)
    for i in range(50):  # idle frames: nothing changed, nothing drawn
        assert not r.draw(board.screen(), highlight=True, now=now + i * 0.1, mono=i * 0.1)
    assert r.static_builds == 1
    assert r.draw(board.screen(), highlight=True, now=now + 61, mono=61)  # next minute: only the clock
    assert r.static_builds == 1


def snapshot_with_calls(n: int) -> dict:
    """An office state with ``n`` calls, the newest first (no controller needed)."""
    counters = [
        {
            "id": f"c{i}",
            "name": {"de": f"Schalter {i}", "en": f"Counter {i}"},
            "zone": "eg",
            "services": ["pass"],
        }
        for i in range(1, 9)
    ]
    calls = [
        {"ticket": f"{'AB'[i % 2]}{i + 1:03d}", "counter": f"c{i % 8 + 1}", "ts": 1000.0 + i}
        for i in range(n)
    ]
    return {
        "name": "Bürgerbüro Mitte",
        "day": "2026-01-05",
        "seq": n + 1,
        "counters": counters,
        "services": [{"id": "pass", "prefix": "A", "name": {"de": "Reisepass"}, "waiting": 2, "eta_min": 9}],
        "calls": calls[::-1][:10],
    }


def test_a_frame_drawn_over_the_last_is_the_frame_a_new_renderer_draws():
    """The state is drawn into the frame itself (no full-screen layer besides it): after calls, blinking,
    the ticker and the offline sign coming and going, the frame is, pixel for pixel, what a new renderer
    draws."""
    s = ds.parse({"ticker": {"de": "Bitte halten Sie Ihren Ausweis und alle Unterlagen bereit. " * 3}})
    r, board = Renderer(s), Board()
    board.set_link(True)
    now = 1796554414.0

    def same_as_fresh(highlight: bool, mono: float) -> None:
        fresh = Renderer(s)
        fresh.draw(board.screen(), highlight=not highlight, now=now, mono=0)  # (makes the ticker strip)
        assert fresh.draw(board.screen(), highlight=highlight, now=now, mono=mono)
        assert pygame.image.tobytes(r.frame, "RGB") == pygame.image.tobytes(fresh.frame, "RGB")

    for n in range(1, 13):
        board.apply_state(snapshot_with_calls(n))
        for k, highlight in enumerate((True, False, True)):
            assert r.draw(board.screen(), highlight=highlight, now=now, mono=n + k / 10)
        same_as_fresh(True, n + 0.2)
    board.set_link(False)
    assert r.draw(board.screen(), highlight=True, now=now, mono=20)
    assert r.shows_offline
    same_as_fresh(True, 20)
    board.set_link(True)
    assert r.draw(board.screen(), highlight=True, now=now, mono=21)
    assert not r.shows_offline
    same_as_fresh(True, 21)  # the sign is gone and the header under it is back
    screen = board.screen()  # the same, should a screen's offline flag change without a new version
    assert r.draw(dataclasses.replace(screen, offline=True), highlight=True, now=now, mono=22)
    assert r.draw(screen, highlight=True, now=now, mono=21)
    same_as_fresh(True, 21)


def test_rendered_texts_are_kept_within_their_budget():
    """A large number in the newest-call panel is about 1 MB of pixels; the texts kept for the next change
    stay within TEXT_CACHE_BYTES however many calls come (a cache by count held 160 MB after 150 calls)."""
    from displays.render import TEXT_CACHE_BYTES

    r, board = Renderer(ds.parse({})), Board()
    board.set_link(True)
    for n in range(1, 61):
        board.apply_state(snapshot_with_calls(n))
        r.draw(board.screen(), highlight=True, now=0, mono=n)
    kept = sum(x.get_width() * x.get_height() * x.get_bytesize() for x in r._texts.values())
    assert kept == r._text_bytes <= TEXT_CACHE_BYTES
    assert kept > TEXT_CACHE_BYTES // 2  # the newest texts are kept (dropped one by one, not all at once)
    newest = board.screen().calls[0].ticket
    assert any(key[0] == newest for key in r._texts)


def test_zone_display_shows_only_its_counters(controller, staff, node, cfg):
    disp, c1, c4 = staff
    board = Board(zone="og")
    board.set_link(True)
    events = []
    disp.on_event(lambda kind, e: events.append(e) if kind == "call" else None)
    disp.request("ticket.issue", {"service": "pass"})
    disp.request("ticket.issue", {"service": "pass"})
    c1.request("counter.call_next", {"counter": "c1"})  # zone eg
    c4.request("counter.call_next", {"counter": "c4"})  # zone og
    wait_for(lambda: len(events) == 2, what="two call events")
    assert board.apply_call(events[0]) is None
    assert board.apply_call(events[1]).counter == "c4"
    board.apply_state(office_state(controller))
    assert [c.counter for c in board.screen().calls] == ["c4"]
    # the waiting times of a zone list only services its counters serve (og: fuehrerschein, pass)
    assert {w.service for w in board.screen().waits} == {"fuehrerschein", "pass"}


# ------------------------------------------------------------------------------------------------ the node
def test_node_shows_calls_live_and_writes_screenshots(controller, staff, node, cfg, tmp_path):
    disp, c1, _ = staff
    dn = make_node(cfg, node("display-1"), screenshot_every_s=0.2, screenshot_dir=str(tmp_path))
    dn.start()
    try:
        wait_for(lambda: dn.board.screen().has_state and not dn.board.screen().offline, what="state")
        disp.request("ticket.issue", {"service": "pass"})
        c1.request("counter.call_next", {"counter": "c1"})
        wait_for(lambda: any(k[0] == "A001" for k in dn.shown), what="a frame with A001")
        key = next(k for k in dn.shown if k[0] == "A001")
        assert dn.shown[key] >= dn.received[key]
        shot = tmp_path / "display-1.png"
        wait_for(lambda: shot.exists() and shot.stat().st_mtime > time.time() - 1, what="a screenshot")
        time.sleep(0.3)
        img = pygame.image.load(str(shot))
        assert img.get_size() == (1920, 1080)
        theme = dn.settings.colours
        x, y, w, h = dn.renderer.rects["hero"]
        # blinking: either phase shows the call (highlight background or the number in the accent colour)
        assert (
            share(img, (x, y, w, h), theme.highlight) > 0.5 or share(img, (x, y, w, h), theme.accent) > 0.03
        )
    finally:
        dn.stop()


def test_node_offline_when_controller_stops_and_rebuilds_after_broker_restart(fresh_broker, tmp_path):
    from tests.conftest import office_config
    from waitroom.node import NodeRuntime
    from waitroom.service import ControllerService

    cfg = office_config(fresh_broker.port, office_id="recon")
    ctl = ControllerService(cfg, str(tmp_path / "ev.db"))
    assert ctl.start(wait=10)
    runtimes = [NodeRuntime(cfg, n) for n in ("disp-1", "counter-1")]
    for rt in runtimes:
        assert rt.start(wait=10)
    disp, c1 = runtimes
    disp.request("ticket.issue", {"service": "pass"})
    c1.request("counter.call_next", {"counter": "c1"})
    # the display starts after the call: it rebuilds from the retained state and announces nothing old
    drt = NodeRuntime(cfg, "display-1")
    runtimes.append(drt)
    assert drt.start(wait=10)
    dn = make_node(cfg, drt)
    try:
        dn.start()
        wait_for(lambda: [c.ticket for c in dn.board.screen().calls] == ["A001"], what="retained state")
        assert not dn.board.blinking()
        assert not dn.board.screen().offline

        fresh_broker.stop()
        # mosquitto may hand out the controller's will ("offline") just before it drops our own connection,
        # so "controller" can show for an instant before "broker"
        wait_for(lambda: dn.board.screen().offline_reason == "broker", what="offline sign: broker")
        assert [c.ticket for c in dn.board.screen().calls] == ["A001"]  # the last calls stay
        wait_for(lambda: dn.renderer.shows_offline, what="offline frame")
        assert share(dn.renderer.frame, dn.renderer.rects["offline"], dn.settings.colours.offline) > 0.5

        fresh_broker.start()  # same port; persistence is off, so the controller republishes the state
        wait_for(lambda: not dn.board.screen().offline, timeout=20, what="reconnect")
        disp.request("ticket.issue", {"service": "pass"}, timeout=3)
        c1.request("counter.call_next", {"counter": "c1"}, timeout=3)
        wait_for(lambda: [c.ticket for c in dn.board.screen().calls][:2] == ["A002", "A001"], what="new call")

        ctl.stop()  # a clean stop publishes the controller's retained "offline"
        wait_for(lambda: dn.board.screen().offline_reason == "controller", what="controller offline")
    finally:
        dn.stop()
        for rt in runtimes:
            rt.stop()
        ctl.stop()


def test_odd_call_events_never_freeze_the_screen(controller, staff, node, cfg):
    """A call event with fields of the wrong type (a third-party publisher, a newer controller) is shown as
    well as it can be or ignored; the frame thread keeps drawing and the next real call appears."""
    import paho.mqtt.client as paho

    from waitroom.contract import EventKind, Topics

    disp, c1, _ = staff
    dn = make_node(cfg, node("display-1"))
    dn.start()
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", cfg.broker.port)
    pub.loop_start()
    try:
        wait_for(lambda: dn.board.screen().has_state and not dn.board.screen().offline, what="state")
        topic = Topics(cfg.office.id).event(EventKind.CALL)
        odd = [
            {
                "seq": 9001,
                "ticket": "Z901",
                "counter": "c1",
                "counter_name": "Schalter 1",
                "ts": time.time() - 30,
            },
            {"seq": 9002, "ticket": "Z902", "counter": "c1", "spoken": "eins", "ts": time.time() - 20},
            {"seq": 9003, "ticket": "Z903", "counter": "c1", "lang": ["tr"], "ts": time.time() - 10},
        ]
        for event in odd:
            pub.publish(topic, json.dumps(event), qos=1).wait_for_publish(5)
        wait_for(lambda: any(k[0] == "Z903" for k in dn.shown), what="a frame after the odd events")
        assert [c.ticket for c in dn.board.screen().calls[:3]] == ["Z903", "Z902", "Z901"]
        assert dn.board.screen().calls[2].name == {"de": "c1"}  # the counter id, not a crash
        disp.request("ticket.issue", {"service": "pass"})
        c1.request("counter.call_next", {"counter": "c1"})
        wait_for(lambda: any(k[0] == "A001" for k in dn.shown), what="a frame with A001")
        assert dn.board.screen().calls[0].ticket == "A001"
        assert dn._thread is not None and dn._thread.is_alive()
    finally:
        pub.loop_stop()
        pub.disconnect()
        dn.stop()


def test_a_failing_frame_does_not_stop_the_display(controller, staff, node, cfg, caplog):
    """An error while drawing one frame is logged once; the frame thread goes on and shows the next call.
    Its health says it with a stable fault code next to the detail, and clears both once frames are drawn."""
    from waitroom.contract import Topics, decode

    disp, c1, _ = staff
    health: list[dict] = []
    node("web").subscribe(Topics(cfg.office.id).health("display-1"), lambda t, p: health.append(decode(p)))
    dn = make_node(cfg, node("display-1"))
    failures = []

    def broken_once(screen, frame):
        if not failures:
            failures.append(screen.version)
            raise RuntimeError("a frame that cannot be drawn")

    dn.on_frame.append(broken_once)
    dn.start()
    try:
        wait_for(lambda: failures, what="the failing frame")
        disp.request("ticket.issue", {"service": "pass"})
        c1.request("counter.call_next", {"counter": "c1"})
        wait_for(lambda: any(k[0] == "A001" for k in dn.shown), what="a frame with A001")
        assert dn._thread is not None and dn._thread.is_alive()
        assert (
            sum("a frame that cannot be drawn" in r.getMessage() + str(r.exc_info) for r in caplog.records)
            == 1
        )
        wait_for(lambda: any(h.get("display") == "error" for h in health), what="the fault in the health")
        failed = [h for h in health if h.get("display") == "error"]
        assert (
            failed[0]["display_fault"] == "frame_failed" and "cannot be drawn" in failed[0]["display_error"]
        )
        wait_for(lambda: health[-1].get("display") == "ok", what="the display ok again")
        assert health[-1]["display_fault"] is None and health[-1]["display_error"] is None
    finally:
        dn.stop()


COUNTS = (0, 1, 2, 3, 5, 11, 21, 100)
# Russian and Ukrainian: 1 and 21 one, 2-4 few, 0, 5-20 and 100 many
RU_PEOPLE = {n: "человека" if n in (2, 3) else "человек" for n in COUNTS}
UK_PEOPLE = {0: "людей у черзі", 1: "людина в черзі", 2: "людини в черзі", 3: "людини в черзі"}
UK_PEOPLE |= {5: "людей у черзі", 11: "людей у черзі", 21: "людина в черзі", 100: "людей у черзі"}


@pytest.mark.parametrize(
    ("langs", "expected"),
    [
        (
            ("ar", "de"),
            {
                0: "لا أحد في الانتظار",
                1: "شخص واحد في الانتظار  ·  حوالي دقيقة واحدة",
                2: "شخصان في الانتظار  ·  حوالي دقيقتين",
                3: "3 أشخاص في الانتظار  ·  حوالي 3 دقائق",
                5: "5 أشخاص في الانتظار  ·  حوالي 5 دقائق",
                11: "11 شخصًا في الانتظار  ·  حوالي 11 دقيقة",
                21: "21 شخصًا في الانتظار  ·  حوالي 21 دقيقة",
                100: "100 شخص في الانتظار  ·  حوالي 100 دقيقة",
            },
        ),
        (
            ("ru", "de"),
            {n: f"{n} {RU_PEOPLE[n]} в очереди" + (f"  ·  ок. {n} мин" if n else "") for n in COUNTS},
        ),
        (("uk", "de"), {n: f"{n} {UK_PEOPLE[n]}" + (f"  ·  бл. {n} хв" if n else "") for n in COUNTS}),
        (
            ("de-LS", "de"),
            {
                n: (f"{n} Mensch wartet" if n == 1 else f"{n} Menschen warten")
                + (f"  ·  ungefähr {n} Minute{'' if n == 1 else 'n'}" if n else "")
                for n in COUNTS
            },
        ),
        (("de", "en"), {n: f"{n} wartend" + (f"  ·  ca. {n} Min." if n else "") for n in COUNTS}),
        (("en", "de"), {n: f"{n} waiting" + (f"  ·  approx. {n} min" if n else "") for n in COUNTS}),
        (("tr", "de"), {n: f"{n} kişi bekliyor" + (f"  ·  yaklaşık {n} dk." if n else "") for n in COUNTS}),
    ],
)
def test_waiting_counts_on_the_board_agree_with_their_number(langs, expected):
    """The board's line under each service for n = 0 ... 100 waiting and n minutes, as drawn: the nouns in
    the form the count needs (Arabic 0, 1 and 2 in words, 3-10 plural, 11 and more singular; Russian and
    Ukrainian one, few, many: the board said "ожидают: 1", a plural verb for one person)."""
    services = [
        {"id": f"s{n}", "prefix": "A", "name": {"de": f"Dienst {n}"}, "waiting": n, "eta_min": n}
        for n in COUNTS
    ]
    snap = {
        "name": "Bürgerbüro",
        "day": "2026-01-05",
        "seq": 1,
        "counters": [],
        "services": services,
        "calls": [],
    }
    r = Renderer(ds.parse({"resolution": [1920, 1080], "languages": list(langs)}))
    board = Board()
    board.set_link(True)
    board.apply_state(snap)
    r.draw(board.screen(), highlight=False, now=0, mono=0)
    drawn = {d.text.replace("\xa0", " ") for d in r.drawn}  # (the parts are held together by no-break spaces)
    for n, want in expected.items():
        assert want in drawn, (langs, n, want, sorted(drawn))


def test_a_wait_under_a_minute_on_the_board_is_said_so():
    """Citizens waiting and a counter free: the board says "weniger als 1 Min.", not "ca. 0 Min."."""
    snap = {
        "name": "Bürgerbüro",
        "day": "2026-01-05",
        "seq": 1,
        "counters": [],
        "services": [{"id": "s", "prefix": "A", "name": {"de": "Pass"}, "waiting": 3, "eta_min": 0}],
        "calls": [],
    }
    r = Renderer(ds.parse({"resolution": [1920, 1080], "languages": ["de", "en"]}))
    board = Board()
    board.set_link(True)
    board.apply_state(snap)
    r.draw(board.screen(), highlight=False, now=0, mono=0)
    assert "3 wartend  ·  weniger als 1 Min." in {d.text.replace("\xa0", " ") for d in r.drawn}


# ------------------------------------------------------------------------------------------------ bursts
class FakeClock:
    """The board's clock (monotonic seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def burst_events(n: int, *, counters: int | None = None) -> list[dict]:
    """``n`` call events within one second, counter c1, c2, ... (each its own unless ``counters``)."""
    counters = counters or n
    return [
        {
            "seq": 100 + i,
            "ticket": f"A{i + 1:03d}",
            "counter": f"c{i % counters + 1}",
            "counter_name": {"de": f"Schalter {i % counters + 1}", "en": f"Counter {i % counters + 1}"},
            "ts": 5000.0 + i * 0.08,
        }
        for i in range(n)
    ]


def drawn_calls(r: Renderer) -> dict[str, tuple[str, bool]]:
    return {c.ticket: (c.place, c.pending) for c in r.calls_drawn}


def test_a_burst_keeps_every_call_on_the_board_until_it_is_announced(artifacts):
    """Twelve counters press "next" within a second; the calls are announced one after the other. At the
    start of each announcement the frame shows that call in the large panel and every call still to be
    announced as a highlighted row, even after the office state (which holds the newest 10 calls) came; an
    announced call stays ``keep_called_s`` longer, then the list goes back to its six rows. (The board used to
    show only the newest 7: the first calls left the screen before their announcement.)"""
    s = ds.parse({})
    clock = FakeClock()
    r = Renderer(s)
    board = Board(recent=s.recent_calls, blink_s=s.blink_s, keep_s=s.keep_called_s, clock=clock)
    board.set_link(True)
    events = burst_events(12)
    counters = [
        {"id": f"c{i}", "name": {"de": f"Schalter {i}", "en": f"Counter {i}"}, "services": ["pass"]}
        for i in range(1, 13)
    ]
    snap = {
        "name": "Bürgerbüro Mitte",
        "day": "2026-01-05",
        "seq": 112,
        "counters": counters,
        "services": [],
        "calls": [{k: e[k] for k in ("ticket", "counter", "ts")} for e in events[::-1][:10]],
    }
    for e in events:
        call = board.apply_call(e)
        board.queued(call.key)
    board.apply_state(snap)  # the office's newest 10 calls: A001 and A002 are not in it
    keys = [(e["ticket"], e["counter"], round(e["ts"], 3)) for e in events]
    theme = s.colours
    for i, key in enumerate(keys):
        board.announcing(key)
        assert board.blinking()
        assert r.draw(board.screen(), highlight=True, now=0, mono=i)
        if i == 1:
            save(r.frame, artifacts, "burst")
            assert len(r.calls_drawn) == 12  # A001 just announced, A002 in the panel, 10 waiting
        shown = drawn_calls(r)
        assert shown[key[0]] == ("panel", False), (i, shown)
        for later in keys[i + 1 :]:
            assert shown.get(later[0]) == ("row", True), (i, later, shown)  # waiting: highlighted
        for row in r.calls_drawn[1:]:
            lit = share(r.frame, row.rect, theme.highlight)
            assert (lit > 0.4) if row.pending else (lit < 0.1), (row, lit)
        clock.now += 3.0  # gong and speech
        board.announced(key)
        clock.now += 1.5  # call_gap_s
    # all announced: the last call in the panel, the list back to its six rows
    clock.now += s.keep_called_s
    board.check_stale()
    r.draw(board.screen(), highlight=True, now=0, mono=21)
    assert [c.ticket for c in board.screen().calls] == [f"A{n:03d}" for n in range(12, 5, -1)]
    assert not board.screen().pending


def test_many_waiting_calls_get_lower_rows_then_more_columns_never_unreadable():
    """More calls waiting for their announcement than the list has rows: the rows get lower, down to the
    height at which the number is still drawn at the minimum size (3 % of the screen), then more columns."""
    for n, columns in ((10, 1), (20, 2), (30, 3)):
        s = ds.parse({})
        r, board = Renderer(s), Board(recent=s.recent_calls, clock=FakeClock())
        board.set_link(True)
        for e in burst_events(n):
            board.queued(board.apply_call(e).key)
        r.draw(board.screen(), highlight=True, now=0, mono=0)
        rows = [c for c in r.calls_drawn if c.place == "row"]
        assert len(rows) == n - 1
        assert len({c.rect[0] for c in rows}) == columns, n
        x, y, w, h = r.rects["recent"]
        for c in rows:
            cx, cy, cw, ch = c.rect
            assert x <= cx and cx + cw <= x + w and y <= cy and cy + ch <= y + h, c
            num_w = 0.36 if columns == 1 else 0.44
            assert r.fit(c.ticket, True, round(cw * num_w), round(ch * 0.8)) >= r.min_pt, c  # readable


def test_a_recall_in_a_burst_is_one_row_and_announced_in_its_turn():
    """Counter 3 recalls its ticket while the burst is still being announced: the ticket is listed once (not
    a second row for the recall), and the panel shows "recall" when the recall's own announcement starts, not
    when it came."""
    clock = FakeClock()
    r, board = Renderer(ds.parse({})), Board(clock=clock)
    board.set_link(True)
    events = burst_events(5)
    recall = dict(events[2], seq=200, ts=5001.0, recall=True)  # A003 at c3 again
    keys = []
    for e in [*events, recall]:
        call = board.apply_call(e)
        board.queued(call.key)
        keys.append(call.key)
    board.announcing(keys[0])
    r.draw(board.screen(), highlight=True, now=0, mono=0)
    tickets = [c.ticket for c in r.calls_drawn]
    assert sorted(tickets) == ["A001", "A002", "A003", "A004", "A005"]  # A003 once
    assert not any(d.text.startswith("Erneuter Aufruf") for d in r.drawn)
    for key in keys[:-1]:
        board.announcing(key)
        board.announced(key)
    board.announcing(keys[-1])  # the recall's turn
    r.draw(board.screen(), highlight=True, now=0, mono=1)
    assert r.calls_drawn[0].ticket == "A003" and r.calls_drawn[0].place == "panel"
    assert [c.ticket for c in r.calls_drawn].count("A003") == 1
    assert any(d.text.startswith("Erneuter Aufruf") for d in r.drawn)


def burst_office(port: int, counters: int):
    """The example office with ``counters`` counters in one zone, all serving ``pass``."""
    from tests.conftest import office_config
    from waitroom import config

    base = config.load(config.EXAMPLE_CONFIG)
    c1 = base.counters[0]
    made = [
        c1.model_copy(
            update={
                "id": f"c{i}",
                "name": c1.name.model_copy(update={"de": f"Schalter {i}", "en": f"Counter {i}"}),
                "spoken": c1.spoken.model_copy(update={"de": f"Schalter {i}", "en": f"counter {i}"}),
                "services": ["pass"],
                "initially": "open",
            }
        )
        for i in range(1, counters + 1)
    ]
    return office_config(port, office_id=f"burst{time.monotonic_ns() % 10**6}", counters=made)


@pytest.mark.slow
def test_a_burst_on_the_node_shows_each_call_when_it_is_announced(broker, tmp_path, artifacts):
    """At opening twelve counters press "next" within a second (a real controller and mosquitto; the office
    state holds only the newest 10 calls). Each call is announced in order, none lost, with real espeak-ng
    speech; at the start of each announcement the frame shows that call in the large panel (the gong waits
    for that frame) and every call still to be announced as a highlighted row."""
    from displays.announce import Announcer
    from tests.conftest import require_tool
    from tests.test_announce import short_gong
    from waitroom.node import NodeRuntime
    from waitroom.service import ControllerService

    require_tool("espeak-ng", "espeak-ng")
    cfg = burst_office(broker.port, 12)
    ctl = ControllerService(cfg, str(tmp_path / "events.db"))
    assert ctl.start(wait=10)
    runtimes = [NodeRuntime(cfg, n) for n in ("disp-1", "web", "display-1")]
    for rt in runtimes:
        assert rt.start(wait=10)
    disp, web, drt = runtimes
    settings = ds.parse(
        {
            "screenshot_every_s": 0,
            "languages": ["de"],
            "speech_rate": 260,
            "gong_pause_s": 0.1,
            "call_gap_s": 0.3,
        }
    )
    dn = DisplayNode(
        drt,
        cfg,
        cfg.node("display-1"),
        settings=settings,
        announcer=Announcer(settings, gong=short_gong(tmp_path)),
        data_dir=tmp_path,
    )
    starts: list[tuple[str, float, dict[str, tuple[str, bool]], dict]] = []
    try:
        dn.start()
        # after the node's own callback: the frame showing the call has been drawn
        dn.announcer.on_start.append(
            lambda item: starts.append(
                (item.ticket, time.monotonic(), drawn_calls(dn.renderer), dict(dn.received))
            )
        )
        wait_for(lambda: dn.board.screen().has_state and not dn.board.screen().offline, what="state")
        for _ in range(12):
            disp.request("ticket.issue", {"service": "pass"})
        for i in range(1, 13):
            web.request("counter.call_next", {"counter": f"c{i}"})
        tickets = [f"A{n:03d}" for n in range(1, 13)]
        wait_for(
            lambda: len(starts) == 12 and dn.announcer.pending == 0, timeout=120, what="12 announcements"
        )
        save(dn.renderer.frame, artifacts, "burst-node")
    finally:
        dn.stop()
        for rt in runtimes:
            rt.stop()
        ctl.stop()
    played = [(p.ticket, p.kind) for p in dn.announcer.played]
    assert played == [(t, k) for t in tickets for k in ("gong", "speech")]  # in order, none lost or skipped
    assert [s[0] for s in starts] == tickets
    checked = 0
    for i, (ticket, _at, shown, received) in enumerate(starts):
        assert shown[ticket] == ("panel", False), (ticket, shown)
        if i == 0:
            continue
        before = starts[i - 1][1]  # calls that had come when the announcement before this one started
        times = _times(received, tickets)
        for j, later in enumerate(tickets):
            if j > i and 0 < times[j] < before:
                assert shown.get(later) == ("row", True), (ticket, later, shown)  # waiting: highlighted
                checked += 1
    assert checked  # (the calls came faster than they were announced)


def _times(received: dict, tickets: list[str]) -> list[float]:
    """When each ticket's call event came (0.0: not yet)."""
    by_ticket = {key[0]: t for key, t in received.items()}
    return [by_ticket.get(t, 0.0) for t in tickets]
