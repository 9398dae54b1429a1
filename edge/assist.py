"""The assistance node: one big illuminated button at a self-service terminal.

Press: ask for help (``assist.request`` for this terminal). The light blinks while the request is pending,
is steady once a staff member has acknowledged it ("help is on the way") and goes off when it is resolved or
cancelled. A long press cancels the open request. Escalation (to all counters, then to the manager's page) is
decided by the controller (``controller.assist_escalate_s``); this node only shows the request's state.

If the controller cannot be reached, the light flickers fast for a few seconds so the citizen sees the press
was not taken (and the press is not silently lost: request/reply with retries under the same request id).
When the controller's status says it is gone, the flicker comes at once, not only after every retry timed
out; the request is still sent, and taken if the controller is back within the retries.

Pins (firmware_config/pinmaps/assist.yaml): ``help`` (button), ``light`` (the button's lamp).
Node options (``OPTIONS``; docs/configuration.md): ``long_press_s``, ``request_timeout_s``, ``retries``, and
``hardware`` (the pin map revision). Any other key is an error naming it.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from edge.counter import ASSIST_OPTIONS as OPTIONS
from edge.counter import _option, node_pins
from edge.hardware import Lamp, PressButton, SimInput, close_all
from waitroom.contract import EventKind
from waitroom.errors import CommandFailed, RequestTimeout

if TYPE_CHECKING:  # the schema (pydantic); a node runs on light records of it (waitroom.nodeconfig)
    from waitroom.config import Config, Node

log = logging.getLogger(__name__)

DEFAULT_PINS = {"help": 17, "light": 18}
REFUSED_S = 3.0  # fast flicker after a press the controller did not take


class AssistNode:
    def __init__(self, runtime: Any, cfg: Config, node: Node, *, pins: Any = None, simulate: bool = False):
        self.runtime = runtime
        self.cfg = cfg
        self.node = node
        self.terminal = node.id
        self.long_press_s = _option(node, "long_press_s", OPTIONS)
        self.timeout_s = _option(node, "request_timeout_s", OPTIONS)
        self.retries = int(_option(node, "retries", OPTIONS))
        pinmap = {**DEFAULT_PINS, **node_pins(node, cfg)}
        self.button = PressButton(
            pinmap["help"], factory=pins, name=f"{node.id}.help", long_press_s=self.long_press_s
        )
        self.light = Lamp(pinmap["light"], factory=pins, name=f"{node.id}.light")
        self.button.on_press = lambda: self.submit("assist.request")
        self.button.on_long_press = lambda: self.submit("assist.cancel")
        self.buttons = {"help": self.button}
        self.sim = SimInput(runtime, self.buttons) if simulate else None
        self.request_state = "none"  # none | pending | acknowledged
        self._refused = False
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()
        self._closed = False
        self.controller_up: bool | None = None  # the controller's retained status; None until it arrives
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"{node.id}-presses", daemon=True)

    def start(self) -> None:
        self._worker.start()
        self.runtime.on_state(self._on_state)
        self.runtime.on_event(self._on_event)
        self.runtime.on_controller(self._on_controller)
        self.show()
        log.info("assistance node %s ready", self.node.id)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        self._jobs.put(None)
        if self._timer:
            self._timer.cancel()
        self.light.set("off")
        close_all([self.button, self.light])

    def submit(self, op: str) -> None:
        if not self.runtime.online:
            log.warning("%s: %s refused, no connection to the broker", self.node.id, op)
            self.refused()
            return
        if self.controller_up is False:  # shown at once; sent all the same, in case it is back in time
            log.warning("%s: %s while the controller is offline", self.node.id, op)
            self.refused()
        self._jobs.put(op)

    def _on_controller(self, online: bool) -> None:
        self.controller_up = online

    def _work(self) -> None:
        while True:
            op = self._jobs.get()
            if op is None:
                return
            try:
                result = self.runtime.request(
                    op, {"terminal": self.terminal}, timeout=self.timeout_s, retries=self.retries
                )
            except CommandFailed as exc:
                # Cancelling when nothing is open is harmless; anything else is shown as refused.
                log.info("%s: %s refused: %s", self.node.id, op, exc)
                if exc.code != "unknown_assistance":
                    self.refused()
            except RequestTimeout:
                log.warning("%s: %s got no reply from the controller", self.node.id, op)
                self.refused()
            else:
                a = result.get("assist") or {}
                log.info("%s: %s -> request %s %s", self.node.id, op, a.get("id"), a.get("state"))
                with self._lock:  # show at once; the state snapshot confirms it
                    self.request_state = {"pending": "pending", "acknowledged": "acknowledged"}.get(
                        a.get("state", ""), "none"
                    )
                self.show()
            self.runtime.set_health(assist=self.request_state, presses=self.button.presses)

    def refused(self) -> None:
        with self._lock:
            self._refused = True
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(REFUSED_S, self._end_refused)
            self._timer.daemon = True
            self._timer.start()
        self.show()

    def _end_refused(self) -> None:
        with self._lock:
            self._refused = False
        self.show()

    def _on_state(self, state: dict[str, Any]) -> None:
        listed = state.get("assistance", [])
        mine = next((a for a in listed if a["terminal"] == self.terminal), None)
        # the state lists only the oldest open requests (its size is bounded) and counts all of them: when
        # some are left out, this terminal's may be among them, and the light keeps what it knows (the
        # reply to its press, the assistance events) instead of going out while the citizen still waits
        cut = state.get("assistance_open", len(listed)) > len(listed)
        with self._lock:
            if mine is not None:
                self.request_state = mine["state"] if mine["state"] in ("pending", "acknowledged") else "none"
            elif not cut:
                self.request_state = "none"
        self.show()

    def _on_event(self, kind: EventKind, event: dict[str, Any]) -> None:
        if kind is not EventKind.ASSIST or event.get("terminal") != self.terminal:
            return
        with self._lock:
            self.request_state = {"pending": "pending", "acknowledged": "acknowledged"}.get(
                str(event.get("state", "")), "none"
            )
        self.show()

    def show(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._refused:
                pattern = "fast"
            else:
                pattern = {"pending": "blink", "acknowledged": "on"}.get(self.request_state, "off")
            self.light.set(pattern)


def create(runtime: Any, cfg: Config, node: Node, *, pins: Any = None, simulate: bool = False) -> AssistNode:
    """Node factory (waitroom/cli.py NODE_ROLES['assist'])."""
    return AssistNode(runtime, cfg, node, pins=pins, simulate=simulate)
