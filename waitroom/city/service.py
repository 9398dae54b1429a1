"""The city service on MQTT: follows every office on the city broker and publishes the recommendations.

One MQTT connection (``waitroom.mqtt.MqttLink`` as ``city-service``, will on
``Topics("city").status("service")``) subscribes to the contract's ``CITY_FILTERS`` (public waits, bridge
link state, controller status of every office) and feeds ``CityView``. A publisher thread, woken by every
change and at least once a second, coalesces changes (at most one pass per 100 ms), publishes the retained
recommendation of each office and service whose advice changed, and renews active ones before they lapse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from waitroom.city.config import CityConfig
from waitroom.city.remote import OfficeCommands
from waitroom.city.view import CityView
from waitroom.contract import CITY_FILTERS, CITY_ID, CITY_SERVICE_NODE_ID, Role, Topics
from waitroom.mqtt import MqttLink

log = logging.getLogger(__name__)

COALESCE_S = 0.1
SETTLE_S = 1.0  # after (re)connecting, let the retained messages arrive before the first pass


def _same_advice(old: object, new: tuple[str, int] | None) -> bool:
    """Whether a published advice still holds: the same office, its wait within 2 min or 10 % ("ca. N Min."),
    so a busy city does not republish on every minute of change."""
    if old is None or new is None:
        return old is new
    assert isinstance(old, tuple)
    return old[0] == new[0] and abs(old[1] - new[1]) < max(2, 0.1 * new[1])


class CityService:
    def __init__(
        self, cfg: CityConfig, *, password: str | None = None, clock: Callable[[], float] = time.time
    ):
        self.cfg = cfg
        self.clock = clock
        self.view = CityView(cfg, clock=clock)
        broker = (
            cfg.broker if cfg.broker.username else cfg.broker.model_copy(update={"username": "city-service"})
        )
        self.link = MqttLink(broker, CITY_ID, CITY_SERVICE_NODE_ID, Role.WEB, password=password)
        for kind, topic_filter in CITY_FILTERS.items():
            if kind != "reply":
                self.link.subscribe(topic_filter, self._on_message, qos=1)
        # Remote tickets: commands to the offices' controllers over their bridges (waitroom/city/remote.py).
        self.commands = OfficeCommands(self.link) if cfg.remote_tickets.enabled else None
        self._published: dict[tuple[str, str], tuple[object, float]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected_at = 0.0
        self.published = 0
        self.last_pass = 0.0
        self.link.on_connect_hooks.append(self._on_connect)

    def start(self, wait: float | None = 10.0) -> bool:
        self._thread = threading.Thread(target=self._publisher, name="city-publisher", daemon=True)
        self._thread.start()
        return self.link.start(wait=wait)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=3)
        self.link.stop()

    def alive(self) -> bool:
        return self.link.client_thread_alive() and time.monotonic() - self.last_pass < 30

    # -- MQTT (network thread)
    def _on_connect(self) -> None:
        self._connected_at = time.monotonic()
        self._published.clear()  # republish everything: the broker may have lost its retained messages

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.view.on_message(topic, payload):
            self._wake.set()

    # -- publisher thread
    def _publisher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            if self._stop.is_set():
                return
            time.sleep(COALESCE_S)  # let a burst of updates land, then one pass
            self._wake.clear()
            self.last_pass = time.monotonic()
            if not self.link.connected.is_set() or time.monotonic() - self._connected_at < SETTLE_S:
                continue
            try:
                self.publish_recommendations()
            except Exception:
                log.exception("recommendation pass failed")

    def publish_recommendations(self, now: float | None = None) -> int:
        """Publish every recommendation that changed or is due for renewal; return how many."""
        if not self.cfg.steering.enabled:
            return 0
        now = self.clock() if now is None else now
        renew_after = self.cfg.steering.valid_s / 2
        count = 0
        for (office, service), alt in self.view.recommendations(now).items():
            key = (alt["office"], alt["eta_min"]) if alt else None
            prev = self._published.get((office, service))
            if (
                prev is not None
                and _same_advice(prev[0], key)
                and (key is None or now - prev[1] < renew_after)
            ):
                continue
            payload = self.view.recommendation_payload(office, service, alt, now)
            self.link.publish(Topics(office).recommend(service), payload, "recommend")
            self._published[(office, service)] = (key, now)
            count += 1
            if alt and (prev is None or prev[0] != key):
                log.info(
                    "office %s, service %s: %s min; recommending %s (%s min)",
                    office,
                    service,
                    payload["eta_min"],
                    alt["office"],
                    alt["eta_min"],
                )
        self.published += count
        return count
