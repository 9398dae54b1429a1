"""The live picture of every office of a city, from what the offices' bridges carry to the city broker.

``CityView`` is fed MQTT messages (``on_message(topic, payload)``) and answers with plain dictionaries: the
API document, a ranking of the offices for one service, the open-data feed and the recommendations.
Thread-safe (one lock); nothing here talks to the network, so it is tested and benchmarked without a broker.

Per office it keeps the last public waits, when they were current (``as_of``), the bridge's link state (the
retained ``1``/``0`` notification, whose ``0`` is the bridge's last will) and the controller's online status.
An office is *live* when it has data, neither the link nor the controller is known to be down and the data is
not older than ``stale_after_min`` (when both are known to be up: its last waits arrived within ``SILENT_S``,
the controller republishing them every 30 s); *stale* (with ``stale_since``) otherwise; *unknown* before its
first data.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from waitroom.city.config import CityConfig, CityOffice, next_opening, opening_today
from waitroom.config import WEEKDAYS
from waitroom.contract import ID_RE, ContractError, decode, parse_city_topic
from waitroom.i18n import LANGUAGES

log = logging.getLogger(__name__)

API_VERSION = 1
MAX_PUBLIC_BYTES = 256 * 1024
# Bounds of one office's public waits, so that one office cannot swell every page and document of the city
# (a payload beyond them is rejected like a malformed one, and the office's last good data is kept).
MAX_SERVICES = 64
MAX_NAME_CHARS = 200  # a service name in one language (longer ones are cut)
MAX_REASON_CHARS = 100
# A count or a wait beyond these is no office's real one; Babel cannot write numbers of 29 digits and more,
# so one office's huge value made the city page a 500 for every office.
MAX_WAITING = 100_000
MAX_ETA_MIN = 100_000
# A running controller republishes its public waits at least every 30 s; an office whose link and controller
# say up but that sent none for this long is stale (see ``CityView.status``).
SILENT_S = 300.0
# Order of an office in a service ranking: where a citizen can go now first, by expected wait.
(
    GROUP_AVAILABLE,
    GROUP_NO_ETA,
    GROUP_APPOINTMENT_ONLY,
    GROUP_INTAKE_STOPPED,
    GROUP_STALE,
    GROUP_CLOSED,
    GROUP_UNKNOWN,
) = range(7)


@dataclass
class OfficeLive:
    """What the city knows of one office right now."""

    id: str
    public: dict[str, Any] | None = None
    services: dict[str, dict[str, Any]] | None = None  # service id -> its public entry
    received_at: float | None = None
    as_of: float | None = None  # when the waits were current (the office's ts, bounded by arrival)
    link: str = "unknown"  # up | down | unknown (bridge notification)
    link_since: float | None = None
    controller: str = "unknown"  # online | offline | unknown
    controller_since: float | None = None
    rejected: int = 0
    warned: bool = False


def _int_or_none(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{v!r} is not a number of minutes")
    if v > MAX_ETA_MIN:
        raise ValueError(f"{v!r} minutes, more than {MAX_ETA_MIN}")
    return round(v)


def parse_public(office: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate an office's public waits; return service id -> {waiting, eta_min, intake_open, ...}.

    Extra keys are allowed (the contract may add some); missing or wrongly typed ones raise ValueError."""
    if data.get("office") not in (None, office):
        raise ValueError(f"payload names office {data.get('office')!r}, topic office {office!r}")
    ts = data.get("ts")  # a time before 1970 (or before year 1) broke every page that says "as of"
    if ts is not None and (
        isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0
    ):
        raise ValueError(f"'ts' {str(ts)[:20]!r} is not a time (seconds since 1970)")
    services = data.get("services")
    if not isinstance(services, list):
        raise ValueError("'services' must be a list")
    if len(services) > MAX_SERVICES:
        raise ValueError(f"{len(services)} services, more than {MAX_SERVICES}")
    out: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(services):
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not ID_RE.match(s["id"]):
            raise ValueError(f"services[{i}]: needs an 'id' of [a-z0-9_-]")
        waiting = s.get("waiting", 0)
        if isinstance(waiting, bool) or not isinstance(waiting, int) or not 0 <= waiting <= MAX_WAITING:
            raise ValueError(f"services[{i}].waiting: {waiting!r} is not a count up to {MAX_WAITING}")
        try:
            eta = _int_or_none(s.get("eta_min"))
        except ValueError as exc:
            raise ValueError(f"services[{i}].eta_min: {exc}") from None
        intake = s.get("intake_open", True)
        if not isinstance(intake, bool):
            raise ValueError(f"services[{i}].intake_open: {intake!r} is not true/false")
        walk_in = s.get(
            "walk_in", True
        )  # false: by appointment only (the office's dispensers do not offer it)
        if not isinstance(walk_in, bool):
            raise ValueError(f"services[{i}].walk_in: {walk_in!r} is not true/false")
        name = s.get("name")
        if isinstance(name, dict) and isinstance(name.get("de"), str) and name["de"]:
            # texts only, in the known languages, each cut to a bound (a name is shown on every page)
            name = {k: v[:MAX_NAME_CHARS] for k, v in name.items() if k in LANGUAGES and isinstance(v, str)}
        else:
            name = None
        reason = s.get("intake_reason")
        entry = {
            "waiting": waiting,
            "eta_min": eta,
            "intake_open": intake,
            "intake_reason": reason[:MAX_REASON_CHARS] if isinstance(reason, str) else None,
            "walk_in": walk_in,
            "name": name,
        }
        out[s["id"]] = entry
    return out


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    """The time zone an office's payload names, or None. A folder ("Europe") raised IsADirectoryError and a
    long name OSError, which broke every page and document of the city and the recommendation pass."""
    if len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


HHMM_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _valid_hours(hours: Any) -> bool:
    """Opening hours as an office may publish them: {weekday: [HH:MM, HH:MM]} with open before close."""
    if not isinstance(hours, dict):
        return False
    for day, span in hours.items():
        if day not in WEEKDAYS or not isinstance(span, list) or len(span) != 2:
            return False
        if not all(isinstance(v, str) and HHMM_RE.match(v) for v in span) or span[0] >= span[1]:
            return False
    return True


def local_hhmm(ts: float | None, tz: Any) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, tz).strftime("%H:%M")


class CityView:
    """Every office's live waits, link state and opening state; rankings and recommendations."""

    def __init__(self, cfg: CityConfig, *, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.clock = clock
        self.offices: dict[str, OfficeLive] = {o.id: OfficeLive(o.id) for o in cfg.offices}
        self.version = 0  # bumped on every applied change
        self.ignored_offices: set[str] = set()
        self.updates = 0
        self.lock = threading.RLock()
        self._active: set[tuple[str, str]] = set()  # (office, service) with an active recommendation
        self._rec_cache: tuple[tuple[int, int], dict[tuple[str, str], Any]] | None = None
        self.listeners: list[Callable[[str, str], None]] = []  # (office, kind) after each applied message

    # ------------------------------------------------------------------------------------------ input
    def on_message(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Apply one message from the city broker; return whether it changed the picture."""
        now = self.clock() if now is None else now
        try:
            office, kind = parse_city_topic(topic)
        except ContractError:
            log.debug("ignored message on %s", topic)
            return False
        live = self.offices.get(office)
        if live is None:
            if office not in self.ignored_offices:
                self.ignored_offices.add(office)
                log.warning("messages of office %r ignored: it is not in the city configuration", office)
            return False
        with self.lock:
            if kind == "public":
                changed = self._on_public(live, payload, now)
            elif kind == "bridge":
                changed = self._on_bridge(live, payload, now)
            elif kind == "controller":
                changed = self._on_controller(live, payload, now)
            else:
                return False  # our own recommendations echoed back
            if changed:
                self.version += 1
                self.updates += 1
        if changed:
            for listener in self.listeners:
                listener(office, kind)
        return changed

    def _reject(self, live: OfficeLive, what: str, why: str) -> bool:
        live.rejected += 1
        if not live.warned:
            live.warned = True
            log.warning("office %s: ignored %s (%s); keeping the last good data", live.id, what, why)
        return False

    def _on_public(self, live: OfficeLive, payload: bytes, now: float) -> bool:
        if not payload:  # retained message cleared
            live.public = live.services = None
            return True
        try:
            data = decode(payload, limit=MAX_PUBLIC_BYTES)
            services = parse_public(live.id, data)
        except (ContractError, ValueError) as exc:
            return self._reject(live, "public waits", str(exc))
        ts = data.get("ts")  # checked by parse_public: None or a time
        as_of = now if ts is None else min(float(ts), now)  # never in the future; an old value stays old
        live.public, live.services = data, services
        live.received_at, live.as_of = now, as_of
        live.warned = False
        return True

    def _on_bridge(self, live: OfficeLive, payload: bytes, now: float) -> bool:
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("0", "1"):
            return self._reject(live, "bridge state", f"payload {text[:20]!r} is not 0 or 1")
        state = "up" if text == "1" else "down"
        if state != live.link:
            live.link, live.link_since = state, now
        return True

    def _on_controller(self, live: OfficeLive, payload: bytes, now: float) -> bool:
        try:
            data = decode(payload)
        except ContractError as exc:
            return self._reject(live, "controller status", str(exc))
        state = data.get("status")
        if state not in ("online", "offline"):
            return self._reject(live, "controller status", f"status {state!r}")
        if state != live.controller:
            live.controller, live.controller_since = state, now
        return True

    # ------------------------------------------------------------------------------------- derived facts
    def office_cfg(self, oid: str) -> CityOffice:
        office = self.cfg.office(oid)
        assert office is not None
        return office

    def status(self, live: OfficeLive, now: float) -> tuple[str, float | None]:
        """(live | stale | unknown, stale since)."""
        if live.public is None or live.as_of is None:
            return "unknown", None
        since: list[float] = []
        if live.link == "down" and live.link_since is not None:
            since.append(live.link_since)
        if live.controller == "offline" and live.controller_since is not None:
            since.append(live.controller_since)
        # The controller publishes its waits on every change, so while the bridge reports its link up and the
        # controller is online, old data is simply unchanged data: the office's age rule decides only without
        # those signals. But a running controller also republishes them at least every 30 s (its forecast
        # refresh), so with both signals up an office silent for SILENT_S is not idle: its statuses are
        # leftovers (the office server lost power; its broker came back from its persistence file and its
        # bridge replayed the retained "online" and the old waits, while the controller stays down).
        confirmed = live.link == "up" and live.controller == "online"
        limit = self.cfg.stale_after_min
        if not confirmed and limit is not None and now - live.as_of > limit * 60:
            since.append(live.as_of + limit * 60)
        if confirmed and live.received_at is not None and now - live.received_at > SILENT_S:
            since.append(live.received_at + SILENT_S)
        if since:
            return "stale", min(since)
        return "live", None

    def tz(self, office: CityOffice, live: OfficeLive) -> ZoneInfo:
        """The office's time zone: the city file's, else the one its public waits name, else the city's."""
        if office.timezone is None and live.public and isinstance(live.public.get("timezone"), str):
            zone = _zone(live.public["timezone"])
            if zone is not None:
                return zone
        return self.cfg.tz(office)

    def hours(self, office: CityOffice, live: OfficeLive) -> dict[str, Any] | None:
        if office.hours is not None:
            return {k: list(v) for k, v in office.hours.items()}
        published = (live.public or {}).get("hours")
        return published if _valid_hours(published) else None

    def opening(self, office: CityOffice, live: OfficeLive, now: float) -> tuple[float, float] | None:
        try:
            return opening_today(self.hours(office, live), self.tz(office, live), now)
        except (ValueError, TypeError, AttributeError):  # malformed hours in a payload
            return None

    def next_open(self, office: CityOffice, live: OfficeLive, now: float) -> float | None:
        try:
            return next_opening(self.hours(office, live), self.tz(office, live), now)
        except (ValueError, TypeError, AttributeError):
            return None

    def offers(self, office: CityOffice, live: OfficeLive, service: str) -> bool | None:
        """Whether the office offers the service; None when not known yet."""
        if office.services is not None:
            return service in office.services
        if live.services is None:
            return None
        return service in live.services

    def service_names(self) -> dict[str, dict[str, str]]:
        names: dict[str, dict[str, str]] = {}
        for live in self.offices.values():
            for sid, s in (live.services or {}).items():
                if sid not in names and s.get("name"):
                    names[sid] = s["name"]
        for s in self.cfg.services:
            names[s.id] = s.name.model_dump(exclude_none=True)
        for office in self.cfg.offices:
            for sid in office.services or []:
                names.setdefault(sid, {"de": sid})
        for live in self.offices.values():
            for sid in live.services or {}:
                names.setdefault(sid, {"de": sid})
        return names

    def service_ids(self) -> list[str]:
        configured = [s.id for s in self.cfg.services]
        rest = sorted(set(self.service_names()) - set(configured))
        return configured + rest

    # ------------------------------------------------------------------------------------------ output
    def _office_entry(
        self, office: CityOffice, now: float, names: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        live = self.offices[office.id]
        status, stale_since = self.status(live, now)
        span = self.opening(office, live, now)
        tz = self.tz(office, live)
        services = []
        for sid, s in (live.services or {}).items():
            if office.services is not None and sid not in office.services:
                continue
            services.append(
                {
                    "id": sid,
                    "name": names.get(sid, {"de": sid}),
                    "waiting": s["waiting"],
                    "eta_min": s["eta_min"],
                    "intake_open": s["intake_open"],
                    "intake_reason": s["intake_reason"],
                    "walk_in": s["walk_in"],
                }
            )
        return {
            "id": office.id,
            "name": office.name,
            "status": status,
            "stale_since": stale_since,
            "as_of": live.as_of,
            "link": live.link,
            "controller": live.controller,
            "open_now": bool(span and span[0] <= now < span[1]),
            "hours_today": [local_hhmm(span[0], tz), local_hhmm(span[1], tz)] if span else None,
            "next_open": self.next_open(office, live, now),
            "hours": self.hours(office, live),
            "timezone": str(self.tz(office, live)),
            "services": services,
        }

    def document(self, now: float | None = None) -> dict[str, Any]:
        """GET /api/v1/offices: every office with its waits (schema: schemas/offices.json)."""
        now = self.clock() if now is None else now
        with self.lock:
            names = self.service_names()
            offices = [self._office_entry(o, now, names) for o in self.cfg.offices]
            recs = self.recommendations(now, update=False)
            for entry in offices:
                for s in entry["services"]:
                    s["recommendation"] = recs.get((entry["id"], s["id"]))
            return {
                "v": API_VERSION,
                "city": self.cfg.city.name,
                "generated_at": round(now, 3),
                "services": [{"id": sid, "name": names[sid]} for sid in self.service_ids()],
                "offices": offices,
            }

    def _rank_entry(self, office: CityOffice, service: str, now: float) -> dict[str, Any] | None:
        live = self.offices[office.id]
        offers = self.offers(office, live, service)
        if offers is False:
            return None
        status, stale_since = self.status(live, now)
        span = self.opening(office, live, now)
        open_now = bool(span and span[0] <= now < span[1])
        s = (live.services or {}).get(service)
        if status == "unknown" or s is None:
            group = GROUP_UNKNOWN if status == "unknown" else (GROUP_CLOSED if not open_now else GROUP_STALE)
        elif status == "stale":
            group = GROUP_STALE if open_now else GROUP_CLOSED
        elif not open_now:
            group = GROUP_CLOSED
        elif not s["walk_in"]:
            group = GROUP_APPOINTMENT_ONLY  # no number for a walk-in there, whatever its wait
        elif not s["intake_open"]:
            group = GROUP_INTAKE_STOPPED
        elif s["eta_min"] is None:
            group = GROUP_NO_ETA
        else:
            group = GROUP_AVAILABLE
        tz = self.tz(office, live)
        return {
            "office": office.id,
            "name": office.name,
            "status": status,
            "stale_since": stale_since,
            "as_of": live.as_of,
            "open_now": open_now,
            "hours_today": [local_hhmm(span[0], tz), local_hhmm(span[1], tz)] if span else None,
            "next_open": self.next_open(office, live, now),
            "hours": self.hours(office, live),
            "available": group == GROUP_AVAILABLE,
            "waiting": s["waiting"] if s else None,
            "eta_min": s["eta_min"] if s else None,
            "intake_open": s["intake_open"] if s else None,
            "intake_reason": s["intake_reason"] if s else None,
            "walk_in": s["walk_in"] if s else None,
            "_key": (group, s["eta_min"] if s and s["eta_min"] is not None else 10**6, office.name),
        }

    def ranking(self, service: str, now: float | None = None) -> dict[str, Any] | None:
        """GET /api/v1/services/<id>: the offices for one service, where to go first (schemas/service.json).
        None when no office knows the service."""
        now = self.clock() if now is None else now
        with self.lock:
            names = self.service_names()
            if service not in names:
                return None
            rows = [r for o in self.cfg.offices if (r := self._rank_entry(o, service, now)) is not None]
        rows.sort(key=lambda r: r["_key"])
        for rank, r in enumerate(rows, 1):
            del r["_key"]
            r["rank"] = rank
        return {
            "v": API_VERSION,
            "generated_at": round(now, 3),
            "service": {"id": service, "name": names[service]},
            "offices": rows,
        }

    def open_data(self, now: float | None = None) -> dict[str, Any]:
        """The open-data feed (schemas/open-data.json): no generation time: it changes only with the data."""
        now = self.clock() if now is None else now
        with self.lock:
            offices = []
            for office in self.cfg.offices:
                live = self.offices[office.id]
                status, _ = self.status(live, now)
                span = self.opening(office, live, now)
                tz = self.tz(office, live)
                services = [
                    {
                        "id": sid,
                        "waiting": s["waiting"],
                        "eta_min": s["eta_min"],
                        "intake_open": s["intake_open"],
                        "walk_in": s["walk_in"],
                    }
                    for sid, s in sorted((live.services or {}).items())
                    if office.services is None or sid in office.services
                ]
                offices.append(
                    {
                        "id": office.id,
                        "name": office.name,
                        "status": status,
                        "as_of": round(live.as_of) if live.as_of is not None else None,
                        "open_now": bool(span and span[0] <= now < span[1]),
                        "hours_today": [local_hhmm(span[0], tz), local_hhmm(span[1], tz)] if span else None,
                        "services": services,
                    }
                )
            names = self.service_names()
            return {
                "v": API_VERSION,
                "city": self.cfg.city.name,
                "license": self.cfg.web.open_data_license,
                "units": {"eta_min": "minutes", "as_of": "unix epoch seconds"},
                "services": [{"id": sid, "name": names[sid]} for sid in self.service_ids()],
                "offices": offices,
            }

    # ----------------------------------------------------------------------------------- recommendations
    def recommendations(self, now: float | None = None, *, update: bool = True) -> dict[tuple[str, str], Any]:
        """(office, service) -> {office, name, eta_min, waiting} of the better office, or None, for every
        service of every live office. With ``update`` the hysteresis state advances (the publisher does)."""
        now = self.clock() if now is None else now
        rules = self.cfg.steering
        reach = rules.reach_min * 60
        out: dict[tuple[str, str], Any] = {}
        with self.lock:
            if not update and self._rec_cache is not None and self._rec_cache[0] == (self.version, int(now)):
                return self._rec_cache[1]
            live_ids = {o.id for o in self.cfg.offices if self.status(self.offices[o.id], now)[0] == "live"}
            # per service: the offices a citizen could be sent to, best first
            candidates: dict[str, list[tuple[int, int, str, CityOffice]]] = {}
            for office in self.cfg.offices:
                live = self.offices[office.id]
                if not office.recommend or office.id not in live_ids:
                    continue
                span = self.opening(office, live, now)
                if not span or not span[0] <= now + reach < span[1]:
                    continue
                for sid, s in (live.services or {}).items():
                    if not (
                        s["intake_open"]
                        and s["walk_in"]  # an office that does it by appointment only takes no walk-in
                        and s["eta_min"] is not None
                        and self.offers(office, live, sid)
                    ):
                        continue
                    # served before closing: the way there and then its wait. An office open on arrival whose
                    # queue runs past closing has stopped intake by then (Annahmeschluss) and turns them away.
                    if now + reach + s["eta_min"] * 60 < span[1]:
                        candidates.setdefault(sid, []).append(
                            (s["eta_min"], s["waiting"], office.name, office)
                        )
            for pool in candidates.values():
                pool.sort(key=lambda c: (c[0], c[1], c[2]))
            active = set(self._active)
            for office in self.cfg.offices:
                live = self.offices[office.id]
                if office.id not in live_ids:
                    active -= {k for k in active if k[0] == office.id}
                    continue
                for sid, s in (live.services or {}).items():
                    key = (office.id, sid)
                    eta = s["eta_min"]
                    limit = self.cfg.threshold(sid) - (rules.hysteresis_min if key in active else 0)
                    # the wait of a service by appointment only is its holders': nobody to send elsewhere
                    on = rules.enabled and s["walk_in"] and eta is not None and eta >= limit
                    best = None
                    if on:
                        active.add(key)
                        for c_eta, c_waiting, c_name, c_office in candidates.get(sid, []):
                            if eta - c_eta < rules.min_gain_min:
                                break  # sorted: no later one gains enough either
                            if c_office.id != office.id:
                                best = {
                                    "office": c_office.id,
                                    "name": c_name,
                                    "eta_min": c_eta,
                                    "waiting": c_waiting,
                                }
                                break
                    else:
                        active.discard(key)
                    out[key] = best
            if update:
                self._active = active
            self._rec_cache = ((self.version, int(now)), out)
        return out

    def recommendation_payload(self, office: str, service: str, alt: Any, now: float) -> dict[str, Any]:
        live = self.offices[office]
        own = (live.services or {}).get(service, {})
        return {
            "v": API_VERSION,
            "office": office,
            "service": service,
            "ts": round(now, 3),
            "valid_until": round(now + self.cfg.steering.valid_s, 3),
            "eta_min": own.get("eta_min"),
            "threshold_min": self.cfg.threshold(service),
            "alternative": alt,
        }

    def memory_hint(self) -> int:
        """Bytes of the kept payloads (JSON size), for the benchmark and /healthz."""
        with self.lock:
            return sum(len(json.dumps(o.public)) for o in self.offices.values() if o.public)
