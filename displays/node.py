"""The call display node: ``waitroom node display --node display-1``.

Wiring only: MQTT (through ``NodeRuntime``) feeds the ``Board``; one frame thread owns pygame's display and
draws with the ``Renderer``; the ``Announcer`` speaks calls on its own workers. The frame thread sleeps on an
event, so a call wakes it at once; otherwise it draws at ``fps`` while something moves (blinking, ticker) and
once a second when idle (the clock), and flips the screen only when the frame changed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from displays.announce import Announcement, Announcer, AudioError, Played
from displays.board import Board, CallView, Screen
from displays.heard import HeardFile, path_for
from displays.missed import CallKey, MissedCalls, serving_of
from waitroom.configbase import prepared
from waitroom.contract import EventKind, FaultCode
from waitroom.errors import HardwareError

if TYPE_CHECKING:  # the schema (pydantic); a display node runs on light records of it (waitroom.nodeconfig)
    from displays.settings import DisplaySettings
    from waitroom.config import Config, Node

log = logging.getLogger(__name__)
PLAYING_KEEP = 200  # calls queued for their gong that are remembered (more than a queue ever holds)
# How long a call's gong waits for the frame that shows the call in the large panel (a frame takes a few ms;
# a display whose frames fail does not hold its announcements back longer than this).
FRAME_WAIT_S = 0.5


def prepare(cfg: Config, node: Node) -> dict[str, Any]:
    """What a display resolves at start, for its validated-config cache (``waitroom.nodeconfig``): its
    settings (the office's ``display:`` section with the node's ``options`` over it)."""
    from displays.settings import for_node

    return {"display": for_node(cfg, node)}


def load_settings(cfg: Config, node: Node) -> DisplaySettings:
    """The display's settings: validated already when the node started from its cache, else validated here
    (a ``ConfigError`` naming the key)."""
    done = prepared(cfg, "display")
    if done is not None:
        return done
    from displays.settings import for_node

    return for_node(cfg, node)


def headless() -> bool:
    """True when SDL draws into nothing (no screen: tests, the demo on a server)."""
    return os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen")


class ScreenError(HardwareError):
    """The display has no screen to draw on (pygame's video output cannot be opened)."""


class Output(Protocol):
    def show(self, frame: Any) -> None: ...

    def pump(self) -> None: ...

    def close(self) -> None: ...


class PygameOutput:
    """pygame's display: full screen on the Pi, a window on a desktop, nothing with SDL_VIDEODRIVER=dummy."""

    def __init__(self, s: DisplaySettings):
        import pygame

        self._pg = pygame
        pygame.display.init()
        flags = pygame.FULLSCREEN if s.fullscreen and not headless() else 0
        self.rotate = s.rotate
        self.surface = pygame.display.set_mode(s.resolution, flags)
        pygame.display.set_caption("waitroom")
        if flags:
            pygame.mouse.set_visible(False)

    def canvas(self) -> Any:
        """The window's surface for the renderer to draw into (no second full-screen buffer), or None when
        frames must be rotated first."""
        return None if self.rotate else self.surface

    def show(self, frame: Any) -> None:
        if frame is not self.surface:
            if self.rotate:
                frame = self._pg.transform.rotate(frame, -self.rotate)
            self.surface.blit(frame, (0, 0))
        self._pg.display.flip()

    def pump(self) -> None:
        for event in self._pg.event.get():
            if event.type == self._pg.QUIT:
                log.info("window closed; the display keeps running until the node stops")

    def close(self) -> None:
        self._pg.display.quit()


class DisplayNode:
    def __init__(
        self,
        runtime: Any,
        cfg: Config,
        node: Node,
        *,
        settings: DisplaySettings | None = None,
        output: Callable[[DisplaySettings], Output] | None = None,
        announcer: Announcer | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ):
        self.runtime = runtime
        self.cfg = cfg
        self.node = node
        self.settings = settings or load_settings(cfg, node)
        self.board = Board(
            zone=node.zone,
            recent=self.settings.recent_calls,
            blink_s=self.settings.blink_s,
            keep_s=self.settings.keep_called_s,
            office_name=cfg.office.name,
            stale_after_s=self.settings.stale_after_s,
        )
        self.announcer = announcer or Announcer(self.settings)
        # calls missed while the display was offline, announced late when recent (displays.missed); the
        # calls it heard are kept in the data dir (``data_dir``: else $WAITROOM_DATA_DIR or ./var), so a
        # restart does not announce them again (displays.heard)
        window = self.settings.announce_missed_s if self.announcer.enabled else 0
        self.heard_file = HeardFile(path_for(node.id, data_dir)) if window else None
        if self.heard_file is not None:  # a full or read-only card shows on the admin page
            self.heard_file.on_change = lambda error: runtime.set_health(
                heard_error=error, heard_fault=None if error is None else FaultCode.HEARD_UNWRITABLE.value
            )
        self.missed = MissedCalls(window, store=self.heard_file)
        self._playing: OrderedDict[tuple[str, int | None], CallKey] = OrderedDict()  # (ticket, seq) -> call
        self._playing_lock = threading.Lock()
        self.announcer.on_played.append(self._on_played)
        self.announcer.on_start.append(self._on_start)
        self.announcer.on_done.append(self._on_done)
        self._drawn = threading.Condition()
        self._drawn_version = -1  # the screen version of the last frame shown
        if self.missed.restored:
            n, path = self.missed.restored, self.heard_file.path if self.heard_file else None
            log.info("%d calls heard before the start (%s) are not announced again", n, path)
        self._states_since_connect = 0  # the first state message of a connection may be the retained one
        self._output_factory = output or PygameOutput
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.frames = 0
        self.draw_s: deque[float] = deque(maxlen=300)  # time per changed frame (benchmark)
        self.shown: dict[tuple[str, str, float], float] = {}  # call key -> monotonic time of its first frame
        # (anywhere on it: in the large panel or in the list)
        self.received: dict[tuple[str, str, float], float] = {}  # call key -> monotonic time of its event
        self.on_frame: list[Callable[[Screen, Any], None]] = []
        self.screenshot_dir = self.settings.screenshot_path()
        self.screenshot_every = self.settings.screenshot_interval(headless())
        self.renderer: Any = None

    # -- lifecycle
    def start(self) -> None:
        rt = self.runtime
        self.announcer.on_health.append(lambda: rt.set_health(**self.announcer.health()))
        try:  # before the state comes in: a call missed before the start may be announced at once
            self.announcer.start()
        except AudioError as exc:
            log.error("announcements unavailable: %s", exc)
            self.announcer.errors.append(str(exc))
            self.announcer.sound_failed(str(exc))
        rt.on_state(self._on_state)
        rt.on_event(self._on_event)
        rt.on_controller(self._on_controller)
        rt.link.on_connect_hooks.append(self._on_link)
        rt.link.on_disconnect_hooks.append(self._on_link)
        self.board.set_link(rt.online)
        self._thread = threading.Thread(target=self._frame_loop, name=f"{self.node.id}-frames", daemon=True)
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None:  # no screen to draw on: one line saying so, not pygame's traceback
            self.announcer.stop()
            driver = os.environ.get("SDL_VIDEODRIVER") or "not set"
            raise ScreenError(
                f"display {self.node.id} has no screen to draw on: {type(self._error).__name__}: "
                f"{self._error} (SDL_VIDEODRIVER={driver}); on a Pi it draws on the console (kmsdrm: the TV "
                "plugged in and on at boot, no desktop holding it), on a machine without a screen set "
                "SDL_VIDEODRIVER=dummy"
            ) from self._error
        rt.set_health(display="ok", zone=self.node.zone or "all", **self.announcer.health())
        log.info(
            "display %s: %dx%d %s, zone %s, screenshots %s",
            self.node.id,
            *self.settings.resolution,
            "portrait" if self.settings.portrait else "landscape",
            self.node.zone or "all",
            f"every {self.screenshot_every:g} s to {self.screenshot_dir}" if self.screenshot_every else "off",
        )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.announcer.stop()
        if self.heard_file is not None:
            self.heard_file.close()

    # -- MQTT inputs (network thread)
    def _on_state(self, snap: dict[str, Any]) -> None:
        calls = self.board.apply_state(snap)
        self._wake.set()
        self.missed.observe(snap.get("ts"), fresh=self._states_since_connect > 0)
        self._states_since_connect += 1
        late = self.missed.decide(calls, serving_of(snap), announcing=True)
        for call in late:  # oldest first, through the same queue (and its skipping rule) as live calls
            self._announce(call)
        if late:
            self.board.flash(late[-1].key)
            self.runtime.set_health(announce_missed=self.missed.announced)

    def _on_event(self, kind: EventKind, event: dict[str, Any]) -> None:
        self.missed.observe(event.get("ts"), fresh=True)  # events are never retained
        if kind is not EventKind.CALL:
            return
        try:
            call = self.board.apply_call(event)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignored bad call event: %s", exc)
            return
        if call is None:
            return
        self.missed.heard(call.key, announcing=self.missed.window_s > 0)
        self.received[call.key] = time.monotonic()
        self._wake.set()
        self._announce(call)

    def _announce(self, call: CallView) -> None:
        if not self.announcer.enabled:  # quiet: shown only (and kept ``keep_called_s`` after it came)
            return
        if self.missed.window_s > 0:  # stored as heard once its first sound is played (_on_played)
            with self._playing_lock:
                self._playing[(call.ticket, call.seq)] = call.key
                while len(self._playing) > PLAYING_KEEP:  # calls superseded or never played
                    self._playing.popitem(last=False)
        self.board.queued(call.key)  # first: its gong may start before announce() returns
        item = Announcement(
            call.ticket,
            dict(call.spoken),
            call.recall,
            call.seq,
            lang=call.lang,
            at=call.counter,
            ref=call.key,
        )
        if not self.announcer.announce(item):  # quiet, or the sound output could not start
            self.board.announced(call.key, played=False)
        self._wake.set()

    def _on_start(self, item: Announcement) -> None:  # the announcer's play thread, just before the gong
        """The call's gong is about to sound: the board shows it in the large panel first (bounded wait)."""
        if item.ref is None:
            return
        version = self.board.announcing(item.ref)
        self._wake.set()
        with self._drawn:
            self._drawn.wait_for(lambda: self._drawn_version >= version, FRAME_WAIT_S)

    def _on_done(self, item: Announcement, played: bool) -> None:  # the announcer's play thread
        if item.ref is not None:
            self.board.announced(item.ref, played=played)
            self._wake.set()

    def _on_played(self, rec: Played) -> None:  # the announcer's play thread
        with self._playing_lock:
            key = self._playing.pop((rec.ticket, rec.seq), None)
        if key is not None:
            self.missed.played(key)

    def _on_controller(self, online: bool) -> None:
        self.board.set_controller(online)
        self._wake.set()

    def _on_link(self) -> None:
        self._states_since_connect = 0
        self.board.set_link(self.runtime.online)
        self._wake.set()

    # -- frames (own thread: pygame's display belongs to it)
    def _frame_loop(self) -> None:
        from displays.render import Renderer

        try:
            out = self._output_factory(self.settings)
            canvas = getattr(out, "canvas", lambda: None)()
            self.renderer = Renderer(
                self.settings, tz=self.cfg.office.tz, office_name=self.cfg.office.name, frame=canvas
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        r = self.renderer
        last_shot, shot_version = 0.0, None
        failing = ""  # the error of the frame before, logged once: no traceback storm at the frame rate
        try:
            while not self._stop.is_set():
                try:
                    last_shot, shot_version = self._frame(r, out, last_shot, shot_version)
                except Exception as exc:
                    if repr(exc) != failing:
                        log.exception("drawing a frame failed; the display goes on with the next one")
                        self.runtime.set_health(
                            display="error",
                            display_error=repr(exc)[:200],
                            display_fault=FaultCode.FRAME_FAILED,
                        )
                    failing = repr(exc)
                    self._stop.wait(1.0)
                    continue
                if failing:
                    log.warning("frames are drawn again")
                    self.runtime.set_health(display="ok", display_error=None, display_fault=None)
                    failing = ""
        finally:
            out.close()

    def _frame(self, r: Any, out: Output, last_shot: float, shot_version: Any) -> tuple[float, Any]:
        """Draw one frame if something changed, then wait for the next one (the frame thread)."""
        mono, now = time.monotonic(), time.time()
        self.board.set_link(self.runtime.online)
        self.board.check_stale()
        screen = self.board.screen()
        blinking = self.board.blinking()
        highlight = not blinking or int(mono * 2) % 2 == 0
        t0 = time.perf_counter()
        if r.draw(screen, highlight=highlight, now=now, mono=mono):
            out.show(r.frame)
            self.draw_s.append(time.perf_counter() - t0)
            self.frames += 1
            for call in screen.calls:
                self.shown.setdefault(call.key, time.monotonic())
            with self._drawn:
                self._drawn_version = screen.version
                self._drawn.notify_all()
            for cb in self.on_frame:
                cb(screen, r.frame)
        if (
            self.screenshot_every
            and mono - last_shot >= self.screenshot_every
            and r._last_key != shot_version
        ):
            self.screenshot()
            last_shot, shot_version = mono, r._last_key
        out.pump()
        wait = 1.0 / self.settings.fps if r.animating(blinking) else 1.0 - (time.time() % 1.0) + 0.005
        self._wake.wait(wait)
        self._wake.clear()
        return last_shot, shot_version

    def screenshot(self, path: Path | None = None) -> Path:
        """Write the current frame as a PNG (atomically: readers never see half a file)."""
        import pygame

        path = path or self.screenshot_dir / f"{self.node.id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        pygame.image.save(self.renderer.frame, str(tmp))
        os.replace(tmp, path)
        return path


def import_pygame_without_numpy() -> Any:
    """Import pygame so that it does not load numpy (about 11 MB of a display's memory).

    ``import pygame`` loads numpy for ``pygame.surfarray`` and ``pygame.sndarray`` when numpy is installed (it
    is, for the controller's forecast); the display uses neither. numpy is hidden only while pygame is being
    imported: those two modules become pygame's "missing module" stubs, and numpy stays importable."""
    import sys

    if "pygame" in sys.modules or "numpy" in sys.modules:
        import pygame

        return pygame
    sys.modules["numpy"] = None  # type: ignore[assignment]  # ImportError for numpy while pygame loads
    try:
        import pygame
    finally:
        if sys.modules.get("numpy", 0) is None:
            del sys.modules["numpy"]
    return pygame


def create(runtime: Any, cfg: Config, node: Node, *, pins: Any = None, simulate: bool = False) -> DisplayNode:
    """Node factory for ``waitroom node display`` (no pins: ``pins`` and ``simulate`` are unused)."""
    import_pygame_without_numpy()  # first, before the renderer and the sound output import pygame
    return DisplayNode(runtime, cfg, node)
