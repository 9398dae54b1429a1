"""The booking-code scanner: a USB QR scanner or keyboard (evdev, grabbed) or stdin lines."""

from __future__ import annotations

import contextlib
import logging
import re
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"^[A-Z0-9]{3,32}$")

_KEYS = {
    2: "1",
    3: "2",
    4: "3",
    5: "4",
    6: "5",
    7: "6",
    8: "7",
    9: "8",
    10: "9",
    11: "0",
    12: "-",
    16: "Q",
    17: "W",
    18: "E",
    19: "R",
    20: "T",
    21: "Y",
    22: "U",
    23: "I",
    24: "O",
    25: "P",
    30: "A",
    31: "S",
    32: "D",
    33: "F",
    34: "G",
    35: "H",
    36: "J",
    37: "K",
    38: "L",
    44: "Z",
    45: "X",
    46: "C",
    47: "V",
    48: "B",
    49: "N",
    50: "M",
    52: ".",
    53: "/",
    57: " ",
    71: "7",
    72: "8",
    73: "9",
    75: "4",
    76: "5",
    77: "6",
    79: "1",
    80: "2",
    81: "3",
    82: "0",
}
# Characters typed with Shift that a check-in URL holds (https://host:port/a/CODE?x=y): "/" is Shift+7 on a
# German keyboard, ":" Shift+. there; any other shifted key that is not a letter gives no character.
_SHIFTED = {
    "de": {8: "/", 52: ":", 11: "=", 12: "?", 53: "_"},
    "us": {39: ":", 53: "?", 12: "_"},
}
_SHIFT = (42, 54)  # left and right shift
_ENTER = (28, 96)
EV_KEY = 1
EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux
EVIOCGRAB = 0x40044590


def key_char(code: int, layout: str, shift: bool = False) -> str | None:
    if shift and code in _SHIFTED.get(layout, {}):
        return _SHIFTED[layout][code]
    ch = _KEYS.get(code)
    if shift and ch is not None and not ch.isalpha():
        return None  # "!", "%", ... on the digit keys: not part of a code
    if layout == "de" and ch in ("Y", "Z"):  # QWERTZ: the keys are swapped
        return "Z" if ch == "Y" else "Y"
    if layout == "de" and ch == "/":
        return "-"
    return ch


def parse_code(text: str) -> str | None:
    """A booking code from what was typed or scanned (a bare code or a URL ending in it)."""
    text = text.strip().rstrip("/")
    if "/" in text:
        text = text.rsplit("/", 1)[1]
    text = text.split("?", 1)[0].replace("-", "").replace(" ", "").upper()
    return text if CODE_RE.match(text) else None


class CodeReader:
    """Reads booking codes from a keyboard-like scanner (evdev device, grabbed) or stdin lines."""

    RETRY_S = 2.0  # how often a scanner that is gone is looked for again

    def __init__(self, source: str, layout: str, on_code: Callable[[str], None]):
        self.source = source
        self.layout = layout
        self.on_code = on_code
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="code-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self.source == "-":
            try:
                for line in sys.stdin:
                    if self._stop.is_set():
                        return
                    if line.strip():
                        self.on_code(line.strip())
            except OSError as exc:
                log.error("booking-code scanner %s: %s", self.source, exc)
            return
        # A USB scanner unplugged (a bumped cable) or not there yet at boot is opened again until it is back:
        # the thread used to end at the first error, and check-in stayed dead until the dispenser restarted.
        problem = ""
        while not self._stop.is_set():
            try:
                with open(self.source, "rb", buffering=0) as f:
                    with contextlib.suppress(OSError):
                        import fcntl

                        fcntl.ioctl(f, EVIOCGRAB, 1)  # keep the scanned keys away from the console
                    if problem:
                        log.info("booking-code scanner %s is back", self.source)
                    problem = ""
                    self.read_events(f)
                now = "the device is gone"
            except OSError as exc:
                now = str(exc)
            if self._stop.is_set():
                return
            if now != problem:  # one line per new problem, not one every few seconds
                log.error(
                    "booking-code scanner %s: %s; trying again every %.0f s", self.source, now, self.RETRY_S
                )
            problem = now
            self._stop.wait(self.RETRY_S)

    def read_events(self, f: Any) -> None:
        """Turn key-down events into text lines; each Enter delivers one code."""
        buf: list[str] = []
        shift: set[int] = set()  # the shift keys held now
        while not self._stop.is_set():
            raw = f.read(EVENT.size)
            if not raw or len(raw) < EVENT.size:
                return
            _, _, etype, code, value = EVENT.unpack(raw)
            if etype != EV_KEY:
                continue
            if code in _SHIFT:
                (shift.add if value else shift.discard)(code)
                continue
            if value != 1:
                continue
            if code in _ENTER:
                if buf:
                    self.on_code("".join(buf))
                buf = []
            else:
                ch = key_char(code, self.layout, bool(shift))
                if ch:
                    buf.append(ch)
                    del buf[:-64]
