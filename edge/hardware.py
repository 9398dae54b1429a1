"""Thin hardware adapters for the edge nodes: the only module here that imports gpiozero.

- ``pin_factory(name)``: gpiozero's pin factory from configuration (``mock`` on a laptop, in the demo and in
  tests; ``lgpio`` on a Pi 5 / bookworm; ``None`` = gpiozero's default, $GPIOZERO_PIN_FACTORY).
- ``PressButton``: a button with our own debounce (gpiozero's MockPin does not simulate contact bounce, and
  the kernel's edge timing differs per Pi model), short press and long press (hold) callbacks.
- ``Lamp``: an LED with the patterns the nodes use (off, on, slow/fast blink, pulse count).
- ``CharDisplay``: a multiplexed 7-segment display of a few characters (gpiozero's LEDMultiCharDisplay) that
  shows a ticket number and blinks it for a while after a call.
- ``SimInput``: the demo's virtual buttons. A JSON message on the node's ``sim`` topic drives the mock pin,
  so a press from the web page runs exactly the code path of a real press.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gpiozero import LED, Button, Device, LEDCharDisplay, LEDMultiCharDisplay
from gpiozero.exc import BadPinFactory
from gpiozero.pins.mock import MockFactory, MockPin

from waitroom import contract
from waitroom.errors import HardwareError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
T = TypeVar("T")


class PinError(HardwareError):
    """The GPIO pins cannot be used: no library to drive them on this machine, or a pin that is busy."""


FACTORIES = {
    "lgpio": (
        "gpiozero.pins.lgpio:LGPIOFactory",
        "pip install 'waitroom[pi]' (or apt-get install python3-lgpio)",
    ),
    "rpigpio": ("gpiozero.pins.rpigpio:RPiGPIOFactory", "apt-get install python3-rpi.gpio"),
    "native": ("gpiozero.pins.native:NativeFactory", "it ships with gpiozero"),
}
NO_GPIO_HINT = "on a Pi: pip install 'waitroom[pi]'; on a machine without GPIO pins: --pins mock"


def pin_factory(name: str | None) -> Any:
    """A gpiozero pin factory for ``name`` ('mock', 'lgpio', 'rpigpio', 'native'), or None for the default.
    Raises PinError naming the factory and what to install (only the factory asked for is imported: a Pi
    without lgpio, a Zero's armv6l, drives its pins with rpigpio)."""
    if name in (None, "", "default"):
        return None
    if name == "mock":
        return MockFactory()
    if name not in FACTORIES:
        raise PinError(f"unknown pin factory {name!r}; use mock, lgpio, rpigpio or native")
    ref, install = FACTORIES[name]
    module, cls = ref.split(":")
    import importlib

    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        raise PinError(f"pin factory {name}: {exc}; {install}") from exc
    except Exception as exc:  # e.g. no GPIO chip on this machine
        raise PinError(f"pin factory {name} cannot drive pins here: {exc}; {NO_GPIO_HINT}") from exc


def claim(what: str, pin: Any, make: Callable[[], T]) -> T:
    """A gpiozero device for ``pin``, or PinError naming the part and the pin (no GPIO library on this
    machine, a pin another process holds, ...), not a traceback from inside gpiozero."""
    try:
        return make()
    except BadPinFactory as exc:
        raise PinError(f"{what} on GPIO {pin}: {exc} ({NO_GPIO_HINT})") from exc
    except Exception as exc:
        raise PinError(f"{what} on GPIO {pin} cannot be used: {type(exc).__name__}: {exc}") from exc


class PressButton:
    """A push button (to ground, internal pull-up) with software debounce and short/long press detection.

    ``on_press`` fires on release after a press shorter than ``long_press_s``; ``on_long_press`` fires once
    while the button is still held ``long_press_s``. Edges closer than ``debounce_s`` to the last accepted
    edge are ignored (contact bounce); once ``debounce_s`` has passed, the pin's level is read again. A
    contact closed for less than ``debounce_s`` is noise (a glitch on the wire, a graze): no press, and the
    button is released again; it used to stay "held", so the next real press gave nothing either and a
    stuck alarm followed. A press that began inside the window after a release counts from then.
    """

    def __init__(
        self,
        pin: int | str,
        *,
        factory: Any = None,
        debounce_s: float = 0.03,
        long_press_s: float | None = None,
        clock: Clock = time.monotonic,
        name: str = "",
    ):
        self.name = name or str(pin)
        self.debounce_s = debounce_s
        self.long_press_s = long_press_s
        self.clock = clock
        self.on_press: Callable[[], None] | None = None
        self.on_long_press: Callable[[], None] | None = None
        self._down_at: float | None = None
        self._last_edge = -1e9
        self._long_fired = False
        self._timer: threading.Timer | None = None
        self._settle_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.button = claim(
            f"button {self.name}",
            pin,
            lambda: Button(pin, pull_up=True, bounce_time=None, pin_factory=factory),
        )
        self.button.when_pressed = self._pressed
        self.button.when_released = self._released
        self.presses = 0  # accepted presses (for health and tests)
        self.bounces = 0  # ignored edges

    @property
    def pin(self) -> Any:
        return self.button.pin

    @property
    def is_pressed(self) -> bool:
        return self._down_at is not None

    def _accept_edge(self, force: bool = False) -> bool:
        now = self.clock()
        if not force and now - self._last_edge < self.debounce_s:
            self.bounces += 1
            self._settle_later(self.debounce_s - (now - self._last_edge))
            return False
        self._last_edge = now
        return True

    def _settle_later(self, delay: float) -> None:
        """Read the pin again when the debounce window is over (called with the lock held)."""
        if self._settle_timer is not None and self._settle_timer.is_alive():
            return
        self._settle_timer = threading.Timer(max(0.0, delay) + 0.002, self._settle)
        self._settle_timer.daemon = True
        self._settle_timer.start()

    def _settle(self) -> None:
        """The level after the bounce: a press or a release whose edge was ignored as bounce counts now."""
        try:
            down = bool(self.button.is_pressed)
        except Exception:  # closed meanwhile
            return
        if down and self._down_at is None:
            self._pressed(force=True)
        elif not down and self._down_at is not None:
            with self._lock:  # released inside the window: shorter than debounce_s, not a press
                self._down_at = None
                self._last_edge = self.clock()
                if self._timer:
                    self._timer.cancel()
                    self._timer = None
            log.debug("button %s: contact shorter than %.0f ms ignored", self.name, self.debounce_s * 1000)

    def _pressed(self, force: bool = False) -> None:
        with self._lock:
            if self._down_at is not None or not self._accept_edge(force):
                return
            self._down_at = self.clock()
            self._long_fired = False
            if self.long_press_s and self.on_long_press:
                self._timer = threading.Timer(self.long_press_s, self._held)
                self._timer.daemon = True
                self._timer.start()

    def _held(self) -> None:
        with self._lock:
            if self._down_at is None or self._long_fired:
                return
            self._long_fired = True
        log.debug("button %s: long press", self.name)
        self._fire(self.on_long_press)

    def _released(self) -> None:
        with self._lock:
            if self._down_at is None or not self._accept_edge():
                return
            held = self.clock() - self._down_at
            self._down_at = None
            if self._timer:
                self._timer.cancel()
                self._timer = None
            long_press = self.long_press_s is not None and held >= self.long_press_s
            if long_press and not self._long_fired and self.on_long_press:
                self._long_fired = True
                callback = self.on_long_press
            elif self._long_fired:
                return
            else:
                callback = self.on_press
            self.presses += 1
        log.debug("button %s: %s press (%.0f ms)", self.name, "long" if long_press else "short", held * 1000)
        self._fire(callback)

    def _fire(self, callback: Callable[[], None] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("button %s handler failed", self.name)

    def close(self) -> None:
        for timer in (self._timer, self._settle_timer):
            if timer:
                timer.cancel()
        self.button.close()


class Lamp:
    """An LED with named patterns: 'off', 'on', 'blink' (1 Hz), 'fast' (4 Hz), 'flash' (n short flashes)."""

    PATTERNS = {"blink": (0.5, 0.5), "fast": (0.125, 0.125)}

    def __init__(self, pin: int | str, *, factory: Any = None, name: str = ""):
        self.name = name or str(pin)
        self.led = claim(f"light {self.name}", pin, lambda: LED(pin, pin_factory=factory))
        self.pattern = "off"

    @property
    def pin(self) -> Any:
        return self.led.pin

    @property
    def is_lit(self) -> bool:
        return bool(self.led.is_lit)

    def set(self, pattern: str, n: int | None = None) -> None:
        if pattern == self.pattern and pattern != "flash":
            return
        self.pattern = pattern
        if pattern == "off":
            self.led.off()
        elif pattern == "on":
            self.led.on()
        elif pattern in self.PATTERNS:
            on, off = self.PATTERNS[pattern]
            self.led.blink(on_time=on, off_time=off, background=True)
        elif pattern == "flash":
            self.led.blink(on_time=0.1, off_time=0.1, n=n or 3, background=True)
        else:
            raise ValueError(f"unknown LED pattern {pattern!r}")

    def close(self) -> None:
        self.led.close()


# What gpiozero's default 7-segment font lacks and a counter display needs: the dash of "not open".
EXTRA_GLYPHS = {"-": (False, False, False, False, False, False, True)}  # segments a..g: only g


class CharDisplay:
    """A 7-segment display of ``len(digits)`` characters, multiplexed by gpiozero (``LEDMultiCharDisplay``):
    the segment pins ``segments`` (a..g, then the optional decimal point) are shared, each character's common
    cathode (or anode) is switched through a transistor on its ``digits`` pin.

    ``show(text)`` shows a text at once (right-aligned, as gpiozero does); ``blink(text, seconds)`` blinks
    it (0.5 s on, 0.25 s off) for ``seconds``, then shows it steady. ``can_show(ch)`` tells whether the font
    has a character (gpiozero's 7-segment font has no K, M, V, W, X, Z)."""

    BLINK = (0.5, 0.25)

    def __init__(
        self,
        segments: list[int | str],
        digits: list[int | str],
        *,
        factory: Any = None,
        common_anode: bool = False,
        name: str = "",
    ):
        self.name = name or "display"
        dp = segments[7] if len(segments) > 7 else None
        char = claim(
            f"{self.name} segments",
            ", ".join(map(str, segments)),
            lambda: LEDCharDisplay(*segments[:7], dp=dp, active_high=not common_anode, pin_factory=factory),
        )
        char.font = {**char.font, **EXTRA_GLYPHS}
        if Device.pin_factory is None and factory is not None:
            # gpiozero 2.0.1 builds the digit group of LEDMultiCharDisplay without the pin factory it was
            # given, so that group falls back to the default factory (none on a laptop): lend it this one
            Device.pin_factory = factory
        # the digit pins switch transistors: NPN (high = on) for a common cathode, PNP (low = on) for an anode
        self.device = claim(
            f"{self.name} digits",
            ", ".join(map(str, digits)),
            lambda: LEDMultiCharDisplay(char, *digits, active_high=not common_anode, pin_factory=factory),
        )
        self.width = len(digits)
        self.text = ""
        self._lock = threading.Lock()
        self._blink: threading.Thread | None = None
        self._stop_blink = threading.Event()

    def can_show(self, ch: str) -> bool:
        return ch in self.device.char.font

    def fit(self, text: str) -> str:
        """``text`` as the display shows it: characters it cannot show as blanks, the last ``width`` kept."""
        shown = "".join(ch if self.can_show(ch) else " " for ch in text.upper())
        return shown[-self.width :] if len(shown) > self.width else shown

    def _set(self, text: str) -> None:
        self.device.value = text.rjust(self.width)

    def show(self, text: str) -> None:
        with self._lock:
            self._cancel_blink()
            self.text = self.fit(text)
            self._set(self.text)

    def blink(self, text: str, seconds: float) -> None:
        with self._lock:
            self._cancel_blink()
            self.text = self.fit(text)
            stop = self._stop_blink = threading.Event()
            self._blink = threading.Thread(
                target=self._blinking, args=(self.text, seconds, stop), name=f"{self.name}-blink", daemon=True
            )
            self._blink.start()

    def _blinking(self, text: str, seconds: float, stop: threading.Event) -> None:
        on, off = self.BLINK
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            self._set(text)
            if stop.wait(on):
                return
            self._set("")
            if stop.wait(off):
                return
        if not stop.is_set():  # a show() or blink() after this one sets the flag and waits for this thread
            self._set(text)

    def _cancel_blink(self) -> None:
        self._stop_blink.set()
        if self._blink is not None and self._blink is not threading.current_thread():
            self._blink.join(timeout=1)
        self._blink = None

    @property
    def blinking(self) -> bool:
        return self._blink is not None and self._blink.is_alive()

    def close(self) -> None:
        with self._lock:
            self._cancel_blink()
        self.device.close()


class SimInput:
    """Drive mock pins from the node's ``sim`` topic (the demo's virtual buttons).

    Payload: ``{"button": "<name>", "action": "press" | "hold" | "down" | "up", "ms": 120}``. ``press`` is
    a short press, ``hold`` a long press (default 2 s). Only works with the mock pin factory.
    """

    def __init__(self, runtime: Any, buttons: dict[str, PressButton]):
        self.runtime = runtime
        self.buttons = buttons
        runtime.subscribe(runtime.topics.sim(runtime.node_id), self._on_sim)

    def _on_sim(self, topic: str, payload: bytes) -> None:
        try:
            data = contract.decode(payload)
        except contract.ContractError as exc:
            log.warning("ignored sim message: %s", exc)
            return
        name, action = data.get("button"), data.get("action", "press")
        button = self.buttons.get(str(name))
        if button is None or not isinstance(button.pin, MockPin):
            log.warning("sim: no simulated button %r on %s", name, self.runtime.node_id)
            return
        default_ms = 2500 if action == "hold" else 120
        ms = data.get("ms", default_ms)
        ms = ms if isinstance(ms, int | float) and 0 < ms <= 10000 else default_ms
        threading.Thread(target=self.drive, args=(button, str(action), ms / 1000), daemon=True).start()

    @staticmethod
    def drive(button: PressButton, action: str, seconds: float) -> None:
        pin = button.pin
        if action in ("press", "hold"):
            pin.drive_low()
            time.sleep(seconds)
            pin.drive_high()
        elif action == "down":
            pin.drive_low()
        elif action == "up":
            pin.drive_high()


def close_all(devices: list[Any]) -> None:
    for d in devices:
        try:
            d.close()
        except Exception:
            log.debug("closing %r", d, exc_info=True)


__all__ = ["CharDisplay", "Device", "Lamp", "PinError", "PressButton", "SimInput", "close_all", "pin_factory"]
