"""The office side of cross-office steering: the city's recommendations, as the office's nodes receive them.

The city service publishes one retained message per office and service on ``Topics(office).recommend(svc)``;
the office's bridge brings it down to the office broker. ``Advice`` keeps them and answers "is there an office
with a shorter wait for this service right now?" for the public waiting page, the ticket and the dispenser.

A recommendation lapses at its ``valid_until`` (so a dead city service or a cut link never leaves old advice
on tickets), and at the latest its lifetime (``valid_until - ts``) after it arrived by the office's own clock:
``valid_until`` is the city's time, and an office clock behind the city's would otherwise keep advice for as
long as it is behind, naming an office that may have closed meanwhile. It is ignored when it names another
office or service than its topic. Light module: no Flask, no
paho; the caller subscribes ``Topics(office).recommendations()`` and hands the messages to ``on_message``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from waitroom.contract import ContractError, decode, parse_city_topic
from waitroom.i18n import alternative

log = logging.getLogger(__name__)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _valid_alternative(alt: Any) -> bool:
    return (
        isinstance(alt, dict)
        and isinstance(alt.get("name"), str)
        and bool(alt["name"])
        and isinstance(alt.get("office"), str)
        and isinstance(alt.get("eta_min"), int)
        and not isinstance(alt.get("eta_min"), bool)
        and alt["eta_min"] >= 0
    )


class Advice:
    """The latest recommendation per service of one office."""

    def __init__(self, office: str, *, clock: Callable[[], float] = time.time):
        self.office = office
        self.clock = clock
        self._by_service: dict[str, dict[str, Any]] = {}
        self._lapses: dict[str, float] = {}  # service -> when its advice lapses by the office's clock
        self._lock = threading.Lock()

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            office, kind = parse_city_topic(topic)
            if office != self.office or not kind.startswith("recommend:"):
                raise ValueError("not a recommendation for this office")
            service = kind.split(":", 1)[1]
            if not payload:
                with self._lock:
                    self._by_service.pop(service, None)
                return
            data = decode(payload)
            if data.get("office") != office or data.get("service") != service:
                raise ValueError("the payload names another office or service than its topic")
            until, ts = data.get("valid_until"), data.get("ts")
            if not _number(until):
                raise ValueError("valid_until is missing")
        except (ContractError, ValueError) as exc:
            log.warning("ignored city recommendation on %s: %s", topic, exc)
            return
        lapses = self.clock() + (until - ts) if _number(ts) else until
        with self._lock:
            self._by_service[service] = data
            self._lapses[service] = lapses

    def alternative(self, service: str, now: float | None = None) -> dict[str, Any] | None:
        """{office, name, eta_min, ...} of the office to suggest for ``service``, or None."""
        now = self.clock() if now is None else now
        with self._lock:
            data = self._by_service.get(service)
            lapses = self._lapses.get(service, 0.0)
        if not data or data["valid_until"] < now or lapses < now:
            return None
        alt = data.get("alternative")
        return dict(alt) if _valid_alternative(alt) else None

    def text(self, service: str, lang: str = "de", now: float | None = None) -> str | None:
        """'Kürzer warten: Bürgerbüro Süd: ca. 10 Min.' or None."""
        alt = self.alternative(service, now)
        if alt is None:
            return None
        return alternative(alt["name"], alt["eta_min"], lang)
