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
